"""Architecture diagrams: `graph` (graphviz DOT, rendered by `dot`) and `volumes` (SVG of cuboids).

    >>> import cnndsl
    >>> net = cnndsl.loads("input 32x32x3\\nCONV(8, 3, p=1) - RELU - MAXPOOL(2) - FC(10)")
    >>> draw(net).startswith('digraph "net"')
    True
    >>> draw(net, style="volumes").startswith("<svg")
    True

`draw(net, "out.svg")` renders with graphviz's `dot` program (svg, png, pdf) or
writes the DOT itself (`.dot`). Without `dot` the DOT is still written next to
the requested file and the error says how to install graphviz. The volume
style is SVG written directly; its PNG/PDF are drawn by matplotlib (raster.py).
A rendered picture fits a box (`size`, default a 16:9 slide) and a long net
wraps into columns or rows to suit it (slide.py).
"""
from __future__ import annotations

import os
import shutil
import subprocess

from ..errors import CnnError
from ..files import atomic_write
from . import slide

STYLES = ("graph", "volumes")
FORMATS = {"graph": ("svg", "png", "pdf", "dot"), "volumes": ("svg", "png", "pdf")}
INSTALL = ("install graphviz (it provides `dot`): apt-get install graphviz, brew install graphviz, "
           "or conda install -c conda-forge graphviz")


def draw(net, path=None, style="graph", rankdir=None, expand=False, detail="low", size=None, dpi=None):
    """Draw `net`; return the written path, or the DOT (graph) / SVG (volumes) text when `path` is None.

    A rendered picture (svg, png, pdf) fits `size` ("WxH" px, "WxHin" inches at `dpi`; default a
    16:9 slide, 1920x1080 px at 144 dpi) and a long net wraps into columns (rows with LR, and for
    the volumes style) to come close to its shape. The DOT (`.dot`, or no path) is the plain one."""
    if style not in STYLES:
        raise CnnError(f"unknown diagram style {style!r}", usage=True, hint="choose graph or volumes")
    if detail not in ("low", "high"):
        raise CnnError(f"unknown detail {detail!r}", usage=True, hint="choose low or high")
    if rankdir not in (None, "TB", "LR"):
        raise CnnError(f"unknown rankdir {rankdir!r}", usage=True, hint="choose TB or LR")
    fmt = None
    if path is not None:
        path = os.fspath(path)
        fmt = os.path.splitext(path)[1].lower().lstrip(".")
        if fmt not in FORMATS[style]:
            raise CnnError(f"cannot draw the {style} style as {'.' + fmt if fmt else 'a file without extension'}: "
                           f"{path}", usage=True,
                           hint=f"name the output {' / '.join('OUT.' + f for f in FORMATS[style])}")
    dpi = slide.check_dpi(dpi)
    box = slide.parse_size(size or (*slide.SLIDE_IN, "in"), dpi)
    if path is None and size is None:
        box = None      # the text of draw(net): the plain figure
    _analyze(net)
    if style == "volumes":
        from . import volumes
        aspect = box[0] / box[1] if box else None
        fig = volumes.to_figure(net.graph, expand=expand, detail=detail, title=net.name, aspect=aspect)
        if fmt in ("png", "pdf"):
            from .raster import render
            data = render(fig, fmt, box, dpi)
        else:
            data = volumes.svg_of(fig, box).encode("utf-8")
        if path is None:
            return data.decode("utf-8")
        atomic_write(path, data)
        return path
    from .graph import to_dot
    if path is None or fmt == "dot":
        text = to_dot(net.graph, rankdir=rankdir, expand=expand, detail=detail, title=net.name)
        if path is None:
            return text
        atomic_write(path, text.encode("utf-8"))
        return path
    atomic_write(path, render_graph(net, fmt, path, box, dpi, rankdir=rankdir, expand=expand, detail=detail))
    return path


def render_graph(net, fmt: str, path: str, box: tuple, dpi: int, rankdir=None, **kw) -> bytes:
    """The graph style rendered by `dot`, wrapped to the box's aspect and scaled to fit it."""
    from .fold import Fold
    from .graph import to_dot
    rankdir = rankdir or "TB"
    fit = f', size="{box[0] / dpi:.4f},{box[1] / dpi:.4f}!", dpi={dpi}, pad=0.1'

    def make(starts, extra=""):
        return to_dot(net.graph, rankdir=rankdir, title=net.name, starts=starts, extra=extra, **kw)
    exe = find_dot()
    if exe is None:
        return render_dot(make(()), fmt, path)   # says how to install dot, leaves the DOT
    starts = slide.wrap(exe, Fold(net.graph, expand=kw.get("expand", False)), make, rankdir, box[0] / box[1])
    return render_dot(make(starts, fit), fmt, path)


def _analyze(net):
    """Parameters and MACs for the tooltips (the analysis annotates node.meta)."""
    if not all("params" in n.meta for n in net.graph.nodes):
        from ..analysis.analyze import analyze
        analyze(net.graph)


def find_dot():
    return shutil.which("dot")


def dot_fallback(path, style: str = "graph") -> str | None:
    """The file `draw(net, path)` writes the DOT to instead when graphviz's `dot` is missing (None when
    it would not: dot is installed, or nothing is rendered by dot). A command checks it as it checks
    `path` (never over the spec: cnndsl.outputs.check_target) before drawing."""
    if path is None or style != "graph" or find_dot() is not None:
        return None
    return None if os.fspath(path).lower().endswith(".dot") else _dot_beside(path)


def _dot_beside(path) -> str:
    return os.path.splitext(os.fspath(path))[0] + ".dot"


def render_dot(text: str, fmt: str, path: str) -> bytes:
    """Run graphviz's `dot` on `text`; without it, leave the DOT beside `path` and say how to get dot."""
    exe = find_dot()
    if exe is None:
        dot_path = _dot_beside(path)  # dot_fallback(path): the command checked it before drawing
        atomic_write(dot_path, text.encode("utf-8"))
        raise CnnError(f"graphviz's `dot` program is not installed, so {path} was not rendered; "
                       f"the DOT source is in {dot_path}", usage=True,
                       hint=f"{INSTALL}; then rerun, or run: dot -T{fmt} {dot_path} -o {path}")
    try:
        done = subprocess.run([exe, f"-T{fmt}"], input=text.encode("utf-8"), capture_output=True, timeout=300)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise CnnError(f"running {exe} failed: {e}", usage=True, hint=INSTALL) from None
    if done.returncode != 0 or not done.stdout:
        err = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise CnnError(f"dot could not render {path}: {err[-1] if err else 'exit status ' + str(done.returncode)}",
                       usage=True, hint="write the DOT with -o OUT.dot and inspect it")
    return done.stdout
