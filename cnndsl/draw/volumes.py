"""Style `volumes`: the hand-drawn LeNet/AlexNet figure, as SVG written directly (no graphviz).

    >>> import cnndsl
    >>> net = cnndsl.loads("input 32x32x1\\nCONV(6, 5) - TANH - AVGPOOL(2) - CONV(16, 5) - FC(120) - FC(10)")
    >>> svg = to_svg(net.graph)
    >>> svg.startswith("<svg"), "28x28x6" in svg, "5x5/1, 16" in svg
    (True, True, True)

Every volume on the main path is a cuboid, left to right: its height follows H,
its receding depth W and its length along the path the channels C (square root
for H and W, log2 for C, so a 224x224x3 input and a 7x7x512 map both stay
legible); FC outputs are thin bars. Layers that keep their input's volume
(activations, BN, dropout, flatten) get no box. A parallel section (an
Inception module, a residual block) is one box named after its block: the main
path is the sequence of cut points, nodes that every route from input to output
passes. Folded repeats carry an `x N` badge; named parts are brackets below.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from xml.sax.saxutils import escape

from .fold import Fold
from .graph import COLOUR, is_minor, _num
from ..ir import Graph, Node
from ..kinds import KINDS, fmt_shape

FONT = "Helvetica, Arial, sans-serif"
CHAR_W = 6.1          # average glyph width at 11 px, for laying labels out without a font engine
GAP = 16
BADGE_ROW = 18        # vertical distance between the badge rows of nested repeats


@dataclass
class Unit:
    """One box on the main path: a layer, or a parallel section ending in `nodes[-1]`."""
    nodes: list
    shape: tuple
    title: str
    sub: str = ""
    block: bool = False
    x: float = 0.0
    width: float = 0.0
    repeats: list = field(default_factory=list)    # folded Repeat objects around it


def main_path(fold: Fold) -> list[Unit]:
    """Cut points in execution order; the nodes between two cut points form one block unit."""
    pos = {"input": -1, **{n.name: i for i, n in enumerate(fold.nodes)}}
    furthest = {}                   # node -> the furthest position its output goes to
    for a, b in fold.edges:
        furthest[a] = max(furthest.get(a, -1), pos[b])
    reach = furthest.get("input", -1)   # the furthest any edge from before node i goes
    units, pending = [], []
    for i, n in enumerate(fold.nodes):
        cut = reach <= i
        reach = max(reach, furthest.get(n.name, -1))
        if not cut:
            pending.append(n)
            continue
        if pending:
            units.append(_block_unit(pending + [n]))
            pending = []
        elif not is_minor(n) and n.op != "FLATTEN":
            desc = KINDS[n.op].describe(n.attrs)
            units.append(Unit([n], n.out_shape, f"{n.op} {desc}".strip()))
    if pending:
        units.append(_block_unit(pending))
    for u in units:
        u.repeats = fold.repeat_of(u.nodes[-1])
        u.shape = fold.last[u.nodes[-1].name].out_shape   # after all iterations of a folded repeat
    return units


def _block_unit(nodes: list[Node]) -> Unit:
    common = nodes[0].frames
    for n in nodes[1:]:
        k = 0
        while k < min(len(common), len(n.frames)) and common[k] == n.frames[k]:
            k += 1
        common = common[:k]
    named = [f for f in common if f.kind != "repeat"]
    title = (named[-1].path.rsplit(".", 1)[-1] or named[-1].name) if named else "branches"
    if named and any(f.kind == "repeat" and f.count > 1 for f in common):
        title = named[-1].name   # folded: the block's name, not its first instance's
    joins = [n.op for n in nodes if KINDS[n.op].join]
    last = nodes[-1]
    return Unit(nodes, last.out_shape, title, sub=joins[-1] if joins else last.op, block=True)


# ---- geometry --------------------------------------------------------------------
def _side(v: int) -> float:
    return max(8.0, min(220.0, 14 * math.sqrt(v)))


def _thick(c: int) -> float:
    return max(4.0, min(80.0, 4 + 6 * math.log2(max(c, 1))))


def box_size(shape: tuple) -> tuple[float, float, float]:
    """(length along the path, height, receding offset) of a volume's cuboid."""
    if len(shape) == 1:
        return 10.0, max(20.0, min(160.0, 20 + 22 * math.log10(max(shape[0], 1)))), 6.0
    H, W, C = shape
    return _thick(C), _side(H), _side(W) * 0.35


