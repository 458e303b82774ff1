"""A family as a design space: the ranged variables and free optionals of a spec, counted and indexed.

    >>> import cnndsl
    >>> from cnndsl.search.space import Space
    >>> prog = cnndsl.parse("input 32x32x3\\nlet N = 2 in 1..3\\n[(CONV(8, 3, p=1) - RELU)*N - POOL?]*2")
    >>> space = Space(prog, {"pool": "each"})
    >>> space.count, space.member(0)
    (12, {'N': 1, 'pool': (True, True)})

Where the choices come from:

- `let N = 2 in 1..5` / `let C = 32 in 16, 32, 64` in the file, `-D N=1..5` / `-D K=0,1,2` on the
  command line (a -D range replaces the file's); a plain `-D N=3` fixes a variable;
- an optional (`POOL?`, switched by `pool`) is a free choice when ranged: `-D pool=on,off` (or
  `let pool = on in on, off`) switches every occurrence together (*tied*); `-D pool=each` (or
  `let pool = on in each`) switches each occurrence on its own: `[... - POOL?]*M` then has 2^M
  pool patterns for each M. An optional nobody ranges keeps its default (on).

Members are numbered 0 .. count-1 without being made: variables that change how many times an
optional occurs (repeat counts, switches: *structural*) form the outer part, each with its weight
(2^occurrences for `each` optionals, found by expanding that part once); the rest is mixed radix.
"""
from __future__ import annotations

import bisect
import functools
import math

from ..errors import CnnError
from ..lang import astnodes as A
from ..lang.values import BOOLS, Values, top_scope
from .peruse import PerUse

EACH = "each"
MAX_SKELETONS = 200_000   # structural assignments expanded to count `each` optionals


def parse_choices(name: str, text: str):
    """`1..5` -> [1..5], `16,32,64` -> [16, 32, 64], `on,off` -> [True, False], `each` -> EACH;
    None for a plain value (a fixed binding)."""
    from ..lang.syntax import parse_value
    text = text.strip()
    if text == EACH:
        return EACH
    dots = text.find("..", 1)  # a range `lo..hi` (a regex for this was quadratic in the spaces)
    m = dots > 0 and dots + 2 < len(text)
    parts = [text[:dots], text[dots + 2:]] if m else _split_top(text)
    if not m and len(parts) < 2:
        try:  # a value that cannot be read is the command line's mistake, not every member's
            parse_value(text, f"-D {name}")
        except CnnError as err:
            err.usage = True
            raise
        return None
    ev = _Eval()
    values = []
    for p in parts:
        if not p.strip():
            raise CnnError(f"-D {name}={text}: an empty choice", usage=True, code="E501",
                           hint=f"write -D {name}=1..5 (a range) or -D {name}=16,32,64 (a list)")
        try:
            values.append(ev.value(parse_value(p, f"-D {name}"), _empty_scope()))
        except CnnError as err:
            err.usage = True
            raise
    return _expand(name, values, bool(m), f"-D {name}={text}")


def _split_top(text):
    parts, depth, cur = [], 0, ""
    for ch in text:
        depth += ch in "([" and 1 or (-1 if ch in ")]" else 0)
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    return parts + [cur]


def _empty_scope():
    return top_scope()


class _Eval(Values):
    """The language's own value arithmetic, on constants (choices name no variables)."""
    def __init__(self):
        self.bindings, self.globals, self.globals_named, self.used = {}, {}, set(), set()


def _expand(name, values, is_range, where, span=None):
    if is_range:
        lo, hi = values
        if any(isinstance(v, bool) or not isinstance(v, int) for v in (lo, hi)):
            raise CnnError(f"{where}: a range takes whole numbers, got {lo}..{hi}", span, usage=span is None,
                           code="E206", hint="write e.g. 1..5, or list the values: 0.1, 0.2")
        if hi < lo:
            raise CnnError(f"{where}: the range {lo}..{hi} is empty", span, usage=span is None, code="E206",
                           hint=f"a range runs upwards and includes both ends: {hi}..{lo}")
        if hi - lo >= 10**6:
            raise CnnError(f"{where}: the range {lo}..{hi} has {hi - lo + 1:,} values", span, usage=span is None,
                           code="E401", hint="a range of a design variable stays under a million values")
        return list(range(lo, hi + 1))
    out = []
    for v in values:
        if isinstance(v, str) and v in BOOLS:
            v = BOOLS[v]
        if v not in out:
            out.append(v)
    return out


