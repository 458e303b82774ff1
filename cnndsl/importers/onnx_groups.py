"""ONNX pass: 5-d views of a volume's channels, (N, g, C/g, H, W), as layers of the volume (fx_groups.py
does the same for torch.fx; its docstring has the table). torch.onnx.export writes SKNet's
`torch.stack(paths, dim=1)` as an Unsqueeze of each path and a Concat on axis 1, ResNeSt's radix
groups as a Reshape, their sum over the groups as a ReduceSum on axis 1 without keepdims:

    Reshape (N, C, H, W) -> (N, g, C/g, H, W)   the volume, read as g groups
    Unsqueeze(axis 1) each, Concat(axis 1)       CONCAT of the volumes, as that many groups
    Softmax(axis 1) of a view                    SOFTMAX(groups=g) of the volume
    Mul, Add of two views of g groups            MUL, ADD of the volumes
    ReduceSum(axis 1) of a view                  { SPLIT(0, g) + ... } of the volume
    Reshape of a view back to (N, C, H, W)       the volume

Where some reader of a view is none of these, the pass leaves the graph as it is (its nodes are
then refused by name).
"""
from __future__ import annotations

from .graph import Node
from .layers import lift as make


def lift(graph) -> None:
    grouped, plan = {}, []
    dims = {n.name: n.meta.get("dims") for n in graph.nodes}
    for n in graph.nodes:
        step = _step(n, grouped, dims)
        if step is None and any(i in grouped for i in n.inputs):
            return  # a view read by something else: nothing changes
        if step is not None:
            plan.append((n, step))
    if plan:
        _apply(graph, plan, grouped)


def _volume(d):
    return [d[0], d[1] * d[2], *d[3:]]


def _axes(n):
    if "axes" in n.attrs:
        return list(n.attrs["axes"])
    return n.consts[1].reshape(-1).tolist() if 1 in n.consts else None


def _step(n, grouped, dims):
    """What node `n` becomes, recording the views it makes in `grouped`; None where it is no part of one."""
    d = n.meta.get("dims")
    if n.lifted or not d:
        return None
    views = [i for i in n.inputs if i in grouped]
    if not views:
        src = dims.get(n.inputs[0]) if n.inputs else None
        if n.op in ("Reshape", "Unsqueeze") and len(n.inputs) == 1 and src and len(src) == 4 and len(d) == 5 \
                and d[0] == src[0] and d[1] * d[2] == src[1] and d[3:] == src[2:]:
            grouped[n.name] = (n.inputs[0], d[1], d)
            return ("view",)
        return None
    g = {grouped[v][1] for v in views}
    if len(g) != 1 or len(views) != len(n.inputs) or n.consts and n.op not in ("ReduceSum", "Reshape"):
        return None
    g = g.pop()
    if n.op == "Concat" and n.attrs.get("axis") == 1 and g == 1:
        grouped[n.name] = (n.name, len(n.inputs), d)
        return ("CONCAT", [grouped[v][0] for v in views])
    if n.op == "Softmax" and n.attrs.get("axis", -1) % 5 == 1 and len(views) == 1:
        grouped[n.name] = (n.name, g, d)
        return ("SOFTMAX", [grouped[views[0]][0]])
    if n.op in ("Mul", "Add") and len(views) == 2:
        grouped[n.name] = (n.name, g, d)
        return ("MUL" if n.op == "Mul" else "ADD", [grouped[v][0] for v in views])
    if n.op == "ReduceSum" and _axes(n) in ([1], [-4]) and not n.attrs.get("keepdims", 1) and len(views) == 1:
        return ("SUM", grouped[views[0]][0], g)
    if n.op == "Reshape" and len(views) == 1 and list(d) == _volume(grouped[views[0]][2]):
        return ("back", grouped[views[0]][0])
    return None


def _apply(graph, plan, grouped):
    gone, renames = set(), {}
    for n, step in plan:
        kind = step[0]
        if kind == "view":
            gone.add(id(n))
        elif kind == "back":
            gone.add(id(n))
            renames[n.name] = step[1]
        elif kind == "SUM":
            _, volume, g = step
            parts = []
            for i in range(g):
                part = Node(f"{n.name}:group{i}", "ReduceSum", [volume], source=n.source, where=n.where,
                            meta={"dims": n.meta["dims"]})
                graph.nodes.insert(graph.nodes.index(n), make(part, "SPLIT", {"index": i, "parts": g}))
                parts.append(part.name)
            make(n, "ADD", {}, inputs=parts)
        else:
            n.meta["dims"] = _volume(grouped[n.name][2])
            make(n, kind, {"groups": grouped[n.name][1]} if kind == "SOFTMAX" else {}, inputs=step[1])
    graph.nodes = [n for n in graph.nodes if id(n) not in gone]
    for old, new in renames.items():
        graph.rename_input(old, new)
