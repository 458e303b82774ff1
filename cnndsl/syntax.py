"""Text -> AST: the lark LALR parser, a newline-aware postlexer, and parse errors.

    >>> prog = parse_text("input 32x32x3\\n(CONV-RELU)*2 - POOL\\n")
    >>> type(prog.net).__name__
    'Seq'
"""
from __future__ import annotations

import os
from functools import lru_cache

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import LarkError, UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken, VisitError

from . import astnodes as A
from .errors import CnnError, Source, Span

def _grammar_path() -> str:
    """The wheel ships grammars/ as cnndsl/grammars/; a source checkout has it beside cnndsl/."""
    here = os.path.dirname(os.path.abspath(__file__))
    for path in (os.path.join(here, "grammars", "cnn.lark"), os.path.join(os.path.dirname(here), "grammars", "cnn.lark")):
        if os.path.exists(path):
            return path
    raise CnnError("cnndsl is installed without its grammar (grammars/cnn.lark)", hint="reinstall: pip install -e .")


GRAMMAR = _grammar_path()
MAX_NESTING = 200  # brackets deeper than this are a mistake, and would exhaust Python's stack
MAX_TEXT = 2_000_000  # characters: ~200k layers written out; lark's parse tree costs ~200 bytes a character

_OPEN = {"LPAR", "LSQB", "LBRACE"}
_CLOSE = {"RPAR", "RSQB", "RBRACE"}
# A newline next to one of these continues the expression instead of ending a statement.
_JOIN_AFTER = {"MINUS", "VBAR", "PLUS", "STAR", "EQUAL", "COMMA", "COLON", "SLASH", "PERCENT"} | _OPEN
_JOIN_BEFORE = {"MINUS", "VBAR", "PLUS", "STAR", "QMARK"} | _CLOSE


class _Newlines:
    """Postlexer: drop newlines inside brackets and next to operators; bound nesting."""
    always_accept = ("_NL",)

    def __init__(self):
        self.source: Source | None = None
        self.final_newline = True  # a file's statements end in newlines; a -D value does not

    def process(self, stream):
        depth, prev, pending = 0, None, None
        for tok in stream:
            if tok.type == "_NL":
                if prev is not None and depth == 0 and prev.type not in _JOIN_AFTER:
                    pending = pending or tok
                continue
            if pending is not None and tok.type not in _JOIN_BEFORE:
                yield pending
            pending = None
            if tok.type in _OPEN:
                depth += 1
                if depth > MAX_NESTING:
                    raise CnnError(f"brackets nested more than {MAX_NESTING} deep", _tok_span(self.source, tok),
                                   hint="flatten the expression, or name a part with `def`")
            elif tok.type in _CLOSE:
                depth = max(0, depth - 1)
            prev = tok
            yield tok
        if prev is not None and self.final_newline:  # every statement ends in a newline, even the file's last
            yield pending or Token("_NL", "\n", 0, prev.end_line, prev.end_column, prev.end_line, prev.end_column)


@lru_cache(maxsize=1)
def _parser() -> tuple[Lark, _Newlines]:
    post = _Newlines()
    parser = Lark.open(GRAMMAR, parser="lalr", lexer="basic", postlex=post, propagate_positions=True,
                       start=["start", "value"], cache=_cache_path())
    return parser, post


def _cache_path():
    """Lark pickles the built LALR tables here; rebuilding them costs ~0.1 s per run."""
    try:
        import tempfile
        from importlib.metadata import version
        import lark
        d = os.path.join(tempfile.gettempdir(), "cnndsl-cache")
        os.makedirs(d, exist_ok=True)
        return os.path.join(d, f"cnn-lark{lark.__version__}-{os.path.getmtime(GRAMMAR):.0f}.pickle")
    except Exception:  # an unwritable temp dir only costs time
        return False


