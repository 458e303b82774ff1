"""The zoo's case studies whose twins are timm's (DPN-92, DPN-98, SE-ResNet-50), and the lecture's lines.

Ground truth is tests/reference/timm.json, written by tools/make_reference_timm.py from timm 1.0.31's
models themselves (pretrained=False): total parameters, fvcore's conv+linear MACs, every Conv2d /
pool / Linear call in forward order (output shape, parameters, MACs) and the state_dict. The lecture
notes' figures (after the DPN paper's Table 2) are written out here: DPN-98 236 MB and 11.7 GFLOPs
(multiply-adds), ResNeXt-101 (64x4d) 320 MB and 15.5 GFLOPs, at 224x224.

    pytest tests/test_timm_twins.py -q
"""
import functools
import json
import os
import re

import pytest

import cnndsl
from cnndsl import weights as W
from cnndsl.kinds import KINDS

ROOT = os.path.join(os.path.dirname(__file__), "..")
with open(os.path.join(os.path.dirname(__file__), "reference", "timm.json")) as f:
    REFERENCE = json.load(f)["nets"]
NAMES = ["dpn92", "dpn98", "se_resnet50"]  # the lecture's case studies; timm's families: test_timm_families.py

RECORDED = {"CONV": "Conv2d", "MAXPOOL": "MaxPool2d", "AVGPOOL": "AvgPool2d",
            "ADAPTIVEAVGPOOL": "AdaptiveAvgPool2d", "GAP": "AdaptiveAvgPool2d", "FC": "Linear"}
# timm's SEModule squeezes with x.mean((2, 3)), a function, so the reference has no row for our GAPs
# that stand for it: one per bottleneck of SE-ResNet-50.
FUNCTIONAL_POOL = {"se_resnet50": (lambda name: name.endswith(".se_module.gap1"), 16)}


# Our state_dict keys are timm's, but for the block paths a label cannot spell (a repeat's index):
def dpn_key(key):
    """timm's DPN `features.conv3_2.c1x1_a.bn.weight` is our `features.conv3.block2.c1x1_a.bn.weight`."""
    return re.sub(r"^features\.conv([2-5])_(\d+)\.", r"features.conv\1.block\2.", key)


def senet_key(key):
    """timm's `layer2.0.downsample.1.weight` is our `layer2.bottleneck1.downsample.bn1.weight`."""
    key = re.sub(r"^layer(\d)\.(\d+)\.", lambda m: f"layer{m[1]}.bottleneck{int(m[2]) + 1}.", key)
    return key.replace(".downsample.0.", ".downsample.conv1.").replace(".downsample.1.", ".downsample.bn1.")


OUR_KEY = {"dpn92": dpn_key, "dpn98": dpn_key, "se_resnet50": senet_key}


@functools.lru_cache(maxsize=None)
def net(name):
    return cnndsl.load(os.path.join(ROOT, "nets", f"{name}.net"))


@functools.lru_cache(maxsize=None)
def report(name):
    return net(name).report()


def state_dict_shapes(name):
    """{key: shape} of our to_torch() state_dict, from the kinds' tensors (no torch needed)."""
    g = net(name).graph
    out = {}
    for n in g.nodes:
        for t in KINDS[n.op].tensors(n.attrs, [g.shape_of(i) for i in n.inputs]):
            out[f"{n.name}.{t.name}"] = tuple(t.shape)
    return out


def recorded_rows(name):
    rows = [l for l in report(name)["layers"] if l["op"] in RECORDED]
    if name in FUNCTIONAL_POOL:
        functional, count = FUNCTIONAL_POOL[name]
        dropped = [l for l in rows if functional(l["name"])]
        assert len(dropped) == count and all(l["op"] == "GAP" for l in dropped)
        rows = [l for l in rows if not functional(l["name"])]
    return rows