def _cuboid(x: float, cy: float, shape: tuple, fill: str, dashed: bool) -> list[str]:
    t, h, o = box_size(shape)
    top, bot = cy - h / 2, cy + h / 2
    ox, oy = o, -o
    stroke = 'stroke="#444" stroke-width="0.8"' + (' stroke-dasharray="3,2"' if dashed else "")
    front = f"{x:.1f},{top:.1f} {x + t:.1f},{top:.1f} {x + t:.1f},{bot:.1f} {x:.1f},{bot:.1f}"
    lid = f"{x:.1f},{top:.1f} {x + ox:.1f},{top + oy:.1f} {x + t + ox:.1f},{top + oy:.1f} {x + t:.1f},{top:.1f}"
    side = (f"{x + t:.1f},{top:.1f} {x + t + ox:.1f},{top + oy:.1f} {x + t + ox:.1f},{bot + oy:.1f} "
            f"{x + t:.1f},{bot:.1f}")
    return [f'<polygon points="{side}" fill="{fill}" {stroke} filter="url(#shade2)"/>',
            f'<polygon points="{lid}" fill="{fill}" {stroke} filter="url(#shade1)"/>',
            f'<polygon points="{front}" fill="{fill}" {stroke}/>']


def _text(x, y, s, size=11, weight="normal", colour="#222", anchor="middle") -> str:
    return (f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" font-weight="{weight}" fill="{colour}" '
            f'text-anchor="{anchor}">{escape(s)}</text>')


def _text_w(s: str, size: float = 11) -> float:
    return len(s) * CHAR_W * size / 11


def to_svg(graph: Graph, expand: bool = False, detail: str = "low", title: str = "net") -> str:
    fold = Fold(graph, expand=expand)
    units = [Unit([], graph.input_shape, "input")] + main_path(fold)
    for u in units:
        t, h, o = box_size(u.shape)
        labels = [u.title, fmt_shape(u.shape), u.sub]
        u.width = max(t + o, max(_text_w(s) for s in labels if s) if labels else 0)
    x = 12.0
    for u in units:
        u.x = x
        x += u.width + GAP
    width = x - GAP + 12
    badge_y = 34
    levels = max(len(u.repeats) for u in units)   # nested repeats: one row of badges each
    title_y = badge_y + 16 + BADGE_ROW * max(levels - 1, 0)
    cy = title_y + 14 + max(box_size(u.shape)[2] + box_size(u.shape)[1] / 2 for u in units)
    vol_y = cy + max(box_size(u.shape)[1] / 2 for u in units) + 16
    rows = [vol_y + 13 * (3 if detail == "high" else 2)]
    body, marks = [], []
    for i, u in enumerate(units):
        t, h, o = box_size(u.shape)
        bx = u.x + (u.width - (t + o)) / 2
        fill = COLOUR.get(u.nodes[-1].op, "#ffffff") if u.nodes and not u.block else ("#fff2cc" if u.block else "#ffffff")
        tip = " | ".join(n.name for n in u.nodes[:6]) + (" ..." if len(u.nodes) > 6 else "")
        body.append(f"<g><title>{escape(tip or 'input')}</title>")
        body += _cuboid(bx, cy, u.shape, fill, u.block)
        body.append("</g>")
        mid = u.x + u.width / 2
        body.append(_text(mid, title_y, u.title, weight="bold" if u.block or not u.nodes else "normal"))
        body.append(_text(mid, vol_y, fmt_shape(u.shape), size=11, colour="#000"))
        if u.sub:
            body.append(_text(mid, vol_y + 13, u.sub, size=9, colour="#666"))
        if detail == "high" and u.nodes:
            params = sum(n.meta.get("params", 0) for n in u.nodes)
            body.append(_text(mid, vol_y + (26 if u.sub else 13), f"{_num(params)} params", size=9, colour="#666"))
        if i + 1 < len(units):   # a small arrow through the gap
            ax = u.x + u.width + 3
            body.append(f'<path d="M{ax:.1f},{cy:.1f} h{GAP - 7}" stroke="#888" stroke-width="1" '
                        f'marker-end="url(#arrow)"/>')
    marks += _badges(units, badge_y)
    brackets = _brackets(units, rows[0])
    marks += brackets
    height = rows[0] + (52 if brackets else 4)
    head = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
            f'viewBox="0 0 {width:.0f} {height:.0f}" font-family="{FONT}">\n'
            f"<title>{escape(title)}</title>\n"
            '<defs><marker id="arrow" viewBox="0 0 6 6" refX="5" refY="3" markerWidth="6" markerHeight="6" '
            'orient="auto"><path d="M0,0 L6,3 L0,6 z" fill="#888"/></marker>'
            '<filter id="shade1"><feColorMatrix type="matrix" values="0.92 0 0 0 0 0 0.92 0 0 0 0 0 0.92 0 0 0 0 0 1 0"/></filter>'
            '<filter id="shade2"><feColorMatrix type="matrix" values="0.8 0 0 0 0 0 0.8 0 0 0 0 0 0.8 0 0 0 0 0 1 0"/></filter>'
            '</defs>\n'
            f'<rect width="100%" height="100%" fill="#ffffff"/>\n'
            + _text(12, 20, title, size=13, weight="bold", anchor="start") + "\n")
    return head + "\n".join(body + marks) + "\n</svg>\n"


