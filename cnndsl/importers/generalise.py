"""Anti-unification: terms of one structure -> one `def` with parameters, and each term's call values.

An argument equal in every instance stays written out; one that differs becomes a parameter (two
that always agree share one; one always k times another is written `k * c`); a branch that some
instances have and the others leave as the identity becomes an optional branch switched by a
parameter; a block's calls inside the instances are generalised the same way, argument by argument.
A parameter takes as default the value most instances have, except widths (CONV's filters, FC's
units), which every call writes.

    >>> from cnndsl.importers.terms import Layer, Seq
    >>> conv = lambda c, k: Layer("CONV", ((None, c), (None, k)))
    >>> block, calls = make_block([Seq((conv(8, 3), conv(16, 1))), Seq((conv(32, 3), conv(64, 1)))], "pair")
    >>> [(p.name, p.default) for p in block.params], calls
    ([('c', None)], [((None, 8),), ((None, 32),)])
"""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

from ..kinds import KINDS
from ..lang import astnodes as A
from .layers import by_position, full_args
from .terms import Call, Join, Layer, Seq

NAMES = {"filters": "c", "units": "n", "s": "s", "kernel": "k", "p": "p", "groups": "g", "d": "d"}
SWITCH = {True: "on", False: "off"}


@dataclass(frozen=True)
class Param:
    name: str
    default: object = None    # a Python value (a switch: "on"/"off"), or None: every call gives it


@dataclass
class Block:
    """A `def`: its name, parameters and body (a term whose values may be AST expressions of them)."""
    name: str
    params: list
    body: object
    instances: list = field(default_factory=list)


@dataclass(frozen=True)
class Opt:
    """A branch some instances of a block have and the others leave as the identity."""
    body: object
    switch: object            # the hole whose parameter switches it

    def expr(self, expr, value):
        return A.Label(self.switch.expr.name, A.Optional(expr(self.body), None), None)


def make_block(insts, name):
    """A Block for the instances (terms of one structure), and each instance's call values, or None."""
    holes = []
    body = generalise(insts, holes)
    if body is None:
        return None
    params, exprs = _params(holes, len(insts))
    for h, e in zip(holes, exprs):
        h.expr = e
    block = Block(name, [p for p, _ in params], body, list(insts))
    calls = []
    for i in range(len(insts)):
        values = []
        for p, vals in params:
            v = vals[i]
            if p.default is not None and (v is None or v == p.default):
                continue
            values.append((None if p.default is None else p.name, v))
        calls.append(tuple(values))
    return block, calls


def call(block, values, instance) -> Call:
    """A use of `block` with `values` (as make_block gives them) standing for `instance`."""
    full = {p.name: p.default for p in block.params}
    positional = [p.name for p in block.params if p.default is None]
    full.update({(name or positional[i]): v for i, (name, v) in enumerate(values)})
    return Call(block.name, tuple(values), instance=instance, block=block, full=tuple(full.items()))


class _Hole:
    """An argument (or a switch) that differs between instances: its values, None where absent."""

    def __init__(self, arg, values, switch=False):
        self.arg, self.values, self.switch = arg, tuple(values), switch
        self.soft = not switch and len({v for v in values if v is not None}) == 1  # one value, some absent
        self.expr = None

    def written(self):
        """The hole's expression, or the one value of a soft hole that no parameter follows."""
        return self.expr


