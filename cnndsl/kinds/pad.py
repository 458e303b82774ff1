"""Zero padding as a layer of its own: BiT's stem (timm's ResNetV2 with `stem_type="fixed"`: a
7x7/2 conv, `nn.ConstantPad2d(1, 0)`, then a 3x3/2 max pool without padding). A max pool's own
padding is -inf, so `PAD(1) - MAXPOOL(3, s=2)` and `MAXPOOL(3, s=2, p=1)` differ wherever a
border window holds only negative values (BiT's stem has no activation before the pool):

    STDCONV(64, 7, s=2, p=3) - PAD(1) - MAXPOOL(3, s=2)

    >>> Pad().out_shape({"size": (1, 2)}, [(8, 8, 4)])
    (10, 12, 4)
"""
from __future__ import annotations

from .base import HE_PASS, NO_TENSORS, OWN, REQUIRED, Arg, Kind, need_volume, pair, torch_module


class Pad(Kind):
    name = "PAD"
    aliases = ("ZEROPAD",)
    doc = "zero padding of `size` rows above and below and columns left and right (nn.ZeroPad2d)"
    elementwise = False
    args = (Arg("size", "pair", REQUIRED, lo=0, aliases=("padding", "p"), doc="rows and columns per side: 1 or (1, 2)"),)
    # constant_pad_nd: a new tensor whose backward keeps no tensor, so an in-place successor may overwrite it
    memory, output_overwritable, he, draw_group = OWN, True, HE_PASS, "reshape"
    samples = ("PAD(1)", "PAD((1, 2)) - CONV(4, 3)", "CONV(4, 3, s=2) - PAD(1) - MAXPOOL(3, s=2)", "PAD(0)")

    def resolve(self, attrs):
        attrs["size"] = pair(attrs["size"])
        return attrs

    def out_shape(self, attrs, ins):
        need_volume(self.name, ins[0])
        (H, W, C), (ph, pw) = ins[0], attrs["size"]
        return (H + 2 * ph, W + 2 * pw, C)

    def tensors(self, attrs, ins):
        return NO_TENSORS

    def saved(self, attrs, ins, out, inplace=False):
        return ((), 0)  # constant_pad_nd's backward slices: it keeps sizes only

    def torch_module(self, attrs, ins, inplace):
        ph, pw = attrs["size"]
        return torch_module("nn.ZeroPad2d", (("padding", ph if ph == pw else (pw, pw, ph, ph)),),
                            spec=(("padding", "size"),))

    def onnx(self, b, n, xs):
        ph, pw = n.attrs["size"]  # ONNX's pads: the begins of N, C, H, W, then their ends
        b.node("Pad", [xs[0], b.ints(n, "pads", [0, 0, ph, pw, 0, 0, ph, pw])], n)  # mode "constant", value 0

    def describe(self, attrs):
        ph, pw = attrs["size"]
        return f"{ph}" if ph == pw else f"{ph}x{pw}"
