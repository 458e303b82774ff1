"""Benchmark the ONNX backend: export time, and onnxruntime against PyTorch eager on the same weights.

    python tools/bench_onnx.py                       # resnet152 export; resnet18/50 at batch 1 and 32
    python tools/bench_onnx.py --nets resnet18 --batches 1 --repeat 5 --size 112

Prints what it ran (repeats, threads, input size) next to every figure; medians over the timed
runs after warm-up. Inference compares onnxruntime's CPU provider with torch eager on CPU, and,
where a GPU is usable, the CUDA provider with torch on CUDA. No figure here is asserted anywhere.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import cnndsl  # noqa: E402
from cnndsl.backends import onnx_graph
from cnndsl.runtime import onnx_run  # noqa: E402


def timed(fn, warmup, repeat):
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def bench_export(name, repeat):
    path = os.path.join(ROOT, "nets", f"{name}.net")
    net = cnndsl.load(path)
    params = net.report()["totals"]["params"]
    builds, writes, totals = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, f"{name}.onnx")
        for i in range(repeat):
            t0 = time.perf_counter()
            model = onnx_graph.build(cnndsl.load(path), seed=i)  # parse + analyze + random weights + graph
            t1 = time.perf_counter()
            onnx_graph.write(model, out)
            t2 = time.perf_counter()
            builds.append(t1 - t0)
            writes.append(t2 - t1)
            totals.append(t2 - t0)
            del model
        size = os.path.getsize(out)
    print(f"export {name} ({params / 1e6:.1f}M params, random weights, {size / 2**20:.0f} MiB): "
          f"median {statistics.median(totals):.2f} s over {repeat} runs "
          f"(load + build {statistics.median(builds):.2f} s, serialize + atomic write {statistics.median(writes):.2f} s; "
          f"target < 2 s)")


def bench_inference(name, batches, size, repeat_small, repeat_big, gpu):
    import onnxruntime as ort
    import torch
    path = os.path.join(ROOT, "nets", f"{name}.net")
    net = cnndsl.load(path, input=f"{size}x{size}x3") if size else cnndsl.load(path)
    module = net.to_torch(seed=0).eval()
    data = net.to_onnx(weights=module).SerializeToString()
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    sessions = {"cpu": ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])}
    if gpu:
        sessions["cuda"] = ort.InferenceSession(data, opts, providers=["CUDAExecutionProvider", "CPUExecutionProvider"])
    H, W, C = net.graph.input_shape
    rows = []
    for batch in batches:
        warmup, repeat = (3, repeat_small) if batch == 1 else (1, repeat_big)
        x = np.random.default_rng(0).standard_normal((batch, C, H, W), dtype=np.float32)
        for device, sess in sessions.items():
            xt = torch.from_numpy(x).to(device)
            m = module.to(device)

            def run_torch():
                with torch.inference_mode():
                    m(xt)
                if device == "cuda":
                    torch.cuda.synchronize()

            t_torch = statistics.median(timed(run_torch, warmup, repeat)) * 1e3
            t_ort = statistics.median(timed(lambda: sess.run(None, {"input": x}), warmup, repeat)) * 1e3
            with torch.inference_mode():
                ref = m(xt).cpu().numpy()
            diff = float(np.abs(ref - sess.run(None, {"input": x})[0]).max() / np.abs(ref).max())
            rows.append((name, f"{H}x{W}", batch, device, sess.get_providers()[0], warmup, repeat, t_torch, t_ort, diff))
        module.to("cpu")
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--export", default="resnet152", help="net whose export is timed ('' to skip)")
    p.add_argument("--export-repeat", type=int, default=3)
    p.add_argument("--nets", default="resnet18,resnet50")
    p.add_argument("--batches", default="1,32")
    p.add_argument("--size", type=int, default=0, help="input height = width (default: the spec's, 224)")
    p.add_argument("--repeat", type=int, default=10, help="timed runs at batch 1")
    p.add_argument("--repeat-big", type=int, default=3, help="timed runs at larger batches (heavy on 2 cores)")
    args = p.parse_args(argv)

    import onnxruntime as ort
    import torch
    gpu = onnx_run.gpu_usable() and "CUDAExecutionProvider" in ort.get_available_providers() and torch.cuda.is_available()
    print(f"torch {torch.__version__} ({torch.get_num_threads()} threads), onnxruntime {ort.__version__}, "
          f"{os.cpu_count()} CPUs, GPU: {torch.cuda.get_device_name() if gpu else 'none usable'}")
    if args.export:
        bench_export(args.export, args.export_repeat)
    rows = []
    for name in filter(None, args.nets.split(",")):
        rows += bench_inference(name, [int(b) for b in args.batches.split(",")], args.size, args.repeat,
                                args.repeat_big, gpu)
    if rows:
        print(f"{'net':<10} {'input':>7} {'batch':>5} {'device':>6} {'provider':<26} {'runs':>9} "
              f"{'torch ms':>10} {'ort ms':>10} {'torch/ort':>9} {'rel diff':>9}")
        for name, inp, batch, device, prov, warmup, repeat, tt, to, diff in rows:
            print(f"{name:<10} {inp:>7} {batch:>5} {device:>6} {prov:<26} {f'{warmup}+{repeat}':>9} "
                  f"{tt:>10.1f} {to:>10.1f} {tt / to:>9.2f} {diff:>9.1e}")
        print("runs = warm-up + timed; times are medians of the timed runs; torch/ort > 1: onnxruntime is faster")


if __name__ == "__main__":
    main()
