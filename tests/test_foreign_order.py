"""A foreign state_dict maps the same whatever order its keys come in (issue 21, "never silently
wrong"): the same tensors under timm-like or torchvision-like names, as a dict in the foreign
module's registration order, a shuffled dict, a `.safetensors` file (which keeps keys sorted) and a
`.pt` file, load to the outputs of the module they came from, or are refused naming the modules
that cannot be told apart; never a silent difference.

Each case is one of our specs (the source: to_torch() with random BN affine parameters and running
statistics) and {our module: its foreign name}, written in the foreign net's registration order."""
import json
import os
import random
import re
import sys

import pytest

torch = pytest.importorskip("torch")
safetensors_torch = pytest.importorskip("safetensors.torch")

import cnndsl  # noqa: E402
from cnndsl import weights as W  # noqa: E402

ROOT = os.path.join(os.path.dirname(__file__), "..")
RULES = {"shape", "position", "structure", "name", "explicit"}

# timm's RepVggBlock: three BN of one width in three roles (after the 3x3, after the 1x1, the identity
# branch), `identity` registered first
REPVGG = ("""input 12x12x3
def rep(c) = { (CONV(c, 3, p=1, bias=false) - BN) + (CONV(c, 1, bias=false) - BN) + BN } - RELU
stem: CONV(8, 3, p=1) - r1: rep(8) - r2: rep(8) - GAP - fc: FC(5)
""", {"stem": "stem.conv", "fc": "head.fc",
      **{f"r{b + 1}.{ours}": f"stages.0.{b}.{theirs}" for b in (0, 1) for ours, theirs in (
          ("bn3", "identity"), ("conv1", "conv_kxk.conv"), ("bn1", "conv_kxk.bn"),
          ("conv2", "conv_1x1.conv"), ("bn2", "conv_1x1.bn"))}})

# timm's resnet50d: a deep stem (conv1.0/1/3/4/6, a Sequential with ReLUs between) and an average-pool
# shortcut (downsample.0 is the pool, .1 the conv, .2 the BN): BN of one width in the stem, the
# bottleneck's bn3 and the shortcut
RESNETD = ("""input 16x16x3
def bottleneck(c, s=1) = {
    conv1: CONV(c, 1, bias=false) - bn1: BN - RELU - conv2: CONV(c, 3, s=s, p=1, bias=false) - bn2: BN - RELU
  - conv3: CONV(4 * c, 1, bias=false) - bn3: BN
  + down: (AVGPOOL(s, s=s) - CONV(4 * c, 1, bias=false) - BN)
} - RELU
stem: (CONV(8, 3, s=2, p=1, bias=false) - BN - RELU - CONV(8, 3, p=1, bias=false) - BN - RELU
       - CONV(16, 3, p=1, bias=false)) - bn1: BN - RELU - MAXPOOL(3, s=2, p=1)
- layer1: bottleneck(4) - layer2: bottleneck(8, 2) - GAP - fc: FC(5)
""", {"stem.conv1": "conv1.0", "stem.bn1": "conv1.1", "stem.conv2": "conv1.3", "stem.bn2": "conv1.4",
      "stem.conv3": "conv1.6", "bn1": "bn1",
      **{f"layer{i}.{ours}": f"layer{i}.0.{theirs}" for i in (1, 2) for ours, theirs in (
          ("conv1", "conv1"), ("bn1", "bn1"), ("conv2", "conv2"), ("bn2", "bn2"), ("conv3", "conv3"),
          ("bn3", "bn3"), ("down.conv1", "downsample.1"), ("down.bn1", "downsample.2"))},
      "fc": "fc"})

# timm's MobileOneBlock: identical parallel 3x3 branches (conv_kxk.0..2), a 1x1 scale branch, an identity BN
MOBILEONE = ("""input 12x12x3
def branch(c) = CONV(c, 3, p=1, groups=c, bias=false) - BN
def block(c) = { branch(c) + branch(c) + branch(c) + scale: (CONV(c, 1, groups=c, bias=false) - BN) + BN } - RELU
stem: CONV(8, 3, p=1) - b1: block(8) - b2: block(8) - GAP - fc: FC(5)
""", {"stem": "stem.conv", "fc": "head.fc",
      **{f"b{b + 1}.{ours}": f"stages.0.{b}.{theirs}" for b in (0, 1) for ours, theirs in (
          ("bn1", "identity"),
          *((f"branch{i + 1}.{p}1", f"conv_kxk.{i}.{q}") for i in range(3) for p, q in (("conv", "conv"), ("bn", "bn"))),
          ("scale.conv1", "conv_scale.conv"), ("scale.bn1", "conv_scale.bn"))}})

