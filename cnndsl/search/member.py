"""One member of a family: elaborate it, analyse it, keep the figures a search compares.

    >>> import cnndsl
    >>> prog = cnndsl.parse("input 32x32x3\\n(CONV(8, 3, p=1) - RELU)*N - FC(10)")
    >>> r = measure(prog, {"N": 2})
    >>> r["params"], r["depth"], r["rf"], sorted(r["read"])
    (82738, 3, 5, ['N'])

`read` is what the member's elaboration read of its bindings: two members that agree on those
values are the same net (a hidden FC width when K = 0), so a search measures it once. With
`shared` (a dict kept across a search's members) the parts members have in common are expanded
and folded once (lean.py); the figures are the same.
"""
from __future__ import annotations

import math

from ..analysis.analyze import (DTYPE_BYTES, OPTIMIZER_STATES, _counts, _receptive_field, analyze, keep_for_backward,
                                training_memory)
from ..analysis.inplace import inplace_nodes
from ..kinds import KINDS
from ..kinds.base import VIEW
from ..errors import CODES, CnnError
from ..lang import astnodes as A
from ..lang.arguments import _UNSET, _typed
from ..lang.elaborate import _Elaborator
from ..lang.values import POISON
from .space import PerUse


class Tracking(_Elaborator):
    """The elaborator, recording which bindings it read (and how often each optional occurred)."""

    def __init__(self, *args, shared=None):
        super().__init__(*args)
        self.read: set = set()
        self.shared = shared
        self.defaults_key = None
        if shared is not None:  # work that depends only on the program and the values read: kept across members
            self.sites = shared.setdefault("sites", {})
            self.shared_bound = shared.setdefault("bound", {})
            self.shared_inferred = shared.setdefault("inferred", {})

    def bind(self, kind, c, sc):
        # Across members, a call site's arguments are bound once per (site, values of the variables
        # they read, `default`s in force). A hit reads those variables as the binding would have.
        if self.shared is None:
            return super().bind(kind, c, sc)
        site = self.sites.get(id(c))
        if site is None:
            return super().bind(kind, c, sc)  # matches and records the site
        pairs, free = site
        env, bindings = sc.env, self.bindings
        vals = []
        for v in free:
            if v in env:
                val = env[v]
            elif v in bindings and v not in self.globals_named:
                val = bindings[v]
                if isinstance(val, (PerUse, str)):
                    return super().bind(kind, c, sc)
            else:
                val = _UNSET
            if val is POISON or val is _UNSET:
                return super().bind(kind, c, sc)
            vals.append(_typed(val))
        if self.defaults_key is None:
            self.defaults_key = repr(sorted((k, sorted((a, repr(v)) for a, (v, _) in d.items()))
                                            for k, d in self.defaults.items()))
        key = (id(c), kind.name, self.defaults_key, *vals)
        hit = self.shared_bound.get(key)
        if hit is None:
            hit = self.shared_bound[key] = super().bind(kind, c, sc)
        else:
            for v in free:
                self.lookup(v, c.span, sc)
        return hit

    def infer(self, kind, attrs, inputs, span):
        if self.shared is None:
            return super().infer(kind, attrs, inputs, span)
        shape_of = self.graph.shape_of
        key = (kind.name, id(attrs), *[shape_of(i) for i in inputs])
        hit = self.shared_inferred.get(key)
        if hit is None or hit[0] is not attrs:  # the attrs object itself: ids of freed ones are reused
            hit = self.shared_inferred[key] = (attrs, super().infer(kind, attrs, inputs, span))
        return hit[1]

    def included_statically(self, e, sc, label=None):
        # the budget walk's guess at a `?`: a per-occurrence optional counts as on (an upper bound)
        # without using up one of its choices, which belong to the expansion
        name = e.switch(label)
        if name is not None and name not in sc.params and isinstance(self.bindings.get(name), PerUse):
            return True
        return super().included_statically(e, sc, label)

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
            # `let pool = on in each`: the let holds no choice (on, its default), the occurrences do
            return True if self.in_let else v.next()
        return super().binding(name)


