"""Text -> AST: the lark LALR parser, a newline-aware postlexer, and parse errors.

    >>> prog = parse_text("input 32x32x3\\n(CONV-RELU)*2 - POOL\\n")
    >>> type(prog.net).__name__
    'Seq'

Re-entrant: the parser, its postlexer and its inline transformer are built once and
shared, so they hold no per-parse state; what one parse needs (its Source, the
operator-chain depths) lives in a context variable set for that parse, which each
thread (and each nested parse) sees on its own. `program.parse` adds includes.
"""
from __future__ import annotations

import hashlib
import os
import re
import stat
import sys
import threading
from contextvars import ContextVar
from dataclasses import dataclass
from functools import lru_cache

from lark import Lark, Token, Transformer
from lark.exceptions import LarkError, UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from . import astnodes as A, lalr
from ..errors import MAX_ERRORS, CnnError, Source, Span

def _grammar_path() -> str:
    """The wheel ships grammars/ as cnndsl/grammars/; a source checkout has it beside cnndsl/."""
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # cnndsl/
    for path in (os.path.join(package, "grammars", "cnn.lark"), os.path.join(os.path.dirname(package), "grammars", "cnn.lark")):
        if os.path.exists(path):
            return path
    raise CnnError("cnndsl is installed without its grammar (grammars/cnn.lark)", hint="reinstall: pip install -e .")


GRAMMAR = _grammar_path()
MAX_NESTING = 200  # brackets deeper than this are a mistake, and would exhaust Python's stack
MAX_TEXT = 2_000_000  # bytes (characters) of one file, and of a spec with all its includes
# Tokens of one file, counted (by one regular expression) before lark sees any: lark's pure-Python
# LALR costs ~25 us a token, so this keeps the largest parse near 2 s. ~50k layers written out.
MAX_TOKENS = 100_000
_TOKEN = re.compile(r'#[^\n]*|"[^"\n]*"?|[0-9A-Za-z_.]+|[^\s]')

_OPEN = {"LPAR", "LSQB", "LBRACE"}
_CLOSE = {"RPAR", "RSQB", "RBRACE"}
# A newline next to one of these continues the expression instead of ending a statement.
_JOIN_AFTER = {"MINUS", "VBAR", "PLUS", "STAR", "EQUAL", "COMMA", "COLON", "SLASH", "PERCENT", "_PRODUCT", "_MEAN",
               "_AT"} | _OPEN
_JOIN_BEFORE = {"MINUS", "VBAR", "PLUS", "STAR", "QMARK", "_PRODUCT", "_MEAN", "_AT"} | _CLOSE


@dataclass
class _Parse:
    """What one parse needs beside the shared parser: set in a context variable for that parse."""
    source: Source
    final_newline: bool  # a file's statements end in newlines; a -D value does not
    depth: dict          # id(node) -> operator-chain depth


_CURRENT: ContextVar[_Parse] = ContextVar("cnndsl_parse")
_BUILDING = threading.Lock()  # two threads must not build (and write lark's cache file) at once


class _Newlines:
    """Postlexer: drop newlines inside brackets and next to operators; bound nesting. Stateless:
    each call of `process` keeps its state in locals."""
    always_accept = ("_NL",)

    def process(self, stream):
        state = _CURRENT.get()
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
                    raise CnnError(f"brackets nested more than {MAX_NESTING} deep", _tok_span(state.source, tok),
                                   hint="flatten the expression, or name a part with `def`", code="E104")
            elif tok.type in _CLOSE:
                depth = max(0, depth - 1)
            prev = tok
            yield tok
        if prev is not None and state.final_newline:  # every statement ends in a newline, even the file's last
            end = len(state.source.text)
            yield pending or Token("_NL", "\n", end, prev.end_line, prev.end_column, prev.end_line, prev.end_column)


def _parser() -> Lark:
    with _BUILDING:
        return _build()


@lru_cache(maxsize=1)
def _build() -> Lark:
    # The AST is built while parsing (an inline transformer): no parse tree, no second pass;
    # spans come from the tokens, which is why brackets around arguments are named terminals.
    return Lark.open(GRAMMAR, parser="lalr", lexer="basic", postlex=_Newlines(), transformer=_ToAst(),
                     start=["start", "value"], cache=_cache_path())


