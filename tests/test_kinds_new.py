"""The kinds of the "breadth" issue and the kind-level faults of "hostile input", against PyTorch and
ONNX Runtime: shapes, parameters, initial values, saved-for-backward bytes (autograd's own, measured
with saved_tensors_hooks on CPU), and ONNX outputs at the lowest and the newest opset."""
import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

import cnndsl  # noqa: E402
from cnndsl.backends import onnx_graph  # noqa: E402
from cnndsl.kinds import KINDS  # noqa: E402
from specgen import random_specs  # noqa: E402
from test_onnx import TOL, verify  # noqa: E402
from test_pytorch import autograd_saved_bytes, check_against_analyzer  # noqa: E402

ROOT = os.path.join(os.path.dirname(__file__), "..")
NEW = ("SILU", "HARDSIGMOID", "HARDSWISH", "GELU", "MISH", "ELU", "PRELU", "LAYERNORM", "GROUPNORM", "LAYERSCALE",
       "DROPPATH", "ADAPTIVEMAXPOOL")
NEWEST = onnx_graph.runtime_max_opset()[1]
OPSETS = sorted({13, 17, 18, 20, 21, NEWEST})


def saved(text):
    net = cnndsl.loads(text)
    return net.report()["totals"]["saved_bytes_per_image"], autograd_saved_bytes(net)


# ---- saved for backward: the analyzer == autograd, exactly ---------------------------------------------
SAVED = {
    # in place (after a conv) the copy-keeping activations keep a copy of the input ...
    "inplace_copies": "CONV(8, 3, p=1) - SILU - CONV(8, 1) - HARDSWISH - CONV(8, 1) - HARDSIGMOID - CONV(8, 1) - MISH"
                      " - CONV(8, 1) - RELU6 - CONV(4, 1)",
    # ... and not in place (their input is kept by someone else / is the network input) the input itself
    "not_inplace": "CONV(8, 3, p=1) - SIGMOID - SILU - SIGMOID - HARDSWISH - TANH - MISH - RELU - RELU6 - CONV(4, 1)",
    "chains": "CONV(8, 3, p=1) - SILU - SILU - HARDSWISH - RELU - ELU - ELU(0.5) - CONV(4, 1)",
    "elu_leaky": "CONV(8, 1) - ELU - CONV(8, 1) - LEAKYRELU(0.1) - CONV(8, 1) - ELU(0) - FC(3)",
    "gelu_prelu": "CONV(8, 1) - GELU - CONV(8, 1) - GELU(approx=true) - PRELU - PRELU(shared=true) - CONV(4, 1)",
    "norms": "CONV(8, 3, p=1) - LAYERNORM - GROUPNORM(2) - GROUPNORM(4, affine=false) - LAYERNORM(affine=false)"
             " - LAYERSCALE - CONV(4, 1)",
    "norms_first": "LAYERNORM - CONV(8, 1) - GROUPNORM(8) - RELU",
    "vector_head": "CONV(4, 1) - FC(16) - LAYERNORM - PRELU - GROUPNORM(4) - LAYERSCALE(0.5) - SILU - FC(3)",
    "pools": "CONV(8, 3, p=1) - ADAPTIVEMAXPOOL(5) - CONV(8, 1) - ADAPTIVEMAXPOOL((2, 3)) - CONV(8, 1) - ADAPTIVEMAXPOOL(1)"
             " - FC(4)",
    "gap": "CONV(8, 3, p=1) - GAP - FC(4)",
    "adaptive1": "CONV(8, 3, p=1) - ADAPTIVEAVGPOOL(1) - FC(4)",
    "adaptive_other": "CONV(8, 3, p=1) - ADAPTIVEAVGPOOL(3) - FC(4)",
    "droppath": "CONV(8, 3, p=1) - { ID + CONV(8, 1) - LAYERSCALE - DROPPATH(0.3) } - { ID + CONV(8, 1) - DROPPATH(0) }"
                " - CONV(4, 1)",
    "dropout0": "CONV(8, 3, p=1) - DROPOUT(0) - CONV(4, 1)",
    # zero channels (the option A shortcut): constant_pad_nd keeps nothing, a ReLU after it may work in place
    "padchannels": "CONV(8, 3, p=1) - { AVGPOOL(1, s=2) - PADCHANNELS(4) + CONV(12, 3, s=2, p=1) } - PADCHANNELS(4) - RELU"
                   " - CONV(4, 1) - FC(5) - PADCHANNELS(2) - RELU",
}


