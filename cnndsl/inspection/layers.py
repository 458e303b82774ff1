"""A layer's filters (its weights as images) and its activation maps for one input.

    >>> import cnndsl
    >>> s = Subject(cnndsl.loads("input 8x8x3\\nc: CONV(4, 3) - RELU - FC(2)"), weights=None)
    >>> filters(s, "c")["weights"].shape
    (4, 3, 3, 3)
    >>> activations(s, "relu1", s.blank())["maps"].shape
    (4, 6, 6)

A CONV's filters are (K, C/groups, kh, kw): three input channels are shown as one colour tile per
filter, others as a K x C grid of gray tiles on one signed colour scale. An FC layer that reads a
flattened volume is shown the same way, each unit's weights folded back to the volume it reads
(the "templates" of a linear classifier). Which layers have filters, and of which sort, the kind
says (`Kind.filters`); a weight-standardised conv (STDCONV) is shown as it convolves: standardised.
"""
from __future__ import annotations

import numpy as np
import torch

from ..errors import CnnError
from ..kinds import FLAT_FILTERS, SPATIAL_FILTERS, VIEW
from . import figures as F
from .result import Result
from .subject import Subject

MAX_TILES = 256   # filters x channels drawn; the arrays hold all of them
MAX_MAPS = 64


def filters(s: Subject, layer=None) -> Result:
    name = s.layer(layer) if layer else _first_weighted(s)
    node = s.graph[name]
    if node.kind.filters not in (SPATIAL_FILTERS, FLAT_FILTERS):
        raise CnnError(f"{name} is a {node.op} layer: it has no filters", usage=True,
                       hint="choose a convolution (or an FC layer that reads a volume): " + ", ".join(s.convolutions()[:6]))
    w = _applied_weight(s.module(name)).detach().cpu().float().numpy()
    if node.kind.filters == FLAT_FILTERS:
        w = _fc_templates(s, node, w)
    k, c = w.shape[:2]
    values = {"layer": name, "op": node.op, "shape": list(w.shape), "min": float(w.min()), "max": float(w.max()),
              "norms": [float(v) for v in np.sqrt((w.reshape(k, -1) ** 2).sum(1))]}
    return Result("filters", {"weights": w}, values, s.notes, _draw_filters, _filters_table)


def _first_weighted(s):
    spatial = s.convolutions()
    if not spatial:
        raise CnnError("this network has no convolution with spatial filters: name a layer with --layer", usage=True)
    return spatial[0]


def _applied_weight(module):
    """The weight the layer convolves with: a weight-standardised conv's module standardises its stored
    weight on every call (`standardised()`), so that, not the raw parameter, is what it looks for."""
    with torch.no_grad():
        return module.standardised() if hasattr(module, "standardised") else module.weight


def _fc_templates(s, node, w):
    """An FC that reads an implicit or explicit flatten of a volume: (units, C, H, W)."""
    src = node.inputs[0]
    while src != "input" and s.graph[src].kind.memory == VIEW:  # a view keeps the (C, H, W) order
        src = s.graph[src].inputs[0]
    shape = s.shape(src) if src != "input" else tuple(s.graph.input_shape)
    if len(shape) != 3:
        raise CnnError(f"{node.name} reads a vector, not a volume: its weights are not images", usage=True)
    h, wd, c = shape
    return w.reshape(w.shape[0], c, h, wd)  # PyTorch flattens (C, H, W)


