"""One error type for everything a user can get wrong, carrying a source span.

Errors are data: the library raises `CnnError`; only the CLI prints it, with
`render()`, in the form compilers use:

    vgg.net:2:1: error: 3x3 filter at stride 3 does not fit a 7x7 input
      CONV(1, 3, s=3)
      ^~~~~~~~~~~~~~~
      (7 - 3 + 2*0)/3 + 1 = 2.33
      hint: pad the input (p=1) or use stride 1 or 2
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Source:
    """A text the parser read: a file, a string, or a command-line value."""
    path: str
    text: str = field(repr=False, compare=False)

    def line(self, n: int) -> str:
        lines = self.text.splitlines()
        return lines[n - 1] if 0 < n <= len(lines) else ""


@dataclass(frozen=True, repr=False)
class Span:
    """1-based line and column of the first character, and of the one after the last."""
    source: Source
    line: int
    col: int
    end_line: int
    end_col: int

    def __str__(self) -> str:
        return f"{self.source.path}:{self.line}:{self.col}"

    __repr__ = __str__


class CnnError(Exception):
    """A fault in a spec or in how the tool was called.

    `usage=True` marks command-line mistakes (exit status 2); everything else is
    a faulty spec (exit status 1)."""

    def __init__(self, message: str, span: Span | None = None, *, arithmetic: str | None = None,
                 hint: str | None = None, usage: bool = False, notes: tuple = ()):
        super().__init__(message)
        self.message = message
        self.span = span
        self.arithmetic = arithmetic
        self.hint = hint
        self.usage = usage
        self.notes = tuple(notes)  # (Span, text) pairs: "the other branch is here"

    def render(self, severity: str = "error") -> str:
        return render(severity, self.message, self.span, self.arithmetic, self.hint, self.notes)

    def to_dict(self) -> dict:
        s = self.span
        out = {"message": self.message, "file": s and s.source.path, "line": s and s.line,
               "col": s and s.col, "arithmetic": self.arithmetic, "hint": self.hint}
        if getattr(self, "layer", None):
            out["layer"] = self.layer
        return out

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
        out.append(f"{note_span}: note: {text}")
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
