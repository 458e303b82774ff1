"""Pooling: max and average windows, global average pooling, adaptive average and max pooling."""
from __future__ import annotations

from .base import (HE_PASS, HE_STOP, NO_TENSORS, OWN, REQUIRED, Arg, Kind, ShapeError, fmt_pair, kernel_text,
                   n_elems, need_volume, pair, torch_module)
from .conv import TF_SAME, onnx_pads, padded_saved, padding_text, sliding_shape
from .norm import reduce


class _Pool(Kind):
    elementwise = False
    args = (
        Arg("kernel", "pair", REQUIRED, lo=1, aliases=("f", "size"), doc="window size F"),
        Arg("s", "pair", "kernel", lo=1, aliases=("stride",), doc="stride S (default: the window size)"),
        Arg("p", "padding", 0, lo=0, aliases=("pad", "padding"),
            doc="padding per side (at most half the window), or tf_same (TensorFlow's SAME)", choices=(TF_SAME,)),
        Arg("ceil", "bool", False, aliases=("ceil_mode",), doc="round the output size up (GoogLeNet, SqueezeNet)"),
    )
    bare = {"kernel": 2}
    memory, output_overwritable, he, draw_group = OWN, True, HE_PASS, "pooling"
    torch_class = ""
    onnx_op = ""

    def resolve(self, attrs):
        attrs["kernel"] = pair(attrs["kernel"])
        attrs["s"] = attrs["kernel"] if attrs["s"] == "kernel" else pair(attrs["s"])
        if attrs["p"] != TF_SAME:
            attrs["p"] = pair(attrs["p"])
        elif attrs["ceil"] or not attrs.get("count_pad", True):
            raise ShapeError(f"p=tf_same pads the input first, as timm's {self.name.title()}2dSame does: "
                             f"{'ceil' if attrs['ceil'] else 'count_pad=false'} has nothing to round or leave out",
                             hint="drop ceil/count_pad, or write the padding as a number")
        return attrs

    def out_shape(self, attrs, ins):
        x = ins[0]
        need_volume(self.name, x)
        if attrs["p"] == TF_SAME:
            return sliding_shape(self.name, attrs, x, x[2])
        (kh, kw), (ph, pw) = attrs["kernel"], attrs["p"]
        if 2 * ph > kh or 2 * pw > kw:
            raise ShapeError(f"padding {fmt_pair(attrs['p'])} is more than half the {kh}x{kw} window",
                             arithmetic=f"2*{max(ph, pw)} > {kh if 2 * ph > kh else kw}",
                             hint="PyTorch and ONNX Runtime reject pool padding over half the window")
        return sliding_shape(self.name, attrs, x, x[2])

    def tensors(self, attrs, ins):
        return NO_TENSORS

    def flops(self, attrs, ins, out):
        kh, kw = attrs["kernel"]
        return n_elems(out) * kh * kw

    def window(self, attrs, ins):
        return attrs["kernel"], attrs["s"]

    def torch_module(self, attrs, ins, inplace):
        a = attrs
        if a["p"] == TF_SAME:  # timm's MaxPool2dSame/AvgPool2dSame: padded first (-inf or zeros), then pooled
            return torch_module(f"cnndsl.{self.torch_class[3:]}Same", (("kernel_size", a["kernel"]),),
                                (("stride", a["s"]),), spec=(("kernel_size", "kernel"), ("stride", "s")))
        return torch_module(self.torch_class, (("kernel_size", a["kernel"]),),
                            (("stride", a["s"]), ("padding", a["p"]), ("ceil_mode", a["ceil"])) + self._extra(a),
                            spec=(("kernel_size", "kernel"), ("stride", "s"), ("padding", "p"), ("ceil_mode", "ceil"),
                                  ("count_include_pad", "count_pad")),
                            defaults={"padding": (0, 0), "ceil_mode": False, "count_include_pad": True})

    def _extra(self, attrs):
        return ()

    def onnx(self, b, n, xs):
        a = n.attrs
        op, extra = self.onnx_op, self._onnx_extra(a)
        common = dict(kernel_shape=list(a["kernel"]), strides=list(a["s"]))
        if a["p"] == TF_SAME:  # ONNX's pads are per side; MaxPool's are -inf, AveragePool counts the zeros
            b.node(op, xs[:1], n, pads=onnx_pads(a, b.shape_of(n.inputs[0])), **common, **extra)
            return
        (kh, kw), (sh, sw), (ph, pw) = a["kernel"], a["s"], a["p"]
        H, W, _ = b.shape_of(n.inputs[0])
        oh, ow, _ = n.out_shape
        floor = [(H + 2 * ph - kh) // sh + 1, (W + 2 * pw - kw) // sw + 1]
        ceil = [-(-(H + 2 * ph - kh) // sh) + 1, -(-(W + 2 * pw - kw) // sw) + 1]
        if not a["ceil"] or [oh, ow] in (ceil, floor):
            # ONNX's ceil_mode rounds up without PyTorch's rule that a last window starting in the right
            # padding is dropped; where that rule removed the extra window everywhere, floor is exact
            b.node(op, xs[:1], n, pads=[ph, pw, ph, pw], ceil_mode=int([oh, ow] != floor), **common, **extra)
            return
        # the rule applies along one axis only: pad the end explicitly so that floor gives PyTorch's count
        eh, ew = max(0, (oh - 1) * sh + kh - (H + 2 * ph)), max(0, (ow - 1) * sw + kw - (W + 2 * pw))
        if op == "MaxPool":
            b.node(op, xs[:1], n, pads=[ph, pw, ph + eh, pw + ew], **common)
        elif not a["count_pad"] or (ph, pw) == (0, 0):
            b.node(op, xs[:1], n, pads=[ph, pw, ph + eh, pw + ew], count_include_pad=0, **common)
        else:
            # PyTorch counts the symmetric padding but not the overhang: make the padding real zeros
            pads = b.ints(n, "pads", [0, 0, ph, pw, 0, 0, ph, pw])
            x = b.node("Pad", [xs[0], pads], n, out=f"{n.name}:padded")
            b.node(op, [x], n, pads=[0, 0, eh, ew], count_include_pad=0, **common)

    def _onnx_extra(self, attrs):
        return {}

    def describe(self, attrs):
        s = f"{kernel_text(attrs['kernel'])}/{fmt_pair(attrs['s'])}" + padding_text(attrs["p"])
        return s + (" ceil" if attrs["ceil"] else "")


class MaxPool(_Pool):
    name = "MAXPOOL"
    aliases = ("POOL",)
    doc = "max pooling (POOL means MAXPOOL)"
    torch_class, onnx_op = "nn.MaxPool2d", "MaxPool"
    samples = ("MAXPOOL(2)", "MAXPOOL(3, s=2, p=1)", "MAXPOOL(3, s=2, ceil=true)", "POOL", "MAXPOOL(3, s=2, p=tf_same)")

    def saved(self, attrs, ins, out, inplace=False):
        which, extra = padded_saved(attrs, ins, out)
        return which, extra + 8 * n_elems(out)  # and the int64 argmax indices


class AvgPool(_Pool):
    name = "AVGPOOL"
    doc = "average pooling; padded windows count the padding, as PyTorch does (count_pad=false: they don't)"
    args = _Pool.args + (Arg("count_pad", "bool", True, aliases=("count_include_pad",),
                             doc="divide by the whole window, padding included"),)
    torch_class, onnx_op = "nn.AvgPool2d", "AveragePool"
    samples = ("AVGPOOL(2)", "AVGPOOL(3, s=1, p=1)", "AVGPOOL(3, s=2, p=1, count_pad=false)", "AVGPOOL(3, s=2, p=tf_same)")

    def _extra(self, attrs):
        return (("count_include_pad", attrs["count_pad"]),)

    def _onnx_extra(self, attrs):
        return {"count_include_pad": int(bool(attrs["count_pad"]))}

    def saved(self, attrs, ins, out, inplace=False):
        return padded_saved(attrs, ins, out)


class GlobalAvgPool(Kind):
    name = "GAP"
    aliases = ("GLOBALAVGPOOL",)
    doc = "global average pooling: HxWxC -> 1x1xC"
    elementwise = False
    # PyTorch's adaptive pool may hand back its input's memory (a 1x1 input): not overwritable
    memory, output_overwritable, he, draw_group = OWN, False, HE_STOP, "pooling"
    samples = ("GAP",)

    def out_shape(self, attrs, ins):
        need_volume(self.name, ins[0])
        return (1, 1, ins[0][2])

    def tensors(self, attrs, ins):
        return NO_TENSORS

    def flops(self, attrs, ins, out):
        return n_elems(ins[0])

    def window(self, attrs, ins):
        return (ins[0][0], ins[0][1]), (1, 1)

    def saved(self, attrs, ins, out, inplace=False):
        return ((), 0)  # PyTorch's adaptive pool to 1x1 is a mean: its backward needs only the shape

    def torch_module(self, attrs, ins, inplace):
        return torch_module("nn.AdaptiveAvgPool2d", (("output_size", 1),), spec=())

    def onnx(self, b, n, xs):
        b.node("GlobalAveragePool", xs[:1], n)


class AdaptiveAvgPool(Kind):
    name = "ADAPTIVEAVGPOOL"
    doc = "adaptive average pooling to a fixed HxW (torchvision's AlexNet/VGG heads); identity when sizes match"
    elementwise = False
    args = (Arg("size", "pair", REQUIRED, lo=1, aliases=("out",), doc="output height x width"),)
    memory, output_overwritable, he, draw_group = OWN, False, HE_STOP, "pooling"
    samples = ("ADAPTIVEAVGPOOL(2)", "ADAPTIVEAVGPOOL((3, 2))")
    torch_class = "nn.AdaptiveAvgPool2d"

    def resolve(self, attrs):
        attrs["size"] = pair(attrs["size"])
        return attrs

    def out_shape(self, attrs, ins):
        need_volume(self.name, ins[0])
        return (*attrs["size"], ins[0][2])

    def tensors(self, attrs, ins):
        return NO_TENSORS

    def flops(self, attrs, ins, out):
        return n_elems(ins[0]) if ins[0] != out else 0

    def window(self, attrs, ins):
        (H, W, _), (oh, ow) = ins[0], attrs["size"]
        # the largest bin of PyTorch's adaptive pooling; exact when the size divides. An axis pooled to
        # one position steps nowhere: its jump stays its input's, as GAP's does (a stride of H would
        # make every receptive field after a squeeze-and-excitation gate, a join of this with the
        # full volume, explode)
        step = lambda n, o: 1 if o == 1 else max(1, n // o)
        return (-(-H // oh) if H % oh else H // oh, -(-W // ow) if W % ow else W // ow), (step(H, oh), step(W, ow))

    def saved(self, attrs, ins, out, inplace=False):
        # to 1x1 PyTorch takes a mean, which keeps nothing; any other size keeps the input
        return ((), 0) if attrs["size"] == (1, 1) else (("in",), 0)

    def torch_module(self, attrs, ins, inplace):
        h, w = attrs["size"]
        return torch_module(self.torch_class, (("output_size", h if h == w else (h, w)),),
                            spec=(("output_size", "size"),))

    global_op, window_op = "GlobalAveragePool", "AveragePool"

    def onnx(self, b, n, xs):
        """PyTorch's adaptive pooling, exactly: bin i spans [floor(i*H/h), ceil((i+1)*H/h))."""
        H, W, _ = b.shape_of(n.inputs[0])
        oh, ow = n.attrs["size"]
        if (H, W) == (oh, ow):
            b.node("Identity", xs[:1], n)
        elif (oh, ow) == (1, 1):
            b.node(self.global_op, xs[:1], n)
        elif H % oh == 0 and W % ow == 0:
            k = [H // oh, W // ow]
            b.node(self.window_op, xs[:1], n, kernel_shape=k, strides=k)
        else:
            self.uneven_bins(b, n, xs[0], (H, W), (oh, ow))

    def uneven_bins(self, b, n, x, size, out):
        """Bins of different widths: y = A_h @ x @ A_w^T with averaging matrices, a MatMul either side."""
        (H, W), (oh, ow) = size, out
        rows = b.const(n, "rows", _bins(H, oh))          # (oh, H), broadcast over N, C
        cols = b.const(n, "cols", _bins(W, ow).T.copy())  # (W, ow)
        half = b.node("MatMul", [rows, x], n, out=f"{n.name}:rows_pooled")
        b.node("MatMul", [half, cols], n)

    def describe(self, attrs):
        return kernel_text(attrs["size"])


class AdaptiveMaxPool(AdaptiveAvgPool):
    name = "ADAPTIVEMAXPOOL"
    doc = "adaptive max pooling to a fixed HxW (PyTorch's bins: [floor(i*H/h), ceil((i+1)*H/h)))"
    output_overwritable = True  # a fresh tensor, not kept for backward
    samples = ("ADAPTIVEMAXPOOL(2)", "ADAPTIVEMAXPOOL((3, 2))", "ADAPTIVEMAXPOOL(1)")
    torch_class = "nn.AdaptiveMaxPool2d"

    def saved(self, attrs, ins, out, inplace=False):
        return (("in",), 8 * n_elems(out))  # and the int64 argmax indices

    global_op, window_op = "GlobalMaxPool", "MaxPool"

    def uneven_bins(self, b, n, x, size, out):
        """The maximum of each row band, then of each column band of those."""
        (H, W), (oh, ow) = size, out
        rows = _max_bins(b, n, x, 2, H, oh, "rows")
        _max_bins(b, n, rows, 3, W, ow, "cols", last=True)


def _max_bins(b, n, x, axis, size, out, what, last=False):
    """The maximum over each of PyTorch's adaptive bins along one axis: a Slice and a ReduceMax per bin."""
    if size == out:
        return b.node("Identity", [x], n) if last else x
    parts = []
    for i in range(out):
        lo, hi = (i * size) // out, -(-((i + 1) * size) // out)
        band = b.node("Slice", [x, b.ints(n, f"{what}{i}_start", [lo]), b.ints(n, f"{what}{i}_end", [hi]),
                                b.ints(n, f"{what}{i}_axis", [axis])], n, out=f"{n.name}:{what}{i}")
        parts.append(reduce(b, n, "ReduceMax", band, [axis], f"{what}{i}_max"))
    return b.node("Concat", parts, n, out=None if last else f"{n.name}:{what}_pooled", axis=axis)


def _bins(size, out):
    import numpy as np  # only the ONNX backend calls this
    m = np.zeros((out, size), np.float32)
    for i in range(out):
        lo, hi = (i * size) // out, -(-((i + 1) * size) // out)
        m[i, lo:hi] = 1.0 / (hi - lo)
    return m


def torch_modules():
    """timm's MaxPool2dSame and AvgPool2dSame, for `p=tf_same` (kinds.torch_classes builds them)."""
    import torch
    from torch import nn

    from . import conv
    Conv2dSame = conv.Conv2dSame  # its same_pads: TensorFlow's SAME, one rule for convs and pools

    class MaxPool2dSame(nn.MaxPool2d):
        """Max pooling after TensorFlow's SAME padding with -inf (timm's MaxPool2dSame)."""

        def forward(self, x):
            pads = Conv2dSame.same_pads(x.shape[-2:], self.kernel_size, self.stride)
            x = torch.nn.functional.pad(x, pads, value=-float("inf")) if any(pads) else x
            return torch.nn.functional.max_pool2d(x, self.kernel_size, self.stride)

    class AvgPool2dSame(nn.AvgPool2d):
        """Average pooling after TensorFlow's SAME padding with zeros, which the average counts
        (timm's AvgPool2dSame)."""

        def forward(self, x):
            pads = Conv2dSame.same_pads(x.shape[-2:], self.kernel_size, self.stride)
            x = torch.nn.functional.pad(x, pads) if any(pads) else x
            return torch.nn.functional.avg_pool2d(x, self.kernel_size, self.stride)

    return {"MaxPool2dSame": MaxPool2dSame, "AvgPool2dSame": AvgPool2dSame}
