"""Datasets as arrays, fitted to a net's input, split and normalised: nothing downloaded, no torch.

    >>> import cnndsl
    >>> d = load("digits", cnndsl.loads("input 16x16x1\\nCONV(4, 3) - FC(10)").graph, seed=0)
    >>> d.x_train.shape, d.x_val.shape, len(d.classes)
    ((1438, 1, 16, 16), (359, 1, 16, 16), 10)

DATA is one of
  digits          scikit-learn's bundled 8x8 handwritten digits (1,797 images, 10 classes), resized
                  (bilinear) to 3/4 of the net's input side and centred on a zero margin (a side under
                  16: resized to fill it), repeated over 3 channels for a colour net
  synthetic[:N]   N (default 2,048, fewer for large inputs) generated images of the net's input volume,
                  one smooth random pattern per class plus noise: learnable, for smoke tests and benchmarks
  FOLDER          one sub-folder per class of images Pillow reads, resized to the net's input, converted
                  to grayscale or RGB as the net's channels ask
  FILE.npz        arrays `x` (N,H,W,C), (N,C,H,W), (N,H,W) or (N,F) and `y` (N,) labels; they must fit
Arrays come out NCHW float32 (or (N, F) for a vector input). The split is stratified and seeded
(`val_fraction` of every class), and the per-channel mean and std come from the training split
alone. `Data.description` states all of it, for the log.
"""
from __future__ import annotations

import functools
import gzip
import importlib.util
import math
import os
import tokenize
import zipfile
import zlib
from dataclasses import dataclass, field

import numpy as np

from ..errors import CnnError
from . import values as V
from ..files import npy_header, user_file, user_image
from ..memory import require

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
SYNTHETIC_BYTES = 256 * 2 ** 20  # the default synthetic set stays under this


@dataclass
class Data:
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    classes: list
    mean: list              # per channel, from the training split
    std: list
    source: str             # the DATA argument
    description: list = field(default_factory=list)  # what was done, one line each
    range: list = None      # [min, max] of the training split's values before normalisation

    def info(self) -> dict:
        """What eval needs to see data as training did, and to tell data of another scale (kept in the
        checkpoint's metadata and run.json): inputs are (raw - mean) / std per channel; raw values
        spanned `range`; `path` is a file or folder's real path (the source as given may be relative),
        `samples` how many it held (its split is rebuilt from them)."""
        return {"source": self.source, "classes": self.classes, "mean": self.mean, "std": self.std,
                "range": self.range, "path": where(self.source), "samples": len(self.y_train) + len(self.y_val)}


def named(source) -> bool:
    """digits and synthetic[:N] are names, not paths (a folder called digits is not read)."""
    return source == "digits" or source == "synthetic" or source.startswith("synthetic:")


def where(source) -> str | None:
    """A file or folder's real path (links resolved), or None for a named set."""
    return None if named(source) else os.path.realpath(source)


def same_source(info, source) -> bool:
    """Whether `source` is the data a checkpoint recorded (`info`): the same name, or the same file
    or folder however it is written (imgs, imgs/, ./imgs, a link to it)."""
    if not info:
        return False
    recorded = info.get("source")
    if named(source) or not isinstance(recorded, str) or named(recorded):
        return recorded == source
    return where(source) == (info.get("path") or os.path.realpath(recorded))


