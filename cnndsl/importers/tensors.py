"""The imported weights under the imported spec's own names, and the check that the import computes
what its source computes.

Elaboration lists a spec's layers in the order the term writes them (branches left to right, then
their join; a repeat's and a block's instances in turn), which is `terms.expanded(term)`: the i-th
layer of the bound net stands for the i-th node of that list, and takes its tensors under its own
name (`layer2.residual1.conv1.weight`). Each pairing is checked: the same kind, the same tensor
shapes; a join the source did not have (a nested concatenation) pairs with an empty name.
"""
from __future__ import annotations

from ..errors import CnnError
from .terms import expanded


def by_name(net, term, graph) -> dict | None:
    """{state_dict key of the spec: numpy array}; None when the source holds no weights (a prototxt)."""
    order = expanded(term)
    layers = [n for n in net.graph.nodes if not n.implicit]
    if len(order) != len(layers):
        raise _bug(f"the spec has {len(layers)} layers, the source {len(order)}")
    nodes = graph.by_name()
    out, missing = {}, False
    for name, layer in zip(order, layers):
        if not name:
            if not layer.kind.join:
                raise _bug(f"{layer.name} ({layer.op}) stands for a join the spec added")
            continue
        n = nodes[name]
        if n.op != layer.op:
            raise _bug(f"{layer.name} is {layer.op}, its source node {n.describe()} {n.op}")
        ins = [net.graph.shape_of(i) for i in layer.inputs]
        for t in layer.kind.tensors(layer.attrs, ins):
            have = n.tensors.get(t.name)
            if have is None:
                missing = True
                continue
            if tuple(have.shape) != tuple(t.shape):
                raise _bug(f"{layer.name}.{t.name} is {t.shape} in the spec, {have.shape} in the source")
            out[f"{layer.name}.{t.name}"] = have
    return None if missing else out


def _bug(what):
    return CnnError(f"internal: the imported spec does not line up with its source: {what}", code="E900",
                    hint="please report it with the model")


def compare(net, tensors, reference, seed=0, batch=1) -> dict:
    """Run the source (`reference`: NCHW float32 array -> array) and the imported net with its
    weights on one random input: the largest difference, the outputs' scale, params and MACs."""
    import numpy as np
    import torch
    shape = net.graph.input_shape
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, shape[2], shape[0], shape[1]) if len(shape) == 3 else (batch, shape[0]))
    x = x.astype(np.float32)
    model = net.to_torch(weights={k: torch.from_numpy(v) for k, v in tensors.items()}).eval()
    with torch.no_grad():
        ours = model(torch.from_numpy(x)).numpy()
    theirs = np.asarray(reference(x), dtype=np.float32)
    if ours.shape != theirs.shape:
        raise CnnError(f"the imported net's output has shape {list(ours.shape)}, the source's {list(theirs.shape)}")
    totals = net.report()["totals"]
    return {"max_abs_diff": float(np.abs(ours - theirs).max()), "output_scale": float(np.abs(theirs).max()),
            "params": totals["params"], "macs": totals["macs"]}
