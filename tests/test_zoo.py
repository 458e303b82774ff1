"""The zoo (nets/*.net) against torchvision and the lecture's figures.

Ground truth is tests/reference/torchvision.json, written by tools/make_reference.py from the
torchvision models themselves (weights=None): total parameters, every Conv2d / pool / Linear
call in forward order with its output shape, parameters and MACs (fvcore's conv+linear
total), and the state_dict. The lecture figures (AlexNet 227, VGG-16's table, LeNet-5) are
the published numbers, written out here.

    pytest tests/test_zoo.py -q
"""
import functools
import json
import math
import os

import pytest

import cnndsl
from cnndsl import CnnError
from specgen import sibling_params  # a family's other nets under CNNDSL_FULL_ZOO=1

ROOT = os.path.join(os.path.dirname(__file__), "..")
NETS = os.path.join(ROOT, "nets")
with open(os.path.join(os.path.dirname(__file__), "reference", "torchvision.json")) as f:
    REFERENCE = json.load(f)["nets"]

ZOO = sorted(f[:-4] for f in os.listdir(NETS) if f.endswith(".net"))
TWINS = sorted(n for n in REFERENCE if n in ZOO)

# The kinds whose output shapes the reference records, ours -> torchvision's module types.
RECORDED = {"CONV": "Conv2d", "MAXPOOL": "MaxPool2d", "AVGPOOL": "AvgPool2d",
            "ADAPTIVEAVGPOOL": "AdaptiveAvgPool2d", "GAP": "AdaptiveAvgPool2d", "FC": "Linear"}

# torchvision pools these nets with functions, not modules (DenseNet's and MobileNetV2's global
# F.adaptive_avg_pool2d, MNASNet's and ShuffleNetV2's x.mean([2, 3]), the pools inside Inception v3's modules:
# F.avg_pool2d, F.max_pool2d), so the reference (forward hooks on modules) has no row for them.
# Our layers that stand for them are left out of the comparison for these nets only:
# net -> (op, predicate on our layer name), and how many such layers there are.
GLOBAL_GAP = (("GAP",), lambda name: name == "gap1", 1)
FUNCTIONAL_POOL = {
    "densenet121": GLOBAL_GAP, "densenet161": GLOBAL_GAP, "densenet169": GLOBAL_GAP,
    "densenet201": GLOBAL_GAP, "mobilenet_v2": GLOBAL_GAP,
    "mnasnet0_5": GLOBAL_GAP, "mnasnet0_75": GLOBAL_GAP, "mnasnet1_0": GLOBAL_GAP, "mnasnet1_3": GLOBAL_GAP,
    # ShuffleNetV2: x.mean([2, 3])
    "shufflenet_v2_x0_5": GLOBAL_GAP, "shufflenet_v2_x1_0": GLOBAL_GAP,
    "shufflenet_v2_x1_5": GLOBAL_GAP, "shufflenet_v2_x2_0": GLOBAL_GAP,
    # Mixed_5b..5d, 6b..6e, 7b, 7c: an average pool each; Mixed_6a, 7a: a max pool each
    "inception_v3": (("AVGPOOL", "MAXPOOL"), lambda name: name.startswith("Mixed_") and name.endswith(".pool"), 11),
}

# ConvNeXt's two pointwise layers per block are nn.Linear over the channels of an (N, H, W, C) view;
# ours are 1x1 convs with the same parameters and MACs. The reference marks them "pointwise".
POINTWISE = {"CONV": "Linear"}

