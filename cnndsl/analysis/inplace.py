"""Which layers share their input's memory: the in-place and view decisions, made once from the IR.

The analyzer's memory figures and both PyTorch backends read this, so the
estimate counts exactly the tensors the module allocates. The facts come from
the kinds (`Kind.memory`, `Kind.output_overwritable`); no op names here.

    >>> import cnndsl
    >>> g = cnndsl.loads("input 8x8x3\\nCONV(4, 3, p=1) - BN - RELU - SIGMOID - RELU").graph
    >>> sorted(inplace_nodes(g))
    ['relu1']

In place: a kind whose memory class is "inplace" (ReLU-likes, ADD) may overwrite its
input when that input is read by nobody else and its producer's output may be
overwritten (autograd does not keep it and the producer never returns its own input);
SIGMOID, TANH, SOFTMAX and the ReLUs keep their outputs, so what follows them must not
overwrite those, and the network input is the caller's tensor.
"""
from __future__ import annotations

from ..kinds import KINDS
from ..kinds.base import INPLACE, VIEW, VIEW_AT_INFERENCE
from .kernel import overwritten


def inplace_nodes(graph) -> dict[str, int]:
    """{node name: index of the input it overwrites} for the layers that can run in place: the
    kernel's rule (`overwritten`), which analyze() applies as it folds."""
    readers = graph.reader_counts()
    overwritable, out = {}, {}
    for n in graph.nodes:
        kind = KINDS[n.op]
        if kind.memory == INPLACE:
            i = overwritten(n.inputs, "input", False, readers, overwritable)  # the input is the caller's
            if i is not None:
                out[n.name] = i
        overwritable[n.name] = kind.output_overwritable
    return out


def shared_memory(graph, inplace=None) -> tuple[dict[str, str], dict[str, str]]:
    """({node: the input whose memory its output is} at inference, the same in training), for in-place
    layers and views; at inference DROPOUT returns its input too. `inplace`: inplace_nodes(graph),
    where the caller has it already."""
    inplace = inplace_nodes(graph) if inplace is None else inplace
    training = {n: graph[n].inputs[i] for n, i in inplace.items()}
    inference = dict(training)
    for n in graph.nodes:
        memory = KINDS[n.op].memory
        if memory == VIEW:
            training[n.name] = inference[n.name] = n.inputs[0]
        elif memory == VIEW_AT_INFERENCE:
            inference[n.name] = n.inputs[0]
    return inference, training
