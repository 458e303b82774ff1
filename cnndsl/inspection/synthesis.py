"""Images made by gradient ascent through the net: the input that most excites a class (activation
maximisation, Simonyan et al. 2014: score minus an L2 penalty, from a blank image, with optional
jitter and blur as in Yosinski et al. 2015) and the input whose features at a layer match a given
image's (feature inversion, Mahendran & Vedaldi 2015: relative feature distance plus a total
variation prior). Optimisation, not attribution, so torch does it directly (Adam on the pixels, in
the normalised units the net was trained on, kept inside the training data's recorded range).
Both start from a blank image, the training data's lowest value (a digit's background, black; plus
noise of std 0.01), and maximisation's L2 prior pulls towards it: the picture shows what the class
adds to an empty input. Maximisation's "before" is the blank image's score.

    >>> import cnndsl
    >>> s = Subject(cnndsl.loads("input 8x8x1\\nCONV(4, 3) - TANH - FC(3)"), weights=None)
    >>> r = maximize(s, 1, steps=20)
    >>> r["image"].shape, r["score_after"] > r["score_before"]
    ((1, 8, 8), True)
"""
from __future__ import annotations

import numpy as np
import torch

from . import figures as F
from .result import Result
from .subject import Subject


def maximize(s: Subject, cls, steps=200, l2=1e-3, lr=0.05, jitter=0, blur=0.0, seed=0, progress=None) -> Result:
    k = s.class_index(cls)
    blank = s.blank("low")
    x = _start(blank, seed)
    before = s.scores(blank)[0]
    opt = _Adam(x, lr, steps)
    rng = np.random.default_rng(seed)
    curve = []
    for t in range(steps):
        shift = tuple(int(v) for v in rng.integers(-jitter, jitter + 1, 2)) if jitter else (0, 0)
        score = s.model(torch.roll(x, shift, (2, 3)) if jitter else x).flatten(1)[0, k]
        loss = -score + l2 * ((x - blank) ** 2).sum()
        opt.step(x, loss)
        with torch.no_grad():
            if blur and t % 4 == 3:
                x.copy_(_blur(x, blur))
            _clamp(s, x)
        curve.append(float(score.detach()))
        if progress:
            progress(t + 1, steps)
    after = s.scores(x.detach())[0]
    p0, p1 = torch.softmax(before, 0), torch.softmax(after, 0)
    image = s.raw(x.detach())[0].cpu().numpy()
    values = {"class": k, "class_name": s.class_name(k), "steps": steps, "l2": l2, "lr": lr, "jitter": jitter,
              "blur": blur, "score_before": float(before[k]), "score_after": float(after[k]),
              "probability_before": float(p0[k]), "probability_after": float(p1[k]),
              "predicted": s.class_name(int(after.argmax())), "value_range": s.display_range(image),
              "start": "blank: the training data's lowest value (a digit's background, black)"}
    return Result("maximize", {"image": image, "scores": np.asarray(curve, np.float32)}, values, s.notes,
                  _draw_max, _table_max)


def _start(blank, seed):
    """The blank image and noise of std 0.01 (normalised units): a net of ReLUs without biases is flat at an
    exactly blank input (every unit at 0, every gradient 0), and a little noise is not a picture."""
    g = torch.Generator(device="cpu").manual_seed(seed)
    return (blank + 0.01 * torch.randn(blank.shape, generator=g).to(blank.device)).requires_grad_(True)


class _Adam:
    """Adam (Kingma & Ba) on the pixels, the learning rate falling linearly to a tenth over the run.
    torch.optim is not used: its first optimizer imports torch._dynamo, 2-3 s, longer than the run."""

    def __init__(self, x, lr, steps):
        self.m, self.v, self.t, self.lr, self.steps = torch.zeros_like(x), torch.zeros_like(x), 0, lr, steps

    def step(self, x, loss):
        g, = torch.autograd.grad(loss, x)
        self.t += 1
        self.m.mul_(0.9).add_(g, alpha=0.1)
        self.v.mul_(0.999).addcmul_(g, g, value=0.001)
        lr = self.lr * (1 - 0.9 * (self.t - 1) / max(1, self.steps - 1))
        with torch.no_grad():
            x -= lr * (self.m / (1 - 0.9 ** self.t)) / ((self.v / (1 - 0.999 ** self.t)).sqrt() + 1e-8)


def _clamp(s, x):
    b = s.bounds(x.ndim)
    if b is not None:
        x.copy_(torch.maximum(torch.minimum(x, b[1]), b[0]))


