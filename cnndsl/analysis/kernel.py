"""The counting kernel: one step per layer, and the fold of those steps over a graph, written once.

    >>> import cnndsl
    >>> g = cnndsl.loads("input 8x8x3\\nCONV(4, 3, p=1) - RELU - POOL - FC(10)").graph
    >>> s = fold(g.nodes, "input", g.input_shape, g.output, cache={}, fields=True, rf_x=((1, 1), (1, 1)))
    >>> s.params, s.macs, s.depth, s.last_rf
    (762, 7552, 2, (4, 4))

`step` is what one layer costs: parameters, buffers, MACs, FLOPs, its output's elements, its window
(the receptive field's kernel and stride) and what autograd keeps for its backward; all from its
kind's rules (kinds/). `fold` walks a run of layers entered through one tensor and sums them: the
in-place decisions (`overwritten`), the tensors kept for backward (each by the tensor whose
memory it is), the receptive field and jump (`advance`, `join`: exact numbers,
ints or Fractions), the activation memory. Three callers, one walk:

- `analyze()` folds a whole graph with `meta=True`: the fold annotates each node as it goes;
- the search folds each member (search/lean.py): a run of layers it meets again in other members
  is a `Part`, one item of the graph whose summary is folded once per way in and then reused;
- `report --symbolic` runs analyze() on numbers that carry formulas (search/symbolic.py): the
  same steps, on other numbers.
"""
from __future__ import annotations

import math
from fractions import Fraction

from ..kinds import KINDS
from ..kinds.base import INPLACE, VIEW, VIEW_AT_INFERENCE

RF_CAP = 2**53  # a receptive field or jump is shown as at most this (README, "The report")
PART = "(part)"  # the op of an item that stands for a run of layers folded once (a `Part`)
X = ("the part's input",)  # the alias of the tensor a fold is entered through


def step(kind, attrs, ins, out, inplace) -> tuple:
    """One layer's counts: (params, buffers, MACs, FLOPs, output elements, window or None,
    (tensors kept for backward: "in", "out", "partners"; extra bytes kept))."""
    return (kind.params(attrs, ins), kind.buffers(attrs, ins), kind.macs(attrs, ins, out),
            kind.flops(attrs, ins, out), math.prod(out), kind.window(attrs, ins),
            kind.saved(attrs, ins, out, inplace=inplace))


def overwritten(inputs, x, ow_x, readers, overwritable):
    """The index of the input an in-place layer (memory class INPLACE) overwrites, or None: the first
    one read by this layer alone whose producer lets its output be overwritten (autograd does not
    keep it, the producer never returns its own input). `x`: the tensor the fold was entered
    through, made outside it: `ow_x` says whether it may be overwritten (the network's input may
    not: it is the caller's)."""
    for i, src in enumerate(inputs):
        if ow_x if src == x else (readers[src] == 1 and overwritable[src]):
            return i
    return None


def partners(inputs, grad):
    """The inputs a product keeps for backward: those whose fellow inputs need a gradient."""
    return [t for k, t in enumerate(inputs) if any(grad[o] for j, o in enumerate(inputs) if j != k)]


# ---- receptive field and jump -------------------------------------------------------------------
def exact(v):
    """A receptive field or jump as an exact number: an int where whole, else a Fraction. An
    upsampling layer's stride is a Fraction (UPSAMPLE(2): 1/2), so the jump after it is one."""
    if isinstance(v, Fraction):
        return v.numerator if v.denominator == 1 else v
    return v


def advance(r, window):
    """(rf, jump) of a layer's output from its input's `r` through its `window` ((kh, kw), (sh, sw)).
    15,000 stride-2 layers make a jump of 2**15000: saturated at RF_CAP, so that it stays a small
    int (and exact in JSON readers that use doubles) instead of a number too large to print."""
    (rh, rw), (jh, jw) = r
    (kh, kw), (sh, sw) = window
    cap = RF_CAP
    out = ((min(cap, rh + (kh - 1) * jh), min(cap, rw + (kw - 1) * jw)), (min(cap, jh * sh), min(cap, jw * sw)))
    if sh.__class__ is int and sw.__class__ is int and jh.__class__ is int and jw.__class__ is int:
        return out  # the common case stays in ints (and fast): no upsampling on the way
    return tuple(tuple(exact(v) for v in pair) for pair in out)


def join(fields):
    """A join sees what any of its inputs sees: per axis, the largest field; and the largest jump, so
    that what follows is bounded above where branches arrive at different strides (in real nets they
    share it). A 1x3 branch beside a 3x1 one gives 3x3, not either input's field."""
    if not fields:
        return None
    (rh, rw), (jh, jw) = fields[0]
    for (h, w), (a, b) in fields[1:]:
        rh, rw, jh, jw = max(rh, h), max(rw, w), max(jh, a), max(jw, b)
    return (rh, rw), (jh, jw)


