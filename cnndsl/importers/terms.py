"""The imported net as a tree of terms, between the graph (graph.py) and the AST (lang/astnodes.py).

structure.py makes the tree from the graph, fold.py folds it (repeats, blocks with parameters),
emit.py prints it through the AST. Terms compare by what they compute: a Layer by its kind and
arguments, never by the node it stands for or its label, so that blocks that differ only in their
weights' names fold.

    >>> a = Layer("RELU", (), node="r1")
    >>> a == Layer("RELU", (), node="r7", label="relu")
    True
    >>> expanded(Seq((Repeat(Seq((Layer("CONV", ((None, 8), (None, 3)), "c"), a)), 2),)))
    ['c', 'r1', 'c', 'r1']
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Layer:
    kind: str
    args: tuple                   # ((name or None for positional, value), ...), as written
    node: str = field(default="", compare=False)          # the graph node it stands for
    label: str | None = field(default=None, compare=False)  # its name in the source, where it is a valid label


@dataclass(frozen=True)
class Seq:
    items: tuple                  # an empty Seq is the identity (ID)


@dataclass(frozen=True)
class Join:
    kind: str                     # CONCAT, ADD, MUL or MEAN
    branches: tuple               # Seqs
    node: str = field(default="", compare=False)


@dataclass(frozen=True)
class Repeat:
    body: object
    count: int
    instances: tuple = field(default=(), compare=False)  # the terms it stands for, each in turn


@dataclass(frozen=True)
class Call:
    """A use of a block (fold.Block): its name and the values of its parameters, in their order."""
    name: str
    values: tuple
    instance: object = field(default=None, compare=False)  # the term it stands for (its nodes)
    block: object = field(default=None, compare=False)     # the generalise.Block it calls
    full: tuple = field(default=(), compare=False)         # ((parameter, value), ...) defaults included


@dataclass(frozen=True)
class Group:
    """A labelled run of the network: what one container of the source holds (`features: [...]`)."""
    label: str
    items: tuple


ID = Seq(())


def expanded(term) -> list:
    """The graph nodes a term stands for, in the order a net made of it lists its layers (the
    order elaboration makes them in: branches left to right, then their join)."""
    out = []
    _walk(term, out)
    return out


def _walk(t, out):
    if isinstance(t, Layer):
        out.append(t.node)
    elif isinstance(t, Seq):
        for i in t.items:
            _walk(i, out)
    elif isinstance(t, Join):
        for b in t.branches:
            _walk(b, out)
        out.append(t.node)
    elif isinstance(t, Repeat):
        for instance in t.instances or (t.body,) * t.count:
            _walk(instance, out)
    elif isinstance(t, Call):
        _walk(t.instance, out)
    elif isinstance(t, Group):
        for i in t.items:
            _walk(i, out)


def size(t) -> int:
    """How many layers a term writes (a repeat's body once)."""
    if isinstance(t, Layer):
        return 1
    if isinstance(t, Seq):
        return sum(size(i) for i in t.items)
    if isinstance(t, Join):
        return 1 + sum(size(b) for b in t.branches)
    if isinstance(t, Repeat):
        return size(t.body)
    return 1
