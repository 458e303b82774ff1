"""Decisions both PyTorch backends share, made once from the IR (no torch import here).

`pytorch.py` (the live module) and `pytorch_source.py` (the generated source) must
agree on which layers run in place and which convolutions get He initialisation,
so that the two produce the same module, the same speed and the same memory.

    >>> import cnndsl
    >>> g = cnndsl.loads("input 8x8x3\\nCONV(4, 3, p=1) - BN - RELU - SIGMOID - RELU").graph
    >>> sorted(inplace_nodes(g)), sorted(he_convs(g))
    (['relu1'], ['conv1'])

In place: see cnndsl/inplace.py (the analyzer counts memory by the same decision).
"""
from __future__ import annotations

from ..analysis.inplace import RELU_LIKE, inplace_nodes

__all__ = ["RELU_LIKE", "inplace_nodes", "he_convs", "last_uses", "final_softmax"]

# what a conv's output may pass through on its way to a ReLU and still count as "followed by ReLU"
_TRANSPARENT = frozenset({"BN", "ADD", "CONCAT", "MAXPOOL", "AVGPOOL", "DROPOUT"})


def he_convs(graph) -> set[str]:
    """CONV nodes whose output reaches a ReLU-like through BN/ADD/CONCAT/pools/dropout only."""
    cons = graph.consumers()
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
