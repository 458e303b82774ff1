"""Differential tests: the analyzer against PyTorch and ONNX Runtime, both ways.

1. Every spec the analyzer accepts (a sample: random layer chains, and accepted fuzz specs) builds
   and runs in both backends, with the output shape the analyzer computed.
2. Every random chain of conv/pool layers PyTorch runs (built directly with torch.nn) is accepted
   by the analyzer with the same output shape; one PyTorch refuses, the analyzer refuses too.
"""
from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cnndsl
from cnndsl import CnnError

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")
np = pytest.importorskip("numpy")
from test_onnx import session  # noqa: E402

SETTINGS = dict(deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))


def _expected(net):
    shape = net.graph.shape_of(net.graph.output)
    return (1, shape[2], shape[0], shape[1]) if len(shape) == 3 else (1, *shape)


def _run_both(net):
    """Output shapes of the PyTorch module and of the ONNX model on a zero batch of one."""
    h = net.graph.input_shape
    x = np.zeros((1, h[2], h[0], h[1]) if len(h) == 3 else (1, h[0]), np.float32)
    model = net.to_torch(seed=0).eval()
    with torch.no_grad():
        y = model(torch.from_numpy(x))
    onnx_model = net.to_onnx()
    sess = session(onnx_model)
    (z,) = sess.run(None, {sess.get_inputs()[0].name: x})
    return tuple(y.shape), tuple(z.shape)


# ---- 1. accepted specs run in both backends ------------------------------------------------------
LAYERS = ["CONV({c}, {k}, s={s}, p={p})", "CONV({c}, {k}, d={d}, p=same)", "MAXPOOL({k}, s={s}, p={q}, ceil={b})",
          "AVGPOOL({k}, s={s}, p={q}, ceil={b}, count_pad={b2})", "RELU", "BN", "SILU", "HARDSWISH", "GELU",
          "LRN({n}, alpha={a})", "DROPOUT(0.3)", "ADAPTIVEAVGPOOL({n})", "ADAPTIVEMAXPOOL({n})", "LEAKYRELU",
          "{{ ID + CONV({c0}, 3, p=1) }}", "{{ CONV({c}, 1) | MAXPOOL(3, s=1, p=1) }}", "GROUPNORM(1)", "PRELU",
          "LAYERNORM", "ELU(alpha=0)"]


