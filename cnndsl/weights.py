"""Checkpoints: save and load weights safely, and bring torchvision-style state_dicts to cnndsl names.

    >>> import cnndsl, cnndsl.weights as W, tempfile, os
    >>> m = cnndsl.loads("input 8x8x3\\nCONV(4, 3) - BN - RELU").to_torch(seed=0)
    >>> path = os.path.join(tempfile.mkdtemp(), "tiny.safetensors")
    >>> W.save(m, path)
    >>> W.load_into(m, path)["source"]
    'cnndsl'

Formats: `.safetensors` (preferred: plain tensors, nothing executes on load) or a
`torch.save`d state_dict (`.pt`/`.pth`), read with `torch.load(weights_only=True)`, which
refuses anything but tensors and plain containers: an untrusted file is never unpickled.
Writes are atomic (cnndsl.files.atomic_write).

Torchvision key mapping (`map_state_dict`), for zoo nets whose structure matches their
torchvision twin: keys are grouped by module (`layer1.0.conv1.weight` -> module
`layer1.0.conv1`); each of our modules, in execution order, takes the first unused twin
module, in the twin's registration order, with the same tensors (names and shapes). A
module whose path names a shortcut (`downsample`, `shortcut`, `proj`) prefers a twin
module that does too (ResNet's projection and its 3rd conv can have equal shapes). A
leading `module.` (DataParallel) is dropped. Anything left unmatched on either side is
an error that lists it, unless `strict=False` (then unmatched twin tensors, such as
GoogLeNet's auxiliary heads, are ignored).
"""
from __future__ import annotations

import hashlib
import io
import os
import re

from .errors import CnnError
from .files import atomic_write, read_bytes

SHORTCUT_WORDS = frozenset({"downsample", "shortcut", "proj", "projection", "skip"})


# ---- files ---------------------------------------------------------------------------------------
def _state_dict(obj) -> dict:
    sd = obj.state_dict() if hasattr(obj, "state_dict") else obj
    return {k: v.detach().cpu().contiguous() for k, v in sd.items()}


def save(module_or_state_dict, path) -> None:
    """Write a checkpoint: safetensors unless `path` ends with .pt/.pth (torch.save of the state_dict)."""
    import torch
    sd = _state_dict(module_or_state_dict)
    path = os.fspath(path)
    if path.endswith((".pt", ".pth")):
        buf = io.BytesIO()
        torch.save(sd, buf)
        data = buf.getvalue()
    else:
        from safetensors.torch import save as st_save
        data = st_save({k: v.clone() for k, v in sd.items()})  # no shared storages in safetensors
    atomic_write(path, data)


def load(path) -> dict:
    """Read a checkpoint into a {key: tensor} dict (CPU); a CnnError for anything else."""
    import torch
    path = os.fspath(path)
    data = read_bytes(path)
    if _is_safetensors(data):
        from safetensors.torch import load as st_load
        try:
            return st_load(data)
        except Exception as e:
            raise CnnError(f"{path}: not a readable safetensors file ({e})") from None
    try:
        obj = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as e:
        raise CnnError(f"{path}: not a safetensors file nor a plain torch state_dict",
                       hint=f"torch.load(weights_only=True) refused it: {str(e).splitlines()[0][:200]}") from None
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]  # a training checkpoint that wraps the weights
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CnnError(f"{path}: holds no state_dict of tensors")
    return dict(obj)


def _is_safetensors(data: bytes) -> bool:
    if len(data) < 10:
        return False
    n = int.from_bytes(data[:8], "little")
    return 2 <= n <= len(data) - 8 and data[8:9] == b"{"


# ---- mapping ---------------------------------------------------------------------------------------
def _modules(sd: dict) -> list[tuple[str, tuple]]:
    """[(module prefix, signature)] in key order; signature = ((tensor name, shape), ...)."""
    groups: dict[str, list] = {}
    for key, value in sd.items():
        prefix, _, leaf = key.rpartition(".")
        groups.setdefault(prefix, []).append((leaf, tuple(value.shape)))
    return [(p, tuple(sorted(sig))) for p, sig in groups.items()]


