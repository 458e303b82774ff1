"""The importers' IR: a foreign model as a list of plain nodes, each with one output tensor.

A reader (onnx.py, fx.py, prototxt.py) makes one of these from its format, with the source's own
operations (`op` is `Conv`, `Relu`, `call_function:add`, `Convolution`); passes rewrite groups of
nodes into layers of the language (`op` a key of cnndsl.kinds.KINDS, `attrs` its arguments by the
kind's names, `tensors` its parameters by the kind's tensor names); later passes only read.

    >>> g = Graph(input_shape=(8, 8, 3))
    >>> n = g.add(Node("y", "Relu", ["input"]))
    >>> g.output = "y"
    >>> [m.name for m in g.nodes], g.consumers()["input"]
    (['y'], ['y'])

Shapes are the language's: (H, W, C) for a volume, (N,) for a vector; the batch is never part
of one. Constant inputs of a source operation (weights, a Clip's bounds, a Reshape's target) are
numpy arrays in `consts`, by input position.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import CnnError
from ..kinds import KINDS


@dataclass(eq=False)  # a node is itself: compared by identity (graphs test membership often)
class Node:
    name: str                     # its output tensor, unique in the graph
    op: str                       # the source's operation, or a kind's name once lifted
    inputs: list                  # activation tensors it reads (node names, or "input")
    attrs: dict = field(default_factory=dict)    # source attributes; a kind's arguments once lifted
    consts: dict = field(default_factory=dict)   # {input position: numpy array} of a source operation
    tensors: dict = field(default_factory=dict)  # a layer's parameters, {kind tensor name: numpy array}
    source: str = ""              # the source's own name for it (ONNX node name, fx module path, Caffe layer)
    where: str = ""               # where it is in the source, for messages: "node 12 of 65"
    shape: tuple | None = None    # its output's shape, (H, W, C) or (N,)
    meta: dict = field(default_factory=dict)     # what passes learn: its label, a note, the nodes it replaced

    @property
    def lifted(self) -> bool:
        """A layer of the language (layers.lift made it one); ONNX's op `LRN` is not, until lifted."""
        return bool(self.meta.get("lifted")) and self.op in KINDS

    def describe(self) -> str:
        """`Resize \\`/up/Resize\\` (node 17 of 40)`: how messages name a node."""
        name = f" `{self.source}`" if self.source and self.source != self.op else ""
        return f"{self.op}{name}" + (f" ({self.where})" if self.where else "")


@dataclass
class Graph:
    input_shape: tuple
    nodes: list = field(default_factory=list)
    output: str = "input"
    source: str = ""              # the file or object it was read from
    format: str = ""              # "onnx", "fx", "prototxt"
    notes: list = field(default_factory=list)  # what a reader of the imported spec should know
    meta: dict = field(default_factory=dict)   # what a reader knows of the whole source (its opset)

    def add(self, node: Node) -> Node:
        self.nodes.append(node)
        return node

    def by_name(self) -> dict:
        return {n.name: n for n in self.nodes}

    def consumers(self) -> dict:
        """{tensor: [names of the nodes that read it, once per input slot]}."""
        out = {"input": []}
        for n in self.nodes:
            out.setdefault(n.name, [])
        for n in self.nodes:
            for i in n.inputs:
                out.setdefault(i, []).append(n.name)
        return out

    def shape_of(self, tensor: str, nodes: dict | None = None) -> tuple:
        if tensor == "input":
            return self.input_shape
        return (nodes or self.by_name())[tensor].shape

    def replace(self, old: list, new: Node) -> None:
        """Put `new` where the last of `old` was: readers of that node's output read `new`'s
        (new takes its name); the other nodes of `old` go (none of them is read from outside)."""
        last = old[-1]
        gone = {id(n) for n in old}
        new.name = last.name
        if not new.source:
            new.source = last.source
        if not new.where:
            new.where = last.where
        self.nodes = [new if n is last else n for n in self.nodes if id(n) not in gone or n is last]

    def rename_input(self, old: str, new: str) -> None:
        """Every reader of tensor `old` reads `new` instead (a node that passes its input on)."""
        for n in self.nodes:
            n.inputs = [new if i == old else i for i in n.inputs]
        if self.output == old:
            self.output = new

    def prune(self) -> None:
        """Drop nodes the output does not depend on."""
        nodes = self.by_name()
        live, stack = set(), [self.output]
        while stack:
            t = stack.pop()
            if t in live or t not in nodes:
                continue
            live.add(t)
            stack.extend(nodes[t].inputs)
        self.nodes = [n for n in self.nodes if n.name in live]

    def unlifted(self) -> list:
        return [n for n in self.nodes if not n.lifted]


def read_model(path, limit: int, what: str) -> bytes:
    """A model file's bytes through cnndsl.files.read_spec (a FIFO, a device or a folder refused before
    anything is read; at most `limit` bytes), its errors hinting at `what` the file should be."""
    from ..files import read_spec
    try:
        return read_spec(path, limit)
    except CnnError as e:
        raise CnnError(e.message, usage=e.usage, code=e.code, hint=f"give {what}") from None


def refuse(graph: Graph, nodes: list, why, hint=None) -> CnnError:
    """One error naming every node that cannot be imported, each with its op, name and position;
    `why(node)` says what is wrong with one."""
    from ..errors import MAX_ERRORS, Diagnostic
    shown = graph.source or "the model"
    diags = [Diagnostic("error", "E900", f"{shown}: {n.describe()}: {why(n)}", hint=hint) for n in nodes[:MAX_ERRORS]]
    return CnnError.of(diags, truncated=len(nodes) > MAX_ERRORS)
