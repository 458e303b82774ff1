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

`totals` folds a graph of layers and segments into the figures `analyze()` gives (the brute-force
tests in tests/test_search.py compare them with `report` on each member's own file): a segment's
contribution depends only on how it is entered (whether its input may be overwritten in place,
whether it needs a gradient, its receptive field), so it is computed once per entry and cached.
"""
from __future__ import annotations

import math

from ..analysis.analyze import DTYPE_BYTES, _counts, _partners, _receptive_field, training_memory
from ..ir import Node
from ..kinds import KINDS
from ..kinds.base import INPLACE, VIEW
from ..lang import astnodes as A
from ..lang.arguments import _UNSET, _typed
from ..lang.budget import MAX_STEPS
from ..lang.values import MAX_NODES, POISON
from .member import Tracking
from .space import PerUse

SEGMENT = "(segment)"   # the op of a node that stands for a memoised part
MAX_SUFFIX = 16         # sequences longer than this are expanded item by item (the tails nest)
MAX_KEPT = 100_000      # layers the memo holds (~2.5 KB each with their folds): past it, it starts afresh,
                        # so a family whose members share little costs time, not memory growing with members x layers
_PU = ("per-use",)
_X = ("the segment's input",)  # the alias of a segment's input tensor, inside its fold


class Segment:
    """A memoised part: the items it made (layers and nested segments) and what its expansion did."""
    __slots__ = ("items", "x", "out", "shape_in", "shape_out", "nodes", "steps", "read", "used", "globals",
                 "optional_names", "consumed", "warnings", "x_reads", "out_overwritable", "windows", "summaries",
                 "fields")

    def summary(self, ow, grad, cache):
        """The part's sums and what leaves it, entered with x overwritable in place or not, needing a
        gradient or not (the receptive field apart: `field`)."""
        key = (ow, grad)
        s = self.summaries.get(key)
        if s is None:
            s = self.summaries[key] = _fold(self.items, self.x, self.shape_in, self.out, ow, grad, None, cache)
        return s

    def field(self, rf):
        """(receptive field and jump of the output, the last field of a volume) entered with `rf`."""
        hit = self.fields.get(rf)
        if hit is None:
            x, windows = self.x, self.windows
            fields, last = {x: rf}, None
            for it in self.items:
                if it.op == SEGMENT:
                    r, lr = it.site.field(fields[it.inputs[0]])
                    fields[it.name] = r
                    if lr is not None:
                        last = lr
                else:
                    r = _receptive_field(it, fields, windows[it.name])
                    fields[it.name] = r if r[0] else None
                    if r[0] is not None:
                        last = r[0]
            hit = self.fields[rf] = (fields[self.out], last)
        return hit


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
            self._bkey = tuple((n, _PU if v.__class__ is PerUse else _typed(v)) for n, v in self.bindings.items())
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
        if x.__class__ is tuple:  # streams flow in (lang/streams.py): the part is expanded, not memoised
            return None
        point = self.points[at]
        env, gl, b, gn = sc.env, self.globals, self.bindings, self.globals_named
        if self._dkey is None:
            self._dkey = repr(sorted((k, sorted((a, repr(v)) for a, (v, _) in d.items()))
                                     for k, d in self.defaults.items()))
        parts = [at, self.graph.shape_of(x), sc.params, sc.stack, math.prod(self.repeats), self._dkey, self.strict]
        add = parts.append
        for n in point.names:
            v = env.get(n, _UNSET)
            if v is POISON:
                return None
            add(_typed(v) if v.__class__ is tuple else (v.__class__, v))
            if env is not gl:
                v = gl.get(n, _UNSET)
                if v is POISON:
                    return None
                add(_typed(v) if v.__class__ is tuple else (v.__class__, v))
            if n in b and (n not in gn or b[n].__class__ is PerUse):  # a let's -D value is in env
                v = b[n]
                add(_PU if v.__class__ is PerUse else _typed(v) if v.__class__ is tuple else (v.__class__, v))
                add(n in gn)
        if point.anonymous:
            parts.append(len(self.optional_names))
            parts.extend((n, _PU if isinstance(v, PerUse) else _typed(v)) for n, v in b.items())
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
        seg.windows = {it.name: KINDS[it.op].window(it.attrs, [g.shape_of(i) for i in it.inputs])
                       for it in items if it.op != SEGMENT}
        seg.summaries, seg.fields = {}, {}
        return seg


def _changed(before: dict, after: dict) -> dict:
    return {k: v for k, v in after.items() if k not in before or before[k] is not v}


# ---- the figures ------------------------------------------------------------------------------------
def totals(graph, batch, dtype, optimizer, cache, nodes) -> dict:
    """measure()'s figures of a graph of layers and segments (`nodes`: the layers it stands for)."""
    volume = len(graph.input_shape) == 3
    rf0 = ((1, 1), (1, 1)) if volume else None
    s = _fold(graph.nodes, "input", graph.input_shape, graph.output, False, False, rf0, cache, with_rf=True)
    (params, macs, flops, depth, largest, extra, internal, x_saved, exit_is_x, exit_size, exit_saved, _g, _rf,
     last_rf) = s
    saved = internal + (math.prod(graph.input_shape) if x_saved else 0) + (exit_size if exit_saved else 0)
    largest = max(largest, math.prod(graph.input_shape))
    nbytes = DTYPE_BYTES[dtype]
    memory = training_memory(params, saved * nbytes + extra + 2 * largest * nbytes, batch, optimizer, nbytes)
    return {"params": params, "macs": macs, "flops": flops, "memory": memory["train_bytes"], "depth": depth,
            "rf": max(last_rf) if last_rf else None, "layers": nodes, "warnings": len(graph.warnings)}


def _fold(items, x, shape_in, out, ow_x, grad_x, rf_x, cache, with_rf=False):
    """analyze()'s walk over one part (`items`, entered through tensor `x`): its sums, and what leaves it.

    ow_x: may a layer of the part overwrite x in place (x is read by the part alone and its producer
    allows it); grad_x: does x need a gradient; rf_x: x's (receptive field, jump). Saved tensors are
    counted by the tensor whose memory they are (`alias`): x's own, the part's output's (both may be
    saved again outside), and the others, which nothing outside can name."""
    readers = {}
    for it in items:
        if it.op == SEGMENT:
            src = it.inputs[0]
            readers[src] = readers.get(src, 0) + it.site.x_reads
        else:
            for i in it.inputs:
                readers[i] = readers.get(i, 0) + 1
    shape = {x: shape_in}
    alias, grad, rf, overwritable, size = {x: _X}, {x: grad_x}, {x: rf_x}, {}, {}
    saved = set()
    params_t = macs_t = flops_t = depth = largest = extra_t = nested = 0
    last_rf = None
    for it in items:
        name, inputs = it.name, it.inputs
        if it.op == SEGMENT:
            seg, src = it.site, inputs[0]
            ow = ow_x if src == x else (readers[src] == 1 and overwritable[src])
            (params, macs, flops, d, big, extra, internal, src_saved, exit_is_x, exit_size, exit_saved, g, _r,
             _lr) = seg.summary(ow, grad[src], cache)
            if with_rf:
                r, lr = seg.field(rf[src])
                rf[name] = r
                if lr is not None:
                    last_rf = lr
            params_t += params
            macs_t += macs
            flops_t += flops
            depth += d
            extra_t += extra
            nested += internal
            if big > largest:
                largest = big
            if src_saved:
                saved.add(alias[src])
            if exit_is_x:
                alias[name] = alias[src]
            else:
                alias[name] = name
                size[name] = exit_size
                if exit_saved:
                    saved.add(name)
            grad[name], overwritable[name] = g, seg.out_overwritable
            shape[name] = it.out_shape
            continue
        kind = KINDS[it.op]
        share = None
        if kind.memory == INPLACE:
            for src in inputs:
                if ow_x if src == x else (readers[src] == 1 and overwritable[src]):
                    share = src
                    break
        inplace = share is not None
        if kind.memory == VIEW:
            share = inputs[0]
        ins = [shape[i] for i in inputs]
        attrs = it.attrs
        key = (it.op, id(attrs) if attrs else None, inplace, *ins)
        hit = cache.get(key)
        if hit is None or (attrs and hit[0] is not attrs):
            hit = cache[key] = (attrs, _counts(kind, attrs, ins, it.out_shape, inplace))
        params, _buffers, macs, flops, elems, window, (which, extra) = hit[1]
        if with_rf:
            r = _receptive_field(it, rf, window)
            rf[name] = r if r[0] else None
            if r[0] is not None:
                last_rf = r[0]
        if params and kind.weight_layer:
            depth += 1
        params_t += params
        macs_t += macs
        flops_t += flops
        if share is not None:
            alias[name] = alias[share]
        else:
            alias[name] = name
            size[name] = elems
        if elems > largest:
            largest = elems
        # analysis.analyze.keep_for_backward, inlined: this loop is the search's hottest (a call costs ~15%);
        # tests/test_search.py holds the two equal on every member
        grad[name] = g = params > 0 or grad[inputs[0]] or (len(inputs) > 1 and any(grad[i] for i in inputs))
        if g:
            for w in which:
                for t in (inputs if w == "in" else (name,) if w == "out" else _partners(inputs, grad)):
                    saved.add(alias[t])
            extra_t += extra
        overwritable[name] = kind.output_overwritable
        shape[name] = it.out_shape
    exit_alias = alias[out]
    exit_is_x = exit_alias is _X
    internal = nested + sum(size[t] for t in saved if t is not _X and t != exit_alias)
    return (params_t, macs_t, flops_t, depth, largest, extra_t, internal, _X in saved, exit_is_x,
            0 if exit_is_x else size[exit_alias], not exit_is_x and exit_alias in saved, grad[out], rf.get(out), last_rf)
