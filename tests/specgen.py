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
# Variants of a family whose blocks a sibling runs by default (the representatives: VGG-11 and -16,
# DenseNet-121, MNASNet 0.5, RegNetX-400MF, RegNetY-400MF, ConvNeXt-T, EfficientNet-B0 and V2-S,
# MobileNetV3-Large, ShuffleNetV2 1.0x, ResNet-50): the per-net module, compiled-source and
# onnxruntime checks take them under CNNDSL_FULL_ZOO=1 only, to keep the default run near two
# minutes; tests/test_zoo.py checks every one against torchvision by default.
VARIANTS = {"vgg11_bn", "vgg13", "vgg13_bn", "vgg16_bn", "vgg19_bn", "densenet161", "densenet169", "densenet201",
            "mnasnet0_75", "mnasnet1_0", "mnasnet1_3", "regnet_x_800mf", "regnet_x_1_6gf", "regnet_x_3_2gf",
            "regnet_x_8gf", "regnet_x_16gf", "regnet_x_32gf", "convnext_small", "convnext_base", "convnext_large",
            # SE-ResNet-50: ResNet-50's blocks run by default; its SE gate (MUL) in tests/test_joins.py
            "se_resnet50",
            # their siblings MobileNetV3-Large and ShuffleNetV2 1.0x run by default
            "mobilenet_v3_small", "shufflenet_v2_x0_5", "shufflenet_v2_x1_5", "shufflenet_v2_x2_0",
            # the deep CIFAR ResNets: tests/test_case_studies.py runs their blocks through onnxruntime at n = 2
            "preact_resnet164", "sd_resnet110",
            # RegNetY-400MF runs by default
            "regnet_y_800mf", "regnet_y_1_6gf", "regnet_y_3_2gf", "regnet_y_8gf", "regnet_y_16gf", "regnet_y_32gf",
            "regnet_y_128gf",
            "efficientnet_b1", "efficientnet_b2", "efficientnet_b3", "efficientnet_b4", "efficientnet_b5",
            "efficientnet_b6", "efficientnet_b7", "efficientnet_v2_m", "efficientnet_v2_l",
            # deeper or wider twins of ResNet-50 / ResNeXt-50, VGG-16, DPN-92
            "resnet101", "resnet152", "resnext101_32x8d", "resnext101_64x4d", "wide_resnet101_2", "vgg19", "dpn98"}
# timm's families (issue 24): tests/test_timm_families.py checks each against timm by default and
# tools/timm_parity.py ran each with timm's weights; their kinds run through the backends in the
# kinds' own tests, the nets themselves under CNNDSL_FULL_ZOO=1.
# (Every net whose header follows timm/models/ but DPN-92, whose blocks run by default.)
VARIANTS |= {os.path.basename(p)[:-4] for p in NETS if "timm/models/" in open(p).read()} - {"dpn92"}


def _timm_family(path):
    """A timm net's family: its timm model file and the nets/lib files it includes (None: not timm's)."""
    import re
    text = open(path).read()
    model = re.search(r"timm/models/(\w+)\.py", text)
    return model and (model.group(1), tuple(sorted(re.findall(r'^include "([^"]+)"', text, re.M))))


def _siblings():
    """Nets whose family's representative runs the per-net checks that go over the whole zoo
    (tests/test_zoo.py's, tests/test_timm_families.py's) by default: the torchvision VARIANTS, and
    each timm family but one (a net the backends run by default if there is one, else the smallest
    by timm's parameter count, so that the heavy nets' skip leaves every family a net)."""
    import json
    params = {n: r["params"] for n, r in json.load(open(os.path.join(os.path.dirname(__file__), "reference",
                                                                      "timm.json")))["nets"].items()}
    name = lambda p: os.path.basename(p)[:-4]  # noqa: E731
    first, out = {}, {n for n in VARIANTS if not _timm_family(os.path.join(os.path.dirname(NETS[0]), n + ".net"))}
    for p in sorted(NETS, key=lambda p: (name(p) in VARIANTS, params.get(name(p), float("inf")), name(p))):
        family = _timm_family(p)
        if family and first.setdefault(family, p) != p:
            out.add(os.path.basename(p)[:-4])
    return out


