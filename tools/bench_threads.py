"""Images/s of `cnndsl train` with 1 and 2 torch threads, on a quiet machine and beside 1 and 2 busy
processes (`python -c "while 1: pass"`): the figures behind `--threads`' default (README, Training).

    python tools/bench_threads.py                          # LeNet-5 on digits, threads 1,2, busy 0,1,2
    python tools/bench_threads.py --threads 1,2,4 --busy 0,1 --repeats 3

Each figure is one fresh process training --net on --data (seed 0, CPU) with `--threads N`; the rate is
the running images/s of epoch 2 (epoch 1 warms up), cut at --seconds so a collapsed run ends too.
A shared machine's other load changes every figure: run it more than once and quote ranges.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")

ONE = r"""
import sys, time
import cnndsl
from cnndsl.train import train
net, data, threads, limit = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
rate, start = [None], [0.0]
class Enough(Exception):
    pass
def clock(e):
    if e["event"] == "epoch":
        start[0] = time.perf_counter()
    elif e["event"] == "progress" and e["epoch"] == 2:
        rate[0] = e["images_per_s"]
        if time.perf_counter() - start[0] > limit:
            raise Enough
try:
    train(cnndsl.load(net), data, epochs=2, seed=0, device="cpu", threads=threads, callback=clock)
except Enough:
    pass
print(rate[0])
"""


def measure(net, data, threads, seconds) -> float:
    env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    env.pop("OMP_NUM_THREADS", None)  # --threads alone decides
    out = subprocess.run([sys.executable, "-c", ONE, net, data, str(threads), str(seconds)], cwd=ROOT, env=env,
                         capture_output=True, text=True, check=True).stdout
    return float(out.split()[-1])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--net", default="nets/lenet5.net")
    p.add_argument("--data", default="digits")
    p.add_argument("--threads", default="1,2")
    p.add_argument("--busy", default="0,1,2", help="busy processes beside the measurement")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--seconds", type=float, default=4.0, help="of epoch 2 measured at most")
    a = p.parse_args(argv)
    threads = [int(t) for t in a.threads.split(",")]
    print(f"{a.net} on {a.data}, images/s of epoch 2 ({os.cpu_count()} CPUs; load average before: "
          f"{os.getloadavg()[0]:.2f})")
    for busy in [int(b) for b in a.busy.split(",")]:
        spin = [subprocess.Popen([sys.executable, "-c", "while 1: pass"]) for _ in range(busy)]
        try:
            time.sleep(0.5)
            for t in threads:
                rates = [measure(a.net, a.data, t, a.seconds) for _ in range(a.repeats)]
                shown = ", ".join(f"{r:,.0f}" for r in rates)
                print(f"  {busy} busy process{'es' * (busy != 1)}, {t} thread{'s' * (t != 1)}: {shown}")
        finally:
            for s in spin:
                s.kill()
                s.wait()


if __name__ == "__main__":
    main()