class Space:
    """The members of a family: `Space(program, defines)`, with `defines` as -D gives them ({NAME: text})."""

    def __init__(self, program: A.Program, defines: dict | None = None, input=None):
        self.program, self.input = program, input
        if isinstance(input, str):  # a bad --input is the command line's mistake, not every member's
            from ..lang.elaborate import parse_volume
            parse_volume(input)
        defines = dict(defines or {})
        self.ranges: dict = {}     # variable -> its values (in order)
        self.each: list = []       # optionals switched per occurrence
        self.fixed: dict = {}      # plain -D bindings
        self.defaults: dict = {}   # variable -> the file's value (the default member)
        lets = {}
        self._collect_lets(program, lets)
        for name, st in lets.items():
            if st.choices is not None:
                self.ranges[name] = self._file_choices(st)
                try:  # a constant value; one computed from other variables has no single default here
                    self.defaults[name] = _Eval().value(st.value, _empty_scope())
                except CnnError:
                    pass
        optionals = optional_names(program)
        for name, text in defines.items():
            choices = parse_choices(name, text)
            if choices is None:
                self.fixed[name] = text
                self.ranges.pop(name, None)
            else:
                self.ranges[name] = choices
        for name in list(self.ranges):
            if self.ranges[name] == EACH:
                if name not in optionals:
                    raise CnnError(f"`{name}=each`: `{name}` switches no optional", usage=True, code="E501",
                                   hint=f"the spec's optionals: {', '.join(sorted(optionals)) or 'none'}")
                del self.ranges[name]
                self.each.append(name)
        self._check_read(optionals)
        self.names = list(self.ranges)
        self.structural = [n for n in self.names if n in structural_names(program)] if self.each else []
        self.inner = [n for n in self.names if n not in self.structural]
        self._weights()

    # ---- building -------------------------------------------------------------------
    def _collect_lets(self, program, lets):
        for st in program.statements:
            if isinstance(st, A.Include) and st.program is not None:
                self._collect_lets(st.program, lets)
            elif isinstance(st, A.Let):
                lets.setdefault(st.name, st)

    def _file_choices(self, st: A.Let):
        c = st.choices
        if not c.range and len(c.items) == 1 and isinstance(c.items[0], A.Var) and c.items[0].name == EACH:
            return EACH
        ev = _Eval()
        values = [ev.value(v, _empty_scope()) for v in c.items]
        return _expand(st.name, values, c.range, f"`let {st.name} = ... in ...`", c.span)

    def _check_read(self, optionals):
        names = self.program.names
        for name in list(self.ranges) + self.each:
            if name not in names:
                raise CnnError(f"-D {name}=...: `{name}` is ranged but the spec never reads it", usage=True,
                               code="E501", hint=f"the spec's variables and optionals: {', '.join(sorted(names))}")
        for name, values in self.ranges.items():
            if not values:
                raise CnnError(f"`{name}` has an empty range", usage=True, code="E501")
        unread = unread_lets(self.program)
        for name in self.ranges:
            if name in unread:
                raise CnnError(f"`{name}` is ranged but nothing reads it: every member would be the same net",
                               usage=True, code="E501", hint=f"use `{name}` in the network, or drop its range")

    def _weights(self):
        """The outer (structural) assignments and how many members each holds."""
        inner = math.prod(len(self.ranges[n]) for n in self.inner)
        self.inner_size = inner
        if not self.each:
            self.skeletons = None
            self.count = inner
            return
        outer = math.prod(len(self.ranges[n]) for n in self.structural)
        if outer > MAX_SKELETONS:
            raise CnnError(f"{outer:,} assignments of {', '.join(self.structural)} to expand to count the "
                           f"per-occurrence optionals; the limit is {MAX_SKELETONS:,}", usage=True, code="E401",
                           hint="narrow a range, or switch the optionals together (-D NAME=on,off)")
        self.skeletons, self.occurrences, cum = [], [], [0]
        for i in range(outer):
            assign = self._decode(i, self.structural)
            occ = self._occurrences(assign)
            self.skeletons.append(assign)
            self.occurrences.append(occ)
            cum.append(cum[-1] + inner * 2 ** sum(occ))
        self.cum = cum
        self.count = cum[-1]

    def _occurrences(self, assign) -> list:
        """How often each `each` optional occurs, all switched on, at this structural assignment."""
        from .tracking import Tracking
        bindings = {**self.fixed, **{n: v[0] for n, v in self.ranges.items()}, **assign}
        best = [0] * len(self.each)
        for on in (False, True):  # off first: a volume that all the pools would shrink away still counts
            e = Tracking(self.program, self.input, {**bindings, **{n: on for n in self.each}}, False,
                         self.program.path)
            try:
                g = e.run()
            except CnnError:
                g = e.graph
                if g is None:
                    continue
                g.optionals = list(e.optionals.values())
                best = [max(b, sum(o.uses for o in g.optionals if o.name == n)) for b, n in zip(best, self.each)]
                continue
            return [sum(o.uses for o in g.optionals if o.name == n) for n in self.each]
        return best

    def _decode(self, i, names) -> dict:
        """Mixed radix, the last name fastest; `names` is in the order of self.names (so is the dict)."""
        vals = [None] * len(names)
        for k in range(len(names) - 1, -1, -1):
            choices = self.ranges[names[k]]
            i, r = divmod(i, len(choices))
            vals[k] = choices[r]
        return dict(zip(names, vals))

    # ---- members ----------------------------------------------------------------------
    def member(self, i: int) -> dict:
        """The choices of member `i` (0 <= i < count): {name: value}, `each` optionals as bit tuples."""
        if not 0 <= i < self.count:
            raise IndexError(i)
        if self.skeletons is None:
            return self._decode(i, self.names)
        s = bisect.bisect_right(self.cum, i) - 1
        rest = i - self.cum[s]
        rest, j = divmod(rest, self.inner_size)
        out = {**self.skeletons[s], **self._decode(j, self.inner)}
        out = {n: out[n] for n in self.names}
        for n, occ in zip(self.each, self.occurrences[s]):
            rest, bits = divmod(rest, 2 ** occ)
            out[n] = _bits(occ, bits)
        return out

    def bindings(self, choices: dict) -> dict:
        """What the elaborator is given for a member (an `each` optional as a fresh PerUse)."""
        b = dict(self.fixed)
        for n, v in choices.items():
            b[n] = PerUse(v) if n in self.each else v
        return b

    def describe(self) -> dict:
        return {"variables": {n: list(v) for n, v in self.ranges.items()}, "each": list(self.each),
                "fixed": dict(self.fixed), "count": self.count}


