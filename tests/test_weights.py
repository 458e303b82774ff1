"""Checkpoints: safe formats, atomic writes, and the torchvision key mapping (checked offline
against the reference state_dicts, and against what tools/torchvision_parity.py verified)."""
import json
import os
import pickle

import pytest

torch = pytest.importorskip("torch")

import cnndsl  # noqa: E402
from cnndsl import weights as W  # noqa: E402
from specgen import sibling_params  # noqa: E402

ROOT = os.path.join(os.path.dirname(__file__), "..")
REFERENCE = json.load(open(os.path.join(ROOT, "tests", "reference", "torchvision.json")))["nets"]
PARITY_PATH = os.path.join(ROOT, "tests", "reference", "torch_parity.json")
PARITY = json.load(open(PARITY_PATH))["nets"] if os.path.exists(PARITY_PATH) else {}
ZOO = sorted(n for n in REFERENCE if os.path.exists(os.path.join(ROOT, "nets", f"{n}.net")))
SPEC = "input 8x8x3\nCONV(4, 3, p=1, bias=false) - BN - RELU - { ID + CONV(4, 1) } - GAP - FC(5)"


def outputs(m, x):
    with torch.no_grad():
        return m.eval()(x)


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_round_trip(tmp_path, suffix):
    net = cnndsl.loads(SPEC)
    a, b = net.to_torch(seed=0), net.to_torch(seed=1)
    a.train()(torch.randn(4, 3, 8, 8))  # running statistics are saved too
    path = tmp_path / f"ckpt{suffix}"
    W.save(a, path)
    assert os.listdir(tmp_path) == [path.name]  # written atomically: no temporary left
    assert W.load_into(b, path)["source"] == "cnndsl"
    x = torch.randn(2, 3, 8, 8)
    assert torch.equal(outputs(a, x), outputs(b, x))


def test_to_torch_weights_option(tmp_path):
    net = cnndsl.loads(SPEC)
    m = net.to_torch(seed=0)
    W.save(m, tmp_path / "m.safetensors")
    again = net.to_torch(weights=tmp_path / "m.safetensors")
    x = torch.randn(2, 3, 8, 8)
    assert torch.equal(outputs(m, x), outputs(again, x))


def test_checkpoint_loads_into_the_generated_source(tmp_path):
    net = cnndsl.loads(SPEC)
    m = net.to_torch(seed=0)
    W.save(m, tmp_path / "m.safetensors")
    ns = {}
    exec(net.torch_source(class_name="Small"), ns)
    g = ns["Small"]()
    W.load_into(g, tmp_path / "m.safetensors")
    x = torch.randn(2, 3, 8, 8)
    assert torch.equal(outputs(m, x), outputs(g, x))


class _Evil:
    def __reduce__(self):
        return (os.mkdir, (self.target,))


def test_pickles_are_never_executed(tmp_path):
    evil = _Evil()
    evil.target = str(tmp_path / "pwned")
    path = tmp_path / "evil.pt"
    path.write_bytes(pickle.dumps({"conv1.weight": evil}))
    with pytest.raises(cnndsl.CnnError, match="weights_only"):
        W.load(path)
    assert not os.path.exists(evil.target)


def test_shape_mismatch_is_a_clear_error(tmp_path):
    small = cnndsl.loads(SPEC).to_torch()
    other = cnndsl.loads(SPEC.replace("CONV(4, 3", "CONV(4, 5")).to_torch()
    with pytest.raises(cnndsl.CnnError, match="conv1.weight: checkpoint 4x3x5x5, here 4x3x3x3"):
        W.load_into(small, other.state_dict())


def test_unreadable_files(tmp_path):
    with pytest.raises(cnndsl.CnnError, match="cannot read"):
        W.load(tmp_path / "missing.safetensors")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a checkpoint at all")
    with pytest.raises(cnndsl.CnnError):
        W.load(junk)


def twin_state_dict(name):
    return {k: torch.empty(s, device="meta") for k, s in REFERENCE[name]["state_dict"]}


