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
totals are closed forms through the members at consecutive counts (fit.py), and the per-layer
table is the default member's. Every formula is compared with the numeric analysis of members
around the default (`verify`); one that disagrees, or a total no closed form gives, is a
`NotSymbolic` (shown with the default's value), never the default's number as if it were a formula.
"""
from __future__ import annotations

import math
import random

import sympy

from ..analysis.analyze import analyze
from ..errors import CnnError
from .tracking import Tracking

TOTALS = ("params", "macs", "flops", "act_elems")


def _e(v):
    return v.e if isinstance(v, Sym) else sympy.Integer(v) if isinstance(v, int) else sympy.nsimplify(v)


def _wrap(value, expr):
    if isinstance(value, bool) or not isinstance(value, int):
        return value
    return Sym(value, expr)


DECISIONS: list = []  # (comparison, left formula, right formula, outcome): what the last run decided


class Sym(int):
    """An int that carries a sympy formula for itself. A comparison is decided on the value and
    noted in DECISIONS: the formulas hold where each comes out the same (`conditions`)."""

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

    def _cmp(name):
        def cmp(self, other):
            r = getattr(int, name)(int(self), int(other) if isinstance(other, int) else other)
            if r is not NotImplemented and isinstance(other, (int, float)) and not isinstance(other, bool):
                DECISIONS.append((name, self.e, _e(other), r))
            return r
        return cmp
    __lt__, __le__, __gt__, __ge__ = _cmp("__lt__"), _cmp("__le__"), _cmp("__gt__"), _cmp("__ge__")

    def __eq__(self, other):
        if isinstance(other, Sym):
            return int(self) == int(other) and sympy.simplify(self.e - other.e) == 0
        r = int.__eq__(self, other)
        if r is not NotImplemented and isinstance(other, int) and not isinstance(other, bool):
            DECISIONS.append(("__eq__", self.e, sympy.Integer(other), r))
        return r

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
    from ..lang import astnodes as A
    from ..lang.values import top_scope
    from .space import _all_statements, _Eval, _empty_scope
    out = {}
    ev = _Eval()
    env = {}
    for st in _all_statements(program):
        if isinstance(st, A.Let):
            try:
                env[st.name] = ev.value(st.value, top_scope(env))
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


OPTIONS = dict(batch=1, dtype="fp32", optimizer="adam")


def _run(program, bindings, input=None, options=None, conditions=None, strict=False):
    """(graph, totals, structural names) of one member with Sym bindings; the decisions the analysis
    took on the variables are added to `conditions` (a set of (comparison, formula) pairs)."""
    try:
        e = _Symbolic(program, input, bindings, strict, program.path)
        graph = e.run()
        # the elaborator's decisions (does a window fit, a limit, a warning) decide whether the member
        # exists as it is; the analysis' (which activation is largest) pick a piece of a total
        DECISIONS.clear()
        totals = analyze(graph, **(options or OPTIONS), cache=False)  # formulas compare by value: no shared counts
        if conditions is not None:
            conditions |= _conditions(DECISIONS)
    finally:
        DECISIONS.clear()
    return graph, totals, e.structural


LIMIT = 10**6  # a comparison with a constant this large is a cap (the RF's), not a choice between layers
_FLIP = {"__lt__": "__ge__", "__le__": "__gt__", "__gt__": "__le__", "__ge__": "__lt__", "__eq__": "__ne__"}


def _conditions(decisions) -> set:
    """The decisions that depend on the variables, each as (comparison, formula) meaning `formula OP 0`
    held (a comparison of two equal formulas, or of constants, decides nothing)."""
    out = set()
    for op, a, b, r in decisions:
        d = sympy.expand(a - b)
        if d.free_symbols and not (d.is_Add and abs(d.as_coeff_Add()[0]) >= LIMIT):
            out.add((op if r else _FLIP[op], d))
    return out


def holds(conditions, subs) -> bool:
    """Whether a point (sympy substitutions) takes every decision the formulas rest on the same way."""
    for op, d in conditions:
        v = d.subs(subs)
        v = int(v) if v.is_integer else float(v)
        if not getattr(type(v), op)(v, 0):
            return False
    return True


_REL = {"__lt__": sympy.Lt, "__le__": sympy.Le, "__gt__": sympy.Gt, "__ge__": sympy.Ge, "__eq__": sympy.Eq,
        "__ne__": sympy.Ne}


def condition_text(conditions) -> list:
    """The conditions as sympy relations (`C >= 3`), shortest first."""
    out = {str(_REL[op](d, 0)) for op, d in conditions} - {"True"}
    return sorted(out, key=lambda t: (len(t), t))


def figures(graph, totals) -> dict:
    """The totals a closed form is given for, by a flat key: the analysis' counts, the training memory
    (bytes), the last receptive field (height, width) and the output volume's sides."""
    out = {k: totals[k] for k in TOTALS}
    out["memory"] = totals["train_bytes"]
    rf = next((n.meta["rf"] for n in reversed(graph.nodes) if n.meta["rf"] is not None), None)
    if rf is not None:
        out["rf.h"], out["rf.w"] = rf
    for i, d in enumerate(graph.shape_of(graph.output)):
        out[f"out.{i}"] = d
    return out


class NotSymbolic:
    """A total that no formula in `names` gives (a repeat whose totals follow no closed form, or a
    rule that leaves the formulas): shown as what it is, with its value at the default member."""

    def __init__(self, names, value, values):
        self.names, self.value, self.values = list(names), value, values

    def __str__(self):
        at = ", ".join(f"{k}={v}" for k, v in self.values.items())
        return f"not symbolic in {', '.join(self.names)} ({self.value} at {at})"

    __repr__ = __str__


def _expr(v):
    """A figure's formula: a Sym's, a plain int's constant, else None (a rule that left the ints)."""
    if isinstance(v, Sym):
        return sympy.expand(v.e)
    if isinstance(v, int) and not isinstance(v, bool):
        return sympy.Integer(v)
    return None


def symbolic(program, names, bindings=None, input=None, ranges=None, options=None, strict=False) -> dict:
    """{"layers": [{name, op, out: [exprs], params, macs, rf}], "totals": {measure: expr}, "rf": (h, w),
    "out": [sides], "symbols", "structural": [...], "values": the default member's values, "domain":
    {structural name: (first, last or None)}, "warnings": the default member's}. A total no formula
    gives is a `NotSymbolic`; every formula is checked against the numeric analysis of members
    around the default (`verify`).
    `ranges` ({name: values}): a structural variable's values (default: from 1, eight of them),
    a value variable's values to check at. `options`: batch, dtype, optimizer of the memory.
    `strict`: a window that does not fit is an error, as in `load(strict=True)` (the default member's
    raises; another member with one does not exist, so the fits and checks pass it by)."""
    bindings, ranges, options = dict(bindings or {}), dict(ranges or {}), {**OPTIONS, **(options or {})}
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
    conditions: set = set()
    graph, totals, structural = _run(program, sb, input, options, conditions, strict)
    structural = [n for n in names if n in structural]
    layers = [{"name": n.name, "op": n.op, "out": [_e(d) for d in n.out_shape], "params": _e(n.meta["params"]),
               "macs": _e(n.meta["macs"]), "rf": None if n.meta["rf"] is None else tuple(_e(d) for d in n.meta["rf"])}
              for n in graph.nodes]
    grids, whole = _grids(structural, values, ranges)
    domain = {}
    if structural:
        forms, seen = _fit(program, names, structural, syms, values, bindings, input, options, grids, whole,
                           conditions, strict)
        for n in structural:
            lo, hi = seen.get(n, (grids[n][0], grids[n][-1]))
            ended = "range" if whole[n] else "members" if hi < grids[n][-1] else None
            domain[n] = {"fitted": [lo, hi], "to": hi if ended else None, "ends": ended}
            grids[n] = list(range(lo, hi + 1))
            whole[n] = bool(ended)
    else:
        forms = {k: _expr(v) for k, v in figures(graph, totals).items()}
    forms = verify(program, forms, names, values, bindings, input, options,
                   _check_points(names, values, structural, grids, whole, ranges), conditions, strict)
    out = {"layers": layers, "totals": {k: forms.get(k) for k in (*TOTALS, "memory")}, "symbols": names,
           "structural": structural, "values": values, "input": [_e(d) for d in graph.input_shape],
           "rf": (forms["rf.h"], forms["rf.w"]) if "rf.h" in forms else None,
           "out": [forms[k] for k in sorted((k for k in forms if k.startswith("out.")), key=lambda k: int(k[4:]))],
           "domain": domain, "options": options, "conditions": conditions, "warnings": list(graph.warnings)}
    return out


GRID = 8  # counts a structural variable is fitted through when no range is given: a recurrence of
          # order 3 (a quadratic, or a line plus a geometric term) is found and checked at 2 more
MAX_FIT = 12  # counts fitted at most: a longer range is fitted through its first 12 (a recurrence of
              # order 5 at most, never a degree-99 interpolation) and the formula checked at its end
MAX_MEMBERS = 600  # members measured for the fits of all structural variables together


def _grids(structural, values, ranges):
    grids, whole = {}, {}
    for n in structural:
        given = sorted(set(ranges.get(n) or ()))
        if given and given == list(range(given[0], given[-1] + 1)) and len(given) <= MAX_FIT:
            grids[n], whole[n] = given, True
        else:
            start = given[0] if given else 1 if values[n] >= 1 else values[n]
            end = max(values[n] + 1, start + GRID) if not given else start + min(len(given), MAX_FIT)
            grids[n], whole[n] = list(range(start, min(end, start + MAX_FIT))), False
    if math.prod(len(g) for g in grids.values()) > MAX_MEMBERS:
        raise CnnError(f"--symbolic: {', '.join(structural)} all change the layers: their closed forms would take "
                       f"{math.prod(len(g) for g in grids.values()):,} members, more than {MAX_MEMBERS}",
                       usage=True, code="E501", hint="name fewer repeat counts, or fix some with -D (at most 3 at a time)")
    return grids, whole


def _fit(program, names, structural, syms, values, bindings, input, options, grids, whole, conditions, strict):
    from .fit import nested
    value_names = [n for n in names if n not in structural]

    def at(point):
        b = {**bindings, **point, **{n: Sym(values[n], syms[n]) for n in value_names}}
        try:
            g, t, _ = _run(program, b, input, options, conditions, strict)
        except CnnError:
            return None  # no such member: the run of counts ends here
        return {k: _expr(v) for k, v in figures(g, t).items()}
    default = at({n: values[n] for n in structural}) or {}
    fitted, seen = nested(at, grids, syms, whole, structural)
    return {k: fitted.get(k) for k in default}, seen


def _check_points(names, values, structural, grids, whole, ranges):
    """Members to compare the formulas with: the default, each variable moved on its own (past the
    fitted counts, or across its range), and all moved together."""
    pts, moved = [dict(values)], {}
    for n in names:
        v = values[n]
        if n in structural:
            g = grids[n]
            cand = [g[0], g[-1], g[-1] + 1] if whole[n] else [g[-1] + 1, g[-1] + 3]
            if ranges.get(n) and not whole[n]:  # a range longer than the fit: its end too
                cand.append(max(ranges[n]))
        elif ranges.get(n):
            r = list(ranges[n])
            cand = [r[0], r[len(r) // 2], r[-1]]
        else:
            cand = [v + 1, v + 3, 2 * v]
        cand = [c for c in cand if c != v]
        pts += [{**values, n: c} for c in cand]
        moved[n] = cand[0] if cand else v
    pts.append(moved)
    return pts


def verify(program, forms, names, values, bindings, input, options, points, conditions=(), strict=False) -> dict:
    """`forms` with each formula that disagrees with the numeric analysis at a point that takes the
    same decisions (`conditions`), or that is missing, replaced by a NotSymbolic naming the variables
    the point moved."""
    from ..lang.elaborate import elaborate
    syms = symbols(names)
    wrong: dict = {}
    default = None
    for p in points:
        try:
            g = elaborate(program, input_shape=input, bindings={**bindings, **p}, strict=strict)
            got = figures(g, analyze(g, **options))
        except CnnError:
            continue  # no such member
        if default is None and p == values:
            default = got
        subs = {syms[n]: v for n, v in p.items()}
        if not holds(conditions, subs):
            continue
        moved = [n for n in names if p[n] != values[n]]
        for k, f in forms.items():
            if k not in wrong and (f is None or k not in got or f.subs(subs) != got[k]):
                wrong[k] = moved
    default = default or {}
    out = dict(forms)
    for k, moved in wrong.items():
        out[k] = NotSymbolic(moved or [n for n in names], default.get(k, "?"), values)
    return out


def check(program, result, points, bindings=None, input=None) -> int:
    """Evaluate the totals' formulas at each point ({name: value}) and compare with the numeric
    analysis of that member; raise AssertionError naming the first disagreement. Returns the
    number of points checked (points where the member does not exist, or that decide differently
    from the default member, are skipped)."""
    from ..lang.elaborate import elaborate
    checked = 0
    syms = symbols(result["symbols"])
    forms = {**result["totals"], **dict(zip(("rf.h", "rf.w"), result["rf"] or ())),
             **{f"out.{i}": f for i, f in enumerate(result["out"])}}
    for p in points:
        try:
            g = elaborate(program, input_shape=input, bindings={**(bindings or {}), **p})
        except CnnError:
            continue
        subs = {syms[n]: v for n, v in p.items() if n in syms}
        if not holds(result["conditions"], subs):
            continue  # outside the region the formulas are for
        t = figures(g, analyze(g, **result["options"]))
        for k, f in forms.items():
            if isinstance(f, NotSymbolic):
                continue
            got = f.subs(subs)
            if got != t[k]:
                raise AssertionError(f"{k} at {p}: formula {f} gives {got}, the analysis {t[k]}")
        checked += 1
    return checked


def random_points(names, ranges, n, seed=0):
    rng = random.Random(seed)
    return [{v: rng.choice(list(ranges[v])) for v in names} for _ in range(n)]


def _side(pair):
    """A receptive field (height, width) as one figure when both sides agree."""
    h, w = pair
    return str(h) if str(h) == str(w) else f"{h} x {w}"


def text_totals(result: dict) -> dict:
    """The totals as text, by the names the table and the JSON show them under."""
    o = result["options"]
    out = {k: str(v) for k, v in result["totals"].items() if k != "memory"}
    out["memory"] = (str(result["totals"]["memory"]) + ("" if isinstance(result["totals"]["memory"], NotSymbolic)
                     else f" bytes (training, {o['optimizer']}, batch {o['batch']}, {o['dtype']})"))
    if result["rf"] is not None:
        out["receptive field"] = _side(result["rf"])
    out["output volume"] = " x ".join(str(d) for d in result["out"])
    return out


def _domain(result):
    """What the fitted totals of each repeat count rest on, in words."""
    parts = []
    for n, d in result["domain"].items():
        lo, hi = d["fitted"]
        parts.append(f"{n} = {lo}..{hi}" + {"range": " (its range)", "members": f" (no member has {n} = {hi + 1})",
                                             None: f", checked at {n} = {hi + 1}, {hi + 3}"}[d["ends"]])
    return "; ".join(parts)


SHOWN = 6  # conditions the table shows


def format_table(result: dict, source: str) -> str:
    """The closed form as text: one row per layer, then the totals."""
    names = ", ".join(result["symbols"])
    shown = ", ".join(f"{k}={v}" for k, v in result["values"].items())
    out = [f"{source}: closed form in {names} (formulas hold where the default member, {shown}, takes "
           f"the same decisions)"]
    conds = condition_text(result["conditions"])
    if conds:
        more = f" and {len(conds) - SHOWN} more (--format json lists them)" if len(conds) > SHOWN else ""
        out.append(f"  where: {', '.join(conds[:SHOWN])}{more}")
    if result["structural"]:
        verb = "changes" if len(result["structural"]) == 1 else "change"
        out.append(f"  {', '.join(result['structural'])} {verb} the layers: the rows are the default member's; "
                   f"the totals are closed forms through the members at {_domain(result)}")
    rows = [(l["name"], l["op"], " x ".join(str(d) for d in l["out"]), str(l["params"]), str(l["macs"]),
             "" if l["rf"] is None else _side(l["rf"])) for l in result["layers"]]
    head = ("name", "op", "volume", "params", "MACs", "RF")
    widths = [max(len(x) for x in col) for col in zip(head, *rows)]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()
    out += [line(head), line(tuple("-" * w for w in widths))] + [line(r) for r in rows]
    out.append("totals:")
    out += [f"  {k} = {v}" for k, v in text_totals(result).items()]
    return "\n".join(out) + "\n"


def to_json(result: dict, source: str) -> dict:
    """The closed form as JSON-able data: formulas as strings (sympy's syntax), and the totals no
    formula gives listed in `not_symbolic` with their value at the default member."""
    s = str
    forms = {**result["totals"], "rf": result["rf"], "out": result["out"]}
    flat = {**result["totals"], **dict(zip(("rf.h", "rf.w"), result["rf"] or ())),
            **{f"out.{i}": f for i, f in enumerate(result["out"])}}
    return {"schema": "cnndsl.symbolic/1", "source": source, "symbols": result["symbols"],
            "values": result["values"], "structural": result["structural"],
            "domain": result["domain"],
            "options": result["options"], "conditions": condition_text(result["conditions"]),
            "input": [s(d) for d in result["input"]],
            "layers": [{"name": l["name"], "op": l["op"], "out": [s(d) for d in l["out"]], "params": s(l["params"]),
                        "macs": s(l["macs"]), "rf": None if l["rf"] is None else [s(d) for d in l["rf"]]}
                       for l in result["layers"]],
            "totals": {k: (None if v is None else [s(d) for d in v]) if k in ("rf", "out") else s(v)
                       for k, v in forms.items()},
            "not_symbolic": {k: {"in": v.names, "default": v.value} for k, v in flat.items()
                             if isinstance(v, NotSymbolic)}}


FORMATS = ("table", "json")


def render(result: dict, source: str, fmt: str = "table") -> str:
    """The closed form as `cnndsl report --symbolic` prints it: the table, or the JSON (to_json)."""
    if fmt == "json":
        import json
        return json.dumps(to_json(result, source), indent=1) + "\n"
    if fmt != "table":
        raise CnnError(f"unknown closed-form format {fmt!r}", usage=True, hint="choose " + ", ".join(FORMATS))
    return format_table(result, source)
