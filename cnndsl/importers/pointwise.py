"""Pass: element-wise functions of one tensor, recognised by what they compute (ONNX, and torch.fx).

Exporters write an activation in many ways (`Clip(x, 0, 6)`; `x * Sigmoid(x)`; GELU as `Div - Erf -
Add - Mul - Mul` or as a polynomial under a Tanh; hardswish as `HardSigmoid - Mul` before opset
14). Instead of a pattern per spelling, this pass finds every region of element-wise nodes that
reads a single tensor (its other inputs scalar constants), evaluates it on a probe of values, and
compares the result with each activation kind of the language (cnndsl/kinds/: those in the
"activation" diagram group without tensors, computed by their own PyTorch modules), fitting a float
argument (LEAKYRELU's slope, ELU's alpha) where a kind has one. A region equal to none of them is
left as it is, to be refused by name later.

    >>> import numpy as np
    >>> x = probe()
    >>> identify(np.maximum(x, 0) - np.maximum(x - 6, 0))
    ('RELU6', {})
    >>> identify(np.where(x > 0, x, 0.2 * x))
    ('LEAKYRELU', {'slope': 0.2})

A region that multiplies by a constant (`x * 0.17`, `x / 6`, `-x`) is SCALE, the constant factor:

    >>> identify(x / 6)
    ('SCALE', {'value': 0.16666667})
"""
from __future__ import annotations

import functools

from ..kinds import KINDS
from .layers import clean_float, lift as make

POINTWISE = frozenset({"Relu", "Clip", "Sigmoid", "Tanh", "Softplus", "HardSigmoid", "HardSwish", "LeakyRelu", "Elu",
                       "Selu", "Celu", "Gelu", "Mish", "Erf", "Exp", "Log", "Sqrt", "Pow", "Add", "Sub", "Mul", "Div",
                       "Neg", "Abs", "Max", "Min", "Reciprocal", "Softsign", "ThresholdedRelu", "PRelu_scalar"})
TOLERANCE = 1e-5


def _probe():
    """The values each region and each kind is evaluated on (float32)."""
    import numpy as np
    return np.concatenate([np.linspace(-8, 8, 641), [-30.0, -15.0, 15.0, 30.0]]).astype(np.float32)


probe = functools.cache(_probe)


@functools.cache
def candidates() -> tuple:
    """The activation kinds: (kind, its argument schemas), those of the diagrams' activation group
    that hold no tensors and give no probabilities."""
    out = []
    for k in KINDS.values():
        if k.draw_group != "activation" or k.join or k.probabilities:
            continue
        required = {a.name: 1 for a in k.args if a.default is None}
        if required or k.tensors(k.bind({}), [(4,)]):
            continue
        if all(a.type in ("bool", "float") for a in k.args) and sum(a.type == "float" for a in k.args) <= 1:
            out.append((k, k.args))
    return tuple(out)


def _evaluate(kind, args: dict):
    """The kind on the probe, by its own PyTorch module."""
    import numpy as np
    import torch
    attrs = kind.bind(dict(args))
    tm = kind.torch_module(attrs, [(len(probe()),)], False)
    if not tm.cls.startswith("nn."):
        return None
    cls = getattr(torch.nn, tm.cls[3:])
    a, kw = tm.call()
    with torch.no_grad():
        return np.asarray(cls(*a, **kw)(torch.from_numpy(probe().copy())))


@functools.cache
def _table(key):
    kind, args = KINDS[key[0]], dict(key[1])
    return _evaluate(kind, args)


def identify(values) -> tuple | str | None:
    """(kind name, arguments) of the activation that gives `values` on the probe; "identity" for x
    itself; None when no kind does."""
    import numpy as np
    x = probe()
    values = np.asarray(values, dtype=np.float32).reshape(-1)
    if values.shape != x.shape or not np.all(np.isfinite(values)):
        return None
    if _close(values, x):
        return "identity"
    factor = values[int(abs(x - 1).argmin())]  # the probe's x = 1
    if factor != 0 and _close(values, factor * x):
        return "SCALE", {"value": clean_float(factor)}
    for kind, schema in candidates():
        for args in _settings(kind, schema, values):
            got = _table((kind.name, tuple(sorted(args.items()))))
            if got is not None and _close(values, got):
                return kind.name, args
    return None


def _close(a, b) -> bool:
    import numpy as np
    return bool(np.all(np.abs(a - b) <= TOLERANCE * np.maximum(1.0, np.abs(a))))


