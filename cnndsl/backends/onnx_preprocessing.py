"""What an exported model's input must be: the normalisation its weights were trained with, kept
in the ONNX model's metadata, or applied by the model itself (`--normalize-in-graph`).

`cnndsl train` records the training data in a checkpoint's metadata as `data` (JSON, written by
cnndsl.train.data.Data.info): the DATA source, the class names, and the per-channel `mean` and
`std` of the training split in the data's own units (pixel values 0..255 for a folder of images,
0..16 for digits); training fed the net (x - mean) / std. Export carries that as

    metadata_props["cnndsl.preprocessing"]   JSON: {"normalization": "recorded" or "none", "mean",
                                             "std", "range" (the training data's values, where the
                                             checkpoint records them), "source", "in_graph" (null,
                                             "raw" or "unit"), "feed" (a sentence: what to feed)}
    metadata_props["cnndsl.classes"]         JSON: the class names, in output order

A checkpoint that records no normalisation (a .pt, a torchvision state_dict, a module) and random
weights are said to be so ("normalization": "none"); nothing is guessed. With `in_graph`, the graph
starts with Sub and Div nodes (constants, not initializers: the initializers stay the state_dict),
so that the model takes the data's own units ("raw") or 0..1 for 0..255 pixels ("unit").

    >>> r = record({"data": '{"source": "digits", "classes": ["0", "1"], "mean": [4.9], "std": [6.0]}'})
    >>> r["normalization"], r["mean"], r["feed"]
    ('recorded', [4.9], '(x - mean) / std per channel, x in the units of the training data (digits)')
"""
from __future__ import annotations

import json

import numpy as np

from ..errors import CnnError
from ..metadata import value

KEY, CLASSES = "cnndsl.preprocessing", "cnndsl.classes"
IN_GRAPH = ("raw", "unit")
PIXEL = 255.0  # "unit": 0..1 stands for 8-bit pixel values, what a folder of images trains on


def record(meta: dict | None, weights=None) -> dict:
    """The preprocessing record for a checkpoint's metadata (None: random weights, no checkpoint)."""
    info = _data_info(meta or {}, weights)
    if info is None or not info.get("mean") or not info.get("std"):
        why = ("random weights, not trained: no input normalisation" if meta is None else
               f"the checkpoint{_named(weights)} records no input normalisation: feed what its weights were "
               "trained on (cnndsl train records it; a .pt or a torchvision state_dict does not)")
        return {"normalization": "none", "in_graph": None, "feed": why}
    r = {"normalization": "recorded", "mean": [float(v) for v in info["mean"]],
         "std": [float(v) for v in info["std"]], "source": info.get("source")}
    lo_hi = _range(info)
    if lo_hi is not None:
        r["range"] = lo_hi
    r["in_graph"] = None
    r["feed"] = f"(x - mean) / std per channel, x in the units of the training data ({r['source']})"
    return r


def classes(meta: dict | None, weights=None):
    info = _data_info(meta or {}, weights)
    names = info.get("classes") if info else None
    return [str(c) for c in names] if isinstance(names, list) and names else None


def _data_info(meta, weights):
    """The checkpoint's `data` record, checked by cnndsl.metadata (a malformed one is a CnnError naming
    the file); a dict given as metadata (a module's `cnndsl_meta`) is taken as it is."""
    raw = meta.get("data")
    if isinstance(raw, dict):
        return raw
    if not isinstance(raw, str):
        return None
    return value(meta, "data", weights if isinstance(weights, str) else "the checkpoint")


def _range(info):
    """[lo, hi] of the training data's values, where the checkpoint records them (`range`, or `min`
    and `max`, scalars or per channel)."""
    lo, hi = (info["range"] if isinstance(info.get("range"), (list, tuple)) and len(info["range"]) == 2
              else (info.get("min"), info.get("max")))
    try:
        lo, hi = float(np.min(lo)), float(np.max(hi))
    except (TypeError, ValueError):
        return None
    return [lo, hi] if np.isfinite([lo, hi]).all() and lo <= hi else None


def _named(weights):
    return f" {weights}" if isinstance(weights, str) else ""


# ---- in the graph ---------------------------------------------------------------------------------
def in_graph_scale(r: dict, how: str) -> float:
    """The factor from the model's input to the training data's units (1 for "raw"), or a CnnError
    when the record cannot support `how`."""
    if how not in IN_GRAPH:
        raise CnnError(f"--normalize-in-graph {how!r}: one of {', '.join(IN_GRAPH)}", usage=True)
    if r["normalization"] != "recorded":
        raise CnnError(f"--normalize-in-graph: {r['feed']}", usage=True,
                       hint="export the checkpoint that `cnndsl train` wrote (OUT/weights.safetensors)")
    if how == "raw":
        return 1.0
    lo, hi = r.get("range") or (None, None)
    pixels = (lo >= 0 and 1 < hi <= PIXEL) if lo is not None else _image_folder(r.get("source"))
    if not pixels:
        seen = f"values {lo:g}..{hi:g}" if lo is not None else f"data {r.get('source')}"
        raise CnnError(f"--normalize-in-graph unit means 0..1 for 8-bit pixels (0..255), but training saw {seen}",
                       usage=True, hint="use --normalize-in-graph raw: the model then takes the training data's units")
    return PIXEL


def _image_folder(source) -> bool:
    """Whether DATA was a folder of images (pixel values 0..255, cnndsl.train.data._folder)."""
    return isinstance(source, str) and source != "digits" and not source.startswith("synthetic") \
        and not source.endswith(".npz")


def in_graph(r: dict, how: str, scale: float) -> dict:
    """The record once the graph normalises: what to feed it now."""
    unit = f"x in 0..1 (pixel / {scale:g})" if how == "unit" else \
        f"x in the units of the training data ({r['source']})"
    return {**r, "in_graph": how, "input_scale": scale,
            "feed": f"{unit}; the graph subtracts the mean and divides by the std (per channel)"}


def prepend(input_shape, nodes, r: dict) -> list:
    """`nodes` (the layers' ONNX nodes) reading "input" through Sub and Div nodes first. The input's
    scale is folded into mean and std: (x * k - mean) / std = (x - mean / k) / (std / k)."""
    from onnx import helper, numpy_helper
    c = input_shape[2] if len(input_shape) == 3 else 1
    mean, std = np.asarray(r["mean"], np.float64), np.asarray(r["std"], np.float64)
    if mean.size not in (1, c) or std.size not in (1, c):
        raise CnnError(f"the checkpoint's normalisation has {mean.size} means and {std.size} stds for an "
                       f"input of {c} channels", usage=True)
    shape = (1, -1, 1, 1) if len(input_shape) == 3 else (1, -1)
    k = r.get("input_scale", 1.0)
    consts = [helper.make_node("Constant", [], [name], name=name,
                               value=numpy_helper.from_array((v / k).astype(np.float32).reshape(shape), name=name))
              for name, v in (("input:mean", mean), ("input:std", std))]
    for n in nodes:
        n.input[:] = ["input:normalized" if i == "input" else i for i in n.input]
    return [*consts,
            helper.make_node("Sub", ["input", "input:mean"], ["input:centred"], name="input:centred"),
            helper.make_node("Div", ["input:centred", "input:std"], ["input:normalized"], name="input:normalized"),
            *nodes]


def props(r: dict, names) -> dict:
    """The metadata_props entries."""
    out = {KEY: json.dumps(r)}
    if names:
        out[CLASSES] = json.dumps(names)
    return out
