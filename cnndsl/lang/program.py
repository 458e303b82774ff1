"""Text -> Program: parse a spec and the files it includes, once; the Program binds many times.

    >>> prog = parse("input 32x32x3\\nlet N = 2\\n(CONV(8, 3, p=1) - RELU)*N - POOL?")
    >>> sorted(prog.names)
    ['N', 'pool']
    >>> from cnndsl.lang.elaborate import elaborate
    >>> len(elaborate(prog, bindings={"N": 3, "pool": "off"}).nodes)
    6

`Program.names` holds every name the text could use: `let`s, optionals (by the names
that switch them) and variable references outside the blocks' own parameters, includes
included. A -D of a name outside it binds nothing and is a usage error; a name in it is
accepted even when this binding never reads it (a `*0` repeat, an optional that is off).

Each file's text is parsed once per process: the AST of a (path, text) pair is kept (`_parsed`),
so a library that every spec includes (nets/lib/*.net), or a spec loaded again unchanged, costs
a read and a dictionary look-up instead of a parse. Includes are still read, checked and resolved
on every parse, so an edited file is parsed afresh and the folder rules hold for each spec.
"""
from __future__ import annotations

import os
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass, field, replace

from . import astnodes as A
from ..errors import CnnError
from .syntax import parse_text

MAX_INCLUDE_DEPTH = 50   # files open in one include chain (a includes b includes c ...)
MAX_INCLUDE_FILES = 200  # distinct files one spec may include, all levels together


@dataclass
class _Includes:
    """What one parse of a spec shares across its includes: each file parsed once (by its real
    path), the folders includes may come from, and the budgets of files and bytes left."""
    allowed: tuple          # real paths of folders; an include must resolve inside one of them
    cache: dict = field(default_factory=dict)
    files: int = 0
    text: int = 0           # bytes read so far, the including spec's own text included


def parse(text: str | bytes, path: str | None = None, include_dirs=(), quotable: bool = True) -> A.Program:
    """Parse the text of a spec (and, relative to `path`, the files it includes) into a Program.

    An include resolves relative to the file that writes it and must stay inside the folder tree of
    the spec (its folder, or the working directory for a text without a path) or of one of
    `include_dirs` (the CLI's --include-dir), and name a `.net` file. `quotable=False` keeps the
    spec's lines out of messages (`parse_file` of a file not named .net)."""
    path = "<string>" if path is None else os.fspath(path)
    top = os.path.dirname(os.path.abspath(path)) if path != "<string>" else os.getcwd()
    if isinstance(include_dirs, (str, os.PathLike)):
        include_dirs = (include_dirs,)
    allowed = tuple(os.path.realpath(d) for d in (top, *map(os.fspath, include_dirs)))
    ctx = _Includes(allowed, text=len(text))
    return _parse(text, path, (os.path.realpath(path),), ctx, quotable)


def parse_file(path, include_dirs=()) -> A.Program:
    """Read (at most MAX_TEXT bytes of a regular file) and parse a spec; a file not named .net is
    parsed, but no message quotes a line of it."""
    from ..files import read_spec
    from .syntax import MAX_TEXT
    path = os.fspath(path)
    return parse(read_spec(path, MAX_TEXT), path, include_dirs, quotable=path.endswith(".net"))


def _parse(text, path, seen, ctx, quotable=True) -> A.Program:
    prog, own, at = _parsed(text, path, quotable)
    included = [_included(prog.statements[i], seen, ctx) for i in at]  # read and checked on every parse
    # the same text with the same included programs: the same (immutable) Program as last time
    key = (id(prog), *map(id, included))
    hit = _COMPOSED.get(key)
    if hit is not None and hit[0] is prog and all(a is b for a, b in zip(hit[1], included)):
        return hit[2]
    statements = list(prog.statements)
    for i, program in zip(at, included):
        statements[i] = replace(statements[i], program=program)
    composed = replace(prog, statements=tuple(statements),
                       names=own.union(*[p.names for p in included]) if included else own)
    if len(_COMPOSED) >= MAX_PARSED_FILES:
        _COMPOSED.clear()
    _COMPOSED[key] = (prog, tuple(included), composed)
    return composed


