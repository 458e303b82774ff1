"""Style `volumes`: the hand-drawn LeNet/AlexNet figure, as SVG written directly (no graphviz).

    >>> import cnndsl
    >>> net = cnndsl.loads("input 32x32x1\\nCONV(6, 5) - TANH - AVGPOOL(2) - CONV(16, 5) - FC(120) - FC(10)")
    >>> svg = to_svg(net.graph)
    >>> svg.startswith("<svg"), "28x28x6" in svg, "5x5/1, 16" in svg
    (True, True, True)

Every volume on the main path is a cuboid, left to right: its height follows H,
its receding depth W and its length along the path the channels C (square root
for H and W, log2 for C, so a 224x224x3 input and a 7x7x512 map both stay
legible, and 512 channels are drawn near twice as long as 64); FC outputs are
thin bars. Layers that keep their input's volume (activations, normalisation,
dropout) get no box: they are named under the box before them. A folded repeat
whose passes change the volume (a stage of the classic pattern pools, a dense
block grows) shows its first and last pass. A parallel section (an
Inception module, a residual block) is one box named after its block: the main
path is the sequence of cut points, nodes that every route from input to output
passes. Folded repeats carry an `x N` badge; named parts are brackets below.

The drawing is a list of shapes (`Poly`, `Text`, `Arrow`) in px, written as SVG
here and rasterised by matplotlib (draw/raster.py), so PNG and PDF need no extra
package. `rows` wraps a long net into rows to suit a slide's aspect ratio.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from xml.sax.saxutils import escape

from .fold import Fold
from .graph import fill_colour, is_minor, _num
from ..ir import Graph, Node
from ..kinds import KINDS, fmt_shape

FONT = "Helvetica, Arial, sans-serif"
GAP = 16
BADGE_ROW = 18        # vertical distance between the badge rows of nested repeats
ROW_GAP = 18          # vertical space between the rows of a wrapped figure


@dataclass
class Unit:
    """One box on the main path: a layer, or a parallel section ending in `nodes[-1]`."""
    nodes: list
    shape: tuple                 # the volume after its first pass
    title: str
    sub: str = ""
    block: bool = False
    x: float = 0.0
    width: float = 0.0
    repeats: list = field(default_factory=list)    # folded Repeat objects around it
    last: tuple | None = None    # the volume after the last pass of a folded repeat
    after: list = field(default_factory=list)      # the volume-keeping layers that follow it

    def shapes(self) -> list:
        """The volumes drawn: the first pass's, and the last pass's where a folded repeat changes it."""
        return [self.shape] + ([self.last] if self.last and self.last != self.shape else [])

    def volume(self) -> str:
        return " … ".join(fmt_shape(s) for s in self.shapes())

    def note(self) -> str:
        """The join of a block and the layers drawn without a box after it: `ADD, RELU`, `RELU, LRN`."""
        return ", ".join(([self.sub] if self.sub else []) + self.after)


def main_path(fold: Fold) -> list[Unit]:
    """The input, then the cut points in execution order; the nodes between two cut points form
    one block unit; a layer that keeps its input's volume is noted on the unit before it."""
    pos = {"input": -1, **{n.name: i for i, n in enumerate(fold.nodes)}}
    furthest = {}                   # node -> the furthest position its output goes to
    for a, b in fold.edges:
        furthest[a] = max(furthest.get(a, -1), pos[b])
    reach = furthest.get("input", -1)   # the furthest any edge from before node i goes
    units, pending = [Unit([], fold.graph.input_shape, "input")], []
    for i, n in enumerate(fold.nodes):
        cut = reach <= i
        reach = max(reach, furthest.get(n.name, -1))
        if not cut:
            pending.append(n)
            continue
        if pending:
            units.append(_block_unit(pending + [n]))
            pending = []
        elif is_minor(n):
            units[-1].after.append(n.op)
        elif n.op != "FLATTEN":    # a flatten only reshapes: the FC after it shows the vector
            desc = KINDS[n.op].describe(n.attrs)
            units.append(Unit([n], n.out_shape, f"{n.op} {desc}".strip()))
    if pending:
        units.append(_block_unit(pending))
    for u in units[1:]:
        u.repeats = fold.repeat_of(u.nodes[-1])
        u.last = fold.last[u.nodes[-1].name].out_shape   # after all passes of a folded repeat
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


