"""The ONNX backend against reality: ONNX's full checker and shape inference, and onnxruntime
against the PyTorch module holding the same weights (zoo nets and random specs); `cnndsl export`
and `cnndsl run` on bad input."""
from __future__ import annotations

import glob
import os
import subprocess
import sys

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper

import cnndsl
from cnndsl.backends import onnx_graph
from cnndsl.cli import main
from cnndsl.kinds import KINDS

from specgen import SIBLINGS, VARIANTS, random_specs  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NETS = sorted(glob.glob(os.path.join(ROOT, "nets", "*.net")))
TOL = 1e-4  # max abs diff relative to the output's scale, fp32


# ---- helpers ---------------------------------------------------------------------------------
def small(path):
    """The zoo net at 64x64 where it accepts that (fast), else at its own input size."""
    declared = cnndsl.load(path)
    shape = declared.graph.input_shape
    for side in (64, 96):  # Inception v3 needs 75x75 at least
        if len(shape) == 3 and shape[0] > side:
            try:
                return cnndsl.load(path, input=f"{side}x{side}x{shape[2]}")
            except cnndsl.CnnError:
                pass
    return declared


def torch_module(net, seed=0):
    """net.to_torch() with every parameter and BN statistic randomised, so that BN is not an identity."""
    m = net.to_torch(seed=seed).eval()
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for key, t in m.state_dict().items():
            if key.endswith("running_var"):
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)
            elif key.endswith("running_mean") or (key.endswith(".bias") and t.dim() == 1):
                t.copy_(torch.randn(t.shape, generator=g) * 0.1)
            elif key.endswith(".weight") and t.dim() == 1:  # BN scale
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)
    return m


def nchw(shape):
    return [shape[2], shape[0], shape[1]] if len(shape) == 3 else list(shape)


def session(model):
    """An onnxruntime CPU session of a ModelProto, its bytes or a path, on one thread: onnxruntime's
    default pool (a thread per core) spin-waits, and took 15% more CPU on this file for the same outputs."""
    data = model if isinstance(model, (bytes, str)) else model.SerializeToString()
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    return ort.InferenceSession(data, sess_options=opts, providers=["CPUExecutionProvider"])


def relative_diff(net, model, module, batch=2, seed=0):
    x = np.random.default_rng(seed).standard_normal((batch, *nchw(net.graph.input_shape)), dtype=np.float32)
    with torch.no_grad():
        yt = module(torch.from_numpy(x)).numpy()
    yo = session(model).run(None, {"input": x})[0]
    assert yt.shape == yo.shape
    return float(np.abs(yt - yo).max() / max(1e-6, float(np.abs(yt).max())))


def check_shapes(net, opset=None):
    """ONNX's own shape inference gives every layer's tensor the analyzer's shape (HWC -> NCHW)."""
    skeleton = onnx_graph.structure(net, opset=opset)  # the same nodes; weights as typed inputs
    inferred = onnx.shape_inference.infer_shapes(skeleton, check_type=True, strict_mode=True)
    found = {}
    for v in list(inferred.graph.value_info) + list(inferred.graph.output):
        dims = v.type.tensor_type.shape.dim
        found[v.name] = [d.dim_param or d.dim_value for d in dims]
    for n in net.graph.nodes:
        assert n.name in found, f"no tensor named {n.name}"
        assert found[n.name] == ["N", *nchw(n.out_shape)], (n.name, found[n.name], n.out_shape)
    return skeleton


def verify(net, opset=None, tol=TOL):
    module = torch_module(net)
    model = net.to_onnx(weights=module, opset=opset)
    data = model.SerializeToString()  # once: the checker, shape inference and onnxruntime all take bytes
    onnx.checker.check_model(data, full_check=True)
    check_shapes(net, opset)
    d = relative_diff(net, data, module)
    assert d <= tol, f"onnxruntime vs torch: relative diff {d:.2e}"
    return model


# ---- the table -------------------------------------------------------------------------------
# ---- zoo and random specs against onnx and torch ---------------------------------------------
# Nets over this many parameters move gigabytes through protobuf on every check (VGG: 10-15 s
# on two shared cores); by default they get the checker and shape inference on the weightless
# structure, and the onnxruntime-vs-torch comparison with CNNDSL_FULL_ZOO=1.
HEAVY = 30_000_000
# Variants of a family whose blocks a sibling already runs through onnxruntime by default: one list
# for every per-net check (tests/specgen.py, VARIANTS); their structure and shapes are checked by default
# and their outputs with CNNDSL_FULL_ZOO=1; a family's other nets (SIBLINGS: each family keeps one, the
# representative) are checked only with CNNDSL_FULL_ZOO=1.
# DPN-92 and DPN-98 are HEAVY; their dual path block runs through onnxruntime small, in tests/test_timm_twins.py.


