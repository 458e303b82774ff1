"""timm's convolutional families written in the language (issue 24), against timm itself.

Ground truth is tests/reference/timm.json (tools/make_reference_timm.py, timm 1.0.31, pretrained=False,
batch 1 at the model's default input): for every net of its FAMILY_NETS, parameters, buffers, fvcore's
conv+FC MACs, the logits' shape, every Conv2d / pool / Linear call in forward order (output volume,
parameters, MACs) with the global means and pools timm takes by a function (SEModule's x.mean)
placed among them, and the state_dict. The spec nets/NAME.net must agree on all of it, and timm's state_dict must
map onto ours tensor for tensor (cnndsl.weights.map_state_dict, which to_torch(weights=...) uses):
tools/timm_parity.py then checked the outputs with timm's weights loaded (tests/reference/
timm_parity.json, re-checked here by the mapping's digest). Nets over HEAVY parameters run under
CNNDSL_FULL_ZOO=1 only, and so do a family's other nets (tests/specgen.py, SIBLINGS: each family keeps one by default).

    pytest tests/test_timm_families.py -q
"""
import json
import os

import pytest

from cnndsl import weights as W
from specgen import SIBLINGS
from test_timm_twins import net, report, state_dict_shapes  # the zoo's spec, its report and tensor shapes

ROOT = os.path.join(os.path.dirname(__file__), "..")
REFERENCE = json.load(open(os.path.join(ROOT, "tests", "reference", "timm.json")))["nets"]
FAMILIES = sorted(n for n, r in REFERENCE.items() if "functional" in r)  # the case studies have their own test
PARITY_PATH = os.path.join(ROOT, "tests", "reference", "timm_parity.json")
PARITY = json.load(open(PARITY_PATH))["nets"] if os.path.exists(PARITY_PATH) else {}
TORCHVISION = json.load(open(os.path.join(ROOT, "tests", "reference", "torchvision.json")))["nets"]
HEAVY = 30_000_000
FULL = bool(os.environ.get("CNNDSL_FULL_ZOO"))

# our op -> the module types of timm's rows it may stand for ("mean": a functional global mean)
# (timm's subclasses: Conv2dSame and the pools' *Same are p=tf_same, StdConv2d* the standardised convs)
ROW_TYPES = {"CONV": {"Conv2d", "Conv2dSame"}, "MAXPOOL": {"MaxPool2d", "MaxPool2dSame"},
             "AVGPOOL": {"AvgPool2d", "AvgPool2dSame"}, "FC": {"Linear"},
             "STDCONV": {"StdConv2d", "StdConv2dSame"}, "SCALEDSTDCONV": {"ScaledStdConv2d", "ScaledStdConv2dSame"},
             "ADAPTIVEAVGPOOL": {"AdaptiveAvgPool2d"}, "GAP": {"AdaptiveAvgPool2d", "mean"},
             "BLURPOOL": {"BlurPool2d"}}


def names():
    """FAMILIES, the heavy nets and a family's other nets (specgen.SIBLINGS) under CNNDSL_FULL_ZOO=1."""
    return [pytest.param(n, marks=pytest.mark.skipif(not FULL and (REFERENCE[n]["params"] > HEAVY or n in SIBLINGS),
                                                     reason="heavy or a family's other net: CNNDSL_FULL_ZOO=1 runs it"))
            for n in FAMILIES]


def reference_rows(name):
    """timm's recorded module calls with its functional means and pools put in their places."""
    ref = REFERENCE[name]
    rows = [dict(r) for r in ref["layers"]]
    for i, f in enumerate(ref["functional"]):  # "after" counts module rows only: shift by those before
        out = f["out"] if len(f["out"]) == 3 else [1, 1, *f["out"]]  # a mean without keepdim (timm's "fast" pool)
        rows.insert(f["after"] + i, {"module": f"<{f['type']} {i + 1}>", "type": f["type"], "out": out,
                                     "params": 0, "macs": f.get("macs", 0)})
    return rows


def row_types(layer, ref_row):
    """The module types one of our layers may stand for: a 1x1 CONV for a pointwise nn.Linear over
    an NHWC view (ConvNeXt's), ADAPTIVEAVGPOOL(1) for a functional mean too."""
    types = set(ROW_TYPES[layer["op"]])
    if layer["op"] == "CONV" and ref_row.get("pointwise"):
        types.add("Linear")
    if layer["op"] == "ADAPTIVEAVGPOOL" and layer["out"][:2] == [1, 1]:
        types.add("mean")
    return types


