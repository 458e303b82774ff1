"""The search's fast path: parts of a member elaborated once and reused by the members that share them.

    >>> import cnndsl
    >>> from cnndsl.search.member import measure
    >>> prog = cnndsl.parse("input 32x32x3\\n[(CONV(8 * 2**i, 3, p=1) - RELU)*2 - POOL]*M @i - FC(10)")
    >>> shared = {}
    >>> [measure(prog, {"M": m}, shared=shared)["params"] for m in (1, 2, 3)]
    [21298, 14546, 23314]
    >>> measure(prog, {"M": 3})["params"]  # the slow path agrees
    23314

Members of a family differ in a few choices, so most of their layers are the same layers built from
the same values: stage 2 of `[... - POOL?]*M @i` is the same whatever the later stages, K and the FC
width are. `Lean` (the search's elaborator) memoises two kinds of part, each keyed by everything its
expansion can read: the input volume, the values of every name the part mentions (transitively
through the blocks it calls), the enclosing repeat counts' product (the layer limit's check), the
block stack and parameters, the `default`s in force, and the on/off choices its optionals take (a
per-occurrence optional's bits, checked as they come). The parts are a repeat's body (one
iteration) and the tail of a short sequence (`A - B - C`: `B - C`, then `C`). A part met again is
one *segment* node in the member's graph that stands for all its layers; a part that recorded an
error, made no layer or reaches outside itself is not kept.

A segment is a `Part` of the counting kernel (analysis/kernel.py): member.py's `totals` folds a
graph of layers and segments with the kernel's fold, as analyze() folds a graph of layers (the
brute-force tests in tests/test_search.py compare them with `report` on each member's own file).
A segment's contribution depends only on how it is entered (whether its input may be overwritten
in place, whether it needs a gradient, its receptive field), so it is folded once per entry.
"""
from __future__ import annotations

import math

from ..analysis.kernel import PART, Part, windows
from ..ir import Node
from ..kinds import KINDS
from ..lang import astnodes as A
from ..lang.arguments import UNSET, typed
from ..lang.budget import MAX_STEPS
from ..lang.values import MAX_NODES, POISON
from .peruse import PerUse
from .tracking import Tracking

SEGMENT = PART          # the op of a node that stands for a memoised part: the kernel folds it once per way in
MAX_SUFFIX = 16         # sequences longer than this are expanded item by item (the tails nest)
MAX_KEPT = 100_000      # layers the memo holds (~2.5 KB each with their folds): past it, it starts afresh,
                        # so a family whose members share little costs time, not memory growing with members x layers
_PU = ("per-use",)


class Segment(Part):
    """A memoised part: the items it made (layers and nested segments), what its expansion did, and
    (analysis/kernel.py's Part) its sums, folded once per way in."""
    __slots__ = ("items", "x", "out", "shape_in", "shape_out", "nodes", "steps", "read", "used", "globals",
                 "optional_names", "consumed", "warnings", "x_reads", "out_overwritable", "windows", "summaries",
                 "fields")


class _Point:
    __slots__ = ("names", "anonymous")

    def __init__(self, names, anonymous):
        self.names, self.anonymous = tuple(sorted(names)), anonymous