def _cache_path():
    """Where lark keeps the built LALR tables (rebuilding them costs ~0.15 s a run): a file in the
    user's own cache folder (`$XDG_CACHE_HOME/cnndsl`, else `~/.cache/cnndsl`), or no cache at all.
    Lark unpickles that file, so it is used only where nobody else can have written it: the folder
    and the file must be ours, neither a link, and writable by no group and no other user. Never a
    shared folder such as the system's temporary one, where anyone may plant a file first."""
    try:
        import lark
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        if not os.path.isabs(base):
            return False
        folder = os.path.join(base, "cnndsl")
        os.makedirs(folder, mode=0o700, exist_ok=True)
        if not _private(folder):
            return False
        with open(GRAMMAR, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()[:16]
        path = os.path.join(folder, f"cnn-lark{lark.__version__}-py{sys.version_info[0]}{sys.version_info[1]}-{digest}.pickle")
        return path if not os.path.lexists(path) or _private(path) else False
    except Exception:  # no home, a read-only disk: only costs time
        return False


def _private(path) -> bool:
    """Ours alone: owned by this user, not a link, writable by no group or other user."""
    st = os.lstat(path)
    return (stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode)) and not stat.S_ISLNK(st.st_mode) \
        and st.st_uid == os.getuid() and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


def _tok_span(source: Source, tok) -> Span:
    line, col = getattr(tok, "line", None) or 1, getattr(tok, "column", None) or 1
    end = getattr(tok, "end_column", None) or col + 1
    return Span(source, line, col, getattr(tok, "end_line", None) or line, end)


def _tok_end(tok) -> tuple:
    """(end line, end column) of a token, as _tok_span gives them."""
    line, col = getattr(tok, "line", None) or 1, getattr(tok, "column", None) or 1
    return getattr(tok, "end_line", None) or line, getattr(tok, "end_column", None) or col + 1


def parse_text(text: str | bytes, path: str = "<string>", quotable: bool = True) -> A.Program:
    """Parse one .net text into a Program (its includes not yet read: `program.parse` reads them).
    `quotable=False`: no message shows a line of it (a file that is not a .net file)."""
    source = _source(text, path, quotable)
    _count_tokens(source)
    return _run(source, "start")


def _count_tokens(source: Source):
    """Refuse a text of more than MAX_TOKENS tokens before parsing it (comments are not counted)."""
    tokens = _TOKEN.findall(source.text)
    n = len(tokens) - sum(1 for t in tokens if t[:1] == "#")
    if n <= MAX_TOKENS:
        return
    seen = 0
    for m in _TOKEN.finditer(source.text):
        seen += m.group()[:1] != "#"
        if seen > MAX_TOKENS:
            at = m.start()
            break
    line = source.text.count("\n", 0, at) + 1
    col = at - (source.text.rfind("\n", 0, at) + 1) + 1
    raise CnnError(f"{source.path} has {n:,} tokens; the limit is {MAX_TOKENS:,} (this is token {MAX_TOKENS + 1:,})",
                   Span(source, line, col, line, col + 1), code="E103",
                   hint="a spec that long is generated: generate repeats (`*N`) or blocks (`def`) instead")


def parse_value(text: str, what: str = "<command line>"):
    """Parse a value such as `3`, `off`, `(3,5)` or `2*8` (for -D NAME=VALUE)."""
    source = Source(what, text)
    return _run(source, "value")


def _source(text, path, quotable=True) -> Source:
    if len(text) > MAX_TEXT:  # checked first: a 10 MB file must not cost a decode, let alone a parse
        raise CnnError(f"{path}: the file is {len(text):,} {'bytes' if isinstance(text, bytes) else 'characters'}; "
                       f"the limit is {MAX_TEXT:,}", hint="a spec that long is generated: generate repeats (`*N`) instead",
                       code="E103")
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as e:
            line_start = text.rfind(b"\n", 0, e.start) + 1
            line, col = text.count(b"\n", 0, e.start) + 1, len(text[line_start:e.start].decode("utf-8", "replace")) + 1
            shown = Source(path, text.decode("utf-8", "replace"), quotable)
            raise CnnError(f"the file is not UTF-8 text (byte 0x{text[e.start]:02x})", Span(shown, line, col, line, col + 1),
                           hint="save the file as UTF-8", code="E103") from None
    if text.startswith("\ufeff"):
        text = text[1:]
    if "\r" in text:  # Windows and old Mac line ends: a line is what the lexer counts, between two \n
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return Source(path, text, quotable)


def _lines(text: str, keepends: bool = False) -> list[str]:
    """The text's lines as the lexer counts them (only `\n` ends one; not U+2028, VT or FF)."""
    if keepends:
        return re.findall(r"[^\n]*\n|[^\n]+$", text)
    return text.split("\n")


