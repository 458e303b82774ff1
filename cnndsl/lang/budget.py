"""The expansion budget: what a network will cost to expand, counted before it is expanded.

A mixin of the elaborator (elaborate.py). Before the first layer is built, `charge` walks the
network once and bounds, from above, the steps (calls, repeat iterations, optionals, joins) and
the layers its expansion takes; a bound over MAX_STEPS or MAX_NODES is an error at the smallest
expression that crosses it, in a fraction of a second, instead of after minutes and gigabytes:

    >>> import cnndsl
    >>> try:
    ...     cnndsl.loads("input 8x8x3\\ndef e = RELU*0\\ndef f = e-e-e-e-e-e-e-e-e-e\\n"
    ...                  "def g = f-f-f-f-f-f-f-f-f-f\\n(g-g-g-g-g-g-g-g-g-g)*10000")
    ... except cnndsl.CnnError as e:
    ...     print(e.message)
    the network takes more than 300,000 steps to expand (11,110,000)

Each block is costed once per distinct argument values (a memo), each repeat body once, so the
walk itself is cheap for fan-outs that would take hours to expand. It mirrors the elaborator:
a repeat of a body that makes and names nothing costs one iteration (the elaborator stops
there), an optional that is off costs nothing, a block that calls itself costs one step (the
elaborator reports it). An expression whose count or arguments cannot be evaluated costs one
step: the elaborator reports that error.
"""
from __future__ import annotations

from . import astnodes as A
from ..errors import CnnError
from .arguments import _typed
from .values import MAX_NODES, _Scope

MAX_STEPS = 300_000  # calls + repeat iterations + optionals + joins: ~1 s of expansion at most


class OverBudget(CnnError):
    """The expansion would pass MAX_STEPS or MAX_NODES (code E401)."""


class Budget:
    """Needs `defs`, `globals`, `globals_named`, `bindings` and the Values/Arguments methods."""

    def charge(self, net, sc):
        """Raise OverBudget when expanding `net` in `sc` would take too many steps or layers."""
        self.costs, self.cost_work = {}, 0
        try:
            self.cost(net, sc, ())
        except RecursionError:  # the elaborator reports the nesting
            pass
        finally:
            self.costs = {}

    def cost(self, e, sc, stack) -> tuple:
        """(steps, layers, names anything) of expanding `e`: upper bounds."""
        self.cost_work += 1
        if self.cost_work > MAX_STEPS:
            raise OverBudget(f"the network takes more than {MAX_STEPS:,} steps to expand", e.span, code="E401",
                             hint="blocks fan out too far: a block called many times calls others many times")
        if isinstance(e, A.Seq):
            return self.over(e, *map(sum, zip(*(self.cost(i, sc, stack) for i in e.items))))
        if isinstance(e, A.Call):
            if e.name in self.defs:
                return self.block_cost(self.defs[e.name], e, sc, stack)
            return (1, 0 if e.name == "ID" else 1, False)
        if isinstance(e, A.Label):
            if isinstance(e.body, A.Optional):
                return self.optional_cost(e.body, sc, stack, e.name)
            steps, layers, names = self.cost(e.body, sc, stack)
            return steps, layers, names or not isinstance(e.body, (A.Call, A.Optional))
        if isinstance(e, A.Repeat):
            return self.repeat_cost(e, sc, stack)
        if isinstance(e, A.Optional):
            return self.optional_cost(e, sc, stack)
        if isinstance(e, (A.Branches, A.Streams)):
            steps, layers, _ = map(sum, zip(*(self.cost(i, sc, stack) for i in e.items)))
            return self.over(e, 1 + steps, 1 + layers, True)
        return (1, 0, False)

    def optional_cost(self, e: A.Optional, sc, stack, label=None):
        if not self.included_statically(e, sc, label):
            return (1, 0, False)
        steps, layers, names = self.cost(e.body, sc, stack)
        return self.over(e, 1 + steps, layers, names)

    def block_cost(self, d: A.Def, c: A.Call, sc, stack):
        if d.name in stack or len(stack) >= 100:
            return (1, 0, False)
        try:
            bound = tuple(self.block_args(d, c, sc))
        except OverBudget:
            raise
        except CnnError:
            return (1, 0, False)
        key = (d.name, _typed(tuple(v for _, v in bound)))
        hit = self.costs.get(key)
        if hit is None:
            env = dict(self.globals)
            env.update(bound)
            inner = _Scope("", {}, env, params=frozenset(p.name for p in d.params))
            steps, layers, _ = self.cost(d.body, inner, stack + (d.name,))
            hit = self.costs[key] = self.over(c, 1 + steps, layers, True)
        return hit

    def repeat_cost(self, e: A.Repeat, sc, stack):
        try:
            n = self.count(e.count, sc)
        except OverBudget:
            raise
        except CnnError:
            return (1, 0, False)
        if n == 0:
            return (0, 0, False)
        steps, layers, names = self.cost(e.body, sc, stack)
        if n > 1 and not layers and not names and not self.reads_index(e):  # the elaborator expands it once
            return self.over(e, 1 + steps, 0, False)
        if n * layers > MAX_NODES:
            raise OverBudget(f"the repeat makes {n * layers:,} layers, more than the {MAX_NODES:,} a spec may have",
                             e.count.span, code="E401",
                             arithmetic=f"{n:,} copies of {layers:,} layer{'s' * (layers != 1)} = {n * layers:,}",
                             hint="check the counts: is a variable bound to the wrong value?")
        return self.over(e, n * (1 + steps), n * layers, names)

    def over(self, e, steps, layers, names):
        if layers > MAX_NODES:
            raise OverBudget(f"the network expands to more than {MAX_NODES:,} layers ({layers:,})", e.span,
                             code="E401", hint="check the counts and the blocks' fan-out")
        if steps > MAX_STEPS:
            raise OverBudget(f"the network takes more than {MAX_STEPS:,} steps to expand ({steps:,})", e.span,
                             code="E401", hint="a repeat count is probably far larger than meant, or blocks fan out too far")
        return steps, layers, names

    def included_statically(self, e: A.Optional, sc, label=None) -> bool:
        """Whether a `?` is on, as the elaborator will decide it; on when unsure (an upper bound)."""
        name = e.switch(label)
        try:
            if name is None:
                return True
            if name in sc.params:
                v = sc.env[name]
            elif name in self.bindings:
                v = self.binding(name)
            elif name in self.globals_named:
                v = self.globals[name]
            else:
                return True
        except CnnError:
            return True
        return not (v is False or (type(v) is int and v == 0))
