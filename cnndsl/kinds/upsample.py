"""Upsampling: each position repeated (nearest) or interpolated (bilinear) `factor` times along each
axis, as HRNet's fuse layers bring a low-resolution stream up to a high one:

    { ID + SPLIT(1) - CONV(18, 1, bias=false) - BN - UPSAMPLE(2) }

Its stride is 1/factor, so the jump after it is its input's jump over the factor (exact fractions,
analysis/analyze.py); nearest reads one input position per output, bilinear two per axis:

    >>> import cnndsl
    >>> r = cnndsl.loads("input 8x8x4\\nCONV(8, 3, p=1) - UPSAMPLE(2) - CONV(8, 3, p=1)").report()
    >>> [(l["out"], l["rf"], l["jump"]) for l in r["layers"]]
    [([8, 8, 8], 3, 1), ([16, 16, 8], 3, '1/2'), ([16, 16, 8], 4, '1/2')]
"""
from __future__ import annotations

from fractions import Fraction

from .base import HE_PASS, NO_TENSORS, OWN, Arg, Kind, ShapeError, n_elems, need_volume, pair, torch_module

MODES = ("nearest", "bilinear")


class Upsample(Kind):
    name = "UPSAMPLE"
    doc = "nearest or bilinear upsampling by a whole factor per axis (nn.Upsample)"
    lead_positional = True  # UPSAMPLE(2): the factor is what it is about
    elementwise = False
    args = (Arg("factor", "pair", 0, lo=1, aliases=("scale_factor", "scale"), doc="the factor: 2, 2x2 or (2, 3)"),
            Arg("mode", "word", "nearest", doc="nearest, or bilinear (PyTorch's align_corners=False)", choices=MODES),
            Arg("size", "pair", 0, lo=1, doc="instead of a factor, the output's size (nearest): 7 or (7, 5)"))
    bare = {"factor": 2}
    # interpolation keeps no tensor for backward (sizes only): a fresh output, free to be overwritten
    memory, output_overwritable, he, draw_group = OWN, True, HE_PASS, "pooling"
    samples = ("UPSAMPLE(2)", "UPSAMPLE(2, mode=bilinear)", "UPSAMPLE((2, 3))", "UPSAMPLE(3, mode=bilinear) - RELU",
               "UPSAMPLE", "AVGPOOL(2, s=2) - UPSAMPLE(size=(7, 5))", "UPSAMPLE(size=3)")

    def resolve(self, attrs):
        attrs["factor"], attrs["size"] = pair(attrs["factor"]), pair(attrs["size"])
        return attrs

    def out_shape(self, attrs, ins):
        need_volume(self.name, ins[0])
        (H, W, C), (fh, fw), size = ins[0], attrs["factor"], attrs["size"]
        if (fh > 0) == (size[0] > 0):
            raise ShapeError("UPSAMPLE takes a factor or a size, one of them",
                             hint="UPSAMPLE(2) doubles H and W; UPSAMPLE(size=7) interpolates to 7x7")
        if size[0] and attrs["mode"] != "nearest":
            raise ShapeError(f"UPSAMPLE to a size interpolates by nearest only, not {attrs['mode']}",
                             hint="a whole factor takes bilinear: UPSAMPLE(2, mode=bilinear)")
        return (*size, C) if size[0] else (H * fh, W * fw, C)

    def tensors(self, attrs, ins):
        return NO_TENSORS

    def flops(self, attrs, ins, out):
        # nearest copies; bilinear weighs 4 neighbours: 4 products and 3 sums per output value
        return 7 * n_elems(out) if attrs["mode"] == "bilinear" and out != ins[0] else 0

    def window(self, attrs, ins):
        if attrs["size"][0]:  # nearest to a size: each output reads one input, the stride in/out per axis
            return (1, 1), tuple(Fraction(i, o) for i, o in zip(ins[0][:2], attrs["size"]))
        bilinear = attrs["mode"] == "bilinear"
        kernel = tuple(2 if bilinear and f > 1 else 1 for f in attrs["factor"])
        return kernel, tuple(1 if f == 1 else Fraction(1, f) for f in attrs["factor"])

    def saved(self, attrs, ins, out, inplace=False):
        return ((), 0)  # measured: upsample_nearest2d and upsample_bilinear2d keep sizes only

    def torch_module(self, attrs, ins, inplace):
        fh, fw = attrs["factor"]  # align_corners left at None: bilinear takes it as False, nearest refuses any
        if attrs["size"][0]:
            sh, sw = attrs["size"]
            return torch_module("nn.Upsample", (), (("size", sh if sh == sw else (sh, sw)),), spec=(("size", "size"),))
        return torch_module("nn.Upsample", (), (("scale_factor", fh if fh == fw else (fh, fw)), ("mode", attrs["mode"])),
                            spec=(("scale_factor", "factor"), ("mode", "mode")), defaults={"mode": "nearest"})

    def onnx(self, b, n, xs):
        """Without Resize, whose output ONNX's shape inference gives an unknown batch size: nearest
        repeats each position (Unsqueeze, Expand, Reshape), bilinear is a MatMul with PyTorch's
        interpolation weights on either side (rows, then columns)."""
        (fh, fw), (H, W, C) = n.attrs["factor"], b.shape_of(n.inputs[0])
        if n.attrs["size"][0]:  # to a size: PyTorch's nearest source rows and columns, gathered
            rows = b.node("Gather", [xs[0], b.ints(n, "row_sources", nearest_sources(H, n.attrs["size"][0]))], n,
                          out=f"{n.name}:rows", axis=2)
            b.node("Gather", [rows, b.ints(n, "col_sources", nearest_sources(W, n.attrs["size"][1]))], n, axis=3)
        elif (fh, fw) == (1, 1):
            b.node("Identity", xs[:1], n)
        elif n.attrs["mode"] == "nearest":
            x6 = b.node("Unsqueeze", [xs[0], b.ints(n, "axes", [3, 5])], n, out=f"{n.name}:unsqueezed")
            rep = b.node("Expand", [x6, b.ints(n, "repeats", [1, 1, 1, fh, 1, fw])], n, out=f"{n.name}:repeated")
            b.node("Reshape", [rep, b.ints(n, "shape", [0, C, H * fh, W * fw])], n)
        else:
            rows = b.const(n, "row_weights", bilinear_weights(H, fh))            # (H*fh, H)
            cols = b.const(n, "col_weights", bilinear_weights(W, fw).T.copy())   # (W, W*fw)
            half = b.node("MatMul", [rows, xs[0]], n, out=f"{n.name}:rows_interpolated")
            b.node("MatMul", [half, cols], n)

    def describe(self, attrs):
        fh, fw = attrs["factor"]
        if attrs["size"][0]:
            sh, sw = attrs["size"]
            return f"to {sh}x{sw}"
        return (f"x{fh}" if fh == fw else f"x{fh}, x{fw}") + (" bilinear" if attrs["mode"] == "bilinear" else "")


def nearest_sources(size, out):
    """The input index each of `out` outputs reads in PyTorch's nearest interpolation to a size:
    floor(i * (size / out)) in float32, as ATen computes it, at most size - 1.

    >>> nearest_sources(3, 7)
    [0, 0, 0, 1, 1, 2, 2]
    """
    import numpy as np  # only the ONNX backend calls this
    scale = np.float32(size) / np.float32(out)
    return [min(int(np.floor(np.float32(i) * scale)), size - 1) for i in range(out)]


def bilinear_weights(size, factor):
    """(size*factor, size) float32: PyTorch's bilinear weights along one axis, align_corners=False:
    output i reads source (i + 0.5) / factor - 0.5 (0 where negative) between its two neighbours."""
    import numpy as np  # only the ONNX backend calls this
    m = np.zeros((size * factor, size), np.float64)
    for i in range(size * factor):
        src = max((i + 0.5) / factor - 0.5, 0.0)
        lo = int(src)
        hi = lo + 1 if lo < size - 1 else lo
        m[i, lo] += 1.0 - (src - lo)
        m[i, hi] += src - lo
    return m.astype(np.float32)
