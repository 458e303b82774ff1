"""Text -> Program: parse a spec and the files it includes, once; the Program binds many times.

    >>> prog = parse("input 32x32x3\\nlet N = 2\\n(CONV(8, 3, p=1) - RELU)*N - POOL?")
    >>> sorted(prog.names)
    ['N', 'pool']
    >>> len(prog.bind(bindings={"N": 3, "pool": "off"}).graph.nodes)
    6

`Program.names` holds every name the text could use: `let`s, optionals (by the names
that switch them) and variable references outside the blocks' own parameters, includes
included. A -D of a name outside it binds nothing and is a usage error; a name in it is
accepted even when this binding never reads it (a `*0` repeat, an optional that is off).
"""
from __future__ import annotations

import os
from dataclasses import replace

from . import astnodes as A
from ..errors import CnnError
from .syntax import parse_text

MAX_INCLUDES = 50


def parse(text: str | bytes, path: str | None = None) -> A.Program:
    """Parse the text of a spec (and, relative to `path`, the files it includes) into a Program."""
    path = "<string>" if path is None else os.fspath(path)
    return _parse(text, path, (os.path.abspath(path),), {})


def parse_file(path) -> A.Program:
    from ..files import read_bytes
    path = os.fspath(path)
    return parse(read_bytes(path), path)


def _parse(text, path, seen, cache) -> A.Program:
    prog = parse_text(text, path)
    statements = tuple(_include(st, seen, cache) if isinstance(st, A.Include) else st for st in prog.statements)
    return replace(prog, statements=statements, names=frozenset(names(statements, prog.net)))


def resolve(st: A.Include, seen=(), cache=None) -> A.Include:
    """The include with its file parsed (for Programs made by `parse_text` alone)."""
    return st if st.program is not None else _include(st, seen, {} if cache is None else cache)


def _include(st: A.Include, seen, cache) -> A.Include:
    base = os.path.dirname(st.span.source.path) if st.span.source.path != "<string>" else "."
    target = os.path.abspath(os.path.join(base, st.path))
    if target in seen:
        raise CnnError(f"`{st.path}` includes itself (through {' -> '.join(os.path.basename(s) for s in seen)})",
                       st.span, code="E208")
    if len(seen) > MAX_INCLUDES:
        raise CnnError("includes nested too deeply", st.span, code="E208")
    if target not in cache:
        try:
            with open(target, "rb") as f:
                text = f.read()
        except OSError as e:
            raise CnnError(f"cannot include `{st.path}`: {e.strerror}", st.span, code="E208",
                           hint=f"paths are relative to the including file: looked for {target}") from None
        prog = _parse(text, target, seen + (target,), cache)
        if prog.net is not None:
            raise CnnError(f"`{st.path}` holds a network; an included file may only hold let/def/default",
                           prog.net.span, code="E208")
        cache[target] = prog
    return replace(st, program=cache[target])


def names(statements, net) -> set:
    """Every let, optional and free variable reference of a program's text, includes included."""
    out, groups = set(), [0]
    for st in statements:
        if isinstance(st, A.Let):
            out.add(st.name)
            _refs(st.value, frozenset(), out, groups)
        elif isinstance(st, A.Def):
            params = frozenset(p.name for p in st.params)
            for p in st.params:
                if p.default is not None:
                    _refs(p.default, frozenset(), out, groups)
            _refs(st.body, params, out, groups)
        elif isinstance(st, A.Default):
            for a in st.args:
                _refs(a.value, frozenset(), out, groups)
        elif isinstance(st, A.InputDecl):
            for d in st.dims:
                _refs(d, frozenset(), out, groups)
        elif isinstance(st, A.Include) and st.program is not None:
            out |= st.program.names
    if net is not None:
        _refs(net, frozenset(), out, groups)
    # unlabelled optional groups are numbered as elaboration meets them: accept every number
    out |= {f"optional{i}" for i in range(1, groups[0] + 1)}
    return out


def _refs(e, shadow, out, groups, label=None):
    if isinstance(e, A.Var):
        if e.name not in shadow:
            out.add(e.name)
    elif isinstance(e, A.BinOp):
        _refs(e.left, shadow, out, groups)
        _refs(e.right, shadow, out, groups)
    elif isinstance(e, (A.Neg,)):
        _refs(e.operand, shadow, out, groups)
    elif isinstance(e, (A.Tuple, A.Seq, A.Branches)):
        for i in e.items:
            _refs(i, shadow, out, groups)
    elif isinstance(e, A.Func):
        for i in e.args:
            _refs(i, shadow, out, groups)
    elif isinstance(e, A.Call):
        for a in e.args:
            _refs(a.value, shadow, out, groups)
    elif isinstance(e, A.Repeat):
        _refs(e.body, shadow | {e.index} if e.index else shadow, out, groups)
        _refs(e.count, shadow, out, groups)
    elif isinstance(e, A.Label):
        _refs(e.body, shadow, out, groups, e.name)
    elif isinstance(e, A.Optional):
        if label:
            out.add(label)
        elif isinstance(e.body, A.Call):
            out.add(e.body.name.lower())
        else:
            groups[0] += 1
        _refs(e.body, shadow, out, groups)
