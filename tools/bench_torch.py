"""Training-step time of cnndsl's to_torch() module against its torchvision twin.

One step = forward + cross-entropy + backward (no optimizer: the same for both), train mode,
the same batch, the same weights (the twin's, loaded through cnndsl's key mapping).
Runs are interleaved (ours, twin, twin, ours, ...) so that load on the machine hits both
alike; the figures are medians; ratio = ours / twin (<= 1.03 is the target). Two clocks:
wall time, and the process's CPU time, which other processes on a shared machine disturb
far less (compare like with like: with --threads 1 CPU time is the work done).

    /work/refenv/bin/python tools/bench_torch.py                  # the five nets, CPU, batch 8
    /work/refenv/bin/python tools/bench_torch.py resnet18 --batch 16 --reps 7 --device cuda
    /work/refenv/bin/python tools/bench_torch.py resnet50 --compile  # torch.compile both first

Needs torchvision, hence the reference venv (see tools/torchvision_parity.py). Without it, compare
with another checkout's to_torch() instead (the twin column is then that checkout, same weights):

    python tools/bench_torch.py resnet50 --against /work/main --threads 4
"""
import argparse
import importlib.util
import os
import statistics
import sys
import time

import torch

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)  # this checkout's cnndsl, not one installed elsewhere

import cnndsl  # noqa: E402
from cnndsl import weights as W  # noqa: E402
DEFAULT = ["resnet18", "resnet50", "vgg16", "googlenet", "densenet121"]
TWIN_ARGS = {"googlenet": {"aux_logits": False, "init_weights": False}}


def other_checkout(path):
    """The cnndsl package of the checkout at `path`, imported as `cnndsl_baseline` (its imports are relative)."""
    init = os.path.join(path, "cnndsl", "__init__.py")
    spec = importlib.util.spec_from_file_location("cnndsl_baseline", init,
                                                  submodule_search_locations=[os.path.dirname(init)])
    module = importlib.util.module_from_spec(spec)
    sys.modules["cnndsl_baseline"] = module
    spec.loader.exec_module(module)
    return module


def models(name, device, channels_last, against=None):
    torch.manual_seed(0)
    spec = os.path.join(ROOT, "nets", f"{name}.net")
    ours = cnndsl.load(spec).to_torch(logits=True)
    if against:
        twin = other_checkout(against).load(spec).to_torch(logits=True)
        twin.load_state_dict(ours.state_dict())
    else:
        import torchvision
        twin = getattr(torchvision.models, name)(weights=None, **TWIN_ARGS.get(name, {}))
        W.load_into(ours, twin.state_dict())
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    return ours.to(device, memory_format=fmt).train(), twin.to(device, memory_format=fmt).train()


def step_timer(model, x, y, device):
    loss_fn = torch.nn.CrossEntropyLoss()

    def step():
        if device == "cuda":
            torch.cuda.synchronize()
        t, c = time.perf_counter(), time.process_time()
        model.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
        if device == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t, time.process_time() - c
    return step


def bench(name, args):
    ours, twin = models(name, args.device, args.channels_last, args.against)
    if args.compile:
        ours, twin = torch.compile(ours), torch.compile(twin)
    torch.manual_seed(1)
    x = torch.randn(args.batch, 3, args.size, args.size, device=args.device)
    if args.channels_last:
        x = x.to(memory_format=torch.channels_last)
    y = torch.randint(0, 1000, (args.batch,), device=args.device)
    a, b = step_timer(ours, x, y, args.device), step_timer(twin, x, y, args.device)
    for _ in range(args.warmup):
        a(), b()
    ta, tb = [], []
    for i in range(args.reps):
        if i % 2:
            tb.append(b()), ta.append(a())
        else:
            ta.append(a()), tb.append(b())
    med = lambda runs, k: statistics.median(r[k] for r in runs)  # noqa: E731
    return med(ta, 0), med(tb, 0), med(ta, 1), med(tb, 1)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("nets", nargs="*", default=DEFAULT)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--size", type=int, default=224, help="input height and width (small: Python's share shows)")
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--compile", action="store_true")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: PyTorch's default)")
    p.add_argument("--against", metavar="CHECKOUT", help="twin: that checkout's to_torch(), not torchvision")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"device {args.device}, batch {args.batch} x 3x{args.size}x{args.size}, {args.reps} interleaved steps (median), "
          f"threads {torch.get_num_threads()}, torch {torch.__version__}"
          + (", channels_last" if args.channels_last else "") + (", torch.compile" if args.compile else ""))
    print(f"{'':14s} {'wall s/step':>27s} {'':7s} {'CPU s/step':>22s}")
    twin = "baseline" if args.against else "torchvision"
    if args.against:
        print(f"twin: to_torch() of the checkout at {args.against}")
    print(f"{'net':14s} {'cnndsl':>13s} {twin:>12s} {'ratio':>7s} {'cnndsl':>10s} {twin:>12s} {'ratio':>7s}")
    for name in args.nets:
        a, b, ca, cb = bench(name, args)
        print(f"{name:14s} {a:13.3f} {b:12.3f} {a / b:7.3f} {ca:10.3f} {cb:12.3f} {ca / cb:7.3f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
