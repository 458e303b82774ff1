"""Pass: a term folded into what a person would write: blocks that recur become one `def` with
parameters (blocks.py: nested joins, residual bodies that also stand alone, joins at the top with
the layers around them; generalise.py makes each def), then consecutive equal terms a repeat `*N`
(VGG's `(CONV(256, 3, p=1) - RELU)*2`, ResNet-50's `residual(64)*2`).

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

from ..kinds import KINDS
from . import blocks as B
from .groups import group
from .terms import Call, Group, Join, Layer, Repeat, Seq


def fold(term: Seq, graph=None):
    """(the folded term, its blocks (generalise.Block), in the order they are defined); with the
    `graph`, runs that one container of the source holds become labelled groups (groups.py)."""
    blocks = []
    term = flat_joins(term)
    term = B.nested(term, blocks)
    items = B.motifs(list(term.items), blocks)
    items = B.anchored(items, blocks)
    if graph is not None:
        items = group(items, graph)
    return Seq(tuple(progressions(repeats(items)))), blocks


ASSOCIATIVE = ("ADD", "MUL", "CONCAT")


def flat_joins(t):
    """A join whose branch is only a join of the same associative kind takes that join's branches
    (an exporter's binary Adds of five tensors, `{ a + { b + { c + ... } } }`, are one sum, whose equal
    branches emit.py then writes as copies); the inner joins' nodes carry no weights."""
    if isinstance(t, Seq):
        return Seq(tuple(flat_joins(i) for i in t.items))
    if isinstance(t, Group):
        return Group(t.label, tuple(flat_joins(i) for i in t.items))
    if not isinstance(t, Join):
        return t
    out = []
    for b in (flat_joins(b) for b in t.branches):
        inner = b.items[0] if isinstance(b, Seq) and len(b.items) == 1 else None
        if isinstance(inner, Join) and inner.kind == t.kind and t.kind in ASSOCIATIVE:
            out += inner.branches
        else:
            out.append(b)
    return Join(t.kind, tuple(out), t.node)


# ---- repeats -------------------------------------------------------------------------------------
def repeats(items: list) -> list:
    """Runs of equal terms (of any period) as repeats, a run's body starting at a layer with weights
    where it can (VGG's `[(CONV - RELU)*2 - MAXPOOL]*2`, not `(MAXPOOL - CONV - ...)*2`); bodies, groups
    and joins' branches folded the same way."""
    items = [_inner(t) for t in items]
    ids = _interned(items)
    out, i = [], 0
    while i < len(items):
        p, k = _run(ids, i)
        if k > 1:
            shift = _aligned(items, ids, i, p, k)
            if shift:
                out += items[i:i + shift]
                i += shift
                continue
        if k == 1:
            out.append(items[i])
            i += 1
            continue
        runs = [items[i + j * p:i + (j + 1) * p] for j in range(k)]
        instances = tuple(r[0] if p == 1 else Seq(tuple(r)) for r in runs)
        body = _same_labels(instances[0], instances)
        if p > 1:
            body = Seq(tuple(repeats(list(body.items))))
        out.append(Repeat(body, k, instances))
        i += p * k
    return out


def _run(ids, i):
    """(period, count) of the longest run of a repeated period starting at i."""
    best = (1, 1)
    for p in range(1, (len(ids) - i) // 2 + 1):
        k = _count(ids, i, p)
        if k > 1 and p * k > best[0] * best[1]:
            best = (p, k)
    return best


def _count(ids, i, p):
    k = 1
    while ids[i + k * p:i + (k + 1) * p] == ids[i:i + p]:
        k += 1
    return k


def _aligned(items, ids, i, p, k) -> int:
    """How far to shift a run's start so that its body starts at a layer with weights (or a block),
    where the shifted run repeats as often; 0 where it starts at one already, or cannot."""
    if _opens(items[i]):
        return 0
    for shift in range(1, p):
        if i + shift + p * k <= len(ids) and _opens(items[i + shift]) and _count(ids, i + shift, p) >= k:
            return shift
    return 0


def _opens(t) -> bool:
    return not isinstance(t, Layer) or KINDS[t.kind].weight_layer


# ---- progressions ------------------------------------------------------------------------------
def progressions(items: list) -> list:
    """Runs of calls of one block whose values step evenly (EfficientNet's stochastic depth, rising
    by 1/130 a block) as one indexed repeat: `residual(576, 24, (9 + i) / 130, k=3)*4 @i`."""
    out, i = [], 0
    while i < len(items):
        t = items[i]
        if isinstance(t, Group):
            out.append(Group(t.label, tuple(progressions(list(t.items)))))
            i += 1
            continue
        j = i + 1
        while j < len(items) and _stepping(items[i:j + 1]) is not None:
            j += 1
        if j - i < 2:
            out.append(t)
            i += 1
            continue
        run = items[i:j]
        values = tuple((name, _indexed([c.values[k][1] for c in run])) for k, (name, _) in enumerate(t.values))
        out.append(Repeat(Call(t.name, values, instance=t.instance, block=t.block, full=t.full), len(run),
                          tuple(run), index="i"))
        i = j
    return out


def _stepping(run):
    """The run's values as (start, step) Fractions per position, or None where they do not step evenly."""
    first = run[0]
    if not all(isinstance(c, Call) and c.name == first.name and [n for n, _ in c.values] == [n for n, _ in first.values]
               for c in run):
        return None
    steps, moving = [], False
    for k in range(len(first.values)):
        column = [c.values[k][1] for c in run]
        if all(v == column[0] and type(v) is type(column[0]) for v in column):
            steps.append(None)
            continue
        exact = [_fraction(v) for v in column]
        if None in exact or len({b - a for a, b in zip(exact, exact[1:])}) != 1:
            return None
        steps.append((exact[0], exact[1] - exact[0]))
        moving = True
    return steps if moving else None


def _fraction(v):
    """A number as the fraction it is (a float within 1e-12 of one with a denominator up to 10,000)."""
    from fractions import Fraction
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    f = Fraction(v).limit_denominator(10_000)
    return f if abs(float(f) - v) <= 1e-12 * max(1.0, abs(v)) else None


def _indexed(column):
    """A column of values as the expression of i that gives them: `(9 + i) / 130`, `64 + 32 * i`."""
    from ..lang import astnodes as A
    exact = [_fraction(v) for v in column]
    if all(v == column[0] for v in column) or None in exact:
        return column[0]
    start, step = exact[0], exact[1] - exact[0]
    den = (start.denominator * step.denominator) // _gcd(start.denominator, step.denominator)
    a, b = int(start * den), int(step * den)
    i = A.Var("i", None)
    term = i if abs(b) == 1 else A.BinOp("*", A.Num(abs(b), None), i, None)
    if a == 0:
        num = term if b > 0 else A.Neg(term, None)
    else:
        start = A.Num(a, None) if a > 0 else A.Neg(A.Num(-a, None), None)
        num = A.BinOp("+" if b > 0 else "-", start, term, None)
    return num if den == 1 else A.BinOp("/", num, A.Num(den, None), None)


def _gcd(a, b):
    import math
    return math.gcd(a, b)


def _inner(t):
    if isinstance(t, Join):
        return Join(t.kind, tuple(Seq(tuple(repeats(list(b.items)))) for b in t.branches), t.node)
    if isinstance(t, Group):
        return Group(t.label, tuple(repeats(list(t.items))))
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