@pytest.mark.parametrize("name", sorted(SAVED))
def test_saved_bytes_equal_autograds(name):
    want, got = saved(f"input 9x9x8\n{SAVED[name]}")
    assert want == got, (want, got)


def test_gap_saves_nothing_issue_example():
    # the issue's example: 11,296 bytes were reported where autograd keeps 3,104
    want, got = saved("input 16x16x3\nCONV(8, 3, p=1) - GAP - FC(4)")
    assert want == got


def test_dropout_mask_is_cudas_bool_on_cpu_a_float():
    """The analyzer counts DROPOUT's mask as CUDA keeps it (1 byte a value); CPU keeps a float mask."""
    want, got = saved("input 9x9x8\nCONV(8, 3, p=1) - DROPOUT(0.3) - CONV(4, 1)")
    assert got - want == 3 * 9 * 9 * 8


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_saved_bytes_on_cuda():
    """On CUDA every rule holds as on CPU, and DROPOUT's mask is a bool one, as counted."""
    for text in list(SAVED.values()) + ["CONV(8, 3, p=1) - DROPOUT(0.3) - CONV(4, 1)"]:
        net = cnndsl.loads(f"input 9x9x8\n{text}")
        m = net.to_torch(seed=0, device="cuda").train()
        params = {p.untyped_storage().data_ptr() for p in m.parameters()}
        storages = {}

        def pack(t):
            s = t.untyped_storage()
            if s.data_ptr() not in params:
                storages[s.data_ptr()] = s.nbytes()
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            m(torch.randn(1, 8, 9, 9, device="cuda"))
        assert net.report()["totals"]["saved_bytes_per_image"] == sum(storages.values()), text


# ---- shapes, parameters, initial values ----------------------------------------------------------------------
def test_new_kinds_are_registered():
    assert set(NEW) <= set(KINDS)
    assert KINDS["DROPPATH"] is cnndsl.kinds.CALLABLE["STOCHASTICDEPTH"]


@pytest.mark.parametrize("text", [
    "SILU - HARDSWISH - HARDSIGMOID - GELU - GELU(approx=true) - MISH - ELU(0.3) - PRELU - PRELU(shared=true)",
    "LAYERNORM(eps=1e-6) - GROUPNORM(3) - GN(1, affine=false) - LN(affine=false) - LAYERSCALE(1e-6) - DROPPATH(0.5)",
    "ADAPTIVEMAXPOOL(4) - ADAPTIVEMAXPOOL((3, 2)) - ADAPTIVEMAXPOOL(5) - FC(6) - LAYERNORM - PRELU - GROUPNORM(2)"
    " - LAYERSCALE - DROPPATH(0.1) - SILU",
])
def test_shapes_and_params_match_pytorch(text):
    net = cnndsl.loads(f"input 7x9x6\n{text}")
    check_against_analyzer(net, batch=2)
    check_against_analyzer(net, device="meta", batch=2)