def flat_mean(layer, ref_row):
    """timm's x.mean((2, 3)) without keepdim (RepViT's head) gives [C]: our GAP's 1x1xC, which the
    spec flattens next."""
    return ref_row["type"] == "mean" and len(ref_row["out"]) == 1 and layer["out"] == [1, 1] + ref_row["out"]


def mapping(name):
    g = net(name).graph
    theirs = {k: tuple(s) for k, s in REFERENCE[name]["state_dict"]}
    return W.map_state_dict(theirs, state_dict_shapes(name), layouts=W.foreign_layouts(g.tensors()),
                            feeds=W.module_feeds(g))


def test_every_family_net_is_in_the_zoo():
    assert FAMILIES, "no family nets in tests/reference/timm.json"
    for name in FAMILIES:
        assert os.path.exists(os.path.join(ROOT, "nets", f"{name}.net")), name
        text = open(os.path.join(ROOT, "nets", f"{name}.net")).read()
        if name not in TORCHVISION:  # a zoo twin is written for torchvision (README: "The zoo")
            assert "let classes = 1000" in text and REFERENCE[name]["timm_name"] in text, name


@pytest.mark.parametrize("name", names())
def test_totals_equal_timm(name):
    r, ref = report(name), REFERENCE[name]
    assert r["input"] == ref["input_hwc"]
    assert r["totals"]["params"] == ref["params"]
    assert r["totals"]["macs"] == ref["conv_fc_macs"]
    assert r["layers"][-1]["out"] == ref["output"]
    counters = sum(1 for k, _ in ref["state_dict"] if k.endswith("num_batches_tracked"))
    assert r["totals"]["buffers"] == ref["buffers"] - counters


@pytest.mark.parametrize("name", names())
def test_every_conv_pool_fc_in_order(name):
    ours = [l for l in report(name)["layers"] if l["op"] in ROW_TYPES]
    ref = reference_rows(name)
    assert len(ours) == len(ref), f"{len(ours)} conv/pool/FC/mean layers, timm {len(ref)}"
    for l, r in zip(ours, ref):
        where = f"{l['name']} vs {r['module']}"
        assert r["type"] in row_types(l, r), where
        assert l["out"] == r["out"] or flat_mean(l, r), where
        assert (l["params"], l["macs"]) == (r["params"], r["macs"]), where


@pytest.mark.parametrize("name", names())
def test_timm_state_dict_maps_onto_ours(name):
    """Every tensor of timm's state_dict (BN's counters aside) has a place of ours in the same shape,
    and every tensor of ours is filled: timm's weights load as they are."""
    theirs = {k: tuple(s) for k, s in REFERENCE[name]["state_dict"]}
    ours = {k: s for k, s in state_dict_shapes(name).items() if not k.endswith("num_batches_tracked")}
    got = {k: v for k, v in mapping(name).items() if not k.endswith("num_batches_tracked")}
    assert sorted(got.values()) == sorted(ours)
    for k, v in got.items():
        assert theirs[k] == ours[v] or len(theirs[k]) != len(ours[v]), (k, v)  # a foreign layout reshapes


@pytest.mark.skipif(not PARITY, reason="tools/timm_parity.py has not been run")
@pytest.mark.parametrize("name", names())
def test_recorded_parity_with_timm(name):
    """timm's weights (BN calibrated), loaded through the mapping from a dict and from a .safetensors
    file, gave timm's outputs (tools/timm_parity.py); the mapping recorded is the one the spec gives now."""
    r = PARITY[name]
    assert r["ok"] and r["timm_name"] == REFERENCE[name]["timm_name"]
    assert r["max_abs_diff"] <= 1e-4 * max(1.0, r["output_scale"])
    assert r["params"] == r["twin_params"] == r["analyzer_params"] == REFERENCE[name]["params"]
    assert r["safetensors_max_abs_diff"] <= 1e-4 * max(1.0, r["output_scale"])
    assert W.mapping_digest(mapping(name)) == r["mapping_digest"]
