"""A scatter of a search's members on two measures, the Pareto front highlighted (matplotlib).

Imported only for `cnndsl search --plot`; matplotlib is imported here, with the Agg backend, so
nothing needs a display.
"""
from __future__ import annotations

LABELS = {"params": "parameters", "macs": "MACs", "memory": "training memory (bytes)", "depth": "depth",
          "rf": "receptive field", "flops": "FLOPs", "layers": "layers"}


def plot(result: dict, path: str, measures=None, everything=None):
    """Write the PNG (or any format matplotlib knows from the suffix) and return its path. After
    `search --train` (records with an accuracy) a second panel plots accuracy against MACs."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from .train import trained_records
    trained = trained_records(result)
    if trained:
        fig, (ax, acc_ax) = plt.subplots(1, 2, figsize=(13, 5), dpi=120)
        accuracy_panel(acc_ax, result, trained)
    else:
        fig, ax = plt.subplots(figsize=(7, 5), dpi=120)
    cost_panel(ax, result, measures, everything)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def cost_panel(ax, result, measures=None, everything=None):
    a, b = measures or result["pareto_measures"]
    pts = everything if everything is not None else result["members"]
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


def accuracy_panel(ax, result, trained):
    """Accuracy against MACs of the trained members: the cost front's members in red, the others
    grey, and the members no other beats on both (fewer MACs, higher accuracy) joined by a line."""
    from .train import accuracy_key
    key = accuracy_key(result)
    done = [r for r in trained if r.get(key) is not None]
    front_idx = {r["index"] for r in result["pareto"]}
    on = [r for r in done if r["index"] in front_idx]
    off = [r for r in done if r["index"] not in front_idx]
    a, b = result["pareto_measures"]
    if off:
        ax.scatter([r["macs"] for r in off], [r[key] for r in off], s=18, c="#7f7f7f", label=f"trained ({len(off)})")
    if on:
        ax.scatter([r["macs"] for r in on], [r[key] for r in on], s=24, c="#d62728", zorder=3,
                   label=f"on the {a}-{b} Pareto front ({len(on)})")
    best, top = [], float("-inf")
    for r in sorted(done, key=lambda r: (r["macs"], -r[key])):
        if r[key] > top:
            best.append(r)
            top = r[key]
    if best:
        ax.plot([r["macs"] for r in best], [r[key] for r in best], "--", c="#1f77b4", lw=1, drawstyle="steps-post",
                label=f"best accuracy for the MACs ({len(best)})")
    for r in done[:16]:
        ax.annotate(" ".join(f"{k}={v}" for k, v in r["bindings"].items()), (r["macs"], r[key]), fontsize=6,
                    xytext=(3, 3), textcoords="offset points")
    failed = len(trained) - len(done)
    t = result.get("training") or {}
    o = t.get("options", {})
    epochs = o.get("epochs")
    ax.set_xscale("log")
    ax.set_xlabel("MACs")
    what = "validation accuracy" if key == "val_acc" else "training accuracy"
    ax.set_ylabel(what)
    ax.set_title(f"{what} after {epochs} epoch{'s' * (epochs != 1)} on {t.get('data', '?')}"
                 + (f" ({failed} failed, not shown)" if failed else ""))
    if done:
        ax.legend(loc="best", fontsize=8)
    ax.grid(True, which="both", alpha=0.2)