# The ASTs of the texts parsed so far, by (path, quotable, text), least recently used first. The
# text itself is the key (not its mtime or a hash of it): an edit within the file system's
# timestamp granularity, or one that keeps the size, is still seen, and a hit compares the whole
# text (a few microseconds for a few kilobytes). An AST is immutable, so hits share it.
_PARSED: OrderedDict = OrderedDict()
_PARSED_LOCK = threading.Lock()
MAX_PARSED_FILES = 256
MAX_PARSED_TEXT = 16_000_000  # characters (bytes) of the texts kept, all together
_parsed_text = [0]
# (id of a parsed text's AST, ids of the programs its includes gave) -> (that AST, those programs, the
# Program they make): a spec parsed again whose includes are unchanged is the same object, without
# rebuilding its statements
_COMPOSED: dict = {}


def _parsed(text, path, quotable) -> tuple:
    """(parse_text(text, path, quotable), the names its own text uses, the indices of its include
    statements), from the cache when this text was parsed before. Its includes are not read: `names`
    of the parsed statements leaves them out."""
    key = (path, quotable, text)
    with _PARSED_LOCK:
        prog = _PARSED.get(key)
        if prog is not None:
            _PARSED.move_to_end(key)
            return prog
    prog = parse_text(text, path, quotable)  # outside the lock: threads parse different files at once
    prog = (prog, frozenset(names(prog.statements, prog.net)),
            tuple(i for i, st in enumerate(prog.statements) if isinstance(st, A.Include)))
    with _PARSED_LOCK:
        if key not in _PARSED:
            _PARSED[key] = prog
            _parsed_text[0] += len(text)
            while len(_PARSED) > MAX_PARSED_FILES or _parsed_text[0] > MAX_PARSED_TEXT:
                (_, _, old), _ = _PARSED.popitem(last=False)
                _parsed_text[0] -= len(old)
    return prog


def clear_cache():
    """Forget every parsed text (tests; a long-running process that wants the memory back)."""
    with _PARSED_LOCK:
        _PARSED.clear()
        _COMPOSED.clear()
        _parsed_text[0] = 0


def resolve(st: A.Include, seen=(), ctx=None) -> A.Include:
    """The include with its file parsed (for Programs made by `parse_text` alone)."""
    if st.program is not None:
        return st
    if ctx is None:
        ctx = _Includes((os.path.realpath(os.path.dirname(os.path.abspath(st.span.source.path)))
                         if st.span.source.path != "<string>" else os.path.realpath(os.getcwd()),))
    return _include(st, seen, ctx)


def _include(st: A.Include, seen, ctx) -> A.Include:
    return replace(st, program=_included(st, seen, ctx))


