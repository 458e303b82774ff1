"""Benchmark: how fast `cnndsl report` answers, against the tools people use for the same question.

    python tools/bench_report.py            # about a minute and a half
    python tools/bench_report.py --quick    # skips the written-out 100k-layer spec (~30 s of parsing)

Prints figures and ratios, asserts nothing (issue 2, section 7). Targets:
  * cold `cnndsl report nets/resnet152.net` < 0.5 s and well under half of `python -c "import torch"`;
  * in-process `cnndsl.load(...).report()` of ResNet-152 < 20 ms;
  * a generated 100,000-layer spec analysed < 3 s, with 1k/10k/100k times showing linear growth.
It also times torchinfo.summary and fvcore's FlopCountAnalysis on torchvision's resnet152 and
vgg16 in /work/refenv (a separate venv: torchvision is never a cnndsl dependency), and prints
the ratio to ours. Times are medians; CPU time is printed beside wall time because the machine
this runs on is shared, and CPU time is the less disturbed of the two.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REFENV = os.environ.get("CNNDSL_REFENV", "/work/refenv/bin/python")

# Used only if the zoo has no nets/resnet152.net: torchvision's ResNet-152 (60,192,808 parameters).
RESNET152 = """\
input 224x224x3
def bottleneck(c, s=1) = { CONV(4*c, 1, s=s, bias=false) - BN
    + CONV(c, 1, bias=false) - BN - RELU - CONV(c, 3, s=s, p=1, bias=false) - BN - RELU - CONV(4*c, 1, bias=false) - BN } - RELU
def identity(c) = { ID + CONV(c, 1, bias=false) - BN - RELU - CONV(c, 3, p=1, bias=false) - BN - RELU - CONV(4*c, 1, bias=false) - BN } - RELU
def stage(c, n, s) = bottleneck(c, s) - identity(c)*(n-1)
conv1: CONV(64, 7, s=2, p=3, bias=false) - BN - RELU - MAXPOOL(3, s=2, p=1)
- layer1: stage(64, 3, 1) - layer2: stage(128, 8, 2) - layer3: stage(256, 36, 2) - layer4: stage(512, 3, 2)
- GAP - FC(1000)
"""

REFERENCE = r"""
import json, statistics, sys, time, warnings, logging
warnings.filterwarnings("ignore"); logging.disable(logging.WARNING)
import torch, torchvision, torchinfo
from fvcore.nn import FlopCountAnalysis
torch.set_num_threads(1)
out = {}
for name in sys.argv[1:]:
    model = getattr(torchvision.models, name)(weights=None).eval()
    x = torch.zeros(1, 3, 224, 224)
    def med(f, n=3):
        ts = []
        for _ in range(n):
            t = time.perf_counter(); f(); ts.append(time.perf_counter() - t)
        return statistics.median(ts)
    def fv():
        a = FlopCountAnalysis(model, x)
        a.unsupported_ops_warnings(False); a.uncalled_modules_warnings(False)
        return a.total()
    out[name] = {"torchinfo": med(lambda: torchinfo.summary(model, input_size=(1, 3, 224, 224), verbose=0)),
                 "fvcore": med(fv)}
