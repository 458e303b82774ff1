"""Figures: training curves and a confusion matrix, as PNG bytes (matplotlib, Agg: no display needed).

matplotlib's object API (Figure, FigureCanvasAgg), not pyplot: no global figure registry to close, no
backend switch, and ~0.5 s less to import.
"""
from __future__ import annotations

import io


def _figure(**kw):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(**kw)
    FigureCanvasAgg(fig)
    return fig


def curves(history: list, title: str = "") -> bytes:
    """Loss (left) and accuracy (right) per epoch, training and validation."""
    fig = _figure(figsize=(10, 4))
    a, b = fig.subplots(1, 2)
    ep = [r["epoch"] for r in history]
    for ax, what in ((a, "loss"), (b, "acc")):
        ax.plot(ep, [r[f"train_{what}"] for r in history], "o-", label="train")
        val = [r.get(f"val_{what}") for r in history]
        if any(v is not None for v in val):
            ax.plot(ep, val, "o-", label="validation")
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss" if what == "loss" else "accuracy")
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return _png(fig)


def confusion(matrix: list, classes: list, title: str = "") -> bytes:
    """Rows are the true classes, columns the predicted ones; counts written in the cells."""
    k = len(classes)
    size = min(14, 3 + 0.5 * k)
    fig = _figure(figsize=(size, size))
    ax = fig.subplots()
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(k), classes, rotation=90 if k > 10 else 0)
    ax.set_yticks(range(k), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if k <= 30:
        top = max(max(r) for r in matrix) or 1
        for i, row in enumerate(matrix):
            for j, v in enumerate(row):
                if v:
                    ax.text(j, i, str(v), ha="center", va="center", fontsize=8,
                            color="white" if v > top / 2 else "black")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return _png(fig)


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return buf.getvalue()
