"""A scatter of a search's members on two measures, the Pareto front highlighted (matplotlib).

Imported only for `cnndsl search --plot`; matplotlib is imported here, with the Agg backend, so
nothing needs a display. The figure uses a constrained layout and is saved with a tight bounding
box, so labels are never cut at the edge; tick labels are short (1k, 10M) and few enough not to
touch; the region the front dominates is shaded, so a one-member front still reads as a front;
the user's budgets (--max-params, --max-macs, --max-memory, --min-rf) are dashed lines with the
excluded side hatched.
"""
from __future__ import annotations

LABELS = {"params": "parameters", "macs": "MACs", "memory": "training memory (bytes)", "depth": "depth",
          "rf": "receptive field", "flops": "FLOPs", "layers": "layers"}
BUDGETS = {"params": ("max_params", "--max-params"), "macs": ("max_macs", "--max-macs"),
           "memory": ("max_memory", "--max-memory"), "rf": ("min_rf", "--min-rf")}
LINEAR = {"depth", "rf", "layers"}
LARGER_IS_BETTER = {"depth", "rf"}
MAX_LABELS = 12  # member names written beside their points: more would cover each other


def check_path(path: str):
    """A usage error unless `path` can be written: its folder exists, it is not a folder, and its
    suffix is a format matplotlib writes (checked before a search, which may run for minutes)."""
    import os
    from ..errors import CnnError
    folder = os.path.dirname(path) or "."
    if not os.path.isdir(folder):
        raise CnnError(f"--plot {path}: the folder {folder} does not exist", usage=True,
                       hint="create the folder first, or write the picture elsewhere")
    if os.path.isdir(path):
        raise CnnError(f"--plot {path}: a folder, not a file name", usage=True, hint="name the file: --plot DIR/front.png")
    try:
        from matplotlib.backend_bases import FigureCanvasBase
    except ImportError:
        raise CnnError("--plot needs matplotlib", usage=True, hint="pip install matplotlib") from None
    formats = sorted(FigureCanvasBase.get_supported_filetypes())
    suffix = os.path.splitext(path)[1][1:].lower()
    if suffix not in formats:
        raise CnnError(f"--plot {path}: " + (f"matplotlib does not write .{suffix} files" if suffix else "no suffix"),
                       usage=True, hint="end the name with one of ." + ", .".join(formats))


def plot(result: dict, path: str, measures=None, everything=None):
    """Write the PNG (or any format matplotlib knows from the suffix) and return its path. After
    `search --train` (records with an accuracy) a second panel plots accuracy against MACs."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from .train import trained_records
    trained = trained_records(result)
    if trained:
        fig, (ax, acc_ax) = plt.subplots(1, 2, figsize=(13, 5), dpi=120, layout="constrained")
        accuracy_panel(acc_ax, result, trained)
    else:
        fig, ax = plt.subplots(figsize=(7, 5), dpi=120, layout="constrained")
    cost_panel(ax, result, measures, everything)
    fig.savefig(path, bbox_inches="tight", pad_inches=0.1)
    plt.close(fig)
    return path


def _axis(ax, which, measure, values):
    """Scale, limits and ticks of one axis: log with short labels (20k, 5M) for costs, whole numbers
    otherwise. A narrow log range is labelled at 1, 2 and 5 of each decade, a wide one at the
    decades only, so that labels never touch; a single value sits in the middle of the axis."""
    import math
    from matplotlib import ticker
    axis = ax.xaxis if which == "x" else ax.yaxis
    setlim = ax.set_xlim if which == "x" else ax.set_ylim
    values = [v for v in values if v is not None]
    if measure in LINEAR:
        axis.set_major_locator(ticker.MaxNLocator(nbins=6, integer=True))
        if values and min(values) == max(values):
            setlim(values[0] - 1, values[0] + 1)
        return
    (ax.set_xscale if which == "x" else ax.set_yscale)("log")
    lo, hi = (min(values), max(values)) if values and min(values) > 0 else (1, 10)
    decades = math.log10(hi / lo)
    axis.set_major_locator(ticker.LogLocator(base=10, subs=(1, 2, 5) if decades < 2 else (1,), numticks=8))
    axis.set_minor_locator(ticker.LogLocator(base=10, subs=tuple(range(2, 10)), numticks=12))
    axis.set_major_formatter(ticker.EngFormatter(sep=""))
    axis.set_minor_formatter(ticker.NullFormatter())
    if lo == hi:
        setlim(lo / 3, hi * 3)


def _budget(ax, which, measure, budgets):
    """The budget on this axis' measure: a dashed line, the side it excludes hatched."""
    key, flag = BUDGETS.get(measure, (None, None))
    value = budgets.get(key) if key else None
    if value is None:
        return
    line, span = (ax.axvline, ax.axvspan) if which == "x" else (ax.axhline, ax.axhspan)
    line(value, ls="--", lw=1, c="#1f77b4", label=f"{flag} {value:,}")
    lo, hi = ax.get_xlim() if which == "x" else ax.get_ylim()
    side = (min(lo, value), value) if measure in LARGER_IS_BETTER else (value, max(hi, value))
    span(*side, color="#1f77b4", alpha=0.06, hatch="//", lw=0)
    (ax.set_xlim if which == "x" else ax.set_ylim)(min(lo, value), max(hi, value))


