"""The abstract syntax of a .net file: plain dataclasses, each with its source span.

`syntax.py` builds these from the parse tree; `elaborate.py` reads them. Values
(arguments, counts, lets) are small expressions evaluated at elaboration time,
when variables and block parameters are known."""
from __future__ import annotations

from dataclasses import dataclass, field

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


@dataclass(frozen=True)
class Optional:
    body: object
    span: Span


@dataclass(frozen=True)
class Label:
    name: str
    body: object
    span: Span


@dataclass(frozen=True)
class Branches:
    join: str  # "CONCAT" or "ADD"
    items: tuple
    span: Span


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
class Let:
    name: str
    value: object
    span: Span


@dataclass(frozen=True)
class Default:
    kind: str
    args: tuple[Arg, ...]
    span: Span


@dataclass(frozen=True)
class Include:
    path: str
    span: Span


@dataclass(frozen=True)
class InputDecl:
    shape: tuple[int, ...]
    span: Span


@dataclass
class Program:
    statements: list = field(default_factory=list)
    net: object | None = None
