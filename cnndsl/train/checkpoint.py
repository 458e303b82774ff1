"""Training checkpoints: weights plus everything a run needs to continue exactly, written atomically.

    OUT/checkpoint.safetensors   the model's tensors (their layer names) and, under `train/`, the
                                 optimizer's, the schedules' and the RNG states; metadata: the spec
                                 (cnndsl.weights: sha256, bindings, input), the options, the epoch,
                                 the history, the data's normalisation and the spec's layers
    OUT/weights.safetensors      the model's tensors alone (cnndsl.weights.save): what eval, export,
                                 --init and weights.load_into take

Both are written by cnndsl.weights.save, i.e. files.atomic_write (a temporary file, fsync, rename),
so a kill -9 at any moment leaves the previous epoch's complete file or the new one, never a
half-written one; the checkpoint is written first, and a resume reads only it. State that
is not a tensor (param groups, step counts, scheduler fields) is JSON in the metadata, with
dict keys and tuples kept as they were, so `load_state_dict` gets back exactly what was saved.
"""
from __future__ import annotations

import json
import os

import torch

from .. import metadata as M, weights as W
from ..errors import CnnError
from . import options as O
from ..files import user_file

CHECKPOINT, WEIGHTS = "checkpoint.safetensors", "weights.safetensors"
KIND = "cnndsl.train-state/1"
PREFIX = "train/"


