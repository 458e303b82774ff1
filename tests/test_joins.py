"""The product and mean joins, channel slices and the channel shuffle: grammar (strict LALR), shapes and
their errors, saved-for-backward bytes against autograd, PyTorch outputs against the formulas
(torchvision's channel_shuffle), ONNX Runtime against PyTorch at opset 13 and the newest, diagrams."""
import pytest

import cnndsl
from cnndsl.errors import CnnError
from cnndsl.lang.syntax import GRAMMAR

SE = "def se(c, r=4) = { ID .* ADAPTIVEAVGPOOL(1) - CONV(c / r, 1) - SILU - CONV(c, 1) - SIGMOID }\n"
SHUFFLE_UNIT = ("def unit(c) = { SPLIT(0) | SPLIT(1) - CONV(c/2, 1, bias=false) - BN - RELU"
                " - CONV(c/2, 3, p=1, groups=c/2, bias=false) - BN - CONV(c/2, 1, bias=false) - BN - RELU } - SHUFFLE(2)\n")
NETS = {
    "se": "input 8x8x16\n" + SE + "CONV(16, 3, p=1) - se(16) - RELU - { ID .* se(16) } - GAP - FC(5)",
    "shuffle": f"input 8x8x16\n{SHUFFLE_UNIT}unit(16)*2 - CHANNELS(3, 11) - GAP - FC(5)",
    "mean": "input 8x8x8\nCONV(8, 1) - { ID & CONV(8, 3, p=1) & CONV(8, 1) - RELU } - { RELU & BN } - GAP - FC(5)",
    "product3": "input 6x6x4\nCONV(4, 1) - { ID .* ADAPTIVEAVGPOOL(1) - SIGMOID .* CONV(4, 1) } - GAP - FC(3)",
    "slices": "input 6x6x12\nCONV(12, 1) - { CHANNELS(0, 4) | CHANNELS(4) - CONV(8, 1) | SPLIT(2, parts=3) }"
              " - SHUFFLE(4) - SHUFFLE - FC(4)",
    "vector_product": "input 6x6x4\nGAP - FC(8) - { ID .* SIGMOID } - { ID & RELU } - CHANNELS(2, 6) - FC(3)",
}


def load(text):
    return cnndsl.loads(text)


# ---- grammar ----------------------------------------------------------------------------------------------
def test_the_grammar_builds_in_lark_strict_mode():
    """A shift/reduce conflict (lark resolves it as a shift, silently) fails here loudly."""
    from lark import Lark
    try:
        import interegular  # noqa: F401  - lark's strict mode also checks terminal collisions with it
        Lark.open(GRAMMAR, parser="lalr", lexer="basic", strict=True, cache=False, start=["start", "value"])
    except ImportError:
        from lark.common import ParserConf
        from lark.parsers.lalr_analysis import LALR_Analyzer
        lark = Lark.open(GRAMMAR, parser="lalr", lexer="basic", cache=False, start=["start", "value"])
        LALR_Analyzer(ParserConf(lark.rules, None, lark.options.start), strict=True).compute_lalr()


def test_strict_mode_catches_a_conflict():
    """`*` as a join would be a conflict with the repeat: the check above would fail on it."""
    from lark import Lark
    from lark.common import ParserConf
    from lark.exceptions import GrammarError
    from lark.parsers.lalr_analysis import LALR_Analyzer
    text = open(GRAMMAR).read().replace("branch (_MEAN branch)+", 'branch ("*" branch)+')
    lark = Lark(text, parser="lalr", lexer="basic", cache=False, start=["start", "value"])
    with pytest.raises(GrammarError, match="Shift/Reduce"):
        LALR_Analyzer(ParserConf(lark.rules, None, lark.options.start), strict=True).compute_lalr()


