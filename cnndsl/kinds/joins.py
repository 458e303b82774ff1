"""Joins: the branches of `{ a | b }` concatenated, of `{ a + b }` summed."""
from __future__ import annotations

from .base import HE_PASS, INPLACE, NO_TENSORS, OWN, Kind, ShapeError, fmt_pair, fmt_shape, n_elems, torch_module

__all__ = ["Concat", "Add", "JoinError", "fmt_pair"]


class Concat(Kind):
    name = "CONCAT"
    doc = "joins branches `{ a | b }` along the depth"
    join, elementwise = True, False
    memory, output_overwritable, he, draw_group = OWN, True, HE_PASS, "join"
    samples = ("{ ID | RELU }", "{ CONV(4, 1) | MAXPOOL(3, s=1, p=1) }")

    def out_shape(self, attrs, ins):
        first = ins[0]
        for other in ins[1:]:
            if len(other) != len(first) or other[:-1] != first[:-1]:
                raise JoinError(first, other, "concatenated along the depth",
                                "branches joined with `|` must keep the same height and width")
        return (*first[:-1], sum(s[-1] for s in ins))

    def tensors(self, attrs, ins):
        return NO_TENSORS

    def torch_module(self, attrs, ins, inplace):
        return torch_module("cnndsl.Concat")

    def onnx(self, b, n, xs):
        b.node("Concat", xs, n, axis=1)


class Add(Kind):
    name = "ADD"
    doc = "sums branches `{ a + b }` element-wise (residual shortcuts)"
    join = True
    elementwise_ops = 0
    memory, output_overwritable, he, draw_group = INPLACE, True, HE_PASS, "join"
    samples = ("{ ID + RELU }", "{ ID + CONV(4, 3, p=1) - BN }")

    def out_shape(self, attrs, ins):
        for other in ins[1:]:
            if other != ins[0]:
                raise JoinError(ins[0], other, "added", _projection_hint(ins[0], other))
        return ins[0]

    def tensors(self, attrs, ins):
        return NO_TENSORS

    def flops(self, attrs, ins, out):
        return n_elems(out) * (len(ins) - 1)

    def torch_module(self, attrs, ins, inplace):
        return torch_module("cnndsl.Add", (), (("inplace", inplace),), defaults={"inplace": False})

    def onnx(self, b, n, xs):
        b.node({1: "Identity", 2: "Add"}.get(len(xs), "Sum"), xs, n)


def _projection_hint(a, b) -> str:
    """The shortcut that maps the larger volume onto the other: `{ CONV(128, 1, s=2, bias=false) - BN + body }`."""
    if len(a) != 3 or len(b) != 3:
        return "branches joined with `+` must give the same shape"
    big, small = (a, b) if a[0] >= b[0] else (b, a)
    stride = big[0] // small[0] if small[0] and big[0] % small[0] == 0 else None
    if stride is None and big[:2] != small[:2]:
        return "branches joined with `+` must give the same shape"
    s = f", s={stride}" if stride and stride > 1 else ""
    return (f"a projection shortcut maps {fmt_shape(big)} to {fmt_shape(small)}: "
            f"{{ CONV({small[2]}, 1{s}, bias=false) - BN + body }}")


class JoinError(ShapeError):
    def __init__(self, a, b, how, hint):
        super().__init__(f"branches of shapes {fmt_shape(a)} and {fmt_shape(b)} cannot be {how}", hint=hint)
        self.shapes = (a, b)
