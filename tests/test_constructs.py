"""The constructs timm's families need (issue 24), each against its definition, PyTorch and ONNX Runtime:
a constant scale, upsampling (the jump halves: receptive fields as exact fractions), a softmax across
channel groups (timm's RadixSoftmax), TensorFlow's SAME padding, ECA's convolution across channels,
weight-standardised convolutions, and copies of a branch side by side (`b**n`). Last, a kind added in
a file of its own, in a copy of the package, reaches every stage with no other edit."""
import json
import math
import os
import subprocess
import sys
from fractions import Fraction

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")
F = torch.nn.functional

import cnndsl  # noqa: E402
from cnndsl.backends import onnx_graph  # noqa: E402
from cnndsl.kinds.chanconv import adaptive_kernel  # noqa: E402
from test_onnx import verify  # noqa: E402
from test_pytorch import autograd_saved_bytes, check_against_analyzer  # noqa: E402

ROOT = os.path.join(os.path.dirname(__file__), "..")
NEWEST = onnx_graph.runtime_max_opset()[1]


def layers(text):
    return {l["name"]: l for l in cnndsl.loads(text).report()["layers"]}


def run(text, x, seed=0):
    m = cnndsl.loads(text).to_torch(seed=seed).eval()
    with torch.no_grad():
        return m, m(x)


# ---- receptive fields and jumps: exact fractions -------------------------------------------------------------
def test_upsampling_halves_the_jump_and_fields_stay_exact():
    net = cnndsl.loads("input 8x8x4\nCONV(8, 3, p=1) - UPSAMPLE(2) - CONV(8, 3, p=1) - UPSAMPLE((2, 1), mode=bilinear)"
                       " - CONV(2, 2)")
    g = net.graph
    net.report()
    assert [n.meta["jump"] for n in g.nodes] == [(1, 1), (Fraction(1, 2),) * 2, (Fraction(1, 2),) * 2,
                                                 (Fraction(1, 4), Fraction(1, 2)), (Fraction(1, 4), Fraction(1, 2))]
    # 3 + 2*(1/2) = 4; bilinear reads two rows: 4 + 1*(1/2); a 2x2 conv: + 1*(1/4) rows, + 1*(1/2) columns
    assert [n.meta["rf"] for n in g.nodes] == [(3, 3), (3, 3), (4, 4), (Fraction(9, 2), 4), (Fraction(19, 4), Fraction(9, 2))]
    rep = net.report()
    rows = [(l["rf"], l["jump"]) for l in rep["layers"]]
    assert rows == [(3, 1), (3, "1/2"), (4, "1/2"), (["9/2", 4], ["1/4", "1/2"]), (["19/4", "9/2"], ["1/4", "1/2"])]
    assert json.loads(json.dumps(rep))["layers"][3]["rf"] == ["9/2", 4]
    from cnndsl.analysis.report import csv_text, table
    assert "19/4x9/2" in table(rep) and ",19/4x9/2,1/4x1/2," in csv_text(rep)


def test_fields_stay_ints_without_upsampling():
    net = cnndsl.load(os.path.join(ROOT, "nets", "resnet18.net"))
    net.report()
    assert {type(v) for n in net.graph.nodes if n.meta["rf"] for v in (*n.meta["rf"], *n.meta["jump"])} == {int}


def test_an_upsampled_stream_joins_the_full_resolution_one():
    """HRNet's fuse: the low-resolution stream brought up and added; the join takes the larger field."""
    rep = layers("input 16x16x4\nCONV(8, 3, p=1) - { ID + CONV(8, 3, s=2, p=1) - CONV(8, 3, p=1) - UPSAMPLE(2) }")
    # the stride-2 branch: 3 + 2*1 = 5, then + 2*2 = 9, upsampled: 9, jump 2 -> 1
    assert (rep["upsample1"]["rf"], rep["upsample1"]["jump"]) == (9, 1)
    assert (rep["add1"]["rf"], rep["add1"]["jump"]) == (9, 1)


# ---- each construct against its definition ----------------------------------------------------------------
def test_scale_is_a_constant_without_parameters():
    x = torch.randn(2, 4, 5, 5)
    m, y = run("input 5x5x4\n{ ID + CONV(4, 1) - SCALE(0.17) } - RELU", x)
    assert sum(p.numel() for p in m.parameters()) == 20
    with torch.no_grad():
        assert torch.allclose(y, torch.relu(x + 0.17 * m.conv1(x)))
    assert layers("input 5x5x4\nSCALE(2)")["scale1"]["flops"] == 100


