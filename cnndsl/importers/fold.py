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
from .terms import Group, Join, Layer, Repeat, Seq


def fold(term: Seq, graph=None):
    """(the folded term, its blocks (generalise.Block), in the order they are defined); with the
    `graph`, runs that one container of the source holds become labelled groups (groups.py)."""
    blocks = []
    term = B.nested(term, blocks)
    items = B.motifs(list(term.items), blocks)
    items = B.anchored(items, blocks)
    if graph is not None:
        items = group(items, graph)
    return Seq(tuple(repeats(items))), blocks


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


