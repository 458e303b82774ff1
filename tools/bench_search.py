"""Benchmark: members of the classic pattern analysed per second by `cnndsl.search` (issue 15).

    python tools/bench_search.py [--jobs 1,2] [--compare 200] [--profile]

The family, as the issue states it: [(CONV-RELU)*N - POOL?]*M - (FC-RELU)*K - FC(10) - SOFTMAX on
32x32x3 with channels doubling per stage (C*2**i, the repeat index `*M @i`), N <= 5, M <= 6, K <= 2,
C in {16, 32, 48, 64}, FC width in {64, 128, 256, 512}, each pool on or off on its own
(`pool = on in each`: 2^M patterns per M): 30,240 members.

Prints, for each --jobs count, members per second of wall time and per CPU-second (this process and
its pool workers together: on a shared machine the wall figure depends on the neighbours, the CPU
figure much less); the time split of a serial run (parse, counting the space, binding and
elaboration, the analysis, budget filtering, the rest of the enumeration loop, output as a table and
as JSON); and the ratio against what a user would otherwise write: a Python loop that loads each
member's own `.net` text and reports it (`cnndsl.loads(text).report()`), and one that builds each
member as a torch module on the meta device (`to_torch(device="meta")`), both timed on a seeded
sample of the members and counted per CPU-second. --profile adds cProfile's view of a serial run.
"""
import argparse
import cProfile
import json
import os
import pstats
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import cnndsl  # noqa: E402
from cnndsl.search import emit as W  # noqa: E402
from cnndsl.search import enumerate as E  # noqa: E402
from cnndsl.search import lean  # noqa: E402
from cnndsl.search import member as M  # noqa: E402
from cnndsl.search.member import elaborate_member  # noqa: E402
from cnndsl.search.space import Space  # noqa: E402

FAMILY = """input 32x32x3
let N = 2 in 1..5
let M = 3 in 1..6
let K = 1 in 0..2
let C = 32 in 16, 32, 48, 64
let F = 128 in 64, 128, 256, 512
let pool = on in each
[(CONV(C * 2**i, 3, p=1) - RELU)*N - POOL?]*M @i - (FC(F) - RELU)*K - FC(10) - SOFTMAX
"""


def cpu():
    """CPU seconds of this process and of its reaped children (the pool's workers)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def timed(f, *args, **kw):
    c0, t0 = cpu(), time.perf_counter()
    out = f(*args, **kw)
    return out, time.perf_counter() - t0, cpu() - c0


class Clock:
    """CPU time spent inside some functions, by wrapping them where the search looks them up."""

    def __init__(self):
        self.spent, self.undo = {}, []

    def wrap(self, owner, name, label):
        f = getattr(owner, name)
        spent = self.spent
        spent[label] = 0.0
        pt = time.process_time

        def timed_call(*args, **kw):
            t = pt()
            try:
                return f(*args, **kw)
            finally:
                spent[label] += pt() - t
        setattr(owner, name, timed_call)
        self.undo.append((owner, name, f))

    def restore(self):
        for owner, name, f in reversed(self.undo):
            setattr(owner, name, f)


def split(space, parse_s, count_s):
    """The time split of a serial search (CPU seconds), and the result."""
    from cnndsl.search.render import table as _search_table
    clock = Clock()
    clock.wrap(lean.Lean, "run", "bind + elaborate")
    clock.wrap(M, "totals", "analysis")
    clock.wrap(E, "_over_budget", "budget filtering")
    try:
        r, _wall, total = timed(E.search, space, workers=1, max_params=5_000_000)
    finally:
        clock.restore()
    t = time.process_time()
    table = _search_table({**r, "members": r["members"][:10]})
    table_s = time.process_time() - t
    t = time.process_time()
    text = json.dumps(r)
    json_s = time.process_time() - t
    parts = {"parse": parse_s, "count the space": count_s, **clock.spent}
    parts["enumeration (decode, same-net cache, records)"] = total - sum(clock.spent.values())
    parts["output: table (top 10)"] = table_s
    parts[f"output: JSON ({len(text) / 1e6:.1f} MB, all kept)"] = json_s
    return parts, r


def comparators(prog, space, result, n, seed):
    """Members per CPU-second of the loops a user would write, on `n` kept members drawn with `seed`."""
    sample = random.Random(seed).sample(result["members"], min(n, len(result["members"])))
    texts = [W.flat_text(elaborate_member(prog, space.bindings(space.member(m["index"])))[0], "member")
             for m in sample]
    out = {}
    t = time.process_time()
    for text, m in zip(texts, sample):
        assert cnndsl.loads(text).report()["totals"]["params"] == m["params"]
    out["cnndsl.loads(text).report() per member"] = len(texts) / (time.process_time() - t)
    try:
        import torch
    except ImportError:
        return out
    t = time.process_time()
    for text, m in zip(texts, sample):
        module = cnndsl.loads(text).to_torch(device="meta")
        assert sum(p.numel() for p in module.parameters()) == m["params"]
    out["to_torch(device='meta') per member"] = len(texts) / (time.process_time() - t)
    del torch
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", default="1,2", help="worker counts to time, e.g. 1,2")
    ap.add_argument("--compare", type=int, default=200, help="members the comparator loops run on")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--profile", action="store_true")
    a = ap.parse_args()
    t = time.process_time()
    prog = cnndsl.parse(FAMILY, "classic_family.net")
    parse_s = time.process_time() - t
    t = time.process_time()
    space = Space(prog)
    count_s = time.process_time() - t
    print(f"{space.count:,} members of {FAMILY.splitlines()[-1]}")
    rates = {}
    for jobs in [int(j) for j in a.jobs.split(",")]:
        r, wall, spent = timed(E.search, space, workers=jobs)
        rates[jobs] = r["measured"] / spent
        print(f"  {jobs} process{'es' * (jobs > 1)}: {wall:6.2f} s wall, {spent:6.2f} CPU-s -> "
              f"{r['measured'] / wall:8,.0f} members/s wall, {r['measured'] / spent:8,.0f} per CPU-second "
              f"({r['kept']:,} fit, {r['distinct']:,} distinct nets; dropped {sum(r['dropped'].values()):,})")
    parts, r = split(space, parse_s, count_s)
    total = sum(parts.values())
    print(f"time split of a serial run with --max-params 5M (CPU-s, {total:.2f} in all):")
    for k, v in parts.items():
        print(f"  {k:52s} {v:6.3f}  {100 * v / total:5.1f} %")
    best = max(rates.values())
    print(f"against a loop over the members ({a.compare} of them, seeded), members per CPU-second:")
    for k, v in comparators(prog, space, r, a.compare, a.seed).items():
        print(f"  {k:52s} {v:8,.0f}  (search: {best / v:,.0f}x)")
    if a.profile:
        pr = cProfile.Profile()
        pr.enable()
        E.search(space, workers=1)
        pr.disable()
        pstats.Stats(pr).sort_stats("tottime").print_stats(18)


if __name__ == "__main__":
    main()