class Lean(Tracking):
    """Tracking, with repeat bodies and sequence tails memoised across the members of one search."""

    def __init__(self, *args, shared):
        super().__init__(*args, shared=shared)
        self.points = shared.setdefault("points", {})
        self.segments = shared.setdefault("segments", {})
        self.charges = shared.setdefault("charges", {})
        self._count = 0
        self._serial = 0
        self._dkey = self._bkey = None
        self.peruse = [(n, v) for n, v in self.bindings.items() if isinstance(v, PerUse)]

    def node_count(self):
        return self._count

    def real_path(self):
        paths = self.shared.setdefault("real_paths", {})
        p = paths.get(self.path)
        if p is None:
            p = paths[self.path] = super().real_path()
        return p

    def input_shape(self):
        decl = self.input_decl  # a volume of constants (or --input): the same for every member
        if decl is None or not all(isinstance(d, A.Num) for d in decl.dims):
            return super().input_shape()
        shapes = self.shared.setdefault("input_shapes", {})
        key = (id(decl), repr(self.input_override))
        hit = shapes.get(key)
        if hit is None:
            hit = shapes[key] = super().input_shape()
        return hit

    def add(self, *args, **kw):
        name = super().add(*args, **kw)
        self._count += 1
        return name

    def bindings_key(self):
        """The bindings' values (a per-occurrence optional's choices left out: the budget walk does not
        use them up)."""
        if self._bkey is None:
            self._bkey = tuple((n, _PU if v.__class__ is PerUse else typed(v)) for n, v in self.bindings.items())
        return self._bkey

    # ---- the budget walk: once per distinct bindings ---------------------------------------
    def charge(self, net, sc):
        key = self.bindings_key()
        hit = self.charges.get(key)
        if hit is None:
            read, used, g0 = self.read, self.used, dict(self.globals)
            self.read, self.used = set(), set()
            err = None
            try:
                super().charge(net, sc)
            except Exception as e:  # an OverBudget (or a value error): the same for these bindings
                err = e
            finally:
                hit = self.charges[key] = (err, frozenset(self.read), frozenset(self.used), _changed(g0, self.globals))
                self.read, self.used = read | self.read, used | self.used
        else:
            self.read |= hit[1]
            self.used |= hit[2]
            self.globals.update(hit[3])
        if hit[0] is not None:
            raise hit[0].with_traceback(None)  # not a traceback that grows with each member

    # ---- the memo points ----------------------------------------------------------------------
    def expr(self, e, x, sc, label=None):
        if label is not None:
            return super().expr(e, x, sc, label)
        if id(e) in self.points:
            return self.memo(id(e), x, sc, lambda: self.plain(e, x, sc))
        return self.plain(e, x, sc)

    def plain(self, e, x, sc):
        if isinstance(e, A.Seq) and 1 < len(e.items) <= MAX_SUFFIX:
            return self.tail(e, 1, self.expr(e.items[0], x, sc), sc)
        return super().expr(e, x, sc)

    def repeat(self, e, x, sc):
        if id(e) not in self.points:  # the whole repeat (met again: one part), and each iteration
            self.points[id(e)] = self.point_of(e)
            self.points[id(e.body)] = self.point_of(e.body)
        return super().repeat(e, x, sc)

    def tail(self, seq, j, x, sc):
        """`items[j] - ... - items[-1]` of a sequence, from x: memoised as one part (but the last item)."""
        items = seq.items
        if j == len(items) - 1:
            return self.expr(items[j], x, sc)
        at = (id(seq), j)
        if at not in self.points:
            self.points[at] = self.point_of(items[j:])
        return self.memo(at, x, sc, lambda: self.tail(seq, j + 1, self.expr(items[j], x, sc), sc))

    def point_of(self, e):
        names = set()
        anonymous = A.mentions(e, self.defs, names, set())
        return _Point(names, anonymous)

    def key(self, at, x, sc):
        """Everything the part's expansion can read, or None when a name it reads has failed."""
        point = self.points[at]
        env, gl, b, gn = sc.env, self.globals, self.bindings, self.globals_named
        if self._dkey is None:
            self._dkey = repr(sorted((k, sorted((a, repr(v)) for a, (v, _) in d.items()))
                                     for k, d in self.defaults.items()))
        parts = [at, self.graph.shape_of(x), sc.params, sc.stack, math.prod(self.repeats), self._dkey, self.strict]
        add = parts.append
        for n in point.names:
            v = env.get(n, UNSET)
            if v is POISON:
                return None
            add(typed(v) if v.__class__ is tuple else (v.__class__, v))
            if env is not gl:
                v = gl.get(n, UNSET)
                if v is POISON:
                    return None
                add(typed(v) if v.__class__ is tuple else (v.__class__, v))
            if n in b and (n not in gn or b[n].__class__ is PerUse):  # a let's -D value is in env
                v = b[n]
                add(_PU if v.__class__ is PerUse else typed(v) if v.__class__ is tuple else (v.__class__, v))
                add(n in gn)
        if point.anonymous:
            parts.append(len(self.optional_names))
            parts.extend((n, _PU if isinstance(v, PerUse) else typed(v)) for n, v in b.items())
        return tuple(parts)

    def memo(self, at, x, sc, run):
        key = self.key(at, x, sc)
        if key is None:
            return run()
        variants = self.segments.get(key)
        if variants is not None:
            for shape in variants[0]:  # which optionals, how many choices: usually one way
                seg = variants[1].get(self.upcoming(shape))
                if seg is not None and self.steps + seg.steps <= MAX_STEPS and self._count + seg.nodes <= MAX_NODES:
                    return self.replay(seg, x)  # (past a limit: expanded for real, failing where it would)
        seg = self.record(x, run)
        if isinstance(seg, Segment):
            self.keep(len(seg.items))
            shape = tuple((n, len(v)) for n, v in seg.consumed)
            variants = self.segments.setdefault(key, ([], {}))
            if shape not in variants[0]:
                variants[0].append(shape)
            variants[1][self.upcoming(shape, seg)] = seg
            return seg.out
        return seg  # the part's output, not kept

    def keep(self, n):
        """Count `n` more layers held by the memo; past MAX_KEPT drop every part kept so far (this
        member's graph still holds the ones it uses; the members after it record theirs again)."""
        kept = self.shared.get("kept", 0) + n
        if kept > MAX_KEPT:
            for k in ("segments", "counts", "bound", "inferred"):  # the caches that grow with members x layers
                self.shared.get(k, {}).clear()
            kept = n
        self.shared["kept"] = kept

    def upcoming(self, shape, seg=None):
        """The next choices of each per-occurrence optional in `shape` (a segment's own, recorded)."""
        if seg is not None:
            return seg.consumed
        out = []
        for name, k in shape:
            pu = self.bindings.get(name)
            if pu.__class__ is not PerUse:
                return None
            u, bits = pu.used, pu.bits
            got = bits[u:u + k]
            if len(got) < k:
                got += (True,) * (k - len(got))
            out.append((name, got))
        return tuple(out)

    def replay(self, seg, x):
        self.steps += seg.steps
        self._count += seg.nodes
        self.read |= seg.read
        self.used |= seg.used
        if seg.globals:
            self.globals.update(seg.globals)
        for site, name in seg.optional_names:
            self.optional_names.setdefault(site, name)
        for name, values in seg.consumed:
            self.bindings[name].used += len(values)
        if seg.warnings:
            self.graph.warnings.extend(seg.warnings)
        self._serial += 1
        name = f"\x00{self._serial}"
        self.graph.add(Node(name, SEGMENT, None, [x], None, seg.shape_out, (), False, {}, {}, seg))
        return name

    def record(self, x, run):
        g = self.graph
        n0, c0, s0, w0, e0 = len(g.nodes), self._count, self.steps, len(g.warnings), len(self.errors)
        read, used, g0, o0 = self.read, self.used, dict(self.globals), len(self.optional_names)
        pu0 = [(n, pu.used) for n, pu in self.peruse]
        self.read, self.used = set(), set()
        try:
            out = run()
        finally:
            mine_read, mine_used = self.read, self.used
            self.read, self.used = read | mine_read, used | mine_used
        items = g.nodes[n0:]
        if not items or out == x or items[-1].name != out or len(self.errors) != e0:
            return out
        inside = {x}
        x_reads = 0
        for it in items:
            for i in it.inputs:
                if i not in inside:
                    return out  # reads a tensor from outside the part
            if it.op == SEGMENT:
                x_reads += it.site.x_reads if it.inputs[0] == x else 0
            else:
                x_reads += it.inputs.count(x)
            inside.add(it.name)
        seg = Segment()
        seg.items, seg.x, seg.out = items, x, out
        seg.shape_in, seg.shape_out = g.shape_of(x), g.shape_of(out)
        seg.nodes, seg.steps = self._count - c0, self.steps - s0
        seg.read, seg.used = frozenset(mine_read), frozenset(mine_used)
        seg.globals = _changed(g0, self.globals)
        seg.optional_names = tuple(list(self.optional_names.items())[o0:])
        seg.consumed = tuple((n, tuple(pu.bits[i] if i < len(pu.bits) else True for i in range(u, pu.used)))
                             for (n, u), (_, pu) in zip(pu0, self.peruse) if pu.used != u)
        seg.warnings = g.warnings[w0:]
        seg.x_reads = x_reads
        last = g[out]
        seg.out_overwritable = last.site.out_overwritable if last.op == SEGMENT else KINDS[last.op].output_overwritable
        seg.windows = windows(items, g.shape_of)
        seg.summaries, seg.fields = {}, {}
        return seg


def _changed(before: dict, after: dict) -> dict:
    return {k: v for k, v in after.items() if k not in before or before[k] is not v}