@pytest.mark.parametrize("path", NETS, ids=[os.path.basename(p)[:-4] for p in NETS])
def test_zoo_net_checks_infers_and_matches_torch(path):
    if os.path.basename(path)[:-4] in SIBLINGS and not os.environ.get("CNNDSL_FULL_ZOO"):
        pytest.skip("a family's other net: its representative's structure and shapes are checked by default; "
                    "CNNDSL_FULL_ZOO=1 checks it")
    net = small(path)
    onnx.checker.check_model(check_shapes(net), full_check=True)
    if net.report()["totals"]["params"] > HEAVY and not os.environ.get("CNNDSL_FULL_ZOO"):
        pytest.skip("heavy: structure and shapes checked; CNNDSL_FULL_ZOO=1 compares with torch")
    if os.path.basename(path)[:-4] in VARIANTS and not os.environ.get("CNNDSL_FULL_ZOO"):
        pytest.skip("a variant of a family checked by default: structure and shapes checked; "
                    "CNNDSL_FULL_ZOO=1 compares with torch")
    if net.report()["totals"]["param_bytes"] > onnx_graph.LARGE_MODEL:  # RegNetY-128GF: 2.6 GB of weights
        pytest.skip("weights over protobuf's 2 GiB (an in-memory ModelProto cannot hold them): structure and "
                    "shapes checked; its blocks are RegNetY-400MF's, compared with torch by default")
    model = verify(net)
    # names: initializers are the state_dict's; every layer is an ONNX node of the same name
    keys = {k for k in net.to_torch(device="meta").state_dict() if not k.endswith("num_batches_tracked")}
    assert {t.name for t in model.graph.initializer} == keys
    assert {n.name for n in net.graph.nodes} <= {n.name for n in model.graph.node}


def test_random_specs_check_infer_and_match_torch():
    """40 random specs (the first 40 of the same draw: 100 with CNNDSL_SLOW=1)."""
    worst = 0.0
    for i, (text, net) in enumerate(random_specs(100 if os.environ.get("CNNDSL_SLOW") else 40, seed=4)):
        module = torch_module(net, seed=i)
        model = net.to_onnx(weights=module)
        try:
            onnx.checker.check_model(model, full_check=True)
            check_shapes(net)
            d = relative_diff(net, model, module, seed=i)
        except Exception as e:
            raise AssertionError(f"spec {i}:\n{text}") from e
        assert d <= TOL, f"spec {i}: relative diff {d:.2e}\n{text}"
        worst = max(worst, d)
    print(f"worst relative diff {worst:.2e}")


EDGE = {
    "lrn_even": "input 6x6x8\nLRN(size=4, alpha=0.1, beta=0.75, k=2) - LRN(size=5, alpha=0.01) - LRN(size=2, alpha=1)",
    "adaptive_uneven": "input 7x9x3\nADAPTIVEAVGPOOL(2x5) - CONV(4, 1) - ADAPTIVEAVGPOOL(3x3) - ADAPTIVEAVGPOOL(1)",
    "adaptive_even": "input 8x8x3\nADAPTIVEAVGPOOL(4) - ADAPTIVEAVGPOOL(4) - ADAPTIVEAVGPOOL(2x1)",
    # PyTorch drops a last ceil-mode window that starts in the right padding, on one axis only here
    "ceil_rule_one_axis": "input 7x8x2\nAVGPOOL(2, s=3, p=1, ceil=true)",
    "ceil_rule_max": "input 7x8x2\nMAXPOOL(2, s=3, p=1, ceil=true)",
    "ceil_rule_nocount": "input 7x8x2\nAVGPOOL(2, s=3, p=1, ceil=true, count_pad=false)",
    "ceil_plain": "input 14x15x2\nMAXPOOL(3, s=2, ceil=true) - AVGPOOL(3, s=2, p=1, ceil=true)",
    "vector_head": "input 4x4x2\nFC(6) - BN - RELU6 - FC(5, bias=false) - LEAKYRELU(0.2) - DROPOUT(0.3) - SOFTMAX",
    "volume_softmax": "input 5x5x4\nCONV(6, 3, p=1, d=1) - SOFTMAX - SOFTPLUS - TANH - SIGMOID",
    "joins": "input 8x8x4\nCONV(8, 1) - { ID + CONV(8, 3, p=1) + CONV(8, 1) } - { CONV(4, 1) | MAXPOOL(3, s=1, p=1) | ID }",
    "grouped_dilated": "input 12x10x8\nCONV(8, 3, p=2, d=2, groups=8, bias=false) - CONV(16, (1,3), s=(2,1), p=(0,1), groups=2)",
    "flatten_volume": "input 3x4x5\nFLATTEN - FC(3)",
}


@pytest.mark.parametrize("opset", [13, 17, 21, 26])
@pytest.mark.parametrize("name", sorted(EDGE))
def test_edge_cases_across_opsets(name, opset):
    net = cnndsl.loads(EDGE[name], path=f"{name}.net")
    model = verify(net, opset=opset)
    assert model.opset_import[0].version == opset
    assert model.ir_version <= 13  # onnxruntime 1.31 loads at most IR 13


