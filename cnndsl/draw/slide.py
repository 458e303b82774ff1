"""Pictures for a slide: the box a rendered diagram fits (`--size`, `--dpi`) and the wrapping of a
long graph into columns (TB) or rows (LR) that brings its shape close to the box's.

    >>> parse_size("1920x1080", 144), parse_size("13.333x7.5in", 144), parse_size("10x5in", 100)
    ((1920, 1080), (1920, 1080), (1000, 500))

A folded ResNet-50 laid out top to bottom is a strip about six times taller than wide; cut into k
columns it is k^2 times wider for its height. The cuts fall between layers that every route
passes (a cut point of the main path), near equal heights of the unwrapped layout, and each k
near the estimate is laid out by `dot` itself: the one closest to the box's aspect wins.
"""
from __future__ import annotations

import math
import re
import subprocess

from ..errors import CnnError
from .graph import is_minor

SLIDE_IN = (13.333, 7.5)    # a 16:9 slide (PowerPoint's, in inches)
DPI = 144                   # 1920x1080 px on that slide
SIZE_HINT = "give --size WxH in px (1920x1080) or inches (13.33x7.5in), and --dpi N"


def parse_size(text, dpi: int) -> tuple[int, int]:
    """`WxH` in px, or `WxHin` in inches at `dpi`, as whole px."""
    if isinstance(text, (tuple, list)):     # (w, h) in px, or (w, h, "in")
        w, h, unit = (*text, "px")[:3]
    else:
        m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*[xX]\s*([0-9]*\.?[0-9]+)\s*(px|in)?\s*", str(text))
        if not m:
            raise CnnError(f"cannot read the size {text!r}", usage=True, hint=SIZE_HINT)
        w, h, unit = float(m.group(1)), float(m.group(2)), m.group(3) or "px"
    if unit == "in":
        w, h = w * dpi, h * dpi
    w, h = round(w), round(h)
    if not (16 <= w <= 20000 and 16 <= h <= 20000):
        raise CnnError(f"the size {w}x{h} px is out of range (16 to 20000 px a side)", usage=True, hint=SIZE_HINT)
    return w, h


def check_dpi(dpi) -> int:
    if dpi is None:
        return DPI
    if not (isinstance(dpi, int) and 10 <= dpi <= 2400):
        raise CnnError(f"the dpi {dpi!r} is out of range (10 to 2400)", usage=True, hint=SIZE_HINT)
    return dpi


def layout(exe: str, dot_text: str) -> tuple[float, float, dict]:
    """(width, height, {node: (x, y)}) in inches of dot's layout (`-Tplain`; y grows upwards)."""
    done = subprocess.run([exe, "-Tplain"], input=dot_text.encode("utf-8"), capture_output=True, timeout=300)
    if done.returncode != 0:
        err = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise CnnError(f"dot could not lay the graph out: {err[-1] if err else done.returncode}", usage=True,
                       hint="write the DOT with -o OUT.dot and inspect it")
    width = height = 0.0
    pos = {}
    for line in done.stdout.decode("utf-8", "replace").splitlines():
        f = _fields(line)
        if f and f[0] == "graph":
            width, height = float(f[2]), float(f[3])
        elif f and f[0] == "node":
            pos[f[1]] = (float(f[2]), float(f[3]))
    return width, height, pos


def _fields(line: str) -> list[str]:
    """The fields of a -Tplain line; a quoted name may hold spaces and escaped quotes."""
    return [a if a is not None and a != "" else b.replace('\\"', '"')
            for a, b in re.findall(r'([^\s"]+)|"((?:[^"\\]|\\.)*)"', line)]


def cut_points(fold) -> list[int]:
    """Indexes i into fold.nodes where a column may start: every edge from before i that goes to i
    or beyond comes from node i - 1 (nothing else runs past the cut)."""
    pos = {"input": -1, **{n.name: i for i, n in enumerate(fold.nodes)}}
    furthest: dict[str, int] = {}
    for a, b in fold.edges:
        furthest[a] = max(furthest.get(a, -1), pos[b])
    out, reach = [], furthest.get("input", -1)   # reach: the furthest an edge from before node i - 1 goes
    for i in range(1, len(fold.nodes)):
        if reach <= i - 1:
            out.append(i)
        reach = max(reach, furthest.get(fold.nodes[i - 1].name, -1))
    return out


def choose_starts(fold, depth: dict, k: int) -> tuple:
    """k - 1 column starts at the cut points nearest to k equal shares of the layout's depth
    (`depth`: node -> distance from the top, in the direction of the flow)."""
    cuts = [i for i in cut_points(fold) if fold.nodes[i].name in depth]
    # a column does not start with an activation (it goes with its layer) or inside an `x N` frame
    neat = [i for i in cuts if not is_minor(fold.nodes[i])
            and not set(map(id, fold.repeat_of(fold.nodes[i]))) & set(map(id, fold.repeat_of(fold.nodes[i - 1])))]
    cuts = neat or cuts
    total = max(depth.values(), default=0.0)
    starts: list[int] = []
    for j in range(1, k):
        free = [i for i in cuts if not starts or i > starts[-1]]
        if not free:
            break
        target = total * j / k
        starts.append(min(free, key=lambda i: abs(depth[fold.nodes[i].name] - target)))
    return tuple(starts)


def wrap(exe: str, fold, make_dot, rankdir: str, aspect: float) -> tuple:
    """The column starts for which the layout of `make_dot(starts)` has a width / height closest
    to `aspect` (no starts: the graph is drawn in one strip)."""
    w, h, pos = layout(exe, make_dot(()))
    if not w or not h:
        return ()
    flow, across = (h, w) if rankdir == "TB" else (w, h)
    # depth along the flow: from the top in TB (y grows upwards), from the left in LR
    depth = {n: (h - y if rankdir == "TB" else x) for n, (x, y) in pos.items()}
    goal = aspect if rankdir == "TB" else 1 / aspect          # across / flow of the picture
    k0 = math.sqrt(max(goal * flow / across, 1.0))
    best = (abs(math.log(w / h / aspect)), ())
    for k in range(max(2, math.floor(k0) - 1), math.ceil(k0) + 2):
        if k > len(fold.nodes) // 3:
            break
        starts = choose_starts(fold, depth, k)
        if not starts:
            continue
        cw, ch, _ = layout(exe, make_dot(starts))
        if cw and ch:
            best = min(best, (abs(math.log(cw / ch / aspect)), starts), key=lambda b: b[0])
    return best[1]