def _tok_span(source: Source, tok) -> Span:
    line, col = getattr(tok, "line", None) or 1, getattr(tok, "column", None) or 1
    end = getattr(tok, "end_column", None) or col + 1
    return Span(source, line, col, getattr(tok, "end_line", None) or line, end)


def parse_text(text: str | bytes, path: str = "<string>") -> A.Program:
    """Parse a whole .net file into a Program; raise CnnError on any fault."""
    source = _source(text, path)
    return _transform(source, _run(source, "start"))


def parse_value(text: str, what: str = "<command line>"):
    """Parse a value such as `3`, `off`, `(3,5)` or `2*8` (for -D NAME=VALUE)."""
    source = Source(what, text)
    return _transform(source, _run(source, "value"))


def _transform(source: Source, tree):
    """Tree -> AST. Chains of postfix and prefix operators (`RELU*2*2*2...`, `----4`, `a: a: a: ...`)
    nest without brackets, so the bracket bound cannot catch them; the recursion limit does."""
    try:
        return _ToAst(source).transform(tree)
    except VisitError as e:
        if isinstance(e.orig_exc, CnnError):
            raise e.orig_exc from None
        if not isinstance(e.orig_exc, RecursionError):
            raise
    except RecursionError:
        pass
    raise CnnError(f"the expression is nested more than {MAX_NESTING} deep (a long chain of operators)",
                   _deep_span(source, tree), hint="write a repeat as one count (`*8`, not `*2*2*2`); name parts with `def`")


def _deep_span(source: Source, tree) -> Span:
    """Where the parse tree first gets deeper than MAX_NESTING (found without recursion)."""
    stack = [(tree, 0)]
    while stack:
        node, depth = stack.pop()
        children = getattr(node, "children", None)
        if children is None:
            continue
        if depth > MAX_NESTING and not getattr(node.meta, "empty", True):
            return Span(source, node.meta.line, node.meta.column, node.meta.line, node.meta.column + 1)
        stack.extend((c, depth + 1) for c in children)
    return Span(source, 1, 1, 1, 1)


def _source(text, path) -> Source:
    if len(text) > MAX_TEXT:  # checked first: a 10 MB file must not cost a decode, let alone a parse
        raise CnnError(f"{path}: the file is {len(text):,} {'bytes' if isinstance(text, bytes) else 'characters'}; "
                       f"the limit is {MAX_TEXT:,}", hint="a spec that long is generated: generate repeats (`*N`) instead")
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as e:
            line_start = text.rfind(b"\n", 0, e.start) + 1
            line, col = text.count(b"\n", 0, e.start) + 1, len(text[line_start:e.start].decode("utf-8", "replace")) + 1
            shown = Source(path, text.decode("utf-8", "replace"))
            raise CnnError(f"the file is not UTF-8 text (byte 0x{text[e.start]:02x})", Span(shown, line, col, line, col + 1),
                           hint="save the file as UTF-8") from None
    if text.startswith("\ufeff"):
        text = text[1:]
    return Source(path, text)


def _run(source: Source, start: str):
    parser, post = _parser()
    post.source = source
    post.final_newline = start == "start"
    if not source.text.strip() or all(not l.strip() or l.lstrip().startswith("#") for l in source.text.splitlines()):
        if start != "start":
            raise CnnError(f"{source.path}: empty value", hint="e.g. -D N=3 or -D pool=off")
        what = "is empty" if not source.text.strip() else "holds only comments"
        raise CnnError(f"{source.path} {what}: there is no network",
                       hint="a minimal spec is two lines: `input 32x32x3` and a network such as `CONV(16, 3) - RELU`")
    try:
        return parser.parse(source.text, start=start)
    except CnnError:
        raise
    except UnexpectedInput as e:
        raise _parse_error(source, e) from None
    except (LarkError, RecursionError) as e:
        raise CnnError(f"cannot parse: {e}", Span(source, 1, 1, 1, 1)) from None


