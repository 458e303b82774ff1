"""Several live streams (issue 24): `(a, b)` gives streams side by side, `$k` reads stream k.

Random specs with 2 to 3 streams (HRNet-like stages: a branch a stream, every output fused from
every stream with upsampling and strided convs; streams added with `(ID, b)`; copies `(b**n @i)`)
against PyTorch (shapes, parameters, saved-for-backward bytes) and ONNX Runtime at opset 13 and the
newest, and through the printer; a hand-written fuse against the formula; receptive fields, the
diagram, PAD (nn.ZeroPad2d). The nets that use streams (nets/hrnet_w18_small.net,
nets/pnasnet5large.net) are checked against timm by tests/test_timm_families.py; the errors by
tests/errors/stream_*.net.

    pytest tests/test_streams.py -q
"""
import random

import pytest

import cnndsl
from cnndsl.errors import CnnError
from cnndsl.lang.printer import format_program, structure

FUSE = """input 16x16x3
def up(c, f) = CONV(c, 1, bias=false) - BN - UPSAMPLE(f)
def down(c) = CONV(c, 3, s=2, p=1, bias=false) - BN
def fuse2(c) = (
    { $0 + $1 - up(c, 2) } - RELU,
    { $0 - down(2 * c) + $1 } - RELU
)
CONV(8, 3, p=1) - (ID, CONV(16, 3, s=2, p=1)) - ($0 - CONV(8, 3, p=1), $1 - RELU) - fuse2(8)
- { $0 - down(16) + $1 } - GAP - FC(10)
"""


def random_spec(seed: int) -> str:
    """A spec of n streams: made from one tensor, a branch each, fused (sum or mean) n times over,
    maybe a stream added, then concatenated at the highest resolution."""
    r = random.Random(seed)
    n, c, size = r.choice([2, 3]), r.choice([2, 4]), r.choice([8, 12, 16])
    widths = [c * 2**i for i in range(n)]
    make = ", ".join("ID" if i == 0 else f"{'AVGPOOL(2) - ' * (i - 1)}CONV({widths[i]}, 3, s=2, p=1)" for i in range(n))
    ops = ["RELU", "SIGMOID", "CONV({c}, 3, p=1)", "{{ ID + CONV({c}, 3, p=1) - RELU }}", "CONV({c}, 1) - TANH"]
    if r.random() < 0.5:
        branches = ", ".join(f"${i} - " + r.choice(ops).format(c=w) for i, w in enumerate(widths))
    else:  # copies: the same branch on every stream, by its index
        branches = f"(${{'i'}} - RELU)**{n} @i".replace("${'i'}", "$i")
    mode = r.choice(["nearest", "bilinear"])

    def term(i, j):
        if i == j:
            return f"${i}"
        if i > j:
            return f"${i} - CONV({widths[j]}, 1) - UPSAMPLE({2**(i - j)}, mode={mode})"
        return f"${i}" + f" - CONV({widths[i]}, 3, s=2, p=1) - RELU" * (j - i - 1) + f" - CONV({widths[j]}, 3, s=2, p=1)"

    join = r.choice([" + ", " & "])
    fuse = ", ".join("{ " + join.join(term(i, j) for i in range(n)) + " } - RELU" for j in range(n))
    grow = r.random() < 0.5
    last = widths[-1]
    extra = f" - (ID, ${n - 1} - CONV({last}, 3, p=1))" if grow else ""
    k = n + 1 if grow else n
    ups = [f"${i} - UPSAMPLE({2**i})" if i else "$0" for i in range(n)] + (
        [f"${n} - UPSAMPLE({2**(n - 1)})"] if grow else [])
    assert len(ups) == k
    return (f"input {size}x{size}x{c}\nCONV({c}, 3, p=1) - ({make}) - ({branches}) - ({fuse}){extra}"
            f" - {{ {' | '.join(ups)} }} - GAP - FC(5)\n")


SEEDS = range(8)


@pytest.mark.parametrize("seed", SEEDS)
def test_random_stream_specs_equal_pytorch(seed):
    pytest.importorskip("torch")
    from test_pytorch import autograd_saved_bytes, check_against_analyzer
    net = cnndsl.loads(random_spec(seed))
    check_against_analyzer(net)
    assert net.report()["totals"]["saved_bytes_per_image"] == autograd_saved_bytes(net)


@pytest.mark.parametrize("seed", SEEDS)
def test_random_stream_specs_equal_onnx_runtime(seed):
    pytest.importorskip("onnxruntime")
    from cnndsl.backends import onnx_graph
    from test_onnx import verify
    net = cnndsl.loads(random_spec(seed))
    for opset in sorted({13, onnx_graph.runtime_max_opset()[1]}):
        verify(net, opset=opset)


@pytest.mark.parametrize("seed", SEEDS)
def test_random_stream_specs_print_back(seed):
    prog = cnndsl.parse(random_spec(seed))
    text = format_program(prog)
    assert structure(cnndsl.parse(text)) == structure(prog)
    assert format_program(cnndsl.parse(text)) == text