# ---- shapes ------------------------------------------------------------------------
@dataclass
class Poly:
    points: list
    fill: str = "none"
    stroke: str = "#444"
    width: float = 0.8
    dashed: bool = False
    closed: bool = True
    tip: str = ""


@dataclass
class Text:
    x: float
    y: float
    s: str
    size: float = 11
    weight: str = "normal"
    colour: str = "#222"
    anchor: str = "middle"     # SVG's text-anchor: start, middle, end


@dataclass
class Arrow:
    x0: float
    y: float
    x1: float


@dataclass
class Figure:
    width: float
    height: float
    title: str
    items: list


# ---- geometry --------------------------------------------------------------------
def _side(v: int) -> float:
    return max(8.0, min(220.0, 14 * math.sqrt(v)))


def _thick(c: int) -> float:
    """Length along the path: 10 px per doubling of the channels from 4, so depth reads on a log
    scale (64 -> 40, 512 -> 70, 2048 -> 90) rather than 4 + 6 per doubling, where 64 and 512 looked alike."""
    return max(4.0, min(90.0, 10 * (math.log2(max(c, 1)) - 2)))


def box_size(shape: tuple) -> tuple[float, float, float]:
    """(length along the path, height, receding offset) of a volume's cuboid."""
    if len(shape) == 1:
        return 10.0, max(20.0, min(160.0, 20 + 22 * math.log10(max(shape[0], 1)))), 6.0
    H, W, C = shape
    return _thick(C), _side(H), _side(W) * 0.35


def shade(colour: str, f: float) -> str:
    """`colour` (#rrggbb) darkened by the factor `f`: the lid and the side of a cuboid."""
    rgb = [int(colour[i:i + 2], 16) for i in (1, 3, 5)]
    return "#" + "".join(f"{round(v * f):02x}" for v in rgb)


def _cuboid(x: float, cy: float, shape: tuple, fill: str, dashed: bool, tip: str) -> list[Poly]:
    t, h, o = box_size(shape)
    top, bot = cy - h / 2, cy + h / 2
    front = [(x, top), (x + t, top), (x + t, bot), (x, bot)]
    lid = [(x, top), (x + o, top - o), (x + t + o, top - o), (x + t, top)]
    side = [(x + t, top), (x + t + o, top - o), (x + t + o, bot - o), (x + t, bot)]
    return [Poly(side, shade(fill, 0.8), dashed=dashed, tip=tip), Poly(lid, shade(fill, 0.92), dashed=dashed, tip=tip),
            Poly(front, fill, dashed=dashed, tip=tip)]


def _cuboids_size(shapes) -> tuple[float, float, float]:
    """(width, highest half-height above the centre incl. the lid, half-height below) of a unit's cuboids."""
    sizes = [box_size(s) for s in shapes]
    width = sum(t + o for t, _, o in sizes) + 6 * (len(sizes) - 1)
    return width, max(o + h / 2 for _, h, o in sizes), max(h / 2 for _, h, _ in sizes)


# Glyph widths in em of DejaVu Sans (matplotlib's font, wider than Helvetica): labels are laid out
# without a font engine, so the widest likely font is measured.
_EM = {**{c: 0.64 for c in "0123456789"}, **{c: 0.32 for c in " .,:;/()[]|'!"},
       "x": 0.59, "…": 1.0, "-": 0.36, "+": 0.84, "_": 0.5}


def text_w(s: str, size: float = 11, bold: bool = False) -> float:
    em = sum(_EM.get(c, 0.74 if c.isupper() else 0.62) for c in s)
    return em * size * (1.1 if bold else 1.0)


def _text(x, y, s, size=11, weight="normal", colour="#222", anchor="middle") -> Text:
    return Text(x, y, s, size, weight, colour, anchor)