def test_every_reference_net_is_in_the_zoo():
    assert set(NAMES) <= set(REFERENCE)
    assert all(os.path.exists(os.path.join(ROOT, "nets", f"{n}.net")) for n in NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_input_params_and_macs_equal_timm(name):
    r, ref = report(name), REFERENCE[name]
    assert r["input"] == ref["input_hwc"]
    assert r["totals"]["params"] == ref["params"]
    assert sum(l["macs"] for l in r["layers"] if l["op"] in ("CONV", "FC")) == ref["conv_fc_macs"]
    assert r["totals"]["macs"] == ref["conv_fc_macs"]


def reference_rows(name):
    """timm's rows in the order our spec runs them. timm's SE bottleneck computes its projection
    shortcut between bn3 and the SE gate (senet.py, Bottleneck.forward); ours, a branch of the sum,
    after the gate: each `downsample.0` row moves behind its block's `se_module.fc2` row."""
    rows = list(REFERENCE[name]["layers"])
    if name != "se_resnet50":
        return rows
    for proj in [r for r in rows if r["module"].endswith(".downsample.0")]:
        rows.remove(proj)
        gate = next(i for i, r in enumerate(rows) if r["module"] == proj["module"].replace(".downsample.0", ".se_module.fc2"))
        rows.insert(gate + 1, proj)
    return rows


@pytest.mark.parametrize("name", NAMES)
def test_conv_pool_fc_shapes_params_macs_in_order(name):
    ours, ref = recorded_rows(name), reference_rows(name)
    assert len(ours) == len(ref) > 80, f"{len(ours)} conv/pool/FC layers, timm {len(ref)}"
    for l, r in zip(ours, ref):
        where = f"{l['name']} vs {r['module']}"
        assert RECORDED[l["op"]] == r["type"], where
        assert l["out"] == r["out"], where
        assert l["params"] == r["params"], where
        assert l["macs"] == r["macs"], where


@pytest.mark.parametrize("name", NAMES)
def test_state_dict_is_timms_renamed(name):
    """Every tensor of timm's state_dict (buffers too) is ours under the renamed key, in the same shape,
    and nothing else is ours."""
    theirs = {OUR_KEY[name](k): tuple(shape) for k, shape in REFERENCE[name]["state_dict"]}
    assert state_dict_shapes(name) == theirs
    assert report(name)["totals"]["buffers"] == REFERENCE[name]["buffers"] - sum(
        1 for k, _ in REFERENCE[name]["state_dict"] if k.endswith("num_batches_tracked"))


@pytest.mark.parametrize("name", NAMES)
def test_timm_state_dict_maps_onto_ours(name):
    """cnndsl's module-by-module mapping (what load_into does with a foreign state_dict) places each
    of timm's tensors at its renamed key: timm's weights load as they are."""
    theirs = {k: tuple(shape) for k, shape in REFERENCE[name]["state_dict"]}
    mapping = W.map_state_dict(theirs, state_dict_shapes(name))
    assert mapping == {k: OUR_KEY[name](k) for k in theirs}


def test_dpn_blocks_follow_the_paper():
    """DPN-92's block widths as the paper's Table 1 gives them: (96, 96, 256) x3 with +16 per block,
    ... (768, 768, 2048) x3 with +128; conv2's first block keeps 56x56, conv3..5 halve the size."""
    r = {l["name"]: l for l in report("dpn92")["layers"]}
    assert r["features.conv2.block1.concat2"]["out"] == [56, 56, 256 + 3 * 16]
    assert r["features.conv2.block3.concat2"]["out"] == [56, 56, 256 + 5 * 16]
    assert r["features.conv3.block1.c3x3_b.conv"]["desc"] == "3x3/2 p1 g32, 192 nobias"
    assert r["features.conv4.block20.concat2"]["out"] == [14, 14, 1024 + 22 * 24]
    assert r["features.conv5.block3.concat2"]["out"] == [7, 7, 2688]
    assert r["features.conv5_bn_ac.relu1"]["op"] == "RELU"  # timm's final BnAct: ReLU (its 'elu' is not used)
    assert report("dpn92")["output"] == "flatten1" and report("dpn92")["layers"][-1]["out"] == [1000]


# ---- the lecture's line: DPN-98 against ResNeXt-101 (64x4d) -------------------------------------
def model_size_mib(name):
    """A saved fp32 model file: parameters and BN's running statistics (MXNet's .params holds its aux
    states), in MiB, as the DPN paper's 'model size' column counts."""
    t = report(name)["totals"]
    return 4 * (t["params"] + t["buffers"]) / 2**20


def test_dpn98_lecture_line():
    """The lecture notes: DPN-98, 236 MB and 11.7 GFLOPs (multiply-adds) at 224x224. The parameters
    alone are 234.9 MiB (246.3 MB); with BN's running statistics 235.5 MiB, the lecture's 236."""
    macs = report("dpn98")["totals"]["macs"]
    assert round(macs / 1e9, 1) == 11.7
    assert round(model_size_mib("dpn98")) == 236
    assert report("dpn98")["totals"]["param_bytes"] == 4 * REFERENCE["dpn98"]["params"]


def test_resnext101_64x4d_lecture_line_beside_dpn98():
    """The lecture's other line, ResNeXt-101 (64x4d): 320 MB and 15.5 GFLOPs. Counted as DPN-98's
    (parameters and BN statistics, fp32) it is 319.1 MiB: 320 in the lecture's rounding to 10 MB, and
    DPN-98 is the smaller (about 26% fewer MiB) and the cheaper (about 25% fewer MACs), as the notes say."""
    macs = report("resnext101_64x4d")["totals"]["macs"]
    assert round(macs / 1e9, 1) == 15.5
    assert round(model_size_mib("resnext101_64x4d"), -1) == 320
    assert abs(model_size_mib("resnext101_64x4d") - 320) < 1
    assert model_size_mib("dpn98") / model_size_mib("resnext101_64x4d") == pytest.approx(236 / 320, abs=0.01)
    assert report("dpn98")["totals"]["macs"] / macs == pytest.approx(11.7 / 15.5, abs=0.01)


def test_se_resnet50_published_figures():
    """Hu, Shen & Sun: SE-ResNet-50, 28.09M parameters and 3.86 GFLOPs (multiply-adds) at 224x224
    (conv and FC here; the paper's Table 2 lists 3.87, which the gates' pooling and scaling, about
    11M operations not counted as conv or FC, account for)."""
    t = report("se_resnet50")["totals"]
    assert round(t["params"] / 1e6, 2) == 28.09
    assert round(t["macs"] / 1e9, 2) == 3.86
    se = [l for l in report("se_resnet50")["layers"] if l["op"] == "MUL"]
    assert len(se) == 16 and all(l["out"][-1] in (256, 512, 1024, 2048) for l in se)


# ---- what tools/timm_parity.py verified, in the reference venv with timm --------------------------
PARITY_PATH = os.path.join(ROOT, "tests", "reference", "timm_parity.json")
PARITY = json.load(open(PARITY_PATH))["nets"] if os.path.exists(PARITY_PATH) else {}


@pytest.mark.skipif(not PARITY, reason="tools/timm_parity.py has not been run")
@pytest.mark.parametrize("name", NAMES)
def test_recorded_parity_with_timm(name):
    """timm's weights (BN statistics drawn at random), loaded through the mapping, give timm's outputs
    (fp32, eval); the recorded mapping is the one this spec gives now."""
    r = PARITY[name]
    assert r["ok"] and r["max_abs_diff"] <= 1e-5 and r["timm_name"] == REFERENCE[name]["timm_name"]
    assert r["params"] == r["twin_params"] == r["analyzer_params"] == REFERENCE[name]["params"]
    assert r["source"] == "mapped" and r["mapped_tensors"] == len(REFERENCE[name]["state_dict"])
    theirs = {k: tuple(shape) for k, shape in REFERENCE[name]["state_dict"]}
    assert W.mapping_digest(W.map_state_dict(theirs, state_dict_shapes(name))) == r["mapping_digest"]


# ---- the DPN block through the backends, small (DPN-92/98 are too heavy for the default run) -----
# The zoo's generic checks give DPN-92 and DPN-98 (over 30M parameters) the ONNX checker and shape
# inference only by default (tests/test_onnx.py HEAVY); this net, built from the same nets/lib/dpn.net,
# runs the dual path block (a projecting and a striding first block, plain blocks after them) through
# ONNX Runtime and the compiled source at a few thousand parameters.
TINY_DPN = """include "lib/dpn.net"
input 32x32x3
let k_r = 256
let groups = 4
features: [conv1_1: (conv: CONV(8, 3, p=1, bias=false) - bn: BN(eps=0.001) - RELU)
           - conv2: stage(16, 4, 3, s=1, c1x1_w_s1=on, c1x1_w_s2=off) - conv3: stage(32, 8, 2)
           - conv5_bn_ac: (bn: BN(eps=0.001) - RELU)]
- global_pool: GAP - classifier: CONV(10, 1) - FLATTEN
"""


def tiny_dpn():
    torch = pytest.importorskip("torch")
    net = cnndsl.loads(TINY_DPN, path=os.path.join(ROOT, "nets", "tiny_dpn.net"))
    m = net.to_torch(seed=0).eval()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():  # BN statistics away from 0 / 1, so that every BN shows in the outputs
        for key, t in m.state_dict().items():
            if key.endswith(("running_var", "bn.weight")):
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)
            elif key.endswith(("running_mean", "bn.bias")):
                t.copy_(torch.randn(t.shape, generator=g) * 0.1)
    return torch, net, m, torch.randn(2, 3, 32, 32, generator=g)


