"""Figures: training curves and a confusion matrix, as PNG bytes (matplotlib, Agg: no display needed)."""
from __future__ import annotations

import io


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def curves(history: list, title: str = "") -> bytes:
    """Loss (left) and accuracy (right) per epoch, training and validation."""
    plt = _pyplot()
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
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
    return _png(fig, plt)


def confusion(matrix: list, classes: list, title: str = "") -> bytes:
    """Rows are the true classes, columns the predicted ones; counts written in the cells."""
    plt = _pyplot()
    k = len(classes)
    size = min(14, 3 + 0.5 * k)
    fig, ax = plt.subplots(figsize=(size, size))
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
    return _png(fig, plt)


def _png(fig, plt) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()
