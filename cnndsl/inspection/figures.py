"""Pictures for a slide: matplotlib's object API on an Agg canvas (no display, no pyplot state), a 16:9
page at 144 dpi (1920x1080 px) unless a figure needs another shape, fonts readable from the back
of a room, a colour bar beside every heat map.

Images are shown in the training data's own units (`Subject.raw`), gray or RGB, on the value range
the checkpoint records, so two pictures of one net compare.
"""
from __future__ import annotations

import io
import math

import numpy as np

SLIDE = (13.33, 7.5)  # inches: 16:9
DPI = 144
FONTS = {"font.size": 13, "axes.titlesize": 13, "figure.titlesize": 17, "axes.labelsize": 13,
         "xtick.labelsize": 11, "ytick.labelsize": 11, "legend.fontsize": 12}
HEAT = "inferno"       # magnitudes (saliency, activations)
SIGNED = "RdBu_r"      # signed values centred on 0 (weights, occlusion's score change)
PADDING = (0.85, 0.55, 0.2)  # a receptive field's cells outside the image: drawn as padding, not as pixels


def figure(size=SLIDE):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    with _fonts():
        fig = Figure(figsize=size, dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _fonts():
    import matplotlib
    return matplotlib.rc_context(FONTS)


def render(fig, ext="png") -> bytes:
    buf = io.BytesIO()
    with _fonts():
        fig.savefig(buf, format=ext, dpi=DPI, facecolor="white")
    return buf.getvalue()


def grid(n, aspect=16 / 9, max_cols=None):
    """(rows, cols) for n panels on a page of this aspect."""
    cols = max(1, math.ceil(math.sqrt(n * aspect)))
    if max_cols:
        cols = min(cols, max_cols)
    cols = min(cols, n)
    return math.ceil(n / cols), cols


def show(ax, img, value_range=None, title=None):
    """An image (C, H, W) or (H, W) in raw units: gray for one channel, RGB for three."""
    img = np.asarray(img, np.float64)
    if img.ndim == 3 and img.shape[0] == 1:
        img = img[0]
    lo, hi = value_range if value_range is not None else (np.nanmin(img), np.nanmax(img))
    if img.ndim == 3:
        rgb = np.clip((img.transpose(1, 2, 0) - lo) / ((hi - lo) or 1), 0, 1)
        im = ax.imshow(rgb, interpolation="nearest")
    else:
        im = ax.imshow(img, cmap="gray", vmin=lo, vmax=hi, interpolation="nearest")
    bare(ax, title)
    return im


def heat(ax, values, cmap=HEAT, title=None, signed=False, alpha=1.0, vmax=None):
    values = np.asarray(values, np.float64)
    if signed:
        top = vmax if vmax is not None else (np.nanmax(np.abs(values)) or 1.0)
        im = ax.imshow(values, cmap=cmap, vmin=-top, vmax=top, alpha=alpha, interpolation="nearest")
    else:
        im = ax.imshow(values, cmap=cmap, alpha=alpha, interpolation="nearest", vmin=0 if vmax else None,
                       vmax=vmax)
    bare(ax, title)
    return im


def colorbar(fig, im, axes, label):
    bar = fig.colorbar(im, ax=axes, shrink=0.85)
    bar.set_label(label)
    return bar


def bare(ax, title=None):
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title)


def rgb(img, value_range):
    """(H, W, 3) in 0..1 of an image (C, H, W) in raw units: gray repeated, RGB as is, NaN kept."""
    img = np.asarray(img, np.float64)
    lo, hi = value_range
    g = np.clip((img - lo) / ((hi - lo) or 1), 0, 1)
    g = np.repeat(g, 3, axis=0) if g.shape[0] == 1 else g[:3]
    return g.transpose(1, 2, 0)


def padded(patch, inside, value_range):
    """An RGB picture of a receptive-field crop (C, h, w) in raw units; cells outside the image (`inside`
    False) in the padding colour."""
    out = rgb(np.nan_to_num(patch), value_range).copy()
    out[~np.asarray(inside, bool)] = PADDING
    return out


def mosaic(tiles, cols, gap=None):
    """Tiles (n, h, w) or RGB (n, h, w, 3) laid out in rows of `cols` on one canvas, NaN (drawn white)
    between them: one imshow instead of a subplot per tile, which keeps a 512-filter grid fast.
    Returns the canvas and each tile's (top, left)."""
    tiles = np.asarray(tiles, np.float64)
    n, h, w = tiles.shape[:3]
    gap = gap if gap is not None else max(1, round(max(h, w) / 8))
    rows = math.ceil(n / cols)
    canvas = np.full((rows * (h + gap) - gap, cols * (w + gap) - gap, *tiles.shape[3:]), np.nan)
    corners = []
    for i in range(n):
        top, left = (i // cols) * (h + gap), (i % cols) * (w + gap)
        canvas[top:top + h, left:left + w] = tiles[i]
        corners.append((top, left))
    return canvas, corners


def show_mosaic(ax, canvas, cmap=HEAT, vmin=None, vmax=None):
    """A mosaic on one axis: NaN cells white (RGB canvases: NaN -> white too)."""
    import matplotlib
    if canvas.ndim == 3:
        im = ax.imshow(np.where(np.isnan(canvas), 1.0, canvas), interpolation="nearest")
    else:
        cm = matplotlib.colormaps[cmap].with_extremes(bad="white")
        im = ax.imshow(np.ma.masked_invalid(canvas), cmap=cm, vmin=vmin, vmax=vmax, interpolation="nearest")
    bare(ax)
    for side in ax.spines.values():
        side.set_visible(False)
    return im
