"""Build tests/reference/torchvision.json: ground truth for the cnndsl analyzer.

For each torchvision model (weights=None) plus a classic LeNet-5, record, at
batch 1 with input 224x224x3 (the eval crop of the DEFAULT weights where that differs:
299x299x3 for inception_v3; 32x32x1 for LeNet-5):

  params        exact total parameter count (sum of p.numel()).
  conv_fc_macs  fvcore FlopCountAnalysis total restricted to conv and linear
                ops. fvcore counts one multiply-add as one "flop"; we sum the
                by_operator() keys in FVCORE_KEYS ("conv", "linear", "addmm",
                "matmul"; with torch 2.x every nn.Linear traces as aten::linear,
                so "linear" is the only FC key that actually appears). This is
                asserted equal to our own hand sum over every Conv2d/Linear.
  layers        every Conv2d/MaxPool2d/AvgPool2d/AdaptiveAvgPool2d/Linear call
                in forward order (via forward hooks, so a module called twice
                appears twice): module name, type, output shape ([H, W, C] for
                NCHW outputs, [features] for [N, features] outputs), the
                module's own params, and its MACs (0 for pools). Functional
                ops are not modules and so are absent: densenet121 and
                mobilenet_v2 do their final global pool with
                F.adaptive_avg_pool2d (mnasnet with x.mean, inception_v3 its
                in-module pools with F.avg_pool2d/F.max_pool2d), so those are
                not in their layer lists. ConvNeXt's pointwise layers are
                nn.Linear over an (N, H, W, C) view: recorded with
                "pointwise": true and out [H, W, C].
  state_dict    [key, shape] pairs of model.state_dict(), in order.
  stochastic_depth  [module name, p] of every torchvision StochasticDepth call in forward
                order (EfficientNet's MBConv calls its own only where it adds the input back;
                ConvNeXt's every CNBlock); absent for nets without one.

It needs a separate venv (torchvision does not import in the project's one):

    python3 -m venv /work/refenv
    /work/refenv/bin/pip install torch==2.14.1 torchvision==0.29.1 fvcore torchinfo

Regenerate (from the repo root; the output is deterministic):

    /work/refenv/bin/python tools/make_reference.py            # every net
    /work/refenv/bin/python tools/make_reference.py NAME ...   # these nets; the rest kept as they are
"""

import json
import math
import os
import sys
import tempfile
from importlib.metadata import version

import torch
import torchvision
from fvcore.nn import FlopCountAnalysis
from torch import nn

OUT_PATH = os.path.join(os.path.dirname(__file__), "..", "tests", "reference", "torchvision.json")
DEFAULT_HWC = [224, 224, 3]
FVCORE_KEYS = ("conv", "linear", "addmm", "matmul")
RECORDED_TYPES = (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.Linear)