def test_initial_values_are_the_declared_ones():
    net = cnndsl.loads("input 4x4x3\nPRELU - PRELU(shared=true, init=0.1) - LAYERSCALE(1e-6) - LAYERNORM - GROUPNORM(3)"
                       " - FC(5) - LAYERSCALE(0.5) - PRELU")
    sd = net.to_torch().state_dict()
    fills = onnx_graph.random_weights(net.graph, seed=0)
    for n in net.graph.nodes:
        for t in n.kind.tensors(n.attrs, [net.graph.shape_of(s) for s in n.inputs]):
            if t.init.startswith("fan_in"):
                continue
            value = {"ones": 1.0, "zeros": 0.0, "fill": t.fill}[t.init]
            key = f"{n.name}.{t.name}"
            assert torch.all(sd[key] == torch.tensor(value, dtype=torch.float32)), key
            assert np.all(fills[key] == np.float32(value)), key
    assert tuple(sd["layerscale1.weight"].shape) == (3, 1, 1) and tuple(sd["layerscale2.weight"].shape) == (5,)
    assert tuple(sd["prelu2.weight"].shape) == (1,) and tuple(sd["prelu1.weight"].shape) == (3,)


def test_counts_and_receptive_field():
    net = cnndsl.loads("input 8x8x4\nLAYERNORM - GROUPNORM(2, affine=false) - SILU - LAYERSCALE - ADAPTIVEMAXPOOL(3)"
                       " - DROPPATH(0.2)")
    rows = {l["name"]: l for l in net.report()["layers"]}
    assert all(l["macs"] == 0 for l in rows.values())
    assert rows["layernorm1"]["flops"] == 7 * 256 and rows["groupnorm1"]["flops"] == 5 * 256
    assert rows["silu1"]["flops"] == 256 and rows["layerscale1"]["flops"] == 256
    assert rows["adaptivemaxpool1"]["flops"] == 256 and rows["droppath1"]["flops"] == 0
    assert rows["layernorm1"]["params"] == 8 and rows["layerscale1"]["params"] == 4
    avg = cnndsl.loads("input 8x8x4\nADAPTIVEAVGPOOL(3)").report()["layers"][0]
    assert (rows["adaptivemaxpool1"]["rf"], rows["adaptivemaxpool1"]["jump"]) == (avg["rf"], avg["jump"])


def test_droppath_is_identity_at_inference_and_drops_rows_in_training():
    net = cnndsl.loads("input 4x4x2\nDROPPATH(0.5)")
    m = net.to_torch(seed=0)
    x = torch.randn(64, 2, 4, 4)
    m.eval()
    assert torch.equal(m(x), x)
    m.train()
    torch.manual_seed(0)
    y = m(x)
    kept = (y.flatten(1) != 0).any(1)
    assert 10 < kept.sum() < 54
    assert torch.allclose(y[kept], 2 * x[kept]) and torch.all(y[~kept] == 0)


def test_groupnorm_groups_must_divide_the_channels():
    with pytest.raises(cnndsl.CnnError) as e:
        cnndsl.loads("input 8x8x6\nCONV(6, 1) - GROUPNORM(4)")
    assert "groups=4 does not divide the 6 channels" in e.value.message and e.value.span.col == 14


def test_inplace_decisions_and_backward():
    net = cnndsl.loads("input 8x8x3\nCONV(4, 1) - SILU - HARDSWISH - CONV(4, 1) - ELU - MISH - { ID + CONV(4, 1) - "
                       "HARDSIGMOID } - SILU")
    m = net.to_torch()
    assert m.silu1.inplace and m.hardswish1.inplace and m.elu1.inplace and not m.mish1.inplace  # ELU keeps its output
    assert m.hardsigmoid1.inplace and m.silu2.inplace
    x = torch.randn(2, 3, 8, 8, requires_grad=True)
    m(x).sum().backward()  # autograd would complain about a bad in-place op