def load(source, graph, seed=0, val_fraction=0.2, normalise=None) -> Data:
    """Load DATA for a net's graph (input volume, output units). `normalise=(mean, std)` uses
    given statistics (a checkpoint's) instead of the training split's; `val_fraction=0` or 1
    keeps everything in one split."""
    source = os.fspath(source)
    shape = tuple(graph.input_shape)
    if source == "digits":
        x, y, classes, notes = _digits(shape)
    elif source == "synthetic" or source.startswith("synthetic:"):
        x, y, classes, notes = _synthetic(source, shape, _classes_of(graph), seed)
    elif not os.path.exists(source) and (source.endswith(".npz") or os.sep in source):
        raise CnnError(f"--data {source}: no such file or folder", usage=True,
                       hint="give a FOLDER with a sub-folder per class, a FILE.npz, digits or synthetic")
    elif os.path.isdir(source):
        x, y, classes, notes = _folder(source, shape)
    elif source.endswith(".npz"):
        x, y, classes, notes = _npz(source, shape)
    else:
        raise CnnError(f"--data {source}: not a dataset name, a folder of class folders, nor a .npz file",
                       usage=True, hint="use digits, synthetic, synthetic:N, a FOLDER with a sub-folder per class, "
                                        "or a FILE.npz with arrays x and y")
    check_classes(graph, len(classes), source, classes)
    V.finite(x, source)
    if not 0 <= val_fraction < 1:
        raise CnnError(f"the validation fraction must be in [0, 1), not {val_fraction}", usage=True)
    tr, va = split(y, val_fraction, seed)
    if normalise is None and not len(tr):
        raise CnnError(f"a validation fraction of {val_fraction:g} leaves none of the {len(y)} samples of {source} "
                       f"to train on", usage=True, hint="a smaller --val (the default 0.2), or more data")
    notes.append(f"split: {len(tr)} train / {len(va)} validation "
                 f"({val_fraction:.0%} of each class, seed {seed})")
    x_train, x_val = x[tr], x[va]
    seen = x_train if len(x_train) else x_val
    value_range = [float(seen.min()), float(seen.max())]
    notes.append(f"values: {value_range[0]:.4g}..{value_range[1]:.4g} before normalisation")
    if normalise is None:
        mean, std = _stats(x_train)
        std, constant = V.spread(value_range, std, source)
        notes += constant
        how = "from the training split"
    else:
        V.normalisation(normalise[0], normalise[1], x.shape[1] if x.ndim == 4 else 1, "the recorded normalisation")
        mean, std = [float(v) for v in normalise[0]], [float(v) for v in normalise[1]]
        how = "as recorded in the checkpoint"
    notes.append("normalised: mean " + ", ".join(f"{m:.4g}" for m in mean) + "; std " +
                 ", ".join(f"{s:.4g}" for s in std) + f" ({how})")
    x_train, x_val = _apply(x_train, mean, std), _apply(x_val, mean, std)
    V.finite(x_train, source, after="normalisation")
    V.finite(x_val, source, after="normalisation")
    return Data(x_train, y[tr], x_val, y[va], classes, mean, std, source, notes, value_range)


RANGE_FACTOR = 4  # spans this many times wider or narrower than training's are "far" (0..255 against 0..1)


def range_mismatch(recorded, observed, what) -> str | None:
    """A sentence when `observed` ([min, max] of raw values) is far from `recorded` (the training data's):
    a span over RANGE_FACTOR times wider or narrower, or values that lie mostly outside it; else None.

    >>> range_mismatch([0.0, 1.0], [0.0, 255.0], "training")
    'the values span 0..255, 255x as wide as the 0..1 of training'
    >>> range_mismatch([0.0, 16.0], [0.0, 15.9], "training") is None
    True
    """
    if not recorded or not observed:
        return None
    (r0, r1), (o0, o1) = recorded, observed
    tiny = 1e-12
    ratio = max(o1 - o0, tiny) / max(r1 - r0, tiny)
    centre = (o0 + o1) / 2
    if ratio > RANGE_FACTOR or ratio < 1 / RANGE_FACTOR:
        how = f"{ratio:.3g}x as wide as" if ratio > 1 else f"1/{1 / ratio:.3g} as wide as"
    elif not r0 - (r1 - r0) <= centre <= r1 + (r1 - r0):
        how = "far outside"
    else:
        return None
    return f"the values span {o0:.4g}..{o1:.4g}, {how} the {r0:.4g}..{r1:.4g} of {what}"


