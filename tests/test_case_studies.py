"""The lecture notes' case studies that torchvision has no twin for (nets/zfnet.net,
preact_resnet164.net, sd_resnet110.net, wrn28_10.net, fractalnet.net, matlab_digits.net), against
two things that are not cnndsl:

* the published figure (the paper's parameter count, rounded as it prints it, or the exact count a
  reference implementation reports), and the paper's volumes where it draws them (ZFNet's Figure 3);
* an independent PyTorch reference: an nn.Module written in this file from the paper's description,
  never from the spec. Parameters must be equal exactly, conv+FC MACs (counted from the reference's
  own modules with forward hooks) too, and the output shape. With the reference holding our weights
  (copied tensor by tensor in execution order), eval outputs must agree: on the shipped net where it
  is small, else on a narrow member of the same spec (`-D width=4` and the like), which runs every
  def of the shipped file.

Big nets are measured on the meta device (shapes without arithmetic), so the module stays fast.

    pytest tests/test_case_studies.py -q
"""
import functools
import math
import os

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import cnndsl  # noqa: E402

NETS = os.path.join(os.path.dirname(__file__), "..", "nets")
CASES = ["zfnet", "preact_resnet164", "sd_resnet110", "wrn28_10", "fractalnet", "matlab_digits"]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Small convolutions run faster on one thread than on two contended ones (the CI machine has two)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@functools.lru_cache(maxsize=None)
def load(name, **bindings):
    return cnndsl.load(os.path.join(NETS, f"{name}.net"), bindings=bindings or None)


# ---- the independent references, written from the papers ------------------------------------------
def zfnet_reference(c3=512, c4=1024, c5=512, fc=4096):
    """Zeiler & Fergus 2013, Figure 3 (with Table 2's 512/1024/512 maps in layers 3-5, as the lecture)."""
    pool = lambda: nn.MaxPool2d(3, 2, ceil_mode=True)  # noqa: E731
    lrn = lambda: nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0)  # noqa: E731
    return nn.Sequential(
        nn.Conv2d(3, 96, 7, stride=2, padding=1), nn.ReLU(), pool(), lrn(),
        nn.Conv2d(96, 256, 5, stride=2), nn.ReLU(), pool(), lrn(),
        nn.Conv2d(256, c3, 3, padding=1), nn.ReLU(),
        nn.Conv2d(c3, c4, 3, padding=1), nn.ReLU(),
        nn.Conv2d(c4, c5, 3, padding=1), nn.ReLU(), pool(),
        nn.Flatten(), nn.Linear(6 * 6 * c5, fc), nn.ReLU(), nn.Dropout(),
        nn.Linear(fc, fc), nn.ReLU(), nn.Dropout(), nn.Linear(fc, 1000), nn.Softmax(dim=1))


def matlab_reference(c=(16, 32, 64)):
    """Three conv3x3('same')-BN-ReLU stages, 2x2/2 max pools between them, FC 50 - ReLU - FC 10 - softmax."""
    stage = lambda i, o: [nn.Conv2d(i, o, 3, padding=1), nn.BatchNorm2d(o), nn.ReLU()]  # noqa: E731
    return nn.Sequential(*stage(1, c[0]), nn.MaxPool2d(2, 2), *stage(c[0], c[1]), nn.MaxPool2d(2, 2),
                         *stage(c[1], c[2]), nn.Flatten(), nn.Linear(7 * 7 * c[2], 50), nn.ReLU(),
                         nn.Linear(50, 10), nn.Softmax(dim=1))