# ---- ONNX: native ops where the opset has them, decompositions below ----------------------------------------
ONNX_EDGE = {
    "activations": "input 6x7x4\nCONV(6, 3, p=1) - SILU - HARDSWISH - HARDSIGMOID - GELU - GELU(approx=true) - MISH"
                   " - ELU(0.4) - PRELU - PRELU(shared=true, init=0.3)",
    "norms": "input 6x7x4\nCONV(6, 3, p=1) - LAYERNORM(eps=1e-6) - GROUPNORM(3) - GN(2, affine=false)"
             " - LN(affine=false) - LAYERSCALE(0.5) - DROPPATH(0.3)",
    "vector": "input 3x3x2\nFC(12) - LAYERNORM - PRELU - GROUPNORM(4) - GROUPNORM(2, affine=false) - LAYERNORM(affine=false)"
              " - LAYERSCALE(2) - SILU - GELU - DROPPATH(0.2)",
    "adaptive_max": "input 7x9x3\nADAPTIVEMAXPOOL(2x5) - CONV(4, 1) - ADAPTIVEMAXPOOL(3) - ADAPTIVEMAXPOOL(3x1)"
                    " - ADAPTIVEMAXPOOL(4) - ADAPTIVEMAXPOOL(1)",
    "adaptive_max_even": "input 8x8x3\nADAPTIVEMAXPOOL(4) - ADAPTIVEMAXPOOL(4) - ADAPTIVEMAXPOOL((2, 1))",
    "lrn_zero": "input 5x5x6\nLRN(3, alpha=0) - LRN(5, beta=0) - LRN(3, alpha=0, beta=0, k=0.5) - LRN(2, alpha=0)",
    "padchannels": "input 6x7x4\nCONV(6, 3, p=1) - { AVGPOOL(1, s=2) - PADCHANNELS(3) + CONV(9, 3, s=2, p=1) }"
                   " - PADCHANNELS(1) - FC(6) - PADCHANNELS(2)",
    "ceil_overhang": "input 1x1x2\nMAXPOOL(2, s=2, ceil=true)",
    "ceil_overhang_avg": "input 3x5x2\nAVGPOOL(3, s=2, ceil=true) - MAXPOOL(2, s=2, ceil=true) - AVGPOOL(2, s=2, p=1, ceil=true)",
    "ceil_overhang_nocount": "input 3x3x2\nAVGPOOL(2, s=2, ceil=true, count_pad=false) - AVGPOOL(2, s=3, p=1, ceil=true)",
}


@pytest.mark.parametrize("opset", OPSETS)
@pytest.mark.parametrize("name", sorted(ONNX_EDGE))
def test_onnx_matches_torch(name, opset):
    net = cnndsl.loads(ONNX_EDGE[name], path=f"{name}.net")
    model = verify(net, opset=opset)
    assert model.opset_import[0].version == opset


def test_native_ops_from_their_opsets():
    net = cnndsl.loads("input 4x4x4\nHARDSWISH - GELU - MISH - LAYERNORM - GROUPNORM(2)")
    ops = {o: {n.op_type for n in net.to_onnx(opset=o).graph.node} for o in (13, 17, 21)}
    assert not {"HardSwish", "Gelu", "Mish", "LayerNormalization", "GroupNormalization"} & ops[13]
    assert {"LayerNormalization", "HardSwish"} <= ops[17]
    assert {"Gelu", "Mish", "LayerNormalization", "HardSwish"} <= ops[21]
    assert "GroupNormalization" not in ops[21]  # onnx has no shape inference for it: decomposed at every opset


# timm's constructs (tests/test_constructs.py): their kinds, and what a spec uses that is no kind of its own
CONSTRUCTS = {"SCALE": "SCALE(0.17)", "UPSAMPLE": "UPSAMPLE(2, mode=bilinear)", "CHANCONV": "CHANCONV(3, circular=true)",
              "STDCONV": "STDCONV(8, 3, s=2, p=tf_same)", "SCALEDSTDCONV": "SCALEDSTDCONV(8, 1, gamma=1.7)",
              "grouped SOFTMAX": "CONV(8, 1) - { ID .* GAP - CONV(8, 1) - SOFTMAX(groups=2, card=2) }",
              "tf_same": "MAXPOOL(3, s=2, p=tf_same)", "copies": "CONV(4, 1) - { ID + (CONV(4, 1) - RELU)**2 @i }"}


