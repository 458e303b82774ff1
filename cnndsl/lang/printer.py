"""AST -> `.net` text that parses back to the same program: `format_program`, `format_expr`, `format_value`.

    >>> from cnndsl.lang.syntax import parse_text
    >>> prog = parse_text("input 32x32x3\\nlet N=2 # two\\n[(CONV-RELU)*N-POOL?]*3-{ID+CONV(3,3,p=1)-BN}")
    >>> print(format_program(prog), end="")
    input 32x32x3
    let N = 2
    <BLANKLINE>
    [(CONV - RELU)*N - POOL?]*3 - { ID + CONV(3, 3, p=1) - BN }

What it prints is the AST: parentheses only where the grammar needs them (`(a + b) * c`, `-(a * b)`,
`(a: CONV - BN)*2`), a group's brackets chosen for reading (`[...]` around a group that holds
another, and after a label), `**` written tight as the README writes it (`C * 2**i`). Comments are
not in the AST, so none are printed (a caller that wants some, as `search --emit` its header,
writes them itself), nor are spans: the text is laid out afresh. Lines longer than WIDTH break
between the terms of a sequence (the next line starts with `- `, which continues the expression
even outside brackets) and inside brackets (a branch per line, `|`/`+`/`.*`/`&` first), as the
README's examples are written; a call that is still too long, between its arguments.

Some ASTs have no spelling, and are refused (CnnError E900, a bug of whatever built them): a join of
one branch (`{ a }` is the group `a`), a tuple of fewer than two values, a number below zero (the
parser makes `-3` a negation of 3), a name that is not a name or is a keyword (`let`, `in`, ...), a
string holding `"`, an input dimension named with an `x`.
"""
from __future__ import annotations

import math

from . import astnodes as A
from ..errors import CnnError

WIDTH = 100
_JOINS = {"CONCAT": "|", "ADD": "+", "MUL": ".*", "MEAN": "&"}

# values: the grammar's sum < product < unary < power < atom
_SUM, _PRODUCT, _UNARY, _POWER, _ATOM = range(5)
_OPS = {"+": _SUM, "-": _SUM, "*": _PRODUCT, "/": _PRODUCT, "//": _PRODUCT, "%": _PRODUCT, "**": _POWER}
# network expressions: seq < term (a label) < postfix (repeat, optional) < atom (call, braces, group)
_SEQ, _TERM, _POSTFIX, _NATOM = range(4)


def _refuse(what: str):
    raise CnnError(f"cannot print {what}: no .net text parses to it", code="E900",
                   hint="the AST was built by code, not by the parser: build it as the parser would")


_KEYWORDS = frozenset({"input", "let", "def", "default", "include", "in"})  # the grammar's words: no name


def _name(name, keywords=_KEYWORDS) -> str:
    if not (isinstance(name, str) and name.isidentifier() and name.isascii()) or name in keywords:
        _refuse(f"the name {name!r}")
    return name


# ---- values ---------------------------------------------------------------------------------------
def format_value(e) -> str:
    """A value expression: a `let`'s value, an argument, a count, a default."""
    return _value(e, _SUM)


def _vlevel(e) -> int:
    if isinstance(e, A.BinOp):
        return _OPS[e.op]
    return _UNARY if isinstance(e, A.Neg) else _ATOM


def _value(e, need: int) -> str:
    text = _value_text(e)
    return f"({text})" if _vlevel(e) < need else text


def _value_text(e) -> str:
    if isinstance(e, A.Num):
        return _number(e.value)
    if isinstance(e, A.Var):
        return _name(e.name)
    if isinstance(e, A.Dims):
        if len(e.value) < 2 or not all(_natural(v) for v in e.value):
            _refuse(f"the size {e.value!r}")
        return "x".join(map(str, e.value))
    if isinstance(e, A.Str):
        if not isinstance(e.value, str) or '"' in e.value or "\n" in e.value:
            _refuse(f"the string {e.value!r}")
        return f'"{e.value}"'
    if isinstance(e, A.Tuple):
        if len(e.items) < 2:
            _refuse(f"a tuple of {len(e.items)} value{'s' * (len(e.items) != 1)}")
        return "(" + ", ".join(format_value(i) for i in e.items) + ")"
    if isinstance(e, A.Func):
        return f"{_name(e.name)}({', '.join(format_value(a) for a in e.args)})"
    if isinstance(e, A.Neg):
        return "-" + _value(e.operand, _UNARY)
    if isinstance(e, A.BinOp):
        level = _OPS.get(e.op)
        if level is None:
            _refuse(f"the operator {e.op!r}")
        if e.op == "**":  # power: vatom ** unary (right-associative through the unary)
            return f"{_value(e.left, _ATOM)}**{_value(e.right, _UNARY)}"
        return f"{_value(e.left, level)} {e.op} {_value(e.right, level + 1)}"  # left-associative
    _refuse(f"{type(e).__name__} as a value")