def _settings(kind, schema, values):
    """The argument settings to try: every combination of the switches, a float fitted to the
    values (the kinds' float arguments act linearly at x = -1: a slope, a scale)."""
    import itertools
    bools = [a.name for a in schema if a.type == "bool"]
    floats = [a for a in schema if a.type == "float"]
    for combo in itertools.product((False, True), repeat=len(bools)):
        args = dict(zip(bools, combo))
        if not floats:
            yield args
            continue
        a = floats[0]
        at = int(abs(probe() + 1).argmin())  # the probe's x = -1
        r0 = _evaluate(kind, {**args, a.name: 0.0})
        r1 = _evaluate(kind, {**args, a.name: 1.0})
        if r0 is None or r1 is None or r1[at] == r0[at]:
            continue
        fitted = clean_float((values[at] - r0[at]) / (r1[at] - r0[at]))
        if (a.lo is None or fitted >= a.lo) and (a.hi is None or fitted < a.hi):
            yield {**args, a.name: fitted}


# ---- regions of element-wise nodes ---------------------------------------------------------------
def lift_regions(graph, elementwise, run) -> None:
    """Replace each region of element-wise nodes (`elementwise(node)`) that reads one tensor by the
    activation it computes (or by nothing, where it computes x itself). `run(region, x)` evaluates a
    region (its nodes in graph order) with the probe as its input tensor `x`: None where it cannot."""
    made, readers = graph.by_name(), graph.consumers()
    candidates = {n.name for n in graph.nodes if elementwise(n)}
    cut = set()  # nodes found to be no part of the region of their reader: tops of their own

    def internal(n):  # read by exactly one element-wise node, so part of that node's region
        r = readers.get(n.name, [])
        return (n.name in candidates and n.name not in cut and len(r) == 1 and r[0] in candidates
                and n.name != graph.output)

    tops = [n.name for n in graph.nodes if n.name in candidates and not internal(n)]
    done = set()
    while tops:
        top = made[tops.pop()]
        if top.name in done:
            continue
        region, outside = _region(top, made, internal)
        result = identify(run(region, outside[0])) if len(outside) == 1 else None
        if result is not None and len(region) > 1 and _layers_of_their_own(region, outside, run):
            result = None  # RELU - LEAKYRELU are two layers, even where together they are a RELU
        if result is None:  # the region is no activation: try the top alone, and its parts on their own
            parts = [t for t in top.inputs if t in made and internal(made[t])]
            cut.update(parts)
            tops += parts + ([top.name] if len(region) > 1 else [])
            continue
        done.update(n.name for n in region)
        if result == "identity":
            graph.nodes = [n for n in graph.nodes if n not in region]
            graph.rename_input(top.name, outside[0])
        else:
            new = make(type(top)(top.name, top.op, [outside[0]], source=top.source, where=top.where,
                                 meta={"dims": top.meta.get("dims"), "path": top.meta.get("path")}),
                       result[0], result[1], exact=graph.format == "fx")
            graph.replace(region, new)
        made = graph.by_name()
        readers = graph.consumers()


def lift_onnx(graph, opset: int) -> None:
    """lift_regions over ONNX's element-wise ops, run by onnx's reference evaluator."""
    lift_regions(graph, _elementwise, lambda region, x: _run(region, x, opset))


def _layers_of_their_own(region, outside, run) -> bool:
    """Whether the region is a chain of nodes that are each an activation (its nodes one after
    another, each reading only the one before): those stay layers of their own."""
    prev = outside[0]
    for n in region:
        if n.inputs != [prev] or identify(run([n], prev)) is None:
            return False
        prev = n.name
    return True


def _elementwise(n) -> bool:
    return (not n.lifted and n.op in POINTWISE and bool(n.inputs)
            and all(getattr(v, "size", 0) == 1 for v in n.consts.values()))


def _region(top, made, internal):
    """The nodes of `top`'s region in graph order, and the tensors it reads from outside."""
    region, outside, stack = [], [], [top]
    while stack:
        n = stack.pop()
        region.append(n)
        for t in n.inputs:
            src = made.get(t)
            if src is not None and internal(src) and src not in region:
                stack.append(src)
            elif src is None or not internal(src):
                if t not in outside:
                    outside.append(t)
    order = {id(n): k for k, n in enumerate(made.values())}
    return sorted(region, key=lambda n: order[id(n)]), outside


def _run(region, x, opset):
    """The region evaluated on the probe (onnx's reference evaluator), or None where it cannot run."""
    from .onnx import run_nodes
    try:
        return run_nodes(region, x, probe(), opset)
    except Exception:
        return None