def test_softplus_large_inputs_and_relu6_bounds():
    net = cnndsl.loads("input 4\nRELU6 - SOFTPLUS")
    model = net.to_onnx()
    x = np.array([[-50.0, 3.0, 7.0, 60.0]], np.float32)
    y = session(model).run(None, {"input": x})[0]
    with torch.no_grad():
        yt = net.to_torch()(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(y, yt, rtol=1e-6)


# ---- export: batch, opset, weights ------------------------------------------------------------
def test_dynamic_and_fixed_batch():
    net = cnndsl.loads("input 8x8x3\nCONV(4, 3) - GAP - FC(2)")
    dims = net.to_onnx().graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param == "N" and [d.dim_value for d in dims[1:]] == [3, 8, 8]
    s = session(net.to_onnx())
    for b in (1, 5):
        assert s.run(None, {"input": np.zeros((b, 3, 8, 8), np.float32)})[0].shape == (b, 2)
    fixed = net.to_onnx(batch=3)
    assert fixed.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 3
    onnx.checker.check_model(fixed, full_check=True)


@pytest.mark.parametrize("bad", [0, 12, 99, "17", True])
def test_bad_opset_is_a_usage_error(bad):
    with pytest.raises(cnndsl.CnnError) as e:
        cnndsl.loads("input 4\nRELU").to_onnx(opset=bad)
    assert e.value.usage and "opset" in e.value.message


def test_random_weights_are_seedable_and_torch_scaled():
    net = cnndsl.loads("input 8x8x3\nCONV(4, 3) - BN - GAP - FC(2)")
    a = onnx_graph.random_weights(net.graph, seed=1)
    b = onnx_graph.random_weights(net.graph, seed=1)
    c = onnx_graph.random_weights(net.graph, seed=2)
    assert all(np.array_equal(a[k], b[k]) for k in a) and not np.array_equal(a["conv1.weight"], c["conv1.weight"])
    assert np.abs(a["conv1.weight"]).max() <= 1 / np.sqrt(27) and a["conv1.weight"].std() > 0.05
    assert (a["bn1.running_var"] == 1).all() and (a["bn1.running_mean"] == 0).all()
    sd = net.to_torch().state_dict()
    assert {k: tuple(v.shape) for k, v in sd.items() if "num_batches" not in k} == {k: v.shape for k, v in a.items()}


def test_weights_from_state_dict_numpy_safetensors_and_pt(tmp_path):
    net = cnndsl.loads("input 6x6x2\nCONV(3, 3) - BN - FC(4)")
    m = torch_module(net)
    x = np.random.default_rng(0).standard_normal((2, 2, 6, 6), dtype=np.float32)
    with torch.no_grad():
        want = m(torch.from_numpy(x)).numpy()
    sd = m.state_dict()
    from safetensors.torch import save_file
    save_file({k: v.contiguous() for k, v in sd.items()}, str(tmp_path / "w.safetensors"))
    torch.save(sd, tmp_path / "w.pt")
    for weights in (m, sd, {k: v.numpy() for k, v in sd.items()}, str(tmp_path / "w.safetensors"),
                    tmp_path / "w.pt"):
        y = session(net.to_onnx(weights=weights)).run(None, {"input": x})[0]
        np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-6)


def test_weights_that_do_not_fit_are_clear_errors(tmp_path):
    net = cnndsl.loads("input 6x6x2\nCONV(3, 3) - FC(4)")
    sd = net.to_torch().state_dict()
    with pytest.raises(cnndsl.CnnError, match="conv1.bias here has none in the checkpoint"):
        net.to_onnx(weights={k: v for k, v in sd.items() if k != "conv1.bias"})
    with pytest.raises(cnndsl.CnnError, match="extra.weight in the checkpoint has no layer here"):
        net.to_onnx(weights={**sd, "extra.weight": sd["fc1.bias"]})
    with pytest.raises(cnndsl.CnnError, match="fc1.weight: checkpoint 4x5, here 4x48"):
        net.to_onnx(weights={**sd, "fc1.weight": torch.zeros(4, 5)})
    (tmp_path / "bad.safetensors").write_bytes(b"not a checkpoint")
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    for bad in ("bad.safetensors", "bad.pt", "missing.pt"):
        with pytest.raises(cnndsl.CnnError, match="cannot read|not a safetensors file"):
            net.to_onnx(weights=str(tmp_path / bad))


def test_export_writes_atomically_and_netron_sees_spec_positions(tmp_path):
    net = cnndsl.loads("input 8x8x3\nstem: [CONV(4, 3) - RELU]\n- GAP", path="tiny.net")
    out = tmp_path / "sub" / "tiny.onnx"
    net.to_onnx(out)
    model = onnx.load(str(out))
    assert [n.name for n in model.graph.node] == ["stem.conv1", "stem.relu1", "gap1"]
    assert model.graph.node[0].doc_string == "tiny.net:2:8"
    assert model.graph.output[0].name == "gap1" and model.producer_name == "cnndsl"
    shapes = {v.name: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim] for v in model.graph.value_info}
    assert shapes["stem.conv1"] == ["N", 4, 6, 6]  # edge shapes for Netron, from ONNX's inference