@pytest.mark.parametrize("mode,factor", [("nearest", (2, 2)), ("nearest", (2, 3)), ("bilinear", (2, 2)),
                                         ("bilinear", (3, 2))])
def test_upsample_is_torchs_interpolate(mode, factor):
    x = torch.randn(2, 3, 5, 4)
    _, y = run(f"input 5x4x3\nUPSAMPLE({factor}, mode={mode})", x)
    want = F.interpolate(x, scale_factor=factor, mode=mode, **({"align_corners": False} if mode == "bilinear" else {}))
    assert y.shape == (2, 3, 5 * factor[0], 4 * factor[1]) and torch.allclose(y, want)
    rows = layers(f"input 5x4x3\nUPSAMPLE({factor}, mode={mode})")["upsample1"]
    assert rows["params"] == rows["macs"] == 0 and rows["flops"] == (7 * y[0].numel() if mode == "bilinear" else 0)


def test_grouped_softmax_is_timms_radix_softmax():
    """Channels (card, r, rest) -> for each card and rest a softmax over r -> written out as (r, card, rest)."""
    r, card, rest = 3, 2, 4
    x = torch.randn(2, card * r * rest, 1, 1)
    _, y = run(f"input 1x1x{card * r * rest}\nSOFTMAX(groups={r}, card={card})", x)
    v = x.reshape(2, card, r, rest)
    want = torch.empty(2, r, card, rest)
    for k in range(card):
        for j in range(rest):
            want[:, :, k, j] = torch.softmax(v[:, k, :, j], dim=1)
    assert torch.allclose(y.reshape(2, r, card, rest), want, atol=1e-7)
    # SKNet: x.view(B, paths, C / paths, H, W), softmax over the paths
    x = torch.randn(2, 12, 3, 3)
    _, y = run("input 3x3x12\nSOFTMAX(groups=3)", x)
    assert torch.allclose(y, torch.softmax(x.view(2, 3, 4, 3, 3), 1).view(2, 12, 3, 3))


def test_grouped_softmax_refusals():
    with pytest.raises(cnndsl.CnnError, match="cannot split 10 channels"):
        cnndsl.loads("input 1x1x10\nSOFTMAX(groups=4)")
    with pytest.raises(cnndsl.CnnError, match="needs groups > 1") as e:
        cnndsl.loads("input 1x1x8\nSOFTMAX(card=2)")
    assert "SIGMOID" in e.value.hint


def _tf_same_reference(size, k_eff, s):
    """TensorFlow's documented SAME: out = ceil(in / s), pad_along = max((out - 1)*s + k - in, 0), top = half."""
    out = math.ceil(size / s)
    along = max((out - 1) * s + k_eff - size, 0)
    return out, along // 2, along - along // 2


@pytest.mark.parametrize("size", range(1, 10))
def test_tf_same_shapes_and_pads_are_tensorflows(size):
    from cnndsl.kinds.conv import tf_same_pads
    for k in range(1, 6):
        for s in range(1, 4):
            for d in (1, 2):
                k_eff = d * (k - 1) + 1
                out, top, bottom = _tf_same_reference(size, k_eff, s)
                assert tf_same_pads(size, k_eff, s) == (top, bottom)
                net = cnndsl.loads(f"input {size}x{size + 1}x2\nCONV(2, {k}, s={s}, d={d}, p=tf_same)")
                assert net.graph.nodes[0].out_shape == (out, math.ceil((size + 1) / s), 2)


@pytest.mark.filterwarnings("ignore:Using padding='same'")
def test_tf_same_conv_and_pools_pad_then_run():
    x = torch.randn(2, 4, 8, 7)
    m, y = run("input 8x7x4\nCONV(6, 3, s=2, p=tf_same) - MAXPOOL(3, s=2, p=tf_same) - AVGPOOL(2, s=2, p=tf_same)", x)
    with torch.no_grad():
        # 8 rows at stride 2, 3x3: 4 out, 1 padding after; 7 columns: 4 out, 1 before and 1 after
        c = F.conv2d(F.pad(x, (1, 1, 0, 1)), m.conv1.weight, m.conv1.bias, 2)
        p = F.max_pool2d(F.pad(c, (0, 1, 0, 1), value=-math.inf), 3, 2)  # 4x4 -> 2x2: 1 padding after
        want = F.avg_pool2d(p, 2, 2)  # 2x2 at stride 2 needs no padding
    assert torch.allclose(y, want, atol=1e-6)
    # stride 1: PyTorch's own padding="same" pads the same way (the larger half after), even kernels too
    conv = cnndsl.loads("input 6x6x3\nCONV(4, 4, p=tf_same)").to_torch(seed=0).conv1
    ref = torch.nn.Conv2d(3, 4, 4, padding="same")
    ref.load_state_dict(conv.state_dict())
    x = torch.randn(1, 3, 6, 6)
    assert torch.allclose(conv(x), ref(x), atol=1e-6)


