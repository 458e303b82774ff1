"""The functions a value may call: `min`, `max`, `round`, `floor`, `ceil`, `int`, `abs`, `log`, `make_divisible`.

Values stay exact: `floor`, `ceil`, `round` and `int` give whole numbers (ints), as Python's do;
`min`/`max` give one of their arguments as it is. `round` is Python's (ties to even, as torch.round
and numpy.round, which RegNet's widths use); `int` truncates towards zero (torchvision writes
`int(v + divisor / 2)` and `int(math.ceil(n * depth_mult))`). `make_divisible` is torchvision's
`_make_divisible` (MobileNet, MNASNet, EfficientNet), written out below from its rule.

    >>> [make_divisible(v, 8) for v in (32 * 0.75, 16 * 1.1, 10, 3)]
    [24, 16, 16, 8]
    >>> FUNCTIONS["round"].call((2.5,)), FUNCTIONS["ceil"].call((3 * 1.1,))
    (2, 4)
"""
from __future__ import annotations

import math
from dataclasses import dataclass


def make_divisible(v, divisor, min_value=None):
    """`v` rounded to the nearest multiple of `divisor` (halves up), at least `min_value` (default:
    `divisor`), and never more than 10% below `v` (then one `divisor` more)."""
    if min_value is None:
        min_value = divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


@dataclass(frozen=True)
class Function:
    name: str
    arity: tuple       # (fewest, most) arguments; most None: any number
    impl: object
    python: str        # how the generated PyTorch source spells it (`math.floor`, `make_divisible`)
    doc: str

    def call(self, args):
        return self.impl(*args)


def _log(x, base=None):
    return math.log(x) if base is None else math.log(x, base)


FUNCTIONS = {f.name: f for f in (
    Function("min", (2, None), min, "min", "the smallest argument"),
    Function("max", (2, None), max, "max", "the largest argument"),
    Function("round", (1, 1), round, "round", "the nearest whole number, ties to even (Python's, torch.round's)"),
    Function("floor", (1, 1), math.floor, "math.floor", "the largest whole number <= x"),
    Function("ceil", (1, 1), math.ceil, "math.ceil", "the smallest whole number >= x"),
    Function("int", (1, 1), int, "int", "x truncated towards zero, as Python's int()"),
    Function("abs", (1, 1), abs, "abs", "the absolute value"),
    Function("log", (1, 2), _log, "math.log", "the natural logarithm; log(x, b): to base b"),
    Function("make_divisible", (2, 3), make_divisible, "make_divisible",
             "torchvision's _make_divisible(v, divisor, min_value=divisor): the nearest multiple of divisor, "
             "at least min_value, not more than 10% below v"),
)}
