"""Decisions both PyTorch backends share, made once from the IR (no torch import here).

`pytorch.py` (the live module) and `pytorch_source.py` (the generated source) must
agree on which layers run in place and which convolutions get He initialisation,
so that the two produce the same module, the same speed and the same memory.

    >>> import cnndsl
    >>> g = cnndsl.loads("input 8x8x3\\nCONV(4, 3, p=1) - BN - RELU - SIGMOID - RELU").graph
    >>> sorted(inplace_nodes(g)), sorted(he_convs(g))
    (['relu1'], ['conv1'])

In place: a ReLU-like layer (or the sum of an ADD) may overwrite its input when that
input is read by nobody else and its producer does not keep its own output for
backward (CONV, BN, FC, ADD, CONCAT and the pools keep their inputs, or nothing);
SIGMOID, TANH, SOFTMAX and the ReLUs keep their outputs, so what follows them must
not overwrite those, and the network input is the caller's tensor.
"""
from __future__ import annotations

RELU_LIKE = frozenset({"RELU", "RELU6", "LEAKYRELU"})
# producers whose output autograd does not keep and which never return their input itself
SAFE_PRODUCERS = frozenset({"CONV", "BN", "FC", "ADD", "CONCAT", "MAXPOOL", "AVGPOOL"})
# what a conv's output may pass through on its way to a ReLU and still count as "followed by ReLU"
_TRANSPARENT = frozenset({"BN", "ADD", "CONCAT", "MAXPOOL", "AVGPOOL", "DROPOUT"})


def consumers(graph) -> dict[str, list[str]]:
    return graph.consumers()


def _overwritable(graph, cons, name: str, reader: str) -> bool:
    if name == "input" or cons.get(name) != [reader]:
        return False
    return graph[name].op in SAFE_PRODUCERS


def inplace_nodes(graph) -> dict[str, int]:
    """{node name: index of the input it overwrites} for ReLU-likes and ADDs that can run in place."""
    cons = consumers(graph)
    out = {}
    for n in graph.nodes:
        if n.op in RELU_LIKE or n.op == "ADD":
            for i, src in enumerate(n.inputs):
                if _overwritable(graph, cons, src, n.name):
                    out[n.name] = i
                    break
    return out


def he_convs(graph) -> set[str]:
    """CONV nodes whose output reaches a ReLU-like through BN/ADD/CONCAT/pools/dropout only."""
    cons = consumers(graph)
    ops = {n.name: n.op for n in graph.nodes}
    found = set()
    for n in graph.nodes:
        if n.op != "CONV":
            continue
        todo, seen = list(cons.get(n.name, [])), set()
        while todo:
            c = todo.pop()
            if c in seen:
                continue
            seen.add(c)
            if ops[c] in RELU_LIKE:
                found.add(n.name)
                break
            if ops[c] in _TRANSPARENT and len(seen) < 64:
                todo.extend(cons.get(c, []))
    return found


def last_uses(graph) -> list[list[str]]:
    """For each node (in order), the tensors no later node reads: they can be freed after it runs."""
    last = {}
    for i, n in enumerate(graph.nodes):
        for src in n.inputs:
            last[src] = i
    free: list[list[str]] = [[] for _ in graph.nodes]
    for name, i in last.items():
        if name != graph.output:
            free[i].append(name)
    return free


def final_softmax(graph):
    """The output node when it is a SOFTMAX (what `logits=True` leaves out), else None."""
    last = graph[graph.output] if graph.output != "input" else None
    return last if last is not None and last.op == "SOFTMAX" else None
