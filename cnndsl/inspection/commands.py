"""`inspect(net, what, weights=..., **options)`: one call per question of the lecture's deck, what
`cnndsl inspect FILE --weights CKPT WHAT [options]` runs. It prepares the subject (the net and its
checkpoint), reads the image or the data as training read them, and calls the command's function.

    >>> import cnndsl
    >>> r = inspect(cnndsl.loads("input 500\\n(FC(500) - TANH)*10"), "stats", init="normal:0.01", samples=100)
    >>> r.what, len(r["layers"]), r["std"][-1] < 1e-3
    ('stats', 10, True)

Options (None: the default):
    filters      layer (default: the first convolution with spatial filters: CONV, STDCONV, ...)
    activations  layer, image
    stats        data (or init he|xavier|normal:STD without weights), act relu|tanh, samples (512)
    patches      layer, data, channel (one, or "0,3,5"; default the first 8), top (8), samples (all)
    neighbours   data, layer (default the last hidden), query (rows drawn, 5), k (6)
    embed        data, layer (default the last hidden), samples (1000), perplexity (30)
    saliency     image, cls (default the predicted class), method gradient|guided|gradcam|integrated,
                 layer (Grad-CAM's; default the last with spatial extent), steps (integrated: 50)
    occlusion    image, cls, window (default 1/6 of the side), stride (a third of the window)
    maximize     cls, steps (200), l2 (1e-3), lr (0.05), jitter (0 px), blur (0: off; a Gaussian sigma)
    invert       layer, image, steps (200), tv (1e-2), lr (0.05)
    fool         image, target, step (1/1000 of the data's normalised range), steps (the most: 500)
Every command: weights (a checkpoint), seed (0), device (cpu|cuda|auto), progress(done, total).
An image is a file Pillow reads or a .npy array in the training data's units; data is what
`cnndsl train --data` takes (digits, synthetic[:N], a folder of class folders, a .npz).
"""
from __future__ import annotations

import numpy as np

from ..errors import CnnError

WHAT = ("filters", "activations", "stats", "patches", "neighbours", "embed", "saliency", "occlusion", "maximize",
        "invert", "fool")
NEEDS = {"activations": ("layer", "image"), "patches": ("layer", "data"), "neighbours": ("data",),
         "embed": ("data",), "saliency": ("image",), "occlusion": ("image",), "maximize": ("cls",),
         "invert": ("layer", "image"), "fool": ("image", "target")}
FLAGS = {"cls": "--class", "image": "--image", "data": "--data", "layer": "--layer", "target": "--target"}


def inspect(net, what, weights=None, seed=0, device="cpu", progress=None, threads=None, **options):
    """The Result (cnndsl.inspection.result) of one command on `net` with `weights`; `threads`:
    torch's threads while it runs (None: as they are)."""
    if threads is None:
        return _inspect(net, what, weights, seed, device, progress, options)
    import torch
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return _inspect(net, what, weights, seed, device, progress, options)
    finally:
        torch.set_num_threads(before)


def _inspect(net, what, weights, seed, device, progress, options):
    from .subject import Subject
    if what not in WHAT:
        raise CnnError(f"inspect {what}: one of {', '.join(WHAT)}", usage=True)
    given = {k: v for k, v in options.items() if v is not None}
    missing = [FLAGS.get(k, k) for k in NEEDS.get(what, ()) if k not in given]
    if missing:
        raise CnnError(f"inspect {what} needs {' and '.join(missing)}", usage=True)
    init = given.pop("init", None)
    if what == "stats" and init is not None:
        if weights is not None or "data" in given:
            raise CnnError("stats --init draws fresh weights for unit Gaussian inputs: give it no --weights and no "
                           "--data", usage=True)
    elif weights is None:
        raise CnnError(f"inspect {what} needs --weights CKPT (a checkpoint of this spec: cnndsl train --out "
                       "writes weights.safetensors)", usage=True,
                       hint="stats --init he|xavier|normal:STD looks at an untrained net")
    s = Subject(net, weights, seed=seed, device=device)
    if "layer" in given:  # a wrong name is found before any image or data is read
        given["layer"] = s.layer(given["layer"])
    return _RUN[what](s, given, init=init, seed=seed, progress=progress)