# What a user probably meant, by the token the parser stopped at.
_EXPECT_WORDS = {
    "NAME": "a layer or block name", "INT": "a number", "DIMS": "a size such as 3x3", "FLOAT": "a number",
    "RPAR": "`)`", "RSQB": "`]`", "RBRACE": "`}`", "LPAR": "`(`", "MINUS": "`-`", "EQUAL": "`=`",
    "VBAR": "`|`", "PLUS": "`+`", "STAR": "`*`", "QMARK": "`?`", "COMMA": "`,`", "_NL": "a new line",
    "STRING": "a quoted string", "COLON": "`:`",
}


def _parse_error(source: Source, e: UnexpectedInput) -> CnnError:
    line, col = max(1, e.line or 1), max(1, e.column or 1)
    if isinstance(e, UnexpectedEOF) or (isinstance(e, UnexpectedToken) and e.token.type == "$END"):
        lines = source.text.rstrip().splitlines() or [""]
        line, col = len(lines), len(lines[-1]) + 1
        span = Span(source, line, max(1, col - 1), line, col)
        return CnnError("the spec ends in the middle of an expression", span,
                        hint=_hint_for(source, e) or "close every bracket and finish the last layer")
    if isinstance(e, UnexpectedCharacters):
        ch = source.text[e.pos_in_stream] if e.pos_in_stream < len(source.text) else "?"
        span = Span(source, line, col, line, col + 1)
        if not ch.isprintable():
            return CnnError(f"unexpected control character U+{ord(ch):04X}", span,
                            hint="a .net spec is plain text: is this a binary file?")
        return CnnError(f"unexpected character {ch!r}", span,
                        hint="names are letters, digits and _; sizes are written 3x3 or 224x224x3")
    tok = e.token
    span = Span(source, line, col, line, col + max(1, len(str(tok))))
    shown = "end of line" if tok.type == "_NL" else f"{str(tok)!r}"
    expected = sorted({_EXPECT_WORDS.get(t, None) for t in (e.expected or ())} - {None})
    hint = _hint_for(source, e) or (f"expected {', '.join(expected[:5])}" if expected else None)
    return CnnError(f"unexpected {shown}", span, hint=hint)


def _hint_for(source: Source, e: UnexpectedInput) -> str | None:
    """Labelled wrong inputs: the specification of the friendlier parse messages."""
    text = source.line(e.line or 1) if e.line else ""
    col = (e.column or 1) - 1
    before = text[:col]
    tok = getattr(e, "token", None)
    tok_type = getattr(tok, "type", None)
    if "{" in before and tok_type in ("PLUS", "VBAR"):
        return "one brace joins its branches one way: `{ a | b }` concatenates, `{ a + b }` adds; nest braces to mix them"
    if tok_type == "MINUS" and before.rstrip().endswith("*"):
        return "a repeat count is a number, a name or a parenthesised expression: `*(N-1)`"
    if tok_type == "_NL" and before.count("(") > before.count(")"):
        return "a `(` on this line is not closed"
    if tok_type == "NAME" and before.rstrip() and before.rstrip()[-1] not in "-|+({[:,=*":
        return "layers are joined with `-`: `CONV - RELU`"
    return None


_STATEMENTS = (A.InputDecl, A.Let, A.Def, A.Default, A.Include)


def _span(source: Source, meta) -> Span:
    if getattr(meta, "empty", True):
        return Span(source, 1, 1, 1, 1)
    return Span(source, meta.line, meta.column, meta.end_line, meta.end_column)


