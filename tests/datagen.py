"""Hostile training inputs for the fuzz harness (tests/test_fuzz.py): image folders, .npz files and
checkpoints as a careless or hostile user makes them, drawn from a chooser (`below(n)`, `pick(items)`:
hypothesis in the seeded run, a Random in the long one).

    folder(c, path)            class folders of images in every Pillow mode (1, L, P, LA, RGB, RGBA,
                               CMYK, I;16, I, F) and size, with NaN/inf, saturated, constant, blank
                               images, junk files named .png, empty or hidden class folders
    npz(c, path)               x of any dtype (bool, ints, floats 16-64, complex, strings) and shape,
                               values at the edges (NaN, inf, 1e300, subnormals, constants), labels of
                               any sort (NaN, 2-D, too few, one class), keys missing, bytes cut or flipped
    checkpoint(c, run, path)   a trained run's checkpoint or weights with its metadata rewritten (not
                               JSON, wrong types, NaN, other channel counts), tensors of other dtypes,
                               shapes or values, or its bytes cut

`check_data(d)` states what every accepted dataset must be: finite float32, a std above 0.
"""
from __future__ import annotations

import json
import os
import shutil

import numpy as np

GRAY = "input 8x8x1\nCONV(4, 3) - BN - RELU - FC(2)\n"
MODES = ["L", "RGB", "RGBA", "P", "1", "LA", "CMYK", "I;16", "I", "F"]
SIZES = [(8, 8), (1, 1), (3, 17), (40, 2), (8, 9)]
SUFFIXES = {"L": ".png", "RGB": ".jpg", "RGBA": ".png", "P": ".gif", "1": ".bmp", "LA": ".png", "CMYK": ".tif",
            "I;16": ".png", "I": ".tif", "F": ".tif"}
EDGES = ["random", "zero", "max", "constant", "nan", "inf", "huge"]


def _values(c, mode, size, rng):
    h, w = size
    kind = c.pick(EDGES)
    channels = {"RGB": 3, "RGBA": 4, "LA": 2, "CMYK": 4}.get(mode, 1)
    top = {"I;16": 65535, "I": 2 ** 31 - 1, "F": 1.0, "1": 1}.get(mode, 255)
    shape = (h, w, channels) if channels > 1 else (h, w)
    a = {"random": rng.random(shape) * top, "zero": np.zeros(shape), "max": np.full(shape, top),
         "constant": np.full(shape, top / 3)}.get(kind, rng.random(shape) * top)
    if mode == "F":
        a = a.astype(np.float32)
        if kind in ("nan", "inf", "huge"):
            a.flat[rng.integers(a.size)] = {"nan": np.nan, "inf": np.inf, "huge": 3e38}[kind]
        return a
    dtype = {"I;16": np.uint16, "I": np.int32, "1": bool}.get(mode, np.uint8)
    return a.astype(dtype) if dtype is not bool else a > 0.5


def image(c, path, rng):
    from PIL import Image
    mode, size = c.pick(MODES), c.pick(SIZES)
    a = _values(c, mode, size, rng)
    if mode in ("L", "RGB", "RGBA", "I;16", "I", "F", "1"):
        img = Image.fromarray(a)  # the mode follows the array's dtype and channels
    else:  # LA, P, CMYK: converted from gray or RGB
        img = Image.fromarray(a[..., :3] if a.ndim == 3 and a.shape[2] >= 3 else a[..., 0] if a.ndim == 3 else a)
        img = img.convert(mode)
    suffix = SUFFIXES[mode] if c.below(4) else c.pick([".png", ".tif", ".webp", ".PNG"])
    try:
        img.save(str(path) + suffix)
    except (OSError, ValueError, KeyError):  # a format that cannot hold the mode: TIFF holds them all
        img.save(str(path) + ".tif")


