"""Spec value expressions (astnodes Num, Var, BinOp, ...) for the source backend: evaluated the
spec's way, solved for an unknown `let`, and translated to Python source.

    >>> from cnndsl.lang import astnodes as A
    >>> e = A.BinOp("*", A.Num(4, None), A.Var("c", None), None)
    >>> to_python(e, {"c": "c"}), evaluate(e, {"c": 16})
    ('4 * c', 64)

A translation is only a candidate: the writer evaluates it (`run`) for every instance and keeps
it when it gives the value the IR holds (`same`), so a wrong guess falls back to a literal.
"""
from __future__ import annotations

import math

from ...lang import astnodes as A
from ...lang.functions import FUNCTIONS, make_divisible
from ...lang.values import BOOLS, SYMBOLS

PRECEDENCE = {"+": 1, "-": 1, "*": 2, "/": 2, "//": 2, "%": 2, "**": 4}
UNKNOWN = object()


def evaluate(e, env):
    """The spec's value of `e` in `env` (names -> values); UNKNOWN when a name is not bound."""
    if isinstance(e, A.Num):
        return e.value
    if isinstance(e, (A.Dims, A.Str)):
        return tuple(e.value) if isinstance(e, A.Dims) else e.value
    if isinstance(e, A.Var):
        return env.get(e.name, BOOLS.get(e.name, e.name if e.name in SYMBOLS else UNKNOWN))
    if isinstance(e, A.Tuple):
        items = tuple(evaluate(i, env) for i in e.items)
        return UNKNOWN if UNKNOWN in items else items
    if isinstance(e, A.Neg):
        v = evaluate(e.operand, env)
        return -v if _number(v) else UNKNOWN
    if isinstance(e, A.BinOp):
        return _binop(e.op, evaluate(e.left, env), evaluate(e.right, env))
    if isinstance(e, A.Func):
        args = [evaluate(a, env) for a in e.args]
        if e.name not in FUNCTIONS or not all(map(_number, args)):
            return UNKNOWN
        try:
            return FUNCTIONS[e.name].call(args)
        except (TypeError, ValueError, ZeroDivisionError, OverflowError):
            return UNKNOWN
    return UNKNOWN


