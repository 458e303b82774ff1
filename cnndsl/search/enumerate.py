"""Search a family: measure its members, drop what does not fit, keep what is within budget.

    >>> import cnndsl
    >>> from cnndsl.search.space import Space
    >>> prog = cnndsl.parse("input 8x8x3\\nlet N = 1 in 1..4\\n[CONV(8, 3, p=1) - POOL]*N - FC(10)")
    >>> r = search(Space(prog), max_params=1500)
    >>> r["count"], r["dropped"], [m["bindings"] for m in r["members"]]
    (4, {'E301: #x# window does not fit a height of # (input #x#x#)': 1, 'over --max-params': 1}, [{'N': 2}, {'N': 3}])

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
        records, dropped = _parallel(space, jobs, options, budget, workers, progress)
    else:
        _init(space, options, budget)
        try:
            records, dropped = _chunk(jobs)
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
            "dropped": dict(sorted(dropped.items(), key=lambda kv: (-kv[1], kv[0]))), "sort": sort,
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
    from ..net import _gc_paused  # members allocate much and free it all: the collector would only rescan
    with _gc_paused():
        return _measure_all(jobs)


def _measure_all(jobs):
    st = _STATE
    space, options, budget, cache, readsets = st["space"], st["options"], st["budget"], st["cache"], st["readsets"]
    where = budget["where"]
    records, dropped = [], Counter()
    member = space.member
    for index in jobs:
        choices = member(index)
        if where is not None and where.variables_only and not where(choices, None):
            dropped["--where"] += 1
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
                dropped["duplicate: an optional switched off where it does not occur"] += 1
                continue
            rs = tuple(sorted(n for n in r.pop("read") if n in choices))
            if rs not in readsets:
                readsets.append(rs)
            hit = cache[(rs, tuple(choices[n] for n in rs))] = (index, r)
        first, r = hit
        if "error" in r:
            dropped[r["error"]] += 1
            continue
        why = _over_budget(r, budget, choices)
        if why:
            dropped[why] += 1
            continue
        rec = {"index": index, "bindings": _show(choices), **r}
        if first != index:
            rec["same_as"] = first
        records.append(rec)
    return records, dropped


def _over_budget(r, b, choices):
    if b["max_params"] is not None and r["params"] > b["max_params"]:
        return "over --max-params"
    if b["max_macs"] is not None and r["macs"] > b["max_macs"]:
        return "over --max-macs"
    if b["max_memory"] is not None and r["memory"] > b["max_memory"]:
        return "over --max-memory"
    if b["min_rf"] is not None and (r["rf"] or 0) < b["min_rf"]:
        return "under --min-rf"
    w = b["where"]
    if w is not None and not w.variables_only and not w(choices, r):
        return "--where"
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
    records, dropped = [], Counter()
    # forked workers share the parent's objects until they write to them: frozen, the collector in a
    # worker leaves them (and their pages) alone (the gc module's advice for fork without exec)
    gc.freeze()
    try:
        with ProcessPoolExecutor(workers, initializer=_init, initargs=(space, options, budget)) as pool:
            for (recs, drops), chunk in zip(pool.map(_chunk, chunks), chunks):
                records += recs
                dropped.update(drops)
                if progress:
                    progress(len(chunk))
    finally:
        gc.unfreeze()
    return records, dropped

