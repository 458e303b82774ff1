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
from fractions import Fraction

from ..errors import CnnError
from .inplace import inplace_nodes, shared_memory
from ..ir import Graph

DTYPE_BYTES = {"fp32": 4, "fp16": 2, "bf16": 2}
RF_CAP = 2**53  # a receptive field or jump is shown as at most this (README, "The report")
OPTIMIZER_STATES = {"sgd": 0, "momentum": 1, "adam": 2}  # fp32 tensors per parameter


def analyze(graph: Graph, dtype: str = "fp32", batch: int = 1, optimizer: str = "adam") -> dict:
    """Annotate every node; return the totals (see report.py for the JSON fields)."""
    if dtype not in DTYPE_BYTES:
        raise CnnError(f"unknown dtype {dtype!r}", usage=True, hint="choose fp32, fp16 or bf16")
    if optimizer not in OPTIMIZER_STATES:
        raise CnnError(f"unknown optimizer {optimizer!r}", usage=True, hint="choose sgd, momentum or adam")
    nbytes = DTYPE_BYTES[dtype]
    rf = {"input": ((1, 1), (1, 1))} if len(graph.input_shape) == 3 else {"input": None}
    # tensor -> the tensor whose memory it is (in-place layers, views): at inference and in training
    overwrites = inplace_nodes(graph)  # what autograd keeps may depend on it (`Kind.saved(inplace=)`)
    infer_mem, train_mem = shared_memory(graph, overwrites)
    alias = {"input": "input"}    # training: the tensor whose memory each output is
    grad = {"input": False}       # does the tensor require grad (autograd records only such ops)
    saved: set[str] = set()
    extra_saved = 0
    total_params = total_buffers = total_macs = total_flops = 0
    act_elems = math.prod(graph.input_shape)  # the input counts: it is held while the net runs
    largest = act_elems
    counts = _COUNTS if len(_COUNTS) < MAX_COUNTS else _COUNTS.clear() or _COUNTS
    shapes = {"input": graph.input_shape}  # the graph's shape_of, as a dict: read for every input
    for node in graph.nodes:
        name, inputs, attrs, out = node.name, node.inputs, node.attrs, node.out_shape
        ins = [shapes[inputs[0]]] if len(inputs) == 1 else [shapes[i] for i in inputs]
        shapes[name] = out
        inplace = name in overwrites
        key = (node.op, id(attrs), inplace, *ins)
        c = counts.get(key)
        if c is None or c[0] is not attrs:  # the attrs object itself: a freed one's id may be reused
            c = counts[key] = (attrs, _counts(node.kind, attrs, ins, out, inplace))
        params, buffers, macs, flops, elems, window, (which, extra) = c[1]
        if len(inputs) == 1 and len(out) == 3:  # _receptive_field, inline for one input
            r = rf.get(inputs[0])
            if not r:
                r = (None, None)
            elif window is not None:
                (rh, rw), (jh, jw) = r
                (kh, kw), (sh, sw) = window
                r = ((min(RF_CAP, rh + (kh - 1) * jh), min(RF_CAP, rw + (kw - 1) * jw)),
                     (min(RF_CAP, jh * sh), min(RF_CAP, jw * sw)))
                if not (jh.__class__ is int and jw.__class__ is int and sh.__class__ is int and sw.__class__ is int):
                    r = tuple(tuple(_exact(v) for v in pair) for pair in r)  # after an upsampling: exact()
        else:
            r = _receptive_field(node, rf, window)
        rf[name] = r if r[0] else None
        shares = name in infer_mem
        m = node.meta
        m["params"], m["buffers"], m["macs"], m["flops"], m["act_elems"] = params, buffers, macs, flops, elems
        m["rf"], m["jump"] = r
        m["inplace"] = shares
        total_params += params
        total_buffers += buffers
        total_macs += macs
        total_flops += flops
        if not shares:
            act_elems += elems
        shared = train_mem.get(name)
        alias[name] = alias[shared] if shared else name
        if elems > largest:
            largest = elems
        if keep_for_backward(name, inputs, params, which, grad, alias, saved):
            extra_saved += extra
    totals = dict(params=total_params, buffers=total_buffers, macs=total_macs, flops=total_flops)
    saved_bytes = sum(math.prod(graph.shape_of(t)) for t in saved) * nbytes + extra_saved
    # while a layer's backward runs, the gradients of its output and its input are both alive
    workspace = 2 * largest * nbytes
    return {
        "params": totals["params"], "trainable_params": totals["params"], "buffers": totals["buffers"],
        "param_bytes": totals["params"] * nbytes, "macs": totals["macs"], "flops": totals["flops"],
        # a training step: the forward pass, and a backward pass of about twice its cost
        # (gradients for the inputs and for the weights), per image
        "train_flops": 3 * totals["flops"],
        "act_elems": act_elems, "act_bytes": act_elems * nbytes,
        **training_memory(totals["params"], saved_bytes + workspace, batch, optimizer, nbytes),
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


def _counts(kind, attrs, ins, out, inplace):
    return (kind.params(attrs, ins), kind.buffers(attrs, ins), kind.macs(attrs, ins, out),
            kind.flops(attrs, ins, out), math.prod(out), kind.window(attrs, ins),
            kind.saved(attrs, ins, out, inplace=inplace))


def _receptive_field(node, rf, window):
    """(rf (h, w), jump (h, w)) of the node's output, or (None, None) once the volume is flat."""
    if len(node.out_shape) != 3:
        return None, None
    if len(node.inputs) == 1:
        r = rf.get(node.inputs[0])
    else:
        r = _join([rf[i] for i in node.inputs if rf.get(i)])
    if not r:
        return None, None
    if window is None:
        return r
    (rh, rw), (jh, jw) = r
    (kh, kw), (sh, sw) = window
    # 15,000 stride-2 layers make a jump of 2**15000: saturate, so that it stays a small int (and
    # exact in JSON readers that use doubles) instead of a number too large to print
    cap = RF_CAP
    out = ((min(cap, rh + (kh - 1) * jh), min(cap, rw + (kw - 1) * jw)), (min(cap, jh * sh), min(cap, jw * sw)))
    if sh.__class__ is int and sw.__class__ is int and jh.__class__ is int and jw.__class__ is int:
        return out  # the common case stays in ints (and fast): no upsampling on the way
    return tuple(tuple(_exact(v) for v in pair) for pair in out)


def _exact(v):
    """A receptive field or jump as an exact number: an int where whole, else a Fraction. An
    upsampling layer's stride is a Fraction (UPSAMPLE(2): 1/2), so the jump after it is one."""
    if isinstance(v, Fraction):
        return v.numerator if v.denominator == 1 else v
    return v


def keep_for_backward(name, inputs, params, which, grad, alias, saved) -> bool:
    """Whether layer `name` needs a gradient (parameters of its own, or an input that needs one:
    `grad[name]` is set); if so, add what it keeps for backward (`which`, from its kind's `saved`
    rule: "in", "out", "partners") to `saved`, each tensor by its alias. An op on tensors that need
    no gradient keeps nothing. One rule for analyze() and the search's lean totals."""
    grad[name] = g = params > 0 or grad[inputs[0]] or (len(inputs) > 1 and any(grad[i] for i in inputs))
    if g:
        for w in which:
            for t in (inputs if w == "in" else (name,) if w == "out" else _partners(inputs, grad)):
                saved.add(alias[t])
    return g


def _partners(inputs, grad):
    """The inputs a product keeps for backward: those whose fellow inputs need a gradient."""
    return [t for k, t in enumerate(inputs) if any(grad[o] for j, o in enumerate(inputs) if j != k)]


def _join(fields):
    """A join sees what any of its inputs sees: per axis, the largest field; and the largest jump, so
    that what follows is bounded above where branches arrive at different strides (in real nets they
    share it). A 1x3 branch beside a 3x1 one gives 3x3, not either input's field."""
    if not fields:
        return None
    (rh, rw), (jh, jw) = fields[0]
    for (h, w), (a, b) in fields[1:]:
        rh, rw, jh, jw = max(rh, h), max(rw, w), max(jh, a), max(jw, b)
    return (rh, rw), (jh, jw)
