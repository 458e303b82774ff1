"""A member as a concrete `.net` file: the family's program bound to the member's choices, printed.

    >>> import cnndsl
    >>> text = "input 8x8x3\\nlet N = 1 in 1..3\\n(CONV(4, 3, p=1) - RELU)*N - POOL?"
    >>> print(member_text(cnndsl.parse(text), {"N": 2, "pool": False}), end="")
    # a member of <string>: N=2 pool=off
    let pool = off
    input 8x8x3
    let N = 2
    <BLANKLINE>
    (CONV(4, 3, p=1) - RELU)*N - POOL?

The member is built from the program, not from its text (`member_program`: lets set, ranges
dropped, includes inlined) and printed by cnndsl.lang.printer, so it parses to the family's own
network. Optionals switched per occurrence cannot be a `let`: such a member is written layer by
layer from the IR (sequential networks only), with every argument spelled out.
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
    """The member as a `.net` file: the family's program with its ranged and fixed variables bound
    (`member_program`), printed (cnndsl.lang.printer) under a header that names the choices, and
    the family's `# note:` lines, which `report` prints under its table."""
    from ..lang.printer import format_program
    from ..lang.program import notes
    decl = next((st for st in program.statements if isinstance(st, A.InputDecl)), None)
    head = [f"# a member of {program.path}: " + " ".join(f"{k}={fmt(v)}" for k, v in choices.items())]
    head += [f"# note: {n}" for n in notes(decl.span.source if decl is not None and decl.span is not None else None)]
    return "\n".join(head) + "\n" + format_program(member_program(program, choices, fixed, input))


def member_program(program, choices: dict, fixed: dict | None = None, input=None):
    """The family bound to one member, as a Program that needs no other file: includes inlined (an
    emitted member is read from another folder than the family's), each bound `let` given its
    value and no range, a `let` first for a bound name that no `let` binds (an optional's switch,
    a free variable), and `input` (a search's --input: 'HxWxC' or a tuple) as the input line.
    `choices` are values (a member's); `fixed` are -D texts (a search's plain -D NAME=VALUE)."""
    from ..lang.program import inlined, names
    from ..lang.syntax import parse_value
    binds = {k: parse_value(v, f"-D {k}") for k, v in (fixed or {}).items()}
    binds.update((k, _value_node(v)) for k, v in choices.items())
    statements, bound = [], set()
    for st in inlined(program).statements:
        if isinstance(st, A.Let) and (st.name in binds or st.choices is not None):
            st = A.Let(st.name, binds.get(st.name, st.value), st.span)
            bound.add(st.name)
        elif isinstance(st, A.InputDecl) and input is not None:
            continue
        statements.append(st)
    first = [A.Let(k, v, None) for k, v in binds.items() if k not in bound]
    if input is not None:
        from ..lang.elaborate import parse_volume
        shape = parse_volume(input) if isinstance(input, str) else tuple(input)
        first.append(A.InputDecl(tuple(A.Num(d, None) for d in shape), None))
    statements = tuple(first + statements)
    return A.Program(statements, program.net, program.path, frozenset(names(statements, program.net)))


def _value_node(v):
    """A chosen value as the spec writes it: `on`, `same`, `(3, 5)`, `-1`, `"text"`."""
    from ..lang.values import SYMBOLS
    if isinstance(v, bool):
        return A.Var("on" if v else "off", None)
    if isinstance(v, str):
        return A.Var(v, None) if v in SYMBOLS else A.Str(v, None)
    if isinstance(v, tuple):
        return A.Tuple(tuple(_value_node(i) for i in v), None)
    if v < 0:
        return A.Neg(A.Num(-v, None), None)
    return A.Num(v, None)


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