# timm's DlaTree: the projection (`project`, registered before tree1) is our residual's second branch,
# and every BN of the level has one width; our inner layers keep their own names (bn1, conv1, ...)
DLA = ("""input 16x16x3
def basic(c, s=1) = CONV(c, 3, s=s, p=1, bias=false) - BN - RELU - CONV(c, 3, p=1, bias=false) - BN
def tree(c) = t1: ({ basic(c, 2) + (MAXPOOL(2, s=2) - CONV(c, 1, bias=false) - BN) } - RELU)
            - { t2: ({ ID + basic(c) } - RELU) | ID } - root: (CONV(c, 1, bias=false) - BN - RELU)
stem: (CONV(8, 3, p=1, bias=false) - BN - RELU) - level2: tree(16) - GAP - fc: FC(5)
""", {"stem.conv1": "base_layer.0", "stem.bn1": "base_layer.1",
      "level2.t1.conv1": "level2.project.0", "level2.t1.bn1": "level2.project.1",
      **{f"level2.t{t}.basic1.{n}": f"level2.tree{t}.{n}" for t in (1, 2) for n in ("conv1", "bn1", "conv2", "bn2")},
      "level2.root.conv1": "level2.root.conv", "level2.root.bn1": "level2.root.bn", "fc": "fc"})

# RepVGG with the identity branch written first: when our identity BN is placed, three BN of the
# block are candidates and nothing (order, structure, names) tells which one it is
REPVGG_IDENTITY_FIRST = ("""input 12x12x3
def rep(c) = { BN + (CONV(c, 3, p=1, bias=false) - BN) + (CONV(c, 1, bias=false) - BN) } - RELU
stem: CONV(8, 3, p=1) - r1: rep(8) - r2: rep(8) - GAP - fc: FC(5)
""", {"stem": "stem.conv", "fc": "head.fc",
      **{f"r{b + 1}.{ours}": f"stages.0.{b}.{theirs}" for b in (0, 1) for ours, theirs in (
          ("bn1", "identity"), ("conv1", "conv_kxk.conv"), ("bn2", "conv_kxk.bn"),
          ("conv2", "conv_1x1.conv"), ("bn3", "conv_1x1.bn"))}})


def randomised_source(spec, seed=1):
    """Our module (of a spec's text, or a Net) with BN layers that are each a map of their own
    (random affine parameters and running statistics): a swapped BN changes the outputs."""
    m = (cnndsl.loads(spec) if isinstance(spec, str) else spec).to_torch(seed=seed, logits=True)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                for t, lo, hi in ((mod.weight, 0.5, 1.5), (mod.bias, -0.5, 0.5),
                                  (mod.running_mean, -0.5, 0.5), (mod.running_var, 0.5, 2.0)):
                    t.copy_(torch.rand(t.shape, generator=g) * (hi - lo) + lo)
    return m.eval()


def foreign(module, names):
    """The module's state_dict under foreign names, in the order `names` lists the modules."""
    sd = module.state_dict()
    out = {}
    for ours, theirs in names.items():
        for k, v in sd.items():
            if k.rpartition(".")[0] == ours:
                out[f"{theirs}.{k.rpartition('.')[2]}"] = v.clone()
    assert len(out) == len(sd), "every tensor has a foreign name"
    return out


def four_ways(sd, tmp_path):
    """The same tensors: a dict in registration order, a shuffled dict, a sorted .safetensors file,
    a .pt file (shuffled)."""
    keys = list(sd)
    random.Random(3).shuffle(keys)
    shuffled = {k: sd[k] for k in keys}
    st, pt = tmp_path / "foreign.safetensors", tmp_path / "foreign.pt"
    safetensors_torch.save_file(dict(sd), str(st))
    torch.save(shuffled, pt)
    return {"registration order": sd, "shuffled dict": shuffled, "sorted .safetensors": str(st), ".pt": str(pt)}


def outputs(m, x):
    with torch.no_grad():
        return m.eval()(x)