def _run(source: Source, start: str):
    parser = _parser()
    if not source.text.strip() or all(not l.strip() or l.lstrip().startswith("#") for l in _lines(source.text)):
        if start != "start":
            raise CnnError(f"{source.path}: empty value", hint="e.g. -D N=3 or -D pool=off", code="E103")
        what = "is empty" if not source.text.strip() else "holds only comments"
        raise CnnError(f"{source.path} {what}: there is no network",
                       hint="a minimal spec is two lines: `input 32x32x3` and a network such as `CONV(16, 3) - RELU`",
                       code="E103")
    try:
        return _attempt(parser, source, source.text, start)
    except CnnError as first:
        if start != "start" or first.span is None:
            raise
        raise _more_syntax_errors(parser, source, first) from None


def _attempt(parser, source: Source, text: str, start: str):
    """One parse of `text` (the source's text, or it with a prefix blanked), spans into `source`:
    lalr.py's loop over lark's tables first; lark itself where that gives up (and for the error)."""
    token = _CURRENT.set(_Parse(source, start == "start", {}))
    try:
        return lalr.parse(parser, text, start, parser.options.postlex)
    except Exception:  # GiveUp, or an error lark will raise again (with lark's message for it)
        _CURRENT.reset(token)
        token = _CURRENT.set(_Parse(source, start == "start", {}))  # a fresh state: no depth of a discarded node
    try:
        return parser.parse(text, start=start)
    except CnnError:
        raise
    except UnexpectedInput as e:
        raise _parse_error(source, e) from None
    except (LarkError, RecursionError) as e:
        raise CnnError(f"cannot parse: {e}", Span(source, 1, 1, 1, 1), code="E101") from None
    finally:
        _CURRENT.reset(token)


_KEYWORDS = ("let ", "def ", "default ", "include ", "input ")


def _more_syntax_errors(parser, source: Source, first: CnnError) -> CnnError:
    """After a syntax error, parse again from the next line that starts a statement (`let`, `def`, ...
    at the start of a line), the lines before it blanked, to report the independent errors there too.
    Each attempt stops at its first error, so all of them together read the text about once."""
    lines = _lines(source.text, keepends=True)
    found, at = [first.diagnostic()], first.span
    while len(found) < MAX_ERRORS:
        # the statement after the one at fault; the faulty one itself when the error is at its keyword
        # (a trailing `-` or an open bracket on the line before swallowed it)
        start = at.line - 1 if at.col == 1 else at.line
        restart = next((i for i in range(start, len(lines)) if lines[i].startswith(_KEYWORDS)), None)
        if restart is None:
            break
        blank = re.sub(r"[^\n]", " ", "".join(lines[:restart]))  # same positions, nothing to parse
        try:
            _attempt(parser, source, blank + "".join(lines[restart:]), "start")
            break
        except CnnError as err:
            if err.span is None or (err.span.line, err.span.col) <= (at.line, at.col):  # no progress
                break
            found.append(err.diagnostic())
            at = err.span
    return CnnError.of(found, truncated=len(found) >= MAX_ERRORS) if len(found) > 1 else first


# What a user probably meant, by the token the parser stopped at.
_EXPECT_WORDS = {
    "NAME": "a layer or block name", "INT": "a number", "DIMS": "a size such as 3x3", "FLOAT": "a number",
    "RPAR": "`)`", "RSQB": "`]`", "RBRACE": "`}`", "LPAR": "`(`", "MINUS": "`-`", "EQUAL": "`=`",
    "VBAR": "`|`", "PLUS": "`+`", "STAR": "`*`", "QMARK": "`?`", "COMMA": "`,`", "_NL": "a new line",
    "STRING": "a quoted string", "COLON": "`:`", "_PRODUCT": "`.*`", "_MEAN": "`&`", "_AT": "`@`",
}


