"""Closed forms through sampled values: what a total is as a function of a repeat count (sympy).

A variable that repeats layers changes the layers themselves, so the formula-carrying integers of
symbolic.py cannot see it: the totals are measured at consecutive counts and a closed form is
found through them. Totals of stacked layers satisfy a linear recurrence with constant
coefficients (a stride-1 body adds the same each pass: a polynomial; a strided body multiplies
the jump: a geometric sum), so the closed form is a sum of n**p * r**n terms:

    >>> n, m = sympy.symbols("N M", integer=True, positive=True)
    >>> closed_form(range(3, 9), [7, 9, 11, 13, 15, 17], n)          # RF of (CONV 3x3 - RELU)*N
    2*N + 1
    >>> closed_form(range(1, 7), [6, 16, 36, 76, 156, 316], m)      # RF of [(CONV 3x3)*2 - POOL 2]*M
    5*2**M - 4

`nested` fits each variable in turn, coefficient by coefficient (a formula in the others' symbols
is a sum of monomials, each with its own sequence of numbers). A sequence that satisfies no short
recurrence has no closed form here (None), unless the points are every value the variable takes:
then the interpolating polynomial is exact on that domain.
"""
from __future__ import annotations

import sympy

MARGIN = 2  # equations beyond those that determine a recurrence: it must also predict these


def closed_form(xs, ys, n, whole_domain=False):
    """A formula in `n` equal to ys[i] at n = xs[i] (consecutive integers), or None."""
    ys = [sympy.nsimplify(y) for y in ys]
    if all(y == 0 for y in ys):
        return sympy.Integer(0)
    need = 0 if whole_domain else MARGIN
    for order in range(1, len(ys) + 1):
        if len(ys) - order < order + need:
            break
        f = _recurrence_solution(xs, ys, n, order)
        if f is not None:
            return f
    if whole_domain:
        return sympy.expand(sympy.interpolate(list(zip(xs, ys)), n))
    return None


def _recurrence_solution(xs, ys, n, order):
    """The sum of n**p * r**n terms through all the points, for a recurrence of this order whose
    characteristic roots are rational and nonzero; else None."""
    a = sympy.Matrix([[ys[i + j] for j in range(order)] for i in range(len(ys) - order)])
    b = sympy.Matrix([ys[i + order] for i in range(len(ys) - order)])
    try:
        coef, free = a.gauss_jordan_solve(b)
    except ValueError:  # no recurrence of this order
        return None
    if free.shape[0]:
        return None
    x = sympy.Symbol("x")
    roots = sympy.roots(sympy.Poly(x**order - sum(coef[j] * x**j for j in range(order)), x))
    if sum(roots.values()) != order or any(r == 0 or not r.is_rational for r in roots):
        return None
    basis = [n**p * r**n for r, m in roots.items() for p in range(m)]
    m = sympy.Matrix([[f.subs(n, xv) for f in basis] for xv in xs])
    try:
        c, free = m.gauss_jordan_solve(sympy.Matrix(ys))
    except ValueError:
        return None
    if free.shape[0]:
        return None
    return sympy.expand(sum(ci * f for ci, f in zip(c, basis)))


def fit_expressions(xs, exprs, n, whole_domain=False):
    """closed_form for formulas (in other symbols): each monomial's coefficients fitted apart."""
    keys = []
    dicts = [sympy.expand(e).as_coefficients_dict() for e in exprs]
    for d in dicts:
        keys += [k for k in d if k not in keys]
    total = sympy.Integer(0)
    for k in keys:
        f = closed_form(xs, [d.get(k, 0) for d in dicts], n, whole_domain)
        if f is None:
            return None
        total += k * f
    return sympy.expand(total)


def nested(value_at, grids, syms, whole, order):
    """Fit value_at(point) -> {key: formula} (None: no such member) over the product of `grids`
    ({name: consecutive values}), one variable of `order` at a time. Returns ({key: formula or None},
    {name: (first, last)}: the counts the fits went through). `whole[name]`: the grid is every value
    the variable takes; so are the counts up to a member that does not exist (a volume that shrinks
    with each pass is gone for every larger count)."""
    seen: dict = {}

    def fit(fixed, rest):
        if not rest:
            return value_at(fixed)
        name, more = rest[0], rest[1:]
        pts = _first_run([(x, v) for x in grids[name] for v in [fit({**fixed, name: x}, more)] if v is not None])
        if len(pts) < 2:
            return None
        xs = [x for x, _ in pts]
        ended = xs[-1] != grids[name][-1]
        lo, hi = seen.get(name, (xs[0], xs[-1]))
        seen[name] = (max(lo, xs[0]), min(hi, xs[-1]))
        out = {}
        for k in pts[0][1]:
            vals = [v.get(k) for _, v in pts]
            out[k] = None if any(v is None for v in vals) else \
                fit_expressions(xs, vals, syms[name], whole[name] or ended)
        return out
    return fit({}, list(order)) or {}, seen


def _first_run(pts):
    """The points up to the first gap: a recurrence needs consecutive counts (a member that does not
    exist ends the run)."""
    run = pts[:1]
    for p in pts[1:]:
        if p[0] != run[-1][0] + 1:
            break
        run.append(p)
    return run