@functools.lru_cache(maxsize=4096)
def _bits(occ, bits) -> tuple:
    """The on/off choices of `occ` occurrences numbered `bits` (0: all on), the first occurrence slowest."""
    return tuple(not (bits >> (occ - 1 - k)) & 1 for k in range(occ))


def optional_names(program) -> set:
    """The names that switch the program's optionals (labels, lower-cased calls, optionalN)."""
    out, groups = set(), [0]

    def walk(e, label=None):
        if isinstance(e, A.Optional):
            name = e.switch(label)
            if name is None:
                groups[0] += 1
                name = f"optional{groups[0]}"
            out.add(name)
            walk(e.body)
        elif isinstance(e, A.Label):
            walk(e.body, e.name)
        elif isinstance(e, (A.Seq, A.Branches)):
            for i in e.items:
                walk(i)
        elif isinstance(e, A.Repeat):
            walk(e.body)
    for st in _all_statements(program):
        if isinstance(st, A.Def):
            walk(st.body)
    if program.net is not None:
        walk(program.net)
    return out


def _all_statements(program):
    for st in program.statements:
        if isinstance(st, A.Include) and st.program is not None:
            yield from _all_statements(st.program)
        else:
            yield st


def _var_refs(e, out: set):
    """Every variable name an AST value or network expression mentions."""
    if isinstance(e, A.Var):
        out.add(e.name)
    elif isinstance(e, A.BinOp):
        _var_refs(e.left, out)
        _var_refs(e.right, out)
    elif isinstance(e, A.Neg):
        _var_refs(e.operand, out)
    elif isinstance(e, (A.Tuple, A.Seq, A.Branches)):
        for i in e.items:
            _var_refs(i, out)
    elif isinstance(e, A.Call):
        for a in e.args:
            _var_refs(a.value, out)
    elif isinstance(e, A.Repeat):
        _var_refs(e.body, out)
        _var_refs(e.count, out)
    elif isinstance(e, (A.Label, A.Optional)):
        _var_refs(e.body, out)
    return out