def generalise(insts, holes=None):
    """The template of the instances (None entries: absent), or None where they differ in structure."""
    holes = [] if holes is None else holes
    present = [t for t in insts if t is not None]
    first = present[0]
    if all(isinstance(t, Layer) and t.kind == first.kind for t in present):
        full = [full_args(t.kind, t.args) if t is not None else None for t in insts]
        args = _columns([a.name for a in KINDS[first.kind].args], full, holes)
        labels = {t.label for t in present}
        return _TLayer(first.kind, args, labels.pop() if len(labels) == 1 else None, full)
    if all(isinstance(t, Call) and t.name == first.name for t in present):
        full = [dict(t.full) if t is not None else None for t in insts]
        return _TCall(first.block, _columns([p.name for p in first.block.params], full, holes))
    if all(isinstance(t, Seq) and len(t.items) == len(first.items) for t in present):
        parts = [generalise([t.items[k] if t is not None else None for t in insts], holes)
                 for k in range(len(first.items))]
        return None if any(p is None for p in parts) else Seq(tuple(parts))
    if all(isinstance(t, Join) and t.kind == first.kind and len(t.branches) == len(first.branches) for t in present):
        branches = []
        for k in range(len(first.branches)):
            column = [t.branches[k] if t is not None else None for t in insts]
            have = [b for b in column if b is not None]
            if all(not b.items for b in have):
                branches.append(Seq(()))
            elif all(b.items for b in have):
                part = generalise(column, holes)
                if part is None:
                    return None
                branches.append(part)
            else:  # the identity in some, a branch in others: an optional branch
                switch = _Hole("switch", [None if b is None else bool(b.items) for b in column], switch=True)
                body = generalise([b if b is not None and b.items else None for b in column], holes)
                if body is None:
                    return None
                holes.append(switch)
                branches.append(Opt(body, switch))
        return Join(first.kind, tuple(branches))
    return None


def _columns(names, full, holes) -> dict:
    """{argument: its one value, or a hole}: a value seen once where some instances are absent (an
    optional branch's) is a hole too, which a parameter may still follow."""
    out = {}
    for name in names:
        vals = [f[name] if f is not None else None for f in full]
        known = {_key(v) for v in vals if v is not None}
        if len(known) == 1 and None not in vals:
            out[name] = next(v for v in vals if v is not None)
        else:
            out[name] = _Hole(name, vals)
            holes.append(out[name])
    return out


def _key(v):
    return (type(v).__name__, v)


def _value(v):
    """A hole's or literal's value as written: a soft hole no parameter follows is its one value."""
    if isinstance(v, _Hole):
        return v.expr
    return v


class _TLayer:
    """A layer of a block's body: literal arguments and holes."""

    def __init__(self, kind, args, label, full):
        self.kind, self.args, self.label, self.full = kind, args, label, full

    def written(self):
        """The layer's arguments as written in the def: required ones by position, others by name
        where some instance differs from the kind's default."""
        k = KINDS[self.kind]
        out = []
        for i, a in enumerate(k.args):
            v = self.args[a.name]
            if isinstance(v, _Hole) and v.soft and not isinstance(v.expr, (A.Var, A.BinOp)):
                v = v.expr  # a value no parameter follows: written as any literal is
            if isinstance(v, _Hole):
                out.append((None if by_position(k, i) else a.name, v.expr))
            elif a.default is None:
                out.append((None, v))
            elif any(f is not None and _default(self.kind, f, a.name) != v for f in self.full):
                out.append((None if by_position(k, i) else a.name, v))
        return tuple(out)

    def expr(self, expr, value):
        args = tuple(A.Arg(n, value(v), None) for n, v in self.written())
        call = A.Call(self.kind, args, not args, None)
        return A.Label(self.label, call, None) if self.label else call


class _TCall:
    """A call of a block inside another block's body: literal values and holes."""

    def __init__(self, block, args):
        self.block, self.args = block, args

    def expr(self, expr, value):
        args = []
        for p in self.block.params:
            v = self.args[p.name]
            if isinstance(v, _Hole) and v.soft and not isinstance(v.expr, (A.Var, A.BinOp)):
                v = v.expr
            if not isinstance(v, _Hole) and p.default is not None and v == p.default:
                continue
            args.append(A.Arg(None if p.default is None else p.name, value(_value(v)), None))
        return A.Call(self.block.name, tuple(args), not args, None)


