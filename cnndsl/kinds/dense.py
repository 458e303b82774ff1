"""Fully connected layers and the shape-only kinds around them: flatten, dropout, identity."""
from __future__ import annotations

from .base import (FLAT_FILTERS, HE_PASS, HE_STOP, NO_TENSORS, OWN, REQUIRED, VIEW, VIEW_AT_INFERENCE, Arg, Kind,
                   Tensor, n_elems, torch_module)


class FC(Kind):
    name = "FC"
    aliases = ("LINEAR",)
    doc = "fully connected: every output sees the whole (flattened) input"
    flat_input, elementwise = True, False
    args = (Arg("units", "int", REQUIRED, lo=1, aliases=("out", "n"), doc="number of outputs"),
            Arg("bias", "bool", True, doc="learn a bias per output"))
    bare = {"units": 512}
    weight_layer, filters, linear_weight = True, FLAT_FILTERS, True
    memory, output_overwritable, he, draw_group = OWN, True, HE_STOP, "dense"
    samples = ("FC(10)", "FC(32, bias=false)")

    def out_shape(self, attrs, ins):
        return (attrs["units"],)

    def tensors(self, attrs, ins):
        weight = Tensor("weight", (attrs["units"], ins[0][0]), "fan_in_uniform")
        return (weight, Tensor("bias", (attrs["units"],), "fan_in_uniform_bias")) if attrs["bias"] else (weight,)

    def macs(self, attrs, ins, out):
        return ins[0][0] * attrs["units"]

    def flops(self, attrs, ins, out):
        return 2 * self.macs(attrs, ins, out) + (attrs["units"] if attrs["bias"] else 0)

    def saved(self, attrs, ins, out, inplace=False):
        return (("in",), 0)

    def torch_module(self, attrs, ins, inplace):
        return torch_module("nn.Linear", (("in_features", ins[0][0]), ("out_features", attrs["units"])),
                            (("bias", attrs["bias"]),),
                            spec=(("in_features", "@in"), ("out_features", "units"), ("bias", "bias")),
                            defaults={"bias": True})

    def onnx(self, b, n, xs):
        ins = [xs[0], f"{n.name}.weight"] + ([f"{n.name}.bias"] if n.attrs["bias"] else [])
        b.node("Gemm", ins, n, transB=1)

    def describe(self, attrs):
        return f"{attrs['units']}" + ("" if attrs["bias"] else " nobias")


class Flatten(Kind):
    name = "FLATTEN"
    doc = "HxWxC -> a vector of H*W*C (inserted before an FC that follows a volume)"
    elementwise = False
    memory, output_overwritable, he, draw_group = VIEW, False, HE_STOP, "reshape"
    samples = ("FLATTEN",)

    def out_shape(self, attrs, ins):
        return (n_elems(ins[0]),)

    def tensors(self, attrs, ins):
        return NO_TENSORS

    def torch_module(self, attrs, ins, inplace):
        return torch_module("nn.Flatten", (), (("start_dim", 1),), defaults={"start_dim": 1})

    def onnx(self, b, n, xs):
        b.node("Flatten", xs[:1], n, axis=1)


class Dropout(Kind):
    name = "DROPOUT"
    doc = "zeroes each unit with probability p while training; identity at inference"
    args = (Arg("p", "float", 0.5, lo=0.0, hi=1.0, doc="drop probability"),)
    memory, output_overwritable, he, draw_group = VIEW_AT_INFERENCE, False, HE_PASS, "reshape"
    samples = ("DROPOUT(0.2)", "DROPOUT")

    def tensors(self, attrs, ins):
        return NO_TENSORS

    def saved(self, attrs, ins, out, inplace=False):
        # a bool mask, as CUDA keeps it; PyTorch's CPU path keeps a float one (4 bytes a value).
        # p = 0 returns the input itself and keeps nothing
        return ((), n_elems(out)) if attrs["p"] else ((), 0)

    def torch_module(self, attrs, ins, inplace):
        return torch_module("nn.Dropout", (("p", attrs["p"]),), spec=(("p", "p"),))

    def onnx(self, b, n, xs):
        b.node("Dropout", [xs[0], b.scalar(float(n.attrs["p"]))], n)  # inference: passes x through

    def describe(self, attrs):
        return f"{attrs['p']:g}"


class Identity(Kind):
    name = "ID"
    aliases = ("IDENTITY",)
    doc = "passes its input through (the shortcut in `{ ID + body }`)"
    memory, output_overwritable, he, draw_group = VIEW, False, HE_STOP, "reshape"
    samples = ("{ ID + RELU }", "RELU - ID")

    def tensors(self, attrs, ins):
        return NO_TENSORS

    def torch_module(self, attrs, ins, inplace):
        return torch_module("nn.Identity")

    def onnx(self, b, n, xs):  # never in the IR (an edge); kept so that every kind can be lowered
        b.node("Identity", xs[:1], n)


class DropPath(Kind):
    name = "DROPPATH"
    aliases = ("STOCHASTICDEPTH",)
    doc = ("stochastic depth: while training, drops the whole input of a sample with probability p and scales "
           "the kept ones by 1/(1-p) (torchvision's StochasticDepth, row mode); identity at inference")
    args = (Arg("p", "float", REQUIRED, lo=0.0, hi=1.0000001, doc="drop probability per sample"),)
    memory, output_overwritable, he, draw_group = VIEW_AT_INFERENCE, False, HE_PASS, "reshape"
    samples = ("DROPPATH(0.2)", "STOCHASTICDEPTH(0.1)")

    def tensors(self, attrs, ins):
        return NO_TENSORS

    def saved(self, attrs, ins, out, inplace=False):
        # x * noise keeps the noise: one value a sample (fp32), the same on CPU and CUDA; p = 0 returns x
        return ((), 4) if attrs["p"] else ((), 0)

    def torch_module(self, attrs, ins, inplace):
        return torch_module("cnndsl.StochasticDepth", (("p", attrs["p"]), ("mode", "row")), spec=(("p", "p"),))

    def onnx(self, b, n, xs):
        b.node("Identity", xs[:1], n)  # inference

    def describe(self, attrs):
        return f"{attrs['p']:g}"
