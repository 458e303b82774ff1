"""Benchmark: how fast `cnndsl report` answers, against the tools people use for the same question.

    python tools/bench_report.py            # about two minutes
    python tools/bench_report.py --quick    # skips the written-out 18k-layer spec
    python tools/bench_report.py --twins    # only the table against torchinfo (~40 s)

Prints figures and ratios, asserts nothing (issue 2, section 7; issue 23, item 5). Targets:
  * in-process `cnndsl.load(...).report()` at least 30x faster than torchinfo.summary of the same
    torchvision model (construction excluded) on each of TWINS, in one run of this script;
  * cold `cnndsl report nets/resnet152.net` < 0.2 s of CPU (with its bytecode cached, as an
    installed package runs; the figure without a bytecode cache is printed beside it);
  * a generated 100,000-layer spec analysed < 3 s, with 1k/10k/100k times showing linear growth;
  * a layer written out costing not much more than one inside a repeat (both parsed afresh).
torchinfo (and fvcore, on resnet152 and vgg16) run in a separate venv, /work/refenv or
$CNNDSL_REFENV (torchvision and torchinfo are never cnndsl dependencies; tools/make_reference.py
says how to make it), in a subprocess that times each summary in-process; cnndsl is timed
in-process here, before and after that subprocess, and the two samples are pooled, so both
sides see the same machine state; each side times its calls back to back after a warm-up. Times
are medians of CPU time (wall time beside it): the machine this runs on is shared, and CPU time
is the less disturbed of the two. torch runs on one thread, as cnndsl does.
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

# The nine torchvision twins of issue 23 (nets/NAME.net is the twin of torchvision.models.NAME),
# heavy first; the last three include most of their blocks from nets/lib.
TWINS = ("vgg16", "resnet152", "resnet50", "resnet18", "densenet121", "convnext_tiny", "efficientnet_b0",
         "mobilenet_v3_large", "regnet_y_400mf")
FVCORE = ("resnet152", "vgg16")

# Run in the reference venv: argv = runs, then the nets. Each model is built first (not timed),
# then torchinfo.summary is timed in this process: (CPU s, wall s) of each run.
REFERENCE = r"""
import json, sys, time, warnings, logging
warnings.filterwarnings("ignore"); logging.disable(logging.WARNING)
import torch, torchvision, torchinfo
torch.set_num_threads(1)
runs, names = int(sys.argv[1]), sys.argv[2:]
def timed(f, n):
    f()  # warm-up
    out = []
    for _ in range(n):
        c, w = time.process_time(), time.perf_counter(); f()
        out.append((time.process_time() - c, time.perf_counter() - w))
    return out
out = {"versions": {"torch": torch.__version__, "torchvision": torchvision.__version__,
                    "torchinfo": torchinfo.__version__}}
for name in names:
    fv = name.startswith("fvcore:")
    name = name.split(":")[-1]
    model = getattr(torchvision.models, name)(weights=None).eval()
    x = torch.zeros(1, 3, 224, 224)
    if fv:
        from fvcore.nn import FlopCountAnalysis
        def f():
            a = FlopCountAnalysis(model, x)
            a.unsupported_ops_warnings(False); a.uncalled_modules_warnings(False)
            return a.total()
        out["fvcore:" + name] = timed(f, runs)
    else:
        out[name] = timed(lambda: torchinfo.summary(model, input_size=(1, 3, 224, 224), verbose=0), runs)
print(json.dumps(out))
"""


def samples(fn, n):
    """[(CPU s, wall s)] of n calls, after a warm-up call: back to back, as REFERENCE times torchinfo.
    No forced collection before each call: gc.collect() walks the whole heap (the parse cache, the
    memos) and leaves the next call to start with the CPU's caches cold, ~20% of a 1.5 ms load, while
    torchinfo's side never had one; the collections a loop of loads triggers by itself are counted."""
    fn()
    out = []
    for _ in range(n):
        w, c = time.perf_counter(), time.process_time()
        fn()
        out.append((time.process_time() - c, time.perf_counter() - w))
    return out