def test_models_over_protobufs_limit_keep_weights_beside_them(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(onnx_graph, "LARGE_MODEL", 0)  # pretend 2 GiB is 0 bytes
    net = cnndsl.loads("input 8x8x3\nCONV(16, 3) - BN - FC(64)")
    module = torch_module(net)
    net.to_onnx(tmp_path / "big.onnx", weights=module)
    assert (tmp_path / "big.onnx.data").stat().st_size >= 4 * (16 * 27 + 576 * 64)
    onnx.checker.check_model(str(tmp_path / "big.onnx"), full_check=True)
    x = np.ones((1, 3, 8, 8), np.float32)
    s = session(str(tmp_path / "big.onnx"))
    with torch.no_grad():
        np.testing.assert_allclose(s.run(None, {"input": x})[0], module(torch.from_numpy(x)).numpy(), rtol=1e-5, atol=1e-5)
    code, out, _ = cli(capsys, "run", tmp_path / "big.onnx", "--repeat", "1")
    assert code == 0 and "output:   fc1 1x64" in out


# ---- the CLI ---------------------------------------------------------------------------------
def cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


BAD_SPEC = "input 7x7x3\nCONV(8, 3, s=3) - FC(10) - CONV(4, 3)\n"


def test_export_of_a_faulty_spec_says_what_report_says(tmp_path, capsys):
    spec = tmp_path / "bad.net"
    spec.write_text(BAD_SPEC)
    code_r, _, err_r = cli(capsys, "report", spec)
    code_e, _, err_e = cli(capsys, "export", spec, "-o", tmp_path / "bad.onnx")
    assert code_r == code_e == 1 and err_e == err_r and "error" in err_e
    assert not (tmp_path / "bad.onnx").exists()
    code_run, _, err_run = cli(capsys, "run", spec)
    assert code_run == 1 and err_run == err_r


@pytest.mark.parametrize("argv, status", [
    (["--opset", "5"], 2), (["--opset", "99"], 2), (["--batch", "0"], 2), (["--batch", "many"], 2),
    (["--weights", "nowhere.safetensors"], 2)])
def test_export_usage_errors(tmp_path, capsys, argv, status):
    spec = tmp_path / "ok.net"
    spec.write_text("input 8x8x3\nCONV(4, 3) - GAP\n")
    code, _, err = cli(capsys, "export", spec, "-o", tmp_path / "ok.onnx", *argv)
    assert code == status and (err.startswith("cnndsl: error:") or "cnndsl export: error: argument --batch" in err)


def test_export_with_weights_and_fixed_batch(tmp_path, capsys):
    spec = tmp_path / "ok.net"
    spec.write_text("input 8x8x3\nCONV(4, 3) - GAP\n")
    net = cnndsl.load(spec)
    m = torch_module(net)
    torch.save(m.state_dict(), tmp_path / "w.pt")
    code, _, err = cli(capsys, "export", spec, "-o", tmp_path / "ok.onnx", "--weights", tmp_path / "w.pt",
                       "--batch", "2", "--opset", "21")
    assert code == 0 and "wrote" in err
    model = onnx.load(str(tmp_path / "ok.onnx"))
    assert model.opset_import[0].version == 21 and model.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 2
    np.testing.assert_array_equal(onnx.numpy_helper.to_array(model.graph.initializer[0]), m.state_dict()["conv1.weight"].numpy())
    other = tmp_path / "other.net"
    other.write_text("input 8x8x3\nCONV(5, 3) - GAP\n")
    code, _, err = cli(capsys, "export", other, "-o", tmp_path / "o.onnx", "--weights", tmp_path / "w.pt")
    assert code == 1 and "conv1.weight: checkpoint 4x3x3x3, here 5x3x3x3" in err


def test_run_spec_in_a_subprocess_keeps_stderr_clean(tmp_path):
    spec = tmp_path / "tiny.net"
    spec.write_text("input 16x16x3\nCONV(8, 3, p=1) - RELU - MAXPOOL(2) - FC(10) - SOFTMAX\n")
    r = subprocess.run([sys.executable, "-m", "cnndsl.cli", "run", str(spec), "--batch", "3", "--repeat", "5"],
                       capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""  # no onnxruntime provider-load noise on a machine without a GPU
    assert "provider: CPUExecutionProvider" in r.stdout and "output:   softmax1 3x10" in r.stdout
    assert "median" in r.stdout and "p90" in r.stdout and "over 5 runs" in r.stdout


def _model(inputs, outputs, nodes, opset=17):
    g = helper.make_graph(nodes, "foreign", inputs, outputs)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], ir_version=8)


def test_run_onnx_with_npy_input(tmp_path, capsys):
    net = cnndsl.loads("input 8x8x3\nCONV(4, 3) - GAP - FC(2)")
    net.to_onnx(tmp_path / "m.onnx")
    np.save(tmp_path / "x.npy", np.zeros((4, 3, 8, 8), np.float64))
    code, out, _ = cli(capsys, "run", tmp_path / "m.onnx", "--input", tmp_path / "x.npy", "--repeat", "2")
    assert code == 0 and "input:    input 4x3x8x8" in out and "output:   fc1 4x2" in out


