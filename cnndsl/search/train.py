"""Accuracy, not only cost: a search's members trained one after another, their accuracy added.

    >>> import cnndsl
    >>> from cnndsl.search.enumerate import search
    >>> from cnndsl.search.space import Space
    >>> space = Space(cnndsl.parse("input 8x8x1\\nlet C = 2 in 2, 4\\nCONV(C, 3, p=1) - RELU - POOL - FC(10)"))
    >>> r = search(space)
    >>> t = train_members(space, r["members"], "digits", epochs=1, device="cpu")
    >>> t["trained"], t["failed"], all(0.5 < m["val_acc"] <= 1 for m in r["members"])
    (2, 0, True)

`train_members(space, records, data, out=None, resume=False, callback=None, **options)` trains each
record's member (the text `search --emit` writes, so a member trained here is the file trained by
`cnndsl train` with the same options, seed and --threads, to the bit on a CPU) with cnndsl.train.train, and adds
to the record, in place: `val_acc`, `val_loss`, `train_acc`, `train_loss`, `epochs_trained`,
`train_seconds` (and `file`, `train_dir` with `out`), or `train_error` (one line) for a member that
failed. The search's `members` and `pareto` lists hold the same dicts, so both gain the columns.

Which members: `select(result, "front")` (the Pareto front of the search's two measures, cheapest
first: the design study's candidates) or `"top"` (the listed best --top by --sort).

Failures: a member whose training fails (its output does not match the data's classes: a CnnError;
torch runs out of memory: a RuntimeError) is recorded and the next one trains. A usage error (unknown data, data whose volume
does not fit the family's input, a bad option: the same for every member) stops the run: it is raised.
Ctrl-C (KeyboardInterrupt) stops it too, keeping what is done: the result says `interrupted`.

`out`: each member as OUT/NAME.net and its run in OUT/NAME/ (cnndsl train's files: metrics.jsonl,
checkpoint.safetensors, weights.safetensors, curves.png, spec.net, run.json, each written atomically
every epoch), and OUT/training.json (the summary, rewritten atomically after every member).
`resume=True` continues each member's run from its checkpoint (a finished one is read, not retrained);
`overwrite=True` replaces them. Without either, a member's folder that holds a run is refused before
any member trains, and each member's run holds its folder's lock while it trains (cnndsl.outputs).

Nothing prints: `callback(event)` receives "plan" (what will train), "member_start", every event of
cnndsl.train.train with "member" (1-based) and "members" added, and "member_end" (the record, and the
rendered error of a failure).
"""
from __future__ import annotations

import json
import os

from ..errors import CnnError
from . import emit as W

WHICH = ("front", "top")
SUMMARY = "training.json"
SCHEMA = "cnndsl.search-train/1"
FIELDS = ("val_acc", "val_loss", "train_acc", "train_loss", "epochs_trained", "train_seconds")


def select(result: dict, which: str = "front") -> list:
    """The records to train: the Pareto front ("front") or the listed members ("top")."""
    if which == "front":
        return result["pareto"]
    if which == "top":
        return result["members"]
    raise CnnError(f"--train-on {which}: choose {' or '.join(WHICH)}", usage=True, code="E501")


def trained_records(result) -> list:
    """The records `search --train` trained (an accuracy, or a failure), each once, in list order."""
    seen, out = set(), []
    for r in result["members"] + result["pareto"]:
        if r["index"] not in seen and ("epochs_trained" in r or "train_error" in r):
            seen.add(r["index"])
            out.append(r)
    return out


def accuracy_key(result) -> str:
    """val_acc, or train_acc where --val 0 left no validation split."""
    t = result.get("training") or {}
    return "train_acc" if t.get("options", {}).get("val_fraction", 0.2) == 0 else "val_acc"


def check_options(data, **options) -> dict:
    """The training options resolved (cnndsl.train.options), or the usage error a bad one gives: worth
    knowing before a search runs."""
    from ..train import options as O
    return O.resolve({**options, "data": os.fspath(data), "world_size": 1})


