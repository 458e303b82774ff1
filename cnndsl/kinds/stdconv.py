"""Weight-standardised convolutions: each filter's weights are normalised to mean 0 and variance 1
(biased, over its in x kh x kw values, plus `eps`) before every use, as timm's StdConv2d does for
BiT / ResNetV2; SCALEDSTDCONV also multiplies each filter by a learnt gain and by gamma/sqrt(fan_in)
(timm's ScaledStdConv2d, NFNet's and NF-ResNet's convolution). Both take CONV's arguments:

    STDCONV(64, 7, s=2, p=3, eps=1e-8)            BiT's stem
    SCALEDSTDCONV(128, 3, p=1, gamma=1.7015043)   an NFNet conv before a GELU

    >>> from cnndsl.kinds import KINDS
    >>> s = KINDS["SCALEDSTDCONV"]
    >>> [(t.name, t.shape) for t in s.tensors(s.bind({"filters": 8, "kernel": 3}), [(9, 9, 4)])]
    [('weight', (8, 4, 3, 3)), ('bias', (8,)), ('gain', (8, 1, 1, 1))]
"""
from __future__ import annotations

import math

from .base import Arg, ShapeError, Tensor, torch_module
from .conv import TF_SAME, Conv, onnx_pads, padded_saved
from .norm import reduce

_BIAS = {a.name: a for a in Conv.args}["bias"]


class StdConv(Conv):
    name = "STDCONV"
    doc = "a convolution with standardised weights (timm's StdConv2d: BiT, ResNetV2)"
    args = tuple(Arg("bias", "bool", False, doc=_BIAS.doc) if a is _BIAS else a for a in Conv.args) + (
        Arg("eps", "float", 1e-6, lo=0.0, doc="added to each filter's variance"),)
    samples = ("STDCONV(8, 3, p=1)", "STDCONV(8, 1, eps=1e-8)", "STDCONV(8, 3, s=2, p=tf_same, bias=true)",
               "STDCONV(4, 3, p=1, groups=2)")
    torch_class = "cnndsl.StdConv2d"
    ops_per_weight = 5  # standardising: mean 1, variance 2, normalise 2

    def out_shape(self, attrs, ins):
        out = super().out_shape(attrs, ins)
        (kh, kw), per_group = attrs["kernel"], ins[0][2] // attrs["groups"]
        if per_group * kh * kw == 1:
            raise ShapeError(f"{self.name} standardises each filter over its {per_group}x{kh}x{kw} weights: one value "
                             "has no variance (PyTorch's batch_norm refuses it)",
                             hint="a filter needs at least two weights: a larger kernel or fewer groups")
        return out

    def flops(self, attrs, ins, out):
        # the weights are standardised on every forward pass, at inference too (once per batch)
        weights = math.prod(self.tensors(attrs, ins)[0].shape)
        return super().flops(attrs, ins, out) + self.ops_per_weight * weights

    def saved(self, attrs, ins, out, inplace=False):
        # the conv's input and its standardised weight, and batch_norm's mean and 1/std per filter:
        # per batch, not per image, and counted per image as at batch 1 (measured, fp32)
        which, extra = padded_saved(attrs, ins, out)
        k, weights = attrs["filters"], math.prod(self.tensors(attrs, ins)[0].shape)
        return which, extra + 4 * (weights + 2 * k)

    def torch_module(self, attrs, ins, inplace):
        a, tf = attrs, attrs["p"] == TF_SAME
        return torch_module(
            self.torch_class, (("in_channels", ins[0][2]), ("out_channels", a["filters"]), ("kernel_size", a["kernel"])),
            (("stride", a["s"]),) + ((("tf_same", True),) if tf else (("padding", a["p"]),))
            + (("dilation", a["d"]), ("groups", a["groups"]), ("bias", a["bias"])) + self.extra(a),
            spec=(("in_channels", "@in"), ("out_channels", "filters"), ("kernel_size", "kernel"), ("stride", "s"))
            + (() if tf else (("padding", "p"),)) + (("dilation", "d"), ("groups", "groups"), ("bias", "bias"),
                                                    ("eps", "eps"), ("gamma", "gamma"), ("gain_init", "gain")),
            defaults={"stride": (1, 1), "padding": (0, 0), "dilation": (1, 1), "groups": 1, "bias": True,
                      "tf_same": False, "eps": 1e-6, "gamma": 1.0, "gain_init": 1.0})

    def extra(self, attrs):
        return (("eps", attrs["eps"]),)

    def onnx(self, b, n, xs):
        a = n.attrs
        w = self.standardised(b, n)
        ins = [xs[0], w] + ([f"{n.name}.bias"] if a["bias"] else [])
        b.node("Conv", ins, n, kernel_shape=list(a["kernel"]), strides=list(a["s"]),
               pads=onnx_pads(a, b.shape_of(n.inputs[0])), dilations=list(a["d"]), group=a["groups"])

    def standardised(self, b, n):
        """(w - mean) / sqrt(var + eps) per filter (axes 1-3), as F.batch_norm computes it in training."""
        w = f"{n.name}.weight"
        mean = reduce(b, n, "ReduceMean", w, [1, 2, 3], "w_mean")
        d = b.node("Sub", [w, mean], n, out=f"{n.name}:w_centred")
        var = reduce(b, n, "ReduceMean", b.node("Mul", [d, d], n, out=f"{n.name}:w_squares"), [1, 2, 3], "w_var")
        eps = b.node("Add", [var, b.scalar(n.attrs["eps"])], n, out=f"{n.name}:w_var_eps")
        return b.node("Div", [d, b.node("Sqrt", [eps], n, out=f"{n.name}:w_std")], n, out=f"{n.name}:w_standardised")

    def describe(self, attrs):
        return super().describe(attrs) + (f" eps {attrs['eps']:g}" if attrs["eps"] != 1e-6 else "")