def _parse_error(source: Source, e: UnexpectedInput) -> CnnError:
    line, col = max(1, e.line or 1), max(1, e.column or 1)
    if isinstance(e, UnexpectedEOF) or (isinstance(e, UnexpectedToken) and e.token.type == "$END"):
        lines = _lines(source.text.rstrip()) or [""]
        line, col = len(lines), len(lines[-1]) + 1
        span = Span(source, line, max(1, col - 1), line, col)
        notes, ch = _unclosed(source, len(source.text), line, always=True)
        return CnnError(f"the spec ends before this `{ch}` is closed" if ch else "the spec ends in the middle of an expression",
                        span, code="E102", notes=notes,
                        hint=ch and f"close the `{ch}` with `{_PAIRS[ch]}`" or _hint_for(source, e)
                        or "close every bracket and finish the last layer")
    if isinstance(e, UnexpectedCharacters):
        ch = source.text[e.pos_in_stream] if e.pos_in_stream < len(source.text) else "?"
        span = Span(source, line, col, line, col + 1)
        if not ch.isprintable():
            return CnnError(f"unexpected control character U+{ord(ch):04X}", span, code="E101",
                            hint="a .net spec is plain text: is this a binary file?")
        return CnnError(f"unexpected character {ch!r}", span, code="E101",
                        hint="names are letters, digits and _; sizes are written 3x3 or 224x224x3")
    tok = e.token
    span = Span(source, line, col, line, col + max(1, len(str(tok))))
    shown = "end of line" if tok.type == "_NL" else f"{str(tok)!r}"
    copies = _copies_hint(source, e)
    if copies:
        return CnnError(f"unexpected {shown}", span, hint=copies, code="E101")
    expected = sorted({_EXPECT_WORDS.get(t, None) for t in (e.expected or ())} - {None})
    hint = _hint_for(source, e) or (f"expected {', '.join(expected[:5])}" if expected else None)
    pos = tok.start_pos if isinstance(getattr(tok, "start_pos", None), int) else len(source.text)
    at_end = pos >= len(source.text.rstrip())
    notes, ch = _unclosed(source, pos, line, always=tok.type in _CLOSE or at_end)
    if ch:
        message = f"the spec ends before the `{ch}` is closed" if at_end else f"unexpected {shown}"
        return CnnError(message, span, hint=f"close the `{ch}` with `{_PAIRS[ch]}`", notes=notes, code="E102")
    return CnnError(f"unexpected {shown}", span, hint=hint, code="E101")


_PAIRS = {"(": ")", "[": "]", "{": "}"}


def _unclosed(source: Source, pos: int, line: int, always: bool) -> tuple:
    """A note at the innermost bracket still open at `pos`, and the bracket, when the error is probably
    its missing closer: at the end of the text, at a closer of another kind (`always`), or lines after it."""
    text, stack, n = source.text, [], 1
    i, end = 0, min(pos, len(text))
    while i < end:
        ch = text[i]
        if ch == "\n":
            n += 1
        elif ch == "#":
            j = text.find("\n", i)
            i = end if j < 0 else j
            continue
        elif ch == '"':
            j = text.find('"', i + 1)
            i = end if j < 0 else j + 1
            continue
        elif ch in _PAIRS:
            stack.append((ch, i, n))
        elif ch in ")]}" and stack:
            stack.pop()
        i += 1
    if not stack:
        return (), None
    ch, at, at_line = stack[-1]
    if not (always or at_line < line):
        return (), None
    col = at - (text.rfind("\n", 0, at) + 1) + 1
    return ((Span(source, at_line, col, at_line, col + 1), f"this `{ch}` is not closed"),), ch


_COPIED = re.compile(r"\*\*\s*(\w+|\([^()]*\))(\s*@\s*\w+)?\s*$")  # `**4 @i` just before


def _copies_hint(source: Source, e: UnexpectedInput) -> str | None:
    """`**` where no branch of braces stands, or copies with no branch beside them to say the join."""
    before = source.line(e.line).rstrip()[:max(0, (e.column or 1) - 1)] if e.line else ""
    if str(e.token) == "**":
        return ("`**n` copies a whole branch of braces side by side, `{ ID + (CONV - BN)**4 }` (brackets round a "
                "branch of several layers); `*n` repeats in sequence")
    if str(e.token) == "}" and _COPIED.search(before):
        return "copies stand beside another branch, whose `+`, `|`, `.*` or `&` says how they join: `{ ID + (CONV - BN)**4 }`"
    return None


