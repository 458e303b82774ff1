"""A constant scale: Inception-ResNet's `x + 0.17 * f(x)` and NF-ResNet's alpha and beta, as the
papers draw them, with no parameter (LAYERSCALE is the learnt one):

    { ID + CONV(320, 1) - SCALE(0.17) } - RELU

    >>> Scale().out_shape({"value": 0.17}, [(8, 8, 4)]), Scale().params({"value": 0.17}, [(8, 8, 4)])
    ((8, 8, 4), 0)
"""
from __future__ import annotations

from .base import HE_PASS, NO_TENSORS, OWN, REQUIRED, Arg, Kind, torch_module


class Scale(Kind):
    name = "SCALE"
    doc = "multiplies by a constant (Inception-ResNet's 0.17, NFNet's alpha and beta): no parameters"
    args = (Arg("value", "float", REQUIRED, aliases=("scale", "alpha", "factor"), doc="the constant factor"),)
    elementwise_ops = 1
    # x * c keeps no tensor for backward (the factor is a number), so its output may be overwritten
    memory, output_overwritable, he, draw_group = OWN, True, HE_PASS, "norm"
    samples = ("SCALE(0.17)", "{ ID + CONV(4, 1) - SCALE(0.2) } - RELU", "SCALE(-1.5)")

    def tensors(self, attrs, ins):
        return NO_TENSORS

    def saved(self, attrs, ins, out, inplace=False):
        return ((), 0)  # measured: mul by a Python number keeps nothing

    def torch_module(self, attrs, ins, inplace):
        return torch_module("cnndsl.ConstantScale", (("value", attrs["value"]),), spec=(("value", "value"),))

    def onnx(self, b, n, xs):
        b.node("Mul", [xs[0], b.scalar(n.attrs["value"])], n)

    def describe(self, attrs):
        return f"x{attrs['value']:g}"


def torch_modules():
    """SCALE's PyTorch module (kinds.torch_classes builds it; torch is imported here only)."""
    from torch import nn

    class ConstantScale(nn.Module):
        """y = x * value, a constant (timm's Inception-ResNet blocks: `out * self.scale + x`)."""

        def __init__(self, value: float):
            super().__init__()
            self.value = value

        def forward(self, x):
            return x * self.value

        def extra_repr(self):
            return f"{self.value}"

    return {"ConstantScale": ConstantScale}
