"""Channel slices, the channel shuffle and zero channels. ShuffleNetV2's unit reads like the paper's figure,
channel split, two branches, concat, channel shuffle:

    { SPLIT(0) | SPLIT(1) - CONV(c/2, 1, bias=false) - BN - RELU - ... } - SHUFFLE(2)

A node has one output, so each branch takes its own slice: SPLIT(i, parts=2) is the i-th of
`parts` equal parts (x.chunk(parts, 1)[i]), CHANNELS(start, stop) the channels start..stop-1
(x[:, start:stop], DPN's split of a block's output). Both are views of their input.

    >>> Split().out_shape(Split().bind({"index": 1}), [(28, 28, 116)])
    (28, 28, 58)
    >>> Shuffle().out_shape({"groups": 2}, [(28, 28, 116)])
    (28, 28, 116)

PADCHANNELS(n) appends n channels of zeros: the parameter-free shortcut of the CIFAR ResNets (He et
al. 2015's option A, Huang et al.'s stochastic depth), `{ ID + AVGPOOL(1, s=2) - PADCHANNELS(16) }`.

    >>> PadChannels().out_shape({"extra": 16}, [(16, 16, 16)])
    (16, 16, 32)
"""
from __future__ import annotations

from .base import HE_PASS, NO_TENSORS, OWN, VIEW, Arg, Kind, ShapeError, fmt_shape, need_volume, torch_module


class _Slice(Kind):
    """A contiguous range of the input's channels (features of a vector), as a view."""
    elementwise = False
    memory, output_overwritable, he, draw_group = VIEW, False, HE_PASS, "reshape"

    def channel_range(self, attrs, c) -> tuple[int, int]:
        raise NotImplementedError

    def out_shape(self, attrs, ins):
        lo, hi = self.channel_range(attrs, ins[0][-1])
        return (*ins[0][:-1], hi - lo)

    def tensors(self, attrs, ins):
        return NO_TENSORS

    def torch_module(self, attrs, ins, inplace):
        lo, hi = self.channel_range(attrs, ins[0][-1])
        return torch_module("cnndsl.Channels", (("start", lo), ("stop", hi)))

    def onnx(self, b, n, xs):
        lo, hi = self.channel_range(n.attrs, b.shape_of(n.inputs[0])[-1])
        b.node("Slice", [xs[0], b.ints(n, "starts", [lo]), b.ints(n, "ends", [hi]), b.ints(n, "axes", [1])], n)


class Channels(_Slice):
    name = "CHANNELS"
    doc = "the channels start..stop-1 of its input (x[:, start:stop]); stop 0: to the last"
    args = (Arg("start", "int", lo=0, doc="the first channel (0-based)"),
            Arg("stop", "int", 0, lo=0, doc="one past the last channel; 0: to the end"))
    samples = ("CHANNELS(1)", "CHANNELS(0, 2)", "{ CHANNELS(0, 1) | CHANNELS(1) - CONV(4, 1) }")

    def channel_range(self, attrs, c):
        lo, hi = attrs["start"], attrs["stop"] or c
        if not lo < hi <= c:
            raise ShapeError(f"CHANNELS({lo}, {attrs['stop']}) takes channels {lo}..{hi - 1} of an input of {c}",
                             hint=f"start < stop <= {c}; stop 0 (the default) takes the channels to the end")
        return lo, hi

    def describe(self, attrs):
        return f"{attrs['start']}:{attrs['stop'] or ''}"