def _chain(rng: random.Random, channels: int) -> str:
    out, c0 = [], channels
    for _ in range(rng.randint(1, 6)):
        t = rng.choice(LAYERS)
        k = rng.choice([1, 2, 3, 5])
        c = rng.choice([1, 2, 4, 8])
        out.append(t.format(c=c, k=k, s=rng.choice([1, 2, 3]), p=rng.choice([0, 1, 2]), d=rng.choice([1, 2]),
                            q=rng.randint(0, k // 2), b=rng.choice(["true", "false"]),
                            b2=rng.choice(["true", "false"]), n=rng.choice([1, 2, 3]), a=rng.choice([0, 1e-4]),
                            c0=c0))
        if "CONV({c}" in t and "|" not in t:
            c0 = c
        elif "|" in t:
            c0 = c + c0
    if rng.random() < 0.5:
        out += ["GAP", f"FC({rng.choice([1, 3, 10])})"]
    return " - ".join(out)


@settings(max_examples=40, **SETTINGS)
@given(st.integers(0, 2**32 - 1))
def test_accepted_chains_build_and_run_in_both_backends(seed):
    rng = random.Random(seed)
    hw, c = rng.choice([1, 2, 5, 8, 13]), rng.choice([1, 3, 4])
    try:
        net = cnndsl.loads(f"input {hw}x{hw}x{c}\n{_chain(rng, c)}")
    except CnnError:
        return
    assert _run_both(net) == (_expected(net),) * 2


# The zoo files the draws below mutate: fixed, so that the draws do not change whenever a net is
# added to nets/ (with every file, adding the RegNetY files left 1 of 400 draws runnable); these
# hold no include, which the fixture tree could not resolve.
MUTATED = ["alexnet", "alexnet_227", "cs231n_pattern", "densenet121", "googlenet", "inception_v3", "lenet5",
           "mobilenet_v2", "nin", "resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "resnext50_32x4d",
           "squeezenet1_0", "squeezenet1_1", "vgg11", "vgg16", "vgg19", "wide_resnet50_2"]


def test_accepted_fuzz_specs_build_and_run_in_both_backends(tmp_path, monkeypatch):
    import test_fuzz as F
    main = F.fixture_tree(tmp_path)
    monkeypatch.setattr(F, "NETS", [F.ROOT / "nets" / f"{name}.net" for name in MUTATED])
    rng, ran = random.Random(5), 0
    for _ in range(400):
        if ran >= 12:
            break
        text = F.draw_spec(F._Chooser(rng=rng))
        try:
            net = cnndsl.loads(text, path=str(main))
            rep = net.report()["totals"]
        except CnnError:
            continue
        if rep["params"] > 2_000_000 or rep["macs"] > 50_000_000 or len(net.graph.nodes) > 300:
            continue
        assert _run_both(net) == (_expected(net),) * 2, text
        ran += 1
    assert ran >= 3


# ---- 2. chains PyTorch runs are accepted, with PyTorch's shape ------------------------------------
def _torch_layer(rng, c):
    kind = rng.choice(["conv", "max", "avg", "relu"])
    k, s, d = rng.choice([1, 2, 3, 4, 5]), rng.choice([1, 2, 3, 4]), rng.choice([1, 2])
    p = rng.choice([0, 0, 1, 2, 3])
    ceil = rng.random() < 0.4
    if kind == "conv":
        out = rng.choice([1, 2, 4])
        return (torch.nn.Conv2d(c, out, k, stride=s, padding=p, dilation=d),
                f"CONV({out}, {k}, s={s}, p={p}, d={d})", out)
    if kind == "max":
        return (torch.nn.MaxPool2d(k, stride=s, padding=p, dilation=1, ceil_mode=ceil),
                f"MAXPOOL({k}, s={s}, p={p}, ceil={str(ceil).lower()})", c)
    if kind == "avg":
        cp = rng.random() < 0.5
        return (torch.nn.AvgPool2d(k, stride=s, padding=p, ceil_mode=ceil, count_include_pad=cp),
                f"AVGPOOL({k}, s={s}, p={p}, ceil={str(ceil).lower()}, count_pad={str(cp).lower()})", c)
    return torch.nn.ReLU(), "RELU", c


@settings(max_examples=300, **SETTINGS)
@given(st.integers(0, 2**32 - 1))
def test_chains_pytorch_runs_are_accepted_with_its_shape(seed):
    rng = random.Random(seed)
    h, w, c = rng.randint(1, 20), rng.randint(1, 20), rng.choice([1, 3])
    mods, spec = [], []
    ch = c
    for _ in range(rng.randint(1, 4)):
        m, text, ch = _torch_layer(rng, ch)
        mods.append(m)
        spec.append(text)
    text = f"input {h}x{w}x{c}\n" + " - ".join(spec)
    try:
        with torch.no_grad():
            y = torch.nn.Sequential(*mods)(torch.zeros(1, c, h, w))
        torch_shape, torch_error = tuple(y.shape), None
    except (RuntimeError, ValueError) as e:
        torch_shape, torch_error = None, e
    try:
        net = cnndsl.loads(text)
        ours, our_error = _expected(net), None
    except CnnError as e:
        ours, our_error = None, e
    if torch_error is None:
        assert our_error is None, f"PyTorch runs it ({torch_shape}), cnndsl refuses: {our_error}\n{text}"
        assert ours == torch_shape, text
    else:
        assert our_error is not None, f"PyTorch refuses it ({torch_error}), cnndsl accepts {ours}\n{text}"