def _blur(x, sigma):
    """A Gaussian blur of each channel (reflect padding): the regulariser of Yosinski et al."""
    r = max(1, int(round(2 * sigma)))
    t = torch.arange(-r, r + 1, dtype=x.dtype, device=x.device)
    g = torch.exp(-t ** 2 / (2 * sigma ** 2))
    g = g / g.sum()
    c = x.shape[1]
    y = torch.nn.functional.pad(x, (r, r, r, r), mode="reflect")
    y = torch.nn.functional.conv2d(y, g.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    return torch.nn.functional.conv2d(y, g.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)


def _draw_max(r):
    fig = F.figure((13.33, 6.0))
    a, b = fig.subplots(1, 2, width_ratios=[1, 1.3])
    F.show(a, r["image"], r["value_range"], f"the image that maximises class {r['class_name']}")
    b.plot(np.arange(1, len(r["scores"]) + 1), r["scores"], color="#c44e52", lw=2)
    b.set_xlabel("step")
    b.set_ylabel(f"score of class {r['class_name']} (logit)")
    b.grid(alpha=0.3)
    fig.suptitle(f"activation maximisation, class {r['class_name']}: score {r['score_before']:.3g} -> "
                 f"{r['score_after']:.3g}, p {r['probability_before']:.3f} -> {r['probability_after']:.3f} "
                 f"(L2 {r['l2']:g}, {r['steps']} steps)")
    return fig


def _table_max(r):
    return (f"class {r['class_name']}: score {r['score_before']:.4g} -> {r['score_after']:.4g}, probability "
            f"{r['probability_before']:.4f} -> {r['probability_after']:.4f} in {r['steps']} steps (L2 {r['l2']:g}, "
            f"lr {r['lr']:g}, jitter {r['jitter']}, blur {r['blur']:g}); the net says {r['predicted']}\n")


# ---- feature inversion -------------------------------------------------------------------------------
def invert(s: Subject, layer, x0, steps=200, tv=1e-2, lr=0.05, notes=(), progress=None) -> Result:
    name = s.layer(layer)
    target = s.capture(x0, [name])[name]
    norm = float((target ** 2).sum()) or 1.0
    x = _start(s.blank("low"), 0)
    opt = _Adam(x, lr, steps)
    curve = []
    for t in range(steps):
        feat = s.capture(x, [name], grad=True)[name]
        dist = ((feat - target) ** 2).sum() / norm
        loss = dist + tv * _tv(x)
        opt.step(x, loss)
        with torch.no_grad():
            _clamp(s, x)
        curve.append(float(dist.detach()))
        if progress:
            progress(t + 1, steps)
    with torch.no_grad():
        final = float(((s.capture(x, [name])[name] - target) ** 2).sum() / norm)
    image, recon = s.raw(x0)[0].cpu().numpy(), s.raw(x.detach())[0].cpu().numpy()
    values = {"layer": name, "layer_shape": list(s.shape(name)), "steps": steps, "tv": tv, "lr": lr,
              "feature_error": final, "value_range": s.display_range(image),
              "pixel_rms_difference": float(np.sqrt(((image - recon) ** 2).mean()))}
    return Result("invert", {"image": image, "reconstruction": recon, "errors": np.asarray(curve, np.float32)},
                  values, [*s.notes, *notes], _draw_inv, _table_inv)


def _tv(x):
    """Total variation (squared neighbour differences, mean): smooth images are preferred."""
    if x.ndim < 4 or min(x.shape[2:]) < 2:
        return x.new_zeros(())
    return ((x[:, :, 1:] - x[:, :, :-1]) ** 2).mean() + ((x[:, :, :, 1:] - x[:, :, :, :-1]) ** 2).mean()


def _draw_inv(r):
    fig = F.figure((13.33, 5.6))
    a, b, c = fig.subplots(1, 3, width_ratios=[1, 1, 1.2])
    F.show(a, r["image"], r["value_range"], "original")
    F.show(b, r["reconstruction"], r["value_range"], f"from {r['layer']}'s features")
    c.semilogy(np.arange(1, len(r["errors"]) + 1), np.maximum(r["errors"], 1e-12), color="#4c72b0", lw=2)
    c.set_xlabel("step")
    c.set_ylabel("relative feature distance")
    c.grid(alpha=0.3)
    fig.suptitle(f"feature inversion at {r['layer']} ({'x'.join(map(str, r['layer_shape']))}): relative feature "
                 f"distance {r['feature_error']:.3g} after {r['steps']} steps (TV {r['tv']:g})")
    return fig


def _table_inv(r):
    return (f"inverted {r['layer']} ({'x'.join(map(str, r['layer_shape']))}) in {r['steps']} steps: relative feature "
            f"distance {r['feature_error']:.4g}, pixel RMS difference to the original {r['pixel_rms_difference']:.4g} "
            f"(TV {r['tv']:g}, lr {r['lr']:g})\n")
