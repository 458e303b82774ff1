"""A 1-D convolution across the channels at each position: ECA's attention (ECA-Net, timm's
EcaModule), read as its figure draws it, pool, convolve the channel descriptor, gate:

    { ID .* GAP - CHANCONV - SIGMOID }

One filter of `kernel` taps slides along the channels (zero padding keeps their number; `circular=
true` wraps them round, timm's CecaModule). Without a kernel it takes ECA's adaptive size from
the channels C: t = int(|log2(C) + beta| / gamma), made odd, at least 3 (gamma 2, beta 1).

    >>> adaptive_kernel(64), adaptive_kernel(256), adaptive_kernel(2048)
    (3, 5, 7)
"""
from __future__ import annotations

import math

from .base import HE_STOP, OWN, Arg, Kind, ShapeError, Tensor, channels, n_elems, torch_module

ADAPTIVE = "adaptive"


def adaptive_kernel(c, gamma=2.0, beta=1.0) -> int:
    """ECA's kernel for C channels, exactly as timm's EcaModule computes it (math.log(C, 2))."""
    t = int(abs(math.log(c, 2) + beta) / gamma)
    return max(t if t % 2 else t + 1, 3)


class ChanConv(Kind):
    name = "CHANCONV"
    doc = "a 1-D convolution across the channels at each position (ECA's), one filter of `kernel` taps"
    args = (Arg("kernel", "int", ADAPTIVE, lo=1, aliases=("k", "size", "f"),
                doc="taps (odd); adaptive: ECA's size from the channels", choices=(ADAPTIVE,)),
            Arg("bias", "bool", False, doc="learn a bias"),
            Arg("circular", "bool", False, doc="pad by wrapping the channels round (timm's CecaModule)"),
            Arg("gamma", "float", 2.0, lo=1e-9, doc="the adaptive size's divisor"),
            Arg("beta", "float", 1.0, doc="the adaptive size's offset"))
    memory, output_overwritable, he, draw_group = OWN, True, HE_STOP, "convolution"
    linear_weight = True  # nn.Conv1d(1, 1, k): fan-in k; its k taps are no picture (`filters` stays "")
    samples = ("CHANCONV(3)", "{ ID .* GAP - CHANCONV - SIGMOID }", "CHANCONV(5, bias=true)",
               "CHANCONV(3, circular=true)", "FC(12) - CHANCONV(5)")

    def taps(self, attrs, ins) -> int:
        k = attrs["kernel"]
        return adaptive_kernel(channels(ins), attrs["gamma"], attrs["beta"]) if k == ADAPTIVE else k

    def out_shape(self, attrs, ins):
        k, c = self.taps(attrs, ins), channels(ins)
        if k % 2 == 0:
            raise ShapeError(f"CHANCONV's kernel must be odd to keep the {c} channels, got {k}",
                             hint="ECA's kernels are odd: 3, 5, 7 (leave it out for the adaptive size)")
        if attrs["circular"] and (k - 1) // 2 > c:
            raise ShapeError(f"circular padding of {(k - 1) // 2} wraps more than the {c} channels",
                             hint="a kernel of at most 2*C + 1 taps")
        return ins[0]

    def tensors(self, attrs, ins):
        k = self.taps(attrs, ins)
        weight = Tensor("weight", (1, 1, k), "fan_in_uniform")
        return (weight, Tensor("bias", (1,), "fan_in_uniform_bias")) if attrs["bias"] else (weight,)

    def macs(self, attrs, ins, out):
        return n_elems(out) * self.taps(attrs, ins)  # every output channel: k taps, as fvcore counts conv1d

    def flops(self, attrs, ins, out):
        return 2 * self.macs(attrs, ins, out) + (n_elems(out) if attrs["bias"] else 0)

    def saved(self, attrs, ins, out, inplace=False):
        # conv1d keeps what it reads: a view of the input where each position's channels are already
        # contiguous (a 1x1xC volume, a vector), else the channels-last copy, or the circularly padded one
        c = channels(ins)
        positions = n_elems(out) // c
        if attrs["circular"]:
            return (), 4 * positions * (c + 2 * ((self.taps(attrs, ins) - 1) // 2))
        return (("in",), 0) if positions == 1 else ((), 4 * n_elems(out))

    def torch_module(self, attrs, ins, inplace):
        return torch_module("cnndsl.ChannelConv", (("kernel", self.taps(attrs, ins)),),
                            (("bias", attrs["bias"]), ("circular", attrs["circular"])),
                            spec=(("kernel", "kernel"), ("bias", "bias"), ("circular", "circular")),
                            defaults={"bias": False, "circular": False})

    def onnx(self, b, n, xs):
        """A Conv with the channels as its one spatial axis (a volume's positions as a second axis the
        kernel does not span: (N, 1, C, H*W)); Reshapes that copy N keep the batch size known."""
        a, shape = n.attrs, b.shape_of(n.inputs[0])
        k, c, volume = self.taps(a, [shape]), shape[-1], len(shape) == 3
        p = (k - 1) // 2
        rows = b.node("Reshape", [xs[0], b.ints(n, "rows_shape", [0, 1, c] + ([shape[0] * shape[1]] if volume else []))],
                      n, out=f"{n.name}:rows")
        if a["circular"] and p:  # the last p channels before, the first p after (ONNX's wrap Pad is opset 19)
            tail = b.node("Slice", [rows, b.ints(n, "tail_start", [c - p]), b.ints(n, "tail_end", [c]),
                                    b.ints(n, "axis", [2])], n, out=f"{n.name}:tail")
            head = b.node("Slice", [rows, b.ints(n, "head_start", [0]), b.ints(n, "head_end", [p]),
                                    b.ints(n, "axis", [2])], n, out=f"{n.name}:head")
            rows = b.node("Concat", [tail, rows, head], n, out=f"{n.name}:wrapped", axis=2)
        weight = f"{n.name}.weight"
        if volume:  # (1, 1, k) -> (1, 1, k, 1)
            weight = b.node("Unsqueeze", [weight, b.ints(n, "weight_axes", [3])], n, out=f"{n.name}:weight_k1")
        ins = [rows, weight] + ([f"{n.name}.bias"] if a["bias"] else [])
        pads = [0, 0] if a["circular"] else [p, p]
        y = b.node("Conv", ins, n, out=f"{n.name}:conv", kernel_shape=[k, 1] if volume else [k],
                   pads=[pads[0], 0, pads[1], 0] if volume else pads)
        b.node("Reshape", [y, b.ints(n, "shape", [0, c, shape[0], shape[1]] if volume else [0, c])], n)

    def describe(self, attrs):
        k = attrs["kernel"]
        return (f"k{k}" if k != ADAPTIVE else "k adaptive") + (" bias" if attrs["bias"] else "") + \
            (" circular" if attrs["circular"] else "")


def torch_modules():
    """CHANCONV's PyTorch module (kinds.torch_classes builds it; torch is imported here only)."""
    import torch
    from torch import nn

    class ChannelConv(nn.Conv1d):
        """nn.Conv1d(1, 1, kernel) across the channels at each position of an NCHW volume (or the
        features of a vector): timm's EcaModule's conv (`weight` (1, 1, k)); zero padding keeps
        the channels, or (circular) wraps them round as timm's CecaModule pads."""

        def __init__(self, kernel: int, bias: bool = False, circular: bool = False):
            super().__init__(1, 1, kernel, padding=0 if circular else (kernel - 1) // 2, bias=bias)
            self.circular = circular

        def forward(self, x):
            n, c = x.shape[0], x.shape[1]
            rows = x.movedim(1, -1).reshape(-1, 1, c)  # a view where each position's channels are contiguous
            if self.circular:
                p = (self.kernel_size[0] - 1) // 2
                rows = torch.nn.functional.pad(rows, (p, p), mode="circular")
            y = super().forward(rows)
            # axes counted from the front: torch.onnx.export writes movedim(-1, 1) as a Transpose with
            # perm [0, -1, 1, 2], which onnxruntime refuses to load
            return y.reshape(n, *x.shape[2:], c).movedim(x.dim() - 1, 1)

    return {"ChannelConv": ChannelConv}