def _draw_filters(r):
    w = r["weights"]
    k, c = w.shape[:2]
    colour = c == 3
    per = 1 if colour else c
    shown_c = min(per, MAX_TILES)
    shown_k = min(k, max(1, MAX_TILES // shown_c))
    fig = F.figure()
    ax = fig.subplots()
    if colour:  # each filter stretched to its own range: the colour shows what it looks for
        f = w[:shown_k].transpose(0, 2, 3, 1)
        lo, hi = f.min(axis=(1, 2, 3), keepdims=True), f.max(axis=(1, 2, 3), keepdims=True)
        canvas, corners = F.mosaic((f - lo) / np.where(hi > lo, hi - lo, 1), F.grid(shown_k)[1])
        F.show_mosaic(ax, canvas)
    else:
        tiles = w[:shown_k, :shown_c].reshape(-1, *w.shape[2:])
        top = float(np.abs(tiles).max()) or 1.0
        canvas, corners = F.mosaic(tiles, shown_c if c > 1 else F.grid(shown_k)[1])
        F.colorbar(fig, F.show_mosaic(ax, canvas, F.SIGNED, -top, top), ax, "weight")
    if c > 1 and not colour:
        h = w.shape[2]
        step = h + max(1, round(max(w.shape[2:]) / 8))
        ax.set_yticks([i * step + h / 2 - 0.5 for i in range(shown_k)][::max(1, shown_k // 24)],
                      [str(i) for i in range(shown_k)][::max(1, shown_k // 24)])
        ax.set_ylabel("filter")
        ax.set_xlabel(f"input channel (0..{shown_c - 1})")
    elif shown_k <= 64:
        for i, (t, l) in enumerate(corners):
            ax.text(l, t - 0.6, str(i), fontsize=10, va="bottom")
    cut = f" (first {shown_k} of {k} filters" + (f", {shown_c} of {c} input channels)" if shown_c < per else ")") \
        if shown_k < k or shown_c < per else ""
    how = "colour: each filter stretched to its range" if colour else \
        ("rows: filters, columns: input channels" if c > 1 else "one shared colour scale")
    fig.suptitle(f"{r['layer']}: {k} filters of {'x'.join(map(str, w.shape[1:]))}{cut}; {how}")
    return fig


def _filters_table(r):
    norms = r["norms"]
    lines = [f"{r['layer']} ({r['op']}): {len(norms)} filters of {'x'.join(map(str, r['shape'][1:]))}, "
             f"weights {r['min']:.4g}..{r['max']:.4g}"]
    order = np.argsort(norms)[::-1]
    lines.append("largest L2 norms: " + ", ".join(f"#{i} {norms[i]:.3g}" for i in order[:8]))
    return "\n".join(lines) + "\n"


# ---- activations --------------------------------------------------------------------------------------
def activations(s: Subject, layer, x: torch.Tensor, notes=()) -> Result:
    """The output of `layer` for one normalised input `x` (1, C, H, W)."""
    name = s.layer(layer)
    out = s.capture(x, [name])[name][0].cpu().float().numpy()
    p = torch.softmax(s.scores(x), 1)[0]
    k = int(p.argmax())
    values = {"layer": name, "shape": list(s.shape(name)), "predicted": s.class_name(k), "probability": float(p[k]),
              "min": float(out.min()), "max": float(out.max()), "mean": float(out.mean()),
              "zero_fraction": float((out <= 0).mean())}
    image = s.raw(x)[0].cpu().numpy()
    values["value_range"] = s.display_range(image)
    arrays = {"maps" if out.ndim == 3 else "values": out, "image": image}
    if out.ndim == 3:
        values["channel_max"] = [float(v) for v in out.reshape(len(out), -1).max(1)]
    return Result("activations", arrays, values, [*s.notes, *notes], _draw_activations, _activations_table)


def _draw_activations(r):
    fig = F.figure()
    left, right = fig.subfigures(1, 2, width_ratios=[1, 2.6])
    F.show(left.subplots(), r["image"], r["value_range"], title=f"input: {r['predicted']} ({r['probability']:.2f})")
    title = f"{r['layer']} ({'x'.join(map(str, r['shape']))})"
    ax = right.subplots()
    if "maps" in r:
        maps = r["maps"]
        n = min(len(maps), MAX_MAPS)
        canvas, corners = F.mosaic(maps[:n], F.grid(n, aspect=1.5)[1])
        im = F.show_mosaic(ax, canvas, F.HEAT, min(0.0, float(maps[:n].min())), float(maps[:n].max()) or 1.0)
        if n <= 32:
            for i, (t, l) in enumerate(corners):
                ax.text(l, t - 0.6, str(i), fontsize=10, va="bottom")
        right.colorbar(im, ax=ax, shrink=0.85).set_label("activation")
        right.suptitle(title + (f": the first {n} of {len(maps)} channels" if n < len(maps) else ": every channel"))
    else:
        v = r["values"]
        ax.bar(range(len(v)), v, color="#4c72b0")
        ax.set_xlabel("unit")
        ax.set_ylabel("activation")
        right.suptitle(title)
    return fig


def _activations_table(r):
    lines = [f"{r['layer']} ({'x'.join(map(str, r['shape']))}): values {r['min']:.4g}..{r['max']:.4g}, "
             f"mean {r['mean']:.4g}, {r['zero_fraction']:.0%} <= 0; the net says {r['predicted']} "
             f"({r['probability']:.3f})"]
    if "channel_max" in r.values:
        cm = r["channel_max"]
        order = np.argsort(cm)[::-1]
        lines.append("most active channels: " + ", ".join(f"{i} ({cm[i]:.3g})" for i in order[:8]))
    return "\n".join(lines) + "\n"
