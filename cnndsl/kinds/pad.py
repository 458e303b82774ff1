"""Zero padding on each side of a volume, as a layer of its own: PP-HGNetV2's stem pads one row
below and one column right (`F.pad(x, (0, 1, 0, 1))`) before a 2x2 conv and a 2x2 max pool at
stride 1, so both keep the size:

    PAD(bottom=1, right=1) - CONV(16, 2, bias=false)

It leaves the receptive field and the jump alone (a pad adds no input positions to a window).
"""
from __future__ import annotations

from .base import HE_PASS, NO_TENSORS, OWN, Arg, Kind, need_volume, torch_module

SIDES = ("top", "bottom", "left", "right")


class Pad(Kind):
    name = "PAD"
    aliases = ("ZEROPAD",)
    doc = "zeros added on each side: top, bottom, left, right (F.pad; PP-HGNetV2's stem)"
    elementwise = False
    args = tuple(Arg(side, "int", 0, lo=0, doc=f"rows or columns of zeros {where}") for side, where in
                 zip(SIDES, ("above", "below", "on the left", "on the right")))
    # constant_pad_nd keeps nothing for backward: a fresh output, free to be overwritten
    memory, output_overwritable, he, draw_group = OWN, True, HE_PASS, "reshape"
    samples = ("PAD(bottom=1, right=1)", "PAD(1, 2, 0, 3)", "PAD(top=2) - CONV(4, 3)")

    def out_shape(self, attrs, ins):
        need_volume(self.name, ins[0])
        H, W, C = ins[0]
        return (H + attrs["top"] + attrs["bottom"], W + attrs["left"] + attrs["right"], C)

    def tensors(self, attrs, ins):
        return NO_TENSORS

    def saved(self, attrs, ins, out, inplace=False):
        return ((), 0)  # measured: constant_pad_nd's backward slices by the pads alone

    def torch_module(self, attrs, ins, inplace):
        return torch_module("cnndsl.ZeroPad", (), tuple((s, attrs[s]) for s in SIDES), spec=tuple((s, s) for s in SIDES),
                            defaults={s: 0 for s in SIDES})

    def onnx(self, b, n, xs):
        """Zeros concatenated on each side, not a Pad: onnxruntime fuses a zero Pad into a MaxPool after it
        (PadFusion, up to Pad-19), whose padding is -inf, so a max over a padded window would differ
        (and a pad as wide as the window is refused). The zeros are a slice of the input times 0, so
        the batch size stays the input's; they are finite inputs' zeros."""
        a = n.attrs
        x, steps = xs[0], [(2, "top", "bottom"), (3, "left", "right")]
        for axis, before, after in steps:
            if not (a[before] or a[after]):
                continue
            edge = b.node("Slice", [x, b.ints(n, f"{before}_start", [0]), b.ints(n, f"{before}_end", [1]),
                                    b.ints(n, f"{before}_axis", [axis])], n, out=f"{n.name}:{before}_edge")
            zero = b.node("Mul", [edge, b.scalar(0.0)], n, out=f"{n.name}:{before}_zero")
            parts = []
            for side in (before, after):
                if a[side]:
                    reps = [1, 1, 1, 1]
                    reps[axis] = a[side]
                    parts.append(b.node("Expand", [zero, b.ints(n, f"{side}_shape", reps)], n, out=f"{n.name}:{side}"))
                else:
                    parts.append(None)
            last = (axis, before, after) == next(s for s in reversed(steps) if a[s[1]] or a[s[2]])
            ins = [t for t in (parts[0], x, parts[1]) if t]
            x = b.node("Concat", ins, n, out=None if last else f"{n.name}:{before}_{after}", axis=axis)

    def describe(self, attrs):
        return " ".join(f"{s} {attrs[s]}" for s in SIDES if attrs[s])


def torch_modules():
    """PAD's PyTorch module (kinds.torch_classes builds it; torch is imported here only)."""
    import torch
    from torch import nn

    class ZeroPad(nn.Module):
        """F.pad(x, (left, right, top, bottom)) with zeros."""

        def __init__(self, top: int = 0, bottom: int = 0, left: int = 0, right: int = 0):
            super().__init__()
            self.pads = (left, right, top, bottom)

        def forward(self, x):
            return torch.nn.functional.pad(x, self.pads)

        def extra_repr(self):
            return f"{self.pads}"

    return {"ZeroPad": ZeroPad}