def _included(st: A.Include, seen, ctx) -> A.Program:
    """The program of the file an include names, read and checked (the rules in `parse`)."""
    base = os.path.dirname(os.path.abspath(st.span.source.path)) if st.span.source.path != "<string>" else os.getcwd()
    if "\x00" in st.path:  # no file has such a name; os.path would raise ValueError
        raise CnnError("the include's file name holds a NUL character", st.span, code="E208",
                       hint="name a .net file inside the spec's folder tree, e.g. `include \"lib/blocks.net\"`")
    target = os.path.realpath(os.path.join(base, st.path))  # links resolved: the folder rule sees the real file
    if not any(_inside(target, folder) for folder in ctx.allowed):
        raise CnnError(f"`{st.path}` is outside the folder of the spec ({ctx.allowed[0]})", st.span, code="E208",
                       hint="includes stay inside the including spec's folder tree; allow another folder with "
                            "include_dirs=[...] (the API) or --include-dir DIR (the command line)")
    if not (st.path.endswith(".net") and target.endswith(".net")):
        raise CnnError(f"`{st.path}` is not a .net file; only specs are included", st.span, code="E208",
                       hint="an included file is a .net spec of let, def and default statements")
    if target in seen:
        raise CnnError(f"`{st.path}` includes itself (through {' -> '.join(os.path.basename(s) for s in seen)})",
                       st.span, code="E208")
    if len(seen) > MAX_INCLUDE_DEPTH:
        raise CnnError(f"includes nested more than {MAX_INCLUDE_DEPTH} deep", st.span, code="E208")
    if target not in ctx.cache:  # a file included twice (a diamond) is read, parsed and elaborated once
        from ..files import read_spec
        from .syntax import MAX_TEXT
        ctx.files += 1
        if ctx.files > MAX_INCLUDE_FILES:
            raise CnnError(f"the spec includes more than {MAX_INCLUDE_FILES} files", st.span, code="E208")
        left = MAX_TEXT - ctx.text
        if left <= 0:
            raise CnnError(f"the spec and its includes are over {MAX_TEXT:,} bytes; the limit is {MAX_TEXT:,}",
                           st.span, code="E103")
        text = read_spec(target, left, st.span, what=f"`{st.path}`")
        ctx.text += len(text)
        if not _has_statements(text):
            raise CnnError(f"`{st.path}` holds no statements (it is empty or only comments)", st.span, code="E208",
                           hint="an included file holds let, def, default or include statements")
        prog = _parse(text, target, seen + (target,), ctx)
        for item in (*prog.statements, prog.net):
            if isinstance(item, A.InputDecl) or (item is prog.net and item is not None):
                what = "an `input` line" if isinstance(item, A.InputDecl) else "a network"
                raise CnnError(f"`{st.path}` holds {what}; an included file may only hold let/def/default/include",
                               item.span, code="E208", notes=((st.span, f"`{st.path}` is included here"),),
                               hint="the including spec declares the input and the network")
        ctx.cache[target] = prog
    return ctx.cache[target]


def inlined(program: A.Program) -> A.Program:
    """The program with each include replaced by the included file's statements (its own includes
    inlined too; a file included twice, the first time only, as elaboration reads it once): a
    program that needs no other file, to print where the included files cannot be reached."""
    done = set()
    top = os.path.dirname(os.path.abspath(program.path)) if program.path != "<string>" else os.getcwd()
    ctx = _Includes((os.path.realpath(top),))  # for a Program from parse_text alone: each file read once

    def statements(prog):
        for st in prog.statements:
            if not isinstance(st, A.Include):
                yield st
            elif st.program is None and st.span is None:
                raise CnnError(f"`{st.path}` is not read, and nothing says where it is relative to", code="E900",
                               hint="give the Include its program (cnndsl.parse reads includes)")
            else:
                st = _include(st, (), ctx) if st.program is None else st
                if id(st.program) in done:
                    continue
                done.add(id(st.program))
                yield from statements(st.program)
    return replace(program, statements=tuple(statements(program)))


def notes(source) -> list[str]:
    """The `# note: ...` comment lines of a Source (none from one whose lines are not to be quoted):
    what a reader of a spec's figures should know, printed under `cnndsl report`'s table."""
    text = source.text if source is not None and source.quotable else ""
    return [m.group(1).strip() for m in re.finditer(r"^[ \t]*#[ \t]*note:(.*)$", text, re.M)]


def _inside(path, folder) -> bool:
    try:
        return os.path.commonpath([path, folder]) == folder
    except ValueError:  # another drive on Windows
        return False


def _has_statements(data: bytes) -> bool:
    for line in data.replace(b"\r", b"\n").split(b"\n"):
        line = line.strip()
        if line and not line.startswith(b"#"):
            return True
    return False


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
        name = e.switch(label)
        if name:
            out.add(name)
        else:
            groups[0] += 1
        _refs(e.body, shadow, out, groups)
