"""timm's further constructs (issue 24), each against its definition, PyTorch and ONNX Runtime: a blur pool
(BlurPool2d), global response normalisation (ConvNeXt V2), space to depth (TResNet), StarReLU and
SquaredReLU (MetaFormer), a learnt scalar affine (PP-HGNetV2's LearnableAffineBlock), zero padding per
side (PP-HGNetV2's stem) and LayerNorm without a bias (ConvFormer). The nets that use them are checked
against timm in tests/test_timm_families.py."""
from fractions import Fraction

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")
F = torch.nn.functional

import cnndsl  # noqa: E402
from cnndsl import weights as W  # noqa: E402
from cnndsl.backends import onnx_graph  # noqa: E402
from cnndsl.kinds import KINDS  # noqa: E402
from specgen import random_specs  # noqa: E402
from test_onnx import TOL, verify  # noqa: E402
from test_pytorch import autograd_saved_bytes, check_against_analyzer  # noqa: E402

NEWEST = onnx_graph.runtime_max_opset()[1]
NEW = ("BLURPOOL", "GRN", "SPACETODEPTH", "STARRELU", "AFFINE", "PAD")


def layers(text):
    return {l["name"]: l for l in cnndsl.loads(text).report()["layers"]}


def run(text, x, seed=0, init=None):
    """The spec's module in eval mode and its output on x; `init(module)` sets parameters first."""
    m = cnndsl.loads(text).to_torch(seed=seed).eval()
    with torch.no_grad():
        if init:
            init(m)
        return m, m(x)


# ---- each construct against its definition ----------------------------------------------------------------
@pytest.mark.parametrize("k,s,mode,taps", [(3, 2, "reflect", [1, 2, 1]), (5, 2, "reflect", [1, 4, 6, 4, 1]),
                                           (3, 1, "zero", [1, 2, 1]), (4, 3, "reflect", [1, 3, 3, 1])])
def test_blurpool_is_a_fixed_binomial_depthwise_conv(k, s, mode, taps):
    x = torch.randn(2, 3, 9, 8)
    pad = ", pad=zero" if mode == "zero" else ""
    m, y = run(f"input 9x8x3\nBLURPOOL({k}, s={s}{pad})", x)
    f = torch.tensor(taps, dtype=torch.float32) / sum(taps)
    p = ((s - 1) + (k - 1)) // 2  # timm's get_padding(k, s)
    padded = F.pad(x, (p, p, p, p), mode="reflect" if mode == "reflect" else "constant")
    want = F.conv2d(padded, torch.outer(f, f).expand(3, 1, k, k), stride=s, groups=3)
    assert y.shape == want.shape and torch.allclose(y, want, atol=1e-6)
    assert not m.state_dict() and sum(b.numel() for b in m.buffers()) == 3 * k * k  # timm's non-persistent filt
    row = layers(f"input 9x8x3\nBLURPOOL({k}, s={s}{pad})")["blurpool1"]
    assert (row["params"], row["macs"], row["rf"], row["jump"]) == (0, y[0].numel() * k * k, k, s)


def test_blurpool_refusals_and_fields():
    with pytest.raises(cnndsl.CnnError, match="reflect padding of 2 needs more than 2 rows"):
        cnndsl.loads("input 2x8x3\nBLURPOOL(5)")
    assert layers("input 2x8x3\nBLURPOOL(5, pad=zero)")["blurpool1"]["out"] == [1, 4, 3]
    # a 3x3/1 conv, then a blur at stride 2 (its 3 taps), then a 3x3: 3 + 2, 5 + 2*2
    rep = layers("input 16x16x3\nCONV(4, 3, p=1) - BLURPOOL - CONV(4, 3, p=1)")
    assert [(r["rf"], r["jump"]) for r in rep.values()] == [(3, 1), (5, 2), (9, 2)]