def median_time(fn, n):
    """(median wall s, median CPU s) of n calls, with a warm-up call first."""
    got = samples(fn, n)
    return statistics.median(w for _, w in got), statistics.median(c for c, _ in got)


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
    with tempfile.TemporaryDirectory() as pycache:
        # as an installed package runs: its modules' bytecode cached (the warm-up run writes it)
        cached = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        cached["PYTHONPYCACHEPREFIX"] = pycache
        ours = median_run(cmd + ["report", path], runs, env=cached)
        bare = median_run(cmd + ["report", path], runs, env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1",
                                                                  PYTHONPYCACHEPREFIX=os.path.join(pycache, "none")))
        torch_ = median_run([sys.executable, "-c", "import torch"], max(3, runs // 2), env=cached)
    probe = subprocess.run([sys.executable, "-X", "importtime", "-m", "cnndsl.cli", "report", path],
                           capture_output=True, text=True)
    heavy = sorted({line.split("|")[-1].strip().split(".")[0] for line in probe.stderr.splitlines()
                    if line.startswith("import time") and line.split("|")[-1].strip().split(".")[0]
                    in ("torch", "onnx", "onnxruntime", "graphviz", "numpy", "sympy", "matplotlib")})
    print(f"cnndsl report            {ms(ours[0])} wall {ms(ours[1])} CPU   (target < 200 ms CPU)")
    print(f"  without bytecode cache {ms(bare[0])} wall {ms(bare[1])} CPU   (PYTHONDONTWRITEBYTECODE=1: "
          f"every module compiled each run)")
    print(f'python -c "import torch"  {ms(torch_[0])} wall {ms(torch_[1])} CPU')
    print(f"heavy modules imported by `cnndsl report`: {', '.join(heavy) or 'none'}")


def in_process(path, label, runs):
    """Where the time of one in-process load + report goes: loaded again unchanged, and edited."""
    import cnndsl
    from cnndsl.analysis import report
    from cnndsl.lang.elaborate import elaborate
    print(f"\n== in-process: cnndsl.load({label}).report() (median of {runs})")
    text = open(path, "rb").read()
    total = median_time(lambda: cnndsl.load(path).report(), runs)
    prog = cnndsl.parse(text, path)
    graph = elaborate(prog, path=path)
    edits = [0]

    def edited():
        edits[0] += 1
        return text + f"\n# edit {edits[0]}\n".encode()
    fresh = [cnndsl.parse(edited(), path) for _ in range(runs + 1)]
    phases = [("parse, unchanged (the cache)", median_time(lambda: cnndsl.parse(text, path), runs)),
              ("parse, edited", median_time(lambda: cnndsl.parse(edited(), path), runs)),
              ("elaborate, unchanged (replayed)", median_time(lambda: elaborate(prog, path=path), runs)),
              ("elaborate, edited (blocks replayed)", median_time(lambda: elaborate(fresh.pop(), path=path), runs)),
              ("analyze + report dict", median_time(lambda: report.build(graph), runs))]
    n = len(graph.nodes)
    print(f"load + report                       {ms(total[0])} wall {ms(total[1])} CPU   ({n} layers)")
    for name, (w, c) in phases:
        print(f"  {name:34s}{ms(w)} wall {ms(c)} CPU")
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
            text, run = make(n), [0]

            def fresh():  # a text parsed and expanded for the first time (caches hold earlier texts)
                run[0] += 1
                return cnndsl.loads(text + f"# run {run[0]}\n").report()
            if n >= 50_000:  # one run: a warm-up would double the wait for no better figure
                gc.collect()
                w, c = time.perf_counter(), time.process_time()
                layers = len(fresh()["layers"])
                wall, cpu = time.perf_counter() - w, time.process_time() - c
            else:
                layers = len(fresh()["layers"])
                wall, cpu = median_time(fresh, runs)
            target = "   (target < 3 s)" if n >= 100_000 else ""
            print(f"{layers:>7,} layers {len(text):>10,} chars {wall:7.2f} s wall {cpu:7.2f} s CPU "
                  f"{cpu / layers * 1e6:6.1f} us/layer (CPU){target}")


def twins(runs):
    """The table of issue 23: for each twin, cnndsl's in-process load + report against torchinfo.summary
    of the torchvision model, in one run; beside it the same with the spec's own text edited before
    each load (what an editor that re-analyses on every keystroke sees). {net: samples}."""
    import cnndsl
    paths = {name: os.path.join(ROOT, "nets", f"{name}.net") for name in TWINS}
    print(f"\n== the twins: in-process cnndsl.load(...).report() against torchinfo.summary (CPU time, "
          f"median of {2 * runs})")
    if not os.path.exists(REFENV):
        print(f"torchinfo skipped: {REFENV} not found (set CNNDSL_REFENV; tools/make_reference.py says how to "
              f"make it)")
    edits = [0]

    def edited(path, text):
        edits[0] += 1  # a new comment line: the text differs from every one parsed before
        return cnndsl.parse(text + f"\n# edit {edits[0]}\n".encode(), path).bind().report()

    texts = {name: open(path, "rb").read() for name, path in paths.items()}
    ours = {name: samples(lambda: cnndsl.load(path).report(), runs) for name, path in paths.items()}
    fresh = {name: samples(lambda: edited(path, texts[name]), runs) for name, path in paths.items()}
    theirs = _reference(TWINS + tuple(f"fvcore:{n}" for n in FVCORE), runs) if os.path.exists(REFENV) else None
    for name, path in paths.items():  # again after torchinfo: both sides sampled around the same moments
        ours[name] += samples(lambda: cnndsl.load(path).report(), runs)
        fresh[name] += samples(lambda: edited(path, texts[name]), runs)
    versions = theirs.pop("versions", {}) if theirs else {}
    if versions:
        print("reference: " + ", ".join(f"{k} {v}" for k, v in versions.items()) + ", 1 thread")
    print(f"{'net':20s} {'layers':>6s} {'cnndsl':>11s} {'torchinfo':>11s} {'ratio':>7s}   {'edited':>11s} {'ratio':>7s}")
    ratios = []
    for name, path in paths.items():
        layers = len(cnndsl.load(path).graph.nodes)
        o = statistics.median(c for c, _ in ours[name])
        e = statistics.median(c for c, _ in fresh[name])
        line = f"{name:20s} {layers:6d} {ms(o)}"
        if theirs and name in theirs:
            t = statistics.median(c for c, _ in theirs[name])
            ratios.append(t / o)
            line += f" {ms(t)} {t / o:6.0f}x   {ms(e)} {t / e:6.0f}x"
        else:
            line += f" {'':11s} {'':7s}   {ms(e)}"
        print(line)
    if ratios:
        print(f"smallest ratio {min(ratios):.0f}x (target at least 30x on every twin)")
        for name in FVCORE:
            t = theirs.get(f"fvcore:{name}")
            if t:
                o = statistics.median(c for c, _ in ours[name])
                t = statistics.median(c for c, _ in t)
                print(f"fvcore FlopCountAnalysis, {name}: {ms(t)} ({t / o:.0f}x cnndsl)")
    print("(torchinfo's times exclude building the model and include its forward pass, which it needs;\n"
          " cnndsl: reading the spec, parsing it (a text parsed before is taken from the cache), expanding\n"
          " it (block expansions seen before are replayed) and the whole analysis and report;\n"
          " edited: the spec's own text differs on every load, so it is parsed and its network expanded\n"
          " again, its library's blocks replayed)")
    return ours


def _reference(names, runs):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    res = subprocess.run([REFENV, "-c", REFERENCE, str(runs), *names], capture_output=True, text=True, env=env)
    if res.returncode:
        print("torchinfo skipped: the reference environment failed:\n" + res.stderr[-2000:])
        return None
    return json.loads(res.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="skip the written-out 18k-layer spec")
    ap.add_argument("--twins", action="store_true", help="only the table against torchinfo")
    ap.add_argument("--runs", type=int, default=9, help="repetitions per median (default 9)")
    args = ap.parse_args()
    sys.path.insert(0, ROOT)
    print(f"cnndsl benchmark, python {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}")
    twins(args.runs)
    if args.twins:
        return
    with tempfile.TemporaryDirectory() as tmp:
        path, label = resnet152_path(tmp)
        cold(path, label, args.runs)
        in_process(path, label, 2 * args.runs + 1)
        in_process(os.path.join(ROOT, "nets", "efficientnet_b0.net"), "nets/efficientnet_b0.net", 2 * args.runs + 1)
        sizes = {"repeated": (999, 9_999, 99_999),
                 "written out": (1_000, 6_000) if args.quick else (1_000, 6_000, 18_000)}
        generated(sizes, True, 3)


if __name__ == "__main__":
    main()
