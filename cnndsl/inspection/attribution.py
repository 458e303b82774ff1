"""Heat maps over an input: which pixels a class score depends on. Every method is captum's
(`captum.attr`), never re-implemented here; this file only chooses the module, the target, the
baseline and how a map is drawn.

    gradient    Saliency: |d score / d pixel|, the largest over the channels (Simonyan et al. 2014)
    guided      GuidedBackprop: the gradient with negative gradients stopped at every ReLU (Springenberg
                et al. 2015); in a net without ReLU modules it is the gradient
    gradcam     LayerGradCam at a layer by its spec name (default: the last layer whose output has
                spatial extent), its positive part upsampled (bilinear) to the input (Selvaraju et al.)
    integrated  IntegratedGradients from a blank input (the training data's lowest value: a digit's
                background, black), |attribution| summed over the channels (Sundararajan et al.)
    occlusion   Occlusion: a window of the blank value slid over the input; the map is the drop in the
                class's probability where it covers (Zeiler & Fergus 2014)

The score is the class's logit (the net's output before any final SOFTMAX), as in the papers;
occlusion's is the class's probability, as Zeiler & Fergus plot it.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from ..errors import CnnError
from . import figures as F
from .result import Result
from .subject import Subject, quiet

METHODS = ("gradient", "guided", "gradcam", "integrated")
PER_EVAL = 64  # occluded copies run per forward pass


class _Counted:
    """The model as a function that reports each call: captum's loops then drive a progress bar."""

    def __init__(self, fn, total, progress):
        self.fn, self.total, self.progress, self.calls = fn, total, progress, 0

    def __call__(self, x):
        out = self.fn(x)
        self.calls += 1
        if self.progress:
            self.progress(min(self.calls, self.total), self.total)
        return out


def _target(s, x, cls):
    p = torch.softmax(s.scores(x), 1)[0]
    k = int(p.argmax()) if cls is None else s.class_index(cls)
    return k, p


def saliency(s: Subject, x, cls=None, method="gradient", layer=None, steps=50, notes=(), progress=None) -> Result:
    from captum.attr import GuidedBackprop, IntegratedGradients, LayerAttribution, LayerGradCam, Saliency
    if method not in METHODS:
        raise CnnError(f"--method {method}: one of {', '.join(METHODS)}", usage=True)
    k, p = _target(s, x, cls)
    notes = [*s.notes, *notes]
    values = {"method": method}
    x = x.detach().clone().requires_grad_(True)
    if method == "gradient":
        with quiet():
            attr = Saliency(s.model).attribute(x, target=k, abs=True)
        heat = attr[0].max(0).values
    elif method == "guided":
        if not any(isinstance(m, torch.nn.ReLU) for m in s.model.modules()):
            notes.append("the net has no ReLU: guided backpropagation is the plain gradient here")
        with quiet():
            attr = GuidedBackprop(s.model).attribute(x, target=k)
        heat = attr[0].abs().max(0).values
    elif method == "gradcam":
        name = s.layer(layer) if layer else s.last_spatial()
        if len(s.shape(name)) != 3:
            raise CnnError(f"Grad-CAM needs a layer with a volume output; {name} is a vector", usage=True,
                           hint=f"the last layer with spatial extent is {s.last_spatial()}")
        with quiet():
            coarse = LayerGradCam(s.model, s.module(name)).attribute(x, target=k, relu_attributions=True)
        attr = LayerAttribution.interpolate(coarse, tuple(x.shape[2:]), interpolate_mode="bilinear")
        heat = attr[0, 0]
        values.update(layer=name, layer_shape=list(s.shape(name)))
    else:
        batch = max(1, min(steps, 16))
        counted = _Counted(s.model, math.ceil(steps / batch), progress)
        with quiet():
            attr, delta = IntegratedGradients(counted).attribute(
                x, baselines=s.blank("low"), target=k, n_steps=steps, internal_batch_size=batch,
                return_convergence_delta=True)
        heat = attr[0].abs().sum(0)
        values.update(steps=steps, baseline="blank (the data's lowest value)",
                      completeness_error=float(delta.abs().max()))
    return _result(s, "saliency", x, k, p, heat, attr, values, notes)