def test_printer_breaks_a_long_tuple_one_element_a_line():
    from cnndsl.lang import printer
    prog = cnndsl.parse(FUSE)
    old, printer.WIDTH = printer.WIDTH, 24
    try:
        text = format_program(prog)
    finally:
        printer.WIDTH = old
    assert "def fuse2(c) = (\n    {" in text and "    } - RELU,\n" in text
    assert structure(cnndsl.parse(text)) == structure(prog)


def test_a_fuse_is_the_formula():
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    net = cnndsl.loads(FUSE)
    m = net.to_torch(seed=0).eval()
    sd = m.state_dict()

    def conv(x, n, s=1, p=0):
        return F.conv2d(x, sd[n + ".weight"], sd.get(n + ".bias"), s, p)

    def bn(x, n):
        return F.batch_norm(x, sd[n + ".running_mean"], sd[n + ".running_var"], sd[n + ".weight"], sd[n + ".bias"])

    x = torch.randn(2, 3, 16, 16)
    x0 = conv(x, "conv1", p=1)
    x1 = F.relu(conv(x0, "conv2", s=2, p=1))
    x0 = conv(x0, "conv3", p=1)
    y0 = F.relu(x0 + F.interpolate(bn(conv(x1, "fuse2_1.up1.conv1"), "fuse2_1.up1.bn1"), scale_factor=2))
    y1 = F.relu(bn(conv(x0, "fuse2_1.down1.conv1", s=2, p=1), "fuse2_1.down1.bn1") + x1)
    z = bn(conv(y0, "down1.conv1", s=2, p=1), "down1.bn1") + y1
    want = F.linear(z.mean((2, 3)), sd["fc1.weight"], sd["fc1.bias"])
    assert torch.allclose(m(x), want, atol=1e-5)
    # the compiled source computes the same
    ns = {}
    exec(compile(net.torch_source(), "fuse.py", "exec"), ns)
    [cls] = [v for v in ns.values() if isinstance(v, type) and (v.__doc__ or "").startswith("The network")]
    g = cls().eval()
    g.load_state_dict(m.state_dict(), strict=True)
    assert torch.allclose(g(x), want, atol=1e-5)


def test_streams_flow_through_blocks_and_repeats():
    """A block takes and gives streams; a repeat of it (HRNet's modules) chains them; `(ID, b)` adds one."""
    text = ("input 16x16x4\ndef stage(c) = ($0 - CONV(c, 3, p=1), $1 - CONV(2 * c, 3, p=1))"
            " - ({ $0 + $1 - CONV(c, 1) - UPSAMPLE(2) }, { $0 - CONV(2 * c, 3, s=2, p=1) + $1 })\n"
            "(ID, CONV(8, 3, s=2, p=1)) - stage(4)*3 - (ID, $1 - MAXPOOL(2)) - { $0 | $1 - UPSAMPLE(2) | $2 - UPSAMPLE(4) }")
    g = cnndsl.loads(text).graph
    assert g.shape_of(g.output) == (16, 16, 4 + 8 + 8)
    assert [n.name for n in g.nodes if n.op == "ADD"] == [f"stage{i}.add{k}" for i in (1, 2, 3) for k in (1, 2)]
    # the last stage's outputs are what the concat reads (through the pool and the upsamplings)
    concat = g[g.output]
    assert concat.inputs[0] == "stage3.add1" and g[concat.inputs[1]].inputs == ["stage3.add2"]


def test_a_join_takes_the_largest_receptive_field_of_its_streams():
    r = cnndsl.loads("input 32x32x4\n(CONV(4, 3, p=1), CONV(4, 3, s=2, p=1) - CONV(4, 3, p=1))"
                     " - { $0 + $1 - UPSAMPLE(2) } - CONV(4, 3, p=1)").report()
    rows = {l["name"]: (l["rf"], l["jump"]) for l in r["layers"]}
    assert rows["conv1"] == (3, 1) and rows["conv3"] == (7, 2) and rows["upsample1"] == (7, 1)
    assert rows["add1"] == (7, 1) and rows["conv4"] == (9, 1)


def test_the_diagram_draws_the_fuse():
    from cnndsl.draw.graph import to_dot
    dot = to_dot(cnndsl.loads(FUSE).graph)
    assert dot.count("<b>ADD</b>") == 3 and "UPSAMPLE" in dot