def test_grn_is_convnext_v2s_global_response_norm():
    """ConvNeXt V2 (Woo et al. 2023), Algorithm 1: gx = ||x||_2 over H, W; nx = gx / (mean_c gx + eps);
    gamma * (x * nx) + beta + x."""
    x = torch.randn(2, 6, 5, 4)

    def init(m):
        m.grn1.weight.uniform_(-1, 1)
        m.grn1.bias.uniform_(-1, 1)
    m, y = run("input 5x4x6\nGRN(eps=1e-3)", x, init=init)
    g, b = m.grn1.weight.detach().double().view(1, -1, 1, 1), m.grn1.bias.detach().double().view(1, -1, 1, 1)
    xd = x.double()
    gx = torch.sqrt((xd ** 2).sum(dim=(2, 3), keepdim=True))
    nx = gx / (gx.mean(dim=1, keepdim=True) + 1e-3)
    assert torch.allclose(y.double(), g * (xd * nx) + b + xd, atol=1e-5)
    assert [(k, tuple(v.shape)) for k, v in m.state_dict().items()] == [("grn1.weight", (6,)), ("grn1.bias", (6,))]
    assert torch.equal(run("input 5x4x6\nGRN", x)[1], x)  # weight and bias start at 0: the identity
    with pytest.raises(cnndsl.CnnError, match="needs an HxWxC volume"):
        cnndsl.loads("input 4x4x3\nFC(8) - GRN")


def test_space_to_depth_orders_channels_as_timm_and_onnx():
    """Output channel (i*b + j)*C + c at (y, x) holds input channel c at (y*b + i, x*b + j)."""
    b, C = 2, 3
    x = torch.randn(2, C, 4, 6)
    _, y = run(f"input 4x6x{C}\nSPACETODEPTH({b})", x)
    assert y.shape == (2, C * b * b, 2, 3)
    for i in range(b):
        for j in range(b):
            for c in range(C):
                assert torch.equal(y[:, (i * b + j) * C + c], x[:, c, i::b, j::b])
    row = layers("input 224x224x3\nSPACETODEPTH(4)")["spacetodepth1"]
    assert (row["out"], row["params"], row["macs"], row["rf"], row["jump"]) == ([56, 56, 48], 0, 0, 4, 4)
    with pytest.raises(cnndsl.CnnError, match="divisible by 4"):
        cnndsl.loads("input 10x8x3\nS2D")


def test_starrelu_and_squared_relu():
    x = torch.randn(2, 4, 3, 3)

    def init(m):
        m.starrelu1.weight.fill_(0.8944)
        m.starrelu1.bias.fill_(-0.4472)
    m, y = run("input 3x3x4\nSTARRELU", x, init=init)
    assert torch.allclose(y, 0.8944 * torch.relu(x) ** 2 - 0.4472)
    assert [(k, tuple(v.shape)) for k, v in m.state_dict().items()] == [("starrelu1.weight", (1,)), ("starrelu1.bias", (1,))]
    m, y = run("input 3x3x4\nSTARRELU(learnt=false)", x)
    assert not m.state_dict() and torch.equal(y, torch.square(torch.relu(x)))  # MetaFormer's SquaredReLU
    assert layers("input 3x3x4\nSTARRELU(learnt=false)")["starrelu1"]["desc"] == "squared"


def test_affine_is_a_learnt_scalar_scale_and_bias():
    x = torch.randn(2, 4, 3, 3)

    def init(m):
        m.affine1.weight.fill_(-1.5)
        m.affine1.bias.fill_(0.25)
    m, y = run("input 3x3x4\nAFFINE", x, init=init)
    assert torch.allclose(y, -1.5 * x + 0.25)
    rep = layers("input 3x3x4\nAFFINE(0.5, 0.1)")["affine1"]
    assert (rep["params"], rep["flops"], rep["desc"]) == (2, 2 * 36, "s 0.5, b 0.1")


