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

from ...lang import astnodes as A
from ...lang.values import BOOLS

PRECEDENCE = {"+": 1, "-": 1, "*": 2, "/": 2, "//": 2, "%": 2, "**": 4}
UNKNOWN = object()


def evaluate(e, env):
    """The spec's value of `e` in `env` (names -> values); UNKNOWN when a name is not bound."""
    if isinstance(e, A.Num):
        return e.value
    if isinstance(e, (A.Dims, A.Str)):
        return tuple(e.value) if isinstance(e, A.Dims) else e.value
    if isinstance(e, A.Var):
        return env.get(e.name, BOOLS.get(e.name, e.name if e.name in ("same", "valid") else UNKNOWN))
    if isinstance(e, A.Tuple):
        items = tuple(evaluate(i, env) for i in e.items)
        return UNKNOWN if UNKNOWN in items else items
    if isinstance(e, A.Neg):
        v = evaluate(e.operand, env)
        return -v if _number(v) else UNKNOWN
    if isinstance(e, A.BinOp):
        return _binop(e.op, evaluate(e.left, env), evaluate(e.right, env))
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
    return solve(unknown, int(value) if isinstance(value, float) and value.is_integer() else value, env)


def to_python(e, names) -> str | None:
    """Python source for `e`; `names` maps spec names to Python names. None: not translatable."""
    if isinstance(e, A.Num):
        return repr(e.value)
    if isinstance(e, A.Dims):
        return literal(tuple(e.value))
    if isinstance(e, A.Var):
        if e.name in names:
            return names[e.name]
        return repr(BOOLS[e.name]) if e.name in BOOLS else None
    if isinstance(e, A.Tuple):
        items = [to_python(i, names) for i in e.items]
        return None if None in items else "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"
    if isinstance(e, A.Neg):
        inner = to_python(e.operand, names)
        return None if inner is None else f"-{_wrap(e.operand, inner, 3)}"
    if isinstance(e, A.BinOp):
        left, right = to_python(e.left, names), to_python(e.right, names)
        if left is None or right is None:
            return None
        p = PRECEDENCE[e.op]
        op = "//" if e.op == "/" else e.op  # checked by evaluation: exact divisions only
        return f"{_wrap(e.left, left, p)} {op} {_wrap(e.right, right, p + 1)}"
    return None


def _wrap(e, src, p):
    return f"({src})" if isinstance(e, A.BinOp) and PRECEDENCE[e.op] < p else src


def run(src, env):
    """The value of translated source `src` with Python names `env`; UNKNOWN when it fails."""
    try:
        return eval(src, {"__builtins__": {}}, env)  # noqa: S307 - source we built from numbers and names
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
    return e
