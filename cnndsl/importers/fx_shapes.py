"""Reshapes and transposes traced by torch.fx, judged by what they do to an index tensor.

A run of reshape-like calls from one tensor (`view`, `unflatten`, `transpose`, `permute`, `flatten`,
...) is run on a tensor whose every value is its own index: where the result is the input's channels
reordered as a channel shuffle does it, the run is SHUFFLE(groups) (torchvision's `channel_shuffle`,
cnndsl's ChannelShuffle); where it is the input in order, flattened, FLATTEN; where it is the input
itself, nothing. Any other run stays, to be refused by name.
"""
from __future__ import annotations

import math

from .graph import Node
from .layers import lift as make


def shape_chains(walk):
    """Each run of reshape-like calls from one tensor, judged by what it does to an index tensor."""
    graph, values, torch = walk.graph, walk.values, walk.torch
    made = graph.by_name()
    readers = graph.consumers()
    for node in list(graph.nodes):
        if not node.meta.get("shape_op") or node not in graph.nodes:
            continue
        if any(made[r].meta.get("shape_op") for r in readers.get(node.name, []) if r in made):
            continue  # not the end of its chain
        chain = [node]
        while chain[0].inputs[0] in made and made[chain[0].inputs[0]].meta.get("shape_op") \
                and readers.get(chain[0].inputs[0]) == [chain[0].name]:
            chain.insert(0, made[chain[0].inputs[0]])
        src = chain[0].inputs[0]
        d_in = [1, *_nchw(graph.shape_of(src, made))] if src == "input" else made[src].meta["dims"]
        result = _judge(chain, d_in, values, torch)
        if result is None:
            continue
        new = Node(node.name, node.op, [src], source=node.source, where=node.where, meta=dict(node.meta))
        new.meta.pop("shape_op")
        if result == "identity":
            graph.nodes = [n for n in graph.nodes if n not in chain]
            graph.rename_input(node.name, src)
        else:
            graph.replace(chain, make(new, result[0], result[1]))
        made, readers = graph.by_name(), graph.consumers()


def _nchw(shape):
    return [shape[2], shape[0], shape[1]] if len(shape) == 3 else list(shape)


def _judge(chain, d_in, values, torch):
    """("SHUFFLE", {groups}), ("FLATTEN", {}), "identity", or None."""
    if d_in is None or len(d_in) != 4:
        return None
    x = torch.arange(math.prod(d_in), dtype=torch.float64).reshape(d_in)
    y = x
    try:
        for node in chain:
            n = node.meta["fx"]
            args = [values.get(a, a) if hasattr(a, "op") else a for a in n.args[1:]]
            args = [tuple(values.get(b, b) if hasattr(b, "op") else b for b in a) if isinstance(a, (list, tuple)) else a
                    for a in args]
            method = "reshape" if n.target == "view" else n.target  # a `.contiguous()` between was passed over
            y = getattr(y, method)(*args, **n.kwargs) if n.op == "call_method" else n.target(y, *args, **n.kwargs)
    except Exception:
        return None
    if list(y.shape) == list(x.shape):
        if torch.equal(y, x):
            return "identity"
        c = d_in[1]
        for g in range(2, c):
            if c % g == 0 and torch.equal(y, x.unflatten(1, (g, -1)).transpose(1, 2).flatten(1, 2)):
                return "SHUFFLE", {"groups": g}
        return None
    if y.dim() == 2 and torch.equal(y.reshape(-1), x.reshape(-1)):
        return "FLATTEN", {}
    return None
