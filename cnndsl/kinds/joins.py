"""Joins: the branches of `{ a | b }` concatenated, of `{ a + b }` summed, of `{ a .* b }` multiplied
element-wise with broadcasting (a squeeze-and-excitation gate), of `{ a & b }` averaged (FractalNet).

    >>> Mul().out_shape({}, [(14, 14, 64), (1, 1, 64)])
    (14, 14, 64)
    >>> Mean().flops({}, [(4, 4, 8)] * 3, (4, 4, 8))
    384
"""
from __future__ import annotations

from .base import HE_PASS, INPLACE, NO_TENSORS, OWN, Kind, ShapeError, fmt_pair, fmt_shape, n_elems, torch_module

PARTNERS = "partners"  # `saved`: each input whose partners need a gradient (a product's backward)

__all__ = ["Concat", "Add", "Mul", "Mean", "JoinError", "fmt_pair"]


class Concat(Kind):
    name = "CONCAT"
    symbol = "|"
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
    symbol = "+"
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


class Mul(Kind):
    name = "MUL"
    doc = ("multiplies branches `{ a .* b }` element-wise, broadcasting sizes of 1 (a squeeze-and-excitation "
           "gate: HxWxC .* 1x1xC)")
    symbol = ".*"
    join, elementwise = True, False
    memory, output_overwritable, he, draw_group = OWN, True, HE_PASS, "join"
    samples = ("{ ID .* SIGMOID }", "{ ID .* ADAPTIVEAVGPOOL(1) - CONV(4, 1) - SIGMOID }")

    def out_shape(self, attrs, ins):
        out = ins[0]
        for other in ins[1:]:
            if len(other) != len(out):
                flat, vol = (other, out) if len(other) == 1 else (out, other)
                raise JoinError(out, other, "multiplied element-wise",
                                f"a gate of a volume is a 1x1xC volume, not a vector: e.g. "
                                f"{{ ID .* ADAPTIVEAVGPOOL(1) - CONV({vol[-1] // 4 or 1}, 1) - RELU - CONV({vol[-1]}, 1) "
                                f"- SIGMOID }}, as torchvision's SqueezeExcitation" if len(vol) == 3 else
                                "branches joined with `.*` must both be volumes or both vectors")
            if any(a != b and 1 not in (a, b) for a, b in zip(out, other)):
                bad = ", ".join(f"{axis} {a} vs {b}" for axis, a, b in zip(_AXES[len(out)], out, other)
                                if a != b and 1 not in (a, b))
                raise JoinError(out, other, "multiplied element-wise",
                                f"each size must be equal or 1 (broadcast): {bad}")
            out = tuple(max(a, b) if 1 in (a, b) else a for a, b in zip(out, other))
        return out

    def tensors(self, attrs, ins):
        return NO_TENSORS

    def flops(self, attrs, ins, out):
        return n_elems(out) * (len(ins) - 1)

    def saved(self, attrs, ins, out, inplace=False):
        # x * y keeps y when x needs a gradient and x when y does; a chain of more keeps its partial products
        partial, extra = ins[0], 0
        for other in ins[1:-1]:
            partial = self.out_shape(attrs, [partial, other])
            extra += 4 * n_elems(partial)
        return (PARTNERS,), extra

    def torch_module(self, attrs, ins, inplace):
        return torch_module("cnndsl.Mul")

    def onnx(self, b, n, xs):
        out = xs[0]
        for k, x in enumerate(xs[1:], 2):
            out = b.node("Mul", [out, x], n, out=None if k == len(xs) else f"{n.name}:product{k}")
        if len(xs) == 1:
            b.node("Identity", xs, n)


class Mean(Kind):
    name = "MEAN"
    doc = "averages branches `{ a & b }` element-wise (FractalNet's join)"
    symbol = "&"
    join = True
    memory, output_overwritable, he, draw_group = OWN, True, HE_PASS, "join"
    samples = ("{ ID & RELU }", "{ ID & CONV(4, 3, p=1) & CONV(4, 1) - BN }")

    def out_shape(self, attrs, ins):
        for other in ins[1:]:
            if other != ins[0]:
                raise JoinError(ins[0], other, "averaged", "branches joined with `&` must give the same shape")
        return ins[0]

    def tensors(self, attrs, ins):
        return NO_TENSORS

    def flops(self, attrs, ins, out):
        return n_elems(out) * len(ins)  # n - 1 additions and a division per element

    def torch_module(self, attrs, ins, inplace):
        return torch_module("cnndsl.Mean")

    def onnx(self, b, n, xs):
        b.node("Mean", xs, n)


_AXES = {3: ("height", "width", "channels"), 1: ("features",)}


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
