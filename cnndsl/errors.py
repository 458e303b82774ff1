"""Diagnostics, and the one error type that carries them.

Errors are data: the library raises `CnnError`, which holds one or more `Diagnostic`s
(severity, a stable code, message, span start and end, notes with their own spans,
hint, arithmetic); warnings are `Diagnostic`s too. Only the CLI prints them, with
`render()`, in the form compilers use:

    vgg.net:2:1: error: 3x3 filter at stride 3 does not fit a 7x7 input
      CONV(1, 3, s=3)
      ^~~~~~~~~~~~~~~
      (7 - 3 + 2*0)/3 + 1 = 2.33
      hint: pad the input (p=1) or use stride 1 or 2

and `to_dict()` gives the same as JSON-able data:

    >>> import cnndsl
    >>> try:
    ...     cnndsl.loads("input 32x32x3\\nCONV(8, 3) - FOO - RELU - BAR(3)")
    ... except cnndsl.CnnError as e:
    ...     [(d.code, d.message, d.span.col, d.span.end_col) for d in e.diagnostics]
    [('E201', 'unknown layer or block `FOO`', 14, 17), ('E201', 'unknown layer or block `BAR`', 27, 33)]
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import NamedTuple

# The stable codes (README, "Errors"): a code names a kind of mistake; its message may improve.
CODES = {
    "E101": "syntax: an unexpected character or token",
    "E102": "syntax: an unclosed bracket, or the spec ends in the middle of an expression",
    "E103": "the text cannot be read as a spec: empty, only comments, not UTF-8, too large",
    "E104": "brackets or operator chains nested too deeply",
    "E201": "unknown layer or block",
    "E202": "unknown or repeated argument or block parameter",
    "E203": "a missing argument, or too many positional arguments",
    "E204": "an argument's value has the wrong type or is out of range",
    "E205": "a variable that is not bound",
    "E206": "a value that cannot be computed: division by zero, too large, a bad repeat count or switch",
    "E207": "a name bound or a block defined twice, a second input line, or a block named like a layer kind",
    "E208": "an include that cannot be read, is outside the spec's tree or not a .net file, includes itself, or holds an input line, a network or nothing",
    "E301": "a layer does not accept its input's shape",
    "E302": "branches whose shapes do not join",
    "E303": "a window does not fit its input (an error under --strict)",
    "E304": "no input volume, a bad input volume, no network, or a network without layers",
    "E305": "streams misused: a layer given several streams, a `$k` past the streams, a join's branch or the network ending in several",
    "E401": "a limit: too many layers or expansion steps, recursive or too deeply nested blocks",
    "E402": "more memory (or disk) than this machine has: a network's tensors, data, an image or a checkpoint, refused before it is allocated",
    "E501": "a usage error: -D, --input or a file on the command line",
    "E900": "any other error",
    "W301": "a window does not fit its input: PyTorch floors and ignores the last rows or columns",
    "W302": "the input volume looks like PyTorch's CxHxW order; volumes are HxWxC",
}
MAX_ERRORS = 20  # independent errors reported from one file before giving up


def shown_path(path: str) -> str:
    """A file name as text that every output can hold: the bytes of a name that is not UTF-8 (which
    Python carries as lone surrogates, which no encoder writes) as backslash escapes, `a\\xff.net`."""
    try:
        path.encode("utf-8")
        return path
    except UnicodeEncodeError:
        import os
        return os.fsencode(path).decode("utf-8", "backslashreplace")


@dataclass(frozen=True)
class Source:
    """A text the parser read: a file, a string, or a command-line value.

    Lines are what the lexer counts: the text between two `\n` (the parser turns `\r\n` and a
    lone `\r` into `\n` first); U+2028, a vertical tab or a form feed are characters of a line.
    `quotable=False` (a file whose name does not end in `.net`) keeps its lines out of messages."""
    path: str
    text: str = field(repr=False, compare=False)
    quotable: bool = field(default=True, compare=False)

    def line(self, n: int) -> str:
        if not self.quotable or n < 1:
            return ""
        start = 0
        for _ in range(n - 1):  # no list of every line: a long file's excerpt costs one scan
            start = self.text.find("\n", start) + 1
            if start == 0:
                return ""
        end = self.text.find("\n", start)
        return self.text[start:] if end < 0 else self.text[start:end]


MAX_QUOTE = 60      # characters of a name or value quoted in a message, before it is cut
MAX_MESSAGE = 1000  # characters of a message, a hint or a note


def clip(text):
    """A message's text with every long quoted run (`...`, '...', "...") cut to MAX_QUOTE characters,
    and the whole cut to MAX_MESSAGE: a 1,000,000-character name must not print a megabyte."""
    if not isinstance(text, str) or len(text) <= MAX_QUOTE:
        return text
    text = _QUOTED.sub(_cut_quoted, text)
    if len(text) > MAX_MESSAGE:
        text = text[:MAX_MESSAGE - 30] + f"... ({len(text):,} characters)"
    return text


_QUOTED = re.compile(r"(`|'|\")([^`'\"\n]{%d,})\1" % (MAX_QUOTE + 1))


def _cut_quoted(m):
    q, inner = m.group(1), m.group(2)
    return f"{q}{inner[:MAX_QUOTE - 20]}...{inner[-8:]}{q} ({len(inner):,} characters)"


@dataclass(frozen=True, repr=False)
class Span:
    """1-based line and column of the first character, and of the one after the last."""
    source: Source
    line: int
    col: int
    end_line: int
    end_col: int

    def __str__(self) -> str:
        return f"{shown_path(self.source.path)}:{self.line}:{self.col}"

    __repr__ = __str__

    def to_dict(self) -> dict:
        return {"file": shown_path(self.source.path), "line": self.line, "col": self.col,
                "end_line": self.end_line, "end_col": self.end_col}


_NO_SPAN = {"file": None, "line": None, "col": None, "end_line": None, "end_col": None}


class Note(NamedTuple):
    """A second place a diagnostic points at ("the other branch is here"); unpacks as (span, message)."""
    span: Span | None
    message: str

    def to_dict(self) -> dict:
        return {"message": self.message, **(self.span.to_dict() if self.span else _NO_SPAN)}


@dataclass(frozen=True)
class Diagnostic:
    """One error or warning, as data."""
    severity: str                 # "error" or "warning"
    code: str                     # a key of CODES
    message: str
    span: Span | None = None
    notes: tuple = ()             # Notes
    hint: str | None = None
    arithmetic: str | None = None
    layer: str | None = None      # the layer it concerns, when there is one

    def __post_init__(self):
        for name in ("message", "hint", "arithmetic"):
            object.__setattr__(self, name, clip(getattr(self, name)))
        object.__setattr__(self, "notes", tuple(Note(n[0], clip(n[1])) for n in self.notes))

    def render(self, severity: str | None = None) -> str:
        return render(severity or self.severity, self.message, self.span, self.arithmetic, self.hint, self.notes)

    def to_dict(self) -> dict:
        out = {"severity": self.severity, "code": self.code, "message": self.message,
               **(self.span.to_dict() if self.span else _NO_SPAN),
               "hint": self.hint, "arithmetic": self.arithmetic, "notes": [Note(*n).to_dict() for n in self.notes]}
        if self.layer:
            out["layer"] = self.layer
        return out

    def __str__(self) -> str:
        return self.render()


class CnnError(Exception):
    """A fault in a spec or in how the tool was called: one diagnostic, or several (`diagnostics`).

    `usage=True` marks command-line mistakes (exit status 2); everything else is
    a faulty spec (exit status 1). The attributes (message, span, ...) are the first
    diagnostic's."""

    def __init__(self, message: str, span: Span | None = None, *, arithmetic: str | None = None,
                 hint: str | None = None, usage: bool = False, notes: tuple = (), code: str | None = None):
        message = clip(message)
        super().__init__(message)
        self.message = message
        self.span = span
        self.arithmetic = clip(arithmetic)
        self.hint = clip(hint)
        self.usage = usage
        self.notes = tuple((n[0], clip(n[1])) for n in notes)  # (Span, text) pairs: "the other branch is here"
        self.code = code or ("E501" if usage else "E900")
        self.layer = None
        self.others: tuple = ()    # further, independent errors of the same file (Diagnostics)
        self.truncated = False     # more errors than MAX_ERRORS: the rest were not looked for

    @classmethod
    def of(cls, diagnostics, truncated=False) -> "CnnError":
        """One error that carries several independent diagnostics (the first is its own)."""
        first, *rest = diagnostics
        err = cls(first.message, first.span, arithmetic=first.arithmetic, hint=first.hint,
                  notes=first.notes, code=first.code)
        err.layer, err.others, err.truncated = first.layer, tuple(rest), truncated
        return err

    def diagnostic(self, severity: str = "error") -> Diagnostic:
        """This error's own diagnostic (the first of `diagnostics`)."""
        return Diagnostic(severity, self.code, self.message, self.span, tuple(Note(*n) for n in self.notes),
                          self.hint, self.arithmetic, self.layer)

    @property
    def diagnostics(self) -> tuple:
        return (self.diagnostic(),) + self.others

    def render(self, severity: str = "error") -> str:
        out = [self.diagnostic(severity).render()] + [d.render() for d in self.others]
        if self.truncated:
            out.append(f"cnndsl: note: stopped after {len(out)} errors")
        return "\n".join(out)

    def to_dict(self) -> dict:
        """The first diagnostic as a dict (`diagnostics` holds them all)."""
        return self.diagnostic().to_dict()

    def __str__(self) -> str:
        return self.render()