def field(inputs, out_shape, rf, window):
    """(rf (h, w), jump (h, w)) of a layer's output, or (None, None) once the volume is flat. `rf`:
    {tensor: its (rf, jump), or None where flat}."""
    if len(out_shape) != 3:
        return None, None
    r = rf.get(inputs[0]) if len(inputs) == 1 else join([rf[i] for i in inputs if rf.get(i)])
    if not r:
        return None, None
    return r if window is None else advance(r, window)


# ---- the fold --------------------------------------------------------------------------------------
class Summary:
    """What a fold sums over its layers, and what leaves it.

    params, buffers, macs, flops, depth (weight layers with parameters), act (activation elements
    held at inference: layers that share their input's memory add none), largest (the largest
    output), extra (bytes kept for backward beyond whole tensors), internal (elements of the
    tensors kept for backward that nothing outside can name), x_saved (is the entry tensor kept),
    exit_is_x (is the output the entry tensor's memory), exit_size and exit_saved (the output's
    elements, and whether it is kept), grad (does the output need a gradient), rf (the output's
    (rf, jump) when folded with one), last_rf (the last field of a volume)."""
    __slots__ = ("params", "buffers", "macs", "flops", "depth", "act", "largest", "extra", "internal", "x_saved",
                 "exit_is_x", "exit_size", "exit_saved", "grad", "rf", "last_rf")

    def saved_elems(self, x_elems):
        """Elements of every tensor kept for backward, the entry tensor (`x_elems` of them) included."""
        return self.internal + (x_elems if self.x_saved else 0) + (self.exit_size if self.exit_saved else 0)


class Part:
    """A run of layers (`items`, entered through tensor `x`, leaving through `out`) that stands as one
    item of a graph (op PART, the Part as its `site`) and is folded once per way in. Set by its
    maker: items, x, out, shape_in, x_reads (how often its layers read x), out_overwritable (may
    what leaves it be overwritten in place), windows ({layer name: its window}), and the memos
    summaries and fields ({} at first)."""
    __slots__ = ()  # a subclass names its slots (search/lean.py's Segment)
    summaries: dict
    fields: dict

    def summary(self, ow, grad, cache) -> Summary:
        """The part's sums and what leaves it, entered with x overwritable in place or not, needing a
        gradient or not (the receptive field apart: `field`)."""
        key = (ow, grad)
        s = self.summaries.get(key)
        if s is None:
            s = self.summaries[key] = fold(self.items, self.x, self.shape_in, self.out, ow, grad, cache)
        return s

    def field(self, rf):
        """(receptive field and jump of the output, the last field of a volume) entered with `rf`. The
        fold's field rule alone, by the windows kept: a part is entered with many fields (one per
        way the layers before it grow one), and a whole fold per field cost the search a fifth of
        its speed (tools/bench_search.py)."""
        hit = self.fields.get(rf)
        if hit is None:
            windows, fields, last = self.windows, {self.x: rf}, None
            for it in self.items:
                if it.op == PART:
                    r, lr = it.site.field(fields[it.inputs[0]])
                    fields[it.name] = r
                else:
                    r = field(it.inputs, it.out_shape, fields, windows[it.name])
                    lr = r[0]
                    fields[it.name] = r if lr else None
                if lr is not None:
                    last = lr
            hit = self.fields[rf] = (fields[self.out], last)
        return hit


def windows(items, shape_of) -> dict:
    """{layer name: its window} of the layers among `items`: what `Part.field` reads."""
    return {it.name: it.kind.window(it.attrs, [shape_of(i) for i in it.inputs]) for it in items if it.op != PART}


def _readers(items):
    readers = {}
    for it in items:
        if it.op == PART:
            src = it.inputs[0]
            readers[src] = readers.get(src, 0) + it.site.x_reads
        else:
            for i in it.inputs:
                readers[i] = readers.get(i, 0) + 1
    return readers


