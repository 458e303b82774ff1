"""The spec's expressions, as the IR keeps them (text: `Site.args`, `Frame.written`, `Param.text`),
written as Python source for the source backend. Nothing here evaluates the language: a
spec's value expression is read with Python's own parser (its syntax is Python's, but for `/`,
which is whole where it divides, and sizes `3x3`, which Python cannot read: those fall back to
literals), its names are renamed, and the result is only a candidate.

    >>> to_python(parse("make_divisible(c * W, 8)"), {"c": "c", "W": "W"})
    'make_divisible(c * W, 8)'
    >>> to_python(parse("mode"), {}) is None  # a name that is neither a parameter nor a `let`: a word
    True

The writer runs each candidate (`run`, Python) for every instance and keeps it when it gives the
value the IR holds (`same`), so a wrong guess falls back to a literal: a word (`bilinear`, `off`)
is no name of the class, so it is written as the value the IR holds, never as a constant.
"""
from __future__ import annotations

import ast
import functools
import math

from ...lang.functions import FUNCTIONS, make_divisible

UNKNOWN = object()


@functools.lru_cache(maxsize=4096)
def parse(text):
    """A spec value expression's text -> a Python expression tree (shared: never changed), or None."""
    if text is None:
        return None
    try:
        return ast.parse(text, mode="eval").body
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None


def named(name):
    """A name as an expression (channels: `cin`, a loop's running variable)."""
    return ast.Name(name, ast.Load())


def num(v):
    return ast.Constant(v)


def plus(a, b):
    return ast.BinOp(a, ast.Add(), b)


class _Python(ast.NodeTransformer):
    """Renames the spec's names (`names`), spells its functions as Python does, and writes the spec's
    `/` as `division`; anything else (an unknown name, a keyword argument, a comparison) fails."""

    def __init__(self, names, division):
        self.names, self.division = names, division

    def generic_visit(self, node):
        raise ValueError(type(node).__name__)

    def visit_Constant(self, node):
        if not isinstance(node.value, (int, float, str)):  # True/False: the spec's words for them
            return node if isinstance(node.value, bool) else self.generic_visit(node)
        return node

    def visit_Name(self, node):
        if node.id not in self.names:
            raise ValueError(node.id)
        return ast.Name(self.names[node.id], ast.Load())

    def visit_Tuple(self, node):
        return ast.Tuple([self.visit(e) for e in node.elts], ast.Load())

    def visit_UnaryOp(self, node):
        if not isinstance(node.op, ast.USub):
            return self.generic_visit(node)
        return ast.UnaryOp(ast.USub(), self.visit(node.operand))

    def visit_BinOp(self, node):
        op = node.op
        if isinstance(op, ast.Div):
            op = ast.FloorDiv() if self.division == "//" else ast.Div()
        elif not isinstance(op, (ast.Add, ast.Sub, ast.Mult, ast.FloorDiv, ast.Mod, ast.Pow)):
            return self.generic_visit(node)
        return ast.BinOp(self.visit(node.left), op, self.visit(node.right))

    def visit_Call(self, node):
        if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS or node.keywords:
            return self.generic_visit(node)
        func = ast.parse(FUNCTIONS[node.func.id].python, mode="eval").body
        return ast.Call(func, [self.visit(a) for a in node.args], [])


def to_python(e, names, division="//") -> str | None:
    """Python source for `e` (a tree from `parse`, or built of `named`/`num`/`plus`); `names` maps spec
    names to Python names. None: not translatable. The spec's `/` is whole when it divides exactly:
    written `//` (checked by running it), or `/` (`division="/"`) where the spec's value is a
    fraction (a drop probability `p * i / n`)."""
    if e is None:
        return None
    try:
        return ast.unparse(_Python(names, division).visit(e))
    except (ValueError, RecursionError):
        return None


def free_names(e) -> set:
    return set() if e is None else {n.id for n in ast.walk(e) if isinstance(n, ast.Name)}


def substitute(e, values):
    """`e` with names replaced by expressions (a block's output channels, seen from its caller)."""
    class Sub(ast.NodeTransformer):
        def visit_Name(self, node):
            return values.get(node.id, node)
    return Sub().visit(_copy(e))


def _copy(e):
    import copy
    return copy.deepcopy(e)


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


def run(src, env):
    """The value of translated source `src` with Python names `env`; UNKNOWN when it fails."""
    try:
        return eval(src, {"__builtins__": {}, **CALLABLES}, env)  # noqa: S307 - source we built from numbers and names
    except Exception:
        return UNKNOWN


def _number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


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