def _hint_for(source: Source, e: UnexpectedInput) -> str | None:
    """Labelled wrong inputs: the specification of the friendlier parse messages."""
    text = source.line(e.line or 1) if e.line else ""
    col = (e.column or 1) - 1
    before = text[:col]
    tok = getattr(e, "token", None)
    tok_type = getattr(tok, "type", None)
    if "{" in before and tok_type in ("PLUS", "VBAR", "_PRODUCT", "_MEAN"):
        return ("one brace joins its branches one way: `{ a | b }` concatenates, `{ a + b }` adds, `{ a .* b }` "
                "multiplies, `{ a & b }` averages; nest braces to mix them")
    if tok_type == "MINUS" and before.rstrip().endswith("*"):
        return "a repeat count is a number, a name or a parenthesised expression: `*(N-1)`"
    if tok_type == "_NL" and before.count("(") > before.count(")"):
        return "a `(` on this line is not closed"
    if tok_type == "NAME" and str(tok).startswith("x") and before.rstrip()[-1:].isdigit():
        return "write sizes without spaces: 32x32x3, 3x3"
    if tok_type == "NAME" and before.rstrip() and before.rstrip()[-1] not in "-|+({[:,=*":
        return "layers are joined with `-`: `CONV - RELU`"
    return None


_STATEMENTS = (A.InputDecl, A.Let, A.Def, A.Default, A.Include)


def _over(a: Span, b: Span) -> Span:
    """The span from the start of a to the end of b."""
    return Span(a.source, a.line, a.col, b.end_line, b.end_col)