TORCHVISION_NETS = {
    "alexnet": {}, "vgg11": {}, "vgg16": {}, "vgg19": {},
    "resnet18": {}, "resnet34": {}, "resnet50": {}, "resnet101": {}, "resnet152": {},
    "googlenet": {"aux_logits": False, "init_weights": False},
    "squeezenet1_0": {}, "squeezenet1_1": {}, "densenet121": {}, "mobilenet_v2": {},
    "resnext50_32x4d": {}, "wide_resnet50_2": {},
    # the breadth issue's nets (issue 13): every torchvision CNN today's language writes exactly
    "vgg11_bn": {}, "vgg13": {}, "vgg13_bn": {}, "vgg16_bn": {}, "vgg19_bn": {},
    "densenet161": {}, "densenet169": {}, "densenet201": {},
    "resnext101_32x8d": {}, "resnext101_64x4d": {}, "wide_resnet101_2": {},
    "inception_v3": {"aux_logits": False, "init_weights": False},
    "mnasnet0_5": {}, "mnasnet0_75": {}, "mnasnet1_0": {}, "mnasnet1_3": {},
    "regnet_x_400mf": {}, "regnet_x_800mf": {}, "regnet_x_1_6gf": {}, "regnet_x_3_2gf": {},
    "regnet_x_8gf": {}, "regnet_x_16gf": {}, "regnet_x_32gf": {},
    "convnext_tiny": {}, "convnext_small": {}, "convnext_base": {}, "convnext_large": {},
    "mobilenet_v3_large": {}, "mobilenet_v3_small": {},
    "shufflenet_v2_x0_5": {}, "shufflenet_v2_x1_0": {}, "shufflenet_v2_x1_5": {}, "shufflenet_v2_x2_0": {},
    "regnet_y_400mf": {}, "regnet_y_800mf": {}, "regnet_y_1_6gf": {}, "regnet_y_3_2gf": {},
    "regnet_y_8gf": {}, "regnet_y_16gf": {}, "regnet_y_32gf": {}, "regnet_y_128gf": {},
    "efficientnet_b0": {}, "efficientnet_b1": {}, "efficientnet_b2": {}, "efficientnet_b3": {},
    "efficientnet_b4": {}, "efficientnet_b5": {}, "efficientnet_b6": {}, "efficientnet_b7": {},
    "efficientnet_v2_s": {}, "efficientnet_v2_m": {}, "efficientnet_v2_l": {},
}
# Nets whose eval crop (that of their DEFAULT weights) is not 224x224.
INPUT_HWC = {"inception_v3": [299, 299, 3],
             "regnet_y_128gf": [384, 384, 3],  # IMAGENET1K_SWAG_E2E_V1
             "efficientnet_b1": [240, 240, 3], "efficientnet_b2": [288, 288, 3], "efficientnet_b3": [300, 300, 3],
             "efficientnet_b4": [380, 380, 3], "efficientnet_b5": [456, 456, 3], "efficientnet_b6": [528, 528, 3],
             "efficientnet_b7": [600, 600, 3], "efficientnet_v2_s": [384, 384, 3], "efficientnet_v2_m": [480, 480, 3],
             "efficientnet_v2_l": [480, 480, 3]}

# Published totals; a mismatch means the data (or this script) is wrong.
EXPECTED_PARAMS = {
    "alexnet": 61100840, "vgg11": 132863336, "vgg16": 138357544, "vgg19": 143667240,
    "resnet18": 11689512, "resnet34": 21797672, "resnet50": 25557032,
    "resnet101": 44549160, "resnet152": 60192808, "googlenet": 6624904,
    "squeezenet1_0": 1248424, "squeezenet1_1": 1235496, "densenet121": 7978856,
    "mobilenet_v2": 3504872, "resnext50_32x4d": 25028904, "wide_resnet50_2": 68883240,
    "lenet5": 61706,
    "vgg11_bn": 132868840, "vgg13": 133047848, "vgg13_bn": 133053736, "vgg16_bn": 138365992,
    "vgg19_bn": 143678248, "densenet161": 28681000, "densenet169": 14149480, "densenet201": 20013928,
    "resnext101_32x8d": 88791336, "resnext101_64x4d": 83455272, "wide_resnet101_2": 126886696,
    "inception_v3": 23834568,  # 27161264 with the auxiliary head (the weights' num_params)
    "mnasnet0_5": 2218512, "mnasnet0_75": 3170208, "mnasnet1_0": 4383312, "mnasnet1_3": 6282256,
    "regnet_x_400mf": 5495976, "regnet_x_800mf": 7259656, "regnet_x_1_6gf": 9190136,
    "regnet_x_3_2gf": 15296552, "regnet_x_8gf": 39572648, "regnet_x_16gf": 54278536,
    "regnet_x_32gf": 107811560, "convnext_tiny": 28589128, "convnext_small": 50223688,
    "convnext_base": 88591464, "convnext_large": 197767336,
    "mobilenet_v3_large": 5483032, "mobilenet_v3_small": 2542856,
    "shufflenet_v2_x0_5": 1366792, "shufflenet_v2_x1_0": 2278604, "shufflenet_v2_x1_5": 3503624,
    "shufflenet_v2_x2_0": 7393996,
    "regnet_y_400mf": 4344144, "regnet_y_800mf": 6432512, "regnet_y_1_6gf": 11202430,
    "regnet_y_3_2gf": 19436338, "regnet_y_8gf": 39381472, "regnet_y_16gf": 83590140,
    "regnet_y_32gf": 145046770, "regnet_y_128gf": 644812894,
    "efficientnet_b0": 5288548, "efficientnet_b1": 7794184, "efficientnet_b2": 9109994,
    "efficientnet_b3": 12233232, "efficientnet_b4": 19341616, "efficientnet_b5": 30389784,
    "efficientnet_b6": 43040704, "efficientnet_b7": 66347960, "efficientnet_v2_s": 21458488,
    "efficientnet_v2_m": 54139356, "efficientnet_v2_l": 118515272,
}
EXPECTED_MACS = {
    "alexnet": 714188480, "vgg16": 15470264320, "resnet50": 4089184256,
    "googlenet": 1498376192, "densenet121": 2834161664, "mobilenet_v2": 300774272,
}


