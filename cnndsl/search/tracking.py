"""The search's elaborator: the plain one, recording which bindings a member read.

    >>> import cnndsl
    >>> prog = cnndsl.parse("input 32x32x3\\nlet K = 1\\nlet F = 64\\n(FC(F) - RELU)*K - FC(10)")
    >>> graph, read = elaborate_member(prog, {"K": 0, "F": 128})
    >>> [n.op for n in graph.nodes], sorted(read)
    (['FLATTEN', 'FC'], ['K'])

`read` is what the member's elaboration read of its bindings: two members that agree on those values
are the same net (the FC width is not read when K = 0), so a search measures it once. With `shared`
(a dict kept across the members of one program) a call site's arguments and a layer's shape are
worked out once per values read. It overrides the elaborator's public hooks (lang/elaborate.py's
`Elaborator`); lean.py adds the memoised parts.
"""
from __future__ import annotations

from ..errors import CnnError
from ..lang.arguments import UNSET, typed
from ..lang.elaborate import Elaborator
from ..lang.values import POISON
from .peruse import PerUse


class Tracking(Elaborator):
    """The elaborator, recording which bindings it read (and how often each optional occurred)."""

    def __init__(self, *args, shared=None):
        super().__init__(*args)
        self.read: set = set()
        self.shared = shared
        self.defaults_key = None
        if shared is not None:  # work that depends only on the program and the values read: kept across members
            self.sites = shared.setdefault("sites", {})
            self.shared_bound = shared.setdefault("bound", {})
            self.shared_inferred = shared.setdefault("inferred", {})

    def bind(self, kind, c, sc):
        # Across members, a call site's arguments are bound once per (site, values of the variables
        # they read, `default`s in force). A hit reads those variables as the binding would have.
        if self.shared is None:
            return super().bind(kind, c, sc)
        site = self.sites.get(id(c))
        if site is None:
            return super().bind(kind, c, sc)  # matches and records the site
        pairs, free = site
        env, bindings = sc.env, self.bindings
        vals = []
        for v in free:
            if v in env:
                val = env[v]
            elif v in bindings and v not in self.globals_named:
                val = bindings[v]
                if isinstance(val, (PerUse, str)):
                    return super().bind(kind, c, sc)
            else:
                val = UNSET
            if val is POISON or val is UNSET:
                return super().bind(kind, c, sc)
            vals.append(typed(val))
        if self.defaults_key is None:
            self.defaults_key = repr(sorted((k, sorted((a, repr(v)) for a, (v, _) in d.items()))
                                            for k, d in self.defaults.items()))
        key = (id(c), kind.name, self.defaults_key, *vals)
        hit = self.shared_bound.get(key)
        if hit is None:
            hit = self.shared_bound[key] = super().bind(kind, c, sc)
        else:
            for v in free:
                self.lookup(v, c.span, sc)
        return hit

    def infer(self, kind, attrs, inputs, span):
        if self.shared is None:
            return super().infer(kind, attrs, inputs, span)
        shape_of = self.graph.shape_of
        key = (kind.name, id(attrs), *[shape_of(i) for i in inputs])
        hit = self.shared_inferred.get(key)
        if hit is None or hit[0] is not attrs:  # the attrs object itself: ids of freed ones are reused
            hit = self.shared_inferred[key] = (attrs, super().infer(kind, attrs, inputs, span))
        return hit[1]

    def included_statically(self, e, sc, label=None):
        # the budget walk's guess at a `?`: a per-occurrence optional counts as on (an upper bound)
        # without using up one of its choices, which belong to the expansion
        name = e.switch(label)
        if name is not None and name not in sc.params and isinstance(self.bindings.get(name), PerUse):
            return True
        return super().included_statically(e, sc, label)

    def lookup(self, name, span, sc):
        if name in self.bindings:  # a block parameter of the same name counts too: reading more is safe
            self.read.add(name)
        return super().lookup(name, span, sc)

    def let(self, st):
        # a let's -D binding is read where the let's name is read (lookup), not where it is bound
        self.in_let = True
        try:
            return super().let(st)
        finally:
            self.in_let = False

    in_let = False

    def binding(self, name):
        if not self.in_let:
            self.read.add(name)
        v = self.bindings[name]
        if isinstance(v, PerUse):
            # `let pool = on in each`: the let holds no choice (on, its default), the occurrences do
            return True if self.in_let else v.next()
        return super().binding(name)


def elaborate_member(program, bindings, input=None, strict=False, shared=None):
    """(graph, read names) of one member; a CnnError carries `.read` too. `shared`: a dict kept across
    the members of one program (same `input` and `strict`) for work they have in common."""
    e = Tracking(program, input, bindings, strict, program.path, shared=shared)
    try:
        return e.run(), e.read
    except CnnError as err:
        err.read = e.read
        raise
