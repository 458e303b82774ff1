"""Activations: element-wise functions, and the softmax over channels.

What autograd keeps (measured on CPU with saved_tensors_hooks; CUDA keeps the same): ReLU, sigmoid
and tanh their output; the others their input. Run in place, leaky ReLU and ELU keep the output
(which is then the input's memory), while ReLU6, SiLU, hardswish, hardsigmoid and Mish keep a copy
of the input that the in-place op makes before overwriting it.
"""
from __future__ import annotations

from .base import HE_RELU, INPLACE, Arg, Elementwise, ShapeError, Tensor, channels, n_elems, torch_module


class _Activation(Elementwise):
    elementwise_ops = 1
    torch_class = ""
    onnx_op = ""

    def saved(self, attrs, ins, out, inplace=False):
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

    def saved(self, attrs, ins, out, inplace=False):
        # hardtanh keeps its input; in place (as torchvision runs it) hardtanh_ keeps a copy of the
        # input it overwrites (fp32 bytes, as LRN's): measured with saved_tensors_hooks
        return ((), 4 * n_elems(out)) if inplace else (("in",), 0)

    def onnx(self, b, n, xs):
        b.node("Clip", [xs[0], b.scalar(0.0), b.scalar(6.0)], n)


class LeakyReLU(_ReLULike):
    name = "LEAKYRELU"
    doc = "x if x > 0 else slope*x"
    args = (Arg("slope", "float", 0.01, lo=0.0, aliases=("negative_slope", "a"), doc="slope for x < 0"),)
    torch_class = "nn.LeakyReLU"
    samples = ("LEAKYRELU(0.1)", "LEAKYRELU")

    def saved(self, attrs, ins, out, inplace=False):
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

    def saved(self, attrs, ins, out, inplace=False):
        return (("in",), 0)


class Softmax(_Activation):
    """Over all channels (class probabilities), or across `groups` (SKNet's and ResNeSt's attention
    over their paths): the channels read as (card, groups, C/(card*groups)), for each of the others
    a softmax over the groups, written out as (groups, card, C/(card*groups)), exactly timm's
    RadixSoftmax (radix = groups, cardinality = card; card 1 is SKNet's softmax over the paths of
    x.view(B, paths, C/paths, ...))."""
    name = "SOFTMAX"
    doc = "class probabilities over the channels; with groups, across channel groups (split attention)"
    args = (Arg("groups", "int", 1, lo=1, aliases=("radix", "paths"), doc="softmax across this many channel groups"),
            Arg("card", "int", 1, lo=1, aliases=("cardinality",), doc="ResNeSt's cardinality (groups > 1)"))
    elementwise_ops = 3
    probabilities = True
    torch_class = "nn.Softmax"
    samples = ("SOFTMAX", "SOFTMAX(groups=2)", "SOFTMAX(groups=2, card=2)", "FC(12) - SOFTMAX(groups=3, card=2)")

    def out_shape(self, attrs, ins):
        c, g, k = channels(ins), attrs["groups"], attrs["card"]
        if k > 1 and g == 1:
            raise ShapeError(f"SOFTMAX(card={k}) needs groups > 1 to take a softmax across",
                             hint="timm's RadixSoftmax with radix 1 is a SIGMOID")
        if c % (g * k):
            raise ShapeError(f"SOFTMAX(groups={g}{f', card={k}' if k > 1 else ''}) cannot split {c} channels",
                             arithmetic=f"{c} % {g * k} = {c % (g * k)}", hint=f"the channels must be a multiple of {g * k}")
        return ins[0]

    # saved: its output (across groups too: softmax writes a contiguous result, which the reshape
    # back only views; measured with saved_tensors_hooks)

    def torch_module(self, attrs, ins, inplace):
        if attrs["groups"] == 1:
            return torch_module("nn.Softmax", (), (("dim", 1),))
        return torch_module("cnndsl.RadixSoftmax", (("radix", attrs["groups"]),), (("cardinality", attrs["card"]),),
                            spec=(("radix", "groups"), ("cardinality", "card")), defaults={"cardinality": 1})

    def onnx(self, b, n, xs):
        g, k = n.attrs["groups"], n.attrs["card"]
        if g == 1:
            b.node("Softmax", xs[:1], n, axis=1)
            return
        grouped = b.node("Reshape", [xs[0], b.ints(n, "grouped_shape", [0, k, g, -1])], n, out=f"{n.name}:grouped")
        x = b.node("Transpose", [grouped], n, out=f"{n.name}:radix_first", perm=[0, 2, 1, 3]) if k > 1 else grouped
        y = b.node("Softmax", [x], n, out=f"{n.name}:softmax", axis=1 if k > 1 else 2)  # across the groups
        shape = n.out_shape
        b.node("Reshape", [y, b.ints(n, "shape", [0, shape[2], shape[0], shape[1]] if len(shape) == 3 else [0, -1])], n)

    def describe(self, attrs):
        g, k = attrs["groups"], attrs["card"]
        return "" if g == 1 else f"{g} groups" + (f" x{k}" if k > 1 else "")


