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

Equal branches side by side are copies:

    >>> b = Seq((Layer("CONV", ((None, 4), (None, 3), ("p", 1))), Layer("BN", ())))
    >>> print(text(program((8, 8, 4), Join("ADD", (Seq((Layer("BN", ()),)), b, b, b)))).splitlines()[-1])
    { BN + (CONV(4, 3, p=1) - BN)**3 }
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
        return A.Branches(t.kind, tuple(_copies(t.branches)), None)
    if isinstance(t, Repeat):
        return A.Repeat(expr(t.body), value(t.count), None, t.index)
    if isinstance(t, Call):
        return A.Call(t.name, _args(t.values), not t.values, None)
    if isinstance(t, Group):
        return A.Label(t.label, A.Seq(tuple(expr(i) for i in t.items), None), None)
    custom = getattr(t, "expr", None)  # fold's template terms (optionals, parameterised layers)
    if custom is not None:
        return custom(expr, value)
    raise TypeError(f"not a term: {t!r}")


def _copies(branches):
    """A join's branches, each run of equal ones (not ID) as copies, `(CONV(c, 3, p=1) - BN)**4` (MobileOne):
    elaboration makes them side by side in that place, so the layers keep their order. A copy's
    labels would name every copy alike: they are left out."""
    out, i = [], 0
    while i < len(branches):
        b, k = branches[i], 1
        while i + k < len(branches) and branches[i + k] == b:
            k += 1
        if k > 1 and b != Seq(()):
            out.append(A.Copies(expr(_unlabelled(b)), A.Num(k, None), None))
        else:
            out += [expr(x) for x in branches[i:i + k]]
        i += k
    return out


def _unlabelled(t):
    if isinstance(t, Layer):
        return Layer(t.kind, t.args, t.node)
    if isinstance(t, Seq):
        return Seq(tuple(_unlabelled(i) for i in t.items))
    if isinstance(t, Join):
        return Join(t.kind, tuple(_unlabelled(b) for b in t.branches), t.node)
    if isinstance(t, Repeat):
        return Repeat(_unlabelled(t.body), t.count, t.instances, t.index)
    return t


def _args(args) -> tuple:
    return tuple(A.Arg(name, value(v), None) for name, v in args)


def value(v):
    """A Python value (or an AST value already) as an AST value."""
    if isinstance(v, (A.Num, A.Var, A.BinOp, A.Tuple, A.Func, A.Neg)):
        return v
    if isinstance(v, bool):
        return A.Var(_SWITCH[v], None)
    if isinstance(v, float) and v > 0 and len(repr(v)) > 12:
        from fractions import Fraction  # 0.0058823529411764705 is 1 / 170, as the source computed it
        f = Fraction(v).limit_denominator(10_000)
        if f.denominator > 1 and abs(float(f) - v) <= 1e-12 * v:
            return A.BinOp("/", A.Num(f.numerator, None), A.Num(f.denominator, None), None)
    if isinstance(v, (int, float)):
        return A.Num(v, None) if v >= 0 else A.Neg(A.Num(-v, None), None)
    if isinstance(v, tuple):
        return A.Tuple(tuple(value(x) for x in v), None)
    if isinstance(v, str):
        return A.Var(v, None)
    raise TypeError(f"not a value: {v!r}")
