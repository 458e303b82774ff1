"""Decisions both PyTorch backends share, made once from the IR (no torch import here).

`pytorch.py` (the live module) and `pytorch_source.py` (the generated source) must
agree on which layers run in place and which convolutions get He initialisation,
so that the two produce the same module, the same speed and the same memory.

    >>> import cnndsl
    >>> g = cnndsl.loads("input 8x8x3\\nCONV(4, 3, p=1) - BN - RELU - SIGMOID - RELU").graph
    >>> sorted(inplace_nodes(g)), sorted(he_convs(g))
    (['relu1'], ['conv1'])

In place: see cnndsl/analysis/inplace.py (the analyzer counts memory by the same decision).
"""
from __future__ import annotations

from ..analysis.inplace import inplace_nodes
from ..kinds.base import HE_PASS, HE_RELU, HE_TARGET

__all__ = ["inplace_nodes", "he_convs", "last_uses", "final_softmax"]


def he_convs(graph) -> set[str]:
    """Layers of an He-target kind (CONV) whose output reaches a ReLU-like (`Kind.he == "relu"`)
    through pass-through kinds only (BN, ADD, CONCAT, pools, dropout: `Kind.he == "pass"`)."""
    cons = graph.consumers()
    he = {n.name: n.kind.he for n in graph.nodes}
    found = set()
    for n in graph.nodes:
        if he[n.name] != HE_TARGET:
            continue
        todo, seen = list(cons.get(n.name, [])), set()
        while todo:
            c = todo.pop()
            if c in seen:
                continue
            seen.add(c)
            if he[c] == HE_RELU:
                found.add(n.name)
                break
            if he[c] == HE_PASS and len(seen) < 64:
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
    """The output node when it turns logits into probabilities (a SOFTMAX: what `logits=True`
    leaves out, to train with CrossEntropyLoss), else None."""
    last = graph[graph.output] if graph.output != "input" else None
    return last if last is not None and last.kind.probabilities else None
