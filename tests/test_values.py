"""Values with functions and a repeat that names its index: exact values (ints stay ints), the rules of
torchvision's helpers, errors, and the compiled PyTorch source that writes them as Python."""
import math

import pytest

import cnndsl
from cnndsl.errors import CnnError
from cnndsl.lang.functions import FUNCTIONS, make_divisible


def value(text, **bindings):
    """The value of `text` as a spec computes it (read back from a layer that takes it)."""
    net = cnndsl.loads(f"input 4x4x1\nlet v = {text}\nDROPOUT(0) - FC(1) - LAYERSCALE(v)", bindings=bindings)
    return net.graph.nodes[-1].attrs["init"]


def ints(text):
    return cnndsl.loads(f"input 4x4x1\nCONV({text}, 1)").graph.nodes[0].attrs["filters"]


@pytest.mark.parametrize("text, want", [
    ("min(3, 8, 5)", 3), ("max(2, 7)", 7), ("round(2.5)", 2), ("round(3.5)", 4), ("round(-0.5)", 0),
    ("floor(7 / 2)", 3), ("ceil(7 / 2)", 4), ("ceil(3 * 1.1)", 4), ("int(-2.7)", -2), ("int(2.7)", 2),
    ("abs(-3)", 3), ("make_divisible(32 * 0.75, 8)", 24), ("make_divisible(10, 8)", 16), ("make_divisible(3, 8)", 8),
    ("make_divisible(17.6, 8)", 16), ("make_divisible(5, 8, 4)", 8), ("round(log(8, 2))", 3),
    ("floor(log(1000) / log(10) + 0.5)", 3),
])
def test_functions(text, want):
    got = ints(text) if want > 0 else ints(f"10 + {text}") - 10
    assert got == want and isinstance(got, int)


def test_values_stay_exact():
    assert isinstance(value("8 / 2"), float)  # LAYERSCALE's init is a float argument
    net = cnndsl.loads("input 4x4x1\nlet a = 8 / 2\nlet b = 7 / 2\nCONV(a, 1) - LAYERSCALE(b)")
    assert net.graph.nodes[0].attrs["filters"] == 4 and net.graph.nodes[1].attrs["init"] == 3.5
    with pytest.raises(CnnError, match="whole number"):
        cnndsl.loads("input 4x4x1\nCONV(7 / 2, 1)")


