"""Global response normalisation (ConvNeXt V2, Woo et al. 2023), as timm's GlobalResponseNorm: each
channel's L2 norm over the positions, divided by the mean of those norms over the channels (plus
`eps`), scales the input; a learnt weight and bias per channel (both starting at 0, so the layer
starts as the identity) and the input added back:

    y = x + bias + weight * (x * n),   n_c = ||x_c|| / (mean_c' ||x_c'|| + eps)

ConvNeXt V2's MLP: `CONV(4 * c, 1) - GELU - GRN - CONV(c, 1)`.

    >>> from cnndsl.kinds import KINDS
    >>> [(t.name, t.shape) for t in KINDS["GRN"].tensors({"eps": 1e-6}, [(7, 7, 96)])]
    [('weight', (96,)), ('bias', (96,))]
"""
from __future__ import annotations

from .base import HE_STOP, OWN, Arg, Kind, Tensor, channels, n_elems, need_volume, torch_module
from .norm import reduce


class Grn(Kind):
    name = "GRN"
    doc = "global response normalisation (ConvNeXt V2): x + bias + weight * x * ||x_c|| / mean over channels"
    args = (Arg("eps", "float", 1e-6, lo=0.0, doc="added to the mean of the channels' norms"),)
    # per element: square and sum (2), times the ratio, the weight, the bias, the input back (4)
    elementwise_ops = 6
    memory, output_overwritable, he, draw_group = OWN, True, HE_STOP, "norm"
    samples = ("GRN", "GRN(eps=1e-5)", "CONV(8, 1) - GELU - GRN - CONV(4, 1)")

    def out_shape(self, attrs, ins):
        need_volume(self.name, ins[0])
        return ins[0]

    def tensors(self, attrs, ins):
        c = (channels(ins),)
        return (Tensor("weight", c, "zeros"), Tensor("bias", c, "zeros"))

    def saved(self, attrs, ins, out, inplace=False):
        # the norm keeps its input and the norms (C); the division its two operands, the norms and their
        # mean + eps (1); x * n keeps n (C) besides x; addcmul the product (x * n), a volume of its own
        c = channels(ins)
        return (("in",), 4 * (n_elems(out) + 2 * c + 1))

    def torch_module(self, attrs, ins, inplace):
        return torch_module("cnndsl.GlobalResponseNorm", (("dim", channels(ins)),), (("eps", attrs["eps"]),),
                            spec=(("dim", "@in"), ("eps", "eps")), defaults={"eps": 1e-6})

    def onnx(self, b, n, xs):
        x = xs[0]
        norms = reduce(b, n, "ReduceL2", x, [2, 3], "norms")                      # (N, C, 1, 1)
        mean = reduce(b, n, "ReduceMean", norms, [1], "mean_norm")                # (N, 1, 1, 1)
        denom = b.node("Add", [mean, b.scalar(n.attrs["eps"])], n, out=f"{n.name}:mean_eps")
        ratio = b.node("Div", [norms, denom], n, out=f"{n.name}:ratio")
        scaled = b.node("Mul", [x, ratio], n, out=f"{n.name}:scaled")
        w = b.node("Unsqueeze", [f"{n.name}.weight", b.ints(n, "axes", [1, 2])], n, out=f"{n.name}:weight_c11")
        bias = b.node("Unsqueeze", [f"{n.name}.bias", b.ints(n, "bias_axes", [1, 2])], n, out=f"{n.name}:bias_c11")
        weighted = b.node("Mul", [scaled, w], n, out=f"{n.name}:weighted")
        shifted = b.node("Add", [weighted, bias], n, out=f"{n.name}:shifted")
        b.node("Add", [x, shifted], n)

    def describe(self, attrs):
        return "" if attrs["eps"] == 1e-6 else f"eps {attrs['eps']:g}"


def torch_modules():
    """GRN's PyTorch module (kinds.torch_classes builds it; torch is imported here only)."""
    import torch
    from torch import nn

    class GlobalResponseNorm(nn.Module):
        """timm's GlobalResponseNorm on NCHW (channels_last=False): `weight` and `bias` of C, zeros."""

        def __init__(self, dim: int, eps: float = 1e-6):
            super().__init__()
            self.eps = eps
            self.weight = nn.Parameter(torch.zeros(dim))
            self.bias = nn.Parameter(torch.zeros(dim))

        def forward(self, x):
            x_g = x.norm(p=2, dim=(2, 3), keepdim=True)
            x_n = x_g / (x_g.mean(dim=1, keepdim=True) + self.eps)
            return x + torch.addcmul(self.bias.view(1, -1, 1, 1), self.weight.view(1, -1, 1, 1), x * x_n)

    return {"GlobalResponseNorm": GlobalResponseNorm}
