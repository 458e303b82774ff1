"""Pass: the graph of layers -> a term (terms.py): a sequence, with joins where paths fork and meet.

The language writes a network as a series-parallel expression: a fork is written as branches in
braces that end in one join (`{ ID + CONV - BN }`, `{ a | b }`). So from each tensor that several
layers read, the paths must meet first at one join node, the nearest node every path to the output
passes through (its immediate post-dominator), and each of the join's inputs is the end of one
branch, built the same way. A graph that is not of this form (a tensor read across two branches,
a join fed from outside its fork) is refused, naming the node.

    >>> import cnndsl
    >>> from cnndsl.importers.graph import Graph, Node
    >>> g = Graph(input_shape=(8, 8, 4))
    >>> for name, op, ins in (("c", "CONV", ["input"]), ("a", "ADD", ["c", "input"]), ("r", "RELU", ["a"])):
    ...     _ = g.add(Node(name, op, ins, attrs={"filters": 4, "kernel": 3, "p": 1} if op == "CONV" else {}))
    >>> g.output = "r"
    >>> from cnndsl.importers.layers import finish
    >>> finish(g)
    >>> t = build(g)
    >>> [type(i).__name__ for i in t.items], [len(b.items) for b in t.items[0].branches]
    (['Join', 'Layer'], [1, 0])
"""
from __future__ import annotations

from ..errors import CnnError
from ..kinds import KINDS
from .layers import call_args
from .terms import Join, Layer, Seq

ORDERED = ("CONCAT",)  # joins whose branches keep their order; the others put the longest first


def build(graph) -> Seq:
    """The term of the whole graph, from its input to its output."""
    from .terms import expanded
    term = _Builder(graph).seq("input", graph.output)
    placed = [p for p in expanded(term) if p]  # "": a join of the spec that the source has none of
    if sorted(placed) != sorted(n.name for n in graph.nodes):
        lost = [n for n in graph.nodes if n.name not in set(placed)]
        raise CnnError(f"{graph.source}: {lost[0].describe() if lost else 'a node'} has no place in a series of "
                       f"branches and joins: the language cannot write this graph")
    return term


class _Builder:
    def __init__(self, graph):
        self.graph = graph
        self.nodes = graph.by_name()
        self.index = {"input": 0, **{n.name: k + 1 for k, n in enumerate(graph.nodes)}}
        self.names = ["input"] + [n.name for n in graph.nodes]
        self.readers = graph.consumers()
        self.desc = {}
        for name in reversed(self.names):  # the nodes each tensor reaches, as a bitset of indices
            bits = 0
            for r in self.readers.get(name, ()):
                bits |= (1 << self.index[r]) | self.desc[r]
            self.desc[name] = bits
        self.postdoms = {}

    def on_path(self, t, end) -> bool:
        return t == end or bool(self.desc[t] >> self.index[end] & 1)

    def postdom(self, end) -> dict:
        """{tensor: bitset of the nodes every path from it to `end` passes through (itself included)}."""
        pd = self.postdoms.get(end)
        if pd is None:
            pd = {end: 1 << self.index[end]}
            for name in reversed(self.names[:self.index[end]]):
                rs = [r for r in self.readers.get(name, ()) if self.on_path(r, end)]
                if rs:
                    acc = pd[rs[0]]
                    for r in rs[1:]:
                        acc &= pd[r]
                    pd[name] = acc | (1 << self.index[name])
            self.postdoms[end] = pd
        return pd

    def seq(self, src, end) -> Seq:
        items, cur = [], src
        while cur != end:
            rs = [r for r in self.readers.get(cur, ()) if self.on_path(r, end)]
            if len(rs) == 1 and not KINDS[self.nodes[rs[0]].op].join:
                n = self.nodes[rs[0]]
                items.append(layer(n))
                cur = n.name
                continue
            join = self.meet(cur, end)
            for t in join.inputs:
                if not self.on_path(cur, t):
                    self.refuse(join, t, cur)
            items.append(Join(join.op, self.branches(cur, list(join.inputs), join.op), node=join.name))
            cur = join.name
        return Seq(tuple(items))

    def branches(self, cur, targets, kind) -> tuple:
        """The branches from `cur` to the join's inputs `targets`. Inputs whose paths share a first
        layer are one branch that forks again, into a join of the same kind: exporters write
        `cat([a, cat([b, c])])` as one Concat of a, b and c (Inception-v3's E blocks)."""
        groups = []
        for t in targets:
            first = self.first_step(cur, t)
            if groups and first is not None and groups[-1][0] == first:
                groups[-1][1].append(t)
            else:
                groups.append((first, [t]))
        out = [self.seq(cur, ts[0]) if len(ts) == 1 else self.shared(cur, ts, kind) for _, ts in groups]
        if kind not in ORDERED:  # the longest branch first, the identity last: aligned across blocks
            out = sorted(out, key=lambda b: -len(b.items))
        return tuple(out)

    def first_step(self, cur, t):
        if t == cur:
            return None
        rs = [r for r in self.readers.get(cur, ()) if self.on_path(r, t)]
        return rs[0] if len(set(rs)) == 1 else None

    def shared(self, cur, targets, kind) -> Seq:
        """The layers the paths to every target pass through, then the branches to each, joined."""
        items = []
        while True:
            rs = {r for r in self.readers.get(cur, ()) if any(self.on_path(r, t) for t in targets)}
            if len(rs) != 1 or cur in targets:
                break
            (r,) = rs
            n = self.nodes[r]
            if KINDS[n.op].join:
                break
            items.append(layer(n))
            cur = r
        items.append(Join(kind, self.branches(cur, targets, kind)))  # a join of the spec, none of the source
        return Seq(tuple(items))

    def meet(self, cur, end):
        """The join where the paths from `cur` to `end` first meet."""
        rest = self.postdom(end)[cur] & ~(1 << self.index[cur])
        at = self.names[(rest & -rest).bit_length() - 1]
        n = self.nodes[at]
        if not KINDS[n.op].join:
            where = self.nodes.get(cur)
            raise CnnError(f"{self.graph.source}: the paths from {where.describe() if where else 'the input'} meet at "
                           f"{n.describe()}, which is not a join: the language cannot write this graph")
        return n

    def refuse(self, join, t, cur):
        src = self.nodes.get(t)
        raise CnnError(f"{self.graph.source}: {join.describe()} joins "
                       f"{src.describe() if src else 'the input'}, which does not come from the branches that fork at "
                       f"{self.nodes[cur].describe() if cur in self.nodes else 'the input'}: the language writes "
                       f"a join only of branches that fork from one tensor")


def layer(n) -> Layer:
    return Layer(n.op, tuple(call_args(n.op, n.attrs)), node=n.name, label=n.meta.get("label"))