def test_join_notation():
    g = load("input 4x4x4\n{ ID .* RELU } - { ID & RELU & SIGMOID } - { RELU*2 .* ID }\n- { ID\n & RELU }").graph
    assert [n.op for n in g.nodes if n.kind.join] == ["MUL", "MEAN", "MUL", "MEAN"]
    assert g["mean1"].inputs == ["mul1", "relu2", "sigmoid1"]
    assert g["mul2"].inputs == ["relu4", "mean1"]  # `-` and `*` bind tighter than `.*`


def test_mixing_joins_in_one_brace_says_how():
    with pytest.raises(CnnError) as e:
        load("input 4x4x4\n{ ID .* RELU + ID }")
    assert "{ a .* b }" in e.value.hint and "{ a & b }" in e.value.hint


# ---- shapes ------------------------------------------------------------------------------------------------
def test_shapes_and_counts():
    net = load(NETS["se"])
    mul = net.graph["se1.mul1"]
    assert [net.graph.shape_of(i) for i in mul.inputs] == [(8, 8, 16), (1, 1, 16)] and mul.out_shape == (8, 8, 16)
    rows = {r["name"]: r for r in net.report()["layers"]}
    assert rows["se1.mul1"]["flops"] == 8 * 8 * 16 and rows["se1.mul1"]["params"] == 0
    net = load(NETS["mean"])
    rows = {r["name"]: r for r in net.report()["layers"]}
    assert rows["mean1"]["flops"] == 3 * 8 * 8 * 8
    g = load(NETS["shuffle"]).graph
    assert g["unit1.split1"].out_shape == (8, 8, 8) and g["unit1.shuffle1"].out_shape == (8, 8, 16)
    assert g["channels1"].out_shape == (8, 8, 8)


@pytest.mark.parametrize("text, words", [
    ("input 4x4x8\n{ ID .* CONV(4, 1) }", ["4x4x8", "4x4x4", "channels 8 vs 4", "equal or 1"]),
    ("input 4x4x8\n{ ID .* GAP - FC(8) }", ["1x1xC volume", "SqueezeExcitation"]),
    ("input 4x4x8\n{ ID & MAXPOOL(2) }", ["averaged", "same shape"]),
    ("input 4x4x8\nSPLIT(2)", ["no part 2"]),
    ("input 4x4x7\nSPLIT(0)", ["7 channels into 2", "CHANNELS"]),
    ("input 4x4x8\nCHANNELS(5, 3)", ["start < stop <= 8"]),
    ("input 4x4x8\nCHANNELS(0, 9)", ["start < stop <= 8"]),
    ("input 4x4x6\nSHUFFLE(4)", ["divisible", "6 % 4 = 2"]),
    ("input 4x4x6\nGAP - FC(6) - SHUFFLE(2)", ["HxWxC volume"]),
])
def test_shape_errors_say_why(text, words):
    with pytest.raises(CnnError) as e:
        load(text)
    shown = e.value.render() if hasattr(e.value, "render") else str(e.value)
    for w in words:
        assert w in shown, (w, shown)


def test_dot_labels_show_the_join_operator():
    from cnndsl.draw.graph import to_dot
    dot = to_dot(load(NETS["mean"] + "\n").graph)
    assert "<b>MEAN</b> (&amp;)" in dot
    assert "<b>MUL</b> (.*)" in to_dot(load(NETS["se"]).graph)


# ---- against PyTorch and ONNX Runtime ----------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(NETS))
def test_saved_bytes_equal_autograds(name):
    pytest.importorskip("torch")
    from test_pytorch import autograd_saved_bytes
    # without BN: its batch statistics are per batch, not per image (the analyzer leaves them out)
    net = load(NETS[name].replace(" - BN", "").replace("{ RELU & BN }", "{ RELU & SIGMOID }"))
    assert net.report()["totals"]["saved_bytes_per_image"] == autograd_saved_bytes(net)


