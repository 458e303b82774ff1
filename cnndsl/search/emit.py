"""A member as a concrete `.net` file: the family's text with its choices written as `let`s.

    >>> import cnndsl
    >>> text = "input 8x8x3\\nlet N = 1 in 1..3\\n(CONV(4, 3, p=1) - RELU)*N - POOL?"
    >>> print(member_text(cnndsl.parse(text), {"N": 2, "pool": False}))
    # a member of <string>: N=2 pool=off
    let N = 2
    let pool = off
    input 8x8x3
    (CONV(4, 3, p=1) - RELU)*N - POOL?
    <BLANKLINE>

Optionals switched per occurrence cannot be a `let`: such a member is written layer by layer
from the IR (sequential networks only), with every argument spelled out.
"""
from __future__ import annotations

import os
import re

from ..errors import CnnError
from ..lang import astnodes as A


def fmt(v) -> str:
    if isinstance(v, bool):
        return "on" if v else "off"
    if isinstance(v, tuple):
        return "(" + ", ".join(fmt(i) for i in v) + ")"
    if isinstance(v, float):
        return repr(v)
    return str(v)


def member_text(program, choices: dict, fixed: dict | None = None, input=None) -> str:
    """The program's own text, its ranged and fixed variables bound by `let`s at the top; `input`
    (a search's --input: 'HxWxC' or a tuple) replaces the file's `input` line."""
    from ..net import _source_of
    src = _source_of(program)
    lines = (src.text if src is not None else "").splitlines()
    binds = {**(fixed or {}), **choices}
    drop = set()
    for st in program.statements:
        if isinstance(st, A.Let) and st.name in binds:
            for ln in range(st.span.line, (st.choices or st.value).span.end_line + 1):
                drop.add(ln - 1)
    declared = next((st for st in program.statements if isinstance(st, A.InputDecl)), None)
    if input is not None:
        from ..lang.elaborate import parse_volume
        shape = parse_volume(input) if isinstance(input, str) else tuple(input)
        written = "input " + "x".join(map(str, shape))
        sp = declared.span if declared is not None and declared.span.line == declared.span.end_line else None
        if sp is not None and sp.source == src:
            line = lines[sp.line - 1]
            start = line.rfind("input", 0, sp.col)  # the span may start at the dimensions
            start = start if start >= 0 else sp.col - 1
            lines[sp.line - 1] = line[:start] + written + line[sp.end_col - 1:]
        else:  # declared in an include, or not at all: the member's own line comes first
            lines.insert(0, written)
            drop = {i + 1 for i in drop}
    if any(isinstance(st, A.Include) for st in program.statements):
        base = os.path.dirname(os.path.abspath(program.path))
        lines = [re.sub(r'^(\s*include\s+")([^"]+)"', lambda m: f'{m.group(1)}{os.path.join(base, m.group(2))}"', l)
                 for l in lines]
    head = [f"# a member of {program.path}: " + " ".join(f"{k}={fmt(v)}" for k, v in choices.items())]
    head += [f"let {k} = {v if isinstance(v, str) else fmt(v)}" for k, v in binds.items()]
    body = [l for i, l in enumerate(lines) if i not in drop]
    return "\n".join(head + body) + "\n"


def flat_text(graph, title: str) -> str:
    """A sequential graph written layer by layer (`CONV(32, (3, 3), s=(1, 1), ...)`)."""
    from ..kinds import KINDS
    out = [f"# {title}", "input " + "x".join(map(str, graph.input_shape))]
    calls, prev = [], "input"
    for n in graph.nodes:
        if n.inputs != [prev]:
            raise CnnError(f"cannot write `{n.name}` layer by layer: the member has branches", usage=True,
                           code="E501", hint="switch its optionals together (-D NAME=on,off) to emit it")
        prev = n.name
        if n.implicit:
            continue
        kind = KINDS[n.op]
        args = [fmt(n.attrs[a.name]) if a.default is None else f"{a.name}={fmt(n.attrs[a.name])}"
                for a in kind.args if a.name in n.attrs]
        calls.append(f"{n.op}({', '.join(args)})" if args else n.op)
    out.append("\n- ".join(calls))
    return "\n".join(out) + "\n"


def member_file(program, space, index) -> tuple[str, str]:
    """(file name, text) of member `index` of `space`, as `search --emit` writes it: the family's text
    with `let`s (and the search's --input), or layer by layer for per-occurrence optionals."""
    from .enumerate import _show
    from .member import elaborate_member
    choices = space.member(index)
    stem = os.path.splitext(os.path.basename(program.path))[0]
    if space.each:
        graph, _ = elaborate_member(program, space.bindings(choices), space.input)
        shown = " ".join(f"{k}={v}" for k, v in _show(choices).items())
        text = flat_text(graph, f"a member of {program.path}: {shown}")
    else:
        text = member_text(program, choices, space.fixed, input=space.input)
    return file_name(stem, choices), text


def file_name(stem, choices) -> str:
    parts = [stem] + [f"{k}{_short(v)}" for k, v in choices.items()]
    return re.sub(r"[^A-Za-z0-9_.=-]", "", "-".join(parts)) + ".net"


def _short(v):
    if isinstance(v, bool):
        return "_on" if v else "_off"
    if isinstance(v, tuple) and all(isinstance(b, bool) for b in v):
        return "_" + "".join("1" if b else "0" for b in v)
    return str(v)
