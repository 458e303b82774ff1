"""What a checkpoint's metadata records of its training, read and checked in one place (no torch).

    >>> value({"data": '{"source": "digits", "classes": ["0", "1"], "mean": [4.9], "std": [6.0]}'}, "data", "ck")["std"]
    [6.0]
    >>> try:
    ...     value({"data": '{"source": "digits", "classes": ["0", "1"], "mean": [4.9], "std": [0]}'}, "data", "ck")
    ... except CnnError as e:
    ...     print(e.message)
    ck: its metadata `data` is malformed: the normalisation (mean [4.9], std [0]) is not a list of finite means and one of stds above 0, one each per channel

`cnndsl train` writes JSON values under string keys of a safetensors file's metadata; eval, export,
`--init` and `--resume` read them back (cnndsl.train.checkpoint.recorded, the ONNX export's
preprocessing record). A value that is not JSON, or not of its key's form (a hand-edited or damaged
file), is a CnnError naming the file and the key, never a KeyError or a TypeError later on.
`checks` maps a key to the function that checks (and returns) its value; cnndsl.train.checkpoint
adds the training keys (options, layers, epoch).

    data    {source, classes, mean, std, range, path, samples}: cnndsl.train.data.Data.info
"""
from __future__ import annotations

import json
import math

from .errors import CnnError

EDITED = "was the file edited? retrain, or take only its tensors (export --weights, --init)"


def value(meta: dict, key: str, where: str, checks: dict | None = None):
    """The JSON value of `key` in `meta` ({str: str}), checked; None where there is none."""
    raw = meta.get(key)
    if not raw:
        return None
    try:
        v = json.loads(raw)
    except ValueError:
        raise CnnError(f"{where}: its metadata `{key}` is not JSON: {raw[:60]!r}", hint=EDITED) from None
    check = {**CHECKS, **(checks or {})}.get(key)
    return check(v, where) if check is not None and v is not None else v


def bad(where, key, what):
    raise CnnError(f"{where}: its metadata `{key}` is malformed: {what}", hint=EDITED)


def numbers(v) -> bool:
    """A list of finite numbers (JSON's NaN and Infinity are not)."""
    return isinstance(v, list) and all(isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)
                                       for x in v)


def data_info(d, where):
    if not isinstance(d, dict):
        bad(where, "data", f"not a table but {str(d)[:40]}")
    if not isinstance(d.get("source"), str):
        bad(where, "data", "no data source")
    if not (isinstance(d.get("classes"), list) and d["classes"] and all(isinstance(c, str) for c in d["classes"])):
        bad(where, "data", "classes are not a list of names")
    if not (numbers(d.get("mean")) and numbers(d.get("std")) and len(d["mean"]) == len(d["std"]) >= 1
            and min(d["std"]) > 0):
        bad(where, "data", f"the normalisation (mean {str(d.get('mean'))[:40]}, std {str(d.get('std'))[:40]}) is not "
                           f"a list of finite means and one of stds above 0, one each per channel")
    span = d.get("range")
    if span is not None and not (numbers(span) and len(span) == 2 and span[0] <= span[1]):
        bad(where, "data", f"the value range {str(d['range'])[:40]} is not [min, max]")
    if d.get("path") is not None and not isinstance(d["path"], str):
        bad(where, "data", "its path is not text")
    if d.get("samples") is not None and not (isinstance(d["samples"], int) and d["samples"] >= 0):
        bad(where, "data", "its sample count is not a whole number")
    return d


CHECKS = {"data": data_info}