class _CopyInPlace(_Activation):
    """Keeps its input for backward; may run in place (torch's inplace=True), and then autograd keeps
    a copy of the input instead, so the output itself is free to be overwritten by a successor."""
    memory, output_overwritable = INPLACE, True

    def saved(self, attrs, ins, out, inplace=False):
        return ((), 4 * n_elems(out)) if inplace else (("in",), 0)

    def torch_module(self, attrs, ins, inplace):
        return torch_module(self.torch_class, (), (("inplace", inplace),), defaults={"inplace": False})


class SiLU(_CopyInPlace):
    name = "SILU"
    aliases = ("SWISH",)
    doc = "x*sigmoid(x) (EfficientNet's swish)"
    torch_class = "nn.SiLU"
    samples = ("SILU",)

    def onnx(self, b, n, xs):
        # ONNX's Swish (opset 24) has no kernel in onnxruntime 1.31 at opset 26: two plain nodes
        gate = b.node("Sigmoid", xs[:1], n, out=f"{n.name}:sigmoid")
        b.node("Mul", [xs[0], gate], n)


class Hardsigmoid(_CopyInPlace):
    name = "HARDSIGMOID"
    doc = "relu6(x+3)/6 (MobileNetV3's gate)"
    torch_class = "nn.Hardsigmoid"
    samples = ("HARDSIGMOID",)

    def onnx(self, b, n, xs):
        b.node("HardSigmoid", xs[:1], n, alpha=1.0 / 6, beta=0.5)


class Hardswish(_CopyInPlace):
    name = "HARDSWISH"
    doc = "x*relu6(x+3)/6 (MobileNetV3)"
    torch_class = "nn.Hardswish"
    samples = ("HARDSWISH",)

    def onnx(self, b, n, xs):
        if b.opset >= 14:
            b.node("HardSwish", xs[:1], n)
            return
        gate = b.node("HardSigmoid", xs[:1], n, out=f"{n.name}:gate", alpha=1.0 / 6, beta=0.5)
        b.node("Mul", [xs[0], gate], n)


class Mish(_CopyInPlace):
    name = "MISH"
    doc = "x*tanh(softplus(x))"
    torch_class = "nn.Mish"
    samples = ("MISH",)

    def onnx(self, b, n, xs):
        if b.opset >= 18:
            b.node("Mish", xs[:1], n)
            return
        sp = b.node("Softplus", xs[:1], n, out=f"{n.name}:softplus")
        th = b.node("Tanh", [sp], n, out=f"{n.name}:tanh")
        b.node("Mul", [xs[0], th], n)


class GELU(_Activation):
    name = "GELU"
    doc = "x*Phi(x), exact (erf) or tanh-approximated (approx=true)"
    args = (Arg("tanh", "bool", False, aliases=("approx", "approximate"),
                doc="the tanh approximation instead of the exact erf form"),)
    output_overwritable = True  # keeps its input, not its output; has no in-place form
    torch_class = "nn.GELU"
    samples = ("GELU", "GELU(approx=true)")

    def saved(self, attrs, ins, out, inplace=False):
        return (("in",), 0)

    def torch_module(self, attrs, ins, inplace):
        return torch_module("nn.GELU", (), (("approximate", "tanh" if attrs["tanh"] else "none"),),
                            spec=(("approximate", "tanh"),), defaults={"approximate": "none"})

    def onnx(self, b, n, xs):
        approx = "tanh" if n.attrs["tanh"] else "none"
        if b.opset >= 20:
            b.node("Gelu", xs[:1], n, approximate=approx)
            return
        x = xs[0]
        if approx == "none":  # 0.5*x*(1 + erf(x/sqrt(2)))
            inner = b.node("Mul", [x, b.scalar(0.5 ** 0.5)], n, out=f"{n.name}:scaled")
            t = b.node("Erf", [inner], n, out=f"{n.name}:erf")
        else:  # 0.5*x*(1 + tanh(sqrt(2/pi)*(x + 0.044715*x^3)))
            cube = b.node("Mul", [b.node("Mul", [x, x], n, out=f"{n.name}:square"), x], n, out=f"{n.name}:cube")
            inner = b.node("Add", [x, b.node("Mul", [cube, b.scalar(0.044715)], n, out=f"{n.name}:cubic")], n,
                           out=f"{n.name}:poly")
            inner = b.node("Mul", [inner, b.scalar((2 / 3.141592653589793) ** 0.5)], n, out=f"{n.name}:scaled")
            t = b.node("Tanh", [inner], n, out=f"{n.name}:tanh")
        one = b.node("Add", [t, b.scalar(1.0)], n, out=f"{n.name}:plus1")
        half = b.node("Mul", [x, b.scalar(0.5)], n, out=f"{n.name}:half")
        b.node("Mul", [half, one], n)

    def describe(self, attrs):
        return "tanh" if attrs["tanh"] else ""


