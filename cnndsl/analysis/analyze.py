"""The analysis pass: parameters, MACs, FLOPs, memory and receptive field per layer.

    >>> import cnndsl
    >>> g = cnndsl.loads("input 227x227x3\\nCONV(96, 11, s=4)").graph
    >>> analyze(g)["params"], g.nodes[0].meta["rf"], g.nodes[0].meta["jump"]
    (34944, (11, 11), (4, 4))

Receptive fields and jumps are exact: ints while every stride is whole, Fractions once a layer
upsamples (its stride is 1/factor, so the jump after UPSAMPLE(2) is half its input's):

    >>> g = cnndsl.loads("input 8x8x4\\nCONV(8, 3, p=1) - UPSAMPLE(2) - CONV(8, 3, p=1)").graph
    >>> _ = analyze(g); [(n.meta["rf"][0], n.meta["jump"][0]) for n in g.nodes]
    [(3, 1), (3, Fraction(1, 2)), (4, Fraction(1, 2))]

It annotates `node.meta` and returns the totals; it never rewrites the graph.
Conventions are in layers.py (counts) and README ("Counting"); the training
estimate follows torch.autocast: weights, gradients and optimizer state in fp32,
activations in `dtype`.
"""
from __future__ import annotations

import math

from ..errors import CnnError
from ..ir import Graph
from .kernel import RF_CAP, fold  # noqa: F401 (RF_CAP: the cap's home for the report's readers)

DTYPE_BYTES = {"fp32": 4, "fp16": 2, "bf16": 2}
OPTIMIZER_STATES = {"sgd": 0, "momentum": 1, "adam": 2}  # fp32 tensors per parameter


def analyze(graph: Graph, dtype: str = "fp32", batch: int = 1, optimizer: str = "adam", cache=True) -> dict:
    """Annotate every node; return the totals (see report.py for the JSON fields). The walk is the
    kernel's (kernel.py); `cache`: keep each distinct layer's counts across calls (False for numbers
    that carry formulas: search/symbolic.py)."""
    if dtype not in DTYPE_BYTES:
        raise CnnError(f"unknown dtype {dtype!r}", usage=True, hint="choose fp32, fp16 or bf16")
    if optimizer not in OPTIMIZER_STATES:
        raise CnnError(f"unknown optimizer {optimizer!r}", usage=True, hint="choose sgd, momentum or adam")
    nbytes = DTYPE_BYTES[dtype]
    counts = (_COUNTS if len(_COUNTS) < MAX_COUNTS else _COUNTS.clear() or _COUNTS) if cache else None
    rf0 = ((1, 1), (1, 1)) if len(graph.input_shape) == 3 else None
    x_elems = math.prod(graph.input_shape)
    s = fold(graph.nodes, "input", graph.input_shape, graph.output, cache=counts, fields=True, rf_x=rf0, meta=True,
             largest=x_elems)
    act_elems = x_elems + s.act  # the input counts: it is held while the net runs
    saved_bytes = s.saved_elems(x_elems) * nbytes + s.extra
    # while a layer's backward runs, the gradients of its output and its input are both alive
    workspace = 2 * s.largest * nbytes
    return {
        "params": s.params, "trainable_params": s.params, "buffers": s.buffers,
        "param_bytes": s.params * nbytes, "macs": s.macs, "flops": s.flops,
        # a training step: the forward pass, and a backward pass of about twice its cost
        # (gradients for the inputs and for the weights), per image
        "train_flops": 3 * s.flops,
        "act_elems": act_elems, "act_bytes": act_elems * nbytes,
        **training_memory(s.params, saved_bytes + workspace, batch, optimizer, nbytes),
        "saved_bytes_per_image": saved_bytes, "backward_workspace_per_image": workspace,
    }


def training_memory(params: int, per_image: int, batch: int, optimizer: str, nbytes: int = 4) -> dict:
    states = OPTIMIZER_STATES[optimizer]
    fixed = 4 * params * (2 + states)  # weights + gradients + optimizer state, fp32
    if nbytes != 4:
        fixed += nbytes * params  # autocast keeps a low-precision copy of the weights for the step
    return {"train_bytes": fixed + batch * per_image, "train_fixed_bytes": fixed, "train_per_image_bytes": per_image}


def max_batch(totals: dict, budget: int) -> int:
    """The largest batch whose training estimate fits `budget` bytes (0: not even one image)."""
    free = budget - totals["train_fixed_bytes"]
    return max(0, free // totals["train_per_image_bytes"]) if free > 0 else 0


# (kind, id(attrs), in place, input shapes) -> (attrs, counts), kept across calls: a layer's counts
# are worked out once per distinct layer, and attrs objects are shared by every call site and
# elaboration that writes the same arguments (lang/memo.py), so a net analysed again costs look-ups.
_COUNTS: dict = {}
MAX_COUNTS = 50_000