print(json.dumps(out))
"""


def median_time(fn, n):
    """(median wall s, median CPU s) of n calls, with a warm-up call first."""
    fn()
    walls, cpus = [], []
    for _ in range(n):
        gc.collect()
        w, c = time.perf_counter(), time.process_time()
        fn()
        cpus.append(time.process_time() - c)
        walls.append(time.perf_counter() - w)
    return statistics.median(walls), statistics.median(cpus)


def median_run(cmd, n, env=None):
    """Median wall time of running cmd n times (children's CPU time too), after one warm-up run."""
    subprocess.run(cmd, capture_output=True, env=env, check=True)
    walls, cpus = [], []
    for _ in range(n):
        before = os.times()
        w = time.perf_counter()
        subprocess.run(cmd, capture_output=True, env=env, check=True)
        walls.append(time.perf_counter() - w)
        after = os.times()
        cpus.append((after.children_user - before.children_user) + (after.children_system - before.children_system))
    return statistics.median(walls), statistics.median(cpus)


def ms(s):
    return f"{s * 1e3:8.1f} ms"


def resnet152_path(tmp):
    path = os.path.join(ROOT, "nets", "resnet152.net")
    if os.path.exists(path):
        return path, "nets/resnet152.net"
    path = os.path.join(tmp, "resnet152.net")
    with open(path, "w") as f:
        f.write(RESNET152)
    return path, "resnet152 (inline spec; nets/resnet152.net absent)"


def cold(path, label, runs):
    print(f"\n== cold start: `cnndsl report {label}` (median of {runs} processes)")
    cli = os.path.join(os.path.dirname(sys.executable), "cnndsl")
    cmd = [cli] if os.path.exists(cli) else [sys.executable, "-m", "cnndsl.cli"]
    ours = median_run(cmd + ["report", path], runs)
    torch_ = median_run([sys.executable, "-c", "import torch"], max(3, runs // 2))
    probe = subprocess.run([sys.executable, "-X", "importtime", "-m", "cnndsl.cli", "report", path],
                           capture_output=True, text=True)
    heavy = sorted({line.split("|")[-1].strip().split(".")[0] for line in probe.stderr.splitlines()
                    if line.startswith("import time") and line.split("|")[-1].strip().split(".")[0]
                    in ("torch", "onnx", "onnxruntime", "graphviz", "numpy")})
    print(f"cnndsl report           {ms(ours[0])} wall {ms(ours[1])} CPU   (target < 500 ms)")
    print(f'python -c "import torch" {ms(torch_[0])} wall {ms(torch_[1])} CPU')
    print(f"ratio                   {ours[0] / torch_[0]:8.2f} of import torch (target well under 0.5)")
    print(f"heavy modules imported by `cnndsl report`: {', '.join(heavy) or 'none'}")


def in_process(path, label, runs):
    import cnndsl
    from cnndsl.analysis import report
    from cnndsl.lang.elaborate import elaborate
    from cnndsl.lang.syntax import parse_text
    print(f"\n== in-process: cnndsl.load({label}).report() (median of {runs})")
    text = open(path, "rb").read()
    total = median_time(lambda: cnndsl.load(path).report(), runs)
    prog = parse_text(text, path)
    graph = elaborate(prog, path=path)
    phases = [("parse (lark LALR -> AST)", median_time(lambda: parse_text(text, path), runs)),
              ("elaborate (AST -> IR, shapes)", median_time(lambda: elaborate(prog, path=path), runs)),
              ("analyze + report dict", median_time(lambda: report.build(graph), runs))]
    n = len(graph.nodes)
    print(f"load + report           {ms(total[0])} wall {ms(total[1])} CPU   (target < 20 ms; {n} layers)")
    for name, (w, c) in phases:
        print(f"  {name:30s}{ms(w)} wall {ms(c)} CPU")
    return total[0]


def generated(sizes, written_out, runs):
    import cnndsl
    print("\n== generated specs (load + report, median); per-layer cost should stay flat")
    unit = ["CONV(16, 3, p=1)", "BN", "RELU"]
    forms = [("repeated", lambda n: f"input 32x32x16\n(CONV(16, 3, p=1) - BN - RELU)*{n // 3}\n")]
    if written_out:
        forms.append(("written out", lambda n: "input 32x32x16\n" + "\n- ".join(unit[i % 3] for i in range(n)) + "\n"))
    for form, make in forms:
        print(f"-- {form}: " + ("`(CONV(16, 3, p=1) - BN - RELU)*N`" if form == "repeated" else
                                "every layer in the text (the parser's share grows)"))
        for n in sizes[form]:
            text = make(n)
            if n >= 50_000:  # one run: a warm-up would double the wait for no better figure
                gc.collect()
                w, c = time.perf_counter(), time.process_time()
                layers = len(cnndsl.loads(text).report()["layers"])
                wall, cpu = time.perf_counter() - w, time.process_time() - c
            else:
                layers = len(cnndsl.loads(text).report()["layers"])
                wall, cpu = median_time(lambda: cnndsl.loads(text).report(), runs)
            target = "   (target < 3 s)" if n >= 100_000 else ""
            print(f"{layers:>7,} layers {len(text):>10,} chars {wall:7.2f} s wall {cpu:7.2f} s CPU "
                  f"{wall / layers * 1e6:6.1f} us/layer{target}")


def reference(ours: dict, runs):
    print("\n== torchinfo.summary and fvcore FlopCountAnalysis on torchvision's models (in /work/refenv)")
    if not os.path.exists(REFENV):
        print(f"skipped: {REFENV} not found (set CNNDSL_REFENV)")
        return
    env = dict(os.environ, OMP_NUM_THREADS="1")
    res = subprocess.run([REFENV, "-c", REFERENCE, *ours], capture_output=True, text=True, env=env)
    if res.returncode:
        print("skipped: the reference environment failed:\n" + res.stderr[-2000:])
        return
    theirs = json.loads(res.stdout.strip().splitlines()[-1])
    print(f"{'net':10s} {'cnndsl':>11s} {'torchinfo':>11s} {'ratio':>7s} {'fvcore':>11s} {'ratio':>7s}")
    for name, t in theirs.items():
        o = ours[name]
        print(f"{name:10s} {ms(o)} {ms(t['torchinfo'])} {t['torchinfo'] / o:6.0f}x {ms(t['fvcore'])} {t['fvcore'] / o:6.0f}x")
    print("(their times exclude building the model; cnndsl's include parsing the spec)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="skip the written-out 100k-layer spec")
    ap.add_argument("--runs", type=int, default=9, help="repetitions per median (default 9)")
    args = ap.parse_args()
    sys.path.insert(0, ROOT)
    with tempfile.TemporaryDirectory() as tmp:
        path, label = resnet152_path(tmp)
        print(f"cnndsl benchmark, python {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
              f"load average {os.getloadavg()[0]:.1f}")
        cold(path, label, args.runs)
        ours = {"resnet152": in_process(path, label, 2 * args.runs + 1)}
        vgg = os.path.join(ROOT, "nets", "vgg16.net")
        if os.path.exists(vgg):
            ours["vgg16"] = in_process(vgg, "nets/vgg16.net", 2 * args.runs + 1)
        sizes = {"repeated": (999, 9_999, 99_999),
                 "written out": (1_000, 10_000) if args.quick else (1_000, 10_000, 100_000)}
        generated(sizes, True, 3)
        reference(ours, args.runs)


if __name__ == "__main__":
    main()