def folder(c, root, seed=0):
    rng = np.random.default_rng(seed)
    classes = ["a", "b", "c"][:2 + c.below(2)]
    for cls in classes:
        os.makedirs(root / cls, exist_ok=True)
        for i in range(c.below(4) + (c.below(5) > 0)):
            image(c, root / cls / str(i), rng)
    junk = c.below(8)
    if junk == 1:
        (root / classes[0] / "empty.png").write_bytes(b"")
    elif junk == 2:
        (root / classes[-1] / "text.png").write_text("not an image")
    elif junk == 3:
        files = sorted((root / classes[0]).iterdir())
        if files:
            files[0].write_bytes(files[0].read_bytes()[: max(1, files[0].stat().st_size // 2)])
    elif junk == 4:
        os.makedirs(root / ".hidden", exist_ok=True)
        os.makedirs(root / classes[0] / "deeper", exist_ok=True)
    elif junk == 5:
        os.makedirs(root / "zz_empty", exist_ok=True)
    return root


DTYPES = [np.uint8, np.int8, np.uint16, np.int32, np.int64, np.float16, np.float32, np.float64, bool,
          np.complex64, "U3", np.uint64]
XSHAPES = [(8, 8, 1), (1, 8, 8), (8, 8), (64,), (8, 8, 3), (3, 8, 8), (), (4, 4, 1), (8, 8, 1, 1)]
X_EDGES = ["random", "constant", "nan", "inf", "-inf", "huge", "subnormal", "intmax", "zeros"]


def npz(c, path, seed=0):
    rng = np.random.default_rng(seed)
    n = c.pick([40, 2, 1, 0, 7])
    dtype, shape, edge = c.pick(DTYPES), c.pick(XSHAPES), c.pick(X_EDGES)
    x = rng.normal(size=(n, *shape)) * 50 + 100
    if edge == "constant":
        x[:] = 3
    elif edge == "zeros":
        x[:] = 0
    elif edge in ("nan", "inf", "-inf", "huge", "subnormal") and x.size:
        x.flat[rng.integers(x.size)] = {"nan": np.nan, "inf": np.inf, "-inf": -np.inf, "huge": 1e300,
                                        "subnormal": 1e-45}[edge]
    elif edge == "intmax" and x.size:
        x.flat[0] = 2 ** 62
    with np.errstate(all="ignore"):
        x = x.astype(dtype) if dtype != "U3" else x.astype(int).astype("U3")
    labels = c.pick(["ints", "strings", "floats", "nan", "bool", "2d", "short", "one", "negative"])
    y = {"ints": np.arange(n) % 2, "strings": np.array(["cat", "dog"] * n)[:n], "floats": (np.arange(n) % 2) * 1.5,
         "nan": np.where(np.arange(n) == 0, np.nan, np.arange(n) % 2), "bool": np.arange(n) % 2 == 0,
         "2d": np.zeros((n, 2)), "short": np.arange(max(0, n - 1)) % 2, "one": np.zeros(n, int),
         "negative": -(np.arange(n) % 2) - 10**12}[labels]
    arrays = {"x": x, "y": y}
    if not c.below(10):
        arrays.pop(c.pick(["x", "y"]))
    np.savez(path, **arrays)
    _damage(c, path)
    return path


def _damage(c, path):
    """One case in four: the file's bytes cut, emptied or a byte flipped, an .npy or a text in its place."""
    how = c.below(20)
    data = path.read_bytes()
    if how == 1:
        path.write_bytes(data[: len(data) // 2])
    elif how == 2:
        path.write_bytes(b"")
    elif how == 3 and data:
        i = c.below(min(len(data), 200))
        path.write_bytes(data[:i] + bytes([data[i] ^ 0xFF]) + data[i + 1:])
    elif how == 4 and path.suffix == ".npz":  # a .npy under a .npz name
        import io
        buf = io.BytesIO()
        np.save(buf, np.zeros((4, 8, 8, 1), np.float32))
        path.write_bytes(buf.getvalue())
    elif how == 5:
        path.write_text("x,y\n1,2\n")


META_VALUES = ["{not json", "[]", "null", "7", '"text"', "NaN", "1e400", '{"a": 1}', "[" * 50 + "]" * 50]
DATA_FIELDS = {"mean": [[], ["x"], [0, 0, 0], [1e400], None, "0"], "std": [[0], [-1], [0, 0, 0], ["NaN"], None],
               "classes": [[], ["a"], "ab", [1, 2], None], "source": [None, 7, "", "synthetic:96", "digits"],
               "range": [[1], [2, 1], ["a", "b"], None], "samples": [-1, "9", 10 ** 20], "path": [7, ""]}
OPTION_FIELDS = {"lr": ["fast", -1, 0, 1e400, None], "seed": [-1, 1.5, "0", 2 ** 40], "val_fraction": [1, -0.1, "x"],
                 "batch": [0, 2.5, None], "opt": ["sgdd", 7], "epochs": [0, None, "3"], "freeze": [7, ["x"]],
                 "momentum": [2, float("nan")], "schedule": [None, "cosine2"], "device": ["tpu"]}


def checkpoint(c, run, path):
    """A copy of one of `run`'s files (checkpoint or weights) at `path`, mutated one way."""
    import torch
    from safetensors import safe_open
    from safetensors.torch import save_file
    source = run / c.pick(["checkpoint.safetensors", "weights.safetensors"])
    with safe_open(str(source), "pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}
        meta = dict(f.metadata())
    how = c.below(6)
    if how == 0:
        key = c.pick(["data", "options", "layers", "epoch", "cnndsl.train", "input", "spec_sha256", "format", "bindings"])
        meta[key] = c.pick(META_VALUES)
    elif how == 1:
        data = json.loads(meta["data"])
        field = c.pick(sorted(DATA_FIELDS))
        data[field] = c.pick(DATA_FIELDS[field])
        meta["data"] = json.dumps(data)
    elif how == 2:
        options = json.loads(meta["options"])
        field = c.pick(sorted(OPTION_FIELDS))
        options[field] = c.pick(OPTION_FIELDS[field])
        meta["options"] = json.dumps(options)
    elif how == 3:
        key = c.pick(sorted(tensors))
        t = tensors[key]
        change = c.pick(["int8", "bool", "nan", "inf", "half", "shape", "drop", "extra", "complex"])
        if change == "drop":
            del tensors[key]
        elif change == "extra":
            tensors["extra.weight"] = torch.zeros(3)
        elif change == "shape":
            tensors[key] = torch.zeros(t.numel() + 1)
        else:
            tensors[key] = {"int8": lambda: t.to(torch.int8), "bool": lambda: t.bool(), "half": lambda: t.half(),
                            "complex": lambda: t.to(torch.complex64) if t.is_floating_point() else t,
                            "nan": lambda: t.float() * float("nan"), "inf": lambda: t.float() + float("inf")}[change]()
    elif how == 4:
        for k in [k for k in meta if c.below(3) == 0 and k != "format"]:
            del meta[k]
    save_file(tensors, str(path), metadata=meta)
    if how == 5:
        _damage(c, path)
    return path


def copy_run(run, out, ck):
    """A run folder `out` holding `ck` as its checkpoint: what a resume reads."""
    shutil.copytree(run, out)
    shutil.copy(ck, out / "checkpoint.safetensors")
    return out


def check_data(d):
    """What every dataset data.load accepts must be: finite float32 arrays, stds above 0, labels in range."""
    for x in (d.x_train, d.x_val):
        assert x.dtype == np.float32 and np.isfinite(x).all(), "non-finite values got through"
    assert all(np.isfinite(d.mean)) and all(s > 0 and np.isfinite(s) for s in d.std), (d.mean, d.std)
    assert len(d.y_train) > 0
    for y in (d.y_train, d.y_val):
        assert len(y) == 0 or (y.min() >= 0 and y.max() < len(d.classes))
