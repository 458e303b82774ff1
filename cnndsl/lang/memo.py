"""What the plain elaborator keeps from one elaboration to the next: a call's attributes, a block
call's arguments and a layer's output shape, each by the AST node and the values it read.

A mixin of the elaborator that `elaborate()` uses (the search's elaborators keep their own memos).
program.py parses each text once, so a spec loaded again, or a library that many specs include,
hands the elaborator the same AST nodes: what their arguments bind to is then known already. A
key holds everything the result depends on, so a hit is what the work would have given:

    call site's attributes   (id of the Call, the kind it names, `default`s in force for the kind,
                              values of the variables its arguments read)
    equal arguments          (kind, bare, `default`s, the arguments' values): one attrs object for
                              every call site that writes them, so that shapes and counts are
                              worked out once per distinct layer (a spec with every layer written
                              out costs about what the same layers in a repeat cost)
    block call's arguments   (ids of the Call and the Def, values of the variables its arguments
                              and the defaults it uses read)
    a `let`'s value          (id of the Let, values of the variables it reads)
    output shape             (kind, id of attrs, strict, input shapes); only shapes that came
                              without a warning (a warning points at one call)

The variables are read with `lookup`, as evaluation reads them, so what a read records (names
used, a -D value bound on first use) happens on a hit too; a read that fails falls back to the
evaluation, which reports it where it is. Keys hold ids, and the objects stay pinned while the
memo holds them, so no id is reused; past MAX_ENTRIES the memo starts afresh. Threads share it
(dictionary reads and writes are atomic; the worst a race does is compute a value twice).
"""
from __future__ import annotations

from ..errors import CnnError
from .arguments import _free_vars, _typed
from .values import _Scope

MAX_ENTRIES = 100_000
_PLAIN = (int, float, bool, str)


class _Store:
    def __init__(self):
        self.sites: dict = {}    # (id(Call), id(kind)) -> (arguments matched to the schema, variables they read)
        self.bound: dict = {}    # (id(Call), id(kind), defaults, values read) -> (attrs, defaults)
        self.equal: dict = {}    # (kind, bare, defaults, (argument, value), ...) -> (attrs, defaults)
        self.blocks: dict = {}   # (id(Call), id(Def)) -> (variables read by the call, by the defaults it uses)
        self.args: dict = {}     # (id(Call), id(Def), values read) -> ((parameter, value), ...)
        self.shapes: dict = {}   # (id(kind), id(attrs), strict, input shapes...) -> output shape
        self.blocks_done: dict = {}  # (id(Def), arguments, input shape, environment, repeats) -> replay.Template
        self.envs: dict = {}     # an elaboration's environment (replay.py) -> a small number
        self.typed_args: dict = {}  # id(a block call's bound arguments) -> (them, as a key)
        self.lets: dict = {}     # id(Let) -> the variables its expression reads
        self.seen: dict = {}     # a network's key (replay.py) -> its AST, once it was expanded
        self.values: dict = {}   # (id(Let), values read) -> its value
        self.pins: dict = {}     # id -> object: what a key's ids stand for stays alive
        self.template_nodes = 0  # nodes held by the templates

    def pin(self, *objects):
        for o in objects:
            self.pins[id(o)] = o


_STORE = [_Store()]


def store() -> _Store:
    """The memo; a fresh one once the current one holds MAX_ENTRIES objects."""
    s = _STORE[0]
    if len(s.pins) + len(s.bound) + len(s.args) + len(s.shapes) + len(s.values) + len(s.seen) + s.template_nodes > MAX_ENTRIES:
        s = _STORE[0] = _Store()
    return s


def clear():
    _STORE[0] = _Store()


def _plain(v) -> bool:
    t = type(v)
    return t in _PLAIN or (t is tuple and all(_plain(i) for i in v))


