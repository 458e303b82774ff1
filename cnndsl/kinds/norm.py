"""Normalisation: batch normalisation and AlexNet's local response normalisation."""
from __future__ import annotations

from .base import HE_PASS, HE_STOP, NO_TENSORS, OWN, Arg, Kind, Tensor, n_elems, need_volume, torch_module


class BatchNorm(Kind):
    name = "BN"
    aliases = ("BATCHNORM",)
    doc = "batch normalisation per channel: trainable scale and shift, running mean and variance"
    args = (Arg("eps", "float", 1e-5, lo=0.0, doc="added to the variance"),
            Arg("momentum", "float", 0.1, lo=0.0, hi=1.0000001, doc="running-statistics update rate"))
    elementwise_ops = 2
    memory, output_overwritable, he, draw_group = OWN, True, HE_PASS, "norm"
    samples = ("BN", "BN(eps=1e-3, momentum=0.01)")

    def tensors(self, attrs, ins):
        c = (ins[0][-1],)
        return (Tensor("weight", c, "ones"), Tensor("bias", c, "zeros"),
                Tensor("running_mean", c, "zeros", buffer=True), Tensor("running_var", c, "ones", buffer=True),
                Tensor("num_batches_tracked", (), "zeros", buffer=True, dtype="int64"))

    def saved(self, attrs, ins, out):
        return (("in",), 0)

    def torch_module(self, attrs, ins, inplace):
        return torch_module("nn.BatchNorm2d" if len(ins[0]) == 3 else "nn.BatchNorm1d",
                            (("num_features", ins[0][-1]),),
                            (("eps", attrs["eps"]), ("momentum", attrs["momentum"])),
                            spec=(("num_features", "@in"), ("eps", "eps"), ("momentum", "momentum")),
                            defaults={"eps": 1e-5, "momentum": 0.1})

    def onnx(self, b, n, xs):
        p = n.name
        b.node("BatchNormalization", [xs[0], f"{p}.weight", f"{p}.bias", f"{p}.running_mean", f"{p}.running_var"], n,
               epsilon=float(n.attrs["eps"]))


class LRN(Kind):
    name = "LRN"
    aliases = ("NORM",)
    doc = "local response normalisation across `size` neighbouring channels (AlexNet)"
    args = (Arg("size", "int", 5, lo=1, aliases=("n",), doc="channels in the window"),
            Arg("alpha", "float", 1e-4, lo=0.0, doc="scale"),
            Arg("beta", "float", 0.75, lo=0.0, doc="exponent"),
            Arg("k", "float", 1.0, lo=0.0, aliases=("bias",), doc="additive constant"))
    memory, output_overwritable, he, draw_group = OWN, False, HE_STOP, "norm"
    samples = ("LRN(size=3)", "LRN", "LRN(4)")

    def out_shape(self, attrs, ins):
        need_volume(self.name, ins[0])
        return ins[0]

    def tensors(self, attrs, ins):
        return NO_TENSORS

    def flops(self, attrs, ins, out):
        return n_elems(out) * (attrs["size"] + 3)

    def saved(self, attrs, ins, out):
        # PyTorch's composite LRN keeps its input, the channel-padded squares (C + size - 1 channels)
        # that avg_pool3d reads, the pow input and the divisor, not its output (measured, fp32 bytes)
        H, W, C = ins[0]
        return (("in",), 4 * (2 * n_elems(out) + H * W * (C + attrs["size"] - 1)))

    def torch_module(self, attrs, ins, inplace):
        a = attrs
        return torch_module("nn.LocalResponseNorm", (("size", a["size"]),),
                            (("alpha", a["alpha"]), ("beta", a["beta"]), ("k", a["k"])),
                            spec=(("size", "size"), ("alpha", "alpha"), ("beta", "beta"), ("k", "k")),
                            defaults={"alpha": 1e-4, "beta": 0.75, "k": 1.0})

    def onnx(self, b, n, xs):
        a = n.attrs
        size, alpha, beta, k = a["size"], float(a["alpha"]), float(a["beta"]), float(a["k"])
        if size % 2:
            b.node("LRN", xs[:1], n, size=size, alpha=alpha, beta=beta, bias=k)
            return
        # Even windows: ONNX's LRN looks at (size-1)//2 channels before and size//2 after, PyTorch's at
        # size//2 before and (size-1)//2 after; lower it as PyTorch does (pad, average over channels).
        sq = b.node("Mul", [xs[0], xs[0]], n, out=f"{n.name}:square")
        x5 = b.node("Unsqueeze", [sq, b.ints(n, "axis", [1])], n, out=f"{n.name}:square5d")
        pads = b.ints(n, "pads", [0, 0, size // 2, 0, 0, 0, 0, (size - 1) // 2, 0, 0])
        padded = b.node("Pad", [x5, pads], n, out=f"{n.name}:padded")
        avg = b.node("AveragePool", [padded], n, out=f"{n.name}:avg5d", kernel_shape=[size, 1, 1])
        avg = b.node("Squeeze", [avg, b.ints(n, "axis", [1])], n, out=f"{n.name}:avg")
        scaled = b.node("Mul", [avg, b.scalar(alpha)], n, out=f"{n.name}:scaled")
        shifted = b.node("Add", [scaled, b.scalar(k)], n, out=f"{n.name}:shifted")
        div = b.node("Pow", [shifted, b.scalar(beta)], n, out=f"{n.name}:divisor")
        b.node("Div", [xs[0], div], n)

    def describe(self, attrs):
        return f"size {attrs['size']}"