def _default(kind, full, arg):
    """The kind's default for `arg` given the layer's required arguments (a pool's stride is its window)."""
    k = KINDS[kind]
    required = {a.name: full[a.name] for a in k.args if a.default is None}
    return full_args(kind, tuple((name, v) for name, v in required.items()))[arg]


def _params(holes, n):
    """[(Param, its value in each instance)], in the def's order, and each hole's expression: holes
    with the same values share a parameter; a hole always k times another's is `k * p`."""
    params, refs = [], []  # params: {base, values, arg}; refs: (param index, factor) per hole
    for h in holes:
        for idx, p in enumerate(params):
            same = _unify(h.values, p["values"])
            if same is not None:
                p["values"] = same
                refs.append((idx, 1))
                break
            k = _ratio(h.values, p["values"])
            if k is not None:
                p["values"] = [v if v is not None or x is None else x // k for v, x in zip(p["values"], h.values)]
                refs.append((idx, k))
                break
            if h.arg == "p" and p["arg"] == "kernel" and _half(h.values, p["values"]):
                refs.append((idx, "half"))  # "same" padding of an odd kernel: (k - 1) // 2
                break
        else:
            if h.soft:  # no parameter follows it: the value itself
                refs.append((next(v for v in h.values if v is not None), None))
                continue
            base = "downsample" if h.switch else NAMES.get(h.arg, re.sub(r"\d+$", "", h.arg) or h.arg)
            params.append({"base": base, "values": list(h.values), "arg": h.arg})
            refs.append((len(params) - 1, 1))
    names = _names([p["base"] for p in params])
    exprs = [_expr(i, k, names) for i, k in refs]
    out = []
    for p, name in zip(params, names):
        values = p["values"]
        top, count = Counter(v for v in values if v is not None).most_common(1)[0]
        if isinstance(top, bool):
            values = [None if v is None else SWITCH[v] for v in values]
            default = SWITCH[top] if count * 2 >= n else None
        else:
            default = top if count * 2 >= n and count >= 2 and p["arg"] not in ("filters", "units") else None
            if default is None and None in values:  # unused where an optional is off: any value does
                default = top
        out.append((Param(name, default), values))
    return _ordered(out), exprs


def _expr(i, k, names):
    """A hole's expression: a value (k None), the parameter, k times it, or half its kernel."""
    if k is None:
        return i
    var = A.Var(names[i], None)
    if k == "half":
        return A.BinOp("//", A.BinOp("-", var, A.Num(1, None), None), A.Num(2, None), None)
    return var if k == 1 else A.BinOp("*", A.Num(k, None), var, None)


def _half(a, b) -> bool:
    """Whether every a is (b - 1) // 2 for an odd b (padding that keeps the size)."""
    pairs = [(x, y) for x, y in zip(a, b) if x is not None and y is not None]
    return bool(pairs) and all(isinstance(x, int) and isinstance(y, int) and y % 2 and x == (y - 1) // 2
                               for x, y in pairs)


def _ordered(params):
    """Parameters a call must give first, those with defaults after (the def's order)."""
    return [p for p in params if p[0].default is None] + [p for p in params if p[0].default is not None]


def _names(bases):
    """Parameter names: a base used once as it is (`c`), several times numbered (`c1`, `c2`)."""
    count = Counter(bases)
    seen = Counter()
    out = []
    for b in bases:
        seen[b] += 1
        out.append(b if count[b] == 1 else f"{b}{seen[b]}")
    return out


def _unify(a, b):
    out = []
    for x, y in zip(a, b):
        if x is not None and y is not None and (x != y or type(x) is not type(y)):
            return None
        out.append(x if x is not None else y)
    return out


def _ratio(a, b):
    """k where every a is k times b (k a whole number of at least 2), else None."""
    k = None
    for x, y in zip(a, b):
        if x is None or y is None:
            continue
        if not (isinstance(x, int) and isinstance(y, int)) or isinstance(x, bool) or y <= 0 or x % y:
            return None
        if k is None:
            k = x // y
        elif k != x // y:
            return None
    return k if k is not None and k >= 2 else None
