"""Layers with a learnt scalar scale and bias (one value each, shared by every channel), as
MetaFormer and PP-HGNetV2 have them:

    STARRELU   s * relu(x)^2 + b: ConvFormer's and CAFormer's activation (timm's StarReLU);
               `learnt=false` keeps s and b as constants: with the defaults, MetaFormer's
               SquaredReLU relu(x)^2
    AFFINE     s * x + b: PP-HGNetV2's LearnableAffineBlock, after each activation (`use_lab`)

    >>> from cnndsl.kinds import KINDS
    >>> star = KINDS["STARRELU"]
    >>> [(t.name, t.shape, t.fill) for t in star.tensors(star.bind({"scale": 0.8944, "bias": -0.4472}), [(4, 4, 8)])]
    [('weight', (1,), 0.8944), ('bias', (1,), -0.4472)]

The scale is the layer's `weight`, as every layer's first tensor is named; timm's `scale` loads into it
(kinds.Foreign's name).
"""
from __future__ import annotations

from .base import HE_STOP, NO_TENSORS, OWN, Arg, Foreign, Kind, Tensor, n_elems, torch_module


class _ScalarAffine(Kind):
    """A learnt (1,) scale (`weight`; timm's `scale`) and `bias`."""
    memory, output_overwritable, he, draw_group = OWN, True, HE_STOP, "activation"

    def tensors(self, attrs, ins):
        if not attrs.get("learnt", True):
            return NO_TENSORS
        return (Tensor("weight", (1,), "fill", fill=attrs["scale"], foreign=(Foreign((1,), name="scale"),)),
                Tensor("bias", (1,), "fill", fill=attrs["bias"]))

    def _constants(self, b, n):
        if n.attrs.get("learnt", True):
            return f"{n.name}.weight", f"{n.name}.bias"
        return b.scalar(n.attrs["scale"]), b.scalar(n.attrs["bias"])

    def describe(self, attrs):
        learnt = attrs.get("learnt", True)
        if not learnt and (attrs["scale"], attrs["bias"]) == (1.0, 0.0):
            return "squared"
        return f"s {attrs['scale']:g}, b {attrs['bias']:g}" + ("" if learnt else " fixed")


class StarRelu(_ScalarAffine):
    name = "STARRELU"
    doc = "s * relu(x)^2 + b with a learnt scalar s and b (MetaFormer's StarReLU; learnt=false: SquaredReLU)"
    args = (Arg("scale", "float", 1.0, aliases=("s", "scale_value"), doc="s's initial value"),
            Arg("bias", "float", 0.0, aliases=("b", "bias_value"), doc="b's initial value"),
            Arg("learnt", "bool", True, aliases=("learnable",), doc="learn s and b (false: constants)"))
    elementwise_ops = 4  # relu, square, scale, shift
    samples = ("STARRELU", "STARRELU(scale=0.8944, bias=-0.4472)", "STARRELU(learnt=false)",
               "CONV(8, 1) - STARRELU - CONV(4, 3, p=1, groups=4)")

    def saved(self, attrs, ins, out, inplace=False):
        # relu keeps its output, the square reads the same; a learnt s keeps relu(x)^2 for its gradient
        return ((), 4 * n_elems(out) * (2 if attrs["learnt"] else 1))

    def torch_module(self, attrs, ins, inplace):
        return torch_module("cnndsl.StarReLU", (), (("scale_value", attrs["scale"]), ("bias_value", attrs["bias"]),
                                                    ("learnable", attrs["learnt"])),
                            spec=(("scale_value", "scale"), ("bias_value", "bias"), ("learnable", "learnt")),
                            defaults={"scale_value": 1.0, "bias_value": 0.0, "learnable": True})

    def onnx(self, b, n, xs):
        s, bias = self._constants(b, n)
        r = b.node("Relu", xs[:1], n, out=f"{n.name}:relu")
        sq = b.node("Mul", [r, r], n, out=f"{n.name}:squared")
        scaled = b.node("Mul", [s, sq], n, out=f"{n.name}:scaled")
        b.node("Add", [scaled, bias], n)


class Affine(_ScalarAffine):
    name = "AFFINE"
    doc = "s * x + b with a learnt scalar s and b (PP-HGNetV2's LearnableAffineBlock)"
    args = (Arg("scale", "float", 1.0, aliases=("s", "scale_value"), doc="s's initial value"),
            Arg("bias", "float", 0.0, aliases=("b", "bias_value"), doc="b's initial value"))
    elementwise_ops = 2
    samples = ("AFFINE", "AFFINE(scale=0.5, bias=0.1)", "CONV(8, 3, p=1) - RELU - AFFINE")

    def saved(self, attrs, ins, out, inplace=False):
        return (("in",), 0)  # s * x: s's gradient needs x

    def torch_module(self, attrs, ins, inplace):
        return torch_module("cnndsl.LearnableAffine", (), (("scale_value", attrs["scale"]), ("bias_value", attrs["bias"])),
                            spec=(("scale_value", "scale"), ("bias_value", "bias")),
                            defaults={"scale_value": 1.0, "bias_value": 0.0})

    def onnx(self, b, n, xs):
        s, bias = self._constants(b, n)
        scaled = b.node("Mul", [s, xs[0]], n, out=f"{n.name}:scaled")
        b.node("Add", [scaled, bias], n)


def torch_modules():
    """STARRELU's and AFFINE's PyTorch modules (kinds.torch_classes builds them; torch is imported here only)."""
    import torch
    from torch import nn

    class StarReLU(nn.Module):
        """timm's StarReLU: scale * relu(x) ** 2 + bias; the scale a (1,) parameter `weight` (timm's `scale`)
        and `bias`, or constants."""

        def __init__(self, scale_value: float = 1.0, bias_value: float = 0.0, learnable: bool = True):
            super().__init__()
            self.relu = nn.ReLU()
            if learnable:
                self.weight = nn.Parameter(scale_value * torch.ones(1))
                self.bias = nn.Parameter(bias_value * torch.ones(1))
            else:
                self.weight, self.bias = scale_value, bias_value

        def forward(self, x):
            return self.weight * self.relu(x) ** 2 + self.bias

    class LearnableAffine(nn.Module):
        """timm's LearnableAffineBlock (hgnet.py): scale * x + bias, the scale a (1,) parameter `weight`
        (timm's `scale`) and `bias`."""

        def __init__(self, scale_value: float = 1.0, bias_value: float = 0.0):
            super().__init__()
            self.weight = nn.Parameter(torch.tensor([float(scale_value)]))
            self.bias = nn.Parameter(torch.tensor([float(bias_value)]))

        def forward(self, x):
            return self.weight * x + self.bias

    return {"StarReLU": StarReLU, "LearnableAffine": LearnableAffine}
