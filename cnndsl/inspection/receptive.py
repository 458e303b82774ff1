"""Where in the input a unit of a layer looks: its receptive field, from the analyzer's report.

    >>> import cnndsl
    >>> net = cnndsl.loads("input 16x16x1\\nCONV(4, 3, p=1) - MAXPOOL(2) - CONV(4, 3)")
    >>> f = fields(net)["conv2"]
    >>> f.rf, f.jump, f.start
    ((8, 8), (2, 2), (-1, -1))
    >>> f.window(0, 3)          # rows, columns of the input that unit (0, 3) of conv2 sees: row -1 is padding
    ((-1, 7), (5, 13))

The size `rf` and the step `jump` between neighbouring units are the report's (`net.report()`,
columns rf and jump: r_out = r_in + (F_eff - 1) j_in, j_out = j_in S). Where the first unit's field
starts follows from the layers' padding: start_out = start_in - P j_in (a join starts where the
earliest of its inputs does, as the analyzer gives it the widest field). A start below 0, or an end
past the input, is padding: those cells of a crop are not pixels of the image. An adaptive pool
that resamples has bins of unequal size; the analyzer's window for it, and so a crop after it, is
then an approximation.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Field:
    rf: tuple      # (h, w)
    jump: tuple    # (h, w)
    start: tuple   # (h, w): the first unit's top-left input cell (negative: padding)

    def window(self, y, x):
        """((top, bottom), (left, right)) half-open input rows and columns of unit (y, x)."""
        top, left = self.start[0] + y * self.jump[0], self.start[1] + x * self.jump[1]
        return (top, top + self.rf[0]), (left, left + self.rf[1])


def fields(net) -> dict:
    """{layer name: Field} for every layer whose output has spatial extent."""
    rep = {l["name"]: l for l in net.report()["layers"]}
    graph = net.graph
    start = {"input": (0, 0)}
    jump = {"input": (1, 1)}
    out = {}
    for node in graph.nodes:
        row = rep[node.name]
        if row["rf"] is None:
            continue
        ins = [i for i in node.inputs if i in start]
        if not ins:
            continue
        s = (min(start[i][0] for i in ins), min(start[i][1] for i in ins))
        j = (max(jump[i][0] for i in ins), max(jump[i][1] for i in ins))
        if node.kind.window(node.attrs, [graph.shape_of(i) for i in node.inputs]) is not None:
            p = node.attrs.get("p", (0, 0))
            p = p if isinstance(p, tuple) else (p, p)
            s = (s[0] - p[0] * j[0], s[1] - p[1] * j[1])
        start[node.name], jump[node.name] = s, _pair(row["jump"])
        out[node.name] = Field(_pair(row["rf"]), _pair(row["jump"]), s)
    return out


def _pair(v):
    return tuple(v) if isinstance(v, (list, tuple)) else (v, v)


def crop(image: np.ndarray, field: Field, y: int, x: int):
    """(patch (C, rf_h, rf_w), inside (rf_h, rf_w) bool) of a (C, H, W) image: the input unit (y, x)
    sees, NaN where its field lies in the padding."""
    c, h, w = image.shape
    (t, b), (l, r) = field.window(y, x)
    patch = np.full((c, b - t, r - l), np.nan, dtype=np.float32)
    inside = np.zeros((b - t, r - l), bool)
    t0, b0, l0, r0 = max(t, 0), min(b, h), max(l, 0), min(r, w)
    if t0 < b0 and l0 < r0:
        patch[:, t0 - t:b0 - t, l0 - l:r0 - l] = image[:, t0:b0, l0:r0]
        inside[t0 - t:b0 - t, l0 - l:r0 - l] = True
    return patch, inside