def _labels(u: Unit, detail: str) -> list[tuple[str, float, bool]]:
    out = [(u.title, 11, u.block or not u.nodes), (u.volume(), 11, False)]
    if u.note():
        out.append((u.note(), 9, False))
    if detail == "high" and u.nodes:
        out.append((f"{_num(sum(n.meta.get('params', 0) for n in u.nodes))} params", 9, False))
    return out


def to_figure(graph: Graph, expand: bool = False, detail: str = "low", title: str = "net",
              aspect: float | None = None) -> Figure:
    """The volumes of `graph` as shapes; `aspect` (width / height) wraps the path into the rows
    that come closest to it."""
    units = main_path(Fold(graph, expand=expand))
    for u in units:
        u.width = max(_cuboids_size(u.shapes())[0], max(text_w(s, z, b) for s, z, b in _labels(u, detail)))
    rows = _split(units, aspect, detail)
    items, y = [_text(12, 20, title, size=13, weight="bold", anchor="start")], 30.0
    width = 0.0
    for r, row in enumerate(rows):
        x = 12.0 + (GAP if r else 0)
        for u in row:
            u.x = x
            x += u.width + GAP
        width = max(width, x - GAP + 12)
        (cy, *strip), height = _strip(row, detail, last_row=r == len(rows) - 1)
        if r:   # the path goes on from the end of the row above
            items.append(Arrow(12.0, y + cy, 12.0 + GAP - 4))
        items += _moved(strip, y)
        y += height + ROW_GAP
    return Figure(width, y - ROW_GAP + 4, title, items)


def _strip_height(units, detail) -> float:
    return _strip(units, detail, True)[1]