def load_all_ways(case, tmp_path, **options):
    spec, names = case
    src = randomised_source(spec)
    h, w, c = cnndsl.loads(spec).graph.input_shape
    x = torch.randn(2, c, h, w, generator=torch.Generator().manual_seed(0))
    want = outputs(src, x)
    results = {}
    for how, weights in four_ways(foreign(src, names), tmp_path).items():
        m = cnndsl.loads(spec).to_torch(seed=2, logits=True, weights=weights, **options)
        results[how] = (float((outputs(m, x) - want).abs().max()), m.cnndsl_weights)
    return results


@pytest.mark.parametrize("case", [REPVGG, RESNETD, MOBILEONE, DLA], ids=["repvgg", "resnetd", "mobileone", "dla"])
def test_foreign_names_load_alike_in_any_key_order(case, tmp_path):
    results = load_all_ways(case, tmp_path)
    for how, (diff, report) in results.items():
        assert diff < 1e-5, f"{how}: loaded, but the outputs differ by {diff:.3g}"
        assert report["source"] == "mapped" and report["missing"] == report["unexpected"] == []
        assert set(report["matched_by"].values()) <= RULES
        assert sorted(report["matched_by"]) == sorted({k.rpartition(".")[0] for k in report["mapping"]})
    first = results["registration order"][1]
    assert all(r[1]["mapping"] == first["mapping"] and r[1]["matched_by"] == first["matched_by"]
               for r in results.values())


def test_the_report_says_how_each_module_was_matched(tmp_path):
    by = load_all_ways(DLA, tmp_path)["sorted .safetensors"][1]["matched_by"]
    # the projection's BN (our level2.t1.bn1, whose name is the main path's bn1's) follows its conv
    assert by["level2.project.1"] == "structure" and by["level2.tree1.bn1"] == "structure"
    assert by["level2.project.0"] == "shape" and by["level2.tree1.conv2"] == "position"


def test_interchangeable_modules_are_refused_naming_them(tmp_path):
    spec, names = REPVGG_IDENTITY_FIRST
    sd = foreign(randomised_source(spec), names)
    for how, weights in four_ways(sd, tmp_path).items():
        with pytest.raises(cnndsl.CnnError) as e:
            cnndsl.loads(spec).to_torch(weights=weights)
        msg = str(e.value)
        assert "ambiguous" in msg and "r1.bn1" in msg, how
        assert all(n in msg for n in ("stages.0.0.identity", "stages.0.0.conv_kxk.bn", "stages.0.0.conv_1x1.bn")), how
        assert "mapping=" in e.value.hint and "label" in e.value.hint
        with pytest.raises(cnndsl.CnnError, match="ambiguous"):  # strict=False is no way round it
            cnndsl.loads(spec).to_torch(weights=weights, weights_strict=False)


# Modules named just `conv` under different parents: their `layer.conv` is our `layer.conv` (the very
# path), though our `layer_c.conv`, which runs first, shares a word with it and none with `layer_b`
# (a third of their keys are ours: mapped, not loaded by name)
BARE_CONVS = ("""input 8x8x4
layer_c: (conv: CONV(4, 3, p=1)) - RELU - layer: (conv: CONV(4, 3, p=1)) - GAP - fc: FC(5)
""", {"layer_c.conv": "layer_b.conv", "layer.conv": "layer.conv", "fc": "head"})


def test_bare_conv_names_go_by_their_parents_or_are_refused(tmp_path):
    for how, (diff, report) in load_all_ways(BARE_CONVS, tmp_path).items():
        assert diff < 1e-5, f"{how}: loaded, but the outputs differ by {diff:.3g}"
        assert report["mapping"]["layer.conv.weight"] == "layer.conv.weight"
        assert report["mapping"]["layer_b.conv.weight"] == "layer_c.conv.weight"
        assert report["matched_by"]["layer_b.conv"] == "name"
    # parents that tell nothing (ours `a`, `b`; theirs `x`, `y`): refused, naming both candidates
    spec = BARE_CONVS[0].replace("layer_c:", "a:").replace("layer:", "b:")
    sd = foreign(randomised_source(spec), {"a.conv": "y.conv", "b.conv": "x.conv", "fc": "head"})
    for how, weights in four_ways(sd, tmp_path).items():
        with pytest.raises(cnndsl.CnnError) as e:
            cnndsl.loads(spec).to_torch(weights=weights)
        assert "ambiguous" in e.value.message and "x.conv, y.conv" in e.value.message, how
        assert "our a.conv" in e.value.message and "mapping=" in e.value.hint, how