def test_tf_same_refusals_and_description():
    with pytest.raises(cnndsl.CnnError, match="ceil"):
        cnndsl.loads("input 8x8x3\nMAXPOOL(3, s=2, p=tf_same, ceil=true)")
    with pytest.raises(cnndsl.CnnError, match="count_pad=false"):
        cnndsl.loads("input 8x8x3\nAVGPOOL(3, s=2, p=tf_same, count_pad=false)")
    with pytest.raises(cnndsl.CnnError, match="whole number or same/valid/tf_same, got bilinear"):
        cnndsl.loads("input 8x8x3\nCONV(3, 3, p=bilinear)")
    assert layers("input 8x8x3\nCONV(4, 3, s=2, p=tf_same)")["conv1"]["desc"] == "3x3/2 tf_same, 4"


def test_chanconv_is_ecas_conv_across_channels():
    assert [adaptive_kernel(c) for c in (16, 64, 128, 256, 512, 1024, 2048)] == [3, 3, 5, 5, 5, 5, 7]
    x = torch.randn(2, 16, 3, 2)
    for text, circular in (("CHANCONV(5)", False), ("CHANCONV(3, circular=true)", True)):
        m, y = run(f"input 3x2x16\n{text}", x)
        w = m.chanconv1.weight.detach().reshape(-1)
        k = len(w)
        p = (k - 1) // 2
        xs = x.movedim(1, -1)  # (N, H, W, C): channels last
        padded = torch.cat([xs[..., -p:], xs, xs[..., :p]], -1) if circular else F.pad(xs, (p, p))
        want = sum(w[j] * padded[..., j:j + 16] for j in range(k)).movedim(-1, 1)
        assert torch.allclose(y, want, atol=1e-6), text
    rep = layers("input 5x5x64\n{ ID .* GAP - CHANCONV - SIGMOID }")
    assert (rep["chanconv1"]["params"], rep["chanconv1"]["macs"], rep["chanconv1"]["desc"]) == (3, 3 * 64, "k adaptive")
    with pytest.raises(cnndsl.CnnError, match="must be odd"):
        cnndsl.loads("input 1x1x8\nCHANCONV(4)")


@pytest.mark.parametrize("text,scaled", [("STDCONV(6, 3, p=1, eps=1e-8)", False),
                                         ("SCALEDSTDCONV(6, 3, s=2, p=1, gamma=1.7015043, gain=0.5)", True),
                                         ("STDCONV(6, 3, p=1, groups=2, bias=true)", False)])
def test_weight_standardised_convs(text, scaled):
    x = torch.randn(2, 4, 7, 7)
    m, y = run(f"input 7x7x4\n{text}", x)
    conv = next(iter(m.children()))
    w = conv.weight.detach().double()
    eps = conv.eps
    flat = w.reshape(w.shape[0], -1)
    ws = (flat - flat.mean(1, keepdim=True)) / torch.sqrt(flat.var(1, unbiased=False, keepdim=True) + eps)
    if scaled:
        ws = ws * conv.gain.detach().double().reshape(-1, 1) * 1.7015043 / math.sqrt(flat.shape[1])
    want = F.conv2d(x.double(), ws.reshape(w.shape), None if conv.bias is None else conv.bias.double(), conv.stride,
                    conv.padding, conv.dilation, conv.groups)
    assert torch.allclose(y.double(), want, atol=1e-5)
    sd = m.state_dict()
    assert [k.split(".")[-1] for k in sd] == ["weight"] + ["bias"] * (conv.bias is not None) + ["gain"] * scaled