# ---- state <-> (tensors, JSON) -----------------------------------------------------------------
def encode(obj, key: str, tensors: dict):
    """A JSON-able copy of `obj` whose tensors are moved into `tensors` under keys from `key`."""
    if isinstance(obj, torch.Tensor):
        tensors[key] = obj.detach().cpu().contiguous()
        return {"__tensor__": key}
    if isinstance(obj, dict):  # tensors named by their path: train/optimizer/state/0/momentum_buffer
        names = [str(k) if isinstance(k, (str, int)) and "/" not in str(k) else f"#{i}" for i, k in enumerate(obj)]
        if len(set(names)) < len(names):
            names = [f"#{i}" for i in range(len(obj))]
        return {"__dict__": [[encode(k, f"{key}/{n}.key", tensors), encode(v, f"{key}/{n}", tensors)]
                             for n, (k, v) in zip(names, obj.items())]}
    if isinstance(obj, tuple):
        return {"__tuple__": [encode(v, f"{key}/{i}", tensors) for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [encode(v, f"{key}/{i}", tensors) for i, v in enumerate(obj)]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise CnnError(f"cannot checkpoint a {type(obj).__name__} in the training state ({key})")


def decode(obj, tensors: dict):
    if isinstance(obj, list):
        return [decode(v, tensors) for v in obj]
    if isinstance(obj, dict):
        if "__tensor__" in obj:
            return tensors[obj["__tensor__"]]
        if "__tuple__" in obj:
            return tuple(decode(v, tensors) for v in obj["__tuple__"])
        return {decode(k, tensors): decode(v, tensors) for k, v in obj["__dict__"]}
    return obj


# ---- writing -------------------------------------------------------------------------------------
def save(out: str, module, net, state: dict, info: dict) -> list[str]:
    """Write OUT/checkpoint.safetensors (the model and `state`: {name: state_dict or tensor}), then
    OUT/weights.safetensors; `info` ({str: JSON-able}) goes into both files' metadata."""
    model = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    tensors = dict(model)
    encoded = encode(state, PREFIX.rstrip("/"), tensors)
    meta = {**net.spec_info, "kind": KIND, "cnndsl.train": json.dumps(encoded),
            **{k: json.dumps(v) for k, v in info.items()}}
    paths = [os.path.join(out, CHECKPOINT), os.path.join(out, WEIGHTS)]
    W.save(tensors, paths[0], meta=meta)
    W.save(model, paths[1], meta={**net.spec_info, **{k: json.dumps(v) for k, v in info.items()}})
    return paths


# ---- reading ----------------------------------------------------------------------------------------
class Recorded:
    """A checkpoint file's path and metadata (Header, Loaded)."""

    def __init__(self, path, meta: dict):
        self.path, self.meta = os.fspath(path), meta

    def info(self, key, default=None):
        """The metadata's JSON value `key`, checked (see `recorded`); `default` where it has none."""
        value = _metadata(self.meta, key, self.path)
        return default if value is None else value


class Header(Recorded, os.PathLike):
    """A weights file whose metadata is read (from its header) and whose tensors are not yet: as a path
    (os.PathLike), cnndsl.weights.load_into reads them, once."""

    def __fspath__(self):
        return self.path


class Loaded(Recorded):
    """A checkpoint read back: the model's tensors, the training state, the metadata."""

    def __init__(self, path, what="checkpoint"):
        path = os.fspath(path)
        tensors, meta = W.read(path, what)
        super().__init__(path, meta)
        self.model = {k: v for k, v in tensors.items() if not k.startswith(PREFIX)}
        raw = self.meta.get("cnndsl.train")
        self.state = _state(raw, tensors, self.path) if raw else None

    # a source for cnndsl.weights.load_into: by name, with the spec's metadata
    def state_dict(self):
        return self.model

    @property
    def cnndsl_meta(self):
        return {k: v for k, v in self.meta.items() if k != "cnndsl.train"}


def resume_from(path) -> Loaded:
    """The checkpoint a --resume continues: one that cnndsl train wrote, with its training state."""
    ck = Loaded(path, "--resume checkpoint")
    if ck.state is None or ck.info("options") is None:
        raise CnnError(f"{ck.path} holds weights but no training state: it was not written by cnndsl train as "
                       f"a checkpoint", usage=True,
                       hint=f"--resume continues a run from the {CHECKPOINT} that train writes into --out; to start "
                            f"from these weights, train into another --out with --init {ck.path}")
    return ck


def weights_source(path, what="checkpoint"):
    """What load_into should take for a user's --weights / --init: a training checkpoint's model
    tensors (and its metadata: a Loaded), a safetensors weights file with its metadata read from the
    header alone (a Header: its tensors are read once, by load_into), or the file itself (a .pt, a
    torchvision state_dict). `what` names it in errors (the option that gave it)."""
    path = os.fspath(path)
    if path.endswith(".safetensors"):
        meta = W.read_metadata(path, what)
        return Loaded(path, what) if meta.get("cnndsl.train") else Header(path, meta)
    else:  # a pipe or a folder is refused now, named by the option that gave it (load_into reads it later)
        with user_file(path, what):
            pass
    return path


def recorded(source, key: str):
    """The JSON value `key` ("data": {source, path, samples, classes, mean, std, range}; "options";
    "layers"; "epoch") in the metadata of a weights_source: a cnndsl checkpoint or weights file; None
    where a file has none (a .pt). Read through cnndsl.metadata, the one place training metadata is
    checked: a value that is not JSON, or not of its key's form (a hand-edited file), is a CnnError
    that names the file and the key."""
    if isinstance(source, Recorded):
        return source.info(key)
    if os.fspath(source).endswith(".safetensors"):
        return _metadata(W.read_metadata(source), key, os.fspath(source))
    return None


EDITED = M.EDITED


def _metadata(meta: dict, key: str, where: str):
    return M.value(meta, key, where, _CHECKS)


def _layers(rows, where):
    if not (isinstance(rows, list) and all(isinstance(r, list) and len(r) == 4 and all(isinstance(x, str) for x in r)
                                           for r in rows)):
        M.bad(where, "layers", "not a list of [name, op, description, volume] rows")
    return rows


def _epoch(n, where):
    if not (isinstance(n, int) and not isinstance(n, bool) and n >= 0):
        M.bad(where, "epoch", f"{str(n)[:40]} is not a whole number of epochs")
    return n


# the training keys, beside cnndsl.metadata's own ("data")
_CHECKS = {"options": lambda o, where: O.check_recorded(o, where), "layers": _layers, "epoch": _epoch}


def _state(raw, tensors, where) -> dict:
    """The training state of a checkpoint's `cnndsl.train` metadata, checked for what _restore reads."""
    try:
        s = decode(json.loads(raw), tensors)
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise CnnError(f"{where}: its training state (`cnndsl.train`) is malformed ({type(e).__name__}: "
                       f"{str(e)[:80]})", hint=EDITED) from None
    ok = (isinstance(s, dict) and isinstance(s.get("epoch"), int) and s["epoch"] >= 0
          and isinstance(s.get("optimizer"), dict) and isinstance(s.get("history"), list)
          and all(isinstance(r, dict) for r in s["history"])
          and isinstance(s.get("rng"), dict) and isinstance(s["rng"].get("torch"), torch.Tensor))
    if not ok:
        raise CnnError(f"{where}: its training state (`cnndsl.train`) is malformed: it needs an epoch, the "
                       f"optimizer's state, the history and the RNG state", hint=EDITED)
    return s


def find(out: str) -> str | None:
    """The checkpoint in a run folder `out`, or None where there is none yet."""
    path = os.path.join(out, CHECKPOINT)
    return path if os.path.exists(path) else None


def check_same_spec(ck: Recorded, net) -> list[str]:
    """Refuse to resume from a checkpoint of another spec, naming the layers that differ; return
    notes when only the text differs (a comment) and the layers are the same."""
    here = net.spec_info
    if ck.meta.get("spec_sha256") == here["spec_sha256"] and ck.meta.get("bindings") == here["bindings"] \
            and ck.meta.get("input") == here["input"]:
        return []
    theirs = {r[0]: r[1:] for r in ck.info("layers", [])}
    ours = {r[0]: r[1:] for r in layer_rows(net)}
    only_there = [k for k in theirs if k not in ours]
    only_here = [k for k in ours if k not in theirs]
    changed = [k for k in ours if k in theirs and ours[k] != theirs[k]]
    # the input's channels change the first layers' weights, not a row: compared on their own
    other_input = ck.meta.get("input") != here["input"]
    if not (only_there or only_here or changed or other_input):
        return [f"{ck.path} was saved from another text of this spec ({ck.meta.get('spec_name')}, sha256 "
                f"{ck.meta.get('spec_sha256', '')[:12]}); its layers are the same, so it is resumed"]
    lines = [f"  input: {ck.meta.get('input')} there, {here['input']} here"] if other_input else []
    if changed:
        lines += [f"  {k}: {_row(theirs[k])} there, {_row(ours[k])} here" for k in changed[:8]]
    if only_there:
        lines.append(f"  only in the checkpoint: {', '.join(only_there[:8])}{' ...' if len(only_there) > 8 else ''}")
    if only_here:
        lines.append(f"  only here: {', '.join(only_here[:8])}{' ...' if len(only_here) > 8 else ''}")
    raise CnnError(f"{ck.path} was saved from another spec ({ck.meta.get('spec_name')}, sha256 "
                   f"{ck.meta.get('spec_sha256', '')[:12]}, -D {ck.meta.get('bindings')}, input {ck.meta.get('input')}; "
                   f"this is {here['spec_name']}, sha256 {here['spec_sha256'][:12]}, -D {here['bindings']}, "
                   f"input {here['input']}); the layers that differ:\n" + "\n".join(lines),
                   usage=True, hint="--resume continues the same spec; to start from its weights, train into "
                                    "another --out with --init " + ck.path.replace(CHECKPOINT, WEIGHTS))


def layer_rows(net) -> list:
    """[name, op, description, output volume] of every layer: what a checkpoint records of its spec."""
    return [[n.name, n.op, n.kind.describe(n.attrs), "x".join(map(str, n.out_shape))] for n in net.graph.nodes]


def _row(r):
    return f"{r[0]} {r[1]} -> {r[2]}".replace("  ", " ")