# ---- fitting ------------------------------------------------------------------------------------------
def output_units(graph):
    """(units, the node that gives them) of the net's output, skipping a final SOFTMAX."""
    node = graph[graph.output] if graph.output in graph else None
    while node is not None and node.kind.probabilities and node.inputs[0] != "input":
        node = graph[node.inputs[0]]
    shape = graph.shape_of(node.name if node else "input")
    if len(shape) == 3 and shape[:2] != (1, 1):
        return None, node
    return shape[-1], node


def _classes_of(graph) -> int:
    units, _ = output_units(graph)
    return units or 2


def check_classes(graph, n_classes, source, classes=()):
    units, node = output_units(graph)
    span = node.span if node is not None else None
    name = node.name if node is not None else "input"
    if units is None:
        shape = "x".join(map(str, graph.shape_of(name)))
        raise CnnError(f"the network ends in a {shape} volume (`{name}`), not in class scores", span,
                       hint=f"end it with FC({n_classes}), or GAP - FC({n_classes}), for the {n_classes} classes "
                            f"of {source}")
    if units != n_classes:
        shown = ", ".join(map(str, classes[:6])) + (" ..." if len(classes) > 6 else "")
        raise CnnError(f"{source} has {n_classes} classes ({shown}) but the network's output `{name}` has "
                       f"{units} units", span,
                       hint=f"give the last layer {n_classes} outputs (e.g. FC({n_classes})), or use data with "
                            f"{units} classes")


def _needs_volume(shape, source):
    if len(shape) != 3:
        raise CnnError(f"{source} holds images, but the network's input is a vector of {shape[0]}", usage=True,
                       hint="give the spec an image input (`input 32x32x1`) or use a .npz with x of shape (N, F)")


def _resize(images: np.ndarray, h: int, w: int) -> np.ndarray:
    """(N, h0, w0, C) float32 -> (N, h, w, C), bilinear (Pillow, per channel)."""
    from PIL import Image
    if images.shape[1:3] == (h, w):
        return images
    out = np.empty((len(images), h, w, images.shape[3]), np.float32)
    for i, img in enumerate(images):
        for c in range(images.shape[3]):
            out[i, :, :, c] = np.asarray(Image.fromarray(img[:, :, c], mode="F").resize((w, h), Image.BILINEAR))
    return out


def _channels(images: np.ndarray, c: int, source: str):
    have = images.shape[3]
    if have == c:
        return images, None
    if have == 1 and c == 3:
        return np.repeat(images, 3, axis=3), "the one gray channel repeated over 3"
    raise CnnError(f"{source} has {have}-channel images, but the network's input has {c} channels", usage=True,
                   hint=f"write the spec's input with {have} channels (`input HxWx{have}`) or use {c}-channel data")