def elaborate_member(program, bindings, input=None, strict=False, shared=None):
    """(graph, read names) of one member; a CnnError carries `.read` too. `shared`: a dict kept across
    the members of one program (same `input` and `strict`) for work they have in common."""
    e = Tracking(program, input, bindings, strict, program.path, shared=shared)
    try:
        return e.run(), e.read
    except CnnError as err:
        err.read = e.read
        raise


def measure(program, bindings, input=None, batch=1, dtype="fp32", optimizer="adam", strict=False,
            shared=None) -> dict:
    """The figures of one member, or {"error": reason, "read": ...} when it does not fit. With `shared`
    (a dict kept across members of one program, input and strict) the same figures come faster."""
    if shared is not None and dtype in DTYPE_BYTES and optimizer in OPTIMIZER_STATES:
        from . import lean  # parts shared across members: elaborated once, folded once per way in
        e = lean.Lean(program, input, bindings, strict, program.path, shared=shared)
        try:
            graph = e.run()
        except CnnError as err:
            return {**reason(err), "read": e.read}
        return {**lean.totals(graph, batch, dtype, optimizer, shared.setdefault("counts", {}), e.node_count()),
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


def totals(graph, batch, dtype, optimizer, cache) -> dict:
    """`measure`'s figures without annotating the graph: analyze()'s totals, computed the same way
    (tests/test_search.py checks that they agree), with the per-layer counts cached across members."""
    nbytes = DTYPE_BYTES[dtype]
    volume = len(graph.input_shape) == 3
    rf = {"input": ((1, 1), (1, 1))} if volume else {"input": None}
    overwrites = inplace_nodes(graph)
    train_mem = {n: graph[n].inputs[i] for n, i in overwrites.items()}  # shared_memory()'s training half
    for n in graph.nodes:
        if KINDS[n.op].memory == VIEW:
            train_mem[n.name] = n.inputs[0]
    alias = {"input": "input"}
    grad = {"input": False}
    saved: set = set()
    extra_saved = params_total = macs_total = flops_total = 0
    largest = math.prod(graph.input_shape)
    depth, last_rf = 0, None
    shape_of = graph.shape_of
    for node in graph.nodes:
        name, inputs, attrs = node.name, node.inputs, node.attrs
        ins = [shape_of(i) for i in inputs]
        inplace = name in overwrites
        key = (node.op, id(attrs) if attrs else None, inplace, *ins)
        hit = cache.get(key)
        if hit is None or (attrs and hit[0] is not attrs):
            hit = cache[key] = (attrs, _counts(node.kind, attrs, ins, node.out_shape, inplace))
        params, _buffers, macs, flops, elems, window, (which, extra) = hit[1]
        r = _receptive_field(node, rf, window)
        rf[name] = r if r[0] else None
        if r[0] is not None:
            last_rf = r[0]
        if params and KINDS[node.op].weight_layer:
            depth += 1
        params_total += params
        macs_total += macs
        flops_total += flops
        shared = train_mem.get(name)
        alias[name] = alias[shared] if shared else name
        if elems > largest:
            largest = elems
        if keep_for_backward(name, inputs, params, which, grad, alias, saved):
            extra_saved += extra
    saved_bytes = sum(math.prod(shape_of(t)) for t in saved) * nbytes + extra_saved
    memory = training_memory(params_total, saved_bytes + 2 * largest * nbytes, batch, optimizer, nbytes)
    return {"params": params_total, "macs": macs_total, "flops": flops_total, "memory": memory["train_bytes"],
            "depth": depth, "rf": max(last_rf) if last_rf else None, "layers": len(graph.nodes),
            "warnings": len(graph.warnings)}


def reason(err: CnnError) -> dict:
    """A member's failure as a countable reason: {"error": what kind of mistake, in words, with its
    code (errors.CODES), "message": this member's own message}."""
    d = err.diagnostics[0] if getattr(err, "diagnostics", None) else None
    code, message = (d.code, d.message) if d is not None else (err.code, err.message)
    return {"error": f"{CODES.get(code, CODES['E900'])} ({code})", "message": message}
