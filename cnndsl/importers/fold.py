"""Pass: a term folded into what a person would write: blocks that recur become one `def` with
parameters, consecutive equal terms a repeat `*N`.

Blocks. Each join at the top of the network (a residual sum, an Inception or dense concatenation)
anchors a block; the layers that follow every anchor alike (ResNet's RELU after the sum) or precede
every anchor alike (SqueezeNet's squeeze conv before the expand branches) belong to it. Blocks of one
structure are generalised together (anti-unification): an argument equal in all of them stays
written out, one that differs becomes a parameter (two that always agree share one; one that is
always k times another is written `k * c`), and a branch that some blocks have and others leave as
the identity becomes an optional branch switched by a parameter (ResNet's projection shortcut:
`downsample: (CONV(4 * c, 1, s=s, bias=false) - BN)?`). A parameter takes as default the value
most blocks have; calls write the others.

Repeats. A run of equal terms (a period of one or more) becomes one repeat: VGG's
`(CONV(256, 3, p=1) - RELU)*2`, ResNet-50's `bottleneck(64)*2`.

    >>> from cnndsl.importers.terms import Join, Layer, Seq, ID
    >>> conv = lambda c, s=1: Layer("CONV", ((None, c), (None, 3), ("s", s), ("p", 1)) if s > 1 else ((None, c), (None, 3), ("p", 1)))
    >>> block = lambda c, s=1, proj=False: [Join("ADD", (Seq((conv(c, s), conv(c))), Seq((conv(c, s),)) if proj else ID)),
    ...                                       Layer("RELU", ())]
    >>> net = Seq(tuple(block(8) + block(8) + block(16, 2, True) + block(16)))
    >>> term, blocks = fold(net)
    >>> from cnndsl.importers.emit import program, text
    >>> print(text(program((8, 8, 8), term, blocks)), end="")
    input 8x8x8
    <BLANKLINE>
    def residual(c, s=1, downsample=off) = {
        CONV(c, 3, s=s, p=1) - CONV(c, 3, p=1)
      + downsample: CONV(c, 3, s=s, p=1)?
    } - RELU
    <BLANKLINE>
    residual(8)*2 - residual(16, s=2, downsample=on) - residual(16)
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from ..kinds import KINDS
from ..lang import astnodes as A
from .layers import full_args
from .terms import Call, Join, Layer, Repeat, Seq

NAMES = {"filters": "c", "units": "n", "s": "s", "kernel": "k", "p": "p", "groups": "g", "d": "d"}
SWITCH = {True: "on", False: "off"}
RESERVED = frozenset(KINDS) | {"ID", "IDENTITY", "input", "let", "def", "default", "include", "in"}


@dataclass(frozen=True)
class Param:
    name: str
    default: object = None    # a Python value (a switch: "on"/"off"), or None: the call gives it


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


def fold(term: Seq):
    """(the folded term, its blocks)."""
    blocks = []
    items = _blocks(list(term.items), blocks)
    return Seq(tuple(repeats(items))), blocks


# ---- repeats -------------------------------------------------------------------------------------
def repeats(items: list) -> list:
    """Runs of equal terms (of any period) as repeats; joins' branches folded the same way."""
    items = [_inner(t) for t in items]
    ids = _interned(items)
    out, i = [], 0
    while i < len(items):
        best = (1, 1)  # (period, count)
        for p in range(1, (len(items) - i) // 2 + 1):
            k = 1
            while ids[i + k * p:i + (k + 1) * p] == ids[i:i + p]:
                k += 1
            if k > 1 and p * k > best[0] * best[1]:
                best = (p, k)
        p, k = best
        if k == 1:
            out.append(items[i])
            i += 1
            continue
        runs = [items[i + j * p:i + (j + 1) * p] for j in range(k)]
        body = runs[0][0] if p == 1 else Seq(tuple(runs[0]))
        instances = tuple(r[0] if p == 1 else Seq(tuple(r)) for r in runs)
        out.append(Repeat(_same_labels(body, instances), k, instances))
        i += p * k
    return out


def _inner(t):
    if isinstance(t, Join):
        return Join(t.kind, tuple(Seq(tuple(repeats(list(b.items)))) for b in t.branches), t.node)
    return t


def _interned(items) -> list:
    table = {}
    return [table.setdefault(t, len(table)) for t in items]


def _same_labels(body, instances):
    """The repeated body keeps a layer's label only where every repetition has that label."""
    if isinstance(body, Layer):
        same = all(isinstance(t, Layer) and t.label == body.label for t in instances)
        return body if same else Layer(body.kind, body.args, body.node)
    if isinstance(body, Seq):
        return Seq(tuple(_same_labels(b, [t.items[k] for t in instances]) for k, b in enumerate(body.items)))
    if isinstance(body, Join):
        return Join(body.kind, tuple(_same_labels(b, [t.branches[k] for t in instances])
                                     for k, b in enumerate(body.branches)), body.node)
    return body


# ---- blocks --------------------------------------------------------------------------------------
def _blocks(items: list, blocks: list) -> list:
    anchors = [i for i, t in enumerate(items) if isinstance(t, Join)]
    if len(anchors) < 2:
        return items
    gaps = [items[:anchors[0]]] + [items[a + 1:b] for a, b in zip(anchors, anchors[1:])] + [items[anchors[-1] + 1:]]
    tail = _common([[_sig(t) for t in g] for g in gaps[1:]])
    head = _common([[_sig(t) for t in reversed(g)] for g in gaps[:-1]])
    head, tail = (0, tail) if tail >= head else (head, 0)
    spans = [(a - head, a + 1 + tail) for a in anchors]
    groups = []  # [(generalisation, [span index])]
    for k, (lo, hi) in enumerate(spans):
        inst = Seq(tuple(items[lo:hi]))
        for g in groups:
            if _generalise([g[1][0], inst]) is not None:
                g[1].append(inst)
                g[2].append(k)
                break
        else:
            groups.append([None, [inst], [k]])
    calls = {}
    for g in groups:
        if len(g[1]) < 2:
            continue
        block, values = _block(g[1], _name(items[anchors[g[2][0]]], blocks))
        blocks.append(block)
        for k, v, inst in zip(g[2], values, g[1]):
            calls[spans[k][0]] = (spans[k][1], Call(block.name, v, instance=inst))
    out, i = [], 0
    while i < len(items):
        if i in calls:
            end, call = calls[i]
            out.append(call)
            i = end
        else:
            out.append(items[i])
            i += 1
    return out


def _common(seqs) -> int:
    """The length of the longest common prefix of the sequences."""
    n = min((len(s) for s in seqs), default=0)
    k = 0
    while k < n and all(s[k] == seqs[0][k] for s in seqs):
        k += 1
    return k


def _sig(t):
    """A term's structure without its arguments: what blocks alike share."""
    if isinstance(t, Layer):
        return t.kind
    if isinstance(t, Seq):
        return tuple(_sig(i) for i in t.items)
    if isinstance(t, Join):
        return (t.kind,) + tuple(_sig(b) for b in t.branches)
    return type(t).__name__


def _name(anchor: Join, blocks) -> str:
    ids = any(not b.items for b in anchor.branches)
    base = {"ADD": "residual", "MUL": "gated", "MEAN": "mean_block"}.get(anchor.kind, "dense" if ids else "mixed")
    taken = {b.name for b in blocks}
    name, k = base, 2
    while name in taken or name.upper() in RESERVED:
        name, k = f"{base}{k}", k + 1
    return name


# ---- generalisation (anti-unification) -----------------------------------------------------------
class _Hole:
    """An argument (or a switch) that differs between instances: its values, None where absent."""

    def __init__(self, arg, values, switch=False):
        self.arg, self.values, self.switch = arg, tuple(values), switch
        self.soft = not switch and len({v for v in values if v is not None}) == 1  # one value, some absent
        self.expr = None


def _generalise(insts, holes=None):
    """The template of the instances (None entries: absent), or None where they differ in structure."""
    holes = [] if holes is None else holes
    present = [t for t in insts if t is not None]
    first = present[0]
    if all(isinstance(t, Layer) and t.kind == first.kind for t in present):
        full = [full_args(t.kind, t.args) if t is not None else None for t in insts]
        args = {}
        for a in KINDS[first.kind].args:
            vals = [f[a.name] if f is not None else None for f in full]
            known = {v for v in vals if v is not None}
            if len(known) == 1 and None not in vals:
                args[a.name] = known.pop()
            else:  # inside an optional a value seen once still follows a parameter where one fits

                args[a.name] = _Hole(a.name, vals)
                holes.append(args[a.name])
        labels = {t.label for t in present}
        return _TLayer(first.kind, args, labels.pop() if len(labels) == 1 else None, full)
    if all(isinstance(t, Seq) and len(t.items) == len(first.items) for t in present):
        parts = [_generalise([t.items[k] if t is not None else None for t in insts], holes)
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
                part = _generalise(column, holes)
                if part is None:
                    return None
                branches.append(part)
            else:  # the identity in some, a branch in others: an optional branch
                switch = _Hole("switch", [None if b is None else bool(b.items) for b in column], switch=True)
                body = _generalise([b if b is not None and b.items else None for b in column], holes)
                if body is None:
                    return None
                holes.append(switch)
                branches.append(Opt(body, switch))
        return Join(first.kind, tuple(branches))
    return None


class _TLayer:
    """A layer of a block's body: literal arguments and holes."""

    def __init__(self, kind, args, label, full):
        self.kind, self.args, self.label, self.full = kind, args, label, full

    def written(self):
        """The layer's arguments as written in the def: required ones by position, others by name
        where some instance differs from the kind's default."""
        k = KINDS[self.kind]
        out = []
        for a in k.args:
            v = self.args[a.name]
            if isinstance(v, _Hole) and v.soft and not isinstance(v.expr, (A.Var, A.BinOp)):
                v = v.expr  # a value no parameter follows: written as any literal is
            if isinstance(v, _Hole):
                out.append((None if a.default is None else a.name, v.expr))
            elif a.default is None:
                out.append((None, v))
            elif any(f is not None and _default(self.kind, f, a.name) != v for f in self.full):
                out.append((a.name, v))
        return tuple(out)

    def expr(self, expr, value):
        call = A.Call(self.kind, tuple(A.Arg(n, value(v), None) for n, v in self.written()), False, None)
        call = A.Call(call.name, call.args, not call.args, None)
        return A.Label(self.label, call, None) if self.label else call


def _default(kind, full, arg):
    """The kind's default for `arg` given the layer's required arguments (a pool's stride is its window)."""
    k = KINDS[kind]
    required = {a.name: full[a.name] for a in k.args if a.default is None}
    return full_args(kind, tuple((name, v) for name, v in required.items()))[arg]


def _block(insts, name):
    """A Block for the instances, and each instance's call values."""
    holes = []
    body = _generalise(insts, holes)
    params, exprs = _params(holes, len(insts))
    for h, e in zip(holes, exprs):
        h.expr = e
    block = Block(name, [p for p, _ in params], body, insts)
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
        else:
            if h.soft:  # no parameter follows it: the value itself
                refs.append((next(v for v in h.values if v is not None), None))
                continue
            params.append({"base": "downsample" if h.switch else NAMES.get(h.arg, h.arg), "values": list(h.values),
                           "arg": h.arg})
            refs.append((len(params) - 1, 1))
    names = _names([p["base"] for p in params])
    exprs = [i if k is None else A.Var(names[i], None) if k == 1
             else A.BinOp("*", A.Num(k, None), A.Var(names[i], None), None) for i, k in refs]
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
