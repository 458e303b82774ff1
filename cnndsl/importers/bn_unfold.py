"""Pass: convolutions into which an exporter folded a BatchNorm get a BN again.

torch.onnx.export of a model in eval mode folds each BatchNorm into the convolution before it
(w' = w * gamma / sqrt(var + eps), b' = beta - mean * gamma / sqrt(var + eps)) and names the
folded tensors `onnx::Conv_<n>` where it keeps a parameter's own name (`layer1.0.conv1.weight`)
otherwise. Such a conv is imported as the layers it came from, `CONV(bias=false) - BN`: the
conv with the folded weight, the BN with scale 1, the folded bias as its shift, mean 0 and
variance 1 - eps, so that it computes exactly what the file does and has the source's
parameters and MACs. What cannot come back is said in a note: the original BN statistics and
scale (they are in the conv's weight now), and whether the conv had a bias of its own (VGG-BN's
do; its bias is in the BN's shift then).

    >>> import numpy as np
    >>> from cnndsl.importers.graph import Graph, Node
    >>> g = Graph(input_shape=(4, 4, 2))
    >>> conv = g.add(Node("c", "CONV", ["input"], {"filters": 3, "kernel": 1, "bias": True},
    ...                   tensors={"weight": np.ones((3, 2, 1, 1)), "bias": np.zeros(3)}, meta={"folded_bn": True}))
    >>> g.output = "c"
    >>> unfold(g), [(n.name, n.op, sorted(n.tensors)) for n in g.nodes]
    (1, [('c:conv', 'CONV', ['weight']), ('c', 'BN', ['bias', 'running_mean', 'running_var', 'weight'])])
"""
from __future__ import annotations

from .graph import Node

EPS = 1e-5


def folded(const_name: str) -> bool:
    """Whether a conv weight's name in an ONNX file is one torch.onnx.export gives a folded value."""
    return const_name.startswith("onnx::Conv_")


def unfold(graph) -> int:
    """Split every CONV marked `folded_bn` into CONV(bias=false) - BN; the number split."""
    import numpy as np
    count = 0
    for conv in list(graph.nodes):
        if conv.op != "CONV" or not conv.meta.get("folded_bn"):
            continue
        c = conv.attrs["filters"]
        shift = conv.tensors.get("bias")
        bn = Node(conv.name, "BN", [conv.name + ":conv"], {}, source=conv.source, where=conv.where,
                  meta={"dims": conv.meta.get("dims"), "unfolded": True, "lifted": True})
        bn.tensors = {"weight": np.ones(c, np.float32),
                      "bias": np.zeros(c, np.float32) if shift is None else np.asarray(shift, np.float32).reshape(-1),
                      "running_mean": np.zeros(c, np.float32),
                      "running_var": np.full(c, 1 - EPS, np.float32)}
        conv.name = conv.name + ":conv"
        conv.attrs = {**conv.attrs, "bias": False}
        conv.tensors = {"weight": conv.tensors["weight"]}
        graph.nodes.insert(graph.nodes.index(conv) + 1, bn)
        count += 1
    if count:
        graph.notes.append(
            f"the exporter folded BatchNorm into {count} convolution{'s' * (count != 1)}; each is CONV(bias=false) - BN "
            f"here (scale 1, the folded shift, mean 0, variance 1 - eps: the file's outputs), but the original "
            f"statistics, and whether a conv had a bias, are lost")
    return count