def test_an_explicit_mapping_settles_it(tmp_path):
    explicit = {"stages.0.0.identity": "r1.bn1", "stages.0.1.identity": "r2.bn1"}
    results = load_all_ways(REPVGG_IDENTITY_FIRST, tmp_path, weights_mapping=explicit)
    for how, (diff, report) in results.items():
        assert diff < 1e-5, f"{how}: outputs differ by {diff:.3g}"
        assert report["matched_by"]["stages.0.0.identity"] == "explicit"
    # a prefix places the modules under it by relative path: here their names are not ours
    spec, names = REPVGG_IDENTITY_FIRST
    src = randomised_source(spec)
    with pytest.raises(cnndsl.CnnError, match="cannot go to r1.conv_1x1.bn: r1.conv_1x1.bn is not a module here"):
        cnndsl.loads(spec).to_torch(weights=foreign(src, names), weights_mapping={"stages.0.0": "r1"})
    with pytest.raises(cnndsl.CnnError, match="no module 'stages.9'"):
        cnndsl.loads(spec).to_torch(weights=foreign(src, names), weights_mapping={"stages.9": "r1"})
    with pytest.raises(cnndsl.CnnError, match="two of the checkpoint's modules go to r1.bn1"):
        cnndsl.loads(spec).to_torch(weights=foreign(src, names), weights_mapping={
            "stages.0.0.identity": "r1.bn1", "stages.0.0.conv_kxk.bn": "r1.bn1"})
    with pytest.raises(cnndsl.CnnError, match="cannot go to r1.conv1"):
        cnndsl.loads(spec).to_torch(weights=foreign(src, names), weights_mapping={"stages.0.0.identity": "r1.conv1"})


def test_load_into_and_onnx_take_the_mapping(tmp_path):
    pytest.importorskip("onnx")
    spec, names = REPVGG_IDENTITY_FIRST
    src = randomised_source(spec)
    sd = foreign(src, names)
    explicit = {"stages.0.0.identity": "r1.bn1", "stages.0.1.identity": "r2.bn1"}
    net = cnndsl.loads(spec)
    m = net.to_torch(seed=2)
    report = W.load_into(m, sd, mapping=explicit)
    x = torch.randn(1, 3, 12, 12)
    assert torch.allclose(outputs(m, x), outputs(src, x), atol=1e-5, rtol=0)
    model = net.to_onnx(weights=sd, weights_mapping=explicit)
    props = {p.key: json.loads(p.value) for p in model.metadata_props if p.key == "cnndsl.weights"}
    assert props["cnndsl.weights"]["mapping"] == {k: v for k, v in report["mapping"].items()
                                                  if not k.endswith("num_batches_tracked")}


# ---- the twins: torchvision's and timm's recorded state_dicts, keys in other orders -----------------
REFERENCE = json.load(open(os.path.join(ROOT, "tests", "reference", "torchvision.json")))["nets"]
TWINS = sorted(n for n in REFERENCE if os.path.exists(os.path.join(ROOT, "nets", f"{n}.net")))
FEW = ["resnet50", "vgg16_bn", "mobilenet_v3_small", "googlenet", "shufflenet_v2_x0_5", "regnet_y_400mf",
       "convnext_tiny", "efficientnet_b0", "inception_v3", "squeezenet1_1"]


def orders(keys):
    """The keys in registration order, sorted (a .safetensors file), reversed and shuffled."""
    shuffled = list(keys)
    random.Random(0).shuffle(shuffled)
    return {"sorted": sorted(keys), "reversed": list(reversed(keys)), "shuffled": shuffled}


@pytest.mark.parametrize("name", TWINS if os.environ.get("CNNDSL_FULL_ZOO") else [n for n in FEW if n in TWINS])
def test_torchvision_twins_map_alike_in_any_key_order(name):
    net = cnndsl.load(os.path.join(ROOT, "nets", f"{name}.net"))
    module = net.to_torch(device="meta")
    theirs = {k: torch.empty(s, device="meta") for k, s in REFERENCE[name]["state_dict"]}
    want = W.map_state_dict(theirs, module.state_dict(), layouts=module.cnndsl_layouts)
    for how, keys in orders(list(theirs)).items():
        got = W.map_state_dict({k: theirs[k] for k in keys}, module.state_dict(), layouts=module.cnndsl_layouts)
        assert got == want, f"{name}, keys {how}: {sum(got[k] != want[k] for k in want)} tensors elsewhere"
        _, report = W.resolve({k: theirs[k] for k in keys}, module.state_dict(), layouts=module.cnndsl_layouts,
                              feeds=module.cnndsl_feeds)
        assert report["mapping"] == want or report["source"] == "cnndsl", (name, how)


