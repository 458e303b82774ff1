"""Pass: a softmax or a 1-D convolution of one channel between layout ops, as SOFTMAX(groups, card)
or CHANCONV (ONNX and torch.fx alike; numeric.py judges what the chain computes).

Around each such core node: the layout ops before it (reshapes, transposes, slices, a concat, a pad)
back to the one tensor S they read, and the nodes after it (layout ops, and element-wise ones, which
commute with them: ECA's gate) up to the last point where the tensor has S's shape again (or, after
a softmax, S flattened: timm's RadixSoftmax ends with `reshape(B, -1)`). The chain, element-wise
nodes passed over, is run on a random S and compared with the kind; where it is the kind, the
layout ops go and the core node is the layer, reading S. A source `reader` says what its nodes are:

    layout(node), elementwise(node): a node of the source's that moves values, or maps each one
    softmax(node): a softmax; conv1d(node): (weight, bias) of a 1-D conv of one channel, else None
    run(nodes, src, x, skip): the nodes evaluated with tensor `src` = x, those of `skip` as identities
    unflat(node, dims, commit): the tensor to read for S's values as `dims` (a pooled vector read
        back as 1x1xC: timm's ECA), or None; `commit`: make it so
"""
from __future__ import annotations

import math

from .graph import Node
from .layers import lift as make
from .numeric import judge_chanconv, judge_softmax


def lift(graph, reader) -> None:
    for core in list(graph.nodes):
        if core in graph.nodes and (reader.softmax(core) or reader.conv1d(core) is not None):
            _lift_one(graph, reader, core)


def _lift_one(graph, reader, core):
    made, readers = graph.by_name(), graph.consumers()
    before, src = _before(core, made, readers, reader)
    if not before or src is None:
        return
    dims = _dims(graph, made, src)
    after, ends = _after(core, made, readers, reader, graph, dims, src)
    if not ends:
        return
    end, target, out_dims = ends[-1]
    chain = before + [core] + after[:end + 1]
    skip = [n for n in after[:end + 1] if not reader.layout(n)]
    run = lambda x: reader.run(chain, src, x, skip)  # noqa: E731
    source = src if target in ("same", "flat") else reader.unflat(made[src], out_dims, False)
    if reader.softmax(core):
        found = judge_softmax(run, dims)
        if found is None:
            return
        kind, args, tensors = "SOFTMAX", {"groups": found[0], "card": found[1]}, {}
    else:
        weight, bias = reader.conv1d(core)
        found = judge_chanconv(run, dims, weight, bias)
        if found is None:
            return
        kind, args = "CHANCONV", {"kernel": weight.size, "bias": bias is not None, "circular": found}
        tensors = {"weight": weight.reshape(1, 1, -1), **({"bias": bias.reshape(-1)} if bias is not None else {})}
    if target == "unflat":
        reader.unflat(made[src], out_dims, True)
    _rewrite(graph, chain, core, skip, source, out_dims, target == "flat", kind, args, tensors)


def _dims(graph, made, tensor):
    if tensor == "input":
        s = graph.input_shape
        return [1, s[2], s[0], s[1]] if len(s) == 3 else [1, s[0]]
    return made[tensor].meta.get("dims")


def _before(core, made, readers, reader):
    """The layout nodes the core reads through (graph order), and the one tensor they start from."""
    nodes, sources, stack = [], set(), list(core.inputs)
    while stack:
        t = stack.pop()
        n = made.get(t)
        if n is not None and reader.layout(n) and not n.lifted:
            if n not in nodes:
                nodes.append(n)
                stack.extend(n.inputs)
        else:
            sources.add(t)
    inside = {n.name for n in nodes} | {core.name}
    if len(sources) != 1 or any(set(readers.get(n.name, ())) - inside for n in nodes):
        return [], None
    order = {n.name: k for k, n in enumerate(made.values())}
    return sorted(nodes, key=lambda n: order[n.name]), sources.pop()