def _front(ax, fr, a, b):
    """The front as a staircase, and the region it dominates shaded (one member: its quadrant)."""
    if not fr:
        return
    xs, ys = [r[a] for r in fr], [r[b] for r in fr]
    ax.plot(xs, ys, "-o", c="#d62728", ms=5, lw=1.2, zorder=3, drawstyle="steps-post",
            label=f"Pareto front ({len(fr)} member{'s' * (len(fr) != 1)})")
    x1, y1 = ax.get_xlim()[1], ax.get_ylim()[1]
    # the staircase continued to the axes' far corner: what it encloses is worse on both measures
    if a not in LARGER_IS_BETTER and b not in LARGER_IS_BETTER:
        ax.fill_between(xs + [x1], ys + [ys[-1]], [y1] * (len(xs) + 1), step="post", color="#d62728",
                        alpha=0.06, lw=0, label="dominated by the front")
        ax.set_xlim(right=x1)
        ax.set_ylim(top=y1)


def _labels(ax, records, a, b):
    """Names of the first members beside their points, kept inside the axes (right-aligned on the
    right half, so a name never runs off the edge)."""
    import math
    lo, hi = ax.get_xlim()
    log = ax.get_xscale() == "log"
    mid = math.sqrt(lo * hi) if log and lo > 0 else (lo + hi) / 2
    for r in records[:MAX_LABELS]:
        right = r[a] > mid
        ax.annotate(" ".join(f"{k}={v}" for k, v in r["bindings"].items()), (r[a], r[b]), fontsize=6,
                    xytext=(-4 if right else 4, 3), textcoords="offset points", ha="right" if right else "left",
                    annotation_clip=True)


def cost_panel(ax, result, measures=None, everything=None):
    a, b = measures or result["pareto_measures"]
    pts = everything if everything is not None else result["members"]
    ax.margins(0.08)
    ax.scatter([r[a] for r in pts], [r[b] for r in pts], s=8, c="#9e9e9e", alpha=0.6, label=f"members ({len(pts):,})")
    _axis(ax, "x", a, [r[a] for r in pts])
    _axis(ax, "y", b, [r[b] for r in pts])
    fr = result["pareto"]
    budgets = result.get("budgets", {})
    _budget(ax, "x", a, budgets)
    _budget(ax, "y", b, budgets)
    _front(ax, fr, a, b)
    _labels(ax, fr, a, b)
    ax.set_xlabel(LABELS.get(a, a))
    ax.set_ylabel(LABELS.get(b, b))
    n = result["distinct"]
    ax.set_title(f"{result['source']}: {n:,} distinct member{'s' * (n != 1)} of {result['count']:,}",
                 fontsize=9, wrap=True)
    ax.legend(loc="best", fontsize=7)
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
    ax.margins(0.08)
    if off:
        ax.scatter([r["macs"] for r in off], [r[key] for r in off], s=18, c="#7f7f7f", label=f"trained ({len(off)})")
    if on:
        ax.scatter([r["macs"] for r in on], [r[key] for r in on], s=24, c="#d62728", zorder=3,
                   label=f"on the {a}-{b} Pareto front ({len(on)})")
    _axis(ax, "x", "macs", [r["macs"] for r in done])
    best, top = [], float("-inf")
    for r in sorted(done, key=lambda r: (r["macs"], -r[key])):
        if r[key] > top:
            best.append(r)
            top = r[key]
    if len(best) > 1:
        ax.plot([r["macs"] for r in best], [r[key] for r in best], "--", c="#1f77b4", lw=1, drawstyle="steps-post",
                label=f"best accuracy for the MACs ({len(best)})")
    _budget(ax, "x", "macs", result.get("budgets", {}))
    _labels(ax, done[:16], "macs", key)
    failed = len(trained) - len(done)
    t = result.get("training") or {}
    o = t.get("options", {})
    epochs = o.get("epochs")
    ax.set_xlabel("MACs")
    what = "validation accuracy" if key == "val_acc" else "training accuracy"
    ax.set_ylabel(what)
    ax.set_title(f"{what} after {epochs} epoch{'s' * (epochs != 1)} on {t.get('data', '?')}"
                 + (f" ({failed} failed, not shown)" if failed else ""), fontsize=9, wrap=True)
    if done:
        ax.legend(loc="best", fontsize=7)
    ax.grid(True, which="both", alpha=0.2)