def lenet5():
    """Classic LeNet-5 (LeCun 1998 layout, tanh, average pooling): 61706 params."""
    return nn.Sequential(
        nn.Conv2d(1, 6, 5), nn.Tanh(), nn.AvgPool2d(2, 2),
        nn.Conv2d(6, 16, 5), nn.Tanh(), nn.AvgPool2d(2, 2),
        nn.Conv2d(16, 120, 5), nn.Tanh(), nn.Flatten(),
        nn.Linear(120, 84), nn.Tanh(), nn.Linear(84, 10),
    )


def build_nets(names=()):
    """Yield (name, model, input_hwc) in a fixed order: every net, or those `names`."""
    for name, kwargs in TORCHVISION_NETS.items():
        if not names or name in names:
            yield name, getattr(torchvision.models, name)(weights=None, **kwargs), INPUT_HWC.get(name, DEFAULT_HWC)
    if not names or "lenet5" in names:
        yield "lenet5", lenet5(), [32, 32, 1]


def layer_macs(module, out):
    """MACs of one Conv2d/Linear call; bias adds are not counted (as in fvcore)."""
    if isinstance(module, nn.Conv2d):
        _, cout, h2, w2 = out.shape
        kh, kw = module.kernel_size
        return h2 * w2 * cout * kh * kw * module.in_channels // module.groups
    if isinstance(module, nn.Linear):
        rows = math.prod(out.shape[:-1])  # 1 at batch 1 with a 2-d input
        return rows * module.in_features * module.out_features
    return 0


def hwc(shape, channels_last=False):
    """NCHW -> [H, W, C]; [N, F] -> [F] (batch is always 1 here). A Linear over the channels of an
    (N, H, W, C) view (ConvNeXt's pointwise layers) gives NHWC: channels_last."""
    if len(shape) == 4 and channels_last:
        return [shape[1], shape[2], shape[3]]
    if len(shape) == 4:
        return [shape[2], shape[3], shape[1]]
    if len(shape) == 2:
        return [shape[1]]
    raise ValueError(f"unexpected output shape {shape}")


