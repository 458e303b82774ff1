"""Random valid specs for property tests: the analyzer against PyTorch and ONNX Runtime.

`random_specs(n, seed)` yields (text, net) pairs; candidates are drawn from a
small grammar of plausible layers and kept only when cnndsl accepts them
without warnings, so every kind, branch joins, blocks, repeats and labels occur.
"""
from __future__ import annotations

import glob
import os
import random

import cnndsl
from cnndsl.kinds import ALL

# every kind's own sample calls that keep a volume: a kind added to cnndsl/kinds/ is fuzzed at once
SAMPLES = [s for k in ALL if not k.flat_input and k.name != "FLATTEN" for s in k.samples]

NETS = sorted(glob.glob(os.path.join(os.path.dirname(__file__), "..", "nets", "*.net")))
# Variants of a family whose blocks a sibling runs by default (RegNetX-400MF, RegNetY-400MF): the
# per-net module and compiled-source checks take them under CNNDSL_FULL_ZOO=1 only, as
# tests/test_onnx.py does its onnxruntime comparison (tests/test_zoo.py checks each against
# torchvision by default). 14 RegNets of up to 27 blocks would add half a minute to the default run.
FULL_ZOO_ONLY = {f"regnet_{family}_{size}" for family in "xy"
                 for size in ("800mf", "1_6gf", "3_2gf", "8gf", "16gf", "32gf")} | {"regnet_y_128gf"}


def zoo_params():
    """NETS as pytest parameters (ids: file names), the FULL_ZOO_ONLY ones skipped by default."""
    import pytest
    skip = pytest.mark.skipif(not os.environ.get("CNNDSL_FULL_ZOO"),
                              reason="a variant of a family checked by default; CNNDSL_FULL_ZOO=1 runs it")
    return [pytest.param(p, id=os.path.basename(p), marks=[skip] if os.path.basename(p)[:-4] in FULL_ZOO_ONLY else [])
            for p in NETS]
# a small net with every structure the backends treat specially: a residual block with in-place
# sums, labelled scopes, an Inception-like concat, LRN, global pooling and a final softmax
RESNETISH = """input 16x16x3
def basic(c) = { ID + CONV(c, 3, p=1, bias=false) - BN - RELU - CONV(c, 3, p=1, bias=false) - BN } - RELU
stem: [CONV(8, 3, p=1, bias=false) - BN - RELU] - layer1: [basic(8)*2]
- { CONV(8, 1) | CONV(4, 1) - CONV(8, 3, p=1) | MAXPOOL(3, s=1, p=1) - CONV(4, 1) } - LRN(size=3)
- GAP - FC(10) - SOFTMAX
"""


def _conv(r: random.Random, depthwise_ok: bool) -> str:
    k = r.choice([1, 3, 3, 5, "3x1", "(1,3)"])
    args = [str(r.choice([4, 8, 12, 16])), str(k)]
    if r.random() < 0.3:
        args.append(f"s={r.choice([1, 2])}")
    args.append(r.choice(["p=same", "p=0", "p=1", "p=same"]) if k not in ("3x1", "(1,3)") else r.choice(["p=0", "p=(1,0)" if k == "3x1" else "p=(0,1)"]))
    if r.random() < 0.15:
        args.append("d=2")
    if r.random() < 0.15:
        args.append("groups=4")
    if r.random() < 0.3:
        args.append("bias=false")
    return f"CONV({', '.join(args)})"


def _spatial(r: random.Random) -> str:
    roll = r.random()
    if roll < 0.45:
        return _conv(r, True)
    if roll < 0.55:
        return r.choice(["MAXPOOL(2)", "MAXPOOL(3, s=2, p=1)", "AVGPOOL(2)", "AVGPOOL(3, s=1, p=1)",
                         "MAXPOOL(3, s=2, ceil=true)", "POOL", "AVGPOOL(3, s=2, p=1, count_pad=false)"])
    if roll < 0.62:
        return r.choice(SAMPLES)
    if roll < 0.65:
        return "BN"
    if roll < 0.70:
        return "LRN(size=3)"
    return r.choice(["RELU", "RELU6", "LEAKYRELU(0.1)", "SIGMOID", "TANH", "SOFTPLUS", "DROPOUT(0.2)", "ID"])


def _branchy(r: random.Random) -> str:
    c = r.choice([8, 16])
    if r.random() < 0.5:
        return f"{{ ID + CONV({c}, 3, p=1) - BN - RELU - CONV({c}, 3, p=1) - BN }} - RELU"
    return (f"{{ CONV({c}, 1) | CONV(4, 1) - CONV({c}, 3, p=1) | "
            f"MAXPOOL(3, s=1, p=1) - CONV(4, 1) }}")


def _candidate(r: random.Random) -> str:
    h = r.choice([8, 12, 16, 17, 24, 32])
    c = r.choice([1, 3, 4, 8, 16])
    lines = [f"input {h}x{h}x{c}"]
    body = []
    if r.random() < 0.4:
        lines.append("def unit(c, n=1) = (CONV(c, 3, p=1) - BN - RELU)*n")
        body.append(f"unit({r.choice([8, 16])}, {r.choice([1, 2])})")
    for _ in range(r.randint(1, 6)):
        body.append(_spatial(r))
    if r.random() < 0.4:
        body.insert(r.randint(0, len(body)), f"CONV(8, 1) - {_branchy(r)}")
    if r.random() < 0.3:
        body.append(f"blk: ({_conv(r, False)} - RELU)*{r.randint(1, 3)}")
    tail = r.random()
    if tail < 0.4:
        body += [f"FC({r.choice([10, 32])})", r.choice(["RELU", "SOFTMAX", "DROPOUT(0.3)", "BN", "TANH"])]
    elif tail < 0.6:
        body += ["GAP", "FC(10)"]
    elif tail < 0.7:
        body += ["ADAPTIVEAVGPOOL(2)"]
    lines.append(" - ".join(body))
    return "\n".join(lines) + "\n"


def random_specs(n: int, seed: int = 0):
    """Yield n (text, net) pairs of specs cnndsl accepts without warnings."""
    r = random.Random(seed)
    made = 0
    while made < n:
        text = _candidate(r)
        try:
            net = cnndsl.loads(text, path=f"random{made}.net")
        except cnndsl.CnnError:
            continue
        if net.warnings:
            continue
        made += 1
        yield text, net
