"""The IR: a network as a list of plain nodes in execution order.

Every stage after elaboration reads this and nothing else: the analyzer, the
report, the PyTorch and ONNX backends, the diagrams. A node's `name` is the
layer's name everywhere (report row, module path, ONNX node, diagram node).

    >>> import cnndsl
    >>> g = cnndsl.loads("input 8x8x3\\nCONV(4, 3, p=1) - RELU").graph
    >>> [(n.name, n.op, n.inputs, n.out_shape) for n in g.nodes]
    [('conv1', 'CONV', ['input'], (8, 8, 4)), ('relu1', 'RELU', ['conv1'], (8, 8, 4))]

`out_shape` is set when the node is built (the elaborator needs it to insert
implicit flattens); analysis passes write what they learn into `meta`.

What the spec wrote is kept as plain data, never as AST: a node's `site` (the call's name, its
arguments' source text, its span) and a block frame's `params`, `written` and `args` (the def's
parameters with their defaults as written, the call's arguments as written and as bound):

    >>> g = cnndsl.loads("input 8x8x3\\ndef unit(c, k=3) = CONV(2 * c, k)\\nunit(4)").graph
    >>> g.nodes[0].site.args, g.nodes[0].frames[0].written, g.nodes[0].frames[0].args
    (((None, '2 * c'), (None, 'k')), ((None, '4'),), (('c', 4), ('k', 3)))
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .errors import CnnError, Span
from .kinds import KINDS  # imported here, not per access: `kind` is read in every pass's inner loop


@dataclass(frozen=True)
class Frame:
    """An enclosing named part: a block instance, a labelled group, or a repeat iteration.

    `path` is the dotted prefix it gives its layers (`layer1.bottleneck2`); repeat
    frames have no path of their own and tell diagrams which nodes repeat."""
    kind: str            # "block", "label" or "repeat"
    path: str
    name: str            # block name, label, or repeat id ("repeat@3:5")
    index: int = 0       # repeat iteration, 0-based
    count: int = 1       # repeat count
    span: Span | None = None   # block: the call; label: the labelled expression; repeat: the repeat
    # provenance of a block instance, as plain data (no AST: a backend reads what the spec wrote here):
    params: tuple = field(default=(), compare=False)   # the def's Params, in its order (shared by its instances)
    written: tuple = field(default=(), compare=False)  # the call's arguments as written: ((name or None, text), ...)
    args: tuple = field(default=(), compare=False)     # its bound arguments, ((parameter, value), ...) in the def's order
    variable: str | None = field(default=None, compare=False)  # a repeat's index name (`*n @i`): its value is `index`
    defined: Span | None = field(default=None, compare=False)  # a block: where its `def` is


@dataclass(frozen=True, slots=True)
class Param:
    """A def's parameter: its name and default as the spec wrote it (`text`, None: none) and that
    default's value (when it has one)."""
    name: str
    text: str | None = None
    value: object = None


@dataclass(frozen=True, slots=True)
class Site:
    """What a layer's or join's call wrote, as plain data: the name (`CONV`, a join's kind `ADD`), its
    arguments' source expressions ((name or None for a positional one, text), ...) as
    lang/printer.py's format_value writes them, and where. Shared by every node of the call site."""
    name: str
    args: tuple = ()
    span: Span | None = None


@dataclass(slots=True)
class Node:
    name: str
    op: str                       # a key of layers.KINDS
    attrs: dict                   # read-only: shared by every node, call site and load with the same arguments
    inputs: list[str]
    span: Span | None
    out_shape: tuple
    frames: tuple = ()            # enclosing Frames, outermost first
    implicit: bool = False        # inserted by the compiler (an implicit FLATTEN)
    defaults: dict = field(default_factory=dict)  # argument -> where its value came from
    meta: dict = field(default_factory=dict)
    site: object = None           # what the spec wrote for it, a Site (plain data, no AST); None for an
                                  # implicit FLATTEN

    @property
    def kind(self):
        return KINDS[self.op]

    def block(self) -> Frame | None:
        """The innermost block instance this node was expanded in (its def's name and parameters, its
        arguments as written and as bound, the call's span)."""
        for f in reversed(self.frames):
            if f.kind == "block":
                return f
        return None


@dataclass
class Optional_:
    """A `?` element and what was chosen for it."""
    name: str
    span: Span
    included: bool
    source: str                   # "default", "-D", "let", "parameter" (of the enclosing block, per call)
    uses: int = 0                 # how many times the element was expanded with this choice


@dataclass
class Graph:
    input_shape: tuple
    nodes: list[Node] = field(default_factory=list)
    output: str = "input"
    optionals: list[Optional_] = field(default_factory=list)
    warnings: list[CnnError] = field(default_factory=list)
    source: str = "<string>"
    input_span: Span | None = None
    lets: dict = field(default_factory=dict)  # the values of the `let`s (and -D names) the spec read

    def __post_init__(self):
        self._by_name: dict[str, Node] = {}

    def add(self, node: Node) -> Node:
        self.nodes.append(node)
        self._by_name[node.name] = node
        return node

    def extend(self, nodes) -> None:
        """Add nodes in execution order (a replayed block's, lang/replay.py)."""
        self.nodes.extend(nodes)
        self._by_name.update([(n.name, n) for n in nodes])

    def __getitem__(self, name: str) -> Node:
        return self._by_name[name]

    def __contains__(self, name: str) -> bool:
        return name in self._by_name

    def shape_of(self, name: str) -> tuple:
        return self.input_shape if name == "input" else self._by_name[name].out_shape

    def consumers(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {"input": []}
        for n in self.nodes:  # in execution order: every input is already a key
            for i in n.inputs:
                out[i].append(n.name)
            out[n.name] = []
        return out

    def tensors(self) -> dict[str, object]:
        """{state_dict key: kinds.Tensor} for every parameter and buffer, in graph order, as the
        kinds name them (`layer1.conv1.weight`): what to_torch() registers and ONNX initialises."""
        out = {}
        for n in self.nodes:
            ins = [self.shape_of(s) for s in n.inputs]
            for t in n.kind.tensors(n.attrs, ins):
                out[f"{n.name}.{t.name}"] = t
        return out

    def reader_counts(self) -> dict[str, int]:
        out = dict.fromkeys(self._by_name, 0)
        out["input"] = 0
        for n in self.nodes:
            for i in n.inputs:
                out[i] += 1
        return out