def test_run_rejects_bad_models_and_inputs(tmp_path, capsys):
    net = cnndsl.loads("input 8x8x3\nCONV(4, 3) - GAP - FC(2)")
    good = tmp_path / "m.onnx"
    net.to_onnx(good)
    data = good.read_bytes()
    (tmp_path / "empty.onnx").write_bytes(b"")
    (tmp_path / "text.onnx").write_text("this is not a model\n")
    (tmp_path / "cut.onnx").write_bytes(data[: len(data) // 2])
    f = TensorProto.FLOAT
    two = _model([helper.make_tensor_value_info(n, f, [1, 3]) for n in "ab"],
                 [helper.make_tensor_value_info("y", f, [1, 3])], [helper.make_node("Add", ["a", "b"], ["y"])])
    ints = _model([helper.make_tensor_value_info("a", TensorProto.INT64, [1, 3])],
                  [helper.make_tensor_value_info("y", TensorProto.INT64, [1, 3])], [helper.make_node("Identity", ["a"], ["y"])])
    symbolic = _model([helper.make_tensor_value_info("a", f, ["N", "T", 3])],
                      [helper.make_tensor_value_info("y", f, ["N", "T", 3])], [helper.make_node("Relu", ["a"], ["y"])])
    broken = _model([helper.make_tensor_value_info("a", f, [1, 3])],
                    [helper.make_tensor_value_info("y", f, [1, 3])], [helper.make_node("NoSuchOp", ["a"], ["y"])])
    for name, m in (("two", two), ("ints", ints), ("symbolic", symbolic), ("broken", broken)):
        (tmp_path / f"{name}.onnx").write_bytes(m.SerializeToString())
    np.save(tmp_path / "wrong.npy", np.zeros((1, 3, 9, 9), np.float32))
    np.save(tmp_path / "nobatch.npy", np.zeros((3, 8, 8), np.float32))
    np.save(tmp_path / "ints.npy", np.zeros((1, 3, 8, 8), np.int32))
    (tmp_path / "junk.npy").write_text("junk")
    cases = [
        (["empty.onnx"], 1, "is empty"),
        (["text.onnx"], 1, "not an ONNX model"),
        (["cut.onnx"], 1, "not an ONNX model"),
        (["missing.onnx"], 2, "No such file"),
        (["two.onnx"], 1, "takes 2 inputs"),
        (["ints.onnx"], 1, "tensor(int64)"),
        (["symbolic.onnx"], 1, "unknown sizes"),
        (["broken.onnx"], 1, "onnxruntime cannot load"),
        (["m.onnx", "--input", "wrong.npy"], 2, "has shape 1x3x9x9, but the model takes Nx3x8x8"),
        (["m.onnx", "--input", "nobatch.npy"], 2, "add a batch axis"),
        (["m.onnx", "--input", "ints.npy"], 2, "int32"),
        (["m.onnx", "--input", "junk.npy"], 2, "cannot read"),
        (["m.onnx", "--input", "none.npy"], 2, "No such file"),
        (["m.onnx", "--repeat", "0"], 2, "--repeat"),
        (["m.onnx", "--batch", "0"], 2, "--batch"),
        (["m.onnx", "-D", "N=2"], 2, "-D"),
    ]
    for argv, status, text in cases:
        argv = [str(tmp_path / argv[0]), *[str(tmp_path / a) if a.endswith(".npy") else a for a in argv[1:]]]
        code, out, err = cli(capsys, "run", *argv)
        assert (code, text in err) == (status, True), (argv, code, err)


def test_fixed_batch_model_and_batch_option(tmp_path, capsys):
    net = cnndsl.loads("input 8x8x3\nCONV(4, 3) - GAP")
    net.to_onnx(tmp_path / "b3.onnx", batch=3)
    code, out, _ = cli(capsys, "run", tmp_path / "b3.onnx", "--repeat", "1")
    assert code == 0 and "input:    input 3x3x8x8" in out
    code, _, err = cli(capsys, "run", tmp_path / "b3.onnx", "--batch", "2")
    assert code == 2 and "fixed batch of 3" in err


def test_gpu_providers_only_with_a_usable_gpu():
    from cnndsl.runtime import onnx_run
    if onnx_run.gpu_usable():
        pytest.skip("a GPU is usable here")
    assert onnx_run.choose_providers("auto") == ["CPUExecutionProvider"]
    for p in ("cuda", "tensorrt"):
        with pytest.raises(cnndsl.CnnError) as e:
            onnx_run.choose_providers(p)
        assert e.value.usage


def test_opset_newer_than_onnxruntime_loads_is_exported_with_a_warning(tmp_path, capsys):
    newest = onnx_graph.runtime_max_opset()[1]
    # the probe agrees with onnxruntime itself: it opens a real model at `newest`
    spec = tmp_path / "r1.net"
    spec.write_text("input 8x8x3\nCONV(4, 3) - GAP - FC(2)\n")
    code, _, err = cli(capsys, "export", spec, "-o", tmp_path / "ok.onnx", "--opset", newest)
    assert code == 0 and "warning" not in err
    session(onnx.load(str(tmp_path / "ok.onnx")))
    if newest >= onnx.defs.onnx_opset_version():
        pytest.skip("onnxruntime loads every opset this onnx knows")
    for opset in range(newest + 1, onnx.defs.onnx_opset_version() + 1):
        out = tmp_path / f"x{opset}.onnx"
        code, _, err = cli(capsys, "export", spec, "-o", out, "--opset", opset)
        assert code == 0 and out.exists()
        warnings = [line for line in err.splitlines() if "warning" in line]
        assert len(warnings) == 1 and f"onnxruntime {ort.__version__} loads opsets up to {newest}" in warnings[0]
        with pytest.raises(Exception):  # onnxruntime really refuses it
            session(onnx.load(str(out)))
        code, _, err = cli(capsys, "run", out, "--repeat", "1")
        assert code == 1 and f"--opset {newest}`" in err and "onnx.checker" not in err
        assert "onnxruntime_src" not in err  # no C++ source positions


def test_explicit_batch_that_contradicts_the_input_array_is_a_usage_error(tmp_path, capsys):
    net = cnndsl.loads("input 8x8x3\nCONV(4, 3) - GAP - FC(2)")
    net.to_onnx(tmp_path / "m.onnx")
    np.save(tmp_path / "x.npy", np.zeros((2, 3, 8, 8), np.float32))
    code, _, err = cli(capsys, "run", tmp_path / "m.onnx", "--input", tmp_path / "x.npy", "--batch", "8")
    assert code == 2 and "--batch 8" in err and "batch of 2" in err
    code, out, _ = cli(capsys, "run", tmp_path / "m.onnx", "--input", tmp_path / "x.npy", "--batch", "2", "--repeat", "1")
    assert code == 0 and "input:    input 2x3x8x8" in out
    # not asked (None, as the CLI passes once --batch has no default): the array's batch
    from cnndsl.runtime import onnx_run
    s = session(str(tmp_path / "m.onnx"))
    assert onnx_run.make_input(s, str(tmp_path / "x.npy"), None)[1].shape == (2, 3, 8, 8)
    assert onnx_run.make_input(s, "random", None)[1].shape == (1, 3, 8, 8)
    with pytest.raises(cnndsl.CnnError) as e:
        onnx_run.make_input(s, str(tmp_path / "x.npy"), 3)
    assert e.value.usage


def test_run_sniffs_specs_not_named_net(tmp_path, capsys):
    text = "# a spec\n\nlet c = 4\ninput 8x8x3\nCONV(c, 3) - GAP - FC(2)\n"
    for name in ("spec.txt", "spec"):
        (tmp_path / name).write_text(text)
        code, out, err = cli(capsys, "run", tmp_path / name, "--repeat", "1", "-D", "c=5")
        assert code == 0 and "exported with random weights" in out and "output:   fc1 1x2" in out, err
    (tmp_path / "prose.txt").write_text("input files are listed below\n")  # starts like a spec: the parser says why not
    code, _, err = cli(capsys, "run", tmp_path / "prose.txt")
    assert code == 1 and "ONNX" not in err
    (tmp_path / "garbage.txt").write_text("hello world\n")
    code, _, err = cli(capsys, "run", tmp_path / "garbage.txt")
    assert code == 1 and "is not an ONNX model" in err


# ---- files over 2 GB: written afresh, streamed ------------------------------------------------
def _float_param_bytes(net):
    """The bytes PATH.data must hold: every float tensor of the PyTorch module, 4 bytes each."""
    sd = net.to_torch(device="meta").state_dict()
    return sum(4 * t.numel() for t in sd.values() if t.dtype == torch.float32)


def test_reexport_over_external_data_writes_it_afresh_and_atomically(tmp_path, monkeypatch):
    monkeypatch.setattr(onnx_graph, "LARGE_MODEL", 1000)  # a few kB stand for 2 GiB
    net = cnndsl.loads("input 8x8x3\nCONV(16, 3) - BN - RELU - FC(64)")
    out, data = tmp_path / "big.onnx", tmp_path / "big.onnx.data"
    x = np.random.default_rng(0).standard_normal((2, 3, 8, 8), dtype=np.float32)
    sizes = []
    for i in range(2):  # onnx.save_model appended each export to the last one's data file
        module = torch_module(net, seed=i)
        net.to_onnx(out, weights=module)
        sizes.append(data.stat().st_size)
        assert sizes[i] == sizes[0]
        onnx.checker.check_model(str(out), full_check=True)
        s = session(str(out))
        expected = session(net.to_onnx(weights=module)).run(None, {"input": x})[0]  # the same weights, in memory
        np.testing.assert_array_equal(s.run(None, {"input": x})[0], expected)
    assert sizes[0] == _float_param_bytes(net)  # every tensor, none inline, nothing more
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.onnx", "big.onnx.data"]  # no temporaries left
    before = out.read_bytes(), data.read_bytes()

    real = onnx_graph._random_arrays

    def fails(graph, seed):  # a disk that fills up after the first tensor
        yield next(real(graph, seed))
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(onnx_graph, "_random_arrays", fails)
    with pytest.raises(cnndsl.CnnError, match="No space left"):
        net.to_onnx(out)
    assert (out.read_bytes(), data.read_bytes()) == before  # the old model and its data, untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.onnx", "big.onnx.data"]


def test_external_data_export_holds_one_tensor_at_a_time(tmp_path, monkeypatch):
    import tracemalloc
    monkeypatch.setattr(onnx_graph, "LARGE_MODEL", 1000)
    net = cnndsl.loads("input 512\n(FC(512) - RELU)*12")  # 12 tensors of 1 MiB
    total = _float_param_bytes(net)
    tracemalloc.start()  # numpy's buffers are traced: all of them at once was the old peak (and twice that)
    try:
        onnx_graph.export(net, tmp_path / "m.onnx", seed=0)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert (tmp_path / "m.onnx.data").stat().st_size == total
    assert peak < total / 4, f"peak {peak / 2**20:.1f} MiB for {total / 2**20:.1f} MiB of weights"
    # the streamed file holds what the in-memory model holds
    streamed = onnx.load(str(tmp_path / "m.onnx"))
    in_memory = onnx_graph.build(net, seed=0)
    assert [t.raw_data for t in streamed.graph.initializer] == [t.raw_data for t in in_memory.graph.initializer]


# ---- the input's normalisation ------------------------------------------------------------------
CLASSES3 = ["cat", "dog", "emu"]


def _trained(tmp_path, net, source="digits", mean=(4.9,), std=(6.0,), **extra):
    """A checkpoint as `cnndsl train` writes it: weights plus its data record (Data.info()) as metadata."""
    import json
    import cnndsl.weights as W
    module = torch_module(net)
    info = {"source": source, "classes": CLASSES3, "mean": list(mean), "std": list(std), **extra}
    path = tmp_path / "weights.safetensors"
    W.save(module, path, meta={**net.spec_info, "data": json.dumps(info)})
    return module, path


def _props(path):
    import json
    return {p.key: json.loads(p.value) for p in onnx.load(str(path), load_external_data=False).metadata_props}


def test_export_records_the_checkpoints_normalisation_or_says_there_is_none(tmp_path, capsys):
    spec = tmp_path / "n.net"
    spec.write_text("input 8x8x1\nCONV(4, 3) - RELU - FC(3)\n")
    net = cnndsl.load(spec)
    module, ck = _trained(tmp_path, net)
    code, _, err = cli(capsys, "export", spec, "--weights", ck, "-o", tmp_path / "t.onnx")
    assert code == 0 and "input: (x - mean) / std per channel" in err
    props = _props(tmp_path / "t.onnx")
    pre = props["cnndsl.preprocessing"]
    assert pre["normalization"] == "recorded" and pre["mean"] == [4.9] and pre["std"] == [6.0]
    assert pre["source"] == "digits" and pre["in_graph"] is None and props["cnndsl.classes"] == CLASSES3
    torch.save(module.state_dict(), tmp_path / "w.pt")  # a .pt records nothing: said, not invented
    code, _, err = cli(capsys, "export", spec, "--weights", tmp_path / "w.pt", "-o", tmp_path / "p.onnx")
    pre = _props(tmp_path / "p.onnx")["cnndsl.preprocessing"]
    assert code == 0 and pre["normalization"] == "none" and "mean" not in pre
    assert "records no input normalisation" in pre["feed"] and "records no input normalisation" in err
    pre = _props(net.to_onnx(tmp_path / "r.onnx") and tmp_path / "r.onnx")["cnndsl.preprocessing"]
    assert pre["normalization"] == "none" and "random weights" in pre["feed"]


def test_normalize_in_graph_takes_raw_or_unit_input(tmp_path, capsys):
    spec = tmp_path / "c.net"
    spec.write_text("input 8x8x3\nCONV(4, 3) - BN - RELU - GAP - FC(3)\n")
    net = cnndsl.load(spec)
    mean, std = [120.0, 110.0, 100.0], [60.0, 55.0, 50.0]
    module, ck = _trained(tmp_path, net, source="imgs/", mean=mean, std=std)
    pixels = np.random.default_rng(0).uniform(0, 255, (2, 3, 8, 8)).astype(np.float32)
    normalised = (pixels - np.array(mean, np.float32)[:, None, None]) / np.array(std, np.float32)[:, None, None]
    with torch.no_grad():
        want = module(torch.from_numpy(normalised)).numpy()
    for how, fed in (("raw", pixels), ("unit", pixels / 255)):
        out = tmp_path / f"{how}.onnx"
        code, _, err = cli(capsys, "export", spec, "--weights", ck, "-o", out, "--normalize-in-graph", how)
        assert code == 0, err
        model = onnx.load(str(out))
        assert [n.op_type for n in model.graph.node][:4] == ["Constant", "Constant", "Sub", "Div"]
        assert {t.name for t in model.graph.initializer} == {k for k in module.state_dict() if "num_batches" not in k}
        assert _props(out)["cnndsl.preprocessing"]["in_graph"] == how
        np.testing.assert_allclose(session(model).run(None, {"input": fed})[0], want, rtol=1e-5, atol=1e-5)
    # cnndsl run feeds an image as the model wants it: normalised here, or raw or / 255 for the graph to do it
    from PIL import Image
    Image.fromarray(pixels[0].transpose(1, 2, 0).astype(np.uint8)).save(tmp_path / "x.png")
    net.to_onnx(tmp_path / "meta.onnx", weights=str(ck))
    tops = []
    for name in ("meta", "raw", "unit"):
        code, out, err = cli(capsys, "run", tmp_path / f"{name}.onnx", "--input", tmp_path / "x.png", "--repeat", "1")
        tops.append([line for line in out.splitlines() if line.startswith("top 3:")])
        assert code == 0 and tops[-1] and "warning" not in err, out + err
    assert tops[0] == tops[1] == tops[2]
    digits = tmp_path / "d"
    digits.mkdir()
    _, ck = _trained(digits, net, mean=mean, std=std)  # digits: values 0..16, not pixels
    code, _, err = cli(capsys, "export", spec, "--weights", ck, "-o", tmp_path / "u.onnx", "--normalize-in-graph", "unit")
    assert code == 2 and "0..255" in err and not (tmp_path / "u.onnx").exists()
    code, _, err = cli(capsys, "export", spec, "-o", tmp_path / "u.onnx", "--normalize-in-graph")
    assert code == 2 and "random weights" in err


def test_run_normalises_images_and_arrays_prints_top_classes_and_warns_on_far_ranges(tmp_path, capsys):
    from PIL import Image
    spec = tmp_path / "g.net"
    spec.write_text("input 8x8x1\nCONV(4, 3) - RELU - FC(3)\n")
    net = cnndsl.load(spec)
    module, ck = _trained(tmp_path, net, source="imgs/", mean=(120.0,), std=(60.0,))
    model = tmp_path / "g.onnx"
    net.to_onnx(model, weights=str(ck))
    pixels = np.random.default_rng(1).integers(0, 256, (8, 8)).astype(np.uint8)
    Image.fromarray(pixels).save(tmp_path / "x.png")
    with torch.no_grad():
        p = torch.softmax(module(torch.from_numpy((pixels[None, None].astype(np.float32) - 120) / 60)), 1)[0].numpy()
    best = int(p.argmax())
    code, out, err = cli(capsys, "run", model, "--input", tmp_path / "x.png", "--repeat", "1", "--top", "2")
    assert code == 0 and "input:    input 1x1x8x8" in out and "(x - mean) / std" in out and "warning" not in err
    top = [line for line in out.splitlines() if line.startswith("top 2:")]
    assert top and top[0].startswith(f"top 2: {CLASSES3[best]} {p[best]:.3f}, "), out
    np.save(tmp_path / "raw.npy", pixels[None, None].astype(np.float32))  # an array: in the data's units too
    code, out2, err = cli(capsys, "run", model, "--input", tmp_path / "raw.npy", "--repeat", "1", "--top", "2")
    assert code == 0 and top[0] in out2 and "warning" not in err
    np.save(tmp_path / "unit.npy", pixels[None, None].astype(np.float32) / 255)  # 0..1 for a net trained on 0..255
    code, out, err = cli(capsys, "run", model, "--input", tmp_path / "unit.npy", "--repeat", "1")
    assert code == 0 and "warning: the input has values 0.0196..0.984" in err and "(imgs/: mean 120, std 60)" in err
    ranged = tmp_path / "ranged"  # a checkpoint that records its data's range too (cnndsl train does)
    ranged.mkdir()
    _, ck = _trained(ranged, net, source="imgs/", mean=(120.0,), std=(60.0,), range=[0.0, 255.0])
    net.to_onnx(ranged / "g.onnx", weights=str(ck))
    assert _props(ranged / "g.onnx")["cnndsl.preprocessing"]["range"] == [0.0, 255.0]
    code, out, err = cli(capsys, "run", ranged / "g.onnx", "--input", tmp_path / "unit.npy", "--repeat", "1")
    assert code == 0 and "(imgs/: values 0..255)" in err
    code, out, err = cli(capsys, "run", ranged / "g.onnx", "--input", tmp_path / "raw.npy", "--repeat", "1")
    assert code == 0 and "warning" not in err
    code, out, err = cli(capsys, "run", model, "--input", tmp_path / "x.png", "--repeat", "1", "--no-normalize")
    assert code == 0 and "(x - mean) / std" not in out and "warning" not in err
    # a spec (random weights) records nothing: the array is fed as it is, and the classes are numbered
    code, out, err = cli(capsys, "run", spec, "--input", tmp_path / "unit.npy", "--repeat", "1")
    assert code == 0 and "random weights, not trained" in out and "top 3: " in out and "warning" not in err
