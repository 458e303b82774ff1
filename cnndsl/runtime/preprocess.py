"""`cnndsl run --input`: an image or an array made into what the model was trained on, and the
classes it gives.

The model's metadata says what its input must be (cnndsl.backends.onnx_preprocessing: the
training data's per-channel mean and std, whether the graph applies them itself). An image is
read as training read a folder of images (cnndsl.train.data: Pillow, converted to L or RGB,
resized bilinear, pixel values 0..255); an array is taken in the training data's units. Both
are then normalised as the record says, and compared with what training saw: an input whose
values are far from it (0..255 pixels for a net trained on 0..1, or the reverse) gets a warning,
since the net would answer anyway, wrongly.

    >>> r = {"normalization": "recorded", "mean": [4.9], "std": [6.0], "source": "digits", "in_graph": None}
    >>> range_warning(np.linspace(0, 255, 64, dtype=np.float32).reshape(1, 1, 8, 8), r)[:58]
    'the input has values 0..255 (mean 128), far from the data '
    >>> range_warning(np.linspace(0, 16, 64, dtype=np.float32).reshape(1, 1, 8, 8), r) is None
    True
"""
from __future__ import annotations

import json
import os

import numpy as np

from ..errors import CnnError
from ..train.data import IMAGE_EXTENSIONS  # what an image folder for training may hold (torch-free)
SHOWN = 8  # samples whose top classes are printed


def is_image(path) -> bool:
    return isinstance(path, (str, os.PathLike)) and os.fspath(path).lower().endswith(IMAGE_EXTENSIONS)


def read_image(path, dims) -> np.ndarray:
    """(1, C, H, W) float32 for a model input of `dims` (N, C, H, W): pixel values 0..255, read as
    training reads image folders (cnndsl.train.data.pixels: 16-bit images scaled, not clipped)."""
    from PIL import UnidentifiedImageError
    if len(dims) != 4 or dims[1] not in (1, 3) or None in dims[2:]:
        raise CnnError(f"{path} is an image, but the model's input is {_fmt(dims)}, not 1 or 3 channels of a "
                       "fixed size", usage=True, hint="give an array: --input x.npy")
    c, h, w = dims[1:]
    from ..files import user_image
    from ..train.data import pixels
    try:
        with user_image(path, "--input", c) as img:
            x, _ = pixels(img, path, h, w, c)
    except (OSError, UnidentifiedImageError, ValueError) as e:
        raise CnnError(f"{path}: not an image Pillow can read ({e})", usage=True) from None
    return np.ascontiguousarray(x.reshape(h, w, c).transpose(2, 0, 1)[None])


def _fmt(dims):
    return "x".join("?" if d is None else str(d) for d in dims)


# ---- the model's record ---------------------------------------------------------------------------
def record_of(session):
    """(preprocessing record or None, class names or None) from the model's metadata."""
    from ..backends.onnx_preprocessing import CLASSES, KEY
    meta = session.get_modelmeta().custom_metadata_map
    return _json(meta.get(KEY)), _json(meta.get(CLASSES))


def _json(text):
    try:
        return json.loads(text) if text else None
    except ValueError:
        return None


def prepare(x, r, image: bool, normalize: bool = True):
    """(what to feed the model, one line saying what was done, a warning or None). `x`: an image's
    pixel values, or an array in the training data's units (0..1 for a model that normalises "unit")."""
    if r is None or r.get("normalization") != "recorded":
        why = r["feed"] if r else "the model records no input normalisation (not a cnndsl export)"
        return x, f"no, fed as given ({why})", None
    if not normalize:
        return x, "no, fed as given (--no-normalize)", None
    k = float(r.get("input_scale", 1.0))
    mean, std = _per_channel(r["mean"], x), _per_channel(r["std"], x)
    if r.get("in_graph"):
        raw, fed = (x, x / k) if image else (x * k, x)
        how = f"in the graph (x / {k:g} fed)" if image and k != 1 else "in the graph (fed as given)"
    else:
        raw, fed = x, (x - mean) / std
        how = "(x - mean) / std here"
    stats = f"mean {_nums(r['mean'])}, std {_nums(r['std'])} of {r.get('source')}"
    return np.ascontiguousarray(fed, dtype=np.float32), f"{how}, with the recorded {stats}", range_warning(raw, r)


def _per_channel(values, x):
    v = np.asarray(values, np.float32)
    return v.reshape(1, -1, *([1] * (x.ndim - 2))) if x.ndim > 2 and v.size > 1 else v.reshape(())


def _nums(values):
    return ", ".join(f"{v:.4g}" for v in values)


def range_warning(raw, r) -> str | None:
    """A sentence when `raw` (in the training data's units) is far from the data training saw: its
    recorded range where there is one, else its mean and std (per channel: the input's mean more
    than 3 stds away, or a spread more than 10 times larger or smaller)."""
    lo, hi, mu = float(raw.min()), float(raw.max()), float(raw.mean())
    seen = f"values {lo:.3g}..{hi:.3g} (mean {mu:.3g})"
    if r.get("range"):
        a, b = r["range"]
        span = b - a or 1.0
        far = hi > b + span or lo < a - span or (hi - lo) < span / 25
        trained = f"values {a:.4g}..{b:.4g}"
    else:
        mean, std = _per_channel(r["mean"], raw), _per_channel(r["std"], raw)
        axes = (0, *range(2, raw.ndim)) if raw.ndim > 2 and np.size(mean) > 1 else None
        z_mean = np.abs((raw.mean(axis=axes) - mean.reshape(-1)) / std.reshape(-1))
        spread = raw.std(axis=axes) / std.reshape(-1)
        far = bool((z_mean > 3).any() or (spread > 10).any() or (spread < 0.1).any())
        trained = f"mean {_nums(r['mean'])}, std {_nums(r['std'])}"
    if not far:
        return None
    return (f"the input has {seen}, far from the data the model was trained on ({r.get('source')}: {trained}); "
            "its answers mean little: give data in the training data's units (an image file is read as "
            "0..255 pixel values; --no-normalize feeds an array that is normalised already)")


# ---- the answer -----------------------------------------------------------------------------------
def top_classes(y, names=None, k=5):
    """[(label, probability), ...] per sample (the first SHOWN) for a classifier's output (N, K),
    or None for any other output; a softmax is taken unless the rows are probabilities already."""
    y = np.asarray(y, np.float64)
    if y.ndim > 2 and all(d == 1 for d in y.shape[2:]):
        y = y.reshape(y.shape[:2])
    if y.ndim != 2 or y.shape[1] < 2:
        return None
    y = y[:SHOWN]
    if not ((y >= 0).all() and np.allclose(y.sum(1), 1, atol=1e-4)):
        e = np.exp(y - y.max(1, keepdims=True))
        y = e / e.sum(1, keepdims=True)
    labels = names if names and len(names) == y.shape[1] else [str(i) for i in range(y.shape[1])]
    order = np.argsort(-y, axis=1, kind="stable")[:, :k]
    return [[(labels[j], float(row[j])) for j in idx] for row, idx in zip(y, order)]
