"""A blur pool: anti-aliased downsampling (Zhang 2019, "Making Convolutional Networks Shift-Invariant
Again"), as timm's BlurPool2d: each channel filtered by a fixed binomial kernel, (1, 2, 1) x (1, 2, 1)
/ 16 at size 3, after reflect padding, then strided. A ResNet-D's or TResNet's strided 3x3 becomes a
3x3 at stride 1 and a blur at stride 2:

    conv2: CONV(128, 3, p=1, bias=false) - BN - RELU - aa: BLURPOOL(s=2)

No parameters; the filter is a buffer of C x k x k values that is not saved (timm's `filt`, a
non-persistent buffer). Its MACs are a depthwise convolution's, as fvcore counts timm's F.conv2d.

    >>> binomial(3), binomial(5)
    ([0.25, 0.5, 0.25], [0.0625, 0.25, 0.375, 0.25, 0.0625])
"""
from __future__ import annotations

from math import comb

from .base import HE_STOP, NO_TENSORS, OWN, Arg, Kind, ShapeError, channels, n_elems, need_volume, torch_module

PAD_MODES = ("reflect", "zero")


def binomial(k: int) -> list:
    """The 1-D binomial filter of k taps, summing to 1: C(k-1, i) / 2^(k-1)."""
    return [comb(k - 1, i) / 2 ** (k - 1) for i in range(k)]


def blur_padding(k: int, s: int) -> int:
    """timm's get_padding(k, s): ((s - 1) + (k - 1)) // 2 on every side."""
    return ((s - 1) + (k - 1)) // 2


class BlurPool(Kind):
    name = "BLURPOOL"
    aliases = ("BLUR",)
    doc = "anti-aliased downsampling: a fixed binomial filter per channel, reflect padding, then a stride (timm's BlurPool2d)"
    elementwise = False
    args = (Arg("kernel", "int", 3, lo=2, aliases=("k", "filt_size", "size"), doc="the binomial filter's taps"),
            Arg("s", "int", 2, lo=1, aliases=("stride",), doc="the stride"),
            Arg("pad", "word", "reflect", doc="reflect (BlurPool2d's), or zero (timm's blurpc)", choices=PAD_MODES))
    memory, output_overwritable, he, draw_group = OWN, True, HE_STOP, "pooling"
    samples = ("BLURPOOL", "BLURPOOL(5, s=2)", "BLURPOOL(3, s=1)", "CONV(4, 3, p=1) - BLURPOOL(4, s=3, pad=zero)")

    def out_shape(self, attrs, ins):
        need_volume(self.name, ins[0])
        (H, W, C), k, s = ins[0], attrs["kernel"], attrs["s"]
        p = blur_padding(k, s)
        if attrs["pad"] == "reflect" and p >= min(H, W):
            raise ShapeError(f"reflect padding of {p} needs more than {p} rows and columns, the input is {H}x{W}",
                             hint="a smaller kernel or stride, or pad=zero")
        if min(H, W) + 2 * p < k:
            raise ShapeError(f"a {k}x{k} blur does not fit the {H}x{W} input padded by {p}", hint="a smaller kernel")
        return ((H + 2 * p - k) // s + 1, (W + 2 * p - k) // s + 1, C)

    def tensors(self, attrs, ins):
        return NO_TENSORS  # the filter is a non-persistent buffer: counted below, never in a state_dict

    def buffers(self, attrs, ins):
        return channels(ins) * attrs["kernel"] ** 2

    def macs(self, attrs, ins, out):
        return n_elems(out) * attrs["kernel"] ** 2  # a depthwise k x k convolution

    def window(self, attrs, ins):
        k, s = attrs["kernel"], attrs["s"]
        return (k, k), (s, s)

    def saved(self, attrs, ins, out, inplace=False):
        # conv2d keeps the padded copy it reads and its weight, the filter buffer (no parameter; once per
        # batch); reflection_pad2d keeps its input too (its backward reads it), constant padding nothing
        (H, W, C), k = ins[0], attrs["kernel"]
        p = blur_padding(k, attrs["s"])
        return ("in",) if attrs["pad"] == "reflect" else (), 4 * ((H + 2 * p) * (W + 2 * p) * C + C * k * k)

    def torch_module(self, attrs, ins, inplace):
        return torch_module("cnndsl.BlurPool2d", (("channels", channels(ins)), ("filt_size", attrs["kernel"]),
                                                  ("stride", attrs["s"])),
                            (("pad_mode", "constant" if attrs["pad"] == "zero" else "reflect"),),
                            spec=(("channels", "@in"), ("filt_size", "kernel"), ("stride", "s")),
                            defaults={"pad_mode": "reflect"})

    def onnx(self, b, n, xs):
        import numpy as np  # only the ONNX backend calls this
        a, (_, _, C) = n.attrs, b.shape_of(n.inputs[0])
        k, s = a["kernel"], a["s"]
        p = blur_padding(k, s)
        f = np.asarray(binomial(k), np.float32)
        weight = b.const(n, "filter", np.ascontiguousarray(np.broadcast_to(np.outer(f, f), (C, 1, k, k))))
        x = xs[0]
        if p:
            x = b.node("Pad", [x, b.ints(n, "pads", [0, 0, p, p, 0, 0, p, p])], n, out=f"{n.name}:padded",
                       mode="reflect" if a["pad"] == "reflect" else "constant")
        b.node("Conv", [x, weight], n, kernel_shape=[k, k], strides=[s, s], group=C)

    def describe(self, attrs):
        return f"{attrs['kernel']}x{attrs['kernel']}/{attrs['s']}" + (" zero pad" if attrs["pad"] == "zero" else "")


def torch_modules():
    """BLURPOOL's PyTorch module (kinds.torch_classes builds it; torch is imported here only)."""
    import torch
    from torch import nn

    class BlurPool2d(nn.Module):
        """timm's BlurPool2d: F.pad (reflect, or constant zeros), then a depthwise conv with the fixed
        binomial filter `filt` (channels, 1, k, k), a non-persistent buffer, at `stride`."""

        def __init__(self, channels: int, filt_size: int = 3, stride: int = 2, pad_mode: str = "reflect"):
            super().__init__()
            self.channels, self.filt_size, self.stride, self.pad_mode = channels, filt_size, stride, pad_mode
            self.padding = [((stride - 1) + (filt_size - 1)) // 2] * 4
            from math import comb
            coeffs = torch.tensor([comb(filt_size - 1, k) for k in range(filt_size)], dtype=torch.float32)
            coeffs = coeffs / 2 ** (filt_size - 1)
            filt = (coeffs[:, None] * coeffs[None, :])[None, None].repeat(channels, 1, 1, 1)
            self.register_buffer("filt", filt, persistent=False)

        def forward(self, x):
            x = torch.nn.functional.pad(x, self.padding, mode=self.pad_mode)
            return torch.nn.functional.conv2d(x, self.filt, stride=self.stride, groups=self.channels)

        def extra_repr(self):
            return f"{self.channels}, filt_size={self.filt_size}, stride={self.stride}"

    return {"BlurPool2d": BlurPool2d}
