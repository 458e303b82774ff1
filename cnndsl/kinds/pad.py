"""Zero padding, or cropping, by a number of rows and columns on each side: PyTorch's
nn.ZeroPad2d((left, right, top, bottom)), whose negative sizes cut rows off. NASNet's and
PNASNet's factorized reduction shifts its second path by one pixel before a strided 1x1 pool, so
the two paths read interleaved pixels; PP-HGNetV2's stem pads one row below and one column right
(`F.pad(x, (0, 1, 0, 1))`) before a 2x2 conv and a 2x2 max pool at stride 1, so both keep the size:

    { AVGPOOL(1, s=2) | PAD(-1, 1, -1, 1) - AVGPOOL(1, s=2) }
    PAD(bottom=1, right=1) - CONV(16, 2, bias=false)

A side not given is 0; by position all four are given (`PAD(1)` is refused: it reads as
nn.ZeroPad2d(1), every side, as easily as the left alone).

It moves the input and adds zeros, so it widens no receptive field and steps nowhere:

    >>> import cnndsl
    >>> r = cnndsl.loads("input 8x8x4\\nPAD(-1, 1, -1, 1) - PAD(0, 1, 0, 1) - CONV(4, 3)").report()
    >>> [(l["out"], l["rf"]) for l in r["layers"]]
    [([8, 8, 4], 1), ([9, 9, 4], 1), ([7, 7, 4], 3)]
"""
from __future__ import annotations

from .base import HE_PASS, NO_TENSORS, OWN, Arg, Kind, ShapeError, need_volume, torch_module


class Pad(Kind):
    name = "PAD"
    aliases = ("ZEROPAD",)
    doc = "zero padding (negative: cropping) of each side, nn.ZeroPad2d((left, right, top, bottom)); a side not given is 0"
    elementwise = False
    positional_together = True  # PAD(1) is refused: one side, or every side (nn.ZeroPad2d(1))? PAD(1, 1, 1, 1)
    args = (Arg("left", "int", 0, doc="columns of zeros before the first (negative: columns cut off)"),
            Arg("right", "int", 0, doc="columns after the last"),
            Arg("top", "int", 0, doc="rows before the first"),
            Arg("bottom", "int", 0, doc="rows after the last"))
    # a new tensor (constant_pad_nd); its backward keeps no tensor, so an in-place successor may overwrite it
    memory, output_overwritable, he, draw_group = OWN, True, HE_PASS, "reshape"
    samples = ("PAD(1, 1, 1, 1)", "PAD(-1, 1, -1, 1)", "PAD(0, 1, 0, 1) - RELU", "PAD(-1, 0, 0, -1) - AVGPOOL(1, s=2)",
               "PAD(bottom=1, right=1)", "PAD(top=2) - CONV(4, 3)")

    def out_shape(self, attrs, ins):
        need_volume(self.name, ins[0])
        H, W, C = ins[0]
        h, w = H + attrs["top"] + attrs["bottom"], W + attrs["left"] + attrs["right"]
        if h < 1 or w < 1:
            raise ShapeError(f"PAD leaves {h}x{w} of a {H}x{W} input",
                             arithmetic=f"{H} + {attrs['top']} + {attrs['bottom']} = {h} rows, "
                                        f"{W} + {attrs['left']} + {attrs['right']} = {w} columns",
                             hint="negative sizes cut rows or columns off: cut fewer than the input has")
        return (h, w, C)

    def tensors(self, attrs, ins):
        return NO_TENSORS

    def saved(self, attrs, ins, out, inplace=False):
        return ((), 0)  # constant_pad_nd keeps the pads only

    def torch_module(self, attrs, ins, inplace):
        return torch_module("nn.ZeroPad2d", (("padding", tuple(attrs[k] for k in ("left", "right", "top", "bottom"))),))

    def onnx(self, b, n, xs):
        """A Pad for the positive sizes and one row more, then a Slice for the negative ones (cropping)
        and that row. ONNX Runtime's optimiser fuses a Pad into a pool or conv that reads it: into a
        max pool, whose own padding is -inf, that changes the result (zeros become -inf), and a 1x1
        pool refuses padding it cannot hold. The Slice between them keeps every Pad unfused."""
        (H, W, _), a = b.shape_of(n.inputs[0]), n.attrs
        top, left, bottom, right = (a[k] for k in ("top", "left", "bottom", "right"))
        grow = [max(0, top), max(0, left), max(0, bottom) + 1, max(0, right)]
        padded = b.node("Pad", [xs[0], b.ints(n, "pads", [0, 0, grow[0], grow[1], 0, 0, grow[2], grow[3]])], n,
                        out=f"{n.name}:padded")
        h, w = H + grow[0] + grow[2], W + grow[1] + grow[3]
        b.node("Slice", [padded, b.ints(n, "starts", [max(0, -top), max(0, -left)]),
                         b.ints(n, "ends", [h - 1 - max(0, -bottom), w - max(0, -right)]), b.ints(n, "axes", [2, 3])], n)

    def describe(self, attrs):
        return "(" + ", ".join(str(attrs[k]) for k in ("left", "right", "top", "bottom")) + ")"