def train_members(space, records, data, *, out=None, resume=False, overwrite=False, callback=None, include_dirs=(),
                  **options) -> dict:
    """Train `records` (from cnndsl.search.enumerate.search) in order; see the module docstring.
    Returns {"schema", "source", "data", "options", "selected", "trained", "failed", "interrupted",
    "data_preparation", "members": a summary row per record, "files"}."""
    emit = callback or (lambda event: None)
    data = os.fspath(data)
    o = check_options(data, **options)
    if resume and out is None:
        raise CnnError("--resume continues the members' runs in --emit DIR: give the folder", usage=True,
                       code="E501")
    if overwrite and out is None:
        raise CnnError("--overwrite replaces the members' runs in --emit DIR: give the folder", usage=True)
    program = space.program
    folder = os.path.dirname(os.path.abspath(program.path)) if not program.path.startswith("<") else None
    dirs = (*include_dirs, folder) if folder else tuple(include_dirs)
    summary = {"schema": SCHEMA, "source": program.path, "data": data, "options": o, "selected": len(records),
               "trained": 0, "failed": 0, "left": len(records), "interrupted": False, "data_preparation": None,
               "members": [], "files": []}
    files = check_folders(space, records, out, resume, overwrite)
    emit({"event": "plan", "members": len(records), "options": o, "data": data})
    if out is not None:
        os.makedirs(out, exist_ok=True)
    n = len(records)
    try:
        for i, (r, file) in enumerate(zip(records, files), 1):
            emit({"event": "member_start", "member": i, "members": n, "record": r})
            rendered = _train_one(file, r, data, out, resume, overwrite, dirs, summary, options,
                                  lambda e, i=i: emit({**e, "member": i, "members": n}))
            summary["trained" if "train_error" not in r else "failed"] += 1
            summary["members"].append(_row(r))
            summary["left"] = n - i
            if out is not None:
                _write_summary(out, summary)
            emit({"event": "member_end", "member": i, "members": n, "record": r, "error": rendered})
    except KeyboardInterrupt:  # Ctrl-C: what is done stays done (and on disk, with out)
        summary["interrupted"] = True
    if out is not None:
        summary["files"].append(_write_summary(out, summary))
    return summary


def check_folders(space, records, out, resume=False, overwrite=False) -> list[tuple[str, str]]:
    """The (file name, text) of each record's member, once every member's file may be written to
    `out` (cnndsl.outputs.check_target) and no member's run folder there holds a run, unless `resume`
    or `overwrite`: checked before anything is written or trains (one refusal, not a refusal at the
    second member after the first member's run was replaced)."""
    from ..outputs import check_run_folder, run_files
    files = W.member_files(space.program, space, [r["index"] for r in records])
    if out is None:
        return files
    names = [name for name, _ in files]
    W.check_member_targets(out, space.program, names)
    held = []
    for name in names:
        run = os.path.join(out, os.path.splitext(name)[0])
        check_run_folder(run, resume=True)  # a file where the folder goes, or a spec.net no run wrote
        if run_files(run):
            held.append(os.path.basename(run))
    if held and not (resume or overwrite):
        raise CnnError(f"--emit {out} holds the runs of {len(held)} of these members ({', '.join(held[:3])}"
                       f"{', ...' if len(held) > 3 else ''}): training would replace their checkpoints and metrics",
                       usage=True, hint="--resume continues them, --overwrite replaces them; or emit into another folder")
    return files


def _train_one(file, r, data, out, resume, overwrite, dirs, summary, options, callback):
    """Train one record's member; return the rendered error of a failure (None when it trained)."""
    from ..net import loads
    from ..train import train
    name, text = file
    path, run = name, None
    if out is not None:
        from ..files import atomic_write
        path, run = os.path.join(out, name), os.path.join(out, os.path.splitext(name)[0])
        atomic_write(path, text.encode("utf-8"))
        r["file"], r["train_dir"] = path, run
    try:
        net = loads(text, path=path, include_dirs=dirs)
        result = train(net, data, out=run, resume=resume, overwrite=overwrite, callback=callback, **options)
    except CnnError as e:
        if e.usage:  # the command's or the data's fault, the same for every member
            raise
        r["train_error"] = e.message
        return e.render()
    except (RuntimeError, MemoryError) as e:  # torch's own failures (out of memory, a device error)
        _free_device()
        r["train_error"] = f"{type(e).__name__}: {e}".splitlines()[0]
        return r["train_error"]
    _record(r, result)
    summary["data_preparation"] = summary["data_preparation"] or result["data"]
    summary["files"] += result["files"]
    return None


def _free_device():
    """After a failure on a GPU (out of memory, mostly), give its cached blocks back for the next member."""
    import torch
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.empty_cache()


def _record(r, result):
    final = result["final"] or {}
    r.update(val_acc=final.get("val_acc"), val_loss=final.get("val_loss"), train_acc=final.get("train_acc"),
             train_loss=final.get("train_loss"), epochs_trained=final.get("epoch", 0),
             train_seconds=sum(row["seconds"] for row in result["history"]))
    r.pop("train_error", None)


def _row(r) -> dict:
    keep = ("index", "bindings", "params", "macs", "memory", "depth", "rf", *FIELDS, "train_error", "file", "train_dir")
    return {k: r[k] for k in keep if k in r}


def _write_summary(out, summary) -> str:
    from ..files import atomic_write
    path = os.path.join(out, SUMMARY)
    body = {k: v for k, v in summary.items() if k != "files"}
    atomic_write(path, (json.dumps(body, indent=1, default=str) + "\n").encode("utf-8"))
    return path