class ELU(_ReLULike):
    name = "ELU"
    doc = "x if x > 0 else alpha*(exp(x)-1)"
    args = (Arg("alpha", "float", 1.0, lo=0.0, aliases=("a",), doc="scale for x < 0 (PyTorch's in-place ELU "
                                                                     "needs alpha >= 0)"),)
    he = Elementwise.he  # not a ReLU: He initialisation does not target it
    torch_class = "nn.ELU"
    samples = ("ELU", "ELU(0.5)")

    def saved(self, attrs, ins, out, inplace=False):
        return (("in",), 0)  # elu keeps its input; elu_ its output, which is then the input's memory

    def torch_module(self, attrs, ins, inplace):
        return torch_module("nn.ELU", (), (("alpha", attrs["alpha"]), ("inplace", inplace)),
                            spec=(("alpha", "alpha"),), defaults={"alpha": 1.0, "inplace": False})

    def onnx(self, b, n, xs):
        b.node("Elu", xs[:1], n, alpha=float(n.attrs["alpha"]))

    def describe(self, attrs):
        return f"{attrs['alpha']:g}" if attrs["alpha"] != 1.0 else ""


class PReLU(_Activation):
    name = "PRELU"
    doc = "x if x > 0 else a*x, with a learnt slope a per channel (shared=true: one for all)"
    args = (Arg("shared", "bool", False, doc="one slope for every channel"),
            Arg("init", "float", 0.25, doc="the slopes' initial value"))
    output_overwritable = True  # keeps its input, not its output; has no in-place form
    samples = ("PRELU", "PRELU(shared=true, init=0.1)")

    def tensors(self, attrs, ins):
        return (Tensor("weight", (1 if attrs["shared"] else channels(ins),), "fill", fill=attrs["init"]),)

    def saved(self, attrs, ins, out, inplace=False):
        return (("in",), 0)

    def torch_module(self, attrs, ins, inplace):
        k = 1 if attrs["shared"] else channels(ins)
        return torch_module("nn.PReLU", (), (("num_parameters", k), ("init", attrs["init"])),
                            spec=(() if attrs["shared"] else (("num_parameters", "@in"),)) + (("init", "init"),),
                            defaults={"num_parameters": 1, "init": 0.25})

    def onnx(self, b, n, xs):
        slope = f"{n.name}.weight"
        if len(n.out_shape) == 3 and not n.attrs["shared"]:  # (C,) -> (C, 1, 1): broadcast over NCHW
            slope = b.node("Unsqueeze", [slope, b.ints(n, "axes", [1, 2])], n, out=f"{n.name}:slope")
        b.node("PRelu", [xs[0], slope], n)

    def describe(self, attrs):
        return "shared" if attrs["shared"] else ""


def torch_modules():
    """SOFTMAX's module across channel groups (kinds.torch_classes builds it; torch is imported here only)."""
    import torch
    from torch import nn

    class RadixSoftmax(nn.Module):
        """timm's RadixSoftmax (ResNeSt) for radix > 1, keeping the input's shape: the channels as
        (cardinality, radix, rest), a softmax over the radix, written out as (radix, cardinality, rest)."""

        def __init__(self, radix: int, cardinality: int = 1):
            super().__init__()
            self.radix, self.cardinality = radix, cardinality

        def forward(self, x):
            y = x.reshape(x.shape[0], self.cardinality, self.radix, -1).transpose(1, 2)
            return torch.softmax(y, 1).reshape(x.shape)

        def extra_repr(self):
            return f"{self.radix}, cardinality={self.cardinality}"

    return {"RadixSoftmax": RadixSoftmax}