def test_pad_adds_zeros_and_leaves_the_field():
    x = torch.randn(2, 3, 4, 5)
    _, y = run("input 4x5x3\nPAD(1, 2, 3, 0)", x)  # top, bottom, left, right
    assert torch.equal(y, F.pad(x, (3, 0, 1, 2)))
    rep = layers("input 8x8x3\nCONV(4, 3, s=2, p=1) - PAD(bottom=1, right=1) - CONV(4, 2)")
    assert rep["pad1"]["out"] == [5, 5, 4] and (rep["pad1"]["rf"], rep["pad1"]["jump"]) == (3, 2)
    assert (rep["conv2"]["rf"], rep["conv2"]["jump"]) == (5, 2)


def test_layernorm_without_bias():
    x = torch.randn(2, 6, 3, 3)
    m, y = run("input 3x3x6\nLAYERNORM(eps=1e-6, bias=false)", x, init=lambda m: m.layernorm1.weight.uniform_(0, 2))
    want = F.layer_norm(x.permute(0, 2, 3, 1), (6,), m.layernorm1.weight, None, 1e-6).permute(0, 3, 1, 2)
    assert torch.allclose(y, want, atol=1e-6) and list(m.state_dict()) == ["layernorm1.weight"]
    assert layers("input 3x3x6\nLAYERNORM(bias=false)")["layernorm1"]["flops"] == 6 * 54


def test_timms_scalars_load_by_their_names():
    """timm's StarReLU and LearnableAffineBlock keep their scale as `scale`: it loads into our `weight`."""
    net = cnndsl.loads("input 4x4x6\nCONV(6, 1) - act: STARRELU - lab: AFFINE")
    theirs = {"conv.weight": torch.randn(6, 6, 1, 1), "conv.bias": torch.randn(6), "act.scale": torch.tensor([0.5]),
              "act.bias": torch.tensor([0.25]), "lab.scale": torch.tensor([2.0]), "lab.bias": torch.tensor([-1.0])}
    sd = net.to_torch(seed=0, weights=theirs).state_dict()
    assert [sd[k].item() for k in ("act.weight", "act.bias", "lab.weight", "lab.bias")] == [0.5, 0.25, 2.0, -1.0]


def test_layerscale_loads_from_a_scale_modules_scale():
    """timm's MetaFormer keeps a layer scale as `scale` (C,) of a Scale module of its own."""
    net = cnndsl.loads("input 4x4x6\nCONV(6, 1) - { ID + ls: LAYERSCALE(1e-5) }")
    theirs = {"conv.weight": torch.randn(6, 6, 1, 1), "conv.bias": torch.randn(6),
              "block.layer_scale1.scale": torch.randn(6)}
    m = net.to_torch(seed=0, weights=theirs).eval()
    assert torch.equal(m.state_dict()["ls.weight"].reshape(-1), theirs["block.layer_scale1.scale"])


