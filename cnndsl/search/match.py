"""Does a concrete net belong to a family, and with which bindings?

    >>> import cnndsl
    >>> from cnndsl.search.space import Space
    >>> fam = Space(cnndsl.parse("input 8x8x3\\nlet N = 1 in 1..4\\n(CONV(4, 3, p=1) - RELU)*N - FC(10)"))
    >>> net = cnndsl.parse("input 8x8x3\\nCONV(4, 3, p=1) - RELU - CONV(4, 3, p=1) - RELU - FC(10)")
    >>> match(net, fam)
    [{'N': 2}]

Two nets are the same when their layers agree in order: kind, arguments, output volume and
parameter count (names may differ: a family's members are named by its text).
"""
from __future__ import annotations

from ..analysis.analyze import analyze
from ..errors import CnnError
from ..lang.elaborate import elaborate
from .enumerate import DEFAULT_LIMIT
from .member import elaborate_member


def signature(graph) -> tuple:
    analyze(graph)
    return (tuple(graph.input_shape),) + tuple(
        (n.op, tuple(sorted((k, repr(v)) for k, v in n.attrs.items())), tuple(n.out_shape), n.meta["params"])
        for n in graph.nodes)


def match(program, space, input=None, limit=DEFAULT_LIMIT, first=False) -> list:
    """The choices of every member of `space` that is the net `program` (its default member)."""
    if space.count > limit:
        raise CnnError(f"the family has {space.count:,} members, more than the limit of {limit:,}", usage=True,
                       code="E401", hint="fix some variables with -D NAME=VALUE, or raise --limit")
    want = signature(elaborate(program, input_shape=input))
    found = []
    for i in range(space.count):
        choices = space.member(i)
        try:
            graph, _ = elaborate_member(space.program, space.bindings(choices), space.input)
        except CnnError:
            continue
        if len(graph.nodes) + 1 == len(want) and signature(graph) == want:
            found.append(choices)
            if first:
                break
    return found
