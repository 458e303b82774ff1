"""Convolution, and the sliding-window arithmetic that pooling shares.

Padding is a size per side, `same` (symmetric, odd kernels), `valid` (none), or `tf_same`:
TensorFlow's SAME, which timm's `tf_*` ports and NASNet/PNASNet keep (Conv2dSame, MaxPool2dSame):
the output is ceil(size / stride) and the padding that takes depends on the input's size, the
smaller half before, the larger after (at stride 2 on an even input: none before, one after).

    >>> tf_same_pads(224, 3, 2), tf_same_pads(225, 3, 2), tf_same_pads(7, 4, 1)
    ((0, 1), (1, 1), (1, 2))
"""
from __future__ import annotations

from .base import (HE_TARGET, OWN, REQUIRED, SPATIAL_FILTERS, Arg, Foreign, Kind, ShapeError, Tensor, fmt_pair,
                   kernel_text, need_volume, n_elems, pair, torch_module)


def window_fit(kind, axis, size, k_eff, s, p, ktext, ceil=False):
    """Output length along one axis, PyTorch's way; and real input rows the floor drops."""
    padded = size + 2 * p
    span = padded - k_eff
    # PyTorch's pooling_output_shape: with ceil mode the last window may run past the padded input
    # (by up to s - 1) as long as it starts inside the input or the left padding
    out = (span + (s - 1 if ceil else 0)) // s + 1
    if ceil and (out - 1) * s >= size + p:
        out -= 1
    if out < 1:
        raise ShapeError(f"{ktext} {'filter' if kind == 'CONV' else 'window'} does not fit "
                         f"a {'padded ' if p else ''}{axis} of {padded}",
                         arithmetic=f"{axis}: {size} + 2*{p} = {padded} < {k_eff}",
                         hint="use a smaller kernel, add padding, or drop a pooling layer before it")
    covered = (out - 1) * s + k_eff
    dropped = max(0, padded - covered - p)
    return out, dropped, span


TF_SAME = "tf_same"


