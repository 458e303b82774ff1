"""A scatter of a search's members on two measures, the Pareto front highlighted (matplotlib).

Imported only for `cnndsl search --plot`; matplotlib is imported here, with the Agg backend, so
nothing needs a display.
"""
from __future__ import annotations

LABELS = {"params": "parameters", "macs": "MACs", "memory": "training memory (bytes)", "depth": "depth",
          "rf": "receptive field", "flops": "FLOPs", "layers": "layers"}


def plot(result: dict, path: str, measures=None, everything=None):
    """Write the PNG (or any format matplotlib knows from the suffix) and return its path."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    a, b = measures or result["pareto_measures"]
    pts = everything if everything is not None else result["members"]
    fig, ax = plt.subplots(figsize=(7, 5), dpi=120)
    ax.scatter([r[a] for r in pts], [r[b] for r in pts], s=8, c="#9e9e9e", alpha=0.6, label=f"members ({len(pts):,})")
    fr = result["pareto"]
    ax.plot([r[a] for r in fr], [r[b] for r in fr], "-o", c="#d62728", ms=4, lw=1.2,
            label=f"Pareto front ({len(fr)})", drawstyle="steps-post")
    for r in fr[:12]:
        ax.annotate(" ".join(f"{k}={v}" for k, v in r["bindings"].items()), (r[a], r[b]), fontsize=6,
                    xytext=(3, 3), textcoords="offset points")
    if a not in ("depth", "rf"):
        ax.set_xscale("log")
    if b not in ("depth", "rf"):
        ax.set_yscale("log")
    ax.set_xlabel(LABELS.get(a, a))
    ax.set_ylabel(LABELS.get(b, b))
    ax.set_title(f"{result['source']}: {result['distinct']:,} distinct members of {result['count']:,}")
    ax.legend(loc="best", fontsize=8)
    ax.grid(True, which="both", alpha=0.2)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
