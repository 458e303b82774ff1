"""Closed forms: a member's volumes, parameters and MACs as formulas in named variables (sympy).

    >>> import cnndsl
    >>> prog = cnndsl.parse("let C = 64\\ninput 56x56xC\\n(CONV(C, 3, p=1, bias=false) - RELU)*3")
    >>> str(symbolic(prog, ["C"])["totals"]["params"])
    '27*C**2'

How: the kinds' own rules run on numbers that carry a formula. Each named variable is bound to a
`Sym`, an int whose value is the variable's value in the default member and which also holds a
sympy expression; arithmetic on Syms (`+ - * // % **`) builds both at once, so the elaborator, the
kinds' shape, parameter and MAC rules and the analysis run unchanged and every figure they make
is a Sym. Comparisons (does a window fit, which branch of a `max`) use the value: the formulas
hold where the member takes the same decisions, which `check` confirms at random points.

A variable used as a repeat count (or an optional's switch) changes the layers themselves; its
totals are interpolated from the members at each value of its range (exact at those points; a
polynomial when fewer points than the range already determine it), and the per-layer table is
the default member's.
"""
from __future__ import annotations

import random

import sympy

from ..analysis.analyze import analyze
from ..errors import CnnError
from .member import Tracking

TOTALS = ("params", "macs", "flops", "act_elems")


def _e(v):
    return v.e if isinstance(v, Sym) else sympy.Integer(v) if isinstance(v, int) else sympy.nsimplify(v)


def _wrap(value, expr):
    if isinstance(value, bool) or not isinstance(value, int):
        return value
    return Sym(value, expr)


