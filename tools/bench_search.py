"""Benchmark: members of the classic pattern analysed per second by `cnndsl.search`.

    python tools/bench_search.py [--jobs N] [--profile]

The family (issue 15): [(CONV-RELU)*N - POOL?]*M - (FC-RELU)*K - FC(10) - SOFTMAX on 32x32x3,
N <= 5, M <= 6, K <= 2, C in {16, 32, 48, 64}, FC width in {64, 128, 256, 512}, each pool on or
off on its own (`pool=each`: 2^M patterns). The issue asks for channels doubling per stage
(C*2^i), which needs the repeat index another branch is adding; until it lands every stage has
C channels (same member count, same work per member). Prints members/s (wall and CPU) and, with
--profile, where the time goes (cProfile of the serial run, by function).
"""
import argparse
import cProfile
import os
import pstats
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import cnndsl  # noqa: E402
from cnndsl.search.enumerate import search  # noqa: E402
from cnndsl.search.space import Space  # noqa: E402

FAMILY = """input 32x32x3
let N = 2 in 1..5
let M = 3 in 1..6
let K = 1 in 0..2
let C = 32 in 16, 32, 48, 64
let F = 128 in 64, 128, 256, 512
let pool = on in each
[(CONV(C, 3, p=1) - RELU)*N - POOL?]*M - (FC(F) - RELU)*K - FC(10) - SOFTMAX
"""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=os.cpu_count())
    ap.add_argument("--profile", action="store_true")
    a = ap.parse_args()
    prog = cnndsl.parse(FAMILY, "classic_family.net")
    t0 = time.perf_counter()
    space = Space(prog)
    t_count = time.perf_counter() - t0
    print(f"{space.count:,} members (counted in {t_count:.2f} s)")
    c0, t0 = time.process_time(), time.perf_counter()
    r = search(space, workers=a.jobs)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    print(f"search, {a.jobs} process(es): {wall:.2f} s wall -> {r['measured'] / wall:,.0f} members/s "
          f"({r['kept']:,} kept, {r['distinct']:,} distinct nets measured; parent CPU {cpu:.2f} s)")
    print("dropped:", r["dropped"])
    if a.profile:
        pr = cProfile.Profile()
        pr.enable()
        search(space, workers=1)
        pr.disable()
        pstats.Stats(pr).sort_stats("tottime").print_stats(18)


if __name__ == "__main__":
    main()