def _nchw(images: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(images.transpose(0, 3, 1, 2), dtype=np.float32)


# ---- the sources -----------------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def digits_arrays():
    """(images (1797, 8, 8) float64, labels int64): scikit-learn's bundled digits.csv.gz read with numpy,
    the arrays load_digits() returns, without importing sklearn and scipy (~0.6-1.9 s). Read-only:
    cached for the process (search --train loads it once per member)."""
    spec = importlib.util.find_spec("sklearn")  # locates the package without importing it
    path = os.path.join(spec.submodule_search_locations[0], "datasets", "data", "digits.csv.gz") if spec else None
    if path is None or not os.path.exists(path):
        raise CnnError("--data digits: scikit-learn's bundled digits.csv.gz is not installed", usage=True,
                       hint="pip install scikit-learn (a dependency of cnndsl: it carries the digits)")
    with gzip.open(path, "rt") as f:
        table = np.loadtxt(f, delimiter=",")
    images, labels = table[:, :-1].reshape(-1, 8, 8), table[:, -1].astype(np.int64)
    images.flags.writeable = labels.flags.writeable = False
    return images, labels


def _digits(shape):
    images, labels = digits_arrays()  # bundled with scikit-learn: nothing is downloaded
    x, y = images.astype(np.float32), labels
    notes = [f"digits: scikit-learn's {len(x)} 8x8 grayscale handwritten digits (values 0..16), 10 classes"]
    if len(shape) == 1:
        if shape[0] != 64:
            raise CnnError(f"digits are 8x8 images (64 values), but the network's input is a vector of {shape[0]}",
                           usage=True, hint="write `input 64` for flat digits, or an image input such as `input 32x32x1`")
        notes.append("flattened to 64 values")
        return x.reshape(len(x), 64), y, [str(c) for c in range(10)], notes
    h, w, c = shape
    x, how = _fit_digits(x[..., None], h, w)
    if how:
        notes.append(how + f" for the network's {h}x{w}x{c} input")
    x, how = _channels(x, c, "digits")
    if how:
        notes.append(how)
    return _nchw(x), y, [str(c) for c in range(10)], notes


def fit_images(images: np.ndarray, shape, source) -> tuple[np.ndarray, list]:
    """Raw images (N, h, w, C) onto a net's HxWxC input as training fitted the samples of `source`
    (what one looks at, `cnndsl inspect --image`): an 8x8 image of a net trained on digits as `--data
    digits` placed them, any other size resized bilinear as an image folder's were, one gray channel
    repeated for a colour net. Returns NCHW float32 and what was done, one line each."""
    h, w, c = shape
    notes = []
    if images.shape[1:3] != (h, w):
        if source == "digits" and images.shape[1:3] == (8, 8):
            images, how = _fit_digits(images, h, w)
            notes.append(how + " (as --data digits placed the training digits)")
        else:
            notes.append(f"resized {images.shape[1]}x{images.shape[2]} -> {h}x{w} (bilinear, as training "
                         "resized image folders)")
            images = _resize(np.ascontiguousarray(images, np.float32), h, w)
    images, how = _channels(images, c, "the image")
    if how:
        notes.append(how)
    return _nchw(images), notes


def _fit_digits(x, h, w):
    """8x8 digits onto an HxW canvas: from 16x16 up, resized to 3/4 of the side and centred on a zero
    margin (the digits' own background), as MNIST sits in LeNet-5's 32x32; smaller, resized to fill it."""
    if (h, w) == (8, 8):
        return x, None
    if min(h, w) < 16:
        return _resize(x, h, w), f"resized 8x8 -> {h}x{w} (bilinear)"
    ih, iw = round(0.75 * h), round(0.75 * w)
    top, left = (h - ih) // 2, (w - iw) // 2
    x = np.pad(_resize(x, ih, iw), ((0, 0), (top, h - ih - top), (left, w - iw - left), (0, 0)))
    return x, f"resized 8x8 -> {ih}x{iw} (bilinear) and centred in {h}x{w} on a zero margin"


def _synthetic(source, shape, k, seed):
    n = None
    if ":" in source:
        try:
            n = int(source.partition(":")[2])
        except ValueError:
            n = 0
        if n < 2 * k:
            raise CnnError(f"--data {source}: the count must be a whole number of at least {2 * k} "
                           f"(two per class)", usage=True)
    per = math.prod(shape) * 4
    if n is None:
        n = max(8 * k, min(2048, SYNTHETIC_BYTES // per))
    require_data(n, shape, f"--data {source}", hint="ask for fewer samples (synthetic:N)")
    rng = np.random.default_rng(seed)
    y = np.arange(n, dtype=np.int64) % k
    rng.shuffle(y)
    if len(shape) == 1:
        protos = rng.normal(size=(k, shape[0])).astype(np.float32)
        x = protos[y] + rng.normal(scale=1.0, size=(n, shape[0])).astype(np.float32)
    else:
        h, w, c = shape
        # smooth class patterns: a few low-frequency waves per channel
        yy, xx = np.meshgrid(np.linspace(0, 1, h, dtype=np.float32), np.linspace(0, 1, w, dtype=np.float32),
                             indexing="ij")
        freq = rng.uniform(0.5, 3.0, size=(k, c, 2, 2)).astype(np.float32)
        phase = rng.uniform(0, 2 * np.pi, size=(k, c, 2)).astype(np.float32)
        protos = np.zeros((k, c, h, w), np.float32)
        for j in range(2):
            protos += np.sin(2 * np.pi * (freq[:, :, j, :1, None] * yy + freq[:, :, j, 1:, None] * xx)
                             + phase[:, :, j, None, None])
        x = np.empty((n, c, h, w), np.float32)
        for i in range(0, n, 256):  # in chunks: the noise of a large set would double the memory
            m = min(n, i + 256) - i
            x[i:i + m] = protos[y[i:i + m]] + rng.normal(scale=1.0, size=(m, c, h, w)).astype(np.float32)
    notes = [f"synthetic: {n} generated {'x'.join(map(str, shape))} samples, {k} classes "
             f"(a smooth random pattern per class plus unit noise; seed {seed})"]
    return x, y, [str(c) for c in range(k)], notes


def _folder(root, shape):
    _needs_volume(shape, root)
    from PIL import Image, UnidentifiedImageError
    classes = sorted(d for d in _listdir(root) if os.path.isdir(os.path.join(root, d)) and not d.startswith("."))
    if len(classes) < 2:
        raise CnnError(f"{root}: an image folder needs a sub-folder per class (at least 2), found {len(classes)}",
                       usage=True, hint="lay it out as FOLDER/cat/1.jpg, FOLDER/dog/2.png, ...")
    h, w, c = shape
    mode = {1: "L", 3: "RGB"}.get(c)
    if mode is None:
        raise CnnError(f"{root}: images have 1 (grayscale) or 3 (RGB) channels, but the network's input has {c}",
                       usage=True, hint="write the spec's input as HxWx1 or HxWx3")
    require_data(sum(len(_images_in(os.path.join(root, d))) for d in classes), shape, f"--data {root}",
                 hint="use fewer images, or a smaller input")
    images, labels, sizes, modes, scales = [], [], set(), set(), {}
    for label, cls in enumerate(classes):
        folder = os.path.join(root, cls)
        files = _images_in(folder)
        if not files:
            raise CnnError(f"{folder}: no images ({', '.join(IMAGE_EXTENSIONS)})", usage=True)
        for f in files:
            path = os.path.join(folder, f)
            try:
                with user_image(path, "image", c) as img:
                    sizes.add(img.size)
                    modes.add(img.mode)
                    arr, scale = pixels(img, path, h, w, c)
                    scales.setdefault(scale, path)
            except (OSError, UnidentifiedImageError, ValueError) as e:
                raise CnnError(f"{path}: not an image Pillow can read ({e})", usage=True) from None
            images.append(arr.reshape(h, w, c))
            labels.append(label)
    notes = [f"{root}: {len(images)} images in {len(classes)} class folders ({', '.join(classes[:6])}"
             f"{' ...' if len(classes) > 6 else ''})"]
    if sizes != {(w, h)}:
        shown = ", ".join(f"{a}x{b}" for b, a in sorted((b, a) for a, b in sizes)[:4])
        notes.append(f"resized {shown}{' ...' if len(sizes) > 4 else ''} -> {h}x{w} (bilinear, Pillow)")
    converted = sorted(m for m in modes if m != mode and _depth(m) == "8-bit")
    if converted:
        notes.append(f"converted {', '.join(converted)} -> {mode}")
    notes.append(_scales_note(scales, root))
    return _nchw(np.stack(images)), np.asarray(labels, np.int64), classes, notes


DEPTHS = {"8-bit": "0..255", "16-bit": "0..65535, scaled by 1/257 to 0..255",
          "32-bit integer": "kept as they are", "float": "kept as they are"}


def pixels(img, path, h, w, c):
    """(HxWxC float32, the image's depth) of an open Pillow image: 8-bit modes as Pillow converts them
    to L or RGB; 16-bit ones (I;16...) scaled by 1/257 onto 0..255, where Pillow's conversion would clip
    them to 255 (two classes could become the same white image); 32-bit integer (I) and float (F) ones
    with their own values, NaN and inf refused. Pillow's deep modes are single-channel: gray, repeated
    for an RGB net."""
    from PIL import Image
    depth = _depth(img.mode)
    if depth == "8-bit":
        img = img.convert({1: "L", 3: "RGB"}[c])
        if img.size != (w, h):
            img = img.resize((w, h), Image.BILINEAR)
        return np.asarray(img, dtype=np.float32).reshape(h, w, c), depth
    arr = np.asarray(img).astype(np.float32)
    if depth == "16-bit":
        arr /= 257  # 65535 -> 255, exactly
    V.finite(arr[None], path)
    arr = _resize(arr[None, :, :, None], h, w)[0]
    return (np.repeat(arr, 3, axis=2) if c == 3 else arr), depth


def _depth(mode):
    if mode.startswith("I;16"):
        return "16-bit"
    return {"I": "32-bit integer", "F": "float"}.get(mode, "8-bit")


def _scales_note(scales, root):
    """The log's line on the pixel values; a folder mixing images of unrelated scales is refused (8-bit
    and 16-bit ones share 0..255)."""
    kinds = sorted(scales, key=list(DEPTHS).index)
    if len(set(kinds) - {"8-bit", "16-bit"}) and len(kinds) > 1:
        raise CnnError(f"{root} mixes {' and '.join(f'{k} images ({scales[k]})' for k in kinds)}: their values "
                       f"have no common scale", usage=True,
                       hint="convert them to one kind (e.g. 8-bit PNG, or float TIFF of one range)")
    if kinds == ["8-bit"]:
        return "pixel values 0..255"
    return "; ".join(f"{k} images: values {DEPTHS[k]}" for k in kinds)


def _images_in(folder) -> list:
    return sorted(f for f in _listdir(folder) if f.lower().endswith(IMAGE_EXTENSIONS))


def _listdir(folder) -> list:
    try:
        return os.listdir(folder)
    except OSError as e:
        raise CnnError(f"cannot read {folder}: {e.strerror}", usage=True,
                       hint="the data folder and every class folder in it must be readable") from None


def _npz(path, shape):
    try:
        with user_file(path, "--data") as file:
            _require_npz(file, path)
            file.seek(0)
            f = np.load(file, allow_pickle=False)
            if not isinstance(f, np.lib.npyio.NpzFile):
                raise CnnError(f"{path}: holds one array (a .npy file), not the arrays x and y of a .npz", usage=True,
                               hint="numpy.savez(path, x=images, y=labels) writes one")
            with f:
                keys = list(f.keys())
                if "x" not in keys or "y" not in keys:
                    raise CnnError(f"{path}: needs arrays `x` and `y`, has {', '.join(keys) or 'none'}", usage=True)
                x, y = f["x"], f["y"]
    except CnnError:
        raise
    except (OSError, ValueError, EOFError, SyntaxError, KeyError, zipfile.BadZipFile, zlib.error,
            tokenize.TokenError) as e:  # numpy's reader on a damaged file: a cut zip, a garbled header, bad deflate
        raise CnnError(f"{path}: not a readable .npz file ({e or type(e).__name__})", usage=True,
                       hint="numpy.savez(path, x=images, y=labels) writes one") from None
    x, y, converted = V.arrays(x, y, path)
    values = np.unique(y)
    classes = [str(v) for v in values]
    y = np.searchsorted(values, y).astype(np.int64)
    have = "x".join(map(str, x.shape[1:]))
    notes = [f"{path}: {len(x)} samples of {have}, {len(classes)} classes"] + converted
    if len(shape) == 1:
        if x.ndim != 2 or x.shape[1] != shape[0]:
            raise CnnError(f"{path}: x holds samples of {have}, but the network's input is a vector of {shape[0]}",
                           usage=True, hint=f"write the spec's input to match the data (`input {have}`)")
        return x, y, classes, notes
    h, w, c = shape
    if x.ndim == 3 and c == 1:
        x = x[:, :, :, None]
    if x.ndim == 4 and x.shape[1:] == (h, w, c):
        return _nchw(x), y, classes, notes
    if x.ndim == 4 and x.shape[1:] == (c, h, w):
        notes.append("read as NCHW")
        return np.ascontiguousarray(x), y, classes, notes
    want = f"{h}x{w}x{c}"
    hint = (f"write `input {x.shape[1]}x{x.shape[2]}x{x.shape[3] if x.ndim == 4 else 1}` in the spec (or --input), "
            f"or resize the data to {want} (N,H,W,C) or {c}x{h}x{w} (N,C,H,W)") if x.ndim in (3, 4) else \
        f"x must be images (N,H,W,C) of {want}"
    raise CnnError(f"{path}: x holds samples of {have}, but the network's input is {want}", usage=True, hint=hint)


def _require_npz(file, path):
    """Refuse an .npz whose x and y headers declare more than memory holds (or than the zip holds: numpy
    allocates what a header declares before it reads), before anything is allocated."""
    try:
        z = zipfile.ZipFile(file)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
        raise CnnError(f"{path}: not a readable .npz file ({e})", usage=True) from None
    with z:
        members = {n[:-4] if n.endswith(".npy") else n: z.getinfo(n) for n in z.namelist()}
        declared = {}
        for key in ("x", "y"):
            if key in members:
                try:
                    with z.open(members[key]) as m:
                        declared[key] = npy_header(m, f"{path}: `{key}`", members[key].file_size)
                except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError) as e:
                    raise CnnError(f"{path}: not a readable .npz file ({e})", usage=True) from None
    if "x" in declared:
        (x_shape, _, x_bytes), y_bytes = declared["x"], declared.get("y", (0, 0, 0))[2]
        n = x_shape[0] if x_shape else 1
        require_data(n, x_shape[1:], f"--data {path}", raw=x_bytes + y_bytes,
                     hint="use fewer samples (or train on a machine with more memory)")


LOAD_COPIES = 3  # load() holds the float32 samples 3.6 times at its peak (tracemalloc, synthetic and .npz:
#                  the arrays, their train/validation split, the normalised split): its lower bound


def require_data(n: int, shape, what: str, raw: int = 0, hint=None):
    """Refuse `n` samples of `shape` (HxWxC, or features) that load() could not hold as float32 beside
    `raw` bytes as read (cnndsl.memory), before any is allocated."""
    f32 = n * math.prod(shape) * 4
    require(max(raw + f32, LOAD_COPIES * f32), f"{what}: {n:,} samples of {'x'.join(map(str, shape)) or '1'} "
                                               f"as float32", hint=hint)


# ---- split and statistics ------------------------------------------------------------------------------
def split(y: np.ndarray, val_fraction: float, seed: int):
    """(train indices, validation indices): `val_fraction` of every class, chosen with `seed`."""
    rng = np.random.default_rng(seed)
    tr, va = [], []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        rng.shuffle(idx)
        k = int(round(val_fraction * len(idx)))
        va.append(idx[:k])
        tr.append(idx[k:])
    return np.sort(np.concatenate(tr)), np.sort(np.concatenate(va))


def _stats(x):
    """Per-channel mean and std (0 for a constant channel: values.spread decides what to divide by)."""
    if x.ndim == 2:
        return [float(x.mean(dtype=np.float64))], [float(x.std(dtype=np.float64))]  # float32 sums overflow past ~1e19
    mean = x.mean(axis=(0, 2, 3), dtype=np.float64)
    std = x.std(axis=(0, 2, 3), dtype=np.float64)
    return [float(m) for m in mean], [float(s) for s in std]


@np.errstate(over="ignore", divide="ignore", invalid="ignore")  # what overflows is refused after (values.finite)
def _apply(x, mean, std):
    if x.ndim == 2:
        return ((x - mean[0]) / std[0]).astype(np.float32)
    m = np.asarray(mean, np.float32)[None, :, None, None]
    s = np.asarray(std, np.float32)[None, :, None, None]
    return ((x - m) / s).astype(np.float32)
