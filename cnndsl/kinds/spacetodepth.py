"""Space to depth: each b x b block of positions becomes b*b times the channels at one position,
TResNet's stem (timm's SpaceToDepth, block 4: a 224x224x3 image becomes 56x56x48 with no
parameters and no MACs):

    s2d: SPACETODEPTH(4) - conv1: CONV(64, 3, p=1, bias=false) - ...

The new channels are ordered (row in the block, column in the block, channel), as timm's
view-permute-view and ONNX's SpaceToDepth (DCR) order them: channel (i*b + j)*C + c holds
input channel c at row i, column j of its block.
"""
from __future__ import annotations

from .base import HE_PASS, NO_TENSORS, OWN, Arg, Kind, ShapeError, need_volume, torch_module


class S2D(Kind):
    name = "SPACETODEPTH"
    aliases = ("S2D",)
    doc = "each b x b block of positions stacked into channels (TResNet's stem, timm's SpaceToDepth)"
    elementwise = False
    args = (Arg("block", "int", 4, lo=1, aliases=("block_size", "b"), doc="the block's side"),)
    bare = {"block": 4}
    # a permuted copy (contiguous) keeps nothing for backward: a fresh output, free to be overwritten
    memory, output_overwritable, he, draw_group = OWN, True, HE_PASS, "reshape"
    samples = ("SPACETODEPTH(2)", "SPACETODEPTH(4) - CONV(8, 3, p=1)", "S2D(1)")

    def out_shape(self, attrs, ins):
        need_volume(self.name, ins[0])
        (H, W, C), b = ins[0], attrs["block"]
        if H % b or W % b:
            raise ShapeError(f"SPACETODEPTH({b}) needs height and width divisible by {b}, the input is {H}x{W}",
                             arithmetic=f"{H} / {b} = {H / b:g}, {W} / {b} = {W / b:g}",
                             hint="an input whose sides are multiples of the block")
        return (H // b, W // b, C * b * b)

    def tensors(self, attrs, ins):
        return NO_TENSORS

    def window(self, attrs, ins):
        b = attrs["block"]
        return (b, b), (b, b)

    def saved(self, attrs, ins, out, inplace=False):
        return ((), 0)  # measured: view, permute and the contiguous copy keep sizes only

    def torch_module(self, attrs, ins, inplace):
        return torch_module("cnndsl.SpaceToDepth", (("block_size", attrs["block"]),), spec=(("block_size", "block"),))

    def onnx(self, b, n, xs):
        b.node("SpaceToDepth", xs[:1], n, blocksize=n.attrs["block"])

    def describe(self, attrs):
        return f"{attrs['block']}x{attrs['block']}"


def torch_modules():
    """SPACETODEPTH's PyTorch module (kinds.torch_classes builds it; torch is imported here only)."""
    from torch import nn

    class SpaceToDepth(nn.Module):
        """timm's SpaceToDepth for any block size: (N, C, H, W) -> (N, b*b*C, H/b, W/b)."""

        def __init__(self, block_size: int = 4):
            super().__init__()
            self.bs = block_size

        def forward(self, x):
            n, c, h, w = x.size()
            b = self.bs
            x = x.view(n, c, h // b, b, w // b, b).permute(0, 3, 5, 1, 2, 4).contiguous()
            return x.view(n, c * b * b, h // b, w // b)

        def extra_repr(self):
            return f"{self.bs}"

    return {"SpaceToDepth": SpaceToDepth}
