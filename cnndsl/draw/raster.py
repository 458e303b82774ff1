"""PNG and PDF of the volumes figure, drawn with matplotlib (a dependency already), so the style
needs neither cairosvg nor the cairo library.

The figure's shapes are in px (SVG user units); `size` is the box in px the picture must fit and
`dpi` the resolution written into it: one unit becomes `scale` px, fonts and line widths follow.
matplotlib draws with DejaVu Sans, which it ships, so the text is the same on every machine.

    >>> import cnndsl
    >>> from cnndsl.draw.volumes import to_figure
    >>> fig = to_figure(cnndsl.loads("input 32x32x3\\nCONV(8, 3) - FC(10)").graph)
    >>> render(fig, "png", (640, 360), 96)[:8] == b"\\x89PNG\\r\\n\\x1a\\n"
    True
"""
from __future__ import annotations

import io

from .volumes import Arrow, Figure, Poly, Text

ANCHOR = {"start": "left", "middle": "center", "end": "right"}


def render(fig: Figure, fmt: str, size: tuple, dpi: int) -> bytes:
    from matplotlib.figure import Figure as MplFigure
    from matplotlib.patches import FancyArrowPatch, Polygon

    scale = min(size[0] / fig.width, size[1] / fig.height)        # px per unit
    pt = scale / dpi * 72                                           # points per unit
    # whole pixels, so the picture is exactly the box on its fitting side
    w_px, h_px = round(fig.width * scale), round(fig.height * scale)
    mfig = MplFigure(figsize=(w_px / dpi, h_px / dpi), dpi=dpi, facecolor="white")
    ax = mfig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, fig.width)
    ax.set_ylim(fig.height, 0)
    ax.set_axis_off()
    for it in fig.items:
        if isinstance(it, Poly):
            ax.add_patch(Polygon(it.points, closed=it.closed, facecolor=it.fill, edgecolor=it.stroke,
                                 linewidth=it.width * pt, linestyle=(0, (3, 2)) if it.dashed else "-",
                                 joinstyle="miter"))
        elif isinstance(it, Text):
            ax.text(it.x, it.y, it.s, fontsize=it.size * pt, fontweight=it.weight, color=it.colour,
                    ha=ANCHOR[it.anchor], va="baseline", family="DejaVu Sans")
        elif isinstance(it, Arrow):
            ax.add_patch(FancyArrowPatch((it.x0, it.y), (it.x1, it.y), arrowstyle="-|>", color="#888888",
                                         linewidth=pt, mutation_scale=6 * pt, shrinkA=0, shrinkB=0))
    buf = io.BytesIO()
    mfig.savefig(buf, format=fmt, dpi=dpi, facecolor="white")
    return buf.getvalue()
