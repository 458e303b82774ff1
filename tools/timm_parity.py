"""Zoo nets against their timm twins: equal outputs with the twin's weights loaded through cnndsl's
key mapping (cnndsl.weights.load_into, which maps a foreign state_dict module by module).

For each net of tools/make_reference_timm.py (the case studies dpn92, dpn98, se_resnet50 = timm's
legacy_seresnet50, and the families of issue 24):
build the twin (pretrained=False, seeded), calibrate its BN as tools/torchvision_parity.py does
(random affine parameters, the statistics of a random batch: timm starts them at mean 0, var 1,
weight 1, bias 0, which would let a BN placed wrongly go unseen), build `to_torch()`, load the twin's state_dict into it, and compare outputs in fp32, eval mode, on one
random batch at the twin's input size (max abs diff <= 1e-5; for the families <= 1e-4 relative to the
output's scale, and again with timm's state_dict loaded by path from a .safetensors file). Writes what it verified to
tests/reference/timm_parity.json (tests/test_timm_twins.py reads it and re-checks the mapping's
digest offline against tests/reference/timm.json).

Runs in the reference venv (timm is never a dependency of cnndsl), with this checkout's cnndsl:

    PYTHONPATH=. /work/refenv/bin/python tools/timm_parity.py [NAME ...]
"""
import importlib.util
import json
import os
import sys
import time
from importlib.metadata import version

import timm
import torch

import cnndsl
from cnndsl.files import atomic_write

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..")
OUT = os.path.join(ROOT, "tests", "reference", "timm_parity.json")
TOLERANCE = 1e-5  # as tools/torchvision_parity.py, whose compare() decides "ok" for the case studies
RELATIVE = 1e-4   # issue 24's families: max abs diff <= 1e-4 * max(1, output scale)


def torchvision_parity():
    """tools/torchvision_parity.py: its compare() (BN calibration, mapping, outputs) serves both tools."""
    spec = importlib.util.spec_from_file_location("torchvision_parity", os.path.join(HERE, "torchvision_parity.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def timm_nets():
    spec = importlib.util.spec_from_file_location("make_reference_timm", os.path.join(HERE, "make_reference_timm.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.TIMM_NETS, mod.FAMILY_NETS


def random_affines(model):
    """random scalars and norm affines: GRN's weight and bias (timm starts them at 0: the identity),
    StarReLU's, LearnableAffineBlock's and MetaFormer's Scale's values, and LayerNorm/GroupNorm affines
    (1 and 0), each shifted by U(-0.5, 0.5), so that a layer read wrongly shows in the output"""
    kinds = ("GlobalResponseNorm", "StarReLU", "LearnableAffineBlock", "Scale", "LayerNorm", "LayerNorm2d",
             "LayerNorm2dNoBias", "LayerNormNoBias", "GroupNorm", "GroupNorm1", "GroupNorm1NoBias")
    with torch.no_grad():
        for m in model.modules():
            if type(m).__name__ in kinds:
                for p in m.parameters(recurse=False):
                    p.add_(torch.rand_like(p) - 0.5)


# Twins whose initial weights would hide a layer (an identity at init), perturbed after BN calibration
PERTURB = {name: random_affines for name in ("convnextv2_atto", "poolformer_s12", "convformer_s18", "hgnetv2_b0",
                                             "convnextv2_femto", "convnextv2_pico", "convnextv2_nano", "convnextv2_tiny",
                                             "poolformer_s24", "hgnetv2_b1", "convformer_s36")}


def check(name, timm_name, family):
    torch.manual_seed(0)
    theirs = timm.create_model(timm_name, pretrained=False).eval()
    net = cnndsl.load(os.path.join(ROOT, "nets", f"{name}.net"))
    r = {"timm_name": timm_name, **torchvision_parity().compare(theirs, net, x_seed=3, perturb=PERTURB.get(name))}
    if family:  # issue 24's nets: relative tolerance, and the same weights from a .safetensors file
        r["safetensors_max_abs_diff"] = from_safetensors(theirs, net, x_seed=3)
        bound = RELATIVE * max(1.0, r["output_scale"])
        r["ok"] = (r["max_abs_diff"] <= bound and r["safetensors_max_abs_diff"] <= bound
                   and r["output_scale"] >= torchvision_parity().MIN_SCALE)
        r["tolerance"] = "relative"
    return r


def from_safetensors(theirs, net, x_seed):
    """timm's (calibrated) state_dict written to a .safetensors file, whose keys are sorted, loaded by
    path into a fresh to_torch(): the max abs difference from timm's output on compare()'s batch."""
    import tempfile
    from safetensors.torch import save_file
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "timm.safetensors")
        save_file({k: v.contiguous() for k, v in theirs.state_dict().items()}, path)
        ours = net.to_torch(seed=2, weights=path).eval()
    H, W_, C = net.graph.input_shape
    x = torch.randn(2, C, H, W_, generator=torch.Generator().manual_seed(x_seed))
    with torch.no_grad():
        return (theirs(x) - ours(x)).abs().max().item()


def main(argv):
    nets, families = timm_nets()
    names = argv or list(nets)
    old = json.load(open(OUT)) if os.path.exists(OUT) else {}
    results = dict(old.get("nets", {}))
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    print(f"{'net':14s} {'params':>11s} {'twin':>11s} {'max |diff|':>11s} {'tensors':>8s} {'renamed':>8s}  ok   s")
    failed = []
    for name in names:
        t = time.time()
        try:
            r = check(name, nets[name], name in families)
        except cnndsl.CnnError as e:  # the mapping refused: say so, keep the other nets' results
            print(f"{name:14s} NO: {str(e).splitlines()[0]}")
            failed.append(name)
            continue
        results[name] = r
        print(f"{name:14s} {r['params']:11d} {r['twin_params']:11d} {r['max_abs_diff']:11.2e} "
              f"{r['mapped_tensors']:8d} {r['renamed_tensors']:8d}  {'yes' if r['ok'] and r['params'] == r['twin_params'] else 'NO '}"
              f" {time.time() - t:4.1f}")
        write(results)  # after every net: a long run that stops keeps what it verified
    print(f"wrote {os.path.relpath(OUT)}")
    return 0 if not failed and all(r["ok"] and r["params"] == r["twin_params"] for r in results.values()) else 1


def write(results):
    data = {"generated_by": "tools/timm_parity.py", "torch": version("torch"), "timm": version("timm"),
            "tolerance": TOLERANCE, "relative_tolerance": RELATIVE, "nets": dict(sorted(results.items()))}
    atomic_write(OUT, (json.dumps(data, indent=1, sort_keys=False) + "\n").encode())


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
