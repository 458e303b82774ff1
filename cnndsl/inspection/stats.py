"""Activation statistics layer by layer: mean, std, a histogram and the fraction of units that never
fire, over a sample of inputs; the batch-norm lecture's experiment when the net is re-initialised.

    >>> import cnndsl
    >>> net = cnndsl.loads("input 500\\n(FC(500) - TANH)*10")
    >>> s = Subject(net, weights=None)
    >>> small = stats(s, reinitialise(s, "normal:0.01"), samples=200)
    >>> small["std"][-1] < 1e-3 < small["std"][0]
    True

Layers: the outputs of the activation layers (the deck's histograms are of the tanh outputs), or of
every layer when the net has none. A unit is one value of a layer's output volume (a channel at a
position); it is dead when it is never positive on any sample, which is counted for ReLU and ReLU6
outputs (a tanh unit is never "off"). With `init`, every linear weight (CONV, FC, STDCONV, CHANCONV:
the kind's `linear_weight`) is drawn afresh and its bias set to 0: `he` (kaiming_normal_, fan_in: std sqrt(2 / fan_in)), `xavier` (std sqrt(1 / fan_in),
the deck's "Xavier"), `normal:STD`; `act` ("relu", "tanh") puts that activation in place of every
activation layer first (the modules are the model, so the swap computes). Without `data` the sample
is unit Gaussian noise of the input's shape, as in the deck.
"""
from __future__ import annotations

import numpy as np
import torch

from ..errors import CnnError
from . import figures as F
from .result import Result
from .subject import Subject

BINS = 60
INITS = ("he", "xavier", "normal:STD")
SHOWN = 10  # histograms drawn (evenly chosen when there are more layers)


def reinitialise(s: Subject, init, act=None, seed=0) -> list[str]:
    """Draw every linear weight afresh (`init`), optionally swapping the activations; the notes."""
    std_of = _init_rule(init)
    notes = []
    if act:
        notes.append(swap_activations(s, act))
    g = torch.Generator(device="cpu").manual_seed(seed)
    n = 0
    for node in s.graph.nodes:
        if not node.kind.linear_weight:
            continue
        m = s.module(node.name)
        fan_in = m.weight[0].numel()
        w = torch.randn(m.weight.shape, generator=g) * std_of(fan_in)
        m.weight.data.copy_(w.to(m.weight.device))
        if m.bias is not None:
            m.bias.data.zero_()
        n += 1
    notes.append(f"initialised {n} layers' weights: {_init_text(init)}, biases 0 (seed {seed})")
    return notes


def _init_rule(init):
    if init == "he":
        return lambda fan_in: (2.0 / fan_in) ** 0.5
    if init == "xavier":
        return lambda fan_in: (1.0 / fan_in) ** 0.5
    if isinstance(init, str) and init.startswith("normal:"):
        try:
            std = float(init.partition(":")[2])
        except ValueError:
            std = -1.0
        if std > 0:
            return lambda fan_in: std
    raise CnnError(f"--init {init}: one of he, xavier, normal:STD (e.g. normal:0.01)", usage=True)


def _init_text(init):
    return {"he": "He, N(0, 2/fan_in)", "xavier": "Xavier, N(0, 1/fan_in)"}.get(init, f"N(0, {init[7:]}^2)")


def swap_activations(s, act):
    make = {"relu": torch.nn.ReLU, "tanh": torch.nn.Tanh}.get(act)
    if make is None:
        raise CnnError(f"--act {act}: relu or tanh", usage=True)
    swapped = [n.name for n in s.graph.nodes if n.kind.draw_group == "activation" and not n.kind.probabilities
               and _has(s, n.name)]
    for name in swapped:
        parent, _, leaf = name.rpartition(".")
        (s.module(parent) if parent else s.model)._modules[leaf] = make()
    return f"{len(swapped)} activation layers replaced by {act}"


def _has(s, name):
    try:
        s.module(name)
        return True
    except AttributeError:
        return False


def layers_of(s: Subject) -> list[str]:
    acts = [n.name for n in s.graph.nodes if n.kind.draw_group == "activation" and not n.kind.probabilities
            and _has(s, n.name)]
    return acts or [n for n in s.names if _has(s, n)]