def test_tiny_dpn_shapes():
    r = cnndsl.loads(TINY_DPN, path=os.path.join(ROOT, "nets", "tiny_dpn.net")).report()
    out = {l["name"]: l["out"] for l in r["layers"]}
    assert out["features.conv2.block3.concat2"] == [32, 32, 16 + 5 * 4]
    assert out["features.conv3.block2.concat2"] == [16, 16, 32 + 4 * 8]
    assert out["flatten1"] == [10]


@pytest.mark.parametrize("opset", [13, None])
def test_tiny_dpn_onnx_runtime_equals_torch(opset):
    pytest.importorskip("onnxruntime")
    from test_onnx import session as ort_session
    torch, net, m, x = tiny_dpn()
    model = net.to_onnx(weights=m, opset=opset)
    session = ort_session(model)
    y = session.run(None, {"input": x.numpy()})[0]
    with torch.no_grad():
        want = m(x).numpy()
    assert y.shape == want.shape == (2, 10)
    assert abs(y - want).max() <= 1e-4 * max(1.0, abs(want).max())


def test_tiny_dpn_compiled_source_identical_outputs():
    torch, net, m, x = tiny_dpn()
    namespace = {"__name__": "generated"}
    exec(compile(net.torch_source(class_name="TinyDPN"), "<generated>", "exec"), namespace)
    g = namespace["TinyDPN"]().eval()
    g.load_state_dict(m.state_dict(), strict=True)
    with torch.no_grad():
        assert torch.equal(m(x), g(x))
