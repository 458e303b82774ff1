"""Build tests/reference/timm.json: ground truth for the zoo's case studies whose twins are timm's.

The lecture notes' Dual Path Networks and SE-ResNet-50 have no torchvision twin; timm (1.0.31)
has them: dpn92 and dpn98 (timm/models/dpn.py, the MXNet original's layout) and legacy_seresnet50
(timm/models/senet.py, Cadene's port of the SENet authors' Caffe model, stride on the first 1x1 as
in the paper; timm's seresnet50 is the torchvision-style "V1.5" with the stride on the 3x3). For each,
built with pretrained=False, at batch 1 and its default_cfg input (224x224x3), the same records as
tools/make_reference.py writes for torchvision (whose helpers it uses):

  params        exact total parameter count.
  buffers       elements of the state_dict that are not parameters (BN running statistics and
                counters): a saved model file holds them too (the lecture's "model size").
  conv_fc_macs  fvcore's conv+linear total (asserted equal to the hand sum over Conv2d/Linear).
                DPN's classifier is a 1x1 Conv2d, so it counts as conv.
  layers        every Conv2d / MaxPool2d / AvgPool2d / AdaptiveAvgPool2d / Linear call in forward
                order, with output shape ([H, W, C]), params and MACs. timm's SEModule squeezes with
                x.mean((2, 3)), a function: no row for it.
  state_dict    [key, shape] pairs of model.state_dict(), in order.

Runs in the reference venv (timm is never a dependency of cnndsl):

    /work/refenv/bin/python tools/make_reference_timm.py
"""
import importlib.util
import os
import sys
from importlib.metadata import version

import timm
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
OUT_PATH = os.path.join(HERE, "..", "tests", "reference", "timm.json")

# our net -> timm's model name
TIMM_NETS = {"dpn92": "dpn92", "dpn98": "dpn98", "se_resnet50": "legacy_seresnet50"}
# Published totals (timm's model cards / the papers); a mismatch means the data (or this script) is wrong.
EXPECTED_PARAMS = {"dpn92": 37668392, "dpn98": 61570728, "se_resnet50": 28088024}


def torchvision_reference():
    spec = importlib.util.spec_from_file_location("make_reference", os.path.join(HERE, "make_reference.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def describe(ref, ours, timm_name):
    model = timm.create_model(timm_name, pretrained=False).eval()
    h, w, c = [model.default_cfg["input_size"][i] for i in (1, 2, 0)]
    entry, agreed = ref.describe(ours, model, [h, w, c])
    params = sum(p.numel() for p in model.parameters())
    entry["buffers"] = sum(b.numel() for b in model.buffers())
    entry["timm_name"] = timm_name
    return entry, agreed and params == EXPECTED_PARAMS[ours]


def main():
    ref = torchvision_reference()
    torch.manual_seed(0)
    nets, ok = {}, True
    for ours, timm_name in TIMM_NETS.items():
        nets[ours], agreed = describe(ref, ours, timm_name)
        if not agreed:
            print(f"!!! {ours} ({timm_name}): fvcore != hand sum, or params != {EXPECTED_PARAMS[ours]}",
                  file=sys.stderr)
        ok &= agreed
    ref.write_atomic(OUT_PATH, {
        "generated_by": "tools/make_reference_timm.py",
        "torch": torch.__version__,
        "timm": timm.__version__,
        "fvcore": version("fvcore"),
        "nets": nets,
    })
    print(f"wrote {os.path.normpath(OUT_PATH)}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