def occlusion(s: Subject, x, cls=None, window=None, stride=None, notes=(), progress=None) -> Result:
    from captum.attr import Occlusion
    k, p = _target(s, x, cls)
    c, h, w = x.shape[1:]
    window = window or max(2, round(min(h, w) / 6))
    stride = stride or max(1, window // 3)
    if not (1 <= window <= min(h, w) and stride >= 1):
        raise CnnError(f"--window {window} --stride {stride}: the window must fit the {h}x{w} input and the "
                       "stride be at least 1", usage=True)
    n = ((h - window) // stride + 1) * ((w - window) // stride + 1)
    counted = _Counted(lambda inp: torch.softmax(s.model(inp), 1), math.ceil(n / PER_EVAL) + 1, progress)
    with torch.no_grad(), quiet():
        attr = Occlusion(counted).attribute(x, sliding_window_shapes=(c, window, window), strides=(c, stride, stride),
                                            baselines=s.blank("low"), target=k, perturbations_per_eval=PER_EVAL)
    values = {"method": "occlusion", "window": window, "stride": stride, "windows": n,
              "baseline": "blank (the data's lowest value)"}
    return _result(s, "occlusion", x, k, p, attr[0, 0], attr, values, [*s.notes, *notes])


def _result(s, what, x, k, p, heat, attr, values, notes):
    image = s.raw(x)[0].detach().cpu().numpy()
    values.update({"class": k, "class_name": s.class_name(k), "probability": float(p[k]),
                   "predicted": s.class_name(int(p.argmax())), "predicted_probability": float(p.max()),
                   "value_range": s.display_range(image)})
    arrays = {"map": heat.detach().cpu().float().numpy(), "attribution": attr[0].detach().cpu().float().numpy(),
              "image": image}
    return Result(what, arrays, values, notes, _draw, _table)


def _draw(r):
    fig = F.figure((13.33, 5.2))
    a, b, c = fig.subplots(1, 3)
    F.show(a, r["image"], r["value_range"], f"input: the net says {r['predicted']} ({r['predicted_probability']:.2f})")
    signed = r.what == "occlusion"
    label = f"drop in p({r['class_name']})" if signed else "attribution"
    im = F.heat(b, r["map"], F.SIGNED if signed else F.HEAT, "map", signed=signed)
    F.colorbar(fig, im, b, label)
    F.show(c, r["image"], r["value_range"], "overlay")
    F.heat(c, r["map"], F.SIGNED if signed else F.HEAT, signed=signed, alpha=0.55)
    fig.suptitle(f"{_how(r)} for class {r['class_name']} (p = {r['probability']:.3f})")
    return fig


def _how(r):
    return {"gradient": "gradient saliency", "guided": "guided backpropagation", "integrated": "integrated gradients",
            "gradcam": "Grad-CAM at {layer}", "occlusion": "occlusion, {window}x{window} window, stride {stride}",
            }[r["method"]].format(**r.values)


def _table(r):
    m = r["map"]
    flat = np.argsort(m.ravel())[::-1][:5]
    spots = ", ".join(f"({i // m.shape[1]}, {i % m.shape[1]}) {m.ravel()[i]:.3g}" for i in flat)
    extra = f", {r['steps']} steps" if "steps" in r.values else ""
    line = (f"{_how(r)} for class {r['class_name']} (p {r['probability']:.4f}; the net says {r['predicted']} "
            f"{r['predicted_probability']:.4f}){extra}\nmap {m.shape[0]}x{m.shape[1]}: {m.min():.4g}..{m.max():.4g}; "
            f"strongest (row, column): {spots}\n")
    if "completeness_error" in r.values:
        line += f"completeness: attributions sum to the score change within {r['completeness_error']:.3g}\n"
    return line
