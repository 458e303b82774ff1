"""Pass: blocks that recur, each made one `def` (generalise.make_block), found three ways in turn.

1. `nested`: joins inside other joins' branches (a squeeze-and-excitation gate inside an MBConv
   block), innermost first, with the joins of the same structure at the top: the outer blocks then
   hold calls of the inner ones (`gated(c2, c1)`), which generalise like layers.
2. `motifs`: the body of a residual sum `{ body + ID }` that also stands alone in the network (the
   first block of a MobileNet stage has no shortcut): one def for both, `{ block(144, 24) + ID }`
   and `block(96, 24, s=2)`.
3. `anchored`: each remaining join at the top of the network anchors a block with the layers that
   follow every anchor alike (ResNet's RELU after the sum) or precede every anchor alike
   (SqueezeNet's squeeze conv before the expand branches); a join of calls only stays as it is.

    >>> from cnndsl.importers.terms import Join, Layer, Seq, ID
    >>> gate = lambda c: Join("MUL", (Seq((Layer("GAP", ()), Layer("CONV", ((None, c), (None, 1))))), ID))
    >>> net = Seq((Join("ADD", (Seq((gate(8),)), ID)), gate(16)))
    >>> blocks = []
    >>> [type(t).__name__ for t in nested(net, blocks).items], blocks[0].name
    (['Join', 'Call'], 'gated')
"""
from __future__ import annotations

from ..kinds import KINDS
from .generalise import call, generalise, make_block
from .terms import Call, Join, Layer, Seq

RESERVED = frozenset(KINDS) | {"ID", "IDENTITY", "INPUT", "LET", "DEF", "DEFAULT", "INCLUDE", "IN"}


# ---- 1. nested joins, innermost first ----------------------------------------------------------------
def nested(term: Seq, blocks: list) -> Seq:
    for h in range(_height(term) + 1):
        inner, top = [], []
        _collect(term, 0, h, inner, top)
        if not inner:
            continue
        groups = _groups(inner, top)
        mapping = {}
        for members in groups:
            if len(members) < 2:
                continue
            made = make_block([m for m in members], _name(members[0], blocks))
            if made is None:
                continue
            block, values = made
            blocks.append(block)
            for m, v in zip(members, values):
                mapping[id(m)] = call(block, v, m)
        term = _replace(term, mapping)
    return term


def _height(t) -> int:
    """How deep joins nest inside `t`: -1 without any, 0 for a join of plain layers."""
    if isinstance(t, Seq):
        return max((_height(i) for i in t.items), default=-1)
    if isinstance(t, Join):
        return 1 + max(-1, *(_height(b) for b in t.branches))
    return -1


def _collect(t, depth, h, inner, top):
    """Joins of height h: those nested in a join's branch (`inner`), those at the top (`top`)."""
    if isinstance(t, Seq):
        for i in t.items:
            _collect(i, depth, h, inner, top)
    elif isinstance(t, Join):
        if _height(t) == h:
            (inner if depth else top).append(t)
        for b in t.branches:
            _collect(b, depth + 1, h, inner, top)


def _groups(seeds, others) -> list:
    """Terms grouped by structure (those that generalise together); only `seeds` start a group."""
    groups = []
    for t in seeds + others:
        for g in groups:
            if generalise([g[0], t]) is not None:
                g.append(t)
                break
        else:
            if any(t is s for s in seeds):
                groups.append([t])
    return groups


def _replace(t, mapping):
    if id(t) in mapping:
        return mapping[id(t)]
    if isinstance(t, Seq):
        return Seq(tuple(_replace(i, mapping) for i in t.items))
    if isinstance(t, Join):
        return Join(t.kind, tuple(_replace(b, mapping) for b in t.branches), t.node)
    return t