def stats(s: Subject, notes=(), x=None, samples=512, seed=0, progress=None) -> Result:
    """Statistics over `x` (normalised samples, numpy), or `samples` unit Gaussian inputs."""
    if x is None:  # numpy's generator: torch's of the same seed drew the weights (inputs equal to weight rows!)
        x = np.random.default_rng(seed).standard_normal((samples, *s.input_nchw), dtype=np.float32)
        notes = [*notes, f"inputs: {samples} samples of unit Gaussian noise (seed {seed})"]
    names = layers_of(s)
    sums = {n: np.zeros(3) for n in names}   # count, sum, sum of squares
    lows, highs, fired, kept = {}, {}, {}, {n: [] for n in names}
    rng = np.random.default_rng(seed)
    done = 0
    for xb in s.batches(x):
        outs = s.capture(xb, names)
        for n in names:
            v = outs[n].double()
            sums[n] += (v.numel(), float(v.sum()), float((v * v).sum()))
            lows[n] = min(lows.get(n, np.inf), float(v.min()))
            highs[n] = max(highs.get(n, -np.inf), float(v.max()))
            pos = (v > 0).any(0)
            fired[n] = pos if n not in fired else fired[n] | pos
            flat = v.flatten().cpu().numpy()  # a histogram of a random 20,000 of each batch's values
            kept[n].append(flat[rng.integers(0, len(flat), min(len(flat), 20000))])
        done += len(xb)
        if progress:
            progress(done, len(x))
    relu = {n for n in names if isinstance(s.module(n), (torch.nn.ReLU, torch.nn.ReLU6))}
    mean = [float(sums[n][1] / sums[n][0]) for n in names]
    std = [float(max(0.0, sums[n][2] / sums[n][0] - m * m) ** 0.5) for n, m in zip(names, mean)]
    # one range for every layer, as the deck draws them: a collapse to 0 shows as a spike that narrows
    lo, hi = min(lows.values()), max(highs.values())
    edges = np.linspace(lo, hi if hi > lo else lo + 1, BINS + 1)
    hist = [np.histogram(np.concatenate(kept[n]), bins=edges)[0] for n in names]
    values = {"layers": names, "mean": mean, "std": std, "min": [lows[n] for n in names],
              "max": [highs[n] for n in names],
              "dead": [float(1 - fired[n].double().mean()) if n in relu else None for n in names],
              "samples": int(len(x)), "shapes": [list(s.shape(n)) for n in names]}
    arrays = {"histograms": np.asarray(hist), "edges": edges}
    return Result("stats", arrays, values, [*s.notes, *notes], _draw, _table)


def _draw(r):
    names = r["layers"]
    pick = np.unique(np.linspace(0, len(names) - 1, min(SHOWN, len(names))).round().astype(int))
    fig = F.figure()
    top, bottom = fig.subfigures(2, 1, height_ratios=[1, 1.15])
    ax = top.subplots()
    idx = np.arange(1, len(names) + 1)
    ax.plot(idx, r["std"], "o-", color="#c44e52", lw=2, label="std")
    ax.plot(idx, np.abs(r["mean"]), "s--", color="#4c72b0", lw=1.5, label="|mean|")
    if min(r["std"]) > 0 and max(r["std"]) / min(r["std"]) > 30:
        ax.set_yscale("log")
    ax.set_xticks(idx, names if len(names) <= 16 else [str(i) for i in idx], rotation=30 if len(names) > 6 else 0,
                  ha="right" if len(names) > 6 else "center")
    ax.set_ylabel("activation")
    ax.grid(alpha=0.3)
    ax.legend(loc="best")
    ax.set_title(f"activations layer by layer over {r['samples']} inputs")
    axes = bottom.subplots(1, len(pick), squeeze=False, sharey=True)[0]
    bottom.suptitle("histograms on one range (share of the values per bin)", fontsize=12)
    e = r["edges"]
    for ax, i in zip(axes, pick):
        h = r["histograms"][i]
        ax.bar(e[:-1], h / max(1, h.sum()), width=np.diff(e), align="edge", color="#4c72b0")
        ax.set_xlim(e[0], e[-1])
        dead = f", dead {r['dead'][i]:.0%}" if r["dead"][i] is not None else ""
        ax.set_title(f"{names[i]}\nstd {r['std'][i]:.2g}{dead}", fontsize=11)
        ax.set_yticks([])
        ax.tick_params(axis="x", labelsize=9)
    return fig


def _table(r):
    width = max(5, *(len(n) for n in r["layers"]))
    lines = [f"{'layer':<{width}}  {'volume':>10}  {'mean':>10}  {'std':>10}  {'min':>9}  {'max':>9}  {'dead':>6}"]
    for i, n in enumerate(r["layers"]):
        dead = f"{r['dead'][i]:.1%}" if r["dead"][i] is not None else "-"
        lines.append(f"{n:<{width}}  {'x'.join(map(str, r['shapes'][i])):>10}  {r['mean'][i]:>10.3g}  "
                     f"{r['std'][i]:>10.3g}  {r['min'][i]:>9.3g}  {r['max'][i]:>9.3g}  {dead:>6}")
    return "\n".join(lines) + f"\n({r['samples']} inputs; dead: units never positive, for ReLU layers)\n"