# ---- PyTorch, autograd and ONNX Runtime -----------------------------------------------------------------------
CASES = {  # (no BN in training: autograd keeps its running statistics, which the analyzer leaves out)
    "scale": "input 9x8x8\nCONV(8, 3, p=1) - SCALE(0.17) - { ID + CONV(8, 1) - SCALE(-2) } - RELU - CONV(4, 1)",
    "upsample": "input 9x8x8\nCONV(8, 3, p=1) - UPSAMPLE(2) - CONV(4, 3, p=1) - UPSAMPLE((2, 3), mode=bilinear) - RELU"
                " - UPSAMPLE(3, mode=bilinear) - CONV(4, 1)",
    "hrnet_fuse": "input 8x8x8\nCONV(8, 3, p=1) - { ID + CONV(8, 3, s=2, p=1) - RELU - CONV(8, 1) - UPSAMPLE(2) } - RELU"
                  " - CONV(4, 1)",
    "tf_same": "input 9x8x8\nCONV(8, 3, s=2, p=tf_same) - CONV(8, (2, 4), s=(1, 3), d=(2, 1), p=tf_same)"
               " - MAXPOOL(3, s=2, p=tf_same) - AVGPOOL(3, s=2, p=tf_same) - CONV(4, 1)",
    "tf_same_nopad": "input 8x8x8\nCONV(8, 1, s=2, p=tf_same) - MAXPOOL(2, s=2, p=tf_same) - AVGPOOL(2, s=1, p=tf_same)"
                     " - CONV(4, 1)",
    "eca": "input 9x8x8\nCONV(16, 1) - { ID .* GAP - CHANCONV - SIGMOID } - CHANCONV(3, circular=true)"
           " - CHANCONV(5, bias=true) - RELU - GAP - FC(12) - CHANCONV(5) - CHANCONV(3, circular=true)",
    "split_attention": "input 9x8x8\nCONV(8, 1) - { ID .* GAP - CONV(8, 1) - SOFTMAX(groups=2) } - { ID .* GAP"
                       " - CONV(12, 1) - SOFTMAX(groups=3, card=2) - CONV(8, 1) } - SOFTMAX(groups=4) - CONV(4, 1) - GAP"
                       " - FC(12) - SOFTMAX(groups=2, card=3)",
    "stdconv": "input 9x8x8\nSTDCONV(8, 3, p=1) - RELU - SCALEDSTDCONV(8, 3, s=2, p=tf_same, gamma=1.7, gain=0.5)"
               " - STDCONV(6, 1, eps=1e-8, bias=true) - SCALEDSTDCONV(6, 3, p=same, groups=3, bias=false)",
    "copies": "input 9x8x8\nCONV(8, 1) - { ID + CONV(8, 1) + (CONV(8, 3, p=1) - RELU)**3 } - RELU"
              " - { SPLIT(0, parts=2) + SPLIT(i + 1, parts=2)**1 @i } - CONV(4, 1)",
    # GhostNetV2's DFC attention on a 7x7 volume: pooled to 3x3, back to 7x7 by nearest (each output reads floor(3i/7))
    "upsample_size": "input 7x7x8\nCONV(8, 3, p=1) - { ID .* AVGPOOL(2, s=2) - CONV(8, 1) - SIGMOID - UPSAMPLE(size=7) }"
                     " - AVGPOOL(2, s=2) - UPSAMPLE(size=(5, 4)) - CONV(4, 1)",
    # BiT's stem: zeros (not the max pool's -inf) around a conv's signed output, then an unpadded pool
    "zero_pad": "input 9x8x8\nSTDCONV(8, 7, s=2, p=3) - PAD(1, 1, 1, 1) - MAXPOOL(3, s=2) - PAD(2, 2, 1, 1) - RELU - CONV(4, 3)",
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


def test_compiled_source_equals_to_torch_and_keeps_words_as_words():
    """Inside a def, `mode=bilinear` and `p=tf_same` are the arguments' words, never learnt as `let`s."""
    from test_pytorch_source import load_class, top_name
    text = ("input 8x8x4\ndef up(c, m=bilinear) = CONV(c, 3, s=2, p=tf_same) - UPSAMPLE(2, mode=m) - SCALE(0.5)"
            " - { ID .* GAP - CHANCONV - SOFTMAX(groups=2) }\nup(8) - up(8, m=nearest) - STDCONV(4, 1)")
    net = cnndsl.loads(text)
    src = net.torch_source()
    assert "BILINEAR" not in src and "TF_SAME" not in src and "class Up(nn.Module):" in src
    m = net.to_torch(seed=0).eval()
    other = load_class(src, top_name(src))()
    other.load_state_dict(m.state_dict())
    x = torch.randn(2, 4, 8, 8)
    with torch.no_grad():
        assert torch.equal(other.eval()(x), m(x))


def test_words_are_checked():
    with pytest.raises(cnndsl.CnnError, match="is one of nearest, bilinear, got same"):
        cnndsl.loads("input 8x8x4\nUPSAMPLE(2, mode=same)")
    with pytest.raises(cnndsl.CnnError, match="`mode` is one of nearest, bilinear, got trilinear"):
        cnndsl.loads("input 8x8x4\nUPSAMPLE(2, mode=trilinear)")
    with pytest.raises(cnndsl.CnnError, match="whole number or adaptive"):
        cnndsl.loads("input 8x8x4\nCHANCONV(nearest)")


# ---- copies of a branch side by side ---------------------------------------------------------------------------
def test_copies_are_the_branches_spelled_out():
    short = cnndsl.loads("input 6x6x4\n{ BN + CONV(4, 1) - BN + (CONV(4, 3, p=1) - BN)**4 } - RELU")
    long = cnndsl.loads("input 6x6x4\n{ BN + CONV(4, 1) - BN + CONV(4, 3, p=1) - BN + CONV(4, 3, p=1) - BN"
                        " + CONV(4, 3, p=1) - BN + CONV(4, 3, p=1) - BN } - RELU")
    a, b = short.report(), long.report()
    assert [(l["name"], l["inputs"], l["out"]) for l in a["layers"]] == [(l["name"], l["inputs"], l["out"]) for l in b["layers"]]
    assert a["totals"] == b["totals"]
    x = torch.randn(2, 4, 6, 6)
    m1, m2 = short.to_torch(seed=3).eval(), long.to_torch(seed=3).eval()
    with torch.no_grad():
        assert torch.equal(m1(x), m2(x))


def test_copies_see_their_index_and_counts_from_parameters():
    rep = layers("input 4x4x12\ndef attn(r) = { SPLIT(0, parts=r) + SPLIT(i + 1, parts=r)**(r - 1) @i }\nattn(3) - attn(1)")
    assert rep["attn1.add1"]["inputs"] == ["attn1.split1", "attn1.split2", "attn1.split3"]
    assert [l["desc"] for n, l in rep.items() if n.startswith("attn1.split")] == ["0/3", "1/3", "2/3"]
    assert "attn2.add1" not in rep and rep["attn2.split1"]["out"] == [4, 4, 4]  # one branch left: no join
    from cnndsl.lang.printer import format_program
    prog = cnndsl.parse("input 4x4x12\ndef attn(r) = { SPLIT(0, parts=r) + SPLIT(i + 1, parts=r)**(r - 1) @i }\nattn(3)")
    assert "SPLIT(i + 1, parts=r)**(r - 1) @i }" in format_program(prog)


@pytest.mark.parametrize("text,code,message", [
    ("(CONV(4, 3, p=1) - BN)**4", "E101", "copies a whole branch of braces"),
    ("{ ID + CONV(4, 1) - BN**4 }", "E101", "copies a whole branch of braces"),
    ("{ CONV(4, 1)**2 }", "E101", "copies stand beside another branch"),
    ("{ ID + RELU**2000 }", "E401", "more than the 1,000 one join may take"),
    ("{ ID + RELU**2 @i }*2 @i", "E207", "index `i` is already bound"),
    ("{ ID + RELU**(-1) }", "E206", "cannot be negative"),
])
def test_copies_refusals(text, code, message):
    with pytest.raises(cnndsl.CnnError) as e:
        cnndsl.loads(f"input 4x4x4\n{text}")
    assert (e.value.code, message in e.value.message + str(e.value.hint)) == (code, True), str(e.value)


def test_copies_built_as_an_ast_elsewhere_are_refused():
    """The grammar only makes copies as a branch of braces; an AST built by code may put them anywhere:
    the printer refuses to print it, the elaborator to build it."""
    import dataclasses
    from cnndsl.lang import astnodes as A
    from cnndsl.lang.printer import format_expr
    prog = cnndsl.parse("input 4x4x4\n{ ID + RELU**2 }")
    copies = prog.net.items[1]
    with pytest.raises(cnndsl.CnnError, match="cannot print copies"):
        format_expr(A.Seq((copies, copies.body), copies.span))
    with pytest.raises(cnndsl.CnnError, match="belongs inside braces"):
        dataclasses.replace(prog, net=copies).bind()


# ---- a new kind: one file, no other edit -----------------------------------------------------------------------
NEW_KIND = '''"""A test kind: x * x or x * |x| (an enumerated argument), with a module of its own."""
from .base import HE_PASS, NO_TENSORS, OWN, Arg, Kind, torch_module


class Square(Kind):
    name = "SQUARE"
    args = (Arg("how", "word", "plain", choices=("plain", "signed")),)
    elementwise_ops = 1
    memory, output_overwritable, he, draw_group = OWN, True, HE_PASS, "activation"
    samples = ("SQUARE", "SQUARE(how=signed)")

    def tensors(self, attrs, ins):
        return NO_TENSORS

    def saved(self, attrs, ins, out, inplace=False):
        return (("in",), 0)

    def torch_module(self, attrs, ins, inplace):
        return torch_module("cnndsl.Squared", (("signed", attrs["how"] == "signed"),), spec=())

    def onnx(self, b, n, xs):
        other = b.node("Abs", xs[:1], n, out=f"{n.name}:abs") if n.attrs["how"] == "signed" else xs[0]
        b.node("Mul", [xs[0], other], n)


def torch_modules():
    from torch import nn

    class Squared(nn.Module):
        def __init__(self, signed: bool):
            super().__init__()
            self.signed = signed

        def forward(self, x):
            return x * (x.abs() if self.signed else x)

    return {"Squared": Squared}
'''

CHECK = r'''
import torch, numpy as np, onnxruntime as ort, cnndsl
text = "input 6x6x3\ndef unit(c, h=signed) = CONV(c, 3, p=1) - SQUARE(how=h)\nunit(4) - unit(4, h=plain) - SQUARE - GAP - FC(3)"
net = cnndsl.loads(text)
rep = net.report()
assert [l["op"] for l in rep["layers"]].count("SQUARE") == 3 and rep["totals"]["params"] == 112 + 148 + 15, rep["totals"]
m = net.to_torch(seed=0).eval()
x = torch.randn(2, 3, 6, 6)
y = m(x).detach()
src = net.torch_source()
assert "class Squared(nn.Module):" in src and "SIGNED" not in src, src
scope = {}
exec(compile(src, "gen.py", "exec"), scope)
other = next(v for k, v in scope.items() if k == "Net")()
other.load_state_dict(m.state_dict())
assert torch.equal(other.eval()(x), y)
onnx_model = net.to_onnx(weights=m, opset=13)
sess = ort.InferenceSession(onnx_model.SerializeToString())
got = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]
assert np.abs(got - y.numpy()).max() <= 1e-4 * np.abs(y.numpy()).max(), "onnx"
from cnndsl.draw import draw
assert "SQUARE" in draw(net)
# a saved module loads where no backend has built the kinds' modules yet (a fresh process): pickle finds
# them by module and name, and the kind's file builds them then
import io, sys
buf = io.BytesIO()
torch.save(net.to_torch(seed=0), buf)
for mod in [m for name, m in sys.modules.items() if name.startswith("cnndsl.kinds.")]:
    for name in list(vars(mod).pop("_torch_classes", {})):
        delattr(mod, name)
again = torch.load(io.BytesIO(buf.getvalue()), weights_only=False)
assert type(again.square1).__module__ == "cnndsl.kinds.square" and torch.equal(again.eval()(x), y)
print("ok")
'''


def test_a_kind_in_a_file_of_its_own_needs_no_other_edit(tmp_path):
    """Copy the package, add cnndsl/kinds/square.py (a kind with an enumerated argument and a PyTorch module
    of its own), and nothing else: report, PyTorch, compiled source, ONNX Runtime and the diagram take it."""
    import shutil
    shutil.copytree(os.path.join(ROOT, "cnndsl"), tmp_path / "cnndsl",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    shutil.copytree(os.path.join(ROOT, "grammars"), tmp_path / "grammars")
    (tmp_path / "cnndsl" / "kinds" / "square.py").write_text(NEW_KIND)
    out = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, cwd=tmp_path, timeout=300,
                         env={**os.environ, "PYTHONPATH": str(tmp_path), "OMP_NUM_THREADS": "1"})
    assert out.stdout.strip() == "ok", out.stderr[-3000:]
