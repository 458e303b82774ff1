"""What a diagram shows of a graph: repeats folded to their first iteration, and the main path.

Both diagram styles draw a `Fold` rather than the raw IR. Folding keeps the nodes
whose every enclosing repeat frame is at iteration 0 and maps every other node
to its counterpart in iteration 0 (same position inside the iteration), so the
edges that enter or leave a repeat still connect; edges between iterations
(iteration k's output feeding iteration k+1) disappear into the `x N` badge.

    >>> import cnndsl
    >>> g = cnndsl.loads("input 8x8x3\\n(CONV(4, 3, p=1) - RELU)*3 - GAP").graph
    >>> f = Fold(g)
    >>> [n.name for n in f.nodes], f.edges
    (['conv1', 'relu1', 'gap1'], [('input', 'conv1'), ('conv1', 'relu1'), ('relu1', 'gap1')])
    >>> [(r.count, r.members) for r in f.repeats.values()]
    [(3, ['conv1', 'relu1'])]
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
        iterations: dict[tuple, list[Node]] = {}
        for n in graph.nodes:
            for d, f in enumerate(n.frames):
                if f.kind == "repeat" and f.count > 1:
                    iterations.setdefault(repeat_key(n, d) + (f.index,), []).append(n)
        for n in graph.nodes:
            self.rep[n.name] = n.name if expand else self._representative(n, iterations)
        self.nodes = [n for n in graph.nodes if self.rep[n.name] == n.name]
        # node -> its counterpart in the last iteration (a dense block's volume grows each time)
        self.last: dict[str, Node] = {self.rep[n.name]: n for n in graph.nodes}
        self.edges = self._edges()
        if not expand:
            for n in self.nodes:
                for d, f in enumerate(n.frames):
                    if f.kind == "repeat" and f.count > 1:
                        key = repeat_key(n, d)
                        self.repeats.setdefault(key, Repeat(key, f.count, d)).members.append(n.name)

    def _representative(self, node: Node, iterations) -> str:
        """The node's counterpart in iteration 0 of each repeat around it (outermost first)."""
        seen = 0
        while True:
            for d, f in enumerate(node.frames):
                if f.kind == "repeat" and f.count > 1 and f.index > 0:
                    key = repeat_key(node, d)
                    mine, first = iterations[key + (f.index,)], iterations.get(key + (0,), [])
                    if len(mine) != len(first):   # iterations differ in shape: draw this one as it is
                        return node.name
                    node = first[next(i for i, m in enumerate(mine) if m is node)]
                    break
            else:
                return node.name
            seen += 1
            if seen > 64:   # nesting deeper than any real net: stop rather than loop
                return node.name

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
