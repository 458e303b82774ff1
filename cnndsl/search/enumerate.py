"""Search a family: measure its members, drop what does not fit, keep what is within budget.

    >>> import cnndsl
    >>> from cnndsl.search.space import Space
    >>> prog = cnndsl.parse("input 8x8x3\\nlet N = 1 in 1..4\\n[CONV(8, 3, p=1) - POOL]*N - FC(10)")
    >>> r = search(Space(prog), max_params=1500)
    >>> r["count"], r["dropped"], [m["bindings"] for m in r["members"]]
    (4, {"a layer does not accept its input's shape (E301)": 1, 'over --max-params': 1}, [{'N': 2}, {'N': 3}])
    >>> r["drop_examples"]["over --max-params"]
    {'index': 0, 'bindings': {'N': 1}, 'message': '1,514 params > --max-params 1,500'}

Dropped members are counted by the kind of their mistake (errors.CODES) or the budget they miss;
`drop_examples` holds the first member of each group with its own message.

Members that read the same values (an FC width when K = 0 hides it) are one net: measured once,
listed once (`same_net` counts the others). Big spaces go to a process pool, in a few large
contiguous chunks per worker so that each worker's memo of nets and parts stays useful.
"""
from __future__ import annotations

import functools
import gc
import os
import random
from collections import Counter

from ..errors import CnnError
from .member import measure
from .space import PerUse

MEASURES = ("params", "macs", "memory", "depth", "rf", "flops", "layers")
LARGER_IS_BETTER = {"depth", "rf"}
DEFAULT_LIMIT = 200_000
PARALLEL_FROM = 3_000   # members: below this a process pool costs more than it saves
CHUNK = 20_000          # members per task at most: a few large contiguous tasks per worker, so that the
                        # members that share parts (search/lean.py) mostly meet in one worker's memo


def search(space, *, batch=1, dtype="fp32", optimizer="adam", max_params=None, max_macs=None, max_memory=None,
           min_rf=None, where=None, strict=False, limit=DEFAULT_LIMIT, sample=None, seed=0, sort="params",
           top=None, workers=None, progress=None, pareto=("params", "macs")) -> dict:
    """Measure the members of `space` (every one, or `sample` of them drawn with `seed`) and return
    the counts, the reasons members were dropped, the kept members (sorted, `top` of them) and the
    Pareto front of the two `pareto` measures. `progress(n)` is called as members are done."""
    count = space.count
    if sample is not None:
        if sample < 1:
            raise CnnError("--sample must be at least 1", usage=True, code="E501")
        indices = sorted(random.Random(seed).sample(range(count), min(sample, count)))
    elif count > limit:
        raise CnnError(f"the family has {count:,} members, more than the limit of {limit:,}", usage=True,
                       code="E401", hint=f"narrow a range (-D NAME=LO..HI), sample it (--sample 10000), "
                                         f"or raise --limit")
    else:
        indices = range(count)
    if sort not in MEASURES:
        raise CnnError(f"--sort {sort}: choose one of {', '.join(MEASURES)}", usage=True, code="E501")
    budget = dict(max_params=max_params, max_macs=max_macs, max_memory=max_memory, min_rf=min_rf, where=where)
    options = dict(batch=batch, dtype=dtype, optimizer=optimizer, strict=strict)
    jobs = list(indices)  # member numbers: each process decodes its own (space.member)
    workers = workers if workers is not None else (os.cpu_count() or 1)
    if workers > 1 and len(jobs) >= PARALLEL_FROM:
        records, dropped, examples = _parallel(space, jobs, options, budget, workers, progress)
    else:
        _init(space, options, budget)
        try:
            records, dropped, examples = _chunk(jobs)
        finally:
            _STATE.clear()  # the memo is this search's: not kept alive, nor copied into a later pool's workers
        if progress:
            progress(len(jobs))
    kept = [r for r in records if "same_as" not in r]
    same = Counter(r["same_as"] for r in records if "same_as" in r)
    for r in kept:
        if same[r["index"]]:
            r["same_net"] = same[r["index"]]
    order = sorted(kept, key=lambda r: _key(r, sort))
    from .pareto import front
    return {"schema": "cnndsl.search/1", "source": space.program.path, "space": space.describe(),
            "count": count, "measured": len(jobs), "kept": len(records), "distinct": len(kept),
            "dropped": dict(sorted(dropped.items(), key=lambda kv: (-kv[1], kv[0]))),
            "drop_examples": {k: {"index": i, "bindings": _show(space.member(i)), "message": m}
                              for k, (i, m) in sorted(examples.items())}, "sort": sort,
            "memory_options": {"batch": batch, "dtype": dtype, "optimizer": optimizer},
            "budgets": {k: v for k, v in budget.items() if k != "where" and v is not None},
            "members": order[:top] if top else order, "pareto": front(kept, pareto), "pareto_measures": list(pareto)}


