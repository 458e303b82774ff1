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

import hashlib
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
    """`STEM-N2-K1.net`: the stem and each choice, kept to letters, digits and `_.=-`. Where that
    drops characters (`P=(1, 1)` and `P=11` both give `P11`), a hash of the choices as written is
    added (`STEM-P11-3f9a2c01.net`), so that two members never share a file."""
    raw = "-".join(f"{k}{_short(v)}" for k, v in choices.items())
    kept = _safe(raw)
    name = "-".join(part for part in (_safe(stem) or "member", kept) if part)
    if kept != raw:
        name += "-" + hashlib.sha256(raw.encode("utf-8")).hexdigest()[:8]
    return name + ".net"


def _safe(text) -> str:
    return re.sub(r"[^A-Za-z0-9_.=-]", "", text)


def member_files(program, space, indices) -> list[tuple[str, str]]:
    """(file name, text) of each member in `indices`, or a usage error naming two that would share a
    file (names differing only in case are one file on macOS and Windows) before anything is written."""
    from ..outputs import check_unique
    from .enumerate import _show
    files = [member_file(program, space, i) for i in indices]
    check_unique([name for name, _ in files],
                 lambda i: "member " + " ".join(f"{k}={v}" for k, v in _show(space.member(indices[i])).items()))
    return files


def write_members(folder, program, space, indices) -> list[str]:
    """Write the members `indices` as FOLDER/NAME.net, each atomically, after every target is checked:
    never over the family or a file it includes, never over a `.net` file an earlier --emit did not
    write. Returns the paths, in `indices`' order."""
    from ..files import atomic_write
    files = member_files(program, space, indices)
    paths = check_member_targets(folder, program, [name for name, _ in files])
    for path, (_, text) in zip(paths, files):
        atomic_write(path, text.encode("utf-8"))
    return paths


def check_member_targets(folder, program, names) -> list[str]:
    """FOLDER/NAME of each name, each checked as an --emit target (cnndsl.outputs.check_target)."""
    from ..outputs import check_target, spec_files
    sources = spec_files(program)
    paths = [os.path.join(folder, name) for name in names]
    for path in paths:
        check_target(path, sources, flag="--emit", member=True, hint="emit into another folder (a member's file "
                     "is named after the family and its choices)")
    return paths


def _short(v):
    if isinstance(v, bool):
        return "_on" if v else "_off"
    if isinstance(v, tuple) and all(isinstance(b, bool) for b in v):
        return "_" + "".join("1" if b else "0" for b in v)
    return str(v)