def _split(units: list[Unit], aspect: float | None, detail: str) -> list[list[Unit]]:
    """Units in rows of about equal width: as many rows as bring width / height closest to `aspect`."""
    if not aspect or len(units) < 4:
        return [units]
    total = sum(u.width + GAP for u in units)
    strip = _strip_height(units, detail) + ROW_GAP
    best = min(range(1, len(units) // 2 + 1),
               key=lambda r: abs(math.log((total / r + 24) / (30 + r * strip)) - math.log(aspect)))
    rows, acc, k = [[]], 0.0, 1
    for u in units:
        if acc + u.width / 2 > total * k / best and rows[-1]:
            rows.append([])
            k += 1
        rows[-1].append(u)
        acc += u.width + GAP
    return rows


def _moved(items, dy):
    for it in items:
        if isinstance(it, Poly):
            it.points = [(x, y + dy) for x, y in it.points]
        else:
            it.y += dy
    return items


def _strip(units: list[Unit], detail: str, last_row: bool) -> tuple[list, float]:
    """One row of units from y = 0: ([centre line y, shapes...], height)."""
    levels = max(len(u.repeats) for u in units)   # nested repeats: one row of badges each
    badge_y = 10 if levels else 0
    title_y = badge_y + 16 + BADGE_ROW * max(levels - 1, 0)
    cy = title_y + 14 + max(_cuboids_size(u.shapes())[1] for u in units)
    vol_y = cy + max(_cuboids_size(u.shapes())[2] for u in units) + 16
    lines = max(len(_labels(u, detail)) for u in units) - 1
    below = vol_y + 13 * lines
    out = [cy]
    for i, u in enumerate(units):
        cw = _cuboids_size(u.shapes())[0]
        bx = u.x + (u.width - cw) / 2
        fill = "#ffffff" if not u.nodes else ("#fff2cc" if u.block else fill_colour(u.nodes[-1].op))
        tip = " | ".join(n.name for n in u.nodes[:6]) + (" ..." if len(u.nodes) > 6 else "")
        for s in u.shapes():
            out += _cuboid(bx, cy, s, fill, u.block, tip or "input")
            t, _, o = box_size(s)
            bx += t + o + 6
        mid = u.x + u.width / 2
        labels = _labels(u, detail)
        out.append(_text(mid, title_y, labels[0][0], weight="bold" if labels[0][2] else "normal"))
        out.append(_text(mid, vol_y, labels[1][0], colour="#000"))
        for k, (s, size, _) in enumerate(labels[2:]):
            out.append(_text(mid, vol_y + 13 * (k + 1), s, size=size, colour="#666"))
        if i + 1 < len(units) or not last_row:   # a small arrow through the gap
            out.append(Arrow(u.x + u.width + 3, cy, u.x + u.width + GAP - 4))
    if levels:
        out += _badges(units, badge_y)
    brackets = _brackets(units, below + 14)
    out += brackets
    return out, below + (14 + 40 if brackets else 4)


def to_svg(graph: Graph, expand: bool = False, detail: str = "low", title: str = "net",
           aspect: float | None = None, size: tuple | None = None) -> str:
    """The figure as SVG; `size` (px) scales it to fit that box."""
    return svg_of(to_figure(graph, expand, detail, title, aspect), size)


def svg_of(fig: Figure, size: tuple | None = None) -> str:
    s = min(size[0] / fig.width, size[1] / fig.height) if size else 1.0
    body = []
    for it in fig.items:
        if isinstance(it, Poly):
            pts = " ".join(f"{x:.1f},{y:.1f}" for x, y in it.points)
            dash = ' stroke-dasharray="3,2"' if it.dashed else ""
            tag = "polygon" if it.closed else "polyline"
            tip = f"<title>{escape(it.tip)}</title>" if it.tip else ""
            body.append(f'<{tag} points="{pts}" fill="{it.fill}" stroke="{it.stroke}" '
                        f'stroke-width="{it.width}"{dash}>{tip}</{tag}>')
        elif isinstance(it, Text):
            body.append(f'<text x="{it.x:.1f}" y="{it.y:.1f}" font-size="{it.size}" font-weight="{it.weight}" '
                        f'fill="{it.colour}" text-anchor="{it.anchor}">{escape(it.s)}</text>')
        else:
            body.append(f'<path d="M{it.x0:.1f},{it.y:.1f} H{it.x1:.1f}" stroke="#888" stroke-width="1" '
                        f'marker-end="url(#arrow)"/>')
    head = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{fig.width * s:.0f}" height="{fig.height * s:.0f}" '
            f'viewBox="0 0 {fig.width:.0f} {fig.height:.0f}" font-family="{FONT}">\n'
            f"<title>{escape(fig.title)}</title>\n"
            '<defs><marker id="arrow" viewBox="0 0 6 6" refX="5" refY="3" markerWidth="6" markerHeight="6" '
            'orient="auto"><path d="M0,0 L6,3 L0,6 z" fill="#888"/></marker></defs>\n'
            '<rect width="100%" height="100%" fill="#ffffff"/>\n')
    return head + "\n".join(body) + "\n</svg>\n"


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


def _badges(units, y) -> list:
    """`x N` over the units of each folded repeat: the outermost in the top row, a repeat nested in
    it (`[(CONV-RELU)*N - POOL]*M`) in the row below, over its own units only."""
    out = []
    for level in range(max(len(u.repeats) for u in units)):
        row = y + BADGE_ROW * level
        for rep, a, b in _runs(units, lambda u: u.repeats[level] if len(u.repeats) > level else None):
            x0, x1 = a.x + 2 * level, b.x + b.width - 2 * level
            out.append(Poly([(x0, row + 5), (x0, row + 1), (x1, row + 1), (x1, row + 5)], stroke="#b45f06",
                            width=1, closed=False))
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


def _brackets(units, y0) -> list:
    """Named parts spanning two units or more, as brackets under the volume labels (two levels)."""
    out = []
    for depth, y in ((1, y0), (0, y0 + 26)):
        for frame, a, b in _runs(units, lambda u: _frame_at(u, depth)):
            if a is b and not a.block:   # a labelled single layer: its label adds nothing
                continue
            x0, x1 = a.x + 2, b.x + b.width - 2
            out.append(Poly([(x0, y - 6), (x0, y - 1), (x1, y - 1), (x1, y - 6)], stroke="#777", width=1, closed=False))
            name = frame.path.rsplit(".", 1)[-1] or frame.name
            out.append(_text((x0 + x1) / 2, y + 11, name, size=10, colour="#444"))
    return out
