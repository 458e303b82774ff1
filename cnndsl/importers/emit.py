"""Pass: the folded term and its blocks -> an AST Program (lang/astnodes.py) -> `.net` text.

The text is lang/printer.py's, so it parses back to the same program; comments are not in the AST,
so the header (where the spec came from) and the `# note:` lines (what `cnndsl report` prints under
its table) are written before it.

    >>> from cnndsl.importers.terms import Layer, Seq, Join, ID
    >>> t = Seq((Layer("CONV", ((None, 8), (None, 3), ("p", 1)), label="stem"), Join("ADD", (Seq((Layer("RELU", ()),)), ID))))
    >>> print(text(program((32, 32, 3), t), ["imported from x.onnx"], ["a note"]), end="")
    # imported from x.onnx
    # note: a note
    input 32x32x3
    <BLANKLINE>
    stem: CONV(8, 3, p=1) - { RELU + ID }
"""
from __future__ import annotations

from ..lang import astnodes as A
from ..lang.printer import format_program
from .terms import Call, Group, Join, Layer, Repeat, Seq

_SWITCH = {True: "true", False: "false"}


def program(input_shape, term, blocks=(), statements=()) -> A.Program:
    """The program: the input, `statements` (lets), the blocks' defs, the network."""
    dims = tuple(A.Num(d, None) for d in input_shape)
    defs = tuple(A.Def(b.name, tuple(A.Param(p.name, value(p.default) if p.default is not None else None, None)
                                     for p in b.params), expr(b.body), None) for b in blocks)
    return A.Program((A.InputDecl(dims, None), *statements, *defs), expr(term))


def text(prog: A.Program, header=(), notes=()) -> str:
    lines = [f"# {h}" for h in header] + [f"# note: {n}" for n in notes]
    return "\n".join(lines) + ("\n" if lines else "") + format_program(prog)


def expr(t):
    """A term (or a block body's template term) as a network expression."""
    if isinstance(t, Layer):
        call = A.Call(t.kind, _args(t.args), not t.args, None)
        return A.Label(t.label, call, None) if t.label else call
    if isinstance(t, Seq):
        if not t.items:
            return A.Call("ID", (), True, None)
        return A.Seq(tuple(expr(i) for i in t.items), None)
    if isinstance(t, Join):
        return A.Branches(t.kind, tuple(expr(b) for b in t.branches), None)
    if isinstance(t, Repeat):
        return A.Repeat(expr(t.body), value(t.count), None)
    if isinstance(t, Call):
        return A.Call(t.name, _args(t.values), not t.values, None)
    if isinstance(t, Group):
        return A.Label(t.label, A.Seq(tuple(expr(i) for i in t.items), None), None)
    custom = getattr(t, "expr", None)  # fold's template terms (optionals, parameterised layers)
    if custom is not None:
        return custom(expr, value)
    raise TypeError(f"not a term: {t!r}")


def _args(args) -> tuple:
    return tuple(A.Arg(name, value(v), None) for name, v in args)


def value(v):
    """A Python value (or an AST value already) as an AST value."""
    if isinstance(v, (A.Num, A.Var, A.BinOp, A.Tuple, A.Func, A.Neg)):
        return v
    if isinstance(v, bool):
        return A.Var(_SWITCH[v], None)
    if isinstance(v, (int, float)):
        return A.Num(v, None) if v >= 0 else A.Neg(A.Num(-v, None), None)
    if isinstance(v, tuple):
        return A.Tuple(tuple(value(x) for x in v), None)
    if isinstance(v, str):
        return A.Var(v, None)
    raise TypeError(f"not a value: {v!r}")
