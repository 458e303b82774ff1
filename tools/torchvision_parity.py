"""Zoo nets against their torchvision twins: equal parameter counts, and equal outputs with the
twin's weights loaded through cnndsl's key mapping (cnndsl.weights.map_state_dict).

For each nets/NAME.net with a twin (the nets of tools/make_reference.py): build the twin
(weights=None, seeded), build `to_torch()`, load the twin's state_dict into ours through the
mapping, and compare outputs in fp32, eval mode, on one random batch (max abs diff <= 1e-5).
Writes what it verified to tests/reference/torch_parity.json (tests/test_weights.py reads it
and re-checks the mapping offline against tests/reference/torchvision.json).

Runs in the reference venv (torchvision is never a dependency of cnndsl):

    /work/refenv/bin/pip install --no-deps -e . && /work/refenv/bin/pip install lark safetensors
    /work/refenv/bin/python tools/torchvision_parity.py [NAME ...]
"""
import importlib.util
import json
import os
import sys
import time
from importlib.metadata import version

import torch

import cnndsl
from cnndsl import weights as W

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..")
OUT = os.path.join(ROOT, "tests", "reference", "torch_parity.json")
TOLERANCE = 1e-5


def reference_module():
    spec = importlib.util.spec_from_file_location("make_reference", os.path.join(HERE, "make_reference.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def twin(ref, name):
    if name == "lenet5":
        return ref.lenet5()
    import torchvision
    return getattr(torchvision.models, name)(weights=None, **ref.TORCHVISION_NETS[name])


def convnext_layout(model, sd, hwc=None):
    """ConvNeXt's state_dict as cnndsl's mapping can place it (it cannot yet by itself): each
    pointwise nn.Linear weight [out, in] as the 1x1 conv weight [out, in, 1, 1] it equals, and each
    CNBlock's own `layer_scale` parameter as the weight of a module `layer_scale`. Exact: the same
    numbers, reshaped; the eval outputs then show that the math is the same. The layer scales
    are first drawn from U(0.5, 1.5) in the twin itself (torchvision starts them at 1e-6, which
    would hide the blocks' arithmetic from the comparison)."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(".layer_scale"):
                p.uniform_(0.5, 1.5)
    sd = model.state_dict()
    pointwise = {f"{name}.weight" for name, m in model.named_modules()
                 if isinstance(m, torch.nn.Linear) and ".block." in f"{name}."}
    out = {}
    for k, v in sd.items():
        if k in pointwise:
            v = v[:, :, None, None]
        out[f"{k}.weight" if k.endswith(".layer_scale") else k] = v
    return out


def calibrated_bn(model, sd, hwc):
    """BatchNorm statistics measured on data, affine parameters drawn at random: torchvision's
    initialisation (BN the identity, running statistics 0 and 1) leaves EfficientNet's output near
    1e-14, where any difference hides under the tolerance. Each BN's weight and bias are drawn from
    U(0.5, 1.5) and U(-0.5, 0.5), and its running statistics are those of one random batch through
    the twin in training mode (momentum None: the batch's own mean and variance). The twin's
    eval output is then of order 1, and the same numbers load into ours."""
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    with torch.no_grad():
        for m in bns:
            m.weight.uniform_(0.5, 1.5)
            m.bias.uniform_(-0.5, 0.5)
            m.reset_running_stats()
            m.momentum, m.saved_momentum = None, m.momentum
        H, W_, C = hwc
        model.train()
        model(torch.randn(2, C, H, W_))
        model.eval()
        for m in bns:
            m.momentum = m.saved_momentum
            del m.saved_momentum
    return model.state_dict()


# Twins whose state_dict needs a stated re-layout or re-draw before cnndsl's mapping (recorded as "adapted").
ADAPT = {"convnext_tiny": convnext_layout, "convnext_small": convnext_layout,
         "convnext_base": convnext_layout, "convnext_large": convnext_layout,
         **{f"efficientnet_{v}": calibrated_bn for v in ("b0", "b1", "b2", "b3", "b4", "b5", "b6", "b7",
                                                          "v2_s", "v2_m", "v2_l")}}


def check(ref, name):
    torch.manual_seed(0)
    theirs = twin(ref, name).eval()
    net = cnndsl.load(os.path.join(ROOT, "nets", f"{name}.net"))
    ours = net.to_torch(seed=1).eval()
    sd = theirs.state_dict()
    if name in ADAPT:
        sd = ADAPT[name](theirs, sd, net.graph.input_shape)
    loaded = W.load_into(ours, sd)
    H, W_, C = net.graph.input_shape
    x = torch.randn(2, C, H, W_)
    with torch.no_grad():
        a, b = theirs(x), ours(x)
    diff = (a - b).abs().max().item() if a.shape == b.shape else float("inf")
    mapping = loaded["mapping"]
    renamed = [(k, v) for k, v in mapping.items() if k != v]
    return {
        "params": sum(p.numel() for p in ours.parameters()),
        "twin_params": sum(p.numel() for p in theirs.parameters()),
        "analyzer_params": net.report()["totals"]["params"],
        "input_nchw": [2, C, H, W_],
        "output_shape": list(b.shape),
        "max_abs_diff": diff,
        "output_scale": a.abs().max().item(),
        "ok": diff <= TOLERANCE,
        "mapped_tensors": len(mapping),
        "renamed_tensors": len(renamed),
        "mapping_digest": W.mapping_digest(mapping),
        "mapping_examples": dict(renamed[:2] + [kv for kv in renamed if "downsample" in kv[0]][:1]),
        **({"adapted": ADAPT[name].__doc__.split(":")[0].strip()} if name in ADAPT else {}),
    }


def main(argv):
    ref = reference_module()
    names = argv or [n for n in [*ref.TORCHVISION_NETS, "lenet5"] if os.path.exists(os.path.join(ROOT, "nets", f"{n}.net"))]
    old = json.load(open(OUT)) if os.path.exists(OUT) else {}
    results = dict(old.get("nets", {}))
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    print(f"{'net':18s} {'params':>11s} {'twin':>11s} {'max |diff|':>11s} {'tensors':>8s} {'renamed':>8s}  ok   s")
    for name in names:
        t = time.time()
        r = check(ref, name)
        results[name] = r
        print(f"{name:18s} {r['params']:11d} {r['twin_params']:11d} {r['max_abs_diff']:11.2e} "
              f"{r['mapped_tensors']:8d} {r['renamed_tensors']:8d}  {'yes' if r['ok'] and r['params'] == r['twin_params'] else 'NO '}"
              f" {time.time() - t:4.1f}")
    data = {"generated_by": "tools/torchvision_parity.py", "torch": version("torch"),
            "torchvision": version("torchvision"), "tolerance": TOLERANCE,
            "nets": dict(sorted(results.items()))}
    from cnndsl.files import atomic_write
    atomic_write(OUT, (json.dumps(data, indent=1, sort_keys=False) + "\n").encode())
    print(f"wrote {os.path.relpath(OUT)}")
    return 0 if all(r["ok"] and r["params"] == r["twin_params"] for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