class Memoised:
    """bind, block_args and infer with the memo above; needs the Arguments and Values methods."""

    def start_memo(self):
        self.memo = store()
        self.defaults_keys: dict = {}

    def defaults_key(self, kind) -> tuple:
        """The `default` statements in force for a kind, as bind_values reads them (value, line)."""
        key = self.defaults_keys.get(kind.name)
        if key is None:
            user = self.defaults.get(kind.name, {})
            key = self.defaults_keys[kind.name] = tuple(sorted((a, _typed(v), sp.line) for a, (v, sp) in user.items()))
        return key

    def read(self, names, span, sc):
        """The values of variables, read as evaluation reads them, typed (1 is not true, nor 1.0; an
        int stands for itself: no other value equals it); None when one cannot be read."""
        lookup = self.lookup
        try:
            values = [lookup(v, span, sc) for v in names]
        except CnnError:
            return None
        return tuple([v if v.__class__ is int else _typed(v) for v in values])

    def bind(self, kind, c, sc):
        memo = self.memo
        site = memo.sites.get((id(c), id(kind)))
        if site is None:
            pairs = self.match_args(kind, c.args, c.span, c.name)
            site = (pairs, tuple(sorted({v for _, a in pairs for v in _free_vars(a.value)})))
            memo.pin(c, kind)
            memo.sites[(id(c), id(kind))] = site
        pairs, free = site
        read = self.read(free, c.span, sc) if free else ()
        if read is None:
            return super().bind(kind, c, sc)  # evaluation reports the variable
        key = (id(c), id(kind), self.defaults_key(kind), read)
        hit = memo.bound.get(key)
        if hit is None:
            raw = [self.value(arg.value, sc) for _, arg in pairs]
            equal = None
            if all(_plain(v) for v in raw):
                equal = (id(kind), c.bare, self.defaults_key(kind), *[(s.name, _typed(v)) for (s, _), v in zip(pairs, raw)])
                hit = memo.equal.get(equal)
            if hit is None:
                hit = self.bind_values(kind, c, pairs, raw)
                if equal is not None:
                    memo.equal[equal] = hit
            memo.pin(kind)
            memo.bound[key] = hit
        return hit  # shared by every node of these arguments: read-only

    def block_args(self, d, c, sc):
        memo = self.memo
        site = memo.blocks.get((id(c), id(d)))
        if site is None:
            given = {a.name for a in c.args if a.name is not None}
            given.update(p.name for p, a in zip(d.params, [a for a in c.args if a.name is None]))
            defaults = [p.default for p in d.params if p.name not in given and p.default is not None]
            site = (tuple(sorted({v for a in c.args for v in _free_vars(a.value)})),
                    tuple(sorted({v for e in defaults for v in _free_vars(e)})))
            memo.pin(c, d)
            memo.blocks[(id(c), id(d))] = site
        call_vars, default_vars = site
        read = self.read(call_vars, c.span, sc) if call_vars else ()
        if default_vars and read is not None:
            more = self.read(default_vars, d.span, _Scope("", {}, self.globals))
            read = None if more is None else read + more
        if read is None:
            return super().block_args(d, c, sc)
        key = (id(c), id(d), read)
        hit = memo.args.get(key)
        if hit is None:
            hit = memo.args[key] = tuple(super().block_args(d, c, sc))
        return hit

    def let_value(self, st):
        """A `let`'s value, by its expression and the values of the variables it reads (RegNet's
        library computes two dozen quantised widths: once, not on every elaboration)."""
        memo = self.memo
        free = memo.lets.get(id(st))
        if free is None:
            free = memo.lets[id(st)] = tuple(sorted(set(_free_vars(st.value))))
            memo.pin(st)
        sc = _Scope("", {}, self.globals)
        read = self.read(free, st.span, sc) if free else ()
        if read is None:
            return super().let_value(st)
        key = (id(st), read)
        hit = memo.values.get(key, memo)
        if hit is memo:
            hit = memo.values[key] = super().let_value(st)
        return hit

    def infer(self, kind, attrs, inputs, span):
        shape_of = self.graph.shape_of
        ins = [shape_of(i) for i in inputs]
        key = (id(kind), id(attrs), self.strict, *ins)
        shape = self.memo.shapes.get(key)
        if shape is not None:
            return shape, ()
        shape, warnings = self.infer_once(kind, attrs, ins, span)
        if not warnings:
            self.memo.pin(attrs, kind)
            self.memo.shapes[key] = shape
        return shape, warnings