def unread_lets(program) -> set:
    """Lets that nothing reads: no network, block, default, input or other let mentions them."""
    lets, read = set(), set()
    for st in _all_statements(program):
        if isinstance(st, A.Let):
            lets.add(st.name)
            _var_refs(st.value, read)
        elif isinstance(st, A.Def):
            _var_refs(st.body, read)
            for p in st.params:
                if p.default is not None:
                    _var_refs(p.default, read)
        elif isinstance(st, A.Default):
            for a in st.args:
                _var_refs(a.value, read)
        elif isinstance(st, A.InputDecl):
            for d in st.dims:
                _var_refs(d, read)
    if program.net is not None:
        _var_refs(program.net, read)
    return lets - read - optional_names(program)


def structural_names(program) -> set:
    """Variables that may change the network's structure (how often an optional occurs): those a
    repeat count mentions, optionals' switches, and, transitively, what lets and the arguments of
    calls to blocks with such parameters mention. Conservative: more names only cost counting time."""
    defs = {st.name: st for st in _all_statements(program) if isinstance(st, A.Def)}
    lets = {st.name: st for st in _all_statements(program) if isinstance(st, A.Let)}
    out = set(optional_names(program))

    def counts(e, acc):
        if isinstance(e, A.Repeat):
            _var_refs(e.count, acc)
            counts(e.body, acc)
        elif isinstance(e, (A.Seq, A.Branches)):
            for i in e.items:
                counts(i, acc)
        elif isinstance(e, (A.Label, A.Optional)):
            counts(e.body, acc)
        elif isinstance(e, A.Call) and e.name in defs:
            acc.add(("call", e))
        return acc

    bodies = [d.body for d in defs.values()] + ([program.net] if program.net is not None else [])
    structural_defs, changed = set(), True
    while changed:
        changed = False
        for d in defs.values():
            if d.name not in structural_defs:
                acc = counts(d.body, set())
                names = {a for a in acc if isinstance(a, str)} | out
                calls = [a[1] for a in acc if not isinstance(a, str)]
                if {p.name for p in d.params} & names or any(c.name in structural_defs for c in calls):
                    structural_defs.add(d.name)
                    changed = True
    for body in bodies:
        for a in counts(body, set()):
            if isinstance(a, str):
                out.add(a)
            elif a[1].name in structural_defs:
                _var_refs(a[1], out)
    for d in defs.values():
        if d.name in structural_defs:
            for p in d.params:
                if p.default is not None:
                    _var_refs(p.default, out)
    changed = True
    while changed:
        before = len(out)
        for name in list(out):
            if name in lets:
                _var_refs(lets[name].value, out)
        changed = len(out) != before
    return out
