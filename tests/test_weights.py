"""Checkpoints: safe formats, atomic writes, and the torchvision key mapping (checked offline
against the reference state_dicts, and against what tools/torchvision_parity.py verified)."""
import json
import os
import pickle

import pytest

torch = pytest.importorskip("torch")

import cnndsl  # noqa: E402
from cnndsl import weights as W  # noqa: E402

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
    with pytest.raises(cnndsl.CnnError, match="conv1.weight: file"):
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


@pytest.mark.parametrize("name", ZOO)
def test_torchvision_mapping_offline(name):
    """Every twin tensor maps to one of ours with its shape, and the mapping is the one verified."""
    net = cnndsl.load(os.path.join(ROOT, "nets", f"{name}.net"))
    ours = net.to_torch(device="meta").state_dict()
    theirs = twin_state_dict(name)
    mapping = W.map_state_dict(theirs, ours)
    assert sorted(mapping.values()) == sorted(ours) and sorted(mapping) == sorted(theirs)
    assert all(tuple(theirs[k].shape) == tuple(ours[v].shape) for k, v in mapping.items())
    if name in PARITY:
        assert W.mapping_digest(mapping) == PARITY[name]["mapping_digest"]
        for theirs_key, ours_key in PARITY[name]["mapping_examples"].items():
            assert mapping[theirs_key] == ours_key


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
    with pytest.raises(cnndsl.CnnError, match="theirs, unmatched: aux1.fc"):
        W.load_into(other, extra)
    W.load_into(other, extra, strict=False)


@pytest.mark.skipif(not PARITY, reason="tools/torchvision_parity.py has not been run")
def test_recorded_parity_with_torchvision():
    """What tools/torchvision_parity.py verified (in the reference venv, with the twins' weights)."""
    for name, r in PARITY.items():
        assert r["ok"] and r["max_abs_diff"] <= 1e-5, name
        assert r["params"] == r["twin_params"] == r["analyzer_params"] == REFERENCE[name]["params"], name
        assert r["mapped_tensors"] == len(REFERENCE[name]["state_dict"]), name
    assert {"resnet50", "vgg16", "googlenet", "densenet121"} <= set(PARITY)