@pytest.mark.parametrize("name", sibling_params(ZOO))
def test_torchvision_mapping_offline(name):
    """Every twin tensor maps to one of ours with its shape, or in a layout its kind names (ConvNeXt's
    nn.Linear weights, its CNBlock's bare layer_scale), and the mapping is the one verified (a family's
    other nets under CNNDSL_FULL_ZOO=1; tests/test_zoo.py checks their state_dict order by default)."""
    net = cnndsl.load(os.path.join(ROOT, "nets", f"{name}.net"))
    ours = net.to_torch(device="meta").state_dict()
    theirs = twin_state_dict(name)
    layouts = W.foreign_layouts(net.graph.tensors())
    mapping = W.map_state_dict(theirs, ours, layouts=layouts)
    assert sorted(mapping.values()) == sorted(ours) and sorted(mapping) == sorted(theirs)
    for k, v in mapping.items():
        assert tuple(theirs[k].shape) in {tuple(ours[v].shape)} | {f.shape for f in layouts.get(v, ())}, k
    if name in PARITY:
        assert W.mapping_digest(mapping) == PARITY[name]["mapping_digest"]
        for theirs_key, ours_key in PARITY[name]["mapping_examples"].items():
            assert mapping[theirs_key] == ours_key


# ---- foreign layouts (kinds.Foreign): a twin that writes ConvNeXt's block in NHWC -------------------
NHWC_SPEC = ("input 16x16x3\nstem: CONV(8, 4, s=4) - { ID + (CONV(8, 7, p=3, groups=8) - LAYERNORM(eps=1e-6) "
             "- CONV(32, 1) - GELU - CONV(8, 1)) - LAYERSCALE } - GAP - FC(5)")


class _Permute(torch.nn.Module):
    def __init__(self, *dims):
        super().__init__()
        self.dims = dims

    def forward(self, x):
        return x.permute(*self.dims)


class _NHWCBlock(torch.nn.Module):
    """A ConvNeXt block as torchvision's CNBlock writes it (pointwise nn.Linear over an NHWC view, a
    bare `layer_scale` (C, 1, 1)), or with timm's bare `gamma` (C,) when `flat`."""

    def __init__(self, c, flat=False):
        super().__init__()
        nn = torch.nn
        self.block = nn.Sequential(nn.Conv2d(c, c, 7, padding=3, groups=c), _Permute(0, 2, 3, 1),
                                   nn.LayerNorm(c, eps=1e-6), nn.Linear(c, 4 * c), nn.GELU(), nn.Linear(4 * c, c),
                                   _Permute(0, 3, 1, 2))
        scale = torch.rand(c) + 0.5
        if flat:
            self.gamma = nn.Parameter(scale)
        else:
            self.layer_scale = nn.Parameter(scale[:, None, None])

    def forward(self, x):
        scale = self.gamma[:, None, None] if hasattr(self, "gamma") else self.layer_scale
        return x + scale * self.block(x)


def _nhwc_twin(flat=False):
    torch.manual_seed(0)
    nn = torch.nn
    return nn.Sequential(nn.Conv2d(3, 8, 4, stride=4), _NHWCBlock(8, flat), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(8, 5)).eval()


@pytest.mark.parametrize("flat", [False, True], ids=["torchvision", "timm"])
def test_foreign_layouts_load_an_nhwc_block(flat):
    """nn.Linear weights (out, in) load into 1x1 convs, a bare block parameter into LAYERSCALE, by
    the kinds' facts (kinds.Foreign); the outputs then agree with the twin's."""
    net = cnndsl.loads(NHWC_SPEC)
    twin = _nhwc_twin(flat)
    ours = net.to_torch(seed=1, weights=twin.state_dict())
    r = ours.cnndsl_weights
    assert r["source"] == "mapped" and r["loaded"] == len(twin.state_dict()) and r["skipped"] == r["missing"] == []
    scale = "1.gamma" if flat else "1.layer_scale"
    assert r["mapping"][scale] == "layerscale1.weight" and r["mapping"]["1.block.3.weight"] == "conv2.weight"
    x = torch.randn(2, 3, 16, 16)
    assert torch.allclose(outputs(twin, x), outputs(ours, x), atol=1e-5, rtol=0)
    # the same resolution for ONNX: every initializer is the twin's number, in our layout
    onnx = pytest.importorskip("onnx")
    from onnx import numpy_helper
    model = net.to_onnx(weights=twin.state_dict())
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    for k, v in ours.state_dict().items():
        assert torch.equal(torch.from_numpy(inits[k].copy()), v), k
    assert onnx is not None