@v_args(meta=True)
class _ToAst(Transformer):
    """Parse tree -> astnodes, keeping a span on every node."""

    def __init__(self, source: Source):
        super().__init__()
        self.source = source

    def _s(self, meta):
        return _span(self.source, meta)

    def _ts(self, tok):
        return _tok_span(self.source, tok)

    # statements
    def start(self, meta, items):
        net = items[-1] if items and not isinstance(items[-1], _STATEMENTS) else None
        return A.Program(statements=[i for i in items if isinstance(i, _STATEMENTS)], net=net)

    def net(self, meta, items):
        return items[0]

    def input_stmt(self, meta, items):
        tok = items[0]
        dims = tuple(self._int(v, tok) for v in str(tok).split("x"))
        return A.InputDecl(dims, self._ts(tok))

    def let_stmt(self, meta, items):
        return A.Let(str(items[0]), items[1], self._ts(items[0]))

    def def_stmt(self, meta, items):
        name, params, body = items
        return A.Def(str(name), tuple(params or ()), body, self._ts(name))

    def params(self, meta, items):
        return list(items)

    def param(self, meta, items):
        return A.Param(str(items[0]), items[1], self._ts(items[0]))

    def default_stmt(self, meta, items):
        return A.Default(str(items[0]), tuple(items[1] or ()), self._ts(items[0]))

    def include_stmt(self, meta, items):
        return A.Include(str(items[0])[1:-1], self._ts(items[0]))

    # network
    def seq(self, meta, items):
        terms = tuple(i for i in items if not (isinstance(i, Token) and i.type == "MINUS"))
        return terms[0] if len(terms) == 1 else A.Seq(terms, self._s(meta))

    def label(self, meta, items):
        return A.Label(str(items[0]), items[1], self._s(meta))

    def repeat(self, meta, items):
        return A.Repeat(items[0], items[1], self._s(meta))

    def optional(self, meta, items):
        return A.Optional(items[0], self._s(meta))

    def group(self, meta, items):
        return items[0]

    def concat(self, meta, items):
        return A.Branches("CONCAT", tuple(items), self._s(meta))

    def add(self, meta, items):
        return A.Branches("ADD", tuple(items), self._s(meta))

    def call(self, meta, items):
        name, args = items
        return A.Call(str(name), tuple(args or ()), args is None and not self._has_parens(meta, name), self._s(meta))

    def _has_parens(self, meta, name):
        return getattr(meta, "end_column", 0) > name.end_column or getattr(meta, "end_line", 0) > name.end_line

    def args(self, meta, items):
        return [i if isinstance(i, A.Arg) else A.Arg(None, i, i.span) for i in items]

    def kwarg(self, meta, items):
        return A.Arg(str(items[0]), items[1], self._s(meta))

    # values
    def num(self, meta, items):
        text = str(items[0])
        value = float(text) if any(c in text for c in ".eE") else self._int(text, items[0])
        return A.Num(value, self._ts(items[0]))

    def dims(self, meta, items):
        return A.Dims(tuple(self._int(v, items[0]) for v in str(items[0]).split("x")), self._ts(items[0]))

    def _int(self, digits: str, tok) -> int:
        # Python refuses str -> int past 4300 digits; anything past 19 is over the spec's 10**18 anyway
        if len(digits.lstrip("0")) > 19:
            raise CnnError(f"the number {digits[:12]}... ({len(digits):,} digits) is too large", self._ts(tok),
                           hint="numbers in a spec stay below 10**18")
        return int(digits)

    def var(self, meta, items):
        return A.Var(str(items[0]), self._ts(items[0]))

    def string(self, meta, items):
        return A.Str(str(items[0])[1:-1], self._ts(items[0]))

    def tuple(self, meta, items):
        return A.Tuple(tuple(items), self._s(meta))

    def neg(self, meta, items):
        return A.Neg(items[1], self._s(meta))

    def _bin(op):
        def build(self, meta, items):
            left, right = items[0], items[-1]
            return A.BinOp(op, left, right, self._s(meta))
        return build

    add_op, sub_op, mul_op, div_op = _bin("+"), _bin("-"), _bin("*"), _bin("/")
    floordiv_op, mod_op, pow_op = _bin("//"), _bin("%"), _bin("**")