def _runs(units, key):
    """Maximal runs of consecutive units with the same non-None key: (key, first, last)."""
    out, start = [], 0
    for i in range(1, len(units) + 1):
        if i == len(units) or key(units[i]) != key(units[start]):
            k = key(units[start])
            if k is not None:
                out.append((k, units[start], units[i - 1]))
            start = i
    return out


def _badges(units, y) -> list[str]:
    """`x N` over the units of each folded repeat: the outermost in the top row, a repeat nested in
    it (`[(CONV-RELU)*N - POOL]*M`) in the row below, over its own units only."""
    out = []
    for level in range(max(len(u.repeats) for u in units)):
        row = y + BADGE_ROW * level
        for rep, a, b in _runs(units, lambda u: u.repeats[level] if len(u.repeats) > level else None):
            x0, x1 = a.x + 2 * level, b.x + b.width - 2 * level
            out.append(f'<path d="M{x0:.1f},{row + 5:.1f} v-4 H{x1:.1f} v4" fill="none" stroke="#b45f06" '
                       f'stroke-width="1"/>')
            out.append(_text((x0 + x1) / 2, row - 3, f"x {rep.count}", size=11, weight="bold", colour="#b45f06"))
    return out


def _frame_at(u: Unit, depth: int):
    if not u.nodes:
        return None
    named = [f for f in u.nodes[-1].frames if f.kind != "repeat"]
    if u.block:   # the block a block unit is named after is not marked again below it
        inner = _block_frames(u)
        named = [f for f in named if f not in inner]
    return named[depth] if len(named) > depth else None


def _block_frames(u: Unit):
    common = set(u.nodes[0].frames)
    for n in u.nodes[1:]:
        common &= set(n.frames)
    deepest = [f for f in u.nodes[-1].frames if f in common and f.kind != "repeat"]
    return set(deepest[-1:])


def _brackets(units, y0) -> list[str]:
    """Named parts spanning two units or more, as brackets under the volume labels (two levels)."""
    out = []
    for depth, y in ((1, y0), (0, y0 + 26)):
        for frame, a, b in _runs(units, lambda u: _frame_at(u, depth)):
            if a is b and not a.block:   # a labelled single layer: its label adds nothing
                continue
            x0, x1 = a.x + 2, b.x + b.width - 2
            out.append(f'<path d="M{x0:.1f},{y - 6:.1f} v5 H{x1:.1f} v-5" fill="none" stroke="#777" stroke-width="1"/>')
            name = frame.path.rsplit(".", 1)[-1] or frame.name
            out.append(_text((x0 + x1) / 2, y + 11, name, size=10, colour="#444"))
    return out