class Sym(int):
    """An int that carries a sympy formula for itself."""

    def __new__(cls, value, expr):
        o = int.__new__(cls, value)
        o.e = expr
        return o

    def __repr__(self):
        return f"Sym({int(self)}, {self.e})"

    def _op(f, g, reflected=False):
        def op(self, other):
            if isinstance(other, bool) or not isinstance(other, (int, float)):
                return NotImplemented
            a, b = (other, self) if reflected else (self, other)
            value = f(int(a) if isinstance(a, int) else a, int(b) if isinstance(b, int) else b)
            return _wrap(value, g(_e(a), _e(b)))
        return op

    _add, _sub, _mul = (lambda a, b: a + b), (lambda a, b: a - b), (lambda a, b: a * b)
    _fdiv, _mod, _pow = (lambda a, b: a // b), (lambda a, b: a % b), (lambda a, b: a ** b)
    _sfloor = staticmethod(lambda a, b: sympy.floor(a / b))
    __add__, __radd__ = _op(_add, _add), _op(_add, _add, True)
    __sub__, __rsub__ = _op(_sub, _sub), _op(_sub, _sub, True)
    __mul__, __rmul__ = _op(_mul, _mul), _op(_mul, _mul, True)
    __floordiv__, __rfloordiv__ = _op(_fdiv, _sfloor.__func__), _op(_fdiv, _sfloor.__func__, True)
    __mod__, __rmod__ = _op(_mod, sympy.Mod), _op(_mod, sympy.Mod, True)
    __pow__, __rpow__ = _op(_pow, _pow), _op(_pow, _pow, True)

    def __neg__(self):
        return Sym(-int(self), -self.e)

    def __pos__(self):
        return self

    def __abs__(self):
        return self if int(self) >= 0 else -self

    def __eq__(self, other):
        if isinstance(other, Sym):
            return int(self) == int(other) and sympy.simplify(self.e - other.e) == 0
        return int.__eq__(self, other)

    def __ne__(self, other):
        r = self.__eq__(other)
        return r if r is NotImplemented else not r

    __hash__ = int.__hash__


class _Symbolic(Tracking):
    """Records which Sym-valued names feed a repeat count or switch an optional."""

    def __init__(self, *args):
        super().__init__(*args)
        self.structural: set = set()

    def count(self, e, sc):
        n = super().count(e, sc)
        if isinstance(n, Sym):
            self.structural |= {str(s) for s in n.e.free_symbols}
        return int(n)


def symbols(names):
    return {n: sympy.Symbol(n, integer=True, positive=True) for n in names}


def _values(program, names, bindings):
    """The default member's value of each name (the -D binding or the file's `let`)."""
    from .space import _all_statements, _Eval, _empty_scope
    out = {}
    ev = _Eval()
    env = {}
    for st in _all_statements(program):
        if type(st).__name__ == "Let":
            try:
                env[st.name] = ev.value(st.value, __import__("cnndsl.lang.values", fromlist=["_Scope"])._Scope("", {}, env))
            except CnnError:
                pass
    for n in names:
        v = bindings.get(n, env.get(n))
        if isinstance(v, str):
            from ..lang.syntax import parse_value
            v = ev.value(parse_value(v, f"-D {n}"), _empty_scope())
        if isinstance(v, bool) or not isinstance(v, int):
            raise CnnError(f"--symbolic {n}: `{n}` is not a whole-number variable of the spec"
                           + (f" (it is {v!r})" if v is not None else ""), usage=True, code="E501",
                           hint="name variables bound by `let` or -D to whole numbers, e.g. --symbolic C,N")
        out[n] = v
    return out


def _run(program, bindings, input=None):
    e = _Symbolic(program, input, bindings, False, program.path)
    graph = e.run()
    totals = analyze(graph)
    return graph, totals, e.structural


def symbolic(program, names, bindings=None, input=None, ranges=None) -> dict:
    """{"layers": [{name, op, out: [exprs], params, macs}], "totals": {measure: expr}, "symbols",
    "structural": [...], "values": the default member's values}. `ranges` ({name: values}) are the
    points a structural variable's totals are interpolated from (default: its value and the 5 next)."""
    bindings = dict(bindings or {})
    names = list(dict.fromkeys(n.strip() for n in names if n.strip()))
    if not names:
        raise CnnError("--symbolic needs variable names, e.g. --symbolic C,N", usage=True, code="E501")
    unknown = [n for n in names if n not in program.names]
    if unknown:
        raise CnnError(f"--symbolic {unknown[0]}: the spec has no variable `{unknown[0]}`", usage=True, code="E501",
                       hint=f"the spec's names: {', '.join(sorted(program.names))}")
    syms = symbols(names)
    values = _values(program, names, bindings)
    sb = {**bindings, **{n: Sym(values[n], syms[n]) for n in names}}
    graph, totals, structural = _run(program, sb, input)
    structural = [n for n in names if n in structural]
    layers = [{"name": n.name, "op": n.op, "out": [_e(d) for d in n.out_shape], "params": _e(n.meta["params"]),
               "macs": _e(n.meta["macs"]), "rf": n.meta["rf"]} for n in graph.nodes]
    out_totals = {k: sympy.expand(_e(totals[k])) for k in TOTALS}
    if structural:
        out_totals = _interpolate(program, names, structural, syms, values, bindings, input, ranges or {})
    rf = next((n.meta["rf"] for n in reversed(graph.nodes) if n.meta["rf"] is not None), None)
    return {"layers": layers, "totals": out_totals, "symbols": names, "structural": structural,
            "values": values, "input": [_e(d) for d in graph.input_shape], "rf": rf}


def _interpolate(program, names, structural, syms, values, bindings, input, ranges):
    value_names = [n for n in names if n not in structural]
    grids = {n: list(ranges.get(n) or range(values[n], values[n] + 6)) for n in structural}

    def at(point):
        b = {**bindings, **point, **{n: Sym(values[n], syms[n]) for n in value_names}}
        _, t, _ = _run(program, b, input)
        return {k: sympy.expand(_e(t[k])) for k in TOTALS}

    def fit(fixed, rest):
        if not rest:
            return at(fixed)
        n, more = rest[0], rest[1:]
        pts = [(x, fit({**fixed, n: x}, more)) for x in grids[n]]
        return {k: _lagrange([(x, v[k]) for x, v in pts], syms[n]) for k in TOTALS}
    return fit({}, structural)


def _lagrange(points, x):
    total = 0
    for i, (xi, yi) in enumerate(points):
        term = yi
        for j, (xj, _) in enumerate(points):
            if j != i:
                term = term * (x - xj) / sympy.Integer(xi - xj)
        total += term
    return sympy.factor_terms(sympy.expand(total))


def check(program, result, points, bindings=None, input=None) -> int:
    """Evaluate the totals' formulas at each point ({name: value}) and compare with the numeric
    analysis of that member; raise AssertionError naming the first disagreement. Returns the
    number of points checked (points where the member does not exist are skipped)."""
    from ..lang.elaborate import elaborate
    checked = 0
    syms = symbols(result["symbols"])
    for p in points:
        try:
            t = analyze(elaborate(program, input_shape=input, bindings={**(bindings or {}), **p}))
        except CnnError:
            continue
        subs = {syms[n]: v for n, v in p.items() if n in syms}
        for k, f in result["totals"].items():
            got = f.subs(subs)
            if got != t[k]:
                raise AssertionError(f"{k} at {p}: formula {f} gives {got}, the analysis {t[k]}")
        checked += 1
    return checked


def random_points(names, ranges, n, seed=0):
    rng = random.Random(seed)
    return [{v: rng.choice(list(ranges[v])) for v in names} for _ in range(n)]


def format_table(result: dict, source: str) -> str:
    """The closed form as text: one row per layer, then the totals."""
    names = ", ".join(result["symbols"])
    shown = ", ".join(f"{k}={v}" for k, v in result["values"].items())
    out = [f"{source}: closed form in {names} (formulas hold where the default member, {shown}, takes "
           f"the same decisions)"]
    if result["structural"]:
        out.append(f"  {', '.join(result['structural'])} change the layers: rows are the default member's; the totals "
                   f"are interpolated through every member of the range")
    rows = [(l["name"], l["op"], " x ".join(str(d) for d in l["out"]), str(l["params"]), str(l["macs"]),
             "" if l["rf"] is None else str(l["rf"][0] if l["rf"][0] == l["rf"][1] else l["rf"]))
            for l in result["layers"]]
    head = ("name", "op", "volume", "params", "MACs", "RF")
    widths = [max(len(x) for x in col) for col in zip(head, *rows)]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()
    out += [line(head), line(tuple("-" * w for w in widths))] + [line(r) for r in rows]
    out.append("totals:")
    for k, v in result["totals"].items():
        out.append(f"  {k} = {v}")
    if result["rf"] is not None:
        out.append(f"  receptive field = {result['rf'][0] if result['rf'][0] == result['rf'][1] else result['rf']}")
    return "\n".join(out) + "\n"