def test_foreign_layouts_in_strict_and_partial_reports():
    net = cnndsl.loads(NHWC_SPEC)
    sd = _nhwc_twin().state_dict()
    partial = {k: v for k, v in sd.items() if k != "1.layer_scale"}
    with pytest.raises(cnndsl.CnnError, match=r"ours, unmatched: layerscale1 \(weight 8x1x1\)"):
        net.to_torch(weights=partial)
    r = net.to_torch(seed=1, weights=partial, weights_strict=False).cnndsl_weights
    assert r["missing"] == ["layerscale1.weight"] and r["skipped"] == [] and r["loaded"] == len(partial)
    extra = dict(sd, **{"1.extra": torch.zeros(3)})  # a bare parameter nothing here has
    with pytest.raises(cnndsl.CnnError, match=r"theirs, unmatched: 1.extra \(3\)"):
        net.to_torch(weights=extra)
    r = net.to_torch(seed=1, weights=extra, weights_strict=False).cnndsl_weights
    assert r["unexpected"] == r["skipped"] == ["1.extra"] and r["missing"] == []
    # a Linear whose weight is no reshape of ours does not match
    wrong = dict(sd, **{"1.block.3.weight": torch.zeros(32, 4)})
    with pytest.raises(cnndsl.CnnError, match=r"ours, unmatched: conv2 \(bias 32, weight 32x8x1x1\)"):
        net.to_torch(weights=wrong)
    # without the kinds' facts (a plain state_dict of shapes) the NHWC layout is not ours
    with pytest.raises(cnndsl.CnnError, match="unmatched"):
        W.resolve(sd, net.to_torch(device="meta").state_dict())


def test_foreign_layouts_into_the_generated_source():
    net = cnndsl.loads(NHWC_SPEC)
    ns = {}
    exec(net.torch_source(class_name="Small"), ns)
    g, twin = ns["Small"](), _nhwc_twin()
    r = W.load_into(g, twin.state_dict(), net=net)
    assert r["loaded"] == len(twin.state_dict())
    x = torch.randn(2, 3, 16, 16)
    assert torch.allclose(outputs(twin, x), outputs(g, x), atol=1e-5, rtol=0)


def test_resnet_projection_maps_to_downsample():
    path = os.path.join(ROOT, "nets", "resnet50.net")
    if not os.path.exists(path):
        pytest.skip("no resnet50.net")
    ours = cnndsl.load(path).to_torch(device="meta").state_dict()
    mapping = W.map_state_dict(twin_state_dict("resnet50"), ours)
    # layer1's 3rd conv and its projection both are 64 -> 256 1x1: only the names tell them apart
    assert mapping["layer1.0.downsample.0.weight"] == "layer1.bottleneck1.downsample.conv1.weight"
    assert mapping["layer1.0.conv3.weight"] == "layer1.bottleneck1.conv3.weight"


def test_mismatch_lists_what_is_missing():
    net = cnndsl.loads(SPEC)
    # the same tensors under other module names (one module per prefix, in order)
    theirs = {}
    for k, v in net.to_torch().state_dict().items():
        prefix, _, leaf = k.rpartition(".")
        theirs[f"body.{prefix.replace('.', '_')}.{leaf}"] = v
    ours = net.to_torch()
    assert W.load_into(ours, theirs)["source"] == "mapped"
    del theirs[next(iter(theirs))]
    with pytest.raises(cnndsl.CnnError, match="ours, unmatched"):
        W.load_into(net.to_torch(), theirs)