class Split(_Slice):
    name = "SPLIT"
    doc = "part `index` (0-based) of `parts` equal parts of its input's channels (x.chunk(parts, 1)[index])"
    args = (Arg("index", "int", lo=0, doc="which part, 0-based"),
            Arg("parts", "int", 2, lo=1, doc="how many equal parts"))
    samples = ("SPLIT(0)", "SPLIT(1)", "{ SPLIT(0) | SPLIT(1) - CONV(2, 1) } - SHUFFLE(2)", "SPLIT(3, parts=4)")

    def channel_range(self, attrs, c):
        i, parts = attrs["index"], attrs["parts"]
        if i >= parts:
            raise ShapeError(f"SPLIT({i}, parts={parts}) has no part {i}: the parts are 0..{parts - 1}")
        if c % parts:
            raise ShapeError(f"SPLIT cannot cut {c} channels into {parts} equal parts",
                             arithmetic=f"{c} % {parts} = {c % parts}", hint="use CHANNELS(start, stop) for unequal parts")
        size = c // parts
        return i * size, (i + 1) * size

    def torch_module(self, attrs, ins, inplace):
        return torch_module("cnndsl.ChannelSplit", (("index", attrs["index"]),), (("parts", attrs["parts"]),),
                            spec=(("index", "index"), ("parts", "parts")), defaults={"parts": 2})

    def describe(self, attrs):
        return f"{attrs['index']}/{attrs['parts']}"


class Shuffle(Kind):
    name = "SHUFFLE"
    aliases = ("CHANNELSHUFFLE",)
    doc = ("channel shuffle (ShuffleNet): channels seen as groups x C/groups, transposed (torchvision's "
           "channel_shuffle)")
    args = (Arg("groups", "int", lo=1, doc="groups of channels"),)
    bare = {"groups": 2}
    # a copy; it may be the input's memory itself when groups or C/groups is 1, so never overwritten in place
    memory, output_overwritable, he, draw_group = OWN, False, HE_PASS, "reshape"
    samples = ("SHUFFLE(2)", "SHUFFLE(4)", "SHUFFLE")

    def out_shape(self, attrs, ins):
        need_volume(self.name, ins[0])
        c, g = ins[0][-1], attrs["groups"]
        if c % g:
            raise ShapeError(f"SHUFFLE({g}) needs channels divisible by its groups; {fmt_shape(ins[0])} has {c}",
                             arithmetic=f"{c} % {g} = {c % g}")
        return ins[0]

    def tensors(self, attrs, ins):
        return NO_TENSORS

    def torch_module(self, attrs, ins, inplace):
        return torch_module("cnndsl.ChannelShuffle", (("groups", attrs["groups"]),), spec=(("groups", "groups"),))

    def onnx(self, b, n, xs):
        h, w, c = b.shape_of(n.inputs[0])
        g = n.attrs["groups"]
        grouped = b.node("Reshape", [xs[0], b.ints(n, "grouped", [0, g, c // g, h, w])], n, out=f"{n.name}:groups")
        swapped = b.node("Transpose", [grouped], n, out=f"{n.name}:transposed", perm=[0, 2, 1, 3, 4])
        b.node("Reshape", [swapped, b.ints(n, "shape", [0, c, h, w])], n)

    def describe(self, attrs):
        return f"{attrs['groups']}"


class PadChannels(Kind):
    name = "PADCHANNELS"
    doc = ("appends `extra` channels of zeros (features of a vector): F.pad, the CIFAR ResNets' option A "
           "shortcut to a wider volume")
    args = (Arg("extra", "int", lo=1, doc="channels of zeros appended after the input's"),)
    elementwise = False
    # a new tensor (constant_pad_nd); its backward keeps no tensor, so an in-place successor may overwrite it
    memory, output_overwritable, he, draw_group = OWN, True, HE_PASS, "reshape"
    samples = ("PADCHANNELS(4)", "{ ID | CONV(2, 1) } - PADCHANNELS(2)", "AVGPOOL(1, s=2) - PADCHANNELS(1) - RELU",
               "FC(6) - PADCHANNELS(3)")

    def out_shape(self, attrs, ins):
        return (*ins[0][:-1], ins[0][-1] + attrs["extra"])

    def tensors(self, attrs, ins):
        return NO_TENSORS

    def torch_module(self, attrs, ins, inplace):
        return torch_module("cnndsl.PadChannels", (("extra", attrs["extra"]),), spec=(("extra", "extra"),))

    def onnx(self, b, n, xs):
        rank = len(b.shape_of(n.inputs[0])) + 1  # with the batch axis
        ends = [0, n.attrs["extra"]] + [0] * (rank - 2)
        b.node("Pad", [xs[0], b.ints(n, "pads", [0] * rank + ends)], n)  # mode "constant", value 0

    def describe(self, attrs):
        return f"+{attrs['extra']}"
