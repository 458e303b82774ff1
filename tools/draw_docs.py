"""Render the README's diagrams into docs/ and time the big expanded one.

    python tools/draw_docs.py

Graph style: docs/NAME-graph.png (dot). Volumes style: docs/NAME-volumes.svg and .png (matplotlib),
all at the default slide size (1920x1080 px). Prints the wall time of
`cnndsl draw nets/resnet152.net --expand -o x.svg` (the issue asks for under 5 s).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

NETS = ("lenet5", "alexnet_227", "vgg16", "googlenet", "resnet50", "densenet121")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def cnndsl(*args):
    code = "import sys; from cnndsl.cli import main; sys.exit(main(sys.argv[1:]))"
    subprocess.run([sys.executable, "-c", code, *args], check=True, cwd=ROOT, stderr=subprocess.DEVNULL)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(ROOT, "docs"))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    for name in NETS:
        spec = f"nets/{name}.net"
        cnndsl("draw", spec, "-o", os.path.join(args.out, f"{name}-graph.png"))
        for ext in ("svg", "png"):
            cnndsl("draw", spec, "--style", "volumes", "-o", os.path.join(args.out, f"{name}-volumes.{ext}"))
        print(f"{name}: done")
    with tempfile.TemporaryDirectory() as tmp:
        times = []
        for _ in range(3):
            t = time.perf_counter()
            cnndsl("draw", "nets/resnet152.net", "--expand", "-o", os.path.join(tmp, "r152.svg"))
            times.append(time.perf_counter() - t)
    print(f"resnet152 --expand -> svg: best {min(times):.2f} s, worst {max(times):.2f} s (limit 5 s)")


if __name__ == "__main__":
    main()
