"""Zoo nets against their torchvision twins: equal parameter counts, and equal outputs with the
twin's weights loaded through cnndsl's key mapping (cnndsl.weights.map_state_dict).

For each nets/NAME.net with a twin (the nets of tools/make_reference.py): build the twin
(weights=None, seeded), build `to_torch()`, load the twin's state_dict into ours through the
mapping, and compare outputs in fp32, eval mode, on one random batch (max abs diff <= 1e-5).
The twin's BN layers are calibrated first (`calibrate`): random affine parameters and the running
statistics of a random batch, so that every BN is a map of its own and the output is not vanishing.
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
MIN_SCALE = 1e-3  # an output below this makes an absolute TOLERANCE compare nothing: not ok


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


def random_layer_scales(model):
    """layer scales drawn from U(0.5, 1.5) in the twin before its weights are copied: torchvision
    starts them at 1e-6, which would hide the blocks' arithmetic from the comparison."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(".layer_scale"):
                p.uniform_(0.5, 1.5)


def calibrate(model, input_nchw):
    """Give every BN layer of the twin random affine parameters (weight U(0.5, 1.5), bias
    U(-0.2, 0.2)) and the running statistics of one random batch (a train-mode forward with
    cumulative averaging), then eval mode. At torchvision's init every BN is the same map (weight
    1, bias 0, mean 0, var 1), so a mapping that swapped two BN layers of one width would go
    unseen; and MobileNet's fan-out init of depthwise convs shrinks the outputs of MobileNetV2/V3
    and MNASNet to ~1e-9, where an absolute 1e-5 compares nothing. Calibrated, the outputs are of
    order 1 (recorded as output_scale). Returns the number of BN layers calibrated."""
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in bns]
    with torch.no_grad():
        for m in bns:
            if m.affine:
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
            m.reset_running_stats()
            m.momentum = None  # cumulative: the running statistics are the batch's
        if bns:
            model.train()(torch.randn(*input_nchw))
    for m, momentum in zip(bns, momenta):
        m.momentum = momentum
    model.eval()
    return len(bns)


# Twins whose initial weights would make the comparison blind somewhere: perturbed first (recorded
# as "perturbed"). The weights then load through cnndsl's mapping as they are: ConvNeXt's Linear
# weights and bare layer_scale parameters by the kinds' foreign layouts (kinds.Foreign).
PERTURB = {"convnext_tiny": random_layer_scales, "convnext_small": random_layer_scales,
           "convnext_base": random_layer_scales, "convnext_large": random_layer_scales}


def compare(theirs, net, x_seed=None, perturb=None):
    """Calibrate the twin's BN (calibrate), apply `perturb` to it if given, load its state_dict into
    `net.to_torch()` through cnndsl's mapping and compare eval outputs on one random batch of 2 at the
    net's input size: the record the parity files hold (tools/timm_parity.py uses it too)."""
    ours = net.to_torch(seed=1).eval()
    H, W_, C = net.graph.input_shape
    calibrated = calibrate(theirs, (4, C, H, W_))
    if perturb:
        perturb(theirs)
    loaded = W.load_into(ours, theirs.state_dict())
    gen = torch.Generator().manual_seed(x_seed) if x_seed is not None else None
    x = torch.randn(2, C, H, W_, generator=gen)
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
        "ok": diff <= TOLERANCE and a.abs().max().item() >= MIN_SCALE,
        "calibrated_bn": calibrated,
        "source": loaded["source"],
        "mapped_tensors": len(mapping),
        "renamed_tensors": len(renamed),
        "mapping_digest": W.mapping_digest(mapping),
        "mapping_examples": dict(renamed[:2] + [kv for kv in renamed if "downsample" in kv[0]][:1]),
        **({"perturbed": perturb.__doc__.split(":")[0].strip()} if perturb else {}),
    }


def check(ref, name):
    torch.manual_seed(0)
    theirs = twin(ref, name).eval()
    net = cnndsl.load(os.path.join(ROOT, "nets", f"{name}.net"))
    return compare(theirs, net, perturb=PERTURB.get(name))


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
