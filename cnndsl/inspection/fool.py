"""Fooling images: the smallest iterative gradient-sign perturbation that makes the net say a class
(Goodfellow et al. 2015's FGSM, iterated as Kurakin et al. 2017's basic iterative method). Each step
is captum's targeted FGSM (`captum.robust.FGSM`, cross-entropy towards the target) of `step` in
the normalised units the net was trained on, kept inside the training data's recorded range; the
steps stop at the first one after which the net says the target, so the perturbation is the
smallest along that path at that step size.

    >>> import cnndsl
    >>> s = Subject(cnndsl.loads("input 8x8x1\\nCONV(4, 3) - RELU - FC(3)"), weights=None)
    >>> r = fool(s, s.blank(), 2, step=0.05, max_steps=200)
    >>> r["fooled"], r["predicted_after"] == "2"
    (True, True)

L-infinity (the largest change of any input value) is reported in those normalised units, as
`linf`, in the training data's own units (`linf_data_units`: x std per channel, e.g. of 0..16 for
digits) and as a share of the data's recorded value range (`linf_range`: the units of inputs scaled
to 0..1).
"""
from __future__ import annotations

import numpy as np
import torch

from . import figures as F
from .result import Result
from .subject import Subject, quiet


def fool(s: Subject, x0, target, step=None, max_steps=500, notes=(), progress=None) -> Result:
    from captum.robust import FGSM
    k = s.class_index(target)
    step = step if step is not None else default_step(s)
    attack = FGSM(s.model, loss_func=lambda out, t: torch.nn.functional.cross_entropy(out.flatten(1), t,
                                                                                        reduction="none"))
    goal = torch.tensor([k], device=s.device)
    p0 = torch.softmax(s.scores(x0), 1)[0]
    x, steps = x0.detach().clone(), 0
    while int(s.scores(x).argmax()) != k and steps < max_steps:
        with quiet():
            x = attack.perturb(x.requires_grad_(True), epsilon=step, target=goal, targeted=True).detach()
        b = s.bounds(x.ndim)
        if b is not None:
            x = torch.maximum(torch.minimum(x, b[1]), b[0])
        steps += 1
        if progress:
            progress(steps, max_steps)
    p1 = torch.softmax(s.scores(x), 1)[0]
    delta = (x - x0)[0]
    std = torch.as_tensor(s.std, device=s.device).reshape(-1, *([1] * (delta.ndim - 1)))
    original, fooled = s.raw(x0)[0].cpu().numpy(), s.raw(x)[0].cpu().numpy()
    values = {"target": k, "target_name": s.class_name(k), "fooled": int(p1.argmax()) == k, "steps": steps,
              "max_steps": max_steps, "step": step, "linf": float(delta.abs().max()),
              "linf_units": "normalised input ((x - mean) / std, the units the net was trained on)",
              "linf_data_units": float((delta.abs() * std).max()), "linf_range": _of_range(s, delta, std),
              "l2": float(delta.norm()),
              "predicted_before": s.class_name(int(p0.argmax())), "probability_before": float(p0.max()),
              "target_probability_before": float(p0[k]), "predicted_after": s.class_name(int(p1.argmax())),
              "probability_after": float(p1.max()), "value_range": s.display_range(original)}
    arrays = {"original": original, "perturbed": fooled, "difference": fooled - original}
    return Result("fool", arrays, values, [*s.notes, *notes], _draw, _table)


def _of_range(s, delta, std):
    """L-infinity as a share of the training data's value range (the units of inputs scaled to 0..1), or None."""
    r = s.value_range
    return float((delta.abs() * std).max()) / ((r[1] - r[0]) or 1.0) if r is not None else None


def default_step(s) -> float:
    """1/1000 of the normalised span of the training data's range (0.0034 for digits), else 0.002."""
    b = s.bounds()
    return float((b[1] - b[0]).min()) / 1000 if b is not None else 0.002


def _draw(r):
    fig = F.figure((13.33, 5.4))
    a, b, c = fig.subplots(1, 3)
    F.show(a, r["original"], r["value_range"], f"original: {r['predicted_before']} ({r['probability_before']:.2f})")
    F.show(b, r["perturbed"], r["value_range"], f"perturbed: {r['predicted_after']} ({r['probability_after']:.2f})")
    lo, hi = r["value_range"]
    mid = (lo + hi) / 2
    F.show(c, np.clip(mid + 10 * r["difference"], lo, hi), r["value_range"], "difference x 10 (gray: none)")
    verdict = (f"fooled: {r['predicted_before']} -> {r['target_name']} after {r['steps']} steps" if r["fooled"] else
               f"not fooled: still {r['predicted_after']} after {r['steps']} steps (target {r['target_name']})")
    fig.suptitle(f"{verdict} of {r['step']:.3g}, L-inf {r['linf']:.3g} (normalised units; "
                 f"{r['linf_data_units']:.3g} in the data's)")
    return fig


def _table(r):
    verdict = "fooled" if r["fooled"] else f"NOT fooled after {r['max_steps']} steps (raise --steps or --step)"
    return (f"{verdict}: {r['predicted_before']} ({r['probability_before']:.4f}) -> {r['predicted_after']} "
            f"({r['probability_after']:.4f}), target {r['target_name']}\n"
            f"steps {r['steps']} of {r['step']:.4g}; L-inf {r['linf']:.4g} in normalised units "
            f"({r['linf_data_units']:.4g} in the training data's units"
            + (f", {r['linf_range']:.2%} of its range" if r["linf_range"] is not None else "")
            + f"), L2 {r['l2']:.4g}\n")