# ---- PyTorch, autograd and ONNX Runtime -----------------------------------------------------------------------
CASES = {  # (no BN in training: autograd keeps its running statistics, which the analyzer leaves out)
    "blurpool": "input 9x8x8\nCONV(8, 3, p=1) - BLURPOOL - CONV(8, 1) - BLURPOOL(5, s=2) - RELU"
                " - BLURPOOL(3, s=1, pad=zero) - CONV(4, 1)",
    "grn": "input 9x8x8\nCONV(8, 3, p=1) - GRN - CONV(16, 1) - GELU - GRN(eps=1e-3) - CONV(4, 1)",
    "space_to_depth": "input 8x8x8\nCONV(8, 3, p=1) - SPACETODEPTH(2) - CONV(4, 1) - RELU - S2D(2) - CONV(4, 1)",
    "starrelu": "input 9x8x8\nCONV(8, 3, p=1) - STARRELU - CONV(8, 1) - STARRELU(learnt=false) - CONV(8, 1)"
                " - STARRELU(scale=0.5, bias=0.2, learnt=false) - GAP - FC(8) - STARRELU - FC(3)",
    "affine": "input 9x8x8\nCONV(8, 3, p=1) - AFFINE(0.5, 0.1) - CONV(8, 1) - RELU - AFFINE - CONV(4, 1)",
    # onnxruntime would fuse a zero Pad into the MaxPool after it (whose padding is -inf): PAD is concatenated zeros
    "pad_before_maxpool": "input 9x8x8\nCONV(8, 3, p=1) - PAD(bottom=1, right=1) - MAXPOOL(2, s=1, ceil=true)"
                          " - PAD(1, 2, 0, 3) - MAXPOOL(2, s=1) - PAD(top=2) - CONV(4, 2)",
    "layernorm_no_bias": "input 9x8x8\nCONV(8, 3, p=1) - LAYERNORM(bias=false) - CONV(8, 1) - GAP - FC(8)"
                         " - LAYERNORM(eps=1e-6, bias=false) - FC(3)",
    "hgnet_stem": "input 16x16x3\nCONV(8, 3, s=2, p=1) - RELU - AFFINE - PAD(bottom=1, right=1)"
                  " - { CONV(4, 2) - PAD(bottom=1, right=1) - CONV(8, 2) | MAXPOOL(2, s=1, ceil=true) }"
                  " - { CHANNELS(8) | CHANNELS(0, 8) } - CONV(8, 3, s=2, p=1)",
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_shapes_params_and_saved_bytes_equal_pytorchs(name):
    net = cnndsl.loads(CASES[name])
    check_against_analyzer(net, batch=2)
    assert net.report()["totals"]["saved_bytes_per_image"] == autograd_saved_bytes(net), name


@pytest.mark.parametrize("opset", [13, NEWEST])
@pytest.mark.parametrize("name", sorted(CASES))
def test_onnx_runtime_equals_pytorch(name, opset):
    verify(cnndsl.loads(CASES[name], path=f"{name}.net"), opset=opset)


def test_random_specs_with_the_new_kinds():
    """Random specs that use the new kinds (their samples drawn often): the analyzer == PyTorch (shapes,
    params, buffers), ORT == PyTorch at 13 and the newest opset, until every kind has been seen."""
    import test_onnx
    favour = [s for k in NEW for s in KINDS[k].samples] + ["LAYERNORM(bias=false)"] * 2
    made, seen = 0, set()
    for i, (text, net) in enumerate(random_specs(200, seed=12, favour=favour)):
        uses = {n.op for n in net.graph.nodes} & set(NEW)
        if not uses:
            continue
        made, seen = made + 1, seen | uses
        check_against_analyzer(net, device="meta", batch=2)
        module = test_onnx.torch_module(net, seed=i)
        for opset in (13, NEWEST):
            d = test_onnx.relative_diff(net, net.to_onnx(weights=module, opset=opset), module, seed=i)
            assert d <= TOL, f"opset {opset}: relative diff {d:.2e}\n{text}"
        if made >= 20 and seen == set(NEW) or made == 40:
            break
    assert made >= 20 and seen == set(NEW), (made, set(NEW) - seen)


def test_fields_stay_exact_through_the_new_kinds():
    net = cnndsl.loads("input 16x16x3\nSPACETODEPTH(2) - UPSAMPLE(2) - CONV(4, 3, p=1) - BLURPOOL - PAD(1, 1, 1, 1)")
    net.report()
    # s2d: 2 (jump 2); upsample: jump 1; 3x3: 2 + 2*1 = 4; blur 3/2: 4 + 2*1 = 6, jump 2; a pad: the same
    assert [n.meta["rf"] for n in net.graph.nodes] == [(2, 2), (2, 2), (4, 4), (6, 6), (6, 6)]
    assert [n.meta["jump"] for n in net.graph.nodes] == [(2, 2), (1, 1), (1, 1), (2, 2), (2, 2)]
    assert all(isinstance(v, (int, Fraction)) for n in net.graph.nodes for v in n.meta["rf"])
    assert net.graph.nodes[-1].out_shape == (10, 10, 4)