class _ToAst(Transformer):
    """Parse tree -> astnodes while parsing, keeping a span on every node. Built once and shared:
    the parse it works for is `_CURRENT`."""

    def _ts(self, tok):
        return _tok_span(_CURRENT.get().source, tok)

    def _from(self, tok, end_line, end_col):
        """_over(self._ts(tok), a span ending at end_line:end_col), without the token's own Span (a
        frozen dataclass: each costs microseconds, and a written-out spec makes several a layer)."""
        return Span(_CURRENT.get().source, getattr(tok, "line", None) or 1, getattr(tok, "column", None) or 1,
                    end_line, end_col)

    def _nest(self, node, *children):
        """Operator chains (`RELU*2*2*...`, `----4`, `a: a: ...`, `1+1+...`) nest without brackets, so the
        postlexer's bracket bound cannot catch them; later passes recurse on them, so bound them here."""
        depth = _CURRENT.get().depth
        d = 1 + max((depth.get(id(c), 0) for c in children), default=0)
        if d > MAX_NESTING:
            raise CnnError(f"the expression is nested more than {MAX_NESTING} deep (a long chain of operators)",
                           Span(node.span.source, node.span.line, node.span.end_col - 1, node.span.line, node.span.end_col)
                           if node.span.line == node.span.end_line else node.span,
                           hint="write a repeat as one count (`*8`, not `*2*2*2`); name parts with `def`", code="E104")
        depth[id(node)] = d
        return node

    # statements
    def start(self, items):
        net = items[-1] if items and not isinstance(items[-1], _STATEMENTS) else None
        return A.Program(statements=tuple(i for i in items if isinstance(i, _STATEMENTS)), net=net,
                         path=_CURRENT.get().source.path)

    def net(self, items):
        return items[0]

    def input_stmt(self, items):
        """`input 224x224x3`, `32x32xC`, `HxWxC`: the lexer cuts these into DIMS, INT and NAME tokens
        (`32x32` `xC`), written without spaces between them; their text split at `x` is the volume."""
        first, last = items[0], items[-1]
        span = _over(self._ts(first), self._ts(last))
        for a, b in zip(items, items[1:]):
            if (a.end_line, a.end_column) != (b.line, b.column):
                if str(b).startswith("x") or str(a).endswith("x"):
                    raise CnnError("unexpected space in the input volume", self._ts(b), code="E101",
                                   hint="write sizes without spaces: `input 224x224x3` or `input 32x32xC`")
                raise CnnError(f"unexpected {str(b)!r} after the input volume", self._ts(b), code="E101",
                               hint="the input statement is one volume, e.g. `input 224x224x3`; the network "
                                    "goes on a line of its own")
        text = "".join(map(str, items))
        dims, at = [], first.column
        for part in text.split("x"):
            part_span = Span(span.source, span.line, at, span.line, at + max(1, len(part)))
            at += len(part) + 1
            if part.isdigit():
                dims.append(A.Num(self._int(part, first), part_span))
            elif part.isidentifier():
                dims.append(A.Var(part, part_span))
            else:
                raise CnnError(f"input {text} is not a volume HxWxC (or a vector length)", span,
                               hint="write e.g. `input 224x224x3`; each of H, W, C is a number or a variable "
                                    "whose name has no `x`", code="E304")
        return A.InputDecl(tuple(dims), span)

    def let_stmt(self, items):
        return A.Let(str(items[0]), items[1], self._ts(items[0]), items[2] if len(items) > 2 else None)

    def choice_range(self, items):
        return A.Choices((items[0], items[2]), True, _over(items[0].span, items[2].span))

    def choice_list(self, items):
        return A.Choices(tuple(items), False, _over(items[0].span, items[-1].span))

    def def_stmt(self, items):
        name, params, body = items
        return A.Def(str(name), tuple(params or ()), body, self._ts(name))

    def params(self, items):
        return list(items)

    def param(self, items):
        return A.Param(str(items[0]), items[1], self._ts(items[0]))

    def default_stmt(self, items):
        return A.Default(str(items[0]), tuple(items[1] or ()), self._ts(items[0]))

    def include_stmt(self, items):
        return A.Include(str(items[0])[1:-1], self._ts(items[0]))

    # network
    def seq(self, items):
        if len(items) == 1:
            return items[0]
        terms = tuple(items[::2])  # term MINUS term MINUS term
        return A.Seq(terms, _over(terms[0].span, terms[-1].span))

    def label(self, items):
        end = items[1].span
        return self._nest(A.Label(str(items[0]), items[1], self._from(items[0], end.end_line, end.end_col)), items[1])

    def repeat(self, items):
        body, count, index = items
        end = self._ts(index) if index is not None else count.span
        return self._nest(A.Repeat(body, count, _over(body.span, end), None if index is None else str(index)), body, count)

    def copies(self, items):
        body, count, index = items
        end = self._ts(index) if index is not None else count.span
        return self._nest(A.Copies(body, count, _over(body.span, end), None if index is None else str(index)), body, count)

    def optional(self, items):
        return self._nest(A.Optional(items[0], _over(items[0].span, self._ts(items[1]))), items[0])

    def group(self, items):
        return items[0]

    def concat(self, items):
        return A.Branches("CONCAT", tuple(items), _over(items[0].span, items[-1].span))

    def add(self, items):
        return A.Branches("ADD", tuple(items), _over(items[0].span, items[-1].span))

    def product_join(self, items):
        return A.Branches("MUL", tuple(items), _over(items[0].span, items[-1].span))

    def mean_join(self, items):
        return A.Branches("MEAN", tuple(items), _over(items[0].span, items[-1].span))

    def call(self, items):
        name, lpar, args, rpar = items
        span = self._ts(name) if rpar is None else self._from(name, *_tok_end(rpar))
        return A.Call(str(name), tuple(args or ()), lpar is None, span)

    def args(self, items):
        return [i if isinstance(i, A.Arg) else A.Arg(None, i, i.span) for i in items]

    def kwarg(self, items):
        end = items[1].span
        return A.Arg(str(items[0]), items[1], self._from(items[0], end.end_line, end.end_col))

    # values
    def num(self, items):
        text = str(items[0])
        value = float(text) if any(c in text for c in ".eE") else self._int(text, items[0])
        return A.Num(value, self._ts(items[0]))

    def dims(self, items):
        return A.Dims(tuple(self._int(v, items[0]) for v in str(items[0]).split("x")), self._ts(items[0]))

    def _int(self, digits: str, tok) -> int:
        # Python refuses str -> int past 4300 digits; anything past 19 is over the spec's 10**18 anyway
        if len(digits.lstrip("0")) > 19:
            raise CnnError(f"the number {digits[:12]}... ({len(digits):,} digits) is too large", self._ts(tok),
                           hint="numbers in a spec stay below 10**18", code="E206")
        return int(digits)

    def var(self, items):
        return A.Var(str(items[0]), self._ts(items[0]))

    def func(self, items):
        name, _, *args, rpar = items
        args = tuple(a for a in args if a is not None)
        return self._nest(A.Func(str(name), args, self._from(name, *_tok_end(rpar))), *args)

    def string(self, items):
        return A.Str(str(items[0])[1:-1], self._ts(items[0]))

    def tuple(self, items):
        return A.Tuple(tuple(items), _over(items[0].span, items[-1].span))

    def neg(self, items):
        end = items[1].span
        return self._nest(A.Neg(items[1], self._from(items[0], end.end_line, end.end_col)), items[1])

    def _bin(op):
        def build(self, items):
            left, right = items[0], items[-1]
            return self._nest(A.BinOp(op, left, right, _over(left.span, right.span)), left, right)
        return build

    add_op, sub_op, mul_op, div_op = _bin("+"), _bin("-"), _bin("*"), _bin("/")
    floordiv_op, mod_op, pow_op = _bin("//"), _bin("%"), _bin("**")
