"""Images/s of `cnndsl train` against a training loop written by hand in plain PyTorch: the same model,
data, batch and optimizer, in one process, alternating runs.

    python tools/bench_train.py                                    # LeNet-5 on synthetic data, CPU
    python tools/bench_train.py --net nets/resnet18.net --device cuda --amp --channels-last --compile \\
        --batch 256 --data synthetic:4096 --peak-tflops 989

Both sides train the training split of the same arrays (cnndsl.train.data) for --epochs epochs; the
first epoch of each run is warm-up and is left out. A figure is the median over the measured epochs
and runs; cnndsl's comes from its history (`train_seconds`: the training steps, without validation;
nothing is written, no --out), and per CPU second (time.process_time, from its events), which a
busy shared machine disturbs less than wall time. The hand-written loop is what a student would write: a seeded randperm
per epoch, index, forward, cross-entropy, zero_grad, backward, step. On CUDA it also prints MFU
(the report's train_flops per image x images/s over --peak-tflops) and torch.cuda.max_memory_allocated
beside the report's training-memory estimate for the batch.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import torch  # noqa: E402
from torch import nn  # noqa: E402

import cnndsl  # noqa: E402
from cnndsl.train import data as D, optim, options as O, train  # noqa: E402


def hand_loop(net, d, o, dev, epochs):
    """The plain PyTorch loop; returns the images/s of each epoch after the first."""
    torch.manual_seed(o["seed"])
    model = net.to_torch(seed=o["seed"], logits=True).to(dev)
    if o["channels_last"]:
        model = model.to(memory_format=torch.channels_last)
    opt = optim.optimizer(model.parameters(), o)
    step_model = torch.compile(model) if o["compile"] else model
    crit = nn.CrossEntropyLoss()
    x, y = torch.as_tensor(d.x_train), torch.as_tensor(d.y_train)
    amp = torch.bfloat16 if o["amp"] else None
    rates, cpu = [], []
    for epoch in range(epochs):
        g = torch.Generator().manual_seed(epoch)
        perm = torch.randperm(len(y), generator=g)
        model.train()
        _sync(dev)
        t, c = time.perf_counter(), time.process_time()
        for i in range(0, len(y), o["batch"]):
            idx = perm[i:i + o["batch"]]
            xb, yb = x[idx].to(dev, non_blocking=True), y[idx].to(dev, non_blocking=True)
            if o["channels_last"]:
                xb = xb.contiguous(memory_format=torch.channels_last)
            with torch.autocast(dev.type, dtype=amp, enabled=amp is not None):
                loss = crit(step_model(xb).flatten(1), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        _sync(dev)
        if epoch:
            rates.append(len(y) / (time.perf_counter() - t))
            cpu.append(len(y) / (time.process_time() - c))
    return rates, cpu


def cnndsl_loop(net, o, epochs):
    """images/s from cnndsl's history, and per CPU second from its events (first batch to last step)."""
    marks = []

    def clock(e):
        if e["event"] == "epoch":
            marks.append([time.process_time()])
        elif e["event"] == "progress" and e["step"] == e["steps"]:
            marks[-1].append(time.process_time())
    r = train(net, o["data"], epochs=epochs, batch=o["batch"], opt=o["opt"], lr=o["lr"], seed=o["seed"],
              device=o["device"], amp=o["amp"], channels_last=o["channels_last"], compile=o["compile"],
              threads=o["threads"], callback=clock)
    n = len(r["history"]) and r["history"][0]["images_per_s"] * r["history"][0]["train_seconds"]
    return [row["images_per_s"] for row in r["history"][1:]], [n / (b - a) for a, b in marks[1:]]


def _sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--net", default="nets/lenet5.net")
    p.add_argument("--data", default="synthetic:4096")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--opt", default="momentum")
    p.add_argument("--device", default="cpu")
    p.add_argument("--amp", action="store_true")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--compile", action="store_true")
    p.add_argument("--threads", type=int, default=1, help="torch threads of both loops (cnndsl's default: 1)")
    p.add_argument("--peak-tflops", type=float, help="the device's peak (dense) TFLOP/s, for MFU")
    a = p.parse_args(argv)
    net = cnndsl.load(a.net)
    o = O.resolve({"opt": a.opt, "batch": a.batch, "device": a.device, "amp": a.amp or None, "threads": a.threads,
                   "channels_last": a.channels_last or None, "compile": a.compile or None, "data": a.data})
    torch.set_num_threads(a.threads)  # the hand-written loop's; train() sets (and restores) its own
    dev = torch.device("cuda" if a.device == "cuda" else "cpu")
    d = D.load(a.data, net.graph, seed=o["seed"], val_fraction=o["val_fraction"])
    hand, ours, hand_cpu, ours_cpu = [], [], [], []
    for _ in range(a.runs):
        if dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        wall, cpu = hand_loop(net, d, o, dev, a.epochs)
        hand, hand_cpu = hand + wall, hand_cpu + cpu
        if dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        wall, cpu = cnndsl_loop(net, o, a.epochs)
        ours, ours_cpu = ours + wall, ours_cpu + cpu
    h, c = statistics.median(hand), statistics.median(ours)
    hc, cc = statistics.median(hand_cpu), statistics.median(ours_cpu)
    print(f"{a.net} on {a.data}, batch {a.batch}, {a.opt}, {dev}"
          f"{' amp' if a.amp else ''}{' channels-last' if a.channels_last else ''}{' compile' if a.compile else ''}, "
          f"{a.threads} thread{'s' * (a.threads != 1)}")
    print(f"hand-written loop: {h:,.0f} images/s   cnndsl train: {c:,.0f} images/s   ratio {c / h:.3f} (wall)")
    print(f"per CPU second: {hc:,.0f} vs {cc:,.0f} images   ratio {cc / hc:.3f} (CPU time: steadier on a shared machine)")
    if dev.type == "cuda":
        rep = net.report(batch=a.batch, dtype="bf16" if a.amp else "fp32", optimizer="momentum")
        flops = rep["totals"]["train_flops"]
        if a.peak_tflops:
            print(f"MFU: {flops * c / (a.peak_tflops * 1e12):.1%} (train_flops {flops / 1e9:.2f} G/image)")
        print(f"max_memory_allocated {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB; report's training "
              f"estimate {rep['totals']['train_bytes'] / 2**30:.2f} GiB")


if __name__ == "__main__":
    main()
