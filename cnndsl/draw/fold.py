"""What a diagram shows of a graph: repeats folded to their first iteration, and the main path.

Both diagram styles draw a `Fold` rather than the raw IR. Folding keeps the nodes
whose every enclosing repeat frame is at iteration 0 and maps every other node
to its counterpart in iteration 0 (same position inside the iteration), so the
edges that enter or leave a repeat still connect; edges between iterations
(iteration k's output feeding iteration k+1) disappear into the `x N` badge.
Iterations are matched on the layers the spec wrote: an implicit FLATTEN, made
only where the first iteration meets a volume, has no counterpart and belongs to
no repeat. A repeat whose iterations still differ is drawn expanded, unbadged.

    >>> import cnndsl
    >>> g = cnndsl.loads("input 8x8x3\\n(CONV(4, 3, p=1) - RELU)*3 - GAP").graph
    >>> f = Fold(g)
    >>> [n.name for n in f.nodes], f.edges
    (['conv1', 'relu1', 'gap1'], [('input', 'conv1'), ('conv1', 'relu1'), ('relu1', 'gap1')])
    >>> [(r.count, r.members) for r in f.repeats.values()]
    [(3, ['conv1', 'relu1'])]
    >>> f = Fold(cnndsl.loads("input 8x8x3\\nCONV(4, 3) - (FC(8) - RELU)*3").graph)
    >>> [n.name for n in f.nodes], [(r.count, r.members) for r in f.repeats.values()]
    (['conv1', 'flatten1', 'fc1', 'relu1'], [(3, ['fc1', 'relu1'])])
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..ir import Graph, Node


@dataclass
class Repeat:
    """One folded repeat: its `count` and the names of the iteration-0 nodes drawn for it."""
    key: tuple                    # (outer frames, repeat name): one instance of a repeat
    count: int
    depth: int                    # index of the repeat frame in its nodes' `frames`
    members: list = field(default_factory=list)


def repeat_key(node: Node, depth: int) -> tuple:
    """Identifies one repeat instance (the same repeat inside another iteration is another instance)."""
    return (node.frames[:depth], node.frames[depth].name)


class Fold:
    """The nodes and edges a diagram draws; `expand=True` keeps every iteration."""

    def __init__(self, graph: Graph, expand: bool = False):
        self.graph = graph
        self.expand = expand
        self.repeats: dict[tuple, Repeat] = {}
        self.rep: dict[str, str] = {"input": "input"}   # node -> the node drawn for it
        # (repeat instance, iteration) -> its nodes in order, the implicit ones left out
        iterations: dict[tuple, list[Node]] = {}
        for n in graph.nodes:
            if n.implicit:
                continue
            for d, f in enumerate(n.frames):
                if f.kind == "repeat" and f.count > 1:
                    iterations.setdefault(repeat_key(n, d) + (f.index,), []).append(n)
        self.folded = set() if expand else _foldable(iterations)
        for n in graph.nodes:
            self.rep[n.name] = n.name if expand else self._representative(n, iterations)
        self.nodes = [n for n in graph.nodes if self.rep[n.name] == n.name]
        # node -> its counterpart in the last iteration (a dense block's volume grows each time)
        self.last: dict[str, Node] = {self.rep[n.name]: n for n in graph.nodes}
        self.edges = self._edges()
        for n in self.nodes:
            if n.implicit:
                continue
            for d, f in enumerate(n.frames):
                key = repeat_key(n, d) if f.kind == "repeat" else None
                if key in self.folded:
                    self.repeats.setdefault(key, Repeat(key, f.count, d)).members.append(n.name)

    def _representative(self, node: Node, iterations) -> str:
        """The node's counterpart in iteration 0 of each folded repeat around it (outermost first)."""
        if node.implicit:
            return node.name
        for _ in range(64):   # nesting deeper than any real net: stop rather than loop
            for d, f in enumerate(node.frames):
                if f.kind == "repeat" and f.index > 0 and repeat_key(node, d) in self.folded:
                    key = repeat_key(node, d)
                    mine, first = iterations[key + (f.index,)], iterations[key + (0,)]
                    node = first[next(i for i, m in enumerate(mine) if m is node)]
                    break
            else:
                break
        return node.name

    def is_folded(self, node: Node, depth: int) -> bool:
        """Is the repeat frame at `depth` of `node`'s frames drawn folded (with an `x N` badge)?"""
        return repeat_key(node, depth) in self.repeats

    def _edges(self) -> list[tuple[str, str]]:
        out, seen = [], set()
        for n in self.nodes:
            for i in n.inputs:
                e = (self.rep[i], n.name)
                if e not in seen and e[0] != e[1]:
                    seen.add(e)
                    out.append(e)
        return out

    def repeat_of(self, node: Node):
        """The folded repeats around `node`, outermost first."""
        return [self.repeats[repeat_key(node, d)] for d, f in enumerate(node.frames)
                if f.kind == "repeat" and repeat_key(node, d) in self.repeats]


def _foldable(iterations: dict) -> set:
    """The repeat instances whose every iteration matches iteration 0 layer for layer (same ops)."""
    ops = {k: [n.op for n in nodes] for k, nodes in iterations.items()}
    out, bad = set(), set()
    for k, seq in ops.items():
        key, index = k[:-1], k[-1]
        if index and seq != ops.get(key + (0,)):
            bad.add(key)
        out.add(key)
    return out - bad