def _natural(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _number(v) -> str:
    if _natural(v):
        return str(v)
    if isinstance(v, float) and v >= 0:
        # repr is the shortest text that reads back to the same float; a literal that overflowed
        # (`1e400`, kept as inf for elaboration to refuse) is written as one that overflows alike
        return "1e999" if math.isinf(v) else repr(abs(v))  # abs: -0.0 is 0.0, not a negation
    _refuse(f"the number {v!r}")


def _count(e) -> str:
    """A repeat count is an atom: a whole number, a name, a call, or a parenthesised value."""
    if (isinstance(e, A.Num) and _natural(e.value)) or isinstance(e, (A.Var, A.Func)):
        return _value_text(e)
    return f"({format_value(e)})"


def _args(args) -> str:
    return ", ".join(_arg_texts(args))


def _arg_texts(args) -> list[str]:
    return [format_value(a.value) if a.name is None else f"{_name(a.name)}={format_value(a.value)}" for a in args]


# ---- network expressions --------------------------------------------------------------------------
def format_expr(e) -> str:
    """A network expression on one line (a def's body, the network)."""
    return _expr(e, _SEQ)


def _one(e):
    """A sequence of one term is that term (the parser never makes one; code building an AST may)."""
    while isinstance(e, A.Seq) and len(e.items) == 1:
        e = e.items[0]
    if isinstance(e, A.Seq) and not e.items:
        _refuse("an empty sequence")
    return e


def _nlevel(e) -> int:
    e = _one(e)
    if isinstance(e, (A.Seq, A.Copies)):  # copies stand only as a branch of braces (`_branch`)
        return _SEQ
    if isinstance(e, A.Label):
        return _TERM
    if isinstance(e, (A.Repeat, A.Optional)):
        return _POSTFIX
    return _NATOM


def _expr(e, need: int, labelled: bool = False) -> str:
    e = _one(e)
    if isinstance(e, A.Copies):
        _refuse("copies (`b**n`) anywhere but as a branch of braces")
    if _nlevel(e) < need:
        open_, close = _brackets(e, labelled)
        return open_ + _expr(e, _SEQ) + close
    if isinstance(e, A.Seq):
        return " - ".join(_expr(i, _TERM) for i in e.items)
    if isinstance(e, A.Label):
        return f"{_name(e.name)}: {_expr(e.body, _TERM, True)}"
    if isinstance(e, A.Repeat):
        return _expr(e.body, _POSTFIX) + _repeat_suffix(e)
    if isinstance(e, A.Optional):
        return _expr(e.body, _POSTFIX) + "?"
    if isinstance(e, A.Branches):
        sep = _join(e)
        return "{ " + f" {sep} ".join(_branch(b) for b in e.items) + " }"
    if isinstance(e, A.Call):
        if e.bare and e.args:
            _refuse(f"the bare call {e.name} with arguments")
        return _name(e.name) if e.bare else f"{_name(e.name)}({_args(e.args)})"
    if isinstance(e, A.Streams):
        return "(" + ", ".join(_branch(b) for b in _tuple_items(e)) + ")"
    if isinstance(e, A.Stream):
        return "$" + _count(e.index)
    _refuse(f"{type(e).__name__} in a network")


def _tuple_items(e: A.Streams):
    """A tuple's elements: two or more, or one that is copies (`(x)` alone is a group)."""
    if not e.items or (len(e.items) == 1 and not isinstance(_one(e.items[0]), A.Copies)):
        _refuse("a tuple of one element that is not copies")
    return e.items


def _branch(b) -> str:
    """A branch of braces: a sequence, or copies of an atom (`(CONV - BN)**4`)."""
    b = _one(b)
    return _expr(b.body, _NATOM) + _repeat_suffix(b) if isinstance(b, A.Copies) else _expr(b, _SEQ)


def _branch_lines(b, col: int, base: int) -> list[str]:
    b = _one(b)
    if not isinstance(b, A.Copies):
        return _lines(b, col, base, base)
    flat = _branch(b)
    if col + len(flat) <= WIDTH:
        return [flat]
    sub = _broken(b.body, _NATOM, col, base)
    return sub[:-1] + [sub[-1] + _repeat_suffix(b)]


def _repeat_suffix(e: A.Repeat) -> str:
    star = "**" if isinstance(e, A.Copies) else "*"  # copies side by side, or a repeat in sequence
    return star + _count(e.count) + (f" @{_name(e.index)}" if e.index is not None else "")


def _join(e: A.Branches) -> str:
    if e.join not in _JOINS:
        _refuse(f"the join {e.join!r}")
    if len(e.items) < 2:
        _refuse("a join of one branch")
    return _JOINS[e.join]


def _brackets(e, labelled: bool) -> tuple[str, str]:
    """`[...]` around a group that holds another group (the README's `[(CONV-RELU)*N - POOL?]*M`)
    and around a label's group (`features: [...]`), `(...)` elsewhere; the grammar reads both alike."""
    return ("[", "]") if labelled or _holds_group(e) else ("(", ")")


def _holds_group(e) -> bool:
    if isinstance(e, A.Seq):
        return any(_nlevel(i) < _TERM or _holds_group(i) for i in e.items)
    if isinstance(e, A.Label):
        return _nlevel(e.body) < _TERM or _holds_group(e.body)
    if isinstance(e, (A.Repeat, A.Optional)):
        return _nlevel(e.body) < _POSTFIX or _holds_group(e.body)
    return False


# ---- laying out long lines ------------------------------------------------------------------------
def _lines(e, col: int, base: int, ind: int) -> list[str]:
    """`e` (a sequence, or a term) as lines: the first continues a line at column `col`, whose
    content starts at `base` (where a bracket opened on it closes); a term that does not fit
    starts a line `- ` at column `ind`; later lines carry their own indentation."""
    e = _one(e)
    items = e.items if isinstance(e, A.Seq) else (e,)
    out, start, line_base = [""], col, base
    for k, item in enumerate(items):
        flat = _expr(item, _TERM)
        if k:
            if start + len(out[-1]) + 3 + len(flat) <= WIDTH:
                out[-1] += " - " + flat
                continue
            out.append(" " * ind + "- ")
            start, line_base = 0, ind + 2
        if start + len(out[-1]) + len(flat) <= WIDTH:
            out[-1] += flat
            continue
        sub = _broken(item, _TERM, start + len(out[-1]), line_base)
        out[-1] += sub[0]
        out += sub[1:]
        if len(sub) > 1:
            start, line_base = 0, len(out[-1]) - len(out[-1].lstrip())
    return out


def _broken(e, need: int, col: int, base: int, labelled: bool = False) -> list[str]:
    """`e` at the level `need`, too long for one line: broken inside its brackets."""
    e = _one(e)
    if _nlevel(e) < need:
        open_, close = _brackets(e, labelled)
        return [open_] + _inside(e, base) + [" " * base + close]
    if isinstance(e, A.Label):
        prefix = f"{_name(e.name)}: "
        sub = _broken(e.body, _TERM, col + len(prefix), base, True)
        return [prefix + sub[0]] + sub[1:]
    if isinstance(e, (A.Repeat, A.Optional)):
        sub = _broken(e.body, _POSTFIX, col, base)
        return sub[:-1] + [sub[-1] + (_repeat_suffix(e) if isinstance(e, A.Repeat) else "?")]
    if isinstance(e, A.Branches):
        sep, out = _join(e), ["{"]
        for k, b in enumerate(e.items):
            lead = " " * (base + 4) if k == 0 else " " * (base + 4 - len(sep) - 1) + sep + " "
            sub = _branch_lines(b, len(lead), base + 4)
            out += [lead + sub[0]] + sub[1:]
        return out + [" " * base + "}"]
    if isinstance(e, A.Streams):  # one element a line, each ending in its comma
        out, items = ["("], _tuple_items(e)
        for k, b in enumerate(items):
            sub = _branch_lines(b, base + 4, base + 4)
            out += [" " * (base + 4) + sub[0]] + sub[1:]
            out[-1] += "," if k < len(items) - 1 else ""
        return out + [" " * base + ")"]
    if isinstance(e, A.Call) and e.args:
        return _call_lines(e, col, base)
    return [_expr(e, need)]


def _call_lines(e: A.Call, col: int, base: int) -> list[str]:
    """A call too long for its line, broken between its arguments."""
    return _packed(f"{_name(e.name)}(", _arg_texts(e.args), ")", col, base)


def _packed(head: str, parts: list, close: str, col: int, base: int) -> list[str]:
    """`head` and `parts` separated by commas, then `close`, on as few lines as fit: later lines
    start under the first part or, when that is far right, 8 columns in from `base`."""
    at = col + len(head) if col + len(head) <= WIDTH // 2 else base + 8
    out, start = [head], col
    for k, part in enumerate(parts):
        part += "," if k < len(parts) - 1 else close
        fresh = k == 0 or out[-1] == " " * at
        if not fresh and start + len(out[-1]) + 1 + len(part) > WIDTH:
            out.append(" " * at)
            start, fresh = 0, True
        out[-1] += part if fresh else " " + part
    return out if parts else [head + close]


def _inside(e, base: int) -> list[str]:
    sub = _lines(e, base + 4, base + 4, base + 4)
    return [" " * (base + 4) + sub[0]] + sub[1:]


# ---- statements and programs ----------------------------------------------------------------------
def format_statement(st) -> str:
    """One statement as text (a long `def` over several lines)."""
    if isinstance(st, A.Let):
        text = f"let {_name(st.name)} = {format_value(st.value)}"
        if st.choices is not None:
            c = st.choices
            if c.range and len(c.items) != 2 or not c.items:
                _refuse(f"the choices of `{st.name}`")
            text += " in " + (f"{format_value(c.items[0])}..{format_value(c.items[1])}" if c.range
                              else ", ".join(format_value(v) for v in c.items))
        return text
    if isinstance(st, A.Def):
        params = [_name(p.name) if p.default is None else f"{_name(p.name)}={format_value(p.default)}"
                  for p in st.params]
        heads = _packed(f"def {_name(st.name)}(", params, ") =", 0, 0) if params else [f"def {_name(st.name)} ="]
        head = heads[-1]
        body = _one(st.body)
        first = _expr(_first(body), _TERM)
        if len(head) + 1 + len(first) > WIDTH and not _opens(body):  # on a line of its own
            return "\n".join(heads + _joined("    ", _lines(body, 4, 4, 4)))
        return "\n".join(heads[:-1] + _joined(head + " ", _lines(body, len(head) + 1, 0, 4)))
    if isinstance(st, A.Default):
        return f"default {_name(st.kind)}({_args(st.args)})"
    if isinstance(st, A.Include):
        if not isinstance(st.path, str) or '"' in st.path or "\n" in st.path:
            _refuse(f"the include path {st.path!r}")
        return f'include "{st.path}"'
    if isinstance(st, A.InputDecl):
        return "input " + _volume(st.dims)
    _refuse(f"{type(st).__name__} as a statement")


def _first(e):
    return e.items[0] if isinstance(e, A.Seq) else e


def _opens(e) -> bool:
    """Whether `e` broken starts with a bracket (`{`, `(`, `[`): a def's `= {` stays on its line."""
    e = _first(_one(e))
    if isinstance(e, (A.Branches, A.Streams)):
        return True
    if isinstance(e, A.Label):
        return _nlevel(e.body) < _TERM or _opens(e.body)
    if isinstance(e, (A.Repeat, A.Optional)):
        return _nlevel(e.body) < _POSTFIX or _opens(e.body)
    return False


def _volume(dims) -> str:
    """`224x224x3`, `32x32xC`, `HxWxC`: the lexer cuts the volume at each `x`, so a name holds none."""
    parts = []
    for d in dims:
        if isinstance(d, A.Var) and "x" not in d.name:  # `32x32xin`: a keyword inside a longer name
            parts.append(_name(d.name, _KEYWORDS if len(dims) == 1 else ()))
        elif isinstance(d, A.Num) and _natural(d.value):
            parts.append(str(d.value))
        else:
            _refuse(f"the input dimension {d!r}")
    if not parts:
        _refuse("an input of no dimensions")
    return "x".join(parts)


def _joined(head, lines):
    return [head + lines[0]] + lines[1:]


def format_program(program: A.Program) -> str:
    """The whole program: its statements in order (a blank line around each `def`), then the
    network. Includes are printed as `include` lines (cnndsl.lang.program.inlined puts their
    statements in their place instead)."""
    out, prev = [], None
    for st in program.statements:
        if prev is not None and (isinstance(st, A.Def) or isinstance(prev, A.Def)):
            out.append("")
        out.append(format_statement(st))
        prev = st
    if program.net is not None:
        if out:
            out.append("")
        out += _lines(program.net, 0, 0, 0)
    return "\n".join(out) + "\n"


# ---- what "the same program" means ----------------------------------------------------------------
def structure(node):
    """The node as nested tuples without its spans: what `parse(format_program(p))` shares with `p`.

    Numbers keep their type (`2` and `2.0` differ, as the text does); a Program is its statements and
    network (not its path, nor the names derived from them); an Include is its path and, once read,
    the structure of the included program; a sequence of one term is that term."""
    if isinstance(node, A.Program):
        return ("Program", structure(node.statements), structure(node.net))
    if isinstance(node, A.Seq) and len(node.items) == 1:
        return structure(node.items[0])
    if isinstance(node, tuple):
        return tuple(structure(i) for i in node)
    fields = getattr(node, "__dataclass_fields__", None) or getattr(type(node), "__slots__", None)
    if fields is None:
        return (type(node).__name__, node)
    return (type(node).__name__,) + tuple(structure(getattr(node, f)) for f in fields if f != "span")