def test_make_divisible_is_torchvisions_rule():
    """_make_divisible(v, divisor, min_value=None): the nearest multiple (halves up), at least min_value,
    one divisor more when rounding went down by more than 10%; the torchvision figures of MobileNetV2/V3."""
    assert [make_divisible(c * 1.0, 8) for c in (16, 24, 40, 80, 112, 160, 960, 1280)] == [16, 24, 40, 80, 112, 160, 960, 1280]
    assert [make_divisible(c * 0.5, 8) for c in (32, 16, 24, 96, 160, 320)] == [16, 8, 16, 48, 80, 160]
    assert [make_divisible(c * 0.35, 8) for c in (32, 96, 160, 320)] == [16, 32, 56, 112]
    assert make_divisible(20, 16) == 32  # 16 would be 20% below 20
    assert make_divisible(96 // 4, 8) == 24 and make_divisible(0.25 * 16, 8) == 8
    for v in [x / 4 for x in range(1, 400)]:
        for d in (4, 8, 16):
            r = make_divisible(v, d)
            assert r % d == 0 and r >= d and r >= 0.9 * v and isinstance(r, int)


def test_every_function_has_python_and_a_doc():
    for f in FUNCTIONS.values():
        assert f.doc and f.python.split(".")[-1] in (f.name, "floor", "ceil", "log")


@pytest.mark.parametrize("text, code, words", [
    ("sqrt(4)", "E205", ["unknown function `sqrt`", "the functions"]),
    ("mx(4, 2)", "E205", ["did you mean `max`"]),
    ("min(4)", "E206", ["at least 2"]),
    ("round(1, 2)", "E206", ["takes 1 argument"]),
    ("ceil(same)", "E206", ["needs numbers"]),
    ("make_divisible(8, 0)", "E206", ["division by zero"]),
    ("log(0)", "E206", ["cannot compute `log`"]),
    ("ceil(1e300)", "E206", ["too large"]),
])
def test_function_errors(text, code, words):
    with pytest.raises(CnnError) as e:
        cnndsl.loads(f"input 4x4x1\nlet v = {text}\nRELU")
    assert e.value.code == code
    for w in words:
        assert w in str(e.value), str(e.value)


# ---- the repeat's index ---------------------------------------------------------------------------------
def test_repeat_index_doubles_the_channels():
    """The classic pattern: stage i has C * 2**i filters."""
    net = cnndsl.loads("input 32x32x3\nlet C = 16\n(CONV(C * 2**i, 3, p=1) - RELU - MAXPOOL(2))*3 @i - GAP - FC(10)")
    assert [n.out_shape[-1] for n in net.graph.nodes if n.op == "CONV"] == [16, 32, 64]


def test_index_in_a_block_counts_and_nested_indexes():
    net = cnndsl.loads("input 8x8x2\ndef stage(c, n) = (CONV(c + i, 1))*n @i\n(stage(4 * (j + 1), j + 1))*3 @j")
    assert [n.out_shape[-1] for n in net.graph.nodes] == [4, 8, 9, 12, 13, 14]
    net = cnndsl.loads("input 8x8x2\n((CONV(10 * i + j + 1, 1))*(i + 1) @j)*3 @i")
    assert [n.out_shape[-1] for n in net.graph.nodes] == [1, 11, 12, 21, 22, 23]


def test_running_index_across_stages_for_stochastic_depth():
    """EfficientNet's rising drop probability p * block / blocks, the stage offsets computed in the spec."""
    text = """input 8x8x4
let P = 0.2
let D1 = ceil(1 * 1.2)
let D2 = ceil(2 * 1.2)
let TOTAL = D1 + D2
def stage(c, n, first) = ({ ID + CONV(c, 1) - DROPPATH(P * (first + i) / TOTAL) })*n @i
stage(4, D1, 0) - stage(4, D2, D1)
"""
    ps = [n.attrs["p"] for n in cnndsl.loads(text).graph.nodes if n.op == "DROPPATH"]
    assert ps == [0.2 * k / 5 for k in range(5)]


def test_index_is_seen_by_the_body_only():
    with pytest.raises(CnnError, match="`i` is not bound"):
        cnndsl.loads("input 8x8x2\n(CONV(4, 1))*2 @i - CONV(i + 1, 1)")
    with pytest.raises(CnnError, match="already bound"):
        cnndsl.loads("input 8x8x2\nlet i = 3\n(CONV(4 + i, 1))*2 @i")
    with pytest.raises(CnnError, match="already bound"):
        cnndsl.loads("input 8x8x2\n((CONV(4 + i, 1))*2 @i)*2 @i")
    assert "i" not in cnndsl.parse("input 8x8x2\n(CONV(4 + i, 1))*2 @i").names  # -D i=... binds nothing


def test_counts_may_call_functions():
    net = cnndsl.loads("input 8x8x2\nlet depth = 1.1\nRELU*ceil(3 * depth) - SIGMOID*(max(1, 2))")
    assert [n.op for n in net.graph.nodes] == ["RELU"] * 4 + ["SIGMOID"] * 2


def test_arguments_are_memoised_per_value_of_functions_arguments():
    net = cnndsl.loads("input 8x8x2\ndef b(c) = CONV(max(c, 6), 1)\nb(4) - b(8) - b(5)")
    assert [n.out_shape[-1] for n in net.graph.nodes] == [6, 8, 6]


# ---- the compiled PyTorch source --------------------------------------------------------------------------
def _compiled(text):
    torch = pytest.importorskip("torch")
    net = cnndsl.loads(text)
    src = net.torch_source()
    ns = {}
    exec(compile(src, "net.py", "exec"), ns)
    m = net.to_torch(seed=0).eval()
    g = ns["Net"]().eval()
    g.load_state_dict(m.state_dict(), strict=True)
    shape = net.graph.input_shape
    x = torch.randn(2, shape[2], shape[0], shape[1])
    assert torch.allclose(g(x), m(x), atol=1e-6)
    return src


def test_source_loops_over_the_spec_index_and_writes_the_functions():
    src = _compiled("""input 16x16x3
let W = 1.3
let P = 0.2
def stage(c, n, first=0, total=6) = (CONV(make_divisible(c * 2**i * W, 8), 3, p=1) - RELU
                                     - DROPPATH(P * (first + i) / total))*n @i
stage(8, 3) - stage(max(8, 4), ceil(2.5), first=3) - GAP - FC(10)
""")
    assert "for i in range(n):" in src
    assert "make_divisible(c * 2 ** i * W, 8)" in src and "def make_divisible(v, divisor, min_value=None):" in src
    assert "P * (first + i) / total" in src
    assert "Written as literals" not in src


def test_source_imports_math_for_floor_and_ceil():
    src = _compiled("input 8x8x3\ndef b(c) = CONV(ceil(c * 1.5), 1) - CONV(floor(c / 3), 1) - CONV(round(c * 0.7), 1)\n"
                    "b(4) - b(6) - GAP - FC(2)")
    assert "import math" in src and "math.ceil(c * 1.5)" in src and "round(c * 0.7)" in src