class ScaledStdConv(StdConv):
    name = "SCALEDSTDCONV"
    doc = ("a convolution with standardised weights times a learnt gain per filter and gamma/sqrt(fan_in) "
           "(timm's ScaledStdConv2d: NFNet, NF-ResNet)")
    args = tuple(Arg("bias", "bool", True, doc=_BIAS.doc) if a.name == "bias" else a for a in StdConv.args) + (
        Arg("gamma", "float", 1.0, doc="the activation's gain (NFNet: GELU 1.7015043, ReLU 1.7139588)"),
        Arg("gain", "float", 1.0, aliases=("gain_init",), doc="the learnt gains' initial value"))
    samples = ("SCALEDSTDCONV(8, 3, p=1)", "SCALEDSTDCONV(8, 1, gamma=1.7015043, eps=1e-5)",
               "SCALEDSTDCONV(8, 3, s=2, p=tf_same, bias=false, gain=0.5)")
    torch_class = "cnndsl.ScaledStdConv2d"
    ops_per_weight = 6  # and the gain

    def tensors(self, attrs, ins):
        return super().tensors(attrs, ins) + (Tensor("gain", (attrs["filters"], 1, 1, 1), "fill", fill=attrs["gain"]),)

    def saved(self, attrs, ins, out, inplace=False):
        which, extra = super().saved(attrs, ins, out, inplace)
        return which, extra + 4 * attrs["filters"]  # and gain * scale, batch_norm's weight

    def extra(self, attrs):
        return (("eps", attrs["eps"]), ("gamma", attrs["gamma"]), ("gain_init", attrs["gain"]))

    def standardised(self, b, n):
        a = n.attrs
        w = super().standardised(b, n)
        fan_in = math.prod(self.tensors(a, [b.shape_of(n.inputs[0])])[0].shape[1:])
        scale = a["gamma"] * fan_in ** -0.5  # a Python float, as timm computes it
        gain = b.node("Mul", [f"{n.name}.gain", b.scalar(scale)], n, out=f"{n.name}:gain_scaled")
        return b.node("Mul", [w, gain], n, out=f"{n.name}:w_scaled")

    def describe(self, attrs):
        return super().describe(attrs) + (f" gamma {attrs['gamma']:g}" if attrs["gamma"] != 1 else "")


def torch_modules():
    """timm's StdConv2d and ScaledStdConv2d, with TensorFlow's SAME padding as an option."""
    import torch

    from . import conv
    Conv2dSame = conv.Conv2dSame

    class StdConv2d(Conv2dSame):
        """nn.Conv2d whose weight is standardised per filter on every call, as timm's StdConv2d
        (F.batch_norm over each filter's values, training statistics, `eps`)."""

        def __init__(self, *args, eps: float = 1e-6, tf_same: bool = False, **kwargs):
            super().__init__(*args, tf_same=tf_same, **kwargs)
            self.eps = eps

        def standardised(self):
            return torch.nn.functional.batch_norm(self.weight.reshape(1, self.out_channels, -1), None, None,
                                                  training=True, momentum=0.0, eps=self.eps).reshape_as(self.weight)

        def forward(self, x):
            x = self.pad_same(x) if self.tf_same else x
            return self._conv_forward(x, self.standardised(), self.bias)

    class ScaledStdConv2d(StdConv2d):
        """timm's ScaledStdConv2d: the standardised weight times `gain` (a parameter per filter,
        (out, 1, 1, 1), starting at `gain_init`) and gamma / sqrt(fan_in)."""

        def __init__(self, *args, gamma: float = 1.0, gain_init: float = 1.0, **kwargs):
            super().__init__(*args, **kwargs)
            self.scale = gamma * self.weight[0].numel() ** -0.5
            self.gain = torch.nn.Parameter(torch.full((self.out_channels, 1, 1, 1), float(gain_init)))

        def standardised(self):
            return torch.nn.functional.batch_norm(
                self.weight.reshape(1, self.out_channels, -1), None, None, weight=(self.gain * self.scale).view(-1),
                training=True, momentum=0.0, eps=self.eps).reshape_as(self.weight)

    return {"StdConv2d": StdConv2d, "ScaledStdConv2d": ScaledStdConv2d}