def _uses(text, net, group) -> set:
    if group == "breadth":
        return {n.op for n in net.graph.nodes} & set(NEW)
    ops = {n.op for n in net.graph.nodes}
    grouped = any(n.op == "SOFTMAX" and n.attrs["groups"] > 1 for n in net.graph.nodes)
    return ((ops & set(CONSTRUCTS)) | ({"grouped SOFTMAX"} if grouped else set())
            | ({"tf_same"} if "tf_same" in text else set()) | ({"copies"} if ")**" in text else set()))


@pytest.mark.parametrize("group", ["breadth", "timm"])
def test_random_specs_with_the_new_kinds(group):
    """Random specs that use a new kind (the breadth issue's, or timm's constructs: their samples drawn
    often): the analyzer == PyTorch (shapes, params), ORT == PyTorch at 13 and the newest."""
    import test_onnx
    favour = [s for k in NEW for s in KINDS[k].samples] if group == "breadth" else \
        [s for k in CONSTRUCTS if k in KINDS for s in KINDS[k].samples] + list(CONSTRUCTS.values()) * 3
    made, seen = 0, set()
    for i, (text, net) in enumerate(random_specs(200, seed=11, favour=favour)):
        uses = _uses(text, net, group)
        if not uses:
            continue
        made, seen = made + 1, seen | uses
        check_against_analyzer(net, device="meta", batch=2)
        module = test_onnx.torch_module(net, seed=i)
        for opset in (13, NEWEST):
            model = net.to_onnx(weights=module, opset=opset)
            d = test_onnx.relative_diff(net, model, module, seed=i)
            assert d <= TOL, f"opset {opset}: relative diff {d:.2e}\n{text}"
        if made >= 25 and (group == "breadth" or seen == set(CONSTRUCTS)) or made == 40:
            break
    assert made >= 20 and (group == "breadth" or seen == set(CONSTRUCTS)), (made, set(CONSTRUCTS) - seen)


# ---- hostile input: what the analyzer accepts, both backends run -------------------------------------------
def test_ceil_mode_window_may_overhang_as_in_pytorch():
    for text, want in (("input 1x1x1\nMAXPOOL(2, s=2, ceil=true)", (1, 1, 1)),
                       ("input 3x3x1\nMAXPOOL(3, s=2, ceil=true)", (1, 1, 1)),
                       ("input 2x2x1\nMAXPOOL(3, s=2, ceil=true)", (1, 1, 1))):
        net = cnndsl.loads(text)
        assert net.graph.nodes[-1].out_shape == want
        check_against_analyzer(net, batch=1)
    for text in ("input 1x1x1\nMAXPOOL(3, s=2, ceil=true)", "input 1x1x1\nMAXPOOL(2, s=2)"):
        with pytest.raises(cnndsl.CnnError, match="does not fit"):
            cnndsl.loads(text)
        m = torch.nn.MaxPool2d(2 if "(2, s" in text else 3, 2, ceil_mode="ceil" in text)
        with pytest.raises(RuntimeError):
            m(torch.zeros(1, 1, 1, 1))


def test_googlenet_at_16x16_runs_everywhere():
    net = cnndsl.load(os.path.join(ROOT, "nets", "googlenet.net"), input="16x16x3")
    check_against_analyzer(net, batch=1)
    verify(net, opset=13)


def test_lrn_alpha_zero_runs_in_onnxruntime(tmp_path, capsys):
    from cnndsl.cli import main
    spec = tmp_path / "lrn.net"
    spec.write_text("input 8x8x3\nCONV(4, 3) - LRN(3, alpha=0) - LRN(3, beta=0)\n")
    assert main(["run", str(spec), "--repeat", "1"]) == 0
    assert "Traceback" not in capsys.readouterr().err