def test_data_parallel_prefix_and_extra_heads():
    net = cnndsl.loads(SPEC)
    m = net.to_torch(seed=0)
    wrapped = {f"module.{k}": v for k, v in m.state_dict().items()}
    other = net.to_torch(seed=1)
    W.load_into(other, wrapped)
    x = torch.randn(1, 3, 8, 8)
    assert torch.equal(outputs(m, x), outputs(other, x))
    extra = dict(m.state_dict(), **{"aux1.fc.weight": torch.zeros(3, 3)})
    with pytest.raises(cnndsl.CnnError, match="aux1.fc.weight in the checkpoint has no layer here"):
        W.load_into(other, extra)
    report = W.load_into(other, extra, strict=False)
    assert report["unexpected"] == report["skipped"] == ["aux1.fc.weight"] and report["missing"] == []
    assert torch.equal(outputs(m, x), outputs(other, x))


@pytest.mark.skipif(not PARITY, reason="tools/torchvision_parity.py has not been run")
def test_recorded_parity_with_torchvision():
    """What tools/torchvision_parity.py verified (in the reference venv, with the twins' weights)."""
    for name, r in PARITY.items():  # "perturbed": the twin's layer scales drawn at random first (ConvNeXt's)
        assert r["ok"] and r["max_abs_diff"] <= 1e-5, name
        # an absolute 1e-5 on outputs of ~1e-9 (MobileNets at torchvision's init) compares nothing:
        # the tool calibrates the twins' BN layers first (tools/torchvision_parity.py, calibrate)
        assert r["output_scale"] >= 1e-3, f"{name}: outputs of {r['output_scale']:.1e}, rerun the tool"
        assert r["params"] == r["twin_params"] == r["analyzer_params"] == REFERENCE[name]["params"], name
        assert r["mapped_tensors"] == len(REFERENCE[name]["state_dict"]), name
    assert {"resnet50", "vgg16", "googlenet", "densenet121"} <= set(PARITY)


# ---- by name: one resolution for torch, ONNX and the CLI ------------------------------------------------
HEAD = "input 8x8x3\nCONV(4, 3, p=1, bias=false) - BN - RELU - GAP - fc: FC({n})"