# Layers whose window leaves real input rows unused at the declared input, exactly where the
# original (torchvision's, or d2l's for NiN) floors too: (layer name, start of the warning).
# ResNet's strided 1x1 projections skip every other row by design, so theirs is no misfit.
EXPECTED_FLOORS = {
    # (224 - 7)/2 + 1 = 109.5 and (224 - 3)/2 + 1 = 111.5
    "squeezenet1_0": [("features.conv1", "7x7 filter at stride 2 does not fit a 224x224 input")],
    "squeezenet1_1": [("features.conv1", "3x3 filter at stride 2 does not fit a 224x224 input")],
    # d2l's NiN on 224x224: 54.25, then the 3x3/2 pools on 54, 26 and 12 (d2l prints 54, 26, 12, 5)
    "nin": [("mlpconv1.conv1", "11x11 filter at stride 4 does not fit a 224x224 input"),
            ("maxpool1", "3x3 window at stride 2 does not fit a 54x54 input"),
            ("maxpool2", "3x3 window at stride 2 does not fit a 26x26 input"),
            ("maxpool3", "3x3 window at stride 2 does not fit a 12x12 input")],
    # BiT's fixed stem: 112 + 2 zeros, then a 3x3/2 pool without padding: (114 - 3)/2 + 1 = 56.5 (timm floors too)
    "resnetv2_50x1_bit": [("stem.pool", "3x3 window at stride 2 does not fit a 114x114 input")],
    # GhostNetV2's DFC gate on the 7x7 blocks: F.avg_pool2d(2, 2) floors 7 to 3 (UPSAMPLE(size=7) brings it back)
    "ghostnetv2_100": [(f"blocks.bottleneck{i}.ghost1.avgpool1", "2x2 window at stride 2 does not fit a 7x7 input")
                       for i in (8, 9, 10, 11)],
}


@functools.lru_cache(maxsize=None)
def net(name):
    return cnndsl.load(os.path.join(NETS, f"{name}.net"))


@functools.lru_cache(maxsize=None)
def report(name):
    return net(name).report()


def recorded_rows(name):
    """Our layers that the reference records, in execution order."""
    rows = [l for l in report(name)["layers"] if l["op"] in RECORDED]
    if name in FUNCTIONAL_POOL:
        ops, functional, count = FUNCTIONAL_POOL[name]
        dropped = [l for l in rows if functional(l["name"])]
        assert len(dropped) == count and all(l["op"] in ops for l in dropped), \
            f"{name}: expected {count} functional pools, found {[l['name'] for l in dropped]}"
        rows = [l for l in rows if not functional(l["name"])]
    return rows


# ---- against torchvision ---------------------------------------------------------------------
def test_every_reference_net_has_a_twin():
    assert set(REFERENCE) <= set(ZOO)


@pytest.mark.parametrize("name", TWINS)
def test_input_is_the_reference_eval_crop(name):
    assert report(name)["input"] == REFERENCE[name]["input_hwc"]


@pytest.mark.parametrize("name", TWINS)
def test_total_params_equal_torchvision(name):
    assert report(name)["totals"]["params"] == REFERENCE[name]["params"]


@pytest.mark.parametrize("name", TWINS)
def test_conv_fc_macs_equal_fvcore(name):
    ours = sum(l["macs"] for l in report(name)["layers"] if l["op"] in ("CONV", "FC"))
    assert ours == REFERENCE[name]["conv_fc_macs"]


@pytest.mark.parametrize("name", TWINS)
def test_conv_pool_fc_shapes_params_macs_in_order(name):
    ours, ref = recorded_rows(name), REFERENCE[name]["layers"]
    assert [(l["op"], l["out"]) for l in ours] != [] and len(ours) == len(ref), \
        f"{len(ours)} conv/pool/FC layers, torchvision {len(ref)}"
    for l, r in zip(ours, ref):
        where = f"{l['name']} vs {r['module']}"
        if r.get("pointwise"):
            assert POINTWISE.get(l["op"]) == r["type"] and l["desc"].startswith("1x1/1"), where
        else:
            assert RECORDED[l["op"]] == r["type"], where
        assert l["out"] == r["out"], where
        assert l["params"] == r["params"], where
        assert l["macs"] == r["macs"], where


