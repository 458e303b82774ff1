"""Time of every `cnndsl inspect` command on LeNet-5 trained on digits (the goal: under 5 s each), and,
with --resnet18, on ResNet-18 at 224x224 (random weights; where a command takes over a second, the
command line shows a progress bar).

    python tools/bench_inspect.py                      # trains LeNet-5 for 8 epochs first (a few seconds)
    python tools/bench_inspect.py --weights runs/lenet5/weights.safetensors --resnet18 --cold

Each command runs in one process after the imports (`inspect(...)` computing its arrays, then the PNG
drawn and written), with one torch thread, as the command line runs it; wall time and CPU time
(time.process_time, which a busy shared machine disturbs less). --cold adds the whole command line of
one command in a fresh process (Python, torch, captum and matplotlib imports included).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import numpy as np  # noqa: E402
import torch  # noqa: E402

import cnndsl  # noqa: E402
from cnndsl.inspection import inspect  # noqa: E402

ROOT = os.path.join(os.path.dirname(__file__), "..")


def lenet_cases(image):
    return [("filters", dict(layer="c1")), ("activations", dict(layer="c1", image=image)),
            ("stats", dict(data="digits")), ("patches", dict(layer="c3", data="digits")),
            ("neighbours", dict(data="digits")), ("embed", dict(data="digits")),
            ("saliency", dict(image=image)), ("saliency", dict(image=image, method="guided")),
            ("saliency", dict(image=image, method="gradcam")), ("saliency", dict(image=image, method="integrated")),
            ("occlusion", dict(image=image)), ("maximize", dict(cls=8)), ("invert", dict(layer="c5", image=image)),
            ("fool", dict(image=image, target=8))]


def resnet_cases(image):
    return [("filters", {}), ("activations", dict(layer="layer1", image=image)),
            ("saliency", dict(image=image)), ("saliency", dict(image=image, method="guided")),
            ("saliency", dict(image=image, method="gradcam")), ("saliency", dict(image=image, method="integrated")),
            ("occlusion", dict(image=image)), ("maximize", dict(cls=1, steps=200)),
            ("invert", dict(layer="layer2", image=image, steps=200)), ("fool", dict(image=image, target=3, steps=100)),
            ("stats", dict(init="he", samples=32))]


def bench(net, weights, cases, folder):
    rows = []
    for what, o in cases:
        name = what + (f" --method {o['method']}" if "method" in o else "")
        w = None if "init" in o else weights
        t, c = time.perf_counter(), time.process_time()
        r = inspect(net, what, weights=w, **o)
        t1, c1 = time.perf_counter() - t, time.process_time() - c
        r.save(os.path.join(folder, f"{what}-{o.get('method', '')}.png"))
        rows.append((name, t1, c1, time.perf_counter() - t, time.process_time() - c))
        print(f"  {name:<28} compute {t1:6.2f} s (cpu {c1:6.2f})   with the picture {rows[-1][3]:6.2f} s "
              f"(cpu {rows[-1][4]:6.2f})", flush=True)
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--weights", help="a LeNet-5 checkpoint (default: train one for 8 epochs on digits)")
    ap.add_argument("--resnet18", action="store_true", help="also ResNet-18 at 224x224, random weights")
    ap.add_argument("--cold", action="store_true", help="also one whole command line in a fresh process")
    args = ap.parse_args()
    torch.set_num_threads(1)
    folder = tempfile.mkdtemp(prefix="bench_inspect_")
    from PIL import Image
    from sklearn.datasets import load_digits
    digit = os.path.join(folder, "three.png")
    Image.fromarray((load_digits().images[3] * 255 / 16).astype(np.uint8)).save(digit)
    net = cnndsl.load(os.path.join(ROOT, "nets", "lenet5.net"))
    weights = args.weights
    if weights is None:
        from cnndsl.train import train
        t = time.perf_counter()
        train(net, "digits", epochs=8, seed=0, out=os.path.join(folder, "run"), threads=1)
        weights = os.path.join(folder, "run", "weights.safetensors")
        print(f"trained LeNet-5 on digits, 8 epochs: {time.perf_counter() - t:.1f} s")
    inspect(net, "saliency", weights=weights, image=digit).save(os.path.join(folder, "warm.png"))  # lazy imports:
    import sklearn.manifold  # noqa: F401  captum, matplotlib, scikit-learn's t-SNE (--cold counts them)
    print("LeNet-5 (32x32x1), trained on digits:")
    rows = bench(net, weights, lenet_cases(digit), folder)
    worst = max(rows, key=lambda r: r[3])
    print(f"slowest: {worst[0]}, {worst[3]:.2f} s with its picture (goal: under 5 s)")
    if args.cold:
        cmd = [sys.executable, "-m", "cnndsl", "inspect", os.path.join(ROOT, "nets", "lenet5.net"), "--weights",
               weights, "saliency", "--image", digit, "-o", os.path.join(folder, "cold.png")]
        t = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True, env={**os.environ, "PYTHONPATH": ROOT})
        print(f"cold command line (saliency, imports included): {time.perf_counter() - t:.2f} s")
    if args.resnet18:
        import cnndsl.weights as W
        r18 = cnndsl.load(os.path.join(ROOT, "nets", "resnet18.net"))
        path = os.path.join(folder, "r18.safetensors")
        W.save(r18.to_torch(seed=0), path)
        photo = os.path.join(folder, "photo.png")
        Image.fromarray(np.random.default_rng(1).integers(0, 255, (180, 240, 3), dtype=np.uint8)).save(photo)
        print("ResNet-18 (224x224x3), random weights (a bar shows on the command line past 1 s):")
        bench(r18, path, resnet_cases(photo), folder)
    print(f"pictures in {folder}")


if __name__ == "__main__":
    main()
