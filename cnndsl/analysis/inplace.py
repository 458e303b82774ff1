"""Which layers share their input's memory: the in-place and view decisions, made once from the IR.

The analyzer's memory figures and both PyTorch backends read this, so the
estimate counts exactly the tensors the module allocates.

    >>> import cnndsl
    >>> g = cnndsl.loads("input 8x8x3\\nCONV(4, 3, p=1) - BN - RELU - SIGMOID - RELU").graph
    >>> sorted(inplace_nodes(g))
    ['relu1']

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
VIEWS = frozenset({"FLATTEN", "ID"})  # return their input's memory, reshaped


def inplace_nodes(graph) -> dict[str, int]:
    """{node name: index of the input it overwrites} for ReLU-likes and ADDs that can run in place."""
    readers = graph.reader_counts()
    out = {}
    for n in graph.nodes:
        if n.op in RELU_LIKE or n.op == "ADD":
            for i, src in enumerate(n.inputs):
                # read by nobody else, and made by a layer that does not keep it (nor is the caller's)
                if src != "input" and readers[src] == 1 and graph[src].op in SAFE_PRODUCERS:
                    out[n.name] = i
                    break
    return out


def shared_memory(graph) -> tuple[dict[str, str], dict[str, str]]:
    """({node: the input whose memory its output is} at inference, the same in training), for in-place
    layers and views; at inference DROPOUT returns its input too."""
    training = {n: graph[n].inputs[i] for n, i in inplace_nodes(graph).items()}
    inference = dict(training)
    for n in graph.nodes:
        if n.op in VIEWS:
            training[n.name] = inference[n.name] = n.inputs[0]
        elif n.op == "DROPOUT":
            inference[n.name] = n.inputs[0]
    return inference, training