# a family's other nets: the per-net checks over every shipped net take them under CNNDSL_FULL_ZOO=1
SIBLINGS = _siblings()


def sibling_params(names):
    """names as pytest parameters, the SIBLINGS skipped unless CNNDSL_FULL_ZOO=1."""
    import pytest
    skip = pytest.mark.skipif(not os.environ.get("CNNDSL_FULL_ZOO"),
                              reason="a family's representative runs by default; CNNDSL_FULL_ZOO=1 runs it")
    return [pytest.param(n, id=n, marks=[skip] if n in SIBLINGS else []) for n in names]


def zoo_params():
    """NETS as pytest parameters (ids: file names), the VARIANTS skipped by default."""
    import pytest
    skip = pytest.mark.skipif(not os.environ.get("CNNDSL_FULL_ZOO"),
                              reason="a variant of a family checked by default; CNNDSL_FULL_ZOO=1 runs it")
    return [pytest.param(p, id=os.path.basename(p), marks=[skip] if os.path.basename(p)[:-4] in VARIANTS else [])
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
    args.append(r.choice(["p=same", "p=0", "p=1", "p=same", "p=tf_same"]) if k not in ("3x1", "(1,3)")
                else r.choice(["p=0", "p=(1,0)" if k == "3x1" else "p=(0,1)", "p=tf_same"]))
    if r.random() < 0.15:
        args.append("d=2")
    if r.random() < 0.15:
        args.append("groups=4")
    if r.random() < 0.3:
        args.append("bias=false")
    return f"CONV({', '.join(args)})"


def _spatial(r: random.Random, favour=()) -> str:
    if favour and r.random() < 0.4:
        return r.choice(favour)
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
    roll = r.random()
    if roll < 0.15:  # copies side by side (MobileOne's branches), one with its index
        return (f"{{ ID + CONV({c}, 1) - BN + (CONV({c}, 3, p=1) - BN)**{r.randint(0, 3)} }} - RELU"
                if roll < 0.08 else f"{{ SPLIT(0, parts=4) | SPLIT(i + 1, parts=4)**3 @i }}")
    if roll < 0.5:
        return f"{{ ID + CONV({c}, 3, p=1) - BN - RELU - CONV({c}, 3, p=1) - BN }} - RELU"
    return (f"{{ CONV({c}, 1) | CONV(4, 1) - CONV({c}, 3, p=1) | "
            f"MAXPOOL(3, s=1, p=1) - CONV(4, 1) }}")


def _candidate(r: random.Random, favour=()) -> str:
    h = r.choice([8, 12, 16, 17, 24, 32])
    c = r.choice([1, 3, 4, 8, 16])
    lines = [f"input {h}x{h}x{c}"]
    body = []
    if r.random() < 0.4:
        lines.append("def unit(c, n=1) = (CONV(c, 3, p=1) - BN - RELU)*n")
        body.append(f"unit({r.choice([8, 16])}, {r.choice([1, 2])})")
    for _ in range(r.randint(1, 6)):
        body.append(_spatial(r, favour))
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


def random_specs(n: int, seed: int = 0, favour=()):
    """Yield n (text, net) pairs of specs cnndsl accepts without warnings; `favour`: calls drawn for
    two layers in five (the samples of the kinds a test is about)."""
    r = random.Random(seed)
    made = 0
    while made < n:
        text = _candidate(r, tuple(favour))
        try:
            net = cnndsl.loads(text, path=f"random{made}.net")
        except cnndsl.CnnError:
            continue
        if net.warnings:
            continue
        made += 1
        yield text, net