def test_a_torchvision_twin_loads_alike_from_every_file(tmp_path):
    """shufflenet_v2_x0_5's tensors under torchvision's names (the verified mapping) load to the same
    outputs from a dict, a shuffled dict, a sorted .safetensors and a .pt."""
    name = "shufflenet_v2_x0_5"
    if name not in TWINS:
        pytest.skip(f"no {name}")
    net = cnndsl.load(os.path.join(ROOT, "nets", f"{name}.net"))
    src = randomised_source(net)
    theirs_shapes = {k: tuple(s) for k, s in REFERENCE[name]["state_dict"]}
    mapping = W.map_state_dict(theirs_shapes, src.state_dict(), layouts=src.cnndsl_layouts)
    sd = {k: src.state_dict()[mapping[k]].clone() for k in theirs_shapes}
    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    want = outputs(src, x)
    for how, weights in four_ways(sd, tmp_path).items():
        m = net.to_torch(seed=2, weights=weights)
        assert float((outputs(m, x) - want).abs().max()) < 1e-5, how


def test_timm_twins_map_alike_in_any_key_order():
    sys.path.insert(0, os.path.dirname(__file__))
    from test_timm_twins import OUR_KEY, REFERENCE as TIMM, net, state_dict_shapes
    for name in ("dpn92", "se_resnet50"):
        keys = [k for k, _ in TIMM[name]["state_dict"]]
        shapes = dict((k, tuple(s)) for k, s in TIMM[name]["state_dict"])
        for how, order in orders(keys).items():
            mapping = W.map_state_dict({k: shapes[k] for k in order}, state_dict_shapes(name),
                                       feeds=W.module_feeds(net(name).graph))
            assert mapping == {k: OUR_KEY[name](k) for k in keys}, (name, how)


def test_ambiguity_names_the_rules_in_the_error():
    """A CnnError that says what was tried, shown by the CLI without a traceback."""
    ours = {"a.weight": (4,), "a.bias": (4,), "b.weight": (4,), "b.bias": (4,)}
    theirs = {"x.weight": (4,), "x.bias": (4,), "y.weight": (4,), "y.bias": (4,)}
    with pytest.raises(cnndsl.CnnError) as e:
        W.map_state_dict(theirs, ours)
    assert re.search(r"cannot tell which of the checkpoint's modules x, y is our a", str(e.value))
    assert W.map_state_dict(theirs, ours, mapping={"x": "b"}) == {
        "x.weight": "b.weight", "x.bias": "b.bias", "y.weight": "a.weight", "y.bias": "a.bias"}


def test_cli_export_refuses_then_takes_a_weights_map(tmp_path, capsys):
    pytest.importorskip("onnx")
    from cnndsl.cli import main
    spec, names = REPVGG_IDENTITY_FIRST
    (tmp_path / "rep.net").write_text(spec)
    torch.save(foreign(randomised_source(spec), names), tmp_path / "foreign.pt")
    args = ["export", str(tmp_path / "rep.net"), "-o", str(tmp_path / "rep.onnx"), "--weights", str(tmp_path / "foreign.pt")]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "ambiguous foreign weights" in err and "stages.0.0.identity" in err and "Traceback" not in err
    (tmp_path / "map.json").write_text(json.dumps({"stages.0.0.identity": "r1.bn1", "stages.0.1.identity": "r2.bn1"}))
    assert main(args + ["--weights-map", str(tmp_path / "map.json")]) == 0
    err = capsys.readouterr().err
    assert "stages.0.0.identity -> r1.bn1 (by explicit)" in err and "stages.0.0.conv_kxk.bn -> r1.bn2 (by" in err
    (tmp_path / "bad.json").write_text("[1]")
    assert main(args + ["--weights-map", str(tmp_path / "bad.json")]) != 0
    assert "must be a JSON object" in capsys.readouterr().err