def _shortcut(path: str) -> bool:
    return bool(SHORTCUT_WORDS & {re.sub(r"\d+$", "", w) for w in re.split(r"[._]", path)})


def map_state_dict(theirs: dict, ours: dict, strict: bool = True) -> dict:
    """{their key: our key}, matching module by module (see the module docstring)."""
    if theirs and all(k.startswith("module.") for k in theirs):
        theirs = {k[len("module."):]: v for k, v in theirs.items()}
    their_mods, our_mods = _modules(theirs), _modules(ours)
    unused = list(range(len(their_mods)))
    pairs, missing = {}, []
    for prefix, sig in our_mods:
        cands = [i for i in unused if their_mods[i][1] == sig]
        if not cands:
            missing.append(f"{prefix} {_fmt(sig)}")
            continue
        short = _shortcut(prefix)
        best = min(cands, key=lambda i: (_shortcut(their_mods[i][0]) != short, i))
        unused.remove(best)
        pairs[their_mods[best][0]] = prefix
    extra = [f"{their_mods[i][0]} {_fmt(their_mods[i][1])}" for i in unused]
    if missing or (extra and strict):
        lines = [f"  ours, unmatched: {m}" for m in missing[:8]] + [f"  theirs, unmatched: {e}" for e in extra[:8]]
        more = len(missing) + len(extra) - len(lines)
        raise CnnError(f"the state_dict does not match this network: {len(missing)} of our modules and "
                       f"{len(extra)} of its modules have no counterpart\n" + "\n".join(lines)
                       + (f"\n  ... and {more} more" if more > 0 else ""),
                       hint="the structure must match module by module (same tensors and shapes, same order)")
    out = {}
    for their_prefix, our_prefix in pairs.items():
        for key in theirs:
            p, _, leaf = key.rpartition(".")
            if p == their_prefix:
                out[key] = f"{our_prefix}.{leaf}" if our_prefix else leaf
    return {k: out[k] for k in theirs if k in out}


def _fmt(sig):
    return "(" + ", ".join(f"{n} {'x'.join(map(str, s)) or 'scalar'}" for n, s in sig) + ")"


def mapping_digest(mapping: dict) -> str:
    """A short fingerprint of a key mapping, for committed test data."""
    text = "\n".join(f"{a}\t{b}" for a, b in mapping.items())
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# ---- loading into a module --------------------------------------------------------------------------
def load_into(module, source, strict: bool = True) -> dict:
    """Load a checkpoint path or state_dict into `module` (a to_torch() or compiled-source module).

    cnndsl keys load as they are; otherwise they are mapped as a torchvision-style state_dict.
    Returns {"source": "cnndsl" | "mapped", "tensors": n, "mapping": {their key: our key}}."""
    sd = load(source) if isinstance(source, (str, os.PathLike)) else dict(source)
    if sd and all(k.startswith("module.") for k in sd):  # saved from DataParallel
        sd = {k[len("module."):]: v for k, v in sd.items()}
    ours = module.state_dict()
    if set(sd) == set(ours):
        _check_shapes(sd, ours)
        module.load_state_dict(sd, strict=True)
        return {"source": "cnndsl", "tensors": len(sd), "mapping": {k: k for k in sd}}
    mapping = map_state_dict(sd, ours, strict=strict)
    renamed = {mapping[k]: sd[k] for k in mapping}
    module.load_state_dict(renamed, strict=True)
    return {"source": "mapped", "tensors": len(renamed), "mapping": mapping}


def _check_shapes(sd, ours):
    bad = [f"{k}: file {tuple(sd[k].shape)}, network {tuple(v.shape)}" for k, v in ours.items()
           if tuple(sd[k].shape) != tuple(v.shape)]
    if bad:
        raise CnnError(f"{len(bad)} tensors have other shapes than this network's:\n  " + "\n  ".join(bad[:8]),
                       hint="the checkpoint was saved from a different spec (or other -D / --input values)")