class PreActBlock(nn.Module):
    """He et al. 2016 (identity mappings): BN-ReLU-conv, twice (basic) or thrice (bottleneck, 1x1-3x3-1x1
    with the stride on the 3x3); where the volume changes, the pre-activation is shared and the shortcut
    is a 1x1 projection of it. `drop`: WRN's dropout between the two convs of a basic block."""

    def __init__(self, cin, cout, stride, bottleneck, drop=0.0):
        super().__init__()
        self.project = stride != 1 or cin != cout
        widths = [cin, cout // 4, cout // 4, cout] if bottleneck else [cin, cout, cout]
        kernels = [1, 3, 1] if bottleneck else [3, 3]
        strides = [1, stride, 1] if bottleneck else [stride, 1]
        self.bn0 = nn.BatchNorm2d(cin)
        if self.project:
            self.shortcut = nn.Conv2d(cin, cout, 1, stride=stride, bias=False)
        self.rest = nn.ModuleList()
        for j, k in enumerate(kernels):
            if j:
                self.rest.append(nn.BatchNorm2d(widths[j]))
            if not bottleneck and j == 1 and drop:
                self.rest.append(nn.Dropout(drop))
            self.rest.append(nn.Conv2d(widths[j], widths[j + 1], k, stride=strides[j], padding=k // 2, bias=False))

    def forward(self, x):
        out = F.relu(self.bn0(x))
        if self.project:
            x = self.shortcut(out)  # the shared pre-activation feeds the projection
        for layer in self.rest:
            out = F.relu(layer(out)) if isinstance(layer, nn.BatchNorm2d) else layer(out)
        return out + x


class CifarPreActResNet(nn.Module):
    def __init__(self, widths, n, bottleneck, drop=0.0):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, padding=1, bias=False)
        blocks, cin = [], 16
        for stage, c in enumerate(widths):
            for b in range(n):
                blocks.append(PreActBlock(cin, c, 2 if stage and not b else 1, bottleneck, drop))
                cin = c
        self.blocks = nn.Sequential(*blocks)
        self.bn = nn.BatchNorm2d(cin)
        self.fc = nn.Linear(cin, 10)

    def forward(self, x):
        x = F.relu(self.bn(self.blocks(self.conv1(x))))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def preact164_reference(n=18):
    """ResNet-164: depth 9n + 2, bottleneck outputs 64, 128, 256."""
    return CifarPreActResNet([64, 128, 256], n, bottleneck=True)


def wrn_reference(k=10, n=4, drop=0.0):
    """WRN-(6n+4)-k: widths 16k, 32k, 64k, pre-activation basic blocks."""
    return CifarPreActResNet([16 * k, 32 * k, 64 * k], n, bottleneck=False, drop=drop)


class OptionABlock(nn.Module):
    """He et al. 2015's CIFAR basic block, post-activation; where the volume changes, the shortcut is
    option A as Huang et al.'s code writes it: a 1x1 average pool at stride 2, then zero padding of the
    new channels (torch.cat with zeros). `p`: stochastic depth's drop probability (row mode)."""

    def __init__(self, cin, cout, stride, p):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.stride, self.extra, self.p = stride, cout - cin, p

    def forward(self, x):
        r = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        if self.training and self.p:
            keep = torch.empty(x.shape[0], 1, 1, 1).bernoulli_(1 - self.p)
            r = r * keep / (1 - self.p)
        if self.stride > 1:
            x = F.avg_pool2d(x, 1, self.stride)
        if self.extra:
            x = torch.cat([x, x.new_zeros(x.shape[0], self.extra, *x.shape[2:])], 1)
        return F.relu(x + r)


class SDResNet110(nn.Module):
    """Huang et al. 2016: ResNet-110 (54 blocks of 16/32/64 channels), block l dropped with 0.5 * l / 54."""

    def __init__(self, n=18, p_last=0.5):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        blocks, cin, total = [], 16, 3 * n
        for stage, c in enumerate([16, 32, 64]):
            for b in range(n):
                level = stage * n + b + 1
                blocks.append(OptionABlock(cin, c, 2 if stage and not b else 1, p_last * level / total))
                cin = c
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        x = self.blocks(F.relu(self.bn1(self.conv1(x))))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class Fractal(nn.Module):
    """Larsson et al. 2017, equation 2: f_1(z) = conv(z); f_{C+1}(z) = mean((f_C o f_C)(z), conv(z)),
    conv being conv3x3 - dropout - BN - ReLU. Written recursively (the spec cannot recurse)."""

    def __init__(self, columns, cin, c, p):
        super().__init__()
        self.columns = columns
        if columns == 1:
            self.layer = nn.Sequential(nn.Conv2d(cin, c, 3, padding=1, bias=False), nn.Dropout(p),
                                       nn.BatchNorm2d(c), nn.ReLU())
        else:
            self.first, self.second = Fractal(columns - 1, cin, c, p), Fractal(columns - 1, c, c, p)
            self.conv = Fractal(1, cin, c, p)

    def forward(self, z):
        if self.columns == 1:
            return self.layer(z)
        return (self.second(self.first(z)) + self.conv(z)) / 2


def fractalnet_reference(columns=4, width=64):
    layers, cin = [], 3
    for b in range(5):
        c = min(width * 2 ** b, 8 * width)
        layers += [Fractal(columns, cin, c, b / 10), nn.MaxPool2d(2)]
        cin = c
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(cin, 10))


# ---- measuring the references -----------------------------------------------------------------------
def n_params(module):
    return sum(p.numel() for p in module.parameters())


def conv_fc_macs(module, shape):
    """MACs of every Conv2d and Linear call of `module` on one input of NCHW `shape` (meta device)."""
    total = [0]

    def hook(m, inputs, out):
        if isinstance(m, nn.Conv2d):
            total[0] += out.numel() * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]
        else:
            total[0] += m.in_features * m.out_features

    handles = [m.register_forward_hook(hook) for m in module.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    with torch.no_grad():
        out = module.eval()(torch.empty(1, *shape, device="meta"))
    for h in handles:
        h.remove()
    return total[0], tuple(out.shape)


def nchw(net):
    h, w, c = net.graph.input_shape
    return (c, h, w)


# Each case: the shipped net, its reference, the published figure, and a narrow member for outputs.
# (name, reference on the shipped bindings, published (params, how it is rounded), narrow bindings, its reference)
REFERENCES = {
    "zfnet": (zfnet_reference, None, {"c3": 16, "c4": 32, "c5": 16, "fc": 64}, lambda: zfnet_reference(16, 32, 16, 64)),
    "matlab_digits": (matlab_reference, None, {}, matlab_reference),
    "preact_resnet164": (preact164_reference, (1.7e6, 1), {"n": 2}, lambda: preact164_reference(2)),
    "sd_resnet110": (SDResNet110, (1.7e6, 1), {"n": 3}, lambda: SDResNet110(3)),
    "wrn28_10": (wrn_reference, (36.5e6, 1), {"k": 2, "n": 2}, lambda: wrn_reference(2, 2)),
    "fractalnet": (fractalnet_reference, None, {"width": 4}, lambda: fractalnet_reference(4, 4)),
}


@pytest.mark.parametrize("name", CASES)
def test_params_macs_and_output_equal_the_reference(name):
    make, _, _, _ = REFERENCES[name]
    net = load(name)
    with torch.device("meta"):
        ref = make()
    totals = net.report()["totals"]
    assert totals["params"] == n_params(ref)
    macs, out = conv_fc_macs(ref, nchw(net))
    ours = sum(l["macs"] for l in net.report()["layers"] if l["op"] in ("CONV", "FC"))
    assert ours == macs
    assert out == (1, *net.graph.nodes[-1].out_shape)


@pytest.mark.parametrize("name", [n for n in CASES if REFERENCES[n][1]])
def test_params_are_the_published_figure(name):
    figure, digits = REFERENCES[name][1]
    params = load(name).report()["totals"]["params"]
    assert round(params / 1e6, digits) == round(figure / 1e6, digits)


def test_exact_counts_of_reference_implementations():
    """The exact counts that re-implementations publish: akamaster/pytorch_resnet_cifar10's ResNet-110
    (option A shortcuts) 1,727,962; xternalz/WideResNet-pytorch's WRN-28-10, 36,479,194;
    osmr/imgclsmob's fractalnet_cifar10 (C = 3, 20 layers) 33,724,618."""
    assert load("sd_resnet110").report()["totals"]["params"] == 1_727_962
    assert load("wrn28_10").report()["totals"]["params"] == 36_479_194
    text = open(os.path.join(NETS, "fractalnet.net")).read()
    assert text.count("f4(") == 1
    twenty = cnndsl.loads(text.replace("f4(", "f3("), path=os.path.join(NETS, "fractalnet20.net"))
    assert twenty.report()["totals"]["params"] == 33_724_618
    with torch.device("meta"):
        assert n_params(fractalnet_reference(columns=3)) == 33_724_618
    # the paper's table says 38.6M for this 20-layer network and 22.9M for the 40-layer one: neither
    # follows from the 64..512 channels it states (76,106,634 for C = 4); README and the file say so.
    assert load("fractalnet").report()["totals"]["params"] == 76_106_634


@pytest.mark.parametrize("depth, published", [(20, 0.27), (32, 0.46), (44, 0.66), (56, 0.85), (110, 1.7), (1202, 19.4)])
def test_cifar_resnets_of_he_2015(depth, published):
    """sd_resnet110.net at other depths (`-D n=...`, depth 6n + 2) is He et al. 2015's CIFAR family: its
    parameter counts as the paper's CIFAR-10 table prints them (millions)."""
    params = load("sd_resnet110", n=(depth - 2) // 6).report()["totals"]["params"]
    assert round(params / 1e6, 2 if published < 1 else 1) == published


def test_resnet56_and_110_macs_of_li_2017():
    """Li, Kadav, Durdanovic, Samet & Graf 2017 ("Pruning filters for efficient ConvNets", Table 1) count
    the conv+FC multiply-adds of the option A CIFAR ResNets: ResNet-56 1.25E8, ResNet-110 2.53E8."""
    assert round(load("sd_resnet110", n=9).report()["totals"]["macs"] / 1e8, 2) == 1.25
    assert round(load("sd_resnet110").report()["totals"]["macs"] / 1e8, 2) == 2.53


@pytest.mark.parametrize("depth, k, published", [(40, 1, 0.6), (40, 2, 2.2), (40, 4, 8.9), (40, 8, 35.7), (28, 10, 36.5),
                                                 (28, 12, 52.5), (22, 8, 17.2), (22, 10, 26.8), (16, 8, 11.0),
                                                 (16, 10, 17.1)])
def test_wide_resnets_of_the_paper(depth, k, published):
    """wrn28_10.net at other depths and widths (`-D n=... -D k=...`, depth 6n + 4) against the WRN paper's
    CIFAR table of WRN-d-k parameter counts (millions)."""
    params = load("wrn28_10", n=(depth - 4) // 6, k=k).report()["totals"]["params"]
    assert round(params / 1e6, 1) == published


def test_zfnet_volumes_are_figure_3():
    """Zeiler & Fergus, Figure 3: 110x110x96, 55x55x96, 26x26x256, 13x13x256, 13x13 (x3), 6x6; and the
    figure's own 384/384/256 widths give AlexNet-sized counts."""
    rows = [l for l in load("zfnet").report()["layers"] if l["op"] in ("CONV", "MAXPOOL")]
    assert [tuple(l["out"]) for l in rows] == [(110, 110, 96), (55, 55, 96), (26, 26, 256), (13, 13, 256),
                                               (13, 13, 512), (13, 13, 1024), (13, 13, 512), (6, 6, 512)]
    assert not [w for n in load("zfnet").graph.nodes for w in n.meta.get("warnings", ())]
    fig3 = load("zfnet", c3=384, c4=384, c5=256)
    with torch.device("meta"):
        assert fig3.report()["totals"]["params"] == n_params(zfnet_reference(384, 384, 256)) == 62_357_608


def test_matlab_example_layer_array():
    """`-D c1=8 -D c2=16 -D c3=32 -D hidden=off` is the MATLAB example's own layer array (8/16/32 filters,
    fullyConnectedLayer(10)): 21,690 learnables by its layer-by-layer sums."""
    net = load("matlab_digits", c1=8, c2=16, c3=32, hidden="off")
    learnables = (9 * 1 * 8 + 8) + 2 * 8 + (9 * 8 * 16 + 16) + 2 * 16 + (9 * 16 * 32 + 32) + 2 * 32 + (7 * 7 * 32 * 10 + 10)
    assert net.report()["totals"]["params"] == learnables == 21_690


def test_sd_resnet110_survival_rule():
    """Block l (1..54) drops its residual branch with probability 0.5 * l / 54 (the linear decay rule)."""
    drops = [n.attrs["p"] for n in load("sd_resnet110").graph.nodes if n.op == "DROPPATH"]
    assert len(drops) == 54
    assert all(math.isclose(p, 0.5 * l / 54) for l, p in zip(range(1, 55), drops))


def randomised(module, seed):
    """Every parameter and BN statistic drawn at random, so BN is no identity (eval mode)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for key, t in module.state_dict().items():
            if key.endswith("num_batches_tracked"):
                continue
            if key.endswith("running_var"):
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)
            else:
                t.copy_(torch.randn(t.shape, generator=g) * (0.3 if t.dim() > 1 else 0.5))
    return module.eval()


def copy_in_order(src, dst):
    """src's state (parameters and buffers) into dst, tensor by tensor in registration order."""
    a = [(k, t) for k, t in src.state_dict().items()]
    b = [(k, t) for k, t in dst.state_dict().items()]
    assert [tuple(t.shape) for _, t in a] == [tuple(t.shape) for _, t in b]
    with torch.no_grad():
        for (_, s), (_, d) in zip(a, b):
            d.copy_(s)


@pytest.mark.parametrize("name", CASES)
def test_eval_outputs_equal_the_reference(name):
    """A narrow member of the spec (every def of the shipped file) against the reference holding its weights."""
    _, _, narrow, make = REFERENCES[name]
    net = load(name, **narrow)
    # the nets that end in SOFTMAX are compared on their logits (random weights saturate the softmax)
    ours = randomised(net.to_torch(seed=0, logits=True), seed=1)
    ref = make().eval()
    if isinstance(ref[-1] if isinstance(ref, nn.Sequential) else None, nn.Softmax):
        ref = ref[:-1]
    copy_in_order(ours, ref)
    x = torch.randn(2, *nchw(net), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        a, b = ours(x), ref(x)
    assert a.shape == b.shape == (2, *net.graph.nodes[-1].out_shape)
    assert b.std() > 0.1  # not saturated, not constant
    assert (a - b).abs().max().item() <= 1e-5 * max(1.0, b.abs().max().item())


def test_sd_resnet110_trains_with_dropped_blocks():
    """In training DROPPATH drops whole samples' branches (per block): outputs differ from eval's."""
    net = load("sd_resnet110")
    m = net.to_torch(seed=0)
    x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    m.train()
    y = m(x)
    assert y.shape == (4, 10) and torch.isfinite(y).all()
    y.sum().backward()
    m.eval()
    with torch.no_grad():
        assert not torch.allclose(m(x), y.detach())


def test_small_nets_export_to_onnx_and_agree():
    pytest.importorskip("onnxruntime")
    from test_onnx import session
    import numpy as np
    # the deep CIFAR ResNets at n = 2 (tests/test_onnx.py runs them whole with CNNDSL_FULL_ZOO=1)
    for name, bindings in [("matlab_digits", {}), ("fractalnet", {"width": 4}), ("sd_resnet110", {"n": 2}),
                           ("preact_resnet164", {"n": 2})]:
        net = load(name, **bindings)
        module = randomised(net.to_torch(seed=0), seed=3)
        data = net.to_onnx(weights=module).SerializeToString()
        x = np.random.default_rng(0).standard_normal((2, *nchw(net)), dtype=np.float32)
        with torch.no_grad():
            want = module(torch.from_numpy(x)).numpy()
        got = session(data).run(None, {"input": x})[0]
        assert got.shape == want.shape
        assert float(np.abs(got - want).max()) <= 1e-4 * max(1.0, float(np.abs(want).max())), name


@pytest.mark.parametrize("name, bindings", [("sd_resnet110", {"n": 1}), ("preact_resnet164", {"n": 1}),
                                            ("wrn28_10", {"n": 1, "k": 1}), ("fractalnet", {"width": 2}),
                                            ("matlab_digits", {}), ("zfnet", {"c3": 8, "c4": 8, "c5": 8, "fc": 16})])
def test_compiled_source_computes_what_to_torch_does(name, bindings):
    """`cnndsl compile` of each case study (narrow; at n = 1 the stages' `block*(n - 1)` repeats vanish and
    their loops must too) loads to_torch()'s weights and gives identical outputs."""
    from test_pytorch_source import same_outputs
    assert same_outputs(load(name, **bindings), batch=1)
