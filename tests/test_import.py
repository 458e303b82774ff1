"""`cnndsl import`: ONNX files, PyTorch modules and Caffe prototxts as `.net` specs (cnndsl/importers/).

Every import here is checked against its source: the same parameters and MACs as the spec the source
was made from (its report), the same outputs on a random input (onnxruntime on the ONNX file, or the
module itself, against the import's to_torch() with the imported weights), and where a prototxt has a
twin in nets/, that twin's figures. Zoo nets run at 64x64 by default (their parameters do not depend
on the input; the MACs are compared at the same size); CNNDSL_FULL_ZOO=1 runs them at their own input,
every kind through every exporter, and ResNet-50's fold beside ResNet-18's.
"""
import os
import re
import subprocess
import sys
import warnings

import numpy as np
import pytest

import cnndsl
from cnndsl import CnnError
from cnndsl.importers import import_model, import_onnx, import_prototxt, import_torch
from cnndsl.kinds import KINDS

import caffe_nets as CAFFE

ROOT = os.path.join(os.path.dirname(__file__), "..")
FULL = bool(os.environ.get("CNNDSL_FULL_ZOO"))
torch = pytest.importorskip("torch")
torch.set_num_threads(1)


def export(module, shape, path, opset=13):
    """torch.onnx.export, as the acceptance check does it (the TorchScript exporter, not cnndsl's)."""
    x = torch.randn(1, shape[2], shape[0], shape[1]) if len(shape) == 3 else torch.randn(1, shape[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module.eval(), (x,), str(path), opset_version=opset, dynamo=False)
    return path


def figures(net, folded=False):
    """Params and MACs; `folded`: as an eval-mode torch.onnx.export leaves them, a BatchNorm folded into
    the biased conv before it (imported as CONV(bias=false) - BN: the conv's bias is the BN's shift)."""
    t = net.report()["totals"]
    convs = [net.graph[n.inputs[0]] for n in net.graph.nodes if n.op == "BN" and n.inputs[0] in net.graph]
    biases = sum(c.attrs["filters"] for c in convs if c.op == "CONV" and c.attrs["bias"]) if folded else 0
    return t["params"] - biases, t["macs"]


def weighted_layers(net):
    """(op, volume, params, MACs) of every layer with weights or MACs, in no particular order: what an
    import must keep, whatever order its branches take."""
    return sorted((l["op"], tuple(l["out"]), l["params"], l["macs"]) for l in net.report()["layers"]
                  if l["params"] or l["macs"])


def volumes(net):
    """(op, volume) of every layer, sorted: the shapes an import must make, whatever its labels and blocks."""
    return sorted((l["op"], tuple(l["out"])) for l in net.report()["layers"])


def roundtrip(tmp_path, name, input=None, opset=13):
    net = cnndsl.load(os.path.join(ROOT, "nets", f"{name}.net"), input=input)
    path = export(net.to_torch(seed=0), net.graph.input_shape, tmp_path / f"{name}.onnx", opset)
    imported = import_onnx(path)
    result = imported.check()
    assert (result["params"], result["macs"]) == figures(net)
    assert result["max_abs_diff"] <= 1e-5 * max(1.0, result["output_scale"])
    return net, imported


def spec_lines(text):
    return [l for l in text.splitlines() if l.strip() and not l.strip().startswith("#")]


# ---- the acceptance nets through torch.onnx.export --------------------------------------------------
def test_lenet5_round_trips_with_its_labels(tmp_path):
    net, imp = roundtrip(tmp_path, "lenet5")
    assert weighted_layers(imp.net) == weighted_layers(net)
    assert spec_lines(imp.text) == [
        "input 32x32x1",
        "c1: CONV(6, 5) - TANH - AVGPOOL(2) - c3: CONV(16, 5) - TANH - AVGPOOL(2) - c5: CONV(120, 5) - TANH",
        "- f6: FC(84) - TANH - output: FC(10)"]


def test_resnet18_folds_into_a_residual_block_and_unfolds_its_batch_norms(tmp_path):
    net, imp = roundtrip(tmp_path, "resnet18", input="32x32x3")
    assert weighted_layers(imp.net) == weighted_layers(net)
    text = " ".join(imp.text.split())
    assert "def residual(c, s=1, downsample=off) = {" in text
    assert "+ downsample: (CONV(c, 1, s=s, bias=false) - BN)?" in text
    assert "residual(64)*2 - residual(128, s=2, downsample=on)" in text
    assert "# note: the exporter folded BatchNorm into 20 convolutions;" in text
    assert len(spec_lines(imp.text)) <= 2 * len(spec_lines(open(os.path.join(ROOT, "nets/resnet18.net")).read()))
    assert imp.net.notes[0].startswith("the exporter folded BatchNorm")  # what `cnndsl report` prints


@pytest.mark.skipif(not FULL, reason="the fold ResNet-18 shows by default, at 50 layers: CNNDSL_FULL_ZOO=1 runs it")
def test_resnet50_is_one_bottleneck_def_called_in_four_stages(tmp_path):
    net, imp = roundtrip(tmp_path, "resnet50", input="32x32x3", opset=17)
    defs = re.findall(r"^def (\w+)\(([^)]*)\)", imp.text, re.M)
    assert defs == [("residual", "c, s=1, downsample=off")]
    calls = re.findall(r"residual\((\d+)[^)]*\)(?:\*(\d))?", imp.text)
    assert [(int(c), int(n or 1)) for c, n in calls] == [(64, 1), (64, 2), (128, 1), (128, 3), (256, 1), (256, 5),
                                                        (512, 1), (512, 2)]
    assert "CONV(4 * c, 1, bias=false) - BN" in imp.text
    assert len(spec_lines(imp.text)) <= len(spec_lines(open(os.path.join(ROOT, "nets/resnet50.net")).read()))


ZOO = ["mobilenet_v2", "densenet121", "googlenet", "squeezenet1_0"]
EXPORTED = ZOO if FULL else ["mobilenet_v2", "squeezenet1_0"]  # torch.onnx.export of DenseNet takes 5 s here


@pytest.mark.parametrize("name", EXPORTED)
def test_zoo_nets_import_with_the_same_figures_and_outputs(tmp_path, name):
    net, imp = roundtrip(tmp_path, name, input=None if FULL else "32x32x3")
    assert weighted_layers(imp.net) == weighted_layers(net)
    assert re.search(r"^def \w+", imp.text, re.M)


@pytest.mark.parametrize("name", ZOO)
def test_zoo_nets_through_torch_fx(name):
    net = cnndsl.load(os.path.join(ROOT, "nets", f"{name}.net"), input=None if FULL else "32x32x3")
    imp = import_torch(net.to_torch(seed=0))
    result = imp.check()
    assert result["max_abs_diff"] <= 1e-5 * max(1.0, result["output_scale"])
    assert figures(imp.net) == figures(net) and weighted_layers(imp.net) == weighted_layers(net)
    assert re.search(r"^def \w+", imp.text, re.M)


@pytest.mark.skipif(not FULL, reason="exports 0.5 GB of weights; CNNDSL_FULL_ZOO=1 runs it")
@pytest.mark.parametrize("name", ["vgg11", "vgg16", "resnet18", "resnet50", "densenet121", "efficientnet_b0",
                                  "alexnet_227", "inception_v3", "shufflenet_v2_x1_0", "mobilenet_v3_small",
                                  "convnext_tiny", "regnet_y_400mf", "dpn92"])
def test_full_zoo_round_trips_and_folds(tmp_path, name):
    net, imp = roundtrip(tmp_path, name)
    if name.startswith(("resnet", "vgg", "densenet", "efficientnet")):
        assert re.search(r"\bdef\b|\)\s*\*\s*\w", imp.text)
        assert len(spec_lines(imp.text)) <= 2 * max(10, len(spec_lines(open(os.path.join(ROOT, f"nets/{name}.net")).read())))


def test_a_newer_opset_and_cnndsls_own_exporter(tmp_path):
    roundtrip(tmp_path, "squeezenet1_0", input="64x64x3", opset=20)
    net = cnndsl.loads("input 16x16x3\n{ ID + CONV(3, 3, p=1) - BN - GELU } - LAYERNORM - SHUFFLE(3)"
                       " - ADAPTIVEAVGPOOL((3, 2)) - FC(4) - SOFTMAX")
    path = tmp_path / "own.onnx"
    net.to_onnx(str(path), weights=net.to_torch(seed=0))
    imp = import_onnx(path)
    assert imp.check()["max_abs_diff"] < 1e-5
    assert figures(imp.net) == figures(net)
    assert ("{ conv1: CONV(3, 3, p=1) - bn1: BN - GELU + ID } - layernorm1: LAYERNORM - SHUFFLE(3) - ADAPTIVEAVGPOOL((3, 2))"
            " - fc1: FC(4) - SOFTMAX") in " ".join(imp.text.split())  # labels from the initializers' names (conv1.weight)


# ---- every kind of the language ---------------------------------------------------------------------
# The kinds of the timm issue's second round (24) landed after the importer lifted the first round's: it
# does not lift them yet (a known gap, listed here so that it shows in every run, not skipped silently)
NOT_YET = {"BLURPOOL", "GRN", "SPACETODEPTH", "STARRELU", "AFFINE", "PAD"}


def _samples():
    # torch.onnx.export refuses adaptive pools to sizes that do not divide (and writes CONV(4, (2, 5), s=(3, 2),
    # p=tf_same, d=(2, 1))'s padding of H as -1, -1: its tracer misreads Conv2dSame's size arithmetic)
    out = []
    for kind in KINDS.values():
        for sample in kind.samples:
            if "(3, 2)" not in sample:
                gap = kind.name in NOT_YET or "bias=false" in sample and kind.name == "LAYERNORM"
                marks = [pytest.mark.xfail(reason="the importer does not lift these kinds yet")] if gap else []
                out.append(pytest.param((kind.name, sample), marks=marks))
    return out


EXPORTERS = ("torch13", "torch18", "own", "fx")
# what an exporter may write a kind as, computing the same: torch writes ADAPTIVEAVGPOOL(2) of 8x8 as an
# AveragePool 4/4, x * sigmoid(x) is SILU, channels 0..1 of 4 are SPLIT(0); ID, DROPOUT (and DROPPATH,
# an identity at inference) leave no node in an exported graph
SAME = {"ADAPTIVEAVGPOOL": {"AVGPOOL", "GAP"}, "ADAPTIVEMAXPOOL": {"MAXPOOL"}, "CHANNELS": {"SPLIT"},
        "MUL": {"SILU"}, "ID": {"CONV"}, "DROPOUT": {"CONV"}, "DROPPATH": {"CONV"}}


@pytest.mark.parametrize("case", _samples(), ids=lambda v: v[1] if isinstance(v, tuple) else "")
def test_every_kind_imports_to_itself(tmp_path, case):
    """Each kind's samples after CONV - RELU, exported by torch at opset 13 and traced with torch.fx, and
    with CNNDSL_FULL_ZOO=1 also exported by torch at opset 18 and by cnndsl's own exporter. The import has
    the kind's figures (less the bias of a conv torch folded a BN into) and outputs."""
    kind, sample = case
    net = cnndsl.loads(f"input 8x8x4\nCONV(4, 1) - RELU - {sample}")
    ways = EXPORTERS if FULL else ("torch13", "fx")
    for way in ways:
        model = net.to_torch(seed=0)
        if way == "fx":
            imp = import_torch(model)
        elif way == "own":
            net.to_onnx(str(tmp_path / "k.onnx"), weights=model)
            imp = import_onnx(tmp_path / "k.onnx")
        else:
            imp = import_onnx(export(model, (8, 8, 4), tmp_path / "k.onnx", int(way[5:])))
        result = imp.check()
        assert (result["params"], result["macs"]) == figures(net, folded=way.startswith("torch")), (way, imp.text)
        assert ({kind} | SAME.get(kind, set())) & {n.op for n in imp.net.graph.nodes}, (way, imp.text)


# ---- PyTorch modules through torch.fx ----------------------------------------------------------------
def test_a_cnndsl_module_imports_exactly(tmp_path):
    net = cnndsl.load(os.path.join(ROOT, "nets/resnet18.net"), input="32x32x3")
    imp = import_torch(net.to_torch(seed=0))
    assert imp.check()["max_abs_diff"] == 0.0
    assert figures(imp.net) == figures(net)
    assert "def residual(c, s=1, downsample=off)" in imp.text
    # the module tree's names: labels (not those that only name the kind: `relu`, `fc`), groups of a container
    assert " ".join(spec_lines(imp.text)[-4:]).endswith(
        "conv1: CONV(64, 7, s=2, p=3, bias=false) - bn1: BN - RELU - MAXPOOL(3, s=2, p=1) - layer1: residual(64)*2 "
        "- layer2: [residual(128, s=2, downsample=on) - residual(128)] - layer3: [residual(256, s=2, downsample=on) "
        "- residual(256)] - layer4: [residual(512, s=2, downsample=on) - residual(512)] - avgpool: GAP - FC(1000)")


def test_stochastic_depth_rising_by_block_is_an_indexed_repeat():
    """ConvNeXt's drop-path probability rises by 1/170 a block: one call a stage, `*n @i`."""
    net = cnndsl.load(os.path.join(ROOT, "nets/convnext_tiny.net"), input="32x32x3")
    imp = import_torch(net.to_torch(seed=0))
    assert imp.check()["max_abs_diff"] == 0.0 and figures(imp.net) == figures(net)
    text = " ".join(imp.text.split())
    for call in ("residual(96, i / 170)*3 @i", "residual(192, (3 + i) / 170)*3 @i", "residual(384, (6 + i) / 170)*9 @i",
                 "residual(768, (15 + i) / 170)*3 @i"):
        assert call in text
    drops = [n.attrs["p"] for n in imp.net.graph.nodes if n.op == "DROPPATH"]
    assert np.allclose(drops, [n.attrs["p"] for n in net.graph.nodes if n.op == "DROPPATH"], rtol=1e-12, atol=0)


class Hand(torch.nn.Module):
    """Leaf modules and functional calls together: a residual block, an SE gate, a channel shuffle of
    chunks, a layer scale held as a bare parameter, activations called as functions."""

    def __init__(self):
        super().__init__()
        nn = torch.nn
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(inplace=True))
        self.conv_a = nn.Conv2d(16, 16, 3, padding=1)
        self.conv_b = nn.Conv2d(8, 8, 1)
        self.se_down, self.se_up = nn.Conv2d(16, 4, 1), nn.Conv2d(4, 16, 1)
        self.gamma = nn.Parameter(torch.rand(16, 1, 1) + 0.5)
        self.pool = nn.MaxPool2d(2, ceil_mode=True)
        self.head = nn.Linear(16, 5)

    def forward(self, x):
        F = torch.nn.functional
        x = self.stem(x)
        x = x + self.gamma * F.gelu(self.conv_a(x), approximate="tanh")
        gate = torch.sigmoid(self.se_up(F.relu(self.se_down(F.adaptive_avg_pool2d(x, 1)))))
        x = x * gate
        a, b = x.chunk(2, dim=1)
        x = torch.cat([a, F.leaky_relu(self.conv_b(b), 0.2)], 1)
        n, c, h, w = x.shape
        x = x.view(n, 2, c // 2, h, w).transpose(1, 2).contiguous().view(n, c, h, w)
        x = self.pool(x * F.relu6(x + 3) / 6)  # hardswish, written out
        return self.head(torch.flatten(x.mean((2, 3), keepdim=True), 1))


def test_a_hand_written_module_imports_with_its_functional_calls():
    model = Hand()
    imp = import_torch(model, input="9x9x3")
    result = imp.check()
    assert result["max_abs_diff"] <= 1e-5 * max(1.0, result["output_scale"])
    assert result["params"] == sum(p.numel() for p in model.parameters())
    ops = [n.op for n in imp.net.graph.nodes if not n.implicit]
    for kind in ("LAYERSCALE", "GELU", "MUL", "SPLIT", "LEAKYRELU", "SHUFFLE", "HARDSWISH", "GAP", "SIGMOID"):
        assert kind in ops, kind
    assert "MAXPOOL(2, ceil=true)" in imp.text and "stem" not in imp.text  # Sequential indices are no names


def test_a_module_from_package_module_callable(tmp_path, monkeypatch):
    (tmp_path / "mynets.py").write_text("import torch.nn as nn\n"
                                        "def small():\n"
                                        "    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(288, 4))\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    imp = import_model("mynets:small", input="8x8x3")
    assert spec_lines(imp.text) == ["input 8x8x3", "CONV(8, 3) - RELU - FC(4)"]
    assert imp.check()["max_abs_diff"] < 1e-6
    with pytest.raises(CnnError, match="cannot import no_such_package"):
        import_model("no_such_package.models:net")
    with pytest.raises(CnnError, match="not a torch.nn.Module"):
        import_model("os:getcwd")


def test_what_fx_cannot_import_is_named():
    class Branchy(torch.nn.Module):
        def forward(self, x):
            return x if x.sum() > 0 else -x

    with pytest.raises(CnnError, match="torch.fx cannot trace it"):
        import_torch(Branchy(), input="4x4x3")

    class Up(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.up = torch.nn.Conv2d(3, 4, 1), torch.nn.PixelShuffle(2)  # no kind of the language

        def forward(self, x):
            return self.up(self.conv(x))
    with pytest.raises(CnnError) as e:
        import_torch(Up(), input="4x4x3")
    assert "module:PixelShuffle `up` (node 3 of 4): no layer of the language is a PixelShuffle" in str(e.value)


def test_equal_branches_are_copies(tmp_path):
    """MobileOne's over-parameterised block: four equal branches are `(CONV - BN)**4`, through both readers."""
    net = cnndsl.loads("input 8x8x4\nCONV(4, 1) - { BN + (CONV(4, 3, p=1) - BN)**4 } - RELU - { ID | CONV(2, 1)**2 }")
    for imp in (import_torch(net.to_torch(seed=0)), import_onnx(export(net.to_torch(seed=0), (8, 8, 4), tmp_path / "m.onnx"))):
        result = imp.check()
        assert result["max_abs_diff"] <= 1e-5 * max(1.0, result["output_scale"])
        assert "(CONV(4, 3, p=1, bias=false) - BN)**4" in imp.text or "(CONV(4, 3, p=1) - BN)**4" in imp.text
        assert "CONV(2, 1)**2" in imp.text and volumes(imp.net) == volumes(net)


# ---- timm's layers: written with plain torch here (timm is no dependency), and a recorded ONNX file --------
def _same_pad(size, k, s, d):
    return max((-(-size // s) - 1) * s + (k - 1) * d + 1 - size, 0)


def _pad_same(x, kernel, stride, dilation=(1, 1), value=0.0):
    """timm.layers.padding.pad_same: the input's own size read, which torch.fx cannot trace."""
    ih, iw = x.size()[-2:]
    ph, pw = _same_pad(ih, kernel[0], stride[0], dilation[0]), _same_pad(iw, kernel[1], stride[1], dilation[1])
    return torch.nn.functional.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2), value=value)


class Conv2dSame(torch.nn.Conv2d):
    """timm.layers.conv2d_same.Conv2dSame."""

    def forward(self, x):
        x = _pad_same(x, self.weight.shape[-2:], self.stride, self.dilation)
        return torch.nn.functional.conv2d(x, self.weight, self.bias, self.stride, (0, 0), self.dilation, self.groups)


class MaxPool2dSame(torch.nn.MaxPool2d):
    """timm.layers.pool2d_same.MaxPool2dSame."""

    def forward(self, x):
        x = _pad_same(x, (self.kernel_size,) * 2, (self.stride,) * 2, value=-float("inf"))
        return torch.nn.functional.max_pool2d(x, self.kernel_size, self.stride, 0, self.dilation, self.ceil_mode)


class StdConv2d(torch.nn.Conv2d):
    """timm.layers.std_conv.StdConv2d (ScaledStdConv2d with `gamma`: its scale and learnt gain too)."""

    def __init__(self, c_in, c_out, k, stride=1, padding=1, bias=False, eps=1e-6, gamma=None, gain_init=1.0):
        super().__init__(c_in, c_out, k, stride=stride, padding=padding, bias=bias)
        self.eps = eps
        if gamma is not None:
            self.gain = torch.nn.Parameter(torch.full((c_out, 1, 1, 1), gain_init))
            self.scale = gamma * self.weight[0].numel() ** -0.5

    def forward(self, x):
        gain = (self.gain * self.scale).view(-1) if hasattr(self, "gain") else None
        w = torch.nn.functional.batch_norm(self.weight.reshape(1, self.out_channels, -1), None, None, weight=gain,
                                           training=True, momentum=0., eps=self.eps).reshape_as(self.weight)
        return torch.nn.functional.conv2d(x, w, self.bias, self.stride, self.padding, self.dilation, self.groups)


class EcaModule(torch.nn.Module):
    """timm.layers.eca.EcaModule (circular: CecaModule): pool, a Conv1d over the channels, gate."""

    def __init__(self, k=3, circular=False):
        super().__init__()
        self.pad = (k - 1) // 2 if circular else 0
        self.conv = torch.nn.Conv1d(1, 1, k, padding=0 if circular else (k - 1) // 2, bias=False)
        self.gate = torch.nn.Sigmoid()

    def forward(self, x):
        y = x.mean((2, 3)).view(x.shape[0], 1, -1)
        if self.pad:
            y = torch.nn.functional.pad(y, (self.pad, self.pad), mode="circular")
        y = self.gate(self.conv(y)).view(x.shape[0], -1, 1, 1)
        return x * y.expand_as(x)


class RadixGate(torch.nn.Module):
    """ResNeSt's split attention (timm.layers.split_attn.RadixSoftmax) as a gate; with card=None
    SKNet's softmax over the paths (timm.layers.selective_kernel, viewed back as channels)."""

    def __init__(self, c, radix=2, card=2):
        super().__init__()
        self.radix, self.card = radix, card
        self.fc1, self.fc2 = torch.nn.Conv2d(c, 8, 1), torch.nn.Conv2d(8, c, 1)

    def forward(self, x):
        a = self.fc2(torch.nn.functional.relu(self.fc1(x.mean((2, 3), keepdim=True))))
        B, C = a.shape[:2]
        if self.card is None:
            a = torch.softmax(a.view(B, self.radix, C // self.radix, 1, 1), dim=1).reshape(B, C, 1, 1)
        else:
            a = torch.nn.functional.softmax(a.view(B, self.card, self.radix, -1).transpose(1, 2), dim=1)
            a = a.reshape(B, -1).view(B, -1, 1, 1)
        return x * a


class FunctionalStdConv(torch.nn.Module):
    """A weight standardised and scaled in forward, then F.conv2d: NFNet's conv written out."""

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.randn(8, 8, 3, 3))
        self.gain = torch.nn.Parameter(torch.rand(8, 1, 1, 1) + 0.5)

    def forward(self, x):
        g = (self.gain * 1.7015043 * 72 ** -0.5).view(-1)
        w = torch.nn.functional.batch_norm(self.weight.reshape(1, 8, -1), None, None, weight=g, training=True,
                                           momentum=0., eps=1e-5).reshape_as(self.weight)
        return torch.nn.functional.conv2d(x, w, None, 1, 1)


def _timm_like():
    torch.manual_seed(0)
    nn = torch.nn
    return nn.Sequential(StdConv2d(3, 8, 3, stride=2), nn.ReLU(), Conv2dSame(8, 8, 3, stride=2), EcaModule(3),
                         MaxPool2dSame(3, 2), StdConv2d(8, 8, 3, bias=True, gamma=1.7015043, gain_init=0.5), nn.GELU(),
                         EcaModule(5, circular=True), RadixGate(8), RadixGate(8, card=None), FunctionalStdConv(),
                         nn.Upsample(scale_factor=2, mode="bilinear"), nn.Conv2d(8, 4, 1)).eval()


TIMM_LIKE = """input 15x15x3
STDCONV(8, 3, s=2, p=1) - RELU - CONV(8, 3, s=2, p=tf_same) - { ID .* GAP - CHANCONV(3) - SIGMOID }
- MAXPOOL(3, s=2, p=tf_same) - SCALEDSTDCONV(8, 3, p=1, gamma=1.7015043, gain=0.5) - GELU
- { ID .* GAP - CHANCONV(5, circular=true) - SIGMOID }
- { ID .* GAP - CONV(8, 1) - RELU - CONV(8, 1) - SOFTMAX(groups=2, card=2) }
- { ID .* GAP - CONV(8, 1) - RELU - CONV(8, 1) - SOFTMAX(groups=2) }
- SCALEDSTDCONV(8, 3, p=1, bias=false, eps=1e-5, gamma=1.7015043) - UPSAMPLE(2, mode=bilinear) - CONV(4, 1)"""


@pytest.mark.parametrize("way", ["fx", "onnx"])
def test_timm_like_modules_import_as_the_kinds_they_are(tmp_path, way):
    """timm's TensorFlow-SAME conv and pool, StdConv2d, ScaledStdConv2d with its gain, ECA and CECA, ResNeSt's
    and SKNet's softmax across groups, as timm writes them: through torch.fx (the SAME-padded ones as leaves,
    which fx cannot trace, judged by their outputs) and torch.onnx.export, each with the figures of the spec
    written by hand and the module's outputs."""
    model = _timm_like()
    imp = import_torch(model, input="15x15x3") if way == "fx" else import_onnx(export(model, (15, 15, 3), tmp_path / "t.onnx"))
    result = imp.check()
    assert result["max_abs_diff"] <= 1e-5 * max(1.0, result["output_scale"])
    want = cnndsl.loads(TIMM_LIKE)
    assert result["params"] == sum(p.numel() for p in model.parameters()) == want.report()["totals"]["params"]
    assert figures(imp.net) == figures(want) and weighted_layers(imp.net) == weighted_layers(want)
    assert volumes(imp.net) == volumes(want)
    text = " ".join(imp.text.split())
    if way == "fx":  # the module keeps gamma and the gains apart; the exporter multiplies them (a note says so)
        assert "SCALEDSTDCONV(8, 3, p=1, gamma=1.7015043, gain=0.5)" in text
        assert "SCALEDSTDCONV(8, 3, p=1, bias=false, eps=1e-05, gamma=1.7015043)" in text
    else:
        assert "SCALEDSTDCONV(8, 3, p=1, gain=0.850752)" in text and "folded SCALEDSTDCONV's gamma" in text


class SplitAttn(torch.nn.Module):
    """timm.layers.split_attn.SplitAttn (radix 2, no norm): the radix groups as a 5-d view, summed, gated."""

    def __init__(self, c=8, radix=2, card=1):
        super().__init__()
        self.radix, self.card = radix, card
        self.conv = torch.nn.Conv2d(c, c * radix, 3, padding=1, groups=card * radix, bias=False)
        self.fc1, self.fc2 = torch.nn.Conv2d(c, 16, 1, groups=card), torch.nn.Conv2d(16, c * radix, 1, groups=card)

    def forward(self, x):
        x = torch.relu(self.conv(x))
        B, RC, H, W = x.shape
        x = x.reshape((B, self.radix, RC // self.radix, H, W))
        gap = torch.relu(self.fc1(x.sum(dim=1).mean((2, 3), keepdim=True)))
        attn = self.fc2(gap).view(B, self.card, self.radix, -1).transpose(1, 2)
        attn = torch.nn.functional.softmax(attn, dim=1).reshape(B, -1).view(B, -1, 1, 1)
        return (x * attn.reshape((B, self.radix, RC // self.radix, 1, 1))).sum(dim=1).contiguous()


class SelectiveKernel(torch.nn.Module):
    """timm.layers.selective_kernel.SelectiveKernel: paths of 3x3 convs dilated 1 and 2 on halves of the
    input, stacked, a softmax across them, summed; its BatchNormAct2d as F.batch_norm, then the act."""

    def __init__(self, c=8):
        super().__init__()
        self.paths = torch.nn.ModuleList(torch.nn.Conv2d(c // 2, c, 3, padding=d, dilation=d, bias=False) for d in (1, 2))
        self.bn = torch.nn.ModuleList(torch.nn.BatchNorm2d(c) for _ in range(2))
        self.fc_reduce, self.fc_select = torch.nn.Conv2d(c, 8, 1, bias=False), torch.nn.Conv2d(8, 2 * c, 1, bias=False)
        with torch.no_grad():
            for bn in self.bn:
                bn.running_mean.normal_(), bn.running_var.uniform_(0.5, 2), bn.weight.normal_()

    def forward(self, x):
        F = torch.nn.functional
        parts = torch.split(x, 4, 1)
        x = torch.stack([F.relu(F.batch_norm(conv(parts[i]), bn.running_mean, bn.running_var, bn.weight, bn.bias, False,
                                             0.0, bn.eps)) for i, (conv, bn) in enumerate(zip(self.paths, self.bn))], dim=1)
        a = self.fc_select(F.relu(self.fc_reduce(x.sum(1).mean((2, 3), keepdim=True))))
        B, C, H, W = a.shape
        a = torch.softmax(a.view(B, 2, C // 2, H, W), dim=1)
        return torch.sum(x * a, dim=1)


@pytest.mark.parametrize("way", ["fx", "onnx"])
def test_split_attention_and_selective_kernels_whole(tmp_path, way):
    """ResNeSt's and SKNet's blocks as timm writes them: 5-d views of channel groups, stacked, a softmax
    across them, summed over them. Each is a layer of the volume the view stands for (a CONCAT, a
    SOFTMAX(groups), a MUL, SPLITs added), through torch.fx (fx_groups.py) and torch.onnx.export
    (onnx_groups.py): the same outputs, and the figures of the spec written by hand."""
    torch.manual_seed(0)
    for model, spec in (
            (SplitAttn(), "CONV(16, 3, p=1, groups=2, bias=false) - RELU - { ID .* { SPLIT(0) + SPLIT(1) } - GAP "
                          "- CONV(16, 1) - RELU - CONV(16, 1) - SOFTMAX(groups=2) } - { SPLIT(0) + SPLIT(1) }"),
            (SplitAttn(card=2), "CONV(16, 3, p=1, groups=4, bias=false) - RELU - { ID .* { SPLIT(0) + SPLIT(1) } - GAP "
                                "- CONV(16, 1, groups=2) - RELU - CONV(16, 1, groups=2) - SOFTMAX(groups=2, card=2) } "
                                "- { SPLIT(0) + SPLIT(1) }"),
            (SelectiveKernel(), "{ SPLIT(0) - CONV(8, 3, p=1, bias=false) - BN - RELU "
                                "| SPLIT(1) - CONV(8, 3, p=2, d=2, bias=false) - BN - RELU } "
                                "- { ID .* { SPLIT(0) + SPLIT(1) } - GAP - CONV(8, 1, bias=false) - RELU "
                                "- CONV(16, 1, bias=false) - SOFTMAX(groups=2) } - { SPLIT(0) + SPLIT(1) }")):
        imp = import_torch(model.eval(), input="9x9x8") if way == "fx" else \
            import_onnx(export(model, (9, 9, 8), tmp_path / "m.onnx"))
        result = imp.check()
        assert result["max_abs_diff"] <= 1e-5 * max(1.0, result["output_scale"])
        want = cnndsl.loads("input 9x9x8\n" + spec)
        assert figures(imp.net) == figures(want) and volumes(imp.net) == volumes(want)


def test_timm_layers_exported_by_torch_import(tmp_path):
    """tests/reference/timm_layers.onnx: timm 1.0.31's own StdConv2d, create_conv2d(padding="same")
    (Conv2dSame), EcaModule, create_pool2d("max", padding="same") (MaxPool2dSame), ScaledStdConv2d (gain 0.5,
    gamma 1.7015043), CecaModule (its kernel 3, ECA's for 8 channels), nn.Upsample (bilinear), split_attn.RadixSoftmax(2, 2), exported by torch
    2.14 at opset 13 (the code that wrote it: TIMM_RECORD)."""
    imp = import_onnx(os.path.join(ROOT, "tests", "reference", "timm_layers.onnx"))
    result = imp.check()
    assert result["max_abs_diff"] <= 1e-5 * max(1.0, result["output_scale"])
    want = cnndsl.loads("""input 15x15x3
STDCONV(8, 3, s=2, p=1) - RELU - CONV(8, 3, s=2, p=tf_same, bias=false) - { ID .* GAP - CHANCONV(3) - SIGMOID }
- MAXPOOL(3, s=2, p=tf_same) - SCALEDSTDCONV(8, 3, p=1, gamma=1.7015043, gain=0.5) - GELU
- { ID .* GAP - CHANCONV(3, circular=true) - SIGMOID } - UPSAMPLE(2, mode=bilinear) - GAP - CONV(8, 1)
- SOFTMAX(groups=2, card=2) - CONV(4, 1)""")
    assert figures(imp.net) == figures(want) and weighted_layers(imp.net) == weighted_layers(want)
    assert volumes(imp.net) == volumes(want)
    assert [n.op for n in imp.net.graph.nodes if n.op in ("STDCONV", "SCALEDSTDCONV", "CHANCONV", "UPSAMPLE")] == \
        ["STDCONV", "CHANCONV", "SCALEDSTDCONV", "CHANCONV", "UPSAMPLE"]


# python with timm and onnx: `python -c "$TIMM_RECORD" tests/reference/timm_layers.onnx`
TIMM_RECORD = """import sys, warnings, torch
from timm import layers as L
torch.manual_seed(0)
m = torch.nn.Sequential(
    L.StdConv2d(3, 8, 3, stride=2), torch.nn.ReLU(), L.create_conv2d(8, 8, 3, stride=2, padding="same"),
    L.EcaModule(8), L.create_pool2d("max", 3, 2, padding="same"),
    L.ScaledStdConv2d(8, 8, 3, gamma=1.7015043, gain_init=0.5), torch.nn.GELU(), L.CecaModule(8, kernel_size=5),
    torch.nn.Upsample(scale_factor=2, mode="bilinear"), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Conv2d(8, 8, 1),
    L.split_attn.RadixSoftmax(2, 2), torch.nn.Unflatten(1, (8, 1, 1)), torch.nn.Conv2d(8, 4, 1)).eval()
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    torch.onnx.export(m, (torch.randn(1, 3, 15, 15),), sys.argv[1], opset_version=13, dynamo=False)
"""


def test_resize_and_same_upper_from_another_writer(tmp_path):
    """onnx.helper's Resize (PyTorch's nearest rounding; linear with align_corners is none of UPSAMPLE's modes)
    and auto_pad SAME_UPPER of uneven total (TensorFlow's SAME; SAME_LOWER, the larger half first, refused)."""
    import onnx
    import onnx.helper as h
    w = _tensor("w", np.random.default_rng(0).normal(size=(4, 3, 3, 3)))
    cases = {
        "nearest": ([h.make_node("Resize", ["x", "", "s"], ["y"], mode="nearest", coordinate_transformation_mode="asymmetric",
                                 nearest_mode="floor")], [_tensor("s", [1, 1, 2, 3])], "UPSAMPLE((2, 3))"),
        "corners": ([h.make_node("Resize", ["x", "", "s"], ["y"], mode="linear",
                                 coordinate_transformation_mode="align_corners")], [_tensor("s", [1, 1, 2, 2])],
                    "linear interpolation with coordinate_transformation_mode align_corners: not PyTorch's"),
        "upper": ([h.make_node("Conv", ["x", "w"], ["y"], auto_pad="SAME_UPPER", kernel_shape=[3, 3], strides=[2, 2])],
                  [w], "CONV(4, 3, s=2, p=tf_same, bias=false)"),
        "lower": ([h.make_node("Conv", ["x", "w"], ["y"], auto_pad="SAME_LOWER", kernel_shape=[3, 3], strides=[2, 2])],
                  [w], "SAME_LOWER padding is uneven"),
    }
    for name, (nodes, inits, want) in cases.items():
        onnx.save(_helper_model(nodes, inits, 13), str(tmp_path / f"{name}.onnx"))
        try:
            imp = import_onnx(tmp_path / f"{name}.onnx")
        except CnnError as e:
            assert want in str(e), (name, str(e))
            continue
        assert spec_lines(imp.text)[-1] == want, name
        result = imp.check()
        assert result["max_abs_diff"] <= 1e-5 * max(1.0, result["output_scale"])


# ---- Caffe prototxts ----------------------------------------------------------------------------------
def _prototxt(tmp_path, name, text, input=None):
    path = tmp_path / f"{name}.prototxt"
    path.write_text(text)
    return import_prototxt(path, input=input)


def _shipped(name):
    return figures(cnndsl.load(os.path.join(ROOT, "nets", f"{name}.net")))


def test_caffe_lenet_from_the_mnist_example(tmp_path):
    imp = _prototxt(tmp_path, "lenet", CAFFE.LENET, input="28x28x1")
    assert figures(imp.net) == (431080, 2293000)  # Caffe's MNIST LeNet: 20 and 50 5x5 filters, 500 hidden units
    assert spec_lines(imp.text)[1] == "conv1: CONV(20, 5) - MAXPOOL(2) - conv2: CONV(50, 5) - MAXPOOL(2) - ip1: FC(500) - RELU"
    assert imp.net.notes == ["left out, as training heads: accuracy (Accuracy), loss (SoftmaxWithLoss)"]
    with pytest.raises(CnnError, match="its input size is not in it"):
        _prototxt(tmp_path, "lenet", CAFFE.LENET)


def test_caffe_alexnet_two_towers_and_one(tmp_path):
    imp = _prototxt(tmp_path, "bvlc_alexnet", CAFFE.alexnet())
    assert figures(imp.net)[0] == 60965224  # bvlc_alexnet, 227x227x3 (DOMAIN.md)
    assert "conv2: CONV(256, 5, p=2, groups=2)" in imp.text
    one = _prototxt(tmp_path, "caffenet", CAFFE.alexnet(groups=False))
    assert figures(one.net) == _shipped("alexnet_227")
    assert imp.tensors is None
    with pytest.raises(CnnError, match="holds no weights"):
        imp.save(tmp_path / "a.net", weights=tmp_path / "a.safetensors")


def test_caffe_googlenet_rounds_its_pools_up(tmp_path):
    imp = _prototxt(tmp_path, "bvlc_googlenet", CAFFE.googlenet())
    # parameters by the paper's table: the stem, nine Inception modules, the classifier
    params, c = 7 * 7 * 3 * 64 + 64 + 64 * 64 + 64 + 9 * 64 * 192 + 192 + 1024 * 1000 + 1000, 192
    for c1, c3r, c3, c5r, c5, pp in CAFFE.INCEPTIONS.values():
        params += c * c1 + c1 + c * c3r + c3r + 9 * c3r * c3 + c3 + c * c5r + c5r + 25 * c5r * c5 + c5 + c * pp + pp
        c = c1 + c3 + c5 + pp
    assert figures(imp.net)[0] == params == 6998552
    volumes = [tuple(l["out"]) for l in imp.net.report()["layers"] if l["op"] in ("CONCAT", "MAXPOOL") and "." not in l["name"]]
    assert volumes == [(56, 56, 64), (28, 28, 192), (14, 14, 480), (7, 7, 832)]  # 112 -> 56: Caffe rounds up
    assert re.search(r"^def mixed\(c1, c2, c3, c4, c5, c6\)", imp.text, re.M)
    assert "MAXPOOL(3, s=2, ceil=true)" in imp.text and "MAXPOOL(3, s=1, p=1)" in imp.text


def test_caffe_vgg16_and_squeezenet_have_the_zoos_figures(tmp_path):
    assert figures(_prototxt(tmp_path, "vgg16", CAFFE.vgg16()).net) == _shipped("vgg16")
    sq = _prototxt(tmp_path, "squeezenet", CAFFE.squeezenet())
    assert figures(sq.net) == _shipped("squeezenet1_0")
    assert "MAXPOOL(3, s=2, ceil=true)" in sq.text


def test_caffe_v1_layers_batchnorm_scale_and_eltwise(tmp_path):
    text = """name: "v1" input: "data" input_dim: 1 input_dim: 3 input_dim: 8 input_dim: 8
layers { name: "conv" type: CONVOLUTION bottom: "data" top: "conv" convolution_param { num_output: 4 kernel_size: 3 pad: 1 bias_term: false } }
layer { name: "bn" type: "BatchNorm" bottom: "conv" top: "conv" batch_norm_param { eps: 0.001 } }
layer { name: "scale" type: "Scale" bottom: "conv" top: "conv" scale_param { bias_term: true } }
layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" relu_param { negative_slope: 0.1 } }
layer { name: "split" type: "Split" bottom: "conv" top: "a" top: "b" }
layer { name: "conv2" type: "Convolution" bottom: "a" top: "conv2" convolution_param { num_output: 4 kernel_size: 1 } }
layer { name: "sum" type: "Eltwise" bottom: "conv2" bottom: "b" top: "sum" }
layer { name: "pool" type: "Pooling" bottom: "sum" top: "pool" pooling_param { pool: AVE global_pooling: true } }
"""
    imp = _prototxt(tmp_path, "v1", text)
    assert " ".join(spec_lines(imp.text)) == ("input 8x8x3 CONV(4, 3, p=1, bias=false) - BN(eps=0.001) "
                                              "- LEAKYRELU(0.1) - { conv2: CONV(4, 1) + ID } - GAP")


def test_caffe_scaled_sums_powers_and_upsampling(tmp_path):
    """Inception-ResNet's scaled residual as Caffe writes it (Eltwise coeff), Power as a constant scale, the
    darknet ports' nearest Upsample; Caffe's Interp (corners aligned) and SegNet's unpooling refused."""
    head = 'input: "data" input_dim: 1 input_dim: 4 input_dim: 8 input_dim: 8\n'
    text = head + """
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv" convolution_param { num_output: 4 kernel_size: 1 } }
layer { name: "sum" type: "Eltwise" bottom: "data" bottom: "conv" top: "sum" eltwise_param { operation: SUM coeff: 1 coeff: 0.17 } }
layer { name: "relu" type: "ReLU" bottom: "sum" top: "sum" }
layer { name: "half" type: "Power" bottom: "sum" top: "half" power_param { scale: 0.5 } }
layer { name: "up" type: "Upsample" bottom: "half" top: "up" upsample_param { scale: 2 } }
"""
    imp = _prototxt(tmp_path, "scaled", text)
    want = cnndsl.loads("input 8x8x4\n{ ID + CONV(4, 1) - SCALE(0.17) } - RELU - SCALE(0.5) - UPSAMPLE(2)")
    assert " ".join(spec_lines(imp.text)[1:]) == "{ CONV(4, 1) - SCALE(0.17) + ID } - RELU - SCALE(0.5) - UPSAMPLE(2)"
    assert figures(imp.net) == figures(want) and volumes(imp.net) == volumes(want)
    for layer, message in (('type: "Interp" bottom: "data" top: "y" interp_param { zoom_factor: 2 }',
                            "interpolates with the corners aligned"),  # PSPNet's, DeepLab's
                           ('type: "Upsample" bottom: "data" bottom: "data" top: "y"', "SegNet's unpooling"),
                           ('type: "Power" bottom: "data" top: "y" power_param { power: 2 }', "power 2")):
        with pytest.raises(CnnError, match=message):
            _prototxt(tmp_path, "bad", head + f'layer {{ name: "y" {layer} }}')


@pytest.mark.parametrize("text,message", [
    ('layer { name: "c" type: "Convolution" bottom: "data" top: "c" convolution_param { num_output: 4 kernel_size: 3 }',
     r":1:\d+: not protobuf text"),
    ('input: "data" input_dim: 1 input_dim: 3 input_dim: 8 input_dim: 8\n'
     'layer { name: "up" type: "Deconvolution" bottom: "data" top: "up" }', r"Deconvolution `up` \(layer 1 of 1\)"),
    ('input: "data" input_dim: 1 input_dim: 3 input_dim: 8 input_dim: 8\n'
     'layer { name: "c" type: "Convolution" bottom: "x" top: "c" }', "reads `x`, which no layer before it makes"),
    ('name: "empty"', "no `layer { ... }` in it"),
])
def test_caffe_mistakes_are_errors(tmp_path, text, message):
    with pytest.raises(CnnError, match=message):
        _prototxt(tmp_path, "bad", text)


# ---- bad inputs: errors naming the node, never a traceback ---------------------------------------------
def _helper_model(nodes, inits, opset, shape=(1, 3, 8, 8), inputs=None):
    import onnx.helper as h
    x = inputs or [h.make_tensor_value_info("x", 1, list(shape))]
    y = h.make_tensor_value_info(nodes[-1].output[0], 1, None)
    return h.make_model(h.make_graph(nodes, "g", x, [y], inits), opset_imports=[h.make_opsetid("", opset)])


def _tensor(name, array):
    from onnx import numpy_helper
    return numpy_helper.from_array(np.asarray(array, np.float32), name)


def test_an_old_opset_from_another_writer_is_converted_and_imported(tmp_path):
    import onnx
    import onnx.helper as h
    rng = np.random.default_rng(0)
    inits = [_tensor("w", rng.standard_normal((4, 3, 3, 3))), _tensor("b", rng.standard_normal(4)),
             _tensor("scale", rng.uniform(0.5, 1.5, 4)), _tensor("shift", rng.standard_normal(4)),
             _tensor("mean", rng.standard_normal(4)), _tensor("var", rng.uniform(0.5, 1.5, 4)),
             _tensor("fw", rng.standard_normal((5, 64))), _tensor("fb", rng.standard_normal(5))]
    nodes = [h.make_node("Conv", ["x", "w", "b"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], name="stem"),
             h.make_node("BatchNormalization", ["c", "scale", "shift", "mean", "var"], ["n"], epsilon=1e-3, name="bn"),
             h.make_node("Relu", ["n"], ["r"]),
             h.make_node("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
             h.make_node("Flatten", ["p"], ["f"], axis=1),
             h.make_node("Gemm", ["f", "fw", "fb"], ["y"], transB=1, name="head")]
    path = tmp_path / "old.onnx"
    onnx.save(_helper_model(nodes, inits, 7), str(path))
    imp = import_onnx(path)
    assert "(ONNX, opset 13)" in imp.text
    # the nodes' own names (onnx.helper's `name=`) label the layers with weights, but for `bn`: it names its kind
    assert spec_lines(imp.text) == ["input 8x8x3", "stem: CONV(4, 3, p=1) - BN(eps=0.001) - RELU - MAXPOOL(2) - head: FC(5)"]
    result = imp.check()
    assert result["max_abs_diff"] <= 1e-5 * max(1.0, result["output_scale"])


def _resize_model():
    import onnx.helper as h
    nodes = [h.make_node("Relu", ["x"], ["r"], name="act"),
             h.make_node("Resize", ["r", "", "scales"], ["y"], name="up", mode="cubic")]
    return _helper_model(nodes, [_tensor("scales", [1, 1, 2, 2])], 13)


def test_an_op_the_language_lacks_is_named_with_its_position(tmp_path):
    import onnx
    path = tmp_path / "up.onnx"
    onnx.save(_resize_model(), str(path))
    with pytest.raises(CnnError) as e:
        import_onnx(path)
    assert "Resize `up` (node 2 of 2): cubic interpolation: UPSAMPLE is nearest or bilinear" in str(e.value)
    part = import_onnx(path, partial=True)
    assert part.unsupported == ["Resize `up` (node 2 of 2)"]
    assert spec_lines(part.text) == ["input 8x8x3", "RELU"]
    assert "imported up to Resize `up` (node 2 of 2)" in part.text


def test_a_custom_op_and_two_inputs_are_refused(tmp_path):
    import onnx
    import onnx.helper as h
    custom = _helper_model([h.make_node("Swizzle", ["x"], ["y"], domain="com.example", name="sw")], [], 13)
    custom.opset_import.append(h.make_opsetid("com.example", 1))
    onnx.save(custom, str(tmp_path / "custom.onnx"))
    with pytest.raises(CnnError, match="com.example:Swizzle `sw` \\(node 1 of 1\\)"):
        import_onnx(tmp_path / "custom.onnx")
    two = _helper_model([h.make_node("Add", ["x", "z"], ["y"])], [], 13,
                        inputs=[h.make_tensor_value_info(n, 1, [1, 3, 4, 4]) for n in "xz"])
    onnx.save(two, str(tmp_path / "two.onnx"))
    with pytest.raises(CnnError, match="one input; this model has 2"):
        import_onnx(tmp_path / "two.onnx")


def test_open_sizes_need_an_input(tmp_path):
    import onnx
    import onnx.helper as h
    model = _helper_model([h.make_node("Relu", ["x"], ["y"])], [], 13, shape=("N", 3, "H", "W"))
    onnx.save(model, str(tmp_path / "open.onnx"))
    with pytest.raises(CnnError, match=r"open dimensions \?x3x\?x\?") as e:
        import_onnx(tmp_path / "open.onnx")
    assert e.value.usage
    assert spec_lines(import_onnx(tmp_path / "open.onnx", input="12x10x3").text)[0] == "input 12x10x3"


def test_truncated_foreign_and_special_files_are_clear_errors(tmp_path):
    net = cnndsl.load(os.path.join(ROOT, "nets/lenet5.net"))
    data = open(export(net.to_torch(seed=0), (32, 32, 1), tmp_path / "l.onnx"), "rb").read()
    (tmp_path / "half.onnx").write_bytes(data[:len(data) // 2])
    (tmp_path / "noise.onnx").write_bytes(bytes(range(256)) * 4)
    for name in ("half.onnx", "noise.onnx"):
        with pytest.raises(CnnError, match="not an ONNX model"):
            import_onnx(tmp_path / name)
    if hasattr(os, "mkfifo"):
        os.mkfifo(tmp_path / "fifo.onnx")
        with pytest.raises(CnnError, match="it is a FIFO.*not a regular file"):
            import_model(tmp_path / "fifo.onnx")
    with pytest.raises(CnnError, match="cannot read"):
        import_model(tmp_path / "missing.onnx")


def _foreign_cases():
    """Single-node graphs as another writer makes them (onnx.helper): each imported or refused."""
    import onnx.helper as h
    from onnx import numpy_helper
    rng = np.random.default_rng(0)
    w = _tensor("w", rng.normal(size=(4, 4, 3, 3)))
    i64 = lambda name, a: numpy_helper.from_array(np.asarray(a, np.int64), name)  # noqa: E731
    return {
        "conv_same_upper": ([h.make_node("Conv", ["x", "w"], ["y"], auto_pad="SAME_UPPER", kernel_shape=[3, 3])], [w]),
        "conv_asymmetric": ([h.make_node("Conv", ["x", "w"], ["y"], pads=[0, 0, 1, 1])], [w]),
        "conv_transpose": ([h.make_node("ConvTranspose", ["x", "w"], ["y"])], [w]),
        "maxpool_indices_read": ([h.make_node("MaxPool", ["x"], ["y", "i"], kernel_shape=[2, 2]),
                                  h.make_node("Add", ["y", "i"], ["z"])], []),
        "maxpool_ceil": ([h.make_node("MaxPool", ["x"], ["y"], kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1,
                                      pads=[1, 1, 1, 1])], []),
        "gemm_scaled": ([h.make_node("Flatten", ["x"], ["f"]), h.make_node("Gemm", ["f", "fw", "fb"], ["y"], alpha=0.5,
                                                                           beta=2.0)],
                        [_tensor("fw", rng.normal(size=(256, 3))), _tensor("fb", rng.normal(size=(1, 3)))]),
        "transpose": ([h.make_node("Transpose", ["x"], ["y"], perm=[0, 1, 3, 2])], []),
        "split_concat": ([h.make_node("Split", ["x"], ["a", "b"], axis=1), h.make_node("Concat", ["b", "a"], ["y"], axis=1)],
                         []),
        "pad_reflect": ([h.make_node("Pad", ["x", "p"], ["y"], mode="reflect")], [i64("p", [0, 0, 1, 1, 0, 0, 1, 1])]),
        "clip_hardtanh": ([h.make_node("Clip", ["x", "lo", "hi"], ["y"])], [_tensor("lo", -1.0), _tensor("hi", 1.0)]),
        "scale_by_two": ([h.make_node("Mul", ["x", "c"], ["y"])], [_tensor("c", 2.0)]),
        "lrn_even": ([h.make_node("LRN", ["x"], ["y"], size=4)], []),
        "instance_norm": ([h.make_node("InstanceNormalization", ["x", "s", "b"], ["y"])],
                          [_tensor("s", np.ones(4)), _tensor("b", np.zeros(4))]),
        "reduce_mean_flat": ([h.make_node("ReduceMean", ["x"], ["y"], axes=[2, 3], keepdims=0)], []),
        "selu": ([h.make_node("Selu", ["x"], ["y"])], []),
        "identity_only": ([h.make_node("Identity", ["x"], ["y"])], []),
    }


FOREIGN = list(_foreign_cases())


@pytest.mark.parametrize("opset", [7, "newest"] + ([9, 11, 13, 17, 18, 21] if FULL else []))
@pytest.mark.parametrize("case", FOREIGN if FULL else FOREIGN[::3])
def test_foreign_graphs_are_imported_or_refused_clearly(tmp_path, case, opset):
    """onnx.helper's graphs at opsets 7 to the newest: an import that checks out, or a CnnError, never
    another exception (an opset that changed an op's inputs may make the file invalid: refused too)."""
    import onnx
    import onnx.helper as h
    nodes, inits = _foreign_cases()[case]
    opset = onnx.defs.onnx_opset_version() if opset == "newest" else opset
    model = h.make_model(h.make_graph(nodes, case, [h.make_tensor_value_info("x", 1, [1, 4, 8, 8])],
                                      [h.make_tensor_value_info(nodes[-1].output[0], 1, None)], inits),
                         opset_imports=[h.make_opsetid("", opset)])
    onnx.save(model, str(tmp_path / "m.onnx"))
    try:
        result = import_onnx(tmp_path / "m.onnx").check()
        assert result["max_abs_diff"] <= 1e-5 * max(1.0, result["output_scale"])
    except CnnError as e:
        assert e.message and "Traceback" not in str(e)


# ---- the command line ----------------------------------------------------------------------------------
def _cli(capsys, *args):
    from cnndsl.cli import main
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_the_command_line_writes_a_spec_and_weights_that_load(tmp_path, capsys):
    net = cnndsl.load(os.path.join(ROOT, "nets/lenet5.net"))
    model = net.to_torch(seed=0).eval()
    path = export(model, (32, 32, 1), tmp_path / "lenet5.onnx")
    code, _, err = _cli(capsys, "import", path, "-o", tmp_path / "l.net", "--weights", tmp_path / "l.safetensors")
    assert code == 0, err
    assert "61,706 params" in err and "differ by at most" in err
    back = cnndsl.load(tmp_path / "l.net").to_torch(weights=str(tmp_path / "l.safetensors")).eval()
    x = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        assert float((back(x) - model(x)).abs().max()) < 1e-6
    from cnndsl.weights import read
    assert read(tmp_path / "l.safetensors")[1]["spec_path"] == str(tmp_path / "l.net")
    r = subprocess.run([sys.executable, "-m", "cnndsl", "report", tmp_path / "l.net"], capture_output=True, text=True,
                       env=dict(os.environ, PYTHONPATH=ROOT), timeout=120)
    assert r.returncode == 0 and "61,706" in r.stdout


def test_the_command_line_refuses_clearly(tmp_path, capsys):
    code, _, err = _cli(capsys, "import", tmp_path / "missing.onnx")
    assert code == 2 and "cannot read" in err, err
    (tmp_path / "up.onnx").write_bytes(_resize_model().SerializeToString())
    code, _, err = _cli(capsys, "import", tmp_path / "up.onnx", "-o", tmp_path / "up.net")
    assert code == 1 and "Resize `up` (node 2 of 2)" in err and not (tmp_path / "up.net").exists()
    code, out, err = _cli(capsys, "import", tmp_path / "up.onnx", "--partial")
    assert code == 0 and "warning: not imported: Resize `up` (node 2 of 2)" in err
    assert out.splitlines()[-1] == "RELU"
    code, _, err = _cli(capsys, "import", tmp_path / "up.onnx", "--weights", tmp_path / "w.safetensors")
    assert code == 2 and "--weights needs -o" in err
