"""Families: a spec with ranged variables and free optionals as a design space.

`run(source, ...)` is `cnndsl search` as a library call (runner.py), its result data that
render.py prints as a table, CSV or JSON. The parts: space.py (the members, counted and indexed),
member.py (measure one), lean.py (the parts members share, expanded and folded once),
enumerate.py (search under budgets), pareto.py, where.py (--where), emit.py (members as .net
files), match.py (is a net a member?), symbolic.py (closed forms, sympy: imported only for
--symbolic), plot.py (matplotlib: only for --plot), train.py (`search --train`: members trained
with cnndsl.train, their accuracy added; torch is imported only when a member trains).
"""
from .runner import run

__all__ = ["run"]