def trace_layers(model, x, drops=None):
    """Run one forward pass, recording each RECORDED_TYPES call in order (and into `drops`, each
    StochasticDepth call's [name, p])."""
    from torchvision.ops import StochasticDepth
    layers, handles = [], []
    for qname, module in model.named_modules():
        if isinstance(module, StochasticDepth) and drops is not None:
            handles.append(module.register_forward_hook(
                lambda mod, _inp, _out, qname=qname: drops.append([qname, mod.p])))
        if isinstance(module, RECORDED_TYPES):
            def hook(mod, _inp, out, qname=qname):
                pointwise = isinstance(mod, nn.Linear) and out.dim() == 4
                layers.append({
                    "module": qname,
                    "type": type(mod).__name__,
                    "out": hwc(list(out.shape), channels_last=pointwise),
                    "params": sum(p.numel() for p in mod.parameters()),
                    "macs": layer_macs(mod, out),
                    **({"pointwise": True} if pointwise else {}),
                })
            handles.append(module.register_forward_hook(hook))
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return layers


def fvcore_macs(model, x):
    """fvcore's conv+linear MAC total, plus the full by_operator() dict."""
    analysis = FlopCountAnalysis(model, x)
    analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    by_op = dict(analysis.by_operator())
    return sum(by_op.get(k, 0) for k in FVCORE_KEYS), by_op


def describe(name, model, input_hwc):
    model.eval()  # deterministic forward (no dropout); shapes are the same either way
    h, w, c = input_hwc
    x = torch.zeros(1, c, h, w)
    drops = []
    layers = trace_layers(model, x, drops)
    hand = sum(l["macs"] for l in layers)
    fv, by_op = fvcore_macs(model, x)
    if fv != hand:
        print(f"!!! {name}: fvcore conv+fc MACs {fv} != hand sum {hand} (by_operator: {by_op})",
              file=sys.stderr)
    params = sum(p.numel() for p in model.parameters())
    print(f"{name:16s} params={params:>11d} conv_fc_macs={fv:>12d}  fvcore keys: {sorted(by_op)}")
    return {
        "params": params,
        "conv_fc_macs": fv,
        "input_hwc": input_hwc,
        "layers": layers,
        "state_dict": [[k, list(v.shape)] for k, v in model.state_dict().items()],
        **({"stochastic_depth": drops} if drops else {}),
    }, hand == fv


def check_expected(nets):
    """Return a list of mismatches against the published totals."""
    bad = []
    for name, want in EXPECTED_PARAMS.items():
        if name in nets and nets[name]["params"] != want:
            bad.append(f"{name}: params {nets[name]['params']} != expected {want}")
    for name, want in EXPECTED_MACS.items():
        if name in nets and nets[name]["conv_fc_macs"] != want:
            bad.append(f"{name}: conv_fc_macs {nets[name]['conv_fc_macs']} != expected {want}")
    return bad


def write_atomic(path, data):
    """Write JSON to a temp file beside `path`, then os.replace, so readers never see half a file."""
    path = os.path.normpath(path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=1, sort_keys=True)
            f.write("\n")
        os.chmod(tmp, 0o644)  # mkstemp creates 0600
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def main(names=()):
    torch.manual_seed(0)  # weights do not matter, but keep runs reproducible
    known = [*TORCHVISION_NETS, "lenet5"]
    unknown = [n for n in names if n not in known]
    if unknown:
        print(f"not a reference net: {', '.join(unknown)} (add it to TORCHVISION_NETS)", file=sys.stderr)
        return 2
    kept = {}
    if names and os.path.exists(OUT_PATH):
        with open(OUT_PATH) as f:
            kept = json.load(f)["nets"]
    nets, ok = {}, True
    for name, model, input_hwc in build_nets(names):
        nets[name], agreed = describe(name, model, input_hwc)
        ok &= agreed
    bad = check_expected(nets)
    nets = {n: nets[n] if n in nets else kept[n] for n in known if n in nets or n in kept}
    for line in bad:
        print("!!! " + line, file=sys.stderr)
    write_atomic(OUT_PATH, {
        "generated_by": "tools/make_reference.py",
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "fvcore": version("fvcore"),
        "input_hwc": DEFAULT_HWC,
        "nets": nets,
    })
    print(f"wrote {os.path.normpath(OUT_PATH)}")
    return 0 if ok and not bad else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
