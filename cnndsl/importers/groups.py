"""Pass: runs of the network that one container of the source holds become labelled groups.

A layer's path in the source (an fx module path, the module an ONNX file's weights are named after)
says which container holds it: torchvision's `features.3` and `classifier.1`, a ResNet's `layer2.0.conv1`.
Consecutive top-level terms of one container are written as its group, `features: [...]` or
`layer2: [residual(128, s=2, downsample=on) - residual(128)]`, as the shipped nets are; terms without a
path of their own (a ReLU whose module has no weights, in ONNX) go with the container around them.
Nothing is grouped where one container holds the whole net (a wrapper adds no information).

    >>> from cnndsl.importers.graph import Graph, Node
    >>> from cnndsl.importers.terms import Layer
    >>> g = Graph(input_shape=(4,))
    >>> for name, path in (("a", "features.0"), ("b", "features.1"), ("c", "features.2"), ("d", "classifier.0")):
    ...     _ = g.add(Node(name, "RELU", [], meta={"path": path}))
    >>> [getattr(t, "label", None) for t in group([Layer("RELU", (), n) for n in "abcd"], g)]
    ['features', 'classifier']
"""
from __future__ import annotations

from .labels import label_of
from .terms import Group, expanded

MIXED = object()   # a term of several containers
TOP = object()     # a term of top-level modules (`fc`): named, in no container


def group(items: list, graph) -> list:
    paths = {n.name: n.meta.get("path") for n in graph.nodes}
    heads = [_head(t, paths) for t in items]
    distinct = {h for h in heads if h is not None and h is not TOP}
    if not distinct or len(distinct) == 1 and MIXED not in distinct and TOP not in heads:
        return items  # no container, or one around everything
    if sum(h is None for h in heads) > len(heads) // 10:
        return items  # the source names too few of its layers to say where its containers end
    for i, h in enumerate(heads):  # a term without a path of its own goes with the same container around it
        if h is None:
            before = next((x for x in reversed(heads[:i]) if x is not None), None)
            after = next((x for x in heads[i + 1:] if x is not None), None)
            heads[i] = before if before == after else None
    out, i = [], 0
    while i < len(items):
        h = heads[i]
        j = i
        while j < len(items) and heads[j] == h:
            j += 1
        if h is None or h is MIXED or h is TOP or label_of(h) != h:
            out += items[i:j]
        else:
            out.append(Group(h, tuple(items[i:j])))
        i = j
    return out


def _head(t, paths):
    """The first part of the paths of the term's layers: one container, MIXED, TOP, or None (no paths)."""
    named = [p for x in expanded(t) if x for p in [paths.get(x)] if p]
    heads = {p.split(".")[0] for p in named if "." in p}
    if not heads:
        return TOP if named else None
    return heads.pop() if len(heads) == 1 else MIXED