# ---- 2. residual bodies that also stand alone --------------------------------------------------------
def motifs(items: list, blocks: list) -> list:
    bodies = {}
    for t in items:
        if isinstance(t, Join) and t.kind == "ADD" and len(t.branches) == 2 and not t.branches[1].items \
                and len(t.branches[0].items) >= 2:
            bodies.setdefault(tuple(_sig(i) for i in t.branches[0].items), []).append(t)
    for sig, joins in bodies.items():
        spans = _spans(items, sig)
        insts = [j.branches[0] for j in joins] + [Seq(tuple(items[a:b])) for a, b in spans]
        if not spans or len(insts) < 2:
            continue
        made = make_block(insts, _name(None, blocks, "block"))
        if made is None:
            continue
        block, values = made
        blocks.append(block)
        calls = [call(block, v, inst) for v, inst in zip(values, insts)]
        wrapped = {id(j): Join(j.kind, (Seq((c,)), j.branches[1]), j.node) for j, c in zip(joins, calls)}
        starts = {a: (b, c) for (a, b), c in zip(spans, calls[len(joins):])}
        out, i = [], 0
        while i < len(items):
            if i in starts:
                out.append(starts[i][1])
                i = starts[i][0]
                continue
            out.append(wrapped.get(id(items[i]), items[i]))
            i += 1
        items = out
    return items


def _spans(items, sig):
    """Non-overlapping runs of `items` with the structure `sig`, left to right."""
    out, i, n = [], 0, len(sig)
    while i + n <= len(items):
        if tuple(_sig(t) for t in items[i:i + n]) == sig:
            out.append((i, i + n))
            i += n
        else:
            i += 1
    return out


# ---- 3. joins at the top, with the layers around them -----------------------------------------------
def anchored(items: list, blocks: list) -> list:
    anchors = [i for i, t in enumerate(items) if isinstance(t, Join) and not _trivial(t)]
    if len(anchors) < 2:
        return items
    gaps = [items[:anchors[0]]] + [items[a + 1:b] for a, b in zip(anchors, anchors[1:])] + [items[anchors[-1] + 1:]]
    tail = _common([[_sig(t) for t in g] for g in gaps[1:]])
    head = _common([[_sig(t) for t in reversed(g)] for g in gaps[:-1]])
    head, tail = (0, tail) if tail >= head else (head, 0)
    spans = [(a - head, a + 1 + tail) for a in anchors]
    insts = [Seq(tuple(items[lo:hi])) for lo, hi in spans]
    calls = {}
    for members in _groups(insts, []):
        if len(members) < 2:
            continue
        made = make_block(members, _name(items[anchors[_index(insts, members[0])]], blocks))
        if made is None:
            continue
        block, values = made
        blocks.append(block)
        for m, v in zip(members, values):
            lo, hi = spans[_index(insts, m)]
            calls[lo] = (hi, call(block, v, m))
    out, i = [], 0
    while i < len(items):
        if i in calls:
            out.append(calls[i][1])
            i = calls[i][0]
        else:
            out.append(items[i])
            i += 1
    return out


def _index(seq, item):
    return next(k for k, x in enumerate(seq) if x is item)


def _trivial(t) -> bool:
    """A join of calls and the identity only (`{ block(144, 24) + ID }`): already as short as it gets."""
    return all(not b.items or len(b.items) == 1 and isinstance(b.items[0], Call) for b in t.branches)


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
    if isinstance(t, Call):
        return ("call", t.name)
    return type(t).__name__


def _name(anchor, blocks, base=None) -> str:
    """A block's name: by its join (`residual` for a sum, `dense`, `mixed` for concatenations, `gated`
    for a product), unique among the blocks and no kind's name."""
    if base is None:
        t = anchor.items[_index_join(anchor)] if isinstance(anchor, Seq) else anchor
        ids = any(not b.items for b in t.branches)
        base = {"ADD": "residual", "MUL": "gated", "MEAN": "mean_block"}.get(t.kind, "dense" if ids else "mixed")
    taken = {b.name for b in blocks}
    name, k = base, 2
    while name in taken or name.upper() in RESERVED:
        name, k = f"{base}{k}", k + 1
    return name


def _index_join(seq):
    return next(k for k, t in enumerate(seq.items) if isinstance(t, Join))