def _image(s, o):
    return s.image(o.pop("image"))


def _data(s, o, split="all", limit=None, seed=0):
    return s.data(o.pop("data"), split=split, limit=limit, seed=seed)


def _filters(s, o, **kw):
    from .layers import filters
    return filters(s, o.get("layer"))


def _activations(s, o, **kw):
    from .layers import activations
    x, notes = _image(s, o)
    return activations(s, o["layer"], x, notes)


def _stats(s, o, init, seed, progress):
    from .stats import reinitialise, stats, swap_activations
    notes = reinitialise(s, init, o.get("act"), seed) if init else []
    if o.get("act") and not init:
        notes.append(swap_activations(s, o["act"]))
    x = None
    if "data" in o:
        x, _, how = _data(s, o, limit=o.get("samples", 512), seed=seed)
        notes += how
    return stats(s, notes, x=x, samples=o.get("samples", 512), seed=seed, progress=progress)


def _patches(s, o, seed, progress, **kw):
    from .patches import patches
    x, y, how = _data(s, o, limit=o.get("samples"), seed=seed)
    return patches(s, o["layer"], x, y, channel=o.get("channel"), top=o.get("top", 8), notes=how, progress=progress)


def _neighbours(s, o, seed, progress, **kw):
    from .features import neighbours
    d = s.dataset(o["data"])
    how = d.description
    if len(d.x_val):
        xq, yq, xb, yb = d.x_val, d.y_val, d.x_train, d.y_train
        how.append(f"queries: the {len(xq)} validation samples; neighbours among the {len(xb)} training samples")
    else:  # not the training data: a fifth of the samples, drawn with the seed, ask; the rest answer
        pick = np.random.default_rng(seed).permutation(len(d.x_train))
        q, b = pick[:len(pick) // 5], np.sort(pick[len(pick) // 5:])
        xq, yq, xb, yb = d.x_train[q], d.y_train[q], d.x_train[b], d.y_train[b]
        how.append(f"queries: {len(q)} samples drawn with seed {seed}; neighbours among the other {len(xb)}")
    order = np.random.default_rng(seed).permutation(len(xq))  # the rows drawn: a seeded choice
    return neighbours(s, xq[order], yq[order], xb, yb, layer=o.get("layer"), k=o.get("k", 6),
                      shown=o.get("query", 5), notes=how, progress=progress)


def _embed(s, o, seed, progress, **kw):
    from .features import embed
    x, y, how = _data(s, o, limit=o.get("samples", 1000), seed=seed)
    return embed(s, x, y, layer=o.get("layer"), perplexity=o.get("perplexity", 30.0), seed=seed, notes=how,
                 progress=progress)


def _saliency(s, o, progress, **kw):
    from .attribution import saliency
    x, notes = _image(s, o)
    return saliency(s, x, o.get("cls"), o.get("method", "gradient"), o.get("layer"), o.get("steps", 50), notes,
                    progress)


def _occlusion(s, o, progress, **kw):
    from .attribution import occlusion
    x, notes = _image(s, o)
    return occlusion(s, x, o.get("cls"), o.get("window"), o.get("stride"), notes, progress)


def _maximize(s, o, seed, progress, **kw):
    from .synthesis import maximize
    return maximize(s, o["cls"], steps=o.get("steps", 200), l2=o.get("l2", 1e-3), lr=o.get("lr", 0.05),
                    jitter=o.get("jitter", 0), blur=o.get("blur", 0.0), seed=seed, progress=progress)


def _invert(s, o, progress, **kw):
    from .synthesis import invert
    x, notes = _image(s, o)
    return invert(s, o["layer"], x, steps=o.get("steps", 200), tv=o.get("tv", 1e-2), lr=o.get("lr", 0.05),
                  notes=notes, progress=progress)


def _fool(s, o, progress, **kw):
    from .fool import fool
    x, notes = _image(s, o)
    return fool(s, x, o["target"], step=o.get("step"), max_steps=o.get("steps", 500), notes=notes, progress=progress)


_RUN = {"filters": _filters, "activations": _activations, "stats": _stats, "patches": _patches,
        "neighbours": _neighbours, "embed": _embed, "saliency": _saliency, "occlusion": _occlusion,
        "maximize": _maximize, "invert": _invert, "fool": _fool}