def test_saved_bytes_of_a_product_with_the_network_input():
    """x * gate with x the network input (no gradient): the product keeps x only, not the gate."""
    pytest.importorskip("torch")
    from test_pytorch import autograd_saved_bytes
    for text in ("input 6x6x4\n{ ID .* CONV(4, 1) - SIGMOID } - CONV(4, 1)", "input 6x6x4\n{ ID .* SIGMOID } - CONV(4, 1)",
                 "input 6x6x4\n{ ID .* ID } - CONV(4, 1)", "input 6x6x4\nCONV(4, 1) - { ID .* ID } - CONV(4, 1)"):
        net = load(text)
        assert net.report()["totals"]["saved_bytes_per_image"] == autograd_saved_bytes(net), text


@pytest.mark.parametrize("name", sorted(NETS))
def test_shapes_and_params_match_pytorch(name):
    pytest.importorskip("torch")
    from test_pytorch import check_against_analyzer
    check_against_analyzer(load(NETS[name]))


def test_pytorch_outputs_are_the_formulas():
    torch = pytest.importorskip("torch")
    x = torch.randn(2, 12, 3, 3)
    # SHUFFLE: torchvision's channel_shuffle, view(b, g, c/g, h, w) -> transpose(1, 2) -> flatten
    m = load("input 3x3x12\nSHUFFLE(3)").to_torch().eval()
    want = x.view(2, 3, 4, 3, 3).transpose(1, 2).contiguous().view(2, 12, 3, 3)
    assert torch.equal(m(x), want)
    m = load("input 3x3x12\n{ SPLIT(1, parts=3) | CHANNELS(2, 5) | CHANNELS(10) }").to_torch().eval()
    assert torch.equal(m(x), torch.cat([x.chunk(3, 1)[1], x[:, 2:5], x[:, 10:]], 1))
    m = load("input 3x3x12\n{ ID .* ADAPTIVEAVGPOOL(1) - SIGMOID } - { ID & SIGMOID & TANH }").to_torch().eval()
    y = x * torch.sigmoid(x.mean((2, 3), keepdim=True))
    assert torch.allclose(m(x), (y + torch.sigmoid(y) + torch.tanh(y)) / 3, atol=1e-6)


@pytest.mark.parametrize("name", sorted(NETS))
def test_onnx_matches_torch_at_13_and_the_newest(name):
    pytest.importorskip("onnxruntime")
    from cnndsl.backends import onnx_graph
    from test_onnx import verify
    net = load(NETS[name])
    for opset in sorted({13, onnx_graph.runtime_max_opset()[1]}):
        model = verify(net, opset=opset)
        ops = {n.op_type for n in model.graph.node}
        assert "Mul" in ops or "Mean" in ops or "Slice" in ops


def test_compiled_source_runs_the_new_joins():
    torch = pytest.importorskip("torch")
    for name in ("se", "shuffle", "mean", "product3"):
        net = load(NETS[name])
        src = net.torch_source()
        ns = {}
        exec(compile(src, f"{name}.py", "exec"), ns)
        m = net.to_torch(seed=0).eval()
        g = ns["Net"]().eval()
        g.load_state_dict(m.state_dict(), strict=True)
        x = torch.randn(2, *(lambda s: (s[2], s[0], s[1]))(net.graph.input_shape))
        assert torch.allclose(g(x), m(x), atol=1e-6), name


def test_a_gate_pooled_by_adaptive_pool_keeps_the_receptive_field_of_one_pooled_by_gap():
    """ADAPTIVEAVGPOOL(1) steps nowhere, as GAP: after an SE gate the jump is the trunk's, not H times it."""
    import cnndsl
    fields = []
    for pool in ("ADAPTIVEAVGPOOL(1)", "GAP", "ADAPTIVEMAXPOOL(1)"):
        r = cnndsl.loads(f"input 32x32x8\nCONV(8, 3, s=2, p=1) - {{ ID .* {pool} - CONV(8, 1) - SIGMOID }}"
                         " - CONV(8, 3)").report()
        fields.append([(l["rf"], l["jump"]) for l in r["layers"]])
    assert fields[0] == fields[1] == fields[2]
    # the last conv: the gate's field is the whole input seen by the trunk, its jump the trunk's (2)
    assert fields[0][-1][1] == 2