@pytest.mark.parametrize("text, words", [
    ("(ID, RELU) - $2", "there is no stream `$2`: 2 streams flow in here"),
    ("RELU - $1", "there is no stream `$1`: one tensor flows in here"),
    ("(ID, RELU) - $99999999999999", "there is no stream `$99999999999999`: 2 streams"),
    ("(ID, RELU) - $(0 - 1)", "a stream is numbered by a whole number from 0, not -1"),
    ("(ID, RELU) - $(1 / 2)", "not 0.5"),
    ("(ID, RELU) - CONV(4, 1)", "CONV reads one tensor, but 2 streams flow in here"),
    ("(ID, RELU) - { ID + $0 }", "this branch gives 2 streams"),
    ("(ID, RELU)", "the network ends with 2 streams"),
    ("(ID, RELU) - ($i**0 @i) - $0", "the tuple gives no streams"),
    ("(ID, CONV(4, 3, s=2, p=1)) - { $0 + $1 }", "16x16 / 8x8 = 2"),
])
def test_misuse_is_an_error_at_its_place(text, words):
    with pytest.raises(CnnError) as e:
        cnndsl.loads("input 16x16x4\n" + text)
    assert words in str(e.value) or words in (e.value.arithmetic or ""), str(e.value)
    assert e.value.span is not None and e.value.span.line == 2


def test_a_tuple_needs_a_comma_or_copies():
    """`(a)` stays a group; a tuple of one copy is that tensor."""
    g = cnndsl.loads("input 8x8x4\n(CONV(4, 1)) - ((RELU)**1) - ($0 - SIGMOID, RELU) - $1").graph
    assert [n.op for n in g.nodes] == ["CONV", "RELU", "SIGMOID", "RELU"]
    assert g.output == "relu2" and g["relu2"].inputs == ["relu1"]


def test_pad_is_zero_pad2d_and_crops():
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnxruntime")
    from test_onnx import verify
    from test_pytorch import autograd_saved_bytes, check_against_analyzer
    m = cnndsl.loads("input 5x5x1\nPAD(-1, 1, -1, 1)").to_torch().eval()
    x = torch.arange(25.0).view(1, 1, 5, 5)
    assert torch.equal(m(x), torch.nn.ZeroPad2d((-1, 1, -1, 1))(x))
    from cnndsl.backends import onnx_graph
    # ONNX Runtime fuses a bare Pad into the pool after it: wrong for a max pool (its padding is -inf),
    # refused by a 1x1 pool; the lowering keeps them apart
    for text in ("input 8x8x4\nPAD(-1, 1, -1, 1) - AVGPOOL(1, s=2, count_pad=false) - CONV(4, 1)",
                 "input 7x7x4\nCONV(4, 1) - PAD(0, 1, 2, -1) - CONV(4, 3)", "input 7x7x4\nCONV(4, 1) - PAD(1, 1, 1, 1) - RELU",
                 "input 7x7x4\nCONV(4, 1) - PAD(0, 1, 0, 1) - MAXPOOL(2, s=1)", "input 7x7x4\nPAD(0, 1, 0, 1) - AVGPOOL(1, s=2)",
                 "input 6x6x4\nCONV(4, 1) - PAD(0, 0, 0, 0) - MAXPOOL(2)"):
        net = cnndsl.loads(text)
        check_against_analyzer(net)
        assert net.report()["totals"]["saved_bytes_per_image"] == autograd_saved_bytes(net)
        for opset in sorted({13, onnx_graph.runtime_max_opset()[1]}):
            verify(net, opset=opset)
    with pytest.raises(CnnError, match="PAD leaves 0x5 of a 5x5 input"):
        cnndsl.loads("input 5x5x1\nPAD(0, 0, -3, -2)")


def test_names_read_in_streams_are_the_specs_names():
    """A variable read only by `$k` or inside a tuple is one of the spec's names (-D binds it; search sees it)."""
    from cnndsl.search.space import _var_refs
    prog = cnndsl.parse("input 8x8x4\n(ID, CONV(C, 1)) - { $0 + $K - CONV(4, 1) }")
    assert {"C", "K"} <= prog.names
    refs = set()
    _var_refs(prog.net, refs)
    assert refs == {"C", "K"}
    g = cnndsl.loads("input 8x8x4\n(ID, CONV(C, 1)) - { $0 + $K - CONV(4, 1) }", bindings={"C": 2, "K": 1}).graph
    assert g.shape_of("conv1") == (8, 8, 2)


def test_a_family_of_stream_specs_searches_to_each_members_report():
    """`cnndsl search` over a family whose members hold streams: each member's figures are its report's."""
    from cnndsl.search.enumerate import search
    from cnndsl.search.space import Space
    text = ("input 16x16x3\nlet C = 8 in 4, 8\nlet N = 1 in 1..2\n"
            "def fuse(c) = ({ $0 + $1 - CONV(c, 1) - UPSAMPLE(2) } - RELU, { $0 - CONV(2 * c, 3, s=2, p=1) + $1 } - RELU)\n"
            "CONV(C, 3, p=1) - (ID, CONV(2 * C, 3, s=2, p=1)) - fuse(C)*N - { $0 | $1 - UPSAMPLE(2) } - GAP - FC(10)\n")
    r = search(Space(cnndsl.parse(text)), workers=1)
    assert len(r["members"]) == 4
    for m in r["members"]:
        want = cnndsl.loads(text, bindings=m["bindings"]).report()["totals"]
        assert (m["params"], m["macs"]) == (want["params"], want["macs"]), m["bindings"]