def _key(r, measure):
    v = r.get(measure)
    v = -1 if v is None else v
    return (-v if measure in LARGER_IS_BETTER else v, r["index"])


# ---- the work of one process ------------------------------------------------------------------
_STATE: dict = {}


def _init(space, options, budget):
    _STATE.clear()
    _STATE.update(space=space, options=options, budget=budget, cache={}, readsets=[], shared={})


def _chunk(jobs):
    from ..net import gc_paused  # members allocate much and free it all: the collector would only rescan
    with gc_paused():
        return _measure_all(jobs)


def _measure_all(jobs):
    st = _STATE
    space, options, budget, cache, readsets = st["space"], st["options"], st["budget"], st["cache"], st["readsets"]
    where = budget["where"]
    records, dropped, examples = [], Counter(), {}

    def drop(why, index, message):
        dropped[why] += 1
        if why not in examples:  # members come in increasing order: the first is the smallest
            examples[why] = (index, message)
    member = space.member
    for index in jobs:
        choices = member(index)
        if where is not None and where.variables_only and not where(choices, None):
            drop("--where", index, f"fails --where {where.text}")
            continue
        hit = None
        for rs in readsets:
            hit = cache.get((rs, tuple([choices[n] for n in rs])))
            if hit is not None:
                break
        if hit is None:
            bindings = space.bindings(choices)
            r = measure(space.program, bindings, space.input, **options, shared=st["shared"])
            if any(isinstance(v, PerUse) and False in v.bits[v.used:] for v in bindings.values()):
                drop("duplicate: an optional switched off where it does not occur", index,
                     "the same net as the member with that optional on")
                continue
            rs = tuple(sorted(n for n in r.pop("read") if n in choices))
            if rs not in readsets:
                readsets.append(rs)
            hit = cache[(rs, tuple(choices[n] for n in rs))] = (index, r)
        first, r = hit
        if "error" in r:
            drop(r["error"], first, r["message"])  # the member that made the message (the same net)
            continue
        why = _over_budget(r, budget, choices)
        if why:
            drop(why[0], index, why[1])
            continue
        rec = {"index": index, "bindings": _show(choices), **r}
        if first != index:
            rec["same_as"] = first
        records.append(rec)
    return records, dropped, examples


def _over_budget(r, b, choices):
    """(the group, this member's figure against the budget), or None within every budget."""
    for measure, flag in (("params", "max_params"), ("macs", "max_macs"), ("memory", "max_memory")):
        if b[flag] is not None and r[measure] > b[flag]:
            unit = " bytes" if measure == "memory" else ""
            return f"over --{flag.replace('_', '-')}", f"{r[measure]:,}{unit} {measure} > --{flag.replace('_', '-')} " \
                   f"{b[flag]:,}{unit}"
    if b["min_rf"] is not None and (r["rf"] or 0) < b["min_rf"]:
        return "under --min-rf", f"receptive field {r['rf']} < --min-rf {b['min_rf']}"
    w = b["where"]
    if w is not None and not w.variables_only and not w(choices, r):
        return "--where", f"fails --where {w.text}"
    return None


def _show(choices):
    return {n: _show_bits(v) if v.__class__ is tuple else v for n, v in choices.items()}


@functools.lru_cache(maxsize=4096)
def _show_bits(v):
    return ",".join("on" if b else "off" for b in v) if all(isinstance(b, bool) for b in v) else v


def _parallel(space, jobs, options, budget, workers, progress):
    from concurrent.futures import ProcessPoolExecutor
    size = max(1, min(CHUNK, len(jobs) // (workers * 4) or 1))
    chunks = [jobs[i:i + size] for i in range(0, len(jobs), size)]
    records, dropped, examples = [], Counter(), {}
    # forked workers share the parent's objects until they write to them: frozen, the collector in a
    # worker leaves them (and their pages) alone (the gc module's advice for fork without exec)
    gc.freeze()
    try:
        with ProcessPoolExecutor(workers, initializer=_init, initargs=(space, options, budget)) as pool:
            for (recs, drops, ex), chunk in zip(pool.map(_chunk, chunks), chunks):
                records += recs
                dropped.update(drops)
                for why, e in ex.items():
                    examples[why] = min(examples.get(why, e), e)
                if progress:
                    progress(len(chunk))
    finally:
        gc.unfreeze()
    return records, dropped, examples

