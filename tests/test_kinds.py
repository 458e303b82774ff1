"""Every kind declares every fact (the backends and the diagram keep no op-name lists of their own),
and the facts agree with PyTorch itself: parameter tensors, the constructor, the in-place class."""
import inspect
import math

import pytest

import cnndsl
from cnndsl.kinds import ALL, DRAW_GROUPS, KINDS, MISSING, Kind
from cnndsl.kinds.base import HE_CLASSES, INITS, MEMORY_CLASSES, Foreign, Tensor, TorchModule

ATTRIBUTES = ("memory", "output_overwritable", "he", "draw_group", "samples")
METHODS = ("tensors", "torch_module", "onnx")


def _volume_input(kind):
    return [(8, 8, 4)] * (2 if kind.join else 1)


def _attrs(kind):
    """The attributes of the kind's first sample, bound through the language itself."""
    net = cnndsl.loads(f"input 8x8x4\n{kind.samples[0]}")
    return next(n for n in net.graph.nodes if n.op == kind.name)


@pytest.mark.parametrize("kind", ALL, ids=lambda k: k.name)
def test_every_kind_declares_every_fact(kind):
    missing = [f for f in ATTRIBUTES if getattr(kind, f) is MISSING]
    missing += [f for f in METHODS if getattr(type(kind), f) is getattr(Kind, f)]
    assert not missing, f"kind {kind.name} lacks {', '.join(missing)} (see cnndsl/kinds/base.py)"
    assert kind.memory in MEMORY_CLASSES, f"kind {kind.name}: memory {kind.memory!r}"
    assert kind.he in HE_CLASSES, f"kind {kind.name}: he {kind.he!r}"
    assert kind.draw_group in DRAW_GROUPS, f"kind {kind.name}: draw_group {kind.draw_group!r}"
    assert isinstance(kind.output_overwritable, bool), f"kind {kind.name}: output_overwritable"
    assert kind.samples and all(isinstance(s, str) for s in kind.samples), f"kind {kind.name}: samples"


@pytest.mark.parametrize("kind", ALL, ids=lambda k: k.name)
def test_samples_build_and_name_their_kind(kind):
    for text in kind.samples:
        net = cnndsl.loads(f"input 8x8x4\n{text}")
        ops = {n.op for n in net.graph.nodes}
        assert kind.name in ops or kind.name == "ID", f"{text!r} builds {ops}, not {kind.name}"


@pytest.mark.parametrize("kind", [k for k in ALL if k.name != "ID"], ids=lambda k: k.name)
def test_tensors_and_constructor_agree_with_pytorch(kind):
    """The kind's tensors are the module's state_dict, in order, with the same shapes; its
    parameter count is theirs."""
    torch = pytest.importorskip("torch")
    from cnndsl.backends.pytorch import make_module
    for text in kind.samples:
        net = cnndsl.loads(f"input 8x8x4\n{text}")
        for n in net.graph.nodes:
            if n.op != kind.name:
                continue
            ins = [net.graph.shape_of(s) for s in n.inputs]
            spec = kind.torch_module(n.attrs, ins, False)
            assert isinstance(spec, TorchModule)
            module = make_module(kind, n.attrs, ins, False)
            sd = module.state_dict()
            tensors = kind.tensors(n.attrs, ins)
            assert all(isinstance(t, Tensor) and t.init in INITS for t in tensors)
            assert [(t.name, t.shape) for t in tensors] == [(k, tuple(v.shape)) for k, v in sd.items()], text
            trainable = sum(p.numel() for p in module.parameters())
            assert kind.params(n.attrs, ins) == trainable, text
            for t in tensors:
                assert str(sd[t.name].dtype) == f"torch.{t.dtype}", (text, t.name)


@pytest.mark.parametrize("kind", ALL, ids=lambda k: k.name)
def test_foreign_layouts_are_reshapes(kind):
    """A tensor's foreign layouts (what cnndsl.weights may load it from) hold as many numbers as it
    does, in other shapes: a reshape brings them here."""
    for text in kind.samples:
        net = cnndsl.loads(f"input 8x8x4\n{text}")
        for n in net.graph.nodes:
            for t in n.kind.tensors(n.attrs, [net.graph.shape_of(s) for s in n.inputs]):
                for f in t.foreign:
                    assert isinstance(f, Foreign) and math.prod(f.shape) == math.prod(t.shape), (text, t, f)
                    assert f.bare or f.name or f.shape != t.shape, (text, t, f)  # not ours again


def test_foreign_layouts_of_conv_and_layerscale():
    """A 1x1 conv over all channels is nn.Linear's (out, in); a grouped or wider one is no Linear;
    LAYERSCALE's scale may be a bare (C, 1, 1) or (C,) parameter of the block abroad, or the (C,)
    `scale` or `gamma` of a module of its own (timm's MetaFormer Scale, timm's LayerScale)."""
    def foreign(text, shape=(8, 8, 4)):
        net = cnndsl.loads(f"input {'x'.join(map(str, shape))}\n{text}")
        n = net.graph.nodes[0]
        return {t.name: t.foreign for t in n.kind.tensors(n.attrs, [shape])}
    assert foreign("CONV(6, 1)") == {"weight": (Foreign((6, 4)),), "bias": ()}
    assert foreign("CONV(6, 1, groups=2)")["weight"] == foreign("CONV(6, 3)")["weight"] == ()
    assert foreign("LAYERSCALE")["weight"] == (Foreign((4, 1, 1), bare=True), Foreign((4,), bare=True),
                                               Foreign((4,), name="scale"), Foreign((4,), name="gamma"))
    assert foreign("LAYERSCALE", (12,))["weight"] == (Foreign((12,), bare=True), Foreign((12,), name="scale"),
                                                      Foreign((12,), name="gamma"))


def test_every_kind_is_listed_once():
    assert len({k.name for k in ALL}) == len(ALL) == len(KINDS)
    for k in ALL:
        assert inspect.getmodule(type(k)).__name__.startswith("cnndsl.kinds.")


def test_init_facts_match_pytorch_default_bounds():
    """fan_in_uniform is PyTorch's default: every conv/linear weight lies within 1/sqrt(fan_in)."""
    torch = pytest.importorskip("torch")
    m = cnndsl.loads("input 8x8x4\nCONV(6, 3) - FC(10)").to_torch(seed=0)
    for name, w in m.state_dict().items():
        if name.endswith("weight"):
            bound = 1 / math.sqrt(math.prod(w.shape[1:]))
            assert w.abs().max() <= bound + 1e-7
