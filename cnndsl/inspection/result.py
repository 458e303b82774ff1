"""What an inspection returns: arrays (the numbers), figures (JSON-able values), notes (how the inputs
were prepared), and the picture drawn from them.

    >>> r = Result("demo", {"map": np.eye(2)}, {"score": 0.5}, ["a note"], lambda r: None)
    >>> r["map"].shape, r["score"], r.json()["values"]
    ((2, 2), 0.5, {'score': 0.5})

`r.save(path)` writes the picture (.png, .pdf, .svg) or the arrays (.npz), atomically; `r.json()` is
what `--format json` prints (arrays up to JSON_ELEMENTS values each, rounded to 6 digits).
"""
from __future__ import annotations

import io
import math

import numpy as np

from ..errors import CnnError
from ..files import atomic_write

JSON_ELEMENTS = 200_000  # larger arrays are left out of the JSON (their shape is given): -o OUT.npz has them


class Result:
    def __init__(self, what, arrays, values, notes, draw, table=None):
        self.what, self.arrays, self.values, self.notes = what, arrays, values, list(notes)
        self._draw, self._table = draw, table

    def __getitem__(self, key):
        return self.arrays[key] if key in self.arrays else self.values[key]

    def __contains__(self, key):
        return key in self.arrays or key in self.values

    def figure(self):
        """The picture, a matplotlib Figure (object API, Agg canvas: no display, no pyplot state)."""
        return self._draw(self)

    def table(self) -> str:
        """The figures as text, for a terminal."""
        if self._table is not None:
            return self._table(self)
        return "".join(f"{k}: {_text(v)}\n" for k, v in self.values.items())

    def json(self) -> dict:
        arrays = {}
        for k, a in self.arrays.items():
            a = np.asarray(a)
            if a.size > JSON_ELEMENTS:
                arrays[k] = {"shape": list(a.shape), "omitted": f"over {JSON_ELEMENTS:,} values: -o OUT.npz has it"}
            else:
                arrays[k] = _rounded(a)
        return {"schema": "cnndsl.inspect/1", "what": self.what, "values": self.values, "arrays": arrays,
                "notes": self.notes}

    def save(self, path) -> str:
        """Write the picture (.png, .pdf, .svg) or the arrays (.npz), atomically; returns the path."""
        path = str(path)
        ext = path.rsplit(".", 1)[-1].lower() if "." in path else ""
        if ext == "npz":
            buf = io.BytesIO()
            np.savez_compressed(buf, **{k: np.asarray(v) for k, v in self.arrays.items()})
            atomic_write(path, buf.getvalue())
            return path
        if ext not in ("png", "pdf", "svg"):
            raise CnnError(f"-o {path}: write a picture (.png, .pdf, .svg) or the arrays (.npz)", usage=True)
        from .figures import render
        atomic_write(path, render(self.figure(), ext))
        return path


def _rounded(a):
    if a.dtype.kind in "biu":  # booleans and integers as they are
        return a.tolist()
    flat = [None if not math.isfinite(v) else float(f"{v:.6g}") for v in a.astype(np.float64).ravel().tolist()]
    return np.array(flat, dtype=object).reshape(a.shape).tolist() if a.ndim else flat[0]


def _text(v):
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, (list, tuple)):
        return ", ".join(_text(x) for x in v)
    return str(v)
