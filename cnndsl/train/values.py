"""The one place the numbers of training data are checked and converted (numpy, no torch).

    >>> import numpy as np
    >>> x, y, notes = arrays(np.arange(8, dtype=np.uint16).reshape(4, 2), np.array([0, 1, 0, 1]), "d.npz")
    >>> x.dtype, notes
    (dtype('float32'), ['x: uint16 values read as float32, unchanged'])
    >>> try:
    ...     finite(np.array([[0.0, np.nan], [1.0, 2.0]], np.float32), "d.npz")
    ... except CnnError as e:
    ...     print(e.message)
    d.npz: 1 NaN value (first in sample 0 of 2): training on it would give NaN weights

What every source of data.load goes through:
  arrays (.npz)   x: bool, integers and floats become float32 with their values (bool as 0/1); complex,
                  strings and records are refused, and so are float values beyond float32's range (they
                  would become inf). y: one label per sample, integers, strings, bools or whole floats;
                  NaN or inf labels are refused
  images          see data._pixels: 8-bit images as Pillow converts them (0..255), 16-bit ones scaled to
                  0..255, 32-bit integer and float ones with their own values
  every source    NaN or inf values are refused, naming the first sample (`finite`); a training split in
                  which every value is the same is refused (nothing to learn), a constant channel is
                  divided by 1 instead of its std of 0, and said (`spread`); values that overflow when
                  normalised are refused (`finite` again, after it)
Each refusal is a usage error (exit 2) that names the data, says what it found, and what to do.
"""
from __future__ import annotations

import math

import numpy as np

from ..errors import CnnError

FLOAT32_MAX = float(np.finfo(np.float32).max)
CHUNK = 4096  # samples checked at a time: a boolean mask of the whole set would cost a quarter of its size


def arrays(x, y, what):
    """(x as float32, y, notes) of a .npz's arrays, or a CnnError saying what is wrong with them."""
    if x.ndim < 2 or y.ndim != 1 or len(y) != len(x) or len(x) < 2:
        raise CnnError(f"{what}: x must hold samples and y one label per sample (x {x.shape}, y {y.shape})",
                       usage=True, hint="x of shape (N,H,W,C), (N,C,H,W), (N,H,W) or (N,F), y of shape (N,), N >= 2")
    labels(y, what)
    if x.dtype.kind not in "biuf":
        raise CnnError(f"{what}: x must hold real numbers (bool, integers or floats), not {x.dtype}", usage=True,
                       hint="complex values: pass their magnitude or split real and imaginary parts into channels")
    if x.dtype == np.float32:
        return x, y, []
    with np.errstate(over="ignore"):
        x32 = x.astype(np.float32)
    if x.dtype.kind == "f" and x.dtype.itemsize > 4:
        _fits_float32(x, x32, what)
    how = "0 and 1" if x.dtype == bool else "unchanged"
    note = f"x: {x.dtype} values read as float32, {how}"
    if x.dtype.kind in "iu" and x.dtype.itemsize > 2 and x.size and max(abs(int(x.min())), abs(int(x.max()))) > 2 ** 24:
        note += " (integers beyond 2^24 rounded to float32's 24-bit precision)"
    return x32, y, [note]


def _fits_float32(x, x32, what):
    for i in range(0, len(x), CHUNK):
        over = np.isfinite(x[i:i + CHUNK]) & ~np.isfinite(x32[i:i + CHUNK])
        if over.any():
            j = i + int(np.flatnonzero(over.reshape(len(over), -1).any(axis=1))[0])
            big = float(np.abs(x[j][np.isfinite(x[j])]).max())
            raise CnnError(f"{what}: x holds {big:.4g} (sample {j}), beyond float32's range ({FLOAT32_MAX:.4g})",
                           usage=True, hint="training computes in float32: rescale the data (values near 0..1 or "
                                            "0..255 train best)")


def labels(y, what):
    if y.dtype.kind not in "biuUSf":
        raise CnnError(f"{what}: y must hold labels (integers, strings or bools), not {y.dtype}", usage=True)
    if y.dtype.kind == "f":
        bad = ~np.isfinite(y)
        if bad.any():
            raise CnnError(f"{what}: {int(bad.sum())} of the labels in y are NaN or inf (first: sample "
                           f"{int(np.flatnonzero(bad)[0])})", usage=True, hint="every sample needs a class")


def finite(x, what, after=None):
    """Refuse NaN or inf in x (samples along the first axis), naming the first sample that holds one.
    `after`: what produced x ("normalisation"), when the raw values were finite."""
    for i in range(0, len(x), CHUNK):
        ok = np.isfinite(x[i:i + CHUNK])
        if ok.all():
            continue
        j = i + int(np.flatnonzero(~ok.reshape(len(ok), -1).all(axis=1))[0])
        if after:
            raise CnnError(f"{what}: {after} overflows to inf or NaN (first in sample {j})", usage=True,
                           hint="rescale the data: its values are too large or too close together for float32")
        nan, inf = _count(x, np.isnan), _count(x, np.isinf)
        found = " and ".join(f"{n} {name}" for n, name in ((nan, "NaN"), (inf, "inf")) if n)
        found += " value" if nan + inf == 1 else " values"
        at = f" (first in sample {j} of {len(x)})" if len(x) > 1 else ""
        raise CnnError(f"{what}: {found}{at}: training on it would give NaN weights",
                       usage=True, hint="drop those samples, or replace the values (numpy.nan_to_num) before training")


def _count(x, test) -> int:
    return sum(int(test(x[i:i + CHUNK]).sum()) for i in range(0, len(x), CHUNK))


def spread(value_range, std, what) -> tuple[list, list]:
    """(std to divide by, notes): a training split whose values are all one number is refused; a
    channel that is constant (std 0) is divided by 1, and the notes say so."""
    lo, hi = value_range
    if lo == hi:
        raise CnnError(f"{what}: every value of the training split is {lo:.6g}: there is nothing to learn from",
                       usage=True, hint="are the images blank, or saturated by a conversion? check the data "
                                        "(values 0..255 or 0..1 per image)")
    constant = [c for c, s in enumerate(std) if not s > 0]
    notes = []
    if constant:
        which = ", ".join(map(str, constant[:8])) + (" ..." if len(constant) > 8 else "")
        notes.append(f"channel{'s' if len(constant) > 1 else ''} {which} constant in the training split: "
                     f"divided by 1 instead of a std of 0")
    return [float(s) if s > 0 else 1.0 for s in std], notes


def normalisation(mean, std, channels, what):
    """Refuse a normalisation (a checkpoint's) that cannot apply to `channels` input channels."""
    if len(mean) != channels or len(std) != channels:
        raise CnnError(f"{what} has {len(mean)} means and {len(std)} stds, but the network's input has "
                       f"{channels} channel{'s' if channels != 1 else ''}", usage=True,
                       hint="the checkpoint was trained with another input: evaluate it with its own spec")
    if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in (*mean, *std)) or min(std) <= 0:
        raise CnnError(f"{what} is not usable: means {mean}, stds {std} (finite numbers, stds above 0)", usage=True)