def _after(core, made, readers, reader, graph, dims, src):
    """The nodes after the core, one reading the other, and where the values have S's shape again:
    [(index in the list, "same" | "flat" | S's own source)]."""
    after, ends, cur = [], [], core
    flat = [dims[0], math.prod(dims[1:])] if len(dims) == 4 else None
    while cur.name != graph.output:
        rs = readers.get(cur.name, [])
        nxt = made.get(rs[0]) if len(rs) == 1 else None
        if nxt is None or len(nxt.inputs) != 1 or not (reader.layout(nxt) or reader.elementwise(nxt)):
            break
        after.append(nxt)
        cur = nxt
        d = nxt.meta.get("dims")
        if not reader.layout(nxt) or not d:
            continue
        if list(d) == list(dims):
            ends.append((len(after) - 1, "same", list(dims)))
        elif flat is not None and list(d) == flat and reader.softmax(core):
            ends.append((len(after) - 1, "flat", list(dims)))
        elif src != "input" and reader.unflat(made[src], d, False) is not None:
            ends.append((len(after) - 1, "unflat", list(d)))
    return after, ends


def _rewrite(graph, chain, core, skip, source, out_dims, flatten, kind, args, tensors):
    """The core as the layer reading `source`, the element-wise nodes after it reading it in turn,
    the layout nodes gone (a FLATTEN where the chain ends in S flattened)."""
    end = chain[-1]
    layer = Node(core.name, core.op, [source], source=core.source, where=core.where,
                 meta={**core.meta, "dims": out_dims})
    make(layer, kind, args, tensors)
    kept = [layer]
    for n in skip:
        n.inputs, n.meta["dims"] = [kept[-1].name], out_dims
        kept.append(n)
    gone = {id(n) for n in chain} - {id(n) for n in skip}
    if flatten:
        flat = Node(end.name, "FLATTEN", [kept[-1].name], source=end.source, where=end.where, meta=dict(end.meta))
        make(flat, "FLATTEN", {})
        graph.nodes = [flat if n is end else layer if n is core else n for n in graph.nodes
                       if id(n) not in gone or n is end or n is core]
        return
    graph.nodes = [layer if n is core else n for n in graph.nodes if id(n) not in gone or n is core]
    if end is not core:
        graph.rename_input(end.name, kept[-1].name)


# ---- the sources -----------------------------------------------------------------------------------
class OnnxReader:
    """ONNX nodes before onnx_ops and pointwise lift them: run by onnx's reference evaluator."""
    LAYOUT = frozenset({"Reshape", "Transpose", "Slice", "Concat", "Pad", "Unsqueeze", "Squeeze", "Flatten"})

    def __init__(self, opset):
        self.opset = opset

    def layout(self, n):
        return not n.lifted and n.op in self.LAYOUT

    def elementwise(self, n):
        from .pointwise import _elementwise
        return _elementwise(n)

    def softmax(self, n):
        return not n.lifted and n.op == "Softmax"

    def conv1d(self, n):
        w = n.consts.get(1)
        if n.lifted or n.op != "Conv" or w is None or len(n.inputs) != 1 or w.shape[:2] != (1, 1) \
                or w.size not in w.shape or n.attrs.get("group", 1) != 1:
            return None
        return w, n.consts.get(2)

    def unflat(self, node, dims, commit):
        """A ReduceMean over H and W without keepdims, read back as N x C x 1 x 1: one that keeps them."""
        d = node.meta.get("dims")
        if node.lifted or node.op != "ReduceMean" or not d or len(d) != 2 or list(dims) != list(d) + [1, 1] \
                or node.attrs.get("keepdims", 1):
            return None
        if commit:
            node.attrs["keepdims"], node.meta["dims"] = 1, list(dims)
        return node.name

    def run(self, nodes, src, x, skip):
        from .onnx import run_nodes
        return run_nodes(nodes, src, x, self.opset, skip)