def fold(items, x, shape_in, out, ow_x=False, grad_x=False, cache=None, fields=False, rf_x=None,
         meta=False, largest=0) -> Summary:
    """The walk of `items` (layers in order, and Parts), entered through tensor `x` of shape
    `shape_in`, leaving through `out`: a Summary.

    ow_x: may a layer overwrite x in place; grad_x: does x need a gradient; cache: a dict that
    keeps each distinct layer's `step` across folds (None: none: numbers that carry formulas
    compare by value, search/symbolic.py); fields: work out receptive fields and jumps, from x's
    (rf, jump) `rf_x` (None: x is flat) (a Part's summary leaves them out: `Part.field`); meta:
    annotate each layer's `meta` (analyze(); needs fields); largest: the largest tensor before the
    walk (analyze() starts from the input's elements: which comparisons a formula's total takes
    is part of it, search/symbolic.py).
    Saved tensors are counted by the tensor whose memory they are (`alias`): x's own, the output's
    (both may be saved again outside), and the others, which nothing outside can name."""
    readers = _readers(items)
    with_rf, kinds, cached = fields, KINDS, cache.get if cache is not None else None
    shape = {x: shape_in}
    alias, grad, rf, overwritable, size = {x: X}, {x: grad_x}, {x: rf_x}, {}, {}
    saved = set()
    params_t = buffers_t = macs_t = flops_t = depth = extra_t = nested = act = 0
    last_rf = None
    for it in items:
        name, inputs = it.name, it.inputs
        if it.op == PART:
            src = inputs[0]
            ow = ow_x if src == x else (readers[src] == 1 and overwritable[src])
            s = it.site.summary(ow, grad[src], cache)
            if with_rf:
                rf[name], lr = it.site.field(rf[src])
                if lr is not None:
                    last_rf = lr
            params_t += s.params
            buffers_t += s.buffers
            macs_t += s.macs
            flops_t += s.flops
            depth += s.depth
            act += s.act
            extra_t += s.extra
            nested += s.internal
            if s.largest > largest:
                largest = s.largest
            if s.x_saved:
                saved.add(alias[src])
            if s.exit_is_x:
                alias[name] = alias[src]
            else:
                alias[name] = name
                size[name] = s.exit_size
                if s.exit_saved:
                    saved.add(name)
            grad[name], overwritable[name] = s.grad, it.site.out_overwritable
            shape[name] = it.out_shape
            continue
        kind = kinds[it.op]
        memory = kind.memory
        if memory == INPLACE:
            i = overwritten(inputs, x, ow_x, readers, overwritable)
            inplace = i is not None
            share = inputs[i] if inplace else None
        else:
            inplace = False
            share = inputs[0] if memory == VIEW else None
        ins = [shape[inputs[0]]] if len(inputs) == 1 else [shape[t] for t in inputs]
        attrs, out_shape = it.attrs, it.out_shape
        if cache is None:
            c = step(kind, attrs, ins, out_shape, inplace)
        else:
            key = (it.op, id(attrs) if attrs else None, inplace, *ins)
            hit = cached(key)
            if hit is None or (attrs and hit[0] is not attrs):  # the attrs object itself: a freed one's id is reused
                hit = cache[key] = (attrs, step(kind, attrs, ins, out_shape, inplace))
            c = hit[1]
        params, buffers, macs, flops, elems, window, (which, extra) = c
        if with_rf:
            if len(inputs) == 1 and len(out_shape) == 3:  # field(), inline for one input: the most layers
                r = rf.get(inputs[0])
                if not r:
                    r = (None, None)
                elif window is not None:
                    r = advance(r, window)
            else:
                r = field(inputs, out_shape, rf, window)
            if r[0] is not None:
                rf[name], last_rf = r, r[0]
            else:
                rf[name] = None
        if params and kind.weight_layer:
            depth += 1
        params_t += params
        buffers_t += buffers
        macs_t += macs
        flops_t += flops
        # at inference a view, DROPOUT (VIEW_AT_INFERENCE) and an in-place layer hold no memory of their own
        shares = inplace or memory == VIEW or memory == VIEW_AT_INFERENCE
        if not shares:
            act += elems
        if meta:
            m = it.meta
            m["params"], m["buffers"], m["macs"], m["flops"], m["act_elems"] = params, buffers, macs, flops, elems
            m["rf"], m["jump"] = r if with_rf else (None, None)
            m["inplace"] = shares
        if share is not None:
            alias[name] = alias[share]
        else:
            alias[name] = name
            size[name] = elems
        if elems > largest:
            largest = elems
        # a layer that needs a gradient (parameters of its own, or an input that needs one) keeps what
        # its kind's `saved` rule says ("in", "out", "partners"), each tensor by its alias; an op on
        # tensors that need no gradient keeps nothing
        grad[name] = g = params > 0 or grad[inputs[0]] or (len(inputs) > 1 and any(grad[i] for i in inputs))
        if g:
            for w in which:
                for t in (inputs if w == "in" else (name,) if w == "out" else partners(inputs, grad)):
                    saved.add(alias[t])
            extra_t += extra
        overwritable[name] = kind.output_overwritable
        shape[name] = out_shape
    s = Summary()
    exit_alias = alias[out]
    s.exit_is_x = exit_alias is X
    s.params, s.buffers, s.macs, s.flops, s.depth, s.act = params_t, buffers_t, macs_t, flops_t, depth, act
    s.largest, s.extra, s.x_saved = largest, extra_t, X in saved
    s.internal = nested + sum(size[t] for t in saved if t is not X and t != exit_alias)
    s.exit_size = 0 if s.exit_is_x else size[exit_alias]
    s.exit_saved = not s.exit_is_x and exit_alias in saved
    s.grad, s.rf, s.last_rf = grad[out], rf.get(out), last_rf
    return s
