"""One member of a family: elaborate it, analyse it, keep the figures a search compares.

    >>> import cnndsl
    >>> prog = cnndsl.parse("input 32x32x3\\n(CONV(8, 3, p=1) - RELU)*N - FC(10)")
    >>> r = measure(prog, {"N": 2})
    >>> r["params"], r["depth"], r["rf"], sorted(r["read"])
    (82738, 3, 5, ['N'])

`read` is what the member's elaboration read of its bindings: two members that agree on those
values are the same net (a hidden FC width when K = 0), so a search measures it once.
"""
from __future__ import annotations

import re

from ..analysis.analyze import analyze
from ..errors import CnnError
from ..lang.elaborate import _Elaborator
from .space import PerUse


class Tracking(_Elaborator):
    """The elaborator, recording which bindings it read (and how often each optional occurred)."""

    def __init__(self, *args):
        super().__init__(*args)
        self.read: set = set()

    def lookup(self, name, span, sc):
        if name in self.bindings:  # a block parameter of the same name counts too: reading more is safe
            self.read.add(name)
        return super().lookup(name, span, sc)

    def let(self, st):
        # a let's -D binding is read where the let's name is read (lookup), not where it is bound
        self.in_let = True
        try:
            return super().let(st)
        finally:
            self.in_let = False

    in_let = False

    def binding(self, name):
        if not self.in_let:
            self.read.add(name)
        v = self.bindings[name]
        if isinstance(v, PerUse):
            return v.next()
        return super().binding(name)


def elaborate_member(program, bindings, input=None, strict=False):
    """(graph, read names) of one member; a CnnError carries `.read` too."""
    e = Tracking(program, input, bindings, strict, program.path)
    try:
        return e.run(), e.read
    except CnnError as err:
        err.read = e.read
        raise


def measure(program, bindings, input=None, batch=1, dtype="fp32", optimizer="adam", strict=False) -> dict:
    """The figures of one member, or {"error": reason, "read": ...} when it does not fit."""
    try:
        graph, read = elaborate_member(program, bindings, input, strict)
    except CnnError as err:
        return {"error": reason(err), "read": err.read}
    t = analyze(graph, dtype=dtype, batch=batch, optimizer=optimizer)
    rf, depth = None, 0
    for n in graph.nodes:
        m = n.meta
        if m["params"] and n.op in ("CONV", "FC"):
            depth += 1
        if m["rf"] is not None:
            rf = m["rf"]
    return {"params": t["params"], "macs": t["macs"], "flops": t["flops"], "memory": t["train_bytes"],
            "depth": depth, "rf": max(rf) if rf else None, "layers": len(graph.nodes),
            "warnings": len(graph.warnings), "read": read}


def reason(err: CnnError) -> str:
    """A member's failure as a countable reason: its code and message with the numbers left out."""
    d = err.diagnostics[0] if getattr(err, "diagnostics", None) else None
    code, message = (d.code, d.message) if d is not None else (err.code, err.message)
    return f"{code}: " + re.sub(r"\d+(\.\d+)?", "#", message)
