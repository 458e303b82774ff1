"""A small matcher of node patterns over the importers' graph (the ONNX passes' patterns).

A pattern is `P(op, *inputs, name=None)`: `op` a name or a tuple of names; each input, by
position, is a `P` (the input is made by a node that matches it and that nothing outside the match
reads), a variable (a string: an activation tensor, the same tensor wherever the name recurs), a
`C("name")` (a constant there, captured), `Alt(P, P, ...)` (the first that matches), or None
(anything). `name` binds the matched node's tensor to the name (and the node to "@name").
Add and Mul match their two inputs in either order.

    >>> from cnndsl.importers.graph import Graph, Node
    >>> g = Graph(input_shape=(4,))
    >>> _ = g.add(Node("s", "Sigmoid", ["input"], meta={"act_pos": [0]}))
    >>> _ = g.add(Node("y", "Mul", ["s", "input"], meta={"act_pos": [0, 1]}))
    >>> g.output = "y"
    >>> m = Matcher(g).match(P("Mul", "x", P("Sigmoid", "x")), g.nodes[1])
    >>> m["x"], [n.name for n in m["nodes"]]
    ('input', ['s', 'y'])
"""
from __future__ import annotations

COMMUTATIVE = ("Add", "Mul")


class P:
    def __init__(self, op, *inputs, name=None):
        self.ops = (op,) if isinstance(op, str) else tuple(op)
        self.inputs, self.name = inputs, name


class C:
    def __init__(self, name):
        self.name = name


class Alt:
    def __init__(self, *options):
        self.options = options


class Matcher:
    """Matches patterns in one graph (its producers and readers computed once; call `refresh`
    after the graph changes)."""

    def __init__(self, graph):
        self.graph = graph
        self.refresh()

    def refresh(self):
        self.made = self.graph.by_name()
        self.readers = self.graph.consumers()

    def match(self, pattern: P, node) -> dict | None:
        """The bindings of `pattern` rooted at `node` (`nodes`: the matched nodes, in graph order),
        or None. Every matched node but the root must be read only by matched nodes."""
        for b in self._node(pattern, node, {"nodes": []}):
            inside = {n.name for n in b["nodes"]}
            if all(set(self.readers.get(n.name, ())) <= inside for n in b["nodes"] if n is not node) \
                    and self.graph.output not in inside - {node.name}:
                order = {id(n): k for k, n in enumerate(self.graph.nodes)}
                b["nodes"] = sorted(b["nodes"], key=lambda n: order[id(n)])
                return b
        return None

    def _node(self, p: P, node, b):
        if node.op not in p.ops or any(n is node for n in b["nodes"]):
            return
        b = dict(b, nodes=b["nodes"] + [node])
        if p.name:
            if p.name in b and b[p.name] != node.name:
                return
            b[p.name], b["@" + p.name] = node.name, node
        slots = list(enumerate(p.inputs))
        orders = [slots]
        if node.op in COMMUTATIVE and len(p.inputs) == 2:
            orders.append([(1, p.inputs[0]), (0, p.inputs[1])])
        for order in orders:
            yield from self._inputs(order, node, b)

    def _inputs(self, slots, node, b):
        if not slots:
            yield b
            return
        (pos, want), rest = slots[0], slots[1:]
        for b2 in self._input(want, node, pos, b):
            yield from self._inputs(rest, node, b2)

    def _input(self, want, node, pos, b):
        kind, value = slot(node, pos)
        if want is None:
            if kind is not None:
                yield b
        elif isinstance(want, C):
            if kind == "const":
                yield dict(b, **{want.name: value})
        elif isinstance(want, str):
            if kind == "act" and b.get(want, value) == value:
                yield dict(b, **{want: value})
        elif isinstance(want, Alt):
            for option in want.options:
                yield from self._input(option, node, pos, b)
        elif kind == "act" and value in self.made:
            yield from self._node(want, self.made[value], b)


def slot(node, pos):
    """("const", array), ("act", tensor) or (None, None): what a source node reads at input `pos`."""
    if pos in node.consts:
        return "const", node.consts[pos]
    act_pos = node.meta.get("act_pos", list(range(len(node.inputs))))
    if pos in act_pos:
        return "act", node.inputs[act_pos.index(pos)]
    return None, None