def write_spec(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return cnndsl.load(path)


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_a_renamed_layer_is_an_error_that_names_it(tmp_path, suffix):
    old = write_spec(tmp_path, "old.net", HEAD.format(n=5))
    ck = tmp_path / f"old{suffix}"
    W.save(old.to_torch(seed=0), ck)
    renamed = write_spec(tmp_path, "new.net", HEAD.format(n=5).replace("fc: FC", "head: FC"))
    with pytest.raises(cnndsl.CnnError) as e:
        renamed.to_torch(weights=ck)
    msg = str(e.value)
    assert "fc.weight, fc.bias in the checkpoint have no layer here" in msg
    assert "head.weight, head.bias here have none in the checkpoint" in msg
    assert "strict=False" in e.value.hint
    if suffix == ".safetensors":  # the metadata knows the spec: the error says it is another one
        assert "saved from another spec (old, sha256" in msg and "this is new" in msg
    else:
        assert "another spec" not in msg


def test_a_partial_load_moves_everything_but_the_resized_head(tmp_path):
    old = write_spec(tmp_path, "old.net", HEAD.format(n=5))
    a = old.to_torch(seed=0)
    a.train()(torch.randn(4, 3, 8, 8))
    ck = tmp_path / "old.safetensors"
    W.save(a, ck)
    new = write_spec(tmp_path, "new.net", HEAD.format(n=3))
    with pytest.raises(cnndsl.CnnError, match="fc.weight: checkpoint 5x4, here 3x4"):
        new.to_torch(weights=ck)
    fresh = new.to_torch(seed=1)
    b = new.to_torch(seed=1)
    r = W.load_into(b, ck, strict=False)
    assert r["source"] == "cnndsl" and r["resized"] == ["fc.weight", "fc.bias"] == r["skipped"]
    assert r["shapes"]["fc.weight"] == {"checkpoint": [5, 4], "here": [3, 4]}
    assert r["missing"] == [] and r["unexpected"] == [] and r["same_spec"] is False
    assert r["loaded"] == len(a.state_dict()) - 2 == len(r["mapping"])
    json.dumps(r)  # a plain dict
    ours, theirs, before = b.state_dict(), a.state_dict(), fresh.state_dict()
    for k in ours:
        assert torch.equal(ours[k], before[k] if k.startswith("fc.") else theirs[k]), k
    c = new.to_torch(seed=1, weights=ck, weights_strict=False)
    assert c.cnndsl_weights == r and all(torch.equal(v, ours[k]) for k, v in c.state_dict().items())


def test_resnet18_head_transfer(tmp_path):
    """The issue's case: a 1000-class checkpoint into a 5-class resnet18 loads all but fc."""
    src = open(os.path.join(ROOT, "nets", "resnet18.net")).read()
    assert "fc: FC(1000)" in src
    big = cnndsl.load(os.path.join(ROOT, "nets", "resnet18.net")).to_torch(seed=0)
    ck = tmp_path / "r18.safetensors"
    W.save(big, ck)
    small = write_spec(tmp_path, "r18_5.net", src.replace("fc: FC(1000)", "fc: FC(5)")).to_torch(seed=1)
    head = small.fc.weight.clone()
    r = W.load_into(small, ck, strict=False)
    assert r["resized"] == ["fc.weight", "fc.bias"] and r["loaded"] == len(big.state_dict()) - 2
    assert torch.equal(small.fc.weight, head) and torch.equal(small.conv1.weight, big.conv1.weight)
    # the same file as a torchvision twin's state_dict (numeric keys): mapped, and the head reported
    theirs = twin_state_dict("resnet18")
    ours = small.state_dict()
    _, m = W.resolve(theirs, {k: tuple(v.shape) for k, v in ours.items()}, strict=False)
    assert m["source"] == "mapped" and m["resized"] == ["fc.weight", "fc.bias"] and m["missing"] == []
    assert m["loaded"] == len(theirs) - 2
    with pytest.raises(cnndsl.CnnError, match="ours, unmatched: fc"):
        W.resolve(theirs, ours)


def test_metadata_round_trip(tmp_path):
    (tmp_path / "lib.net").write_text("let W = 4\n")
    spec = tmp_path / "tiny.net"
    spec.write_text('include "lib.net"\nlet N = 2\ninput 8x8x3\n(CONV(W, 3, p=1) - RELU) * N - GAP - FC(3)\n')
    net = cnndsl.load(spec, bindings={"N": "3"})
    m = net.to_torch(seed=0)
    assert m.cnndsl_meta == net.spec_info
    W.save(m, tmp_path / "a.safetensors")
    sd, meta = W.read(tmp_path / "a.safetensors")
    assert meta["format"] == "cnndsl.checkpoint/1" and meta["cnndsl_version"] == cnndsl.__version__
    assert meta["spec_sha256"] == net.spec_hash and len(net.spec_hash) == 64
    assert json.loads(meta["bindings"]) == {"N": "3"} and meta["input"] == "8x8x3"
    assert meta["spec_name"] == "tiny" and meta["spec_path"] == str(spec)
    assert all(torch.equal(sd[k], v) for k, v in m.state_dict().items())
    assert W.load_into(net.to_torch(seed=1), tmp_path / "a.safetensors")["same_spec"] is True
    # the hash covers the includes, and not the bindings (they are recorded apart)
    assert cnndsl.load(spec).spec_hash == net.spec_hash
    (tmp_path / "lib.net").write_text("let W = 4  # changed\n")
    assert cnndsl.load(spec, bindings={"N": "3"}).spec_hash != net.spec_hash
    # explicit metadata, from a Net or a dict; a .pt has none
    W.save(m.state_dict(), tmp_path / "b.safetensors", net=net)
    assert W.read(tmp_path / "b.safetensors")[1] == meta
    W.save(m.state_dict(), tmp_path / "c.safetensors", meta={"note": "x"})
    assert W.read(tmp_path / "c.safetensors")[1] == {"format": "cnndsl.checkpoint/1", "note": "x"}
    W.save(m, tmp_path / "d.pt")
    assert W.read(tmp_path / "d.pt")[1] == {}


def _outcome(call):
    try:
        call()
        return "ok"
    except cnndsl.CnnError as e:
        return e.render()


def test_torch_and_onnx_accept_and_refuse_the_same_files(tmp_path):
    onnx = pytest.importorskip("onnx")
    from onnx import numpy_helper
    base = write_spec(tmp_path, "base.net", HEAD.format(n=5))
    ck = tmp_path / "base.safetensors"
    a = base.to_torch(seed=0)
    W.save(a, ck)
    W.save(a, tmp_path / "base.pt")
    sd = a.state_dict()
    variants = {
        "same": HEAD.format(n=5), "renamed": HEAD.format(n=5).replace("fc: FC", "head: FC"),
        "resized": HEAD.format(n=3), "wider": HEAD.format(n=5).replace("CONV(4", "CONV(6"),
    }
    sources = {"safetensors": ck, "pt": tmp_path / "base.pt", "module": a,
               "foreign": {f"body.{k.replace('.', '_', k.count('.') - 1)}": v for k, v in sd.items()}}
    accepted = {}
    for vname, text in variants.items():
        net = write_spec(tmp_path, f"{vname}.net", text)
        for sname, src in sources.items():
            for strict in (True, False):
                t = _outcome(lambda: net.to_torch(seed=2, weights=src, weights_strict=strict))
                o = _outcome(lambda: net.to_onnx(weights=src, weights_strict=strict))
                assert t == o, (vname, sname, strict)
                accepted[vname, sname, strict] = t == "ok"
                if t != "ok":
                    continue
                m = net.to_torch(seed=2, weights=src, weights_strict=strict)
                model = net.to_onnx(weights=src, weights_strict=strict)
                report = json.loads({p.key: p.value for p in model.metadata_props}["cnndsl.weights"])
                for field in ("source", "skipped", "resized", "missing", "unexpected", "same_spec"):
                    assert report[field] == m.cnndsl_weights[field], (vname, sname, strict, field)
                ours = m.state_dict()
                for init in model.graph.initializer:  # what was loaded is the checkpoint's, to the bit
                    if init.name in report["mapping"].values():
                        assert torch.equal(torch.from_numpy(numpy_helper.to_array(init).copy()), ours[init.name])
    # loosely, everything loads; strictly, only the same spec does, and the foreign dict into the
    # renamed spec (foreign keys are mapped by structure, which a renamed label does not change)
    refused = {k for k, ok in accepted.items() if not ok}
    assert refused == {(v, s, True) for v in ("renamed", "resized", "wider") for s in sources} - {
        ("renamed", "foreign", True)}
    renamed = write_spec(tmp_path, "renamed.net", variants["renamed"])
    assert "fc.weight, fc.bias in the checkpoint" in _outcome(lambda: renamed.to_onnx(weights=ck))


def test_onnx_partial_load_runs_like_torch(tmp_path):
    pytest.importorskip("onnxruntime")
    from test_onnx import session
    import numpy as np
    base = write_spec(tmp_path, "base.net", HEAD.format(n=5))
    ck = tmp_path / "base.safetensors"
    W.save(base.to_torch(seed=0), ck)
    new = write_spec(tmp_path, "new.net", HEAD.format(n=3))
    m = new.to_torch(seed=1, weights=ck, weights_strict=False).eval()
    model = new.to_onnx(weights=m)  # the torch module, now complete, exports by name
    x = np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype(np.float32)
    sess = session(model)
    want = outputs(m, torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(sess.run(None, {"input": x})[0], want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", [n for n in ("resnet50", "googlenet", "vgg16", "densenet121", "convnext_tiny")
                                  if n in ZOO])
def test_onnx_resolves_torchvision_keys_as_torch_does(name):
    from cnndsl.backends.onnx_graph import param_tensors
    net = cnndsl.load(os.path.join(ROOT, "nets", f"{name}.net"))
    theirs = twin_state_dict(name)
    module = net.to_torch(device="meta")
    ours, layouts = module.state_dict(), module.cnndsl_layouts
    _, t = W.resolve(theirs, ours, layouts=layouts)
    facts = param_tensors(net.graph)
    _, o = W.resolve(theirs, {k: f.shape for k, f in facts.items()}, layouts=W.foreign_layouts(facts))
    assert t["source"] == o["source"]
    assert o["mapping"] == {k: v for k, v in t["mapping"].items() if not k.endswith("num_batches_tracked")}
    assert t["mapping"] == W.map_state_dict(theirs, ours, layouts=layouts)


def test_cli_export_prints_what_it_loaded(tmp_path, capsys):
    pytest.importorskip("onnx")
    from cnndsl.cli import main
    write_spec(tmp_path, "base.net", HEAD.format(n=5))
    W.save(cnndsl.load(tmp_path / "base.net").to_torch(seed=0), tmp_path / "base.safetensors")
    (tmp_path / "new.net").write_text(HEAD.format(n=3))
    (tmp_path / "ren.net").write_text(HEAD.format(n=5).replace("fc: FC", "head: FC"))
    args = ["export", "-o", str(tmp_path / "o.onnx"), "--weights", str(tmp_path / "base.safetensors")]
    assert main(["export", str(tmp_path / "ren.net")] + args[1:]) == 1
    err = capsys.readouterr().err
    assert "fc.weight, fc.bias in the checkpoint have no layer here" in err
    assert main(["export", str(tmp_path / "new.net")] + args[1:]) == 1
    capsys.readouterr()
    assert main(["export", str(tmp_path / "new.net")] + args[1:] + ["--partial-weights"]) == 0
    err = capsys.readouterr().err
    assert "weights: 5 tensors from" in err and "by name" in err
    assert "resized, not loaded: fc.weight (checkpoint 5x4, here 3x4)" in err
    # a foreign state_dict: the module mapping is printed
    sd = cnndsl.load(tmp_path / "base.net").to_torch(seed=0).state_dict()
    torch.save({f"body.{k}".replace("conv1.", "c1.").replace("bn1.", "b1.").replace("fc.", "f."): v
                for k, v in sd.items()}, tmp_path / "foreign.pt")
    assert main(["export", str(tmp_path / "base.net"), "-o", str(tmp_path / "f.onnx"),
                 "--weights", str(tmp_path / "foreign.pt")]) == 0
    err = capsys.readouterr().err
    assert "mapped module by module" in err and "body.c1 -> conv1" in err and "body.f -> fc" in err


@pytest.mark.skipif(not PARITY, reason="tools/torchvision_parity.py has not been run")
def test_resolution_reproduces_the_verified_mappings():
    """load_into's resolution (by name for densenet's cnndsl-like keys, mapped otherwise) gives the
    mappings tools/torchvision_parity.py verified against torchvision's outputs (a family's variants
    under CNNDSL_FULL_ZOO=1, as in test_torchvision_mapping_offline)."""
    from specgen import VARIANTS
    full = os.environ.get("CNNDSL_FULL_ZOO")
    for name, r in PARITY.items():
        if name in VARIANTS and not full:
            continue
        ours = cnndsl.load(os.path.join(ROOT, "nets", f"{name}.net")).to_torch(device="meta")
        _, report = W.resolve(twin_state_dict(name), ours.state_dict(), layouts=ours.cnndsl_layouts)
        assert W.mapping_digest(report["mapping"]) == r["mapping_digest"], name
        assert report["loaded"] == r["mapped_tensors"] and report["skipped"] == report["missing"] == [], name


def test_a_training_checkpoint_loads_as_weights(tmp_path):
    """`cnndsl train`'s checkpoint.safetensors also holds `train/...` optimizer state: loading it as
    weights (export --weights, to_torch(weights=)) takes the model's tensors and ignores that state."""
    net = cnndsl.loads("input 8x8x3\nCONV(4, 3) - BN - RELU - FC(3)")
    m = net.to_torch(seed=0)
    sd = {k: v.clone() for k, v in m.state_dict().items()}
    sd["train/optimizer/state/0/momentum_buffer"] = torch.zeros(3)
    path = tmp_path / "checkpoint.safetensors"
    W.save(sd, path, net=net)
    m2 = net.to_torch(seed=1, weights=str(path))
    assert all(torch.equal(m.state_dict()[k], m2.state_dict()[k]) for k in m.state_dict())
    net.to_onnx(weights=str(path))
