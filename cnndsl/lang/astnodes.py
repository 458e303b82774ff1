"""The abstract syntax of a .net file: plain dataclasses, each with its source span.

`syntax.py` builds these from the parse tree; `elaborate.py` reads them. Values
(arguments, counts, lets) are small expressions evaluated at elaboration time,
when variables and block parameters are known."""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import Span


# ---- values -----------------------------------------------------------------
@dataclass(frozen=True)
class Num:
    value: int | float
    span: Span


@dataclass(frozen=True)
class Dims:
    """`3x3` or `224x224x3`."""
    value: tuple[int, ...]
    span: Span


@dataclass(frozen=True)
class Var:
    name: str
    span: Span


@dataclass(frozen=True)
class Str:
    value: str
    span: Span


@dataclass(frozen=True)
class Tuple:
    items: tuple
    span: Span


@dataclass(frozen=True)
class BinOp:
    op: str  # + - * / // % **
    left: object
    right: object
    span: Span


@dataclass(frozen=True)
class Func:
    """`min(a, b)`, `make_divisible(c * w, 8)`: a function of values (lang/functions.py)."""
    name: str
    args: tuple
    span: Span


@dataclass(frozen=True)
class Neg:
    operand: object
    span: Span


# ---- the network expression ---------------------------------------------------
@dataclass(frozen=True)
class Arg:
    name: str | None  # None: positional
    value: object
    span: Span


@dataclass(frozen=True)
class Call:
    """`CONV`, `CONV(64, 3, p=1)` or a block call `stage(64, 2)`."""
    name: str
    args: tuple[Arg, ...]
    bare: bool  # written without parentheses
    span: Span


@dataclass(frozen=True)
class Seq:
    items: tuple
    span: Span


@dataclass(frozen=True)
class Repeat:
    body: object
    count: object  # a value expression
    span: Span
    index: str | None = None  # `*n @i`: the body sees i = 0, 1, ..., n-1


@dataclass(frozen=True)
class Copies(Repeat):
    """`branch ** n [@i]` inside braces: n copies of the branch side by side, each a branch of the
    join (`{ ID + (CONV - BN) ** 4 }`). A repeat in every walk that counts (budget, free names,
    search), expanded in parallel by the elaborator's `branches`; nowhere else allowed."""


@dataclass(frozen=True)
class Optional:
    body: object
    span: Span

    def switch(self, label=None):
        """The name that switches this `?` on or off: its label, else its call's name lower-cased
        (`BN?` is `bn`); None for an unlabelled group, which elaboration numbers `optionalN` as it
        meets them. The one naming rule for the elaborator, the budget walk, -D checks and search."""
        return label or (self.body.name.lower() if isinstance(self.body, Call) else None)


@dataclass(frozen=True)
class Label:
    name: str
    body: object
    span: Span


@dataclass(frozen=True)
class Branches:
    join: str  # "CONCAT", "ADD", "MUL" or "MEAN" (a join kind's name)
    items: tuple
    span: Span


@dataclass(frozen=True)
class Streams:
    """`(a, b, c)`: each element runs on what flows in (a tensor, or streams), and their outputs
    flow on side by side as streams; an element may be copies, `(($i - b)**n @i)`."""
    items: tuple
    span: Span


@dataclass(frozen=True)
class Stream:
    """`$k`: stream k (0-based, a count expression) of the streams flowing in; `$0` of one tensor is it."""
    index: object
    span: Span


def mentions(e, defs, names: set, seen_defs: set) -> bool:
    """Collect every name `e` can read (variables, labels, optional switches, through the blocks it
    calls); True when it holds an optional without a name of its own (numbered as met)."""
    anonymous = False
    stack = [e]
    while stack:
        e = stack.pop()
        if isinstance(e, (list, tuple)):
            stack.extend(e)
        elif isinstance(e, Var):
            names.add(e.name)
        elif isinstance(e, Call):
            stack.extend(a.value for a in e.args)
            d = defs.get(e.name)
            if d is not None and d.name not in seen_defs:
                seen_defs.add(d.name)
                stack.append(d.body)
                stack.extend(p.default for p in d.params if p.default is not None)
        elif isinstance(e, Optional):  # switched by a name: its label (below) or its call, lower-cased
            name = e.switch()  # a label on it is added where the label is met
            if name:
                names.add(name)
            else:
                anonymous = True  # or numbered as met: `optional3`
            stack.append(e.body)
        elif isinstance(e, Label):
            if isinstance(e.body, Optional):
                names.add(e.name)
            stack.append(e.body)
        elif isinstance(e, Repeat):
            stack += [e.body, e.count]
        elif isinstance(e, (Seq, Branches, Tuple, Streams)):
            stack.extend(e.items)
        elif isinstance(e, Stream):
            stack.append(e.index)
        elif isinstance(e, BinOp):
            stack += [e.left, e.right]
        elif isinstance(e, Neg):
            stack.append(e.operand)
        elif isinstance(e, Func):
            stack.extend(e.args)
    return anonymous


# ---- statements ----------------------------------------------------------------
@dataclass(frozen=True)
class Param:
    name: str
    default: object | None
    span: Span


@dataclass(frozen=True)
class Def:
    name: str
    params: tuple[Param, ...]
    body: object
    span: Span


@dataclass(frozen=True)
class Choices:
    """`in 1..5` (`range`: lo and hi, inclusive) or `in 16, 32, 64`: the values a family lets a
    `let` take (cnndsl/search); binding a spec reads only the `let`'s own value."""
    items: tuple
    range: bool
    span: Span


@dataclass(frozen=True)
class Let:
    name: str
    value: object
    span: Span
    choices: Choices | None = None


@dataclass(frozen=True)
class Default:
    kind: str
    args: tuple[Arg, ...]
    span: Span


@dataclass(frozen=True)
class Include:
    path: str
    span: Span
    program: "Program | None" = None  # the included file, parsed when the including one is


@dataclass(frozen=True)
class InputDecl:
    """`input 224x224x3`, `input 32x32xC` or `input 784`: each dimension a Num or a Var."""
    dims: tuple
    span: Span


@dataclass(frozen=True, eq=False)
class Program:
    """A parsed spec: plain, immutable data. Included files are parsed with it (`Include.program`),
    so binding never reads a file. `cnndsl.parse` gives a `cnndsl.Program`, this with a `bind`
    method that makes a Net of it (cnndsl/net.py: the AST knows nothing of Nets)."""
    statements: tuple = ()
    net: object | None = None
    path: str = "<string>"
    names: frozenset = frozenset()  # every let, optional and variable reference, includes included
