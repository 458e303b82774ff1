"""The Pareto front of a family: the members no other member beats on both of two measures.

    >>> rs = [{"index": 0, "params": 10, "macs": 5}, {"index": 1, "params": 5, "macs": 9},
    ...       {"index": 2, "params": 12, "macs": 9}, {"index": 3, "params": 5, "macs": 9}]
    >>> [r["index"] for r in front(rs, ("params", "macs"))]
    [1, 0]

Costs (params, MACs, memory) are better small; depth and receptive field better large. Members
with equal figures: the first stands for them.
"""
from __future__ import annotations

LARGER_IS_BETTER = {"depth", "rf"}


def front(records, measures=("params", "macs")) -> list:
    """The non-dominated records, in increasing order of the first measure."""
    a, b = measures

    def val(r, m):
        v = r.get(m)
        v = float("-inf") if v is None else v
        return -v if m in LARGER_IS_BETTER else v

    out, best = [], float("inf")
    for r in sorted(records, key=lambda r: (val(r, a), val(r, b), r["index"])):
        if val(r, b) < best:
            out.append(r)
            best = val(r, b)
    return out