def param_shapes(name):
    """[(layer name, tensor shape)] of our parameters (no buffers) in execution order, as PyTorch lays them out."""
    g = net(name).graph
    out = []
    for n in g.nodes:
        a = n.attrs
        if n.op == "CONV":
            cin = g.shape_of(n.inputs[0])[2]
            out.append((n.name, [a["filters"], cin // a["groups"], *a["kernel"]]))
            if a["bias"]:
                out.append((n.name, [a["filters"]]))
        elif n.op == "FC":
            out.append((n.name, [a["units"], g.shape_of(n.inputs[0])[0]]))
            if a["bias"]:
                out.append((n.name, [a["units"]]))
        elif n.op in ("BN", "LAYERNORM") or (n.op == "GROUPNORM" and a["affine"]):
            if n.op != "LAYERNORM" or a["affine"]:
                c = g.shape_of(n.inputs[0])[-1]
                out += [(n.name, [c]), (n.name, [c])]
        elif n.op == "LAYERSCALE":
            shape = g.shape_of(n.inputs[0])
            out.append((n.name, [shape[-1], 1, 1] if len(shape) == 3 else [shape[-1]]))
    return out


def twin_layout(name):
    """torchvision's parameter tensors (buffers aside) as our layers lay them out: in ConvNeXt a
    pointwise nn.Linear's [out, in] weight is our 1x1 conv's [out, in, 1, 1], and CNBlock's own
    `layer_scale` parameter, which its state_dict lists before the block's layers, comes after
    them in execution order (it scales their output)."""
    ref = [(k, shape) for k, shape in REFERENCE[name]["state_dict"]
           if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))]
    pointwise = {r["module"] for r in REFERENCE[name]["layers"] if r.get("pointwise")}
    ref = [(k, shape + [1, 1] if k.rsplit(".", 1)[0] in pointwise and len(shape) == 2 else shape) for k, shape in ref]
    out, held = [], {}
    for k, shape in ref:
        prefix, _, leaf = k.rpartition(".")
        if leaf == "layer_scale":
            held[prefix] = (k, shape)
            continue
        out.append((k, shape))
        # the block's last tensor: its second pointwise layer's bias
        block = prefix.rsplit(".block.", 1)[0] if ".block." in prefix else None
        if block in held and k.endswith(".bias") and prefix.split(".")[-1] == "5":
            out.append(held.pop(block))
    assert not held, f"{name}: layer scales left over: {sorted(held)}"
    return out


@pytest.mark.parametrize("name", TWINS)
def test_parameter_tensors_follow_state_dict_order(name):
    """Layer by layer, our weights line up with torchvision's state_dict (buffers aside): what a
    weight loader that maps by position needs."""
    ref = twin_layout(name)
    ours = param_shapes(name)
    assert len(ours) == len(ref)
    for (layer, shape), (key, want) in zip(ours, ref):
        assert shape == want, f"{layer} {shape} vs {key} {want}"


@pytest.mark.parametrize("name", [n for n in TWINS if "stochastic_depth" in REFERENCE[n]])
def test_stochastic_depth_probabilities_equal_torchvision(name):
    """Each DROPPATH's probability is that of torchvision's StochasticDepth call at the same place
    (EfficientNet's and ConvNeXt's rise linearly with the block's index: written in the spec)."""
    ours = [n for n in net(name).graph.nodes if n.op == "DROPPATH"]
    ref = REFERENCE[name]["stochastic_depth"]
    assert len(ours) == len(ref)
    for n, (module, p) in zip(ours, ref):
        assert n.attrs["p"] == pytest.approx(p, rel=1e-12, abs=1e-15), f"{n.name} vs {module}"


def test_densenet_names_are_torchvision_module_paths():
    ours = {layer for layer, _ in param_shapes("densenet121")}
    theirs = {k.rsplit(".", 1)[0] for k, _ in REFERENCE["densenet121"]["state_dict"]}
    assert ours == theirs


@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
def test_resnet_names_resemble_torchvision(name):
    names = {n.name for n in net(name).graph.nodes}
    assert {"conv1", "bn1", "relu", "maxpool", "avgpool", "fc"} <= names
    assert "layer1.{0}1.conv1".format("basic" if name == "resnet18" else "bottleneck") in names
    assert "layer2.{0}1.downsample.conv1".format("basic" if name == "resnet18" else "bottleneck") in names


# ---- the lecture's figures -------------------------------------------------------------------
def test_alexnet_227_lecture_volumes():
    r = report("alexnet_227")
    assert r["input"] == [227, 227, 3]
    rows = [l for l in r["layers"] if l["op"] in RECORDED]
    want = [[55, 55, 96], [27, 27, 96], [27, 27, 256], [13, 13, 256], [13, 13, 384], [13, 13, 384],
            [13, 13, 256], [6, 6, 256], [4096], [4096], [1000]]
    assert [l["out"] for l in rows] == want
    assert rows[0]["params"] == 11 * 11 * 3 * 96 + 96 == 34944
    assert [l["op"] for l in r["layers"]].count("LRN") == 2
    lrn = next(n for n in net("alexnet_227").graph.nodes if n.op == "LRN")
    assert (lrn.attrs["size"], lrn.attrs["alpha"], lrn.attrs["beta"], lrn.attrs["k"]) == (5, 1e-4, 0.75, 2)


def test_resnext101_64x4d_lecture_line():
    """The lecture notes: ResNeXt-101 64x4d, 15.5 GFLOPs (multiply-adds) and a 320 MB model."""
    totals = report("resnext101_64x4d")["totals"]
    assert round(totals["macs"] / 1e9, 1) == 15.5
    assert round(totals["param_bytes"] / 2**20, -1) == 320  # 318.4 MiB of fp32 weights


def test_lenet5_params():
    assert report("lenet5")["totals"]["params"] == 61706
    assert report("lenet5")["input"] == [32, 32, 1]


def test_vgg16_lecture_table():
    rows = [l for l in report("vgg16")["layers"] if l["op"] in RECORDED and l["op"] != "ADAPTIVEAVGPOOL"]
    conv = lambda h, c, cin: ([h, h, c], 9 * cin * c)
    pool = lambda h, c: ([h, h, c], 0)
    want = [conv(224, 64, 3), conv(224, 64, 64), pool(112, 64),
            conv(112, 128, 64), conv(112, 128, 128), pool(56, 128),
            conv(56, 256, 128), conv(56, 256, 256), conv(56, 256, 256), pool(28, 256),
            conv(28, 512, 256), conv(28, 512, 512), conv(28, 512, 512), pool(14, 512),
            conv(14, 512, 512), conv(14, 512, 512), conv(14, 512, 512), pool(7, 512),
            ([4096], 102760448), ([4096], 16777216), ([1000], 4096000)]
    assert len(rows) == len(want)
    for l, (out, weights) in zip(rows, want):
        assert l["out"] == out, l["name"]
        assert l["params"] - (out[-1] if weights else 0) == weights, l["name"]
        assert l["act_elems"] == math.prod(out), l["name"]
    assert want[0][1] == 1728 and want[1][1] == 36864
    # the table's memory column: 224*224*3 input plus every row, about 15.2M values (x4 bytes)
    assert 224 * 224 * 3 + sum(l["act_elems"] for l in rows) == 15237608


def test_cs231n_pattern_defaults_and_bindings():
    default = report("cs231n_pattern")
    assert not net("cs231n_pattern").warnings
    assert default["layers"][-1]["op"] == "SOFTMAX"
    bound = cnndsl.load(os.path.join(NETS, "cs231n_pattern.net"), bindings={"N": 2, "M": 3, "K": 1}, strict=True)
    layers = bound.report()["layers"]
    ops = [l["op"] for l in layers]
    assert ops.count("CONV") == 6 and ops.count("MAXPOOL") == 3 and ops.count("FC") == 2
    assert layers[-1]["out"] == [10]


# ---- clean under --strict, or flooring exactly where the original floors ------------------------
@pytest.mark.parametrize("name", sibling_params(ZOO))
def test_strict_check(name):
    path = os.path.join(NETS, f"{name}.net")
    got = [(n.name, w.message) for n in net(name).graph.nodes for w in n.meta.get("warnings", ())]
    expected = EXPECTED_FLOORS.get(name, [])
    assert [layer for layer, _ in got] == [layer for layer, _ in expected]
    for (_, message), (_, start) in zip(got, expected):
        assert message.startswith(start)
    if not expected:
        cnndsl.load(path, strict=True)
    else:
        with pytest.raises(CnnError) as e:
            cnndsl.load(path, strict=True)
        assert e.value.message.startswith(expected[0][1])


# ---- a new head from the command line: `-D classes=5` ------------------------------------------------
# Acceptance checks of earlier issues rewrite these nets' head text (`fc: FC(1000)`, `output: FC(10)`)
# to make a new head, so their heads stay literal; they take a new head that way, or by --init.
LITERAL_HEAD = {"resnet18", "lenet5"}


def _numel(t):
    return math.prod(t.shape)


@pytest.mark.parametrize("name", sibling_params(ZOO))
def test_classes_resizes_only_the_head(name):
    """Every shipped classifier takes its class count as `-D classes=N`: a 5-way output, the same layer
    names, and params = the default's minus the head's difference, computed from the tensors' shapes."""
    default = net(name)
    if name in LITERAL_HEAD:
        assert "classes" not in default.graph.lets
        return
    classes = default.graph.lets["classes"]
    assert classes == (10 if default.graph.input_shape[0] <= 32 else 1000)
    five = cnndsl.load(os.path.join(NETS, f"{name}.net"), bindings={"classes": "5"})
    g, g5 = default.graph, five.graph
    assert g.shape_of(g.output) == (classes,) and g5.shape_of(g5.output) == (5,)
    assert [n.name for n in g5.nodes] == [n.name for n in g.nodes]
    # only the head changes (the layers that give the class count: a distilled head's two classifiers
    # and their mean too), the trunk keeps its shapes, and the output is among them
    changed = [i for i, (a, b) in enumerate(zip(g.nodes, g5.nodes)) if a.out_shape != b.out_shape]
    assert changed[-1] == len(g.nodes) - 1
    assert all(g.nodes[i].out_shape[-1] == classes and g5.nodes[i].out_shape[-1] == 5 for i in changed)
    t, t5 = g.tensors(), g5.tensors()
    assert list(t5) == list(t)  # the same keys: a checkpoint of the default loads all but the head
    resized = [k for k in t if t[k].shape != t5[k].shape]
    assert resized and all(k.rsplit(".", 1)[0] in {g.nodes[i].name for i in changed} for k in resized)
    head = sum(_numel(t[k]) - _numel(t5[k]) for k in resized)
    assert five.report()["totals"]["params"] == report(name)["totals"]["params"] - head


@pytest.mark.parametrize("name", ["resnet50", "vgg16_bn", "squeezenet1_1", "nin", "convnext_tiny", "dpn92", "cs231n_pattern"])
def test_classes_head_counts_agree_with_torch(name):
    """The 5-way net's parameter count, from the report, equals PyTorch's for the module to_torch() builds."""
    torch = pytest.importorskip("torch")
    five = cnndsl.load(os.path.join(NETS, f"{name}.net"), bindings={"classes": "5"})
    m = five.to_torch(device="meta")
    assert sum(p.numel() for p in m.parameters()) == five.report()["totals"]["params"]
    with torch.device("meta"):
        shape = five.graph.input_shape
        assert tuple(m(torch.empty(2, shape[2], shape[0], shape[1])).shape) == (2, 5)


def test_vgg16_report_says_the_lectures_total_is_a_slip(capsys):
    """The lecture's table totals 24M values; its rows sum to 15.2M. `cnndsl report` says so under the
    table (the spec's `# note:` lines), with the sum the rows give."""
    from cnndsl.cli import main
    rows = [l for l in report("vgg16")["layers"] if l["op"] in RECORDED and l["op"] != "ADAPTIVEAVGPOOL"]
    lecture = 224 * 224 * 3 + sum(l["act_elems"] for l in rows)
    assert main(["report", os.path.join(NETS, "vgg16.net")]) == 0
    notes = " ".join(line[len("note: "):] for line in capsys.readouterr().out.splitlines() if line.startswith("note: "))
    assert "24M" in notes and f"{lecture:,}" in notes and "slip" in notes
    assert f"{report('vgg16')['totals']['act_elems'] - lecture:,}" in notes  # what the tool's total adds