def _number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _binop(op, a, b):
    if not (_number(a) and _number(b)):
        return UNKNOWN
    try:
        if op == "/":  # the spec's division: whole when it divides exactly
            return a // b if isinstance(a, int) and isinstance(b, int) and a % b == 0 else a / b
        return {"+": a + b, "-": a - b, "*": a * b}[op] if op in "+-*" else \
            {"//": lambda: a // b, "%": lambda: a % b, "**": lambda: a ** b}[op]()
    except (ZeroDivisionError, OverflowError, KeyError):
        return UNKNOWN


def solve(e, target, env) -> dict | None:
    """{name: value} for the one unbound name in `e` that makes it equal `target`, or None.
    How the writer learns a `let` that the IR does not keep: from a layer that uses it."""
    if isinstance(e, A.Var) and evaluate(e, env) is UNKNOWN:
        return {e.name: target}
    if isinstance(e, A.Neg) and _number(target):
        return solve(e.operand, -target, env)
    if not isinstance(e, A.BinOp) or not _number(target):
        return None
    left, right = evaluate(e.left, env), evaluate(e.right, env)
    if (left is UNKNOWN) == (right is UNKNOWN):
        return None
    known, unknown, on_left = (right, e.left, True) if left is UNKNOWN else (left, e.right, False)
    inverse = {"+": lambda: target - known, "*": lambda: target / known,
               "-": lambda: target + known if on_left else known - target,
               "/": lambda: target * known if on_left else known / target}.get(e.op)
    try:
        value = inverse() if inverse else None
    except ZeroDivisionError:
        return None
    if value is None:
        return None
    if isinstance(value, float):  # 0.2 from 0.0333... * 6, not 0.19999999999999998 (the caller checks it)
        value = int(value) if value.is_integer() else float(f"{value:.12g}")
    return solve(unknown, value, env)


def to_python(e, names, division="//") -> str | None:
    """Python source for `e`; `names` maps spec names to Python names. None: not translatable.
    The spec's `/` is whole when it divides exactly: written `//` (checked by evaluation), or `/`
    (`division="/"`) where the spec's value is a fraction (a drop probability `p * i / n`)."""
    if isinstance(e, A.Num):
        return repr(e.value)
    if isinstance(e, A.Dims):
        return literal(tuple(e.value))
    if isinstance(e, A.Var):
        if e.name in names:
            return names[e.name]
        return repr(BOOLS[e.name]) if e.name in BOOLS else None
    if isinstance(e, A.Tuple):
        items = [to_python(i, names, division) for i in e.items]
        return None if None in items else "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"
    if isinstance(e, A.Neg):
        inner = to_python(e.operand, names, division)
        return None if inner is None else f"-{_wrap(e.operand, inner, 3)}"
    if isinstance(e, A.BinOp):
        left, right = to_python(e.left, names, division), to_python(e.right, names, division)
        if left is None or right is None:
            return None
        p = PRECEDENCE[e.op]
        op = division if e.op == "/" else e.op  # checked by evaluation
        return f"{_wrap(e.left, left, p)} {op} {_wrap(e.right, right, p + 1)}"
    if isinstance(e, A.Func) and e.name in FUNCTIONS:
        args = [to_python(a, names, division) for a in e.args]
        return None if None in args else f"{FUNCTIONS[e.name].python}({', '.join(args)})"
    return None


# what translated source may call (`run`), and what the generated file then defines or imports
CALLABLES = {"min": min, "max": max, "round": round, "int": int, "abs": abs, "math": math,
             "make_divisible": make_divisible}


def helpers(text) -> tuple[list[str], list[str]]:
    """(imports, definitions) the generated file needs for the functions its code calls:
    `import math`, the `make_divisible` function (lang/functions.py's own source)."""
    import inspect
    import re
    imports = ["import math"] if re.search(r"\bmath\.", text) else []
    defs = inspect.getsource(make_divisible).rstrip().splitlines() if re.search(r"\bmake_divisible\(", text) else []
    return imports, defs


def _wrap(e, src, p):
    return f"({src})" if isinstance(e, A.BinOp) and PRECEDENCE[e.op] < p else src


def run(src, env):
    """The value of translated source `src` with Python names `env`; UNKNOWN when it fails."""
    try:
        return eval(src, {"__builtins__": {}, **CALLABLES}, env)  # noqa: S307 - source we built from numbers and names
    except Exception:
        return UNKNOWN


def same(a, b) -> bool:
    """Equal as PyTorch arguments: a square pair equals its side; a bool is not a number."""
    a, b = _square(a), _square(b)
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if _number(a) and _number(b):
        return a == b
    return type(a) is type(b) and a == b


def _square(v):
    return v[0] if isinstance(v, tuple) and len(v) == 2 and v[0] == v[1] else v


def literal(v) -> str:
    """Source of a value: a square pair as its side."""
    v = _square(v)
    if isinstance(v, tuple):
        return "(" + ", ".join(literal(i) for i in v) + ("," if len(v) == 1 else "") + ")"
    return repr(v)


def substitute(e, values):
    """`e` with names replaced by expressions (a block's output channels, seen from its caller)."""
    if isinstance(e, A.Var):
        return values.get(e.name, e)
    if isinstance(e, A.BinOp):
        return A.BinOp(e.op, substitute(e.left, values), substitute(e.right, values), e.span)
    if isinstance(e, A.Neg):
        return A.Neg(substitute(e.operand, values), e.span)
    if isinstance(e, A.Tuple):
        return A.Tuple(tuple(substitute(i, values) for i in e.items), e.span)
    if isinstance(e, A.Func):
        return A.Func(e.name, tuple(substitute(i, values) for i in e.args), e.span)
    return e
