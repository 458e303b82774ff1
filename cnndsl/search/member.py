"""One member of a family: elaborate it, analyse it, keep the figures a search compares.

    >>> import cnndsl
    >>> prog = cnndsl.parse("input 32x32x3\\n(CONV(8, 3, p=1) - RELU)*N - FC(10)")
    >>> r = measure(prog, {"N": 2})
    >>> r["params"], r["depth"], r["rf"], sorted(r["read"])
    (82738, 3, 5, ['N'])

`read` is what the member's elaboration read of its bindings (tracking.py): two members that agree
on those values are the same net (a hidden FC width when K = 0), so a search measures it once. With
`shared` (a dict kept across a search's members) the parts members have in common are expanded
and folded once (lean.py) by the counting kernel's fold (analysis/kernel.py); the figures are
the same.
"""
from __future__ import annotations

import math

from ..analysis.analyze import DTYPE_BYTES, OPTIMIZER_STATES, analyze, training_memory
from ..analysis.kernel import fold
from ..errors import CODES, CnnError
from ..kinds import KINDS
from . import lean
from .tracking import Tracking, elaborate_member  # noqa: F401 (elaborate_member: the search's way to elaborate one member)


def measure(program, bindings, input=None, batch=1, dtype="fp32", optimizer="adam", strict=False,
            shared=None) -> dict:
    """The figures of one member, or {"error": reason, "read": ...} when it does not fit. With `shared`
    (a dict kept across members of one program, input and strict) the same figures come faster."""
    if shared is not None and dtype in DTYPE_BYTES and optimizer in OPTIMIZER_STATES:
        e = lean.Lean(program, input, bindings, strict, program.path, shared=shared)
        try:
            graph = e.run()
        except CnnError as err:
            return {**reason(err), "read": e.read}
        return {**totals(graph, batch, dtype, optimizer, shared.setdefault("counts", {}), e.node_count()),
                "read": e.read}
    try:
        graph, read = elaborate_member(program, bindings, input, strict, shared)
    except CnnError as err:
        return {**reason(err), "read": err.read}
    t = analyze(graph, dtype=dtype, batch=batch, optimizer=optimizer)
    rf, depth = None, 0
    for n in graph.nodes:
        m = n.meta
        if m["params"] and KINDS[n.op].weight_layer:
            depth += 1
        if m["rf"] is not None:
            rf = m["rf"]
    return {"params": t["params"], "macs": t["macs"], "flops": t["flops"], "memory": t["train_bytes"],
            "depth": depth, "rf": max(rf) if rf else None, "layers": len(graph.nodes),
            "warnings": len(graph.warnings), "read": read}


def totals(graph, batch, dtype, optimizer, cache, layers=None) -> dict:
    """`measure`'s figures of a graph of layers, or of layers and segments (lean.py; `layers`: how many
    layers it stands for), without annotating it: the kernel's fold, as analyze() runs it (the tests
    hold the two equal), with each distinct layer's counts kept in `cache` across members."""
    volume = len(graph.input_shape) == 3
    x_elems = math.prod(graph.input_shape)
    s = fold(graph.nodes, "input", graph.input_shape, graph.output, cache=cache, fields=True,
             rf_x=((1, 1), (1, 1)) if volume else None, largest=x_elems)
    nbytes = DTYPE_BYTES[dtype]
    memory = training_memory(s.params, s.saved_elems(x_elems) * nbytes + s.extra + 2 * s.largest * nbytes, batch,
                             optimizer, nbytes)
    return {"params": s.params, "macs": s.macs, "flops": s.flops, "memory": memory["train_bytes"], "depth": s.depth,
            "rf": max(s.last_rf) if s.last_rf else None, "layers": len(graph.nodes) if layers is None else layers,
            "warnings": len(graph.warnings)}


def reason(err: CnnError) -> dict:
    """A member's failure as a countable reason: {"error": what kind of mistake, in words, with its
    code (errors.CODES), "message": this member's own message}."""
    d = err.diagnostics[0] if getattr(err, "diagnostics", None) else None
    code, message = (d.code, d.message) if d is not None else (err.code, err.message)
    return {"error": f"{CODES.get(code, CODES['E900'])} ({code})", "message": message}