def render(severity: str, message: str, span: Span | None, arithmetic: str | None = None,
           hint: str | None = None, notes: tuple = ()) -> str:
    out = [f"{span}: {severity}: {message}" if span else f"cnndsl: {severity}: {message}"]
    if span:
        out += _excerpt(span)
    if arithmetic:
        out.append(f"  {arithmetic}")
    for note_span, text in notes:
        out.append(f"{note_span}: note: {text}" if note_span else f"cnndsl: note: {text}")
        if note_span:
            out += _excerpt(note_span)
    if hint:
        out.append(f"  hint: {hint}")
    return "\n".join(out)


EXCERPT_WIDTH = 100  # a longer source line is cut to a window around the caret


def _excerpt(span: Span) -> list[str]:
    text = span.source.line(span.line).expandtabs(1)
    if not text.strip():
        return []
    text = "".join(c if c.isprintable() else "?" for c in text)  # a NUL or ESC must not reach the terminal
    width = (span.end_col - span.col) if span.end_line == span.line else len(text) - span.col + 1
    width = max(1, min(width, len(text) - span.col + 1))
    col = span.col
    if len(text) > EXCERPT_WIDTH:
        start = max(0, min(col - 1 - EXCERPT_WIDTH // 3, len(text) - EXCERPT_WIDTH))
        head, tail = ("..." if start else ""), ("..." if start + EXCERPT_WIDTH < len(text) else "")
        text = head + text[start:start + EXCERPT_WIDTH] + tail
        col = col - start + len(head)
        width = min(width, EXCERPT_WIDTH - (col - len(head) - 1))
    return [f"  {text}", "  " + " " * (col - 1) + "^" + "~" * (width - 1)]