def tf_same_pads(size, k_eff, s):
    """(before, after): TensorFlow's SAME padding of one axis (timm's get_same_padding)."""
    total = max((-(-size // s) - 1) * s + k_eff - size, 0)
    return total // 2, total - total // 2


def tf_same_padding(attrs, shape):
    """((top, bottom), (left, right)) for `p=tf_same` on an HxW input."""
    (kh, kw), (dh, dw), (sh, sw) = pair(attrs["kernel"]), pair(attrs.get("d", 1)), pair(attrs["s"])
    return (tf_same_pads(shape[0], dh * (kh - 1) + 1, sh), tf_same_pads(shape[1], dw * (kw - 1) + 1, sw))


def onnx_pads(attrs, shape):
    """ONNX's pads, [top, left, bottom, right], of a layer's padding (symmetric or tf_same)."""
    if attrs["p"] == TF_SAME:
        (t, b), (l, r) = tf_same_padding(attrs, shape)
        return [t, l, b, r]
    ph, pw = attrs["p"]
    return [ph, pw, ph, pw]


def padded_saved(attrs, ins, out, inplace=False):
    """What a window layer keeps of its input: the input itself, or, with `p=tf_same` and some
    padding, the padded copy (F.pad's output) that the layer then reads instead (fp32 bytes)."""
    if attrs["p"] == TF_SAME and any(map(any, tf_same_padding(attrs, ins[0]))):
        (t, b), (l, r) = tf_same_padding(attrs, ins[0])
        H, W, C = ins[0]
        return (), 4 * (H + t + b) * (W + l + r) * C
    return ("in",), 0


def sliding_shape(kind, attrs, shape, channels):
    need_volume(kind, shape)
    H, W, C = shape
    kh, kw = pair(attrs["kernel"])
    dh, dw = pair(attrs.get("d", 1))
    sh, sw = pair(attrs["s"])
    if attrs["p"] == TF_SAME:  # always ceil(size / stride): no row is left out but by the stride's design
        return tuple(-(-size // s) for size, s in ((H, sh), (W, sw))) + (channels,)
    ph, pw = pair(attrs["p"])
    ceil = bool(attrs.get("ceil", False))
    ktext = f"{kh}x{kw}"
    dims, notes = [], []
    for axis, size, k, d, s, p in (("height", H, kh, dh, sh, ph), ("width", W, kw, dw, sw, pw)):
        k_eff = d * (k - 1) + 1
        out, dropped, span = window_fit(kind, axis, size, k_eff, s, p, ktext, ceil)
        dims.append(out)
        # with a stride wider than the window every step skips s - k rows by design; a last
        # unread stretch no longer than that gap is the pattern, not a misfit (ResNet's 1x1/2)
        if dropped > max(0, s - k_eff):
            notes.append((axis, size, k_eff, s, p, out, dropped, span))
    if notes:
        axis, size, k_eff, s, p, out, dropped, span = notes[0]
        what = ("row" if axis == "height" else "column") + ("s" if dropped != 1 else "")
        raise DoesNotFit(
            f"{ktext} {'filter' if kind == 'CONV' else 'window'} at stride {s} does not fit a {H}x{W} input",
            arithmetic=f"({size} - {k_eff} + 2*{p})/{s} + 1 = {span / s + 1:.2f}: PyTorch floors to {out} "
                       f"and ignores the last {dropped} input {what}",
            hint=_fit_hint(size, k_eff, s, p),
            shape=(dims[0], dims[1], channels))
    return (dims[0], dims[1], channels)


def _fit_hint(size, k_eff, s, p):
    """Ways to make (size - k + 2p) divisible by s: more padding, or another stride."""
    ways = []
    pad = _next_pad(size - k_eff, s, p)  # solved, not searched: a stride may be 10**9
    if pad is not None and 2 * pad <= k_eff:
        ways.append(f"padding p={pad}")
    stride = _largest_divisor_below(size - k_eff + 2 * p, s)
    if stride:
        ways.append(f"stride {stride}")
    ways.append(f"an input whose size minus {k_eff - 2 * p} is a multiple of {s}")
    return "to use every input row, choose " + ", or ".join(ways)


def _next_pad(r, s, p):
    """The smallest q > p with (r + 2q) % s == 0, or None."""
    if s % 2:
        q = (-r * pow(2, -1, s)) % s
    elif r % 2:
        return None
    else:
        s, q = s // 2, (-(r // 2)) % (s // 2)
    return q + ((p - q) // s + 1) * s if q <= p else q


def _largest_divisor_below(m, s):
    """The largest t < s dividing m (any t when m is 0), or None: sqrt(m) trial divisions."""
    if s <= 1:
        return None
    if m == 0:
        return s - 1
    best, i = 1, 1
    while i * i <= m:
        if m % i == 0:
            for t in (i, m // i):
                if best < t < s:
                    best = t
        i += 1
    return best


class DoesNotFit(ShapeError):
    """A window that leaves real input rows unused: a warning (an error with --strict)."""

    def __init__(self, message, arithmetic, hint, shape):
        super().__init__(message, arithmetic, hint)
        self.shape = shape


def padding_resolve(attrs, pad_key="p"):
    p = attrs[pad_key]
    if p == TF_SAME:
        return attrs  # resolved against the input's size (tf_same_padding)
    if p == "valid":
        attrs[pad_key] = (0, 0)
    elif p == "same":
        kh, kw = pair(attrs["kernel"])
        dh, dw = pair(attrs.get("d", 1))
        eh, ew = dh * (kh - 1), dw * (kw - 1)
        if eh % 2 or ew % 2:
            raise ShapeError(f"p=same needs an odd kernel, got {kh}x{kw}",
                             hint="PyTorch pads same-size outputs of even kernels unevenly; write the padding explicitly")
        attrs[pad_key] = (eh // 2, ew // 2)
    else:
        attrs[pad_key] = pair(p)
    return attrs


class Conv(Kind):
    name = "CONV"
    doc = "2-d convolution: K filters of F x F over all (or groups of) input channels"
    elementwise = False
    args = (
        Arg("filters", "int", REQUIRED, lo=1, aliases=("k_out", "out"), doc="number of filters K (output depth)"),
        Arg("kernel", "pair", REQUIRED, lo=1, aliases=("f", "size"), doc="filter size F: 3, 3x3 or (3,5)"),
        Arg("s", "pair", 1, lo=1, aliases=("stride",), doc="stride S"),
        Arg("p", "padding", 0, lo=0, aliases=("pad", "padding"), doc="zero padding P per side, or same/valid/tf_same",
            choices=("same", "valid", TF_SAME)),
        Arg("d", "pair", 1, lo=1, aliases=("dilation",), doc="dilation"),
        Arg("groups", "int", 1, lo=1, aliases=("g",), doc="channel groups (depthwise: groups = input depth)"),
        Arg("bias", "bool", True, doc="learn a bias per filter"),
    )
    bare = {"filters": 32, "kernel": 3, "p": "same"}
    weight_layer, filters, linear_weight = True, SPATIAL_FILTERS, True
    memory, output_overwritable, he, draw_group = OWN, True, HE_TARGET, "convolution"
    samples = ("CONV(8, 3, p=1)", "CONV(8, 1)", "CONV(4, 3, s=2, p=1, bias=false)", "CONV(8, (1, 3), p=(0, 1))",
               "CONV(8, 3, p=2, d=2)", "CONV(8, 3, p=same, groups=2)", "CONV(8, 3, s=2, p=tf_same)",
               "CONV(4, (2, 5), s=(3, 2), p=tf_same, d=(2, 1), groups=4)")

    def resolve(self, attrs):
        attrs["kernel"], attrs["s"], attrs["d"] = pair(attrs["kernel"]), pair(attrs["s"]), pair(attrs["d"])
        return padding_resolve(attrs)

    def out_shape(self, attrs, ins):
        x = ins[0]
        need_volume(self.name, x)
        g, k = attrs["groups"], attrs["filters"]
        if x[2] % g or k % g:
            bad = x[2] if x[2] % g else k
            raise ShapeError(f"groups={g} does not divide the {'input depth' if x[2] % g else 'filter count'} {bad}",
                             arithmetic=f"{bad} / {g} = {bad / g:.2f}",
                             hint="groups must divide both the input depth and the number of filters")
        return sliding_shape(self.name, attrs, x, k)

    def tensors(self, attrs, ins):
        kh, kw = attrs["kernel"]
        k = attrs["filters"]
        shape = (k, ins[0][2] // attrs["groups"], kh, kw)
        # a 1x1 conv over all channels is nn.Linear over the channels of an NHWC view (ConvNeXt's
        # pointwise layers in torchvision and timm): its (out, in) weight holds the same numbers
        linear = (Foreign((k, shape[1])),) if (kh, kw) == (1, 1) and attrs["groups"] == 1 else ()
        weight = Tensor("weight", shape, "fan_in_uniform", foreign=linear)
        return (weight, Tensor("bias", (k,), "fan_in_uniform_bias")) if attrs["bias"] else (weight,)

    def macs(self, attrs, ins, out):
        kh, kw = attrs["kernel"]
        return out[0] * out[1] * out[2] * kh * kw * ins[0][2] // attrs["groups"]

    def flops(self, attrs, ins, out):
        return 2 * self.macs(attrs, ins, out) + (n_elems(out) if attrs["bias"] else 0)

    def window(self, attrs, ins):
        (kh, kw), (dh, dw) = attrs["kernel"], attrs["d"]
        return (dh * (kh - 1) + 1, dw * (kw - 1) + 1), attrs["s"]

    def saved(self, attrs, ins, out, inplace=False):
        return padded_saved(attrs, ins, out)

    def torch_module(self, attrs, ins, inplace):
        a = attrs
        if a["p"] == TF_SAME:
            return torch_module(
                "cnndsl.Conv2dSame", (("in_channels", ins[0][2]), ("out_channels", a["filters"]),
                                      ("kernel_size", a["kernel"])),
                (("stride", a["s"]), ("dilation", a["d"]), ("groups", a["groups"]), ("bias", a["bias"])),
                spec=(("in_channels", "@in"), ("out_channels", "filters"), ("kernel_size", "kernel"), ("stride", "s"),
                      ("dilation", "d"), ("groups", "groups"), ("bias", "bias")),
                defaults={"stride": (1, 1), "dilation": (1, 1), "groups": 1, "bias": True})
        return torch_module(
            "nn.Conv2d", (("in_channels", ins[0][2]), ("out_channels", a["filters"]), ("kernel_size", a["kernel"])),
            (("stride", a["s"]), ("padding", a["p"]), ("dilation", a["d"]), ("groups", a["groups"]), ("bias", a["bias"])),
            spec=(("in_channels", "@in"), ("out_channels", "filters"), ("kernel_size", "kernel"), ("stride", "s"),
                  ("padding", "p"), ("dilation", "d"), ("groups", "groups"), ("bias", "bias")),
            defaults={"stride": (1, 1), "padding": (0, 0), "dilation": (1, 1), "groups": 1, "bias": True})

    def onnx(self, b, n, xs):
        a = n.attrs
        ins = [xs[0], f"{n.name}.weight"] + ([f"{n.name}.bias"] if a["bias"] else [])
        b.node("Conv", ins, n, kernel_shape=list(a["kernel"]), strides=list(a["s"]),
               pads=onnx_pads(a, b.shape_of(n.inputs[0])), dilations=list(a["d"]), group=a["groups"])

    def describe(self, attrs):
        s = f"{kernel_text(attrs['kernel'])}/{fmt_pair(attrs['s'])}" + padding_text(attrs["p"])
        if attrs["d"] != (1, 1):
            s += f" d{fmt_pair(attrs['d'])}"
        if attrs["groups"] != 1:
            s += f" g{attrs['groups']}"
        s += f", {attrs['filters']}"
        return s + ("" if attrs["bias"] else " nobias")


def padding_text(p) -> str:
    """The report's padding: ` p1`, ` p0x1`, ` tf_same`, or nothing."""
    return f" {p}" if p == TF_SAME else f" p{fmt_pair(p)}" if any(p) else ""


def torch_modules():
    """The PyTorch module of `p=tf_same` (kinds.torch_classes builds it; torch is imported here only)."""
    import torch
    from torch import nn

    class Conv2dSame(nn.Conv2d):
        """nn.Conv2d with TensorFlow's SAME padding, as timm's Conv2dSame: the input is padded for its
        own size (the smaller half before, the larger after; nothing when it needs none), then
        convolved with padding 0. The same parameters as nn.Conv2d."""

        def __init__(self, *args, tf_same: bool = True, **kwargs):
            super().__init__(*args, **kwargs)
            self.tf_same = tf_same

        @staticmethod
        def same_pads(sizes, kernel, stride, dilation=(1, 1)):
            """F.pad's [left, right, top, bottom] for TensorFlow's SAME on an input of `sizes` (H, W)."""
            pads, two = [], lambda v: tuple(v) if isinstance(v, (tuple, list)) else (v, v)
            for size, k, s, d in zip(sizes, two(kernel), two(stride), two(dilation)):
                total = max((-(-size // s) - 1) * s + (k - 1) * d + 1 - size, 0)
                pads = [total // 2, total - total // 2] + pads  # F.pad takes the last axis first
            return pads

        def pad_same(self, x):
            pads = self.same_pads(x.shape[-2:], self.kernel_size, self.stride, self.dilation)
            return torch.nn.functional.pad(x, pads) if any(pads) else x

        def forward(self, x):
            return super().forward(self.pad_same(x) if self.tf_same else x)

    return {"Conv2dSame": Conv2dSame}
