"""Activations: element-wise functions, and the softmax over channels."""
from __future__ import annotations

from .base import HE_RELU, INPLACE, Arg, Elementwise, n_elems, torch_module


class _Activation(Elementwise):
    elementwise_ops = 1
    torch_class = ""
    onnx_op = ""

    def saved(self, attrs, ins, out):
        return (("out",), 0)

    def torch_module(self, attrs, ins, inplace):
        return torch_module(self.torch_class)

    def onnx(self, b, n, xs):
        b.node(self.onnx_op, xs[:1], n)


class _ReLULike(_Activation):
    """May overwrite its input (when nobody else reads it); He initialisation targets it."""
    memory, he = INPLACE, HE_RELU

    def torch_module(self, attrs, ins, inplace):
        return torch_module(self.torch_class, (), (("inplace", inplace),), defaults={"inplace": False})


class ReLU(_ReLULike):
    name = "RELU"
    doc = "max(0, x)"
    torch_class, onnx_op = "nn.ReLU", "Relu"
    samples = ("RELU",)


class ReLU6(_ReLULike):
    name = "RELU6"
    doc = "min(max(0, x), 6) (MobileNetV2)"
    torch_class = "nn.ReLU6"
    samples = ("RELU6",)

    def saved(self, attrs, ins, out):
        # in place (as torchvision runs it) PyTorch's hardtanh_ keeps a copy of its input, not the
        # output: measured with saved_tensors_hooks (tests/test_pytorch.py); fp32 bytes, as LRN's
        return ((), 4 * n_elems(out))

    def onnx(self, b, n, xs):
        b.node("Clip", [xs[0], b.scalar(0.0), b.scalar(6.0)], n)


class LeakyReLU(_ReLULike):
    name = "LEAKYRELU"
    doc = "x if x > 0 else slope*x"
    args = (Arg("slope", "float", 0.01, lo=0.0, aliases=("negative_slope", "a"), doc="slope for x < 0"),)
    torch_class = "nn.LeakyReLU"
    samples = ("LEAKYRELU(0.1)", "LEAKYRELU")

    def saved(self, attrs, ins, out):
        return (("in",), 0)

    def torch_module(self, attrs, ins, inplace):
        return torch_module(self.torch_class, (("negative_slope", attrs["slope"]),), (("inplace", inplace),),
                            spec=(("negative_slope", "slope"),), defaults={"inplace": False})

    def onnx(self, b, n, xs):
        b.node("LeakyRelu", xs[:1], n, alpha=float(n.attrs["slope"]))

    def describe(self, attrs):
        return f"{attrs['slope']:g}"


class Sigmoid(_Activation):
    name = "SIGMOID"
    doc = "1/(1+exp(-x))"
    torch_class, onnx_op = "nn.Sigmoid", "Sigmoid"
    samples = ("SIGMOID",)


class Tanh(_Activation):
    name = "TANH"
    doc = "tanh(x)"
    torch_class, onnx_op = "nn.Tanh", "Tanh"
    samples = ("TANH",)


class Softplus(_Activation):
    name = "SOFTPLUS"
    doc = "log(1+exp(x))"
    torch_class, onnx_op = "nn.Softplus", "Softplus"
    samples = ("SOFTPLUS",)

    def saved(self, attrs, ins, out):
        return (("in",), 0)


class Softmax(_Activation):
    name = "SOFTMAX"
    doc = "class probabilities over the depth (channels) axis"
    elementwise_ops = 3
    probabilities = True
    torch_class = "nn.Softmax"
    samples = ("SOFTMAX",)

    def torch_module(self, attrs, ins, inplace):
        return torch_module("nn.Softmax", (), (("dim", 1),))

    def onnx(self, b, n, xs):
        b.node("Softmax", xs[:1], n, axis=1)
