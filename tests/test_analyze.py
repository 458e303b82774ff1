"""The analyzer against the lecture's worked examples, published receptive fields, and PyTorch itself."""

import pytest

import cnndsl
from cnndsl import CnnError


def report(text, **kw):
    return cnndsl.loads(text, **{k: v for k, v in kw.items() if k in ("bindings", "input", "strict")}).report(
        **{k: v for k, v in kw.items() if k not in ("bindings", "input", "strict")})


# ---- the lecture's conv arithmetic -------------------------------------------------------
def test_lecture_example_32x32x3_ten_5x5_filters():
    l = report("input 32x32x3\nCONV(10, 5, s=1, p=2)")["layers"][0]
    assert l["out"] == [32, 32, 10]
    assert l["params"] == 5 * 5 * 3 * 10 + 10 == 760
    assert l["macs"] == 32 * 32 * 10 * 5 * 5 * 3


@pytest.mark.parametrize("s,p,want", [(1, 0, 5), (2, 0, 3), (1, 1, 7)])
def test_lecture_7x7_input_3x3_filter(s, p, want):
    assert report(f"input 7x7x1\nCONV(1, 3, s={s}, p={p})")["layers"][0]["out"] == [want, want, 1]


def test_stride_3_does_not_fit_warns_and_strict_errors():
    text = "input 7x7x1\nCONV(1, 3, s=3)"
    rep = report(text)
    assert rep["layers"][0]["out"] == [2, 2, 1]  # PyTorch floors
    assert "2.33" in rep["layers"][0]["warnings"][0]
    with pytest.raises(CnnError) as e:
        cnndsl.loads(text, strict=True)
    assert "does not fit a 7x7 input" in e.value.message and "2.33" in e.value.arithmetic
    assert (e.value.span.line, e.value.span.col) == (2, 1)


def test_stride_wider_than_window_is_no_misfit():
    # a 1x1 window at stride 2 skips every other row by design; the last one is no exception
    assert report("input 56x56x64\nCONV(128, 1, s=2)")["layers"][0]["warnings"] == []
    # but a 3x3 window at stride 2 on 8 rows leaves row 8 unread while reading every other row
    assert report("input 8x8x3\nCONV(4, 3, s=2)")["layers"][0]["warnings"]


def test_padding_only_floor_is_not_a_warning():
    # ResNet's stem: (224 - 7 + 2*3)/2 = 111.5 floors away only padding, not image pixels
    assert report("input 224x224x3\nCONV(64, 7, s=2, p=3)")["layers"][0]["warnings"] == []


@pytest.mark.parametrize("text,out,macs", [
    # the lecture's naive Inception module on 28x28x256, and with 1x1 bottlenecks
    ("{ CONV(128, 1) | CONV(192, 3, p=1) | CONV(96, 5, p=2) | MAXPOOL(3, s=1, p=1) }", [28, 28, 672], 854196224),
    ("{ CONV(128, 1) | CONV(64, 1) - CONV(192, 3, p=1) | CONV(64, 1) - CONV(96, 5, p=2) "
     "| MAXPOOL(3, s=1, p=1) - CONV(64, 1) }", [28, 28, 480], 271351808),
])
def test_lecture_inception_arithmetic(text, out, macs):
    rep = report("input 28x28x256\n" + text)
    assert rep["layers"][-1]["op"] == "CONCAT" and rep["layers"][-1]["out"] == out
    assert sum(l["macs"] for l in rep["layers"] if l["op"] == "CONV") == macs


def test_lecture_1x1_bottleneck_saves_compute():
    direct = report("input 28x28x128\nCONV(64, 5, p=2)")["totals"]["macs"]
    reduced = report("input 28x28x128\nCONV(32, 1) - CONV(64, 5, p=2)")["totals"]["macs"]
    assert (direct, reduced) == (160563200, 43352064)


# ---- counting conventions ----------------------------------------------------------------
def test_grouped_and_depthwise_conv_counts():
    l = report("input 56x56x128\nCONV(128, 3, p=1, groups=32, bias=false)")["layers"][0]
    assert l["params"] == 3 * 3 * 4 * 128
    assert l["macs"] == 56 * 56 * 128 * 3 * 3 * 128 // 32
    dw = report("input 56x56x32\nCONV(32, 3, p=1, groups=32)")["layers"][0]
    assert dw["params"] == 3 * 3 * 32 + 32


def test_flops_are_two_per_mac_plus_bias_and_elementwise_ops():
    rep = report("input 8x8x3\nCONV(4, 3, p=1) - BN - RELU - MAXPOOL(2) - FC(10)")
    conv, bn, relu, pool, flat, fc = rep["layers"]
    assert conv["flops"] == 2 * conv["macs"] + 8 * 8 * 4
    assert bn["params"] == 8 and bn["flops"] == 2 * 8 * 8 * 4 and bn["macs"] == 0
    assert relu["flops"] == 8 * 8 * 4
    assert pool["flops"] == 4 * 4 * 4 * 4
    assert fc["macs"] == 64 * 10 and fc["flops"] == 2 * 640 + 10
    assert rep["totals"]["macs"] == conv["macs"] + fc["macs"]


def test_activation_memory_counts_input_and_layers_not_run_in_place():
    rep = report("input 8x8x3\nCONV(4, 3, p=1) - RELU - DROPOUT(0.5)", dtype="fp16")
    t = rep["totals"]
    assert t["act_elems"] == 8 * 8 * 3 + 8 * 8 * 4  # ReLU and dropout at inference reuse memory
    assert t["act_bytes"] == 2 * t["act_elems"]
    assert rep["layers"][1]["act_elems"] == 256


def test_training_memory_and_largest_batch():
    net = cnndsl.loads("input 32x32x3\nCONV(16, 3, p=1) - RELU - FC(10)")
    params = net.report()["totals"]["params"]
    sgd = net.report(optimizer="sgd", batch=1)["totals"]
    adam = net.report(optimizer="adam", batch=4)["totals"]
    assert sgd["train_fixed_bytes"] == 4 * params * 2
    assert adam["train_fixed_bytes"] == 4 * params * 4
    assert adam["train_bytes"] == adam["train_fixed_bytes"] + 4 * adam["train_per_image_bytes"]
    budget = adam["train_fixed_bytes"] + 10 * adam["train_per_image_bytes"] + 1
    rep = net.report(memory=budget)
    assert rep["memory"]["max_batch"] == 10
    assert net.report(memory="1GiB")["memory"]["budget_bytes"] == 2**30
    with pytest.raises(CnnError):
        net.report(memory="lots")


# ---- receptive field: published figures ------------------------------------------------------
def test_receptive_field_of_alexnet_matches_published():
    # Araujo et al., "Computing Receptive Fields of CNNs" (Distill 2019): AlexNet conv5 163, pool5 195
    text = ("input 227x227x3\nCONV(96, 11, s=4) - MAXPOOL(3, s=2) - CONV(256, 5, p=2) - MAXPOOL(3, s=2)"
            " - CONV(384, 3, p=1) - CONV(384, 3, p=1) - CONV(256, 3, p=1) - MAXPOOL(3, s=2)")
    rf = [(l["rf"], l["jump"]) for l in report(text)["layers"]]
    assert rf[0] == (11, 4) and rf[-2] == (163, 16) and rf[-1] == (195, 32)


def test_receptive_field_of_vgg16_pool5_is_212():
    rep = cnndsl.load("nets/vgg16.net").report()
    pools = [l for l in rep["layers"] if l["op"] == "MAXPOOL"]
    assert pools[-1]["rf"] == 212 and pools[-1]["jump"] == 32
    assert rep["layers"][-1]["rf"] is None  # flat: no receptive field


def test_dilation_widens_the_receptive_field():
    assert report("input 32x32x3\nCONV(8, 3, d=2)")["layers"][0]["rf"] == 5


def test_a_join_takes_the_largest_field_on_each_axis():
    # a 1x3 beside a 3x1 sees a 3x3 patch (either input alone sees 1x3 or 3x1)
    rep = report("input 9x9x3\n{ CONV(8, (1,3), p=(0,1)) | CONV(8, (3,1), p=(1,0)) }")
    assert [(l["op"], l["rf"], l["jump"]) for l in rep["layers"]] == [
        ("CONV", [1, 3], 1), ("CONV", [3, 1], 1), ("CONCAT", 3, 1)]


# a join whose field ends up non-square: 3x3 after the first join, 5x5 at jump 2 after the
# stride-2 conv; then a 1x5 gives 5 x (5 + 4*2) = 5x13, a 3x1 gives (5 + 2*2) x 5 = 9x5: 9x13
NONSQUARE_JOINS = ("input 33x33x1\n{ CONV(2, (1,3), p=(0,1)) | CONV(2, (3,1), p=(1,0)) } - CONV(2, 3, s=2, p=1)"
                   " - { CONV(2, (1,5), p=(0,2)) | CONV(2, (3,1), p=(1,0)) - ID | ID }")


def test_a_join_of_non_square_branches_keeps_both_axes():
    layers = report(NONSQUARE_JOINS)["layers"]
    assert (layers[2]["op"], layers[2]["rf"]) == ("CONCAT", 3)
    assert (layers[3]["rf"], layers[3]["jump"]) == (5, 2)
    assert (layers[-1]["op"], layers[-1]["rf"], layers[-1]["jump"]) == ("CONCAT", [9, 13], 2)


# ---- the shape rules against PyTorch itself ------------------------------------------------------
torch = pytest.importorskip("torch")


def test_receptive_field_is_the_extent_of_pytorchs_input_gradient():
    """The field is the bounding box of the input pixels that reach one output pixel: the rows and
    columns where the gradient of a central output value is non-zero (no ReLU or max pool to mask it)."""
    net = cnndsl.loads(NONSQUARE_JOINS)
    model = net.to_torch(seed=0).double()
    for p in model.parameters():   # positive weights: no two paths cancel
        p.data = p.data.abs() + 0.1
    x = torch.ones(1, 1, 33, 33, dtype=torch.double, requires_grad=True)
    y = model(x)
    h, w = y.shape[2] // 2, y.shape[3] // 2
    y[0, :, h, w].sum().backward()
    rows, cols = x.grad[0, 0].abs().sum(1).nonzero(), x.grad[0, 0].abs().sum(0).nonzero()
    rf = report(NONSQUARE_JOINS)["layers"][-1]["rf"]
    assert [int(rows.max() - rows.min()) + 1, int(cols.max() - cols.min()) + 1] == rf == [9, 13]

CASES = [
    ("CONV(4, 3, s=2, p=1)", lambda c: torch.nn.Conv2d(c, 4, 3, 2, 1)),
    ("CONV(4, (3,5), s=(2,1), p=(1,2), d=2)", lambda c: torch.nn.Conv2d(c, 4, (3, 5), (2, 1), (1, 2), (2, 2))),
    ("CONV(4, 4, p=same, d=1, s=1)", None),  # even kernel + same: an error, see below
    ("MAXPOOL(3, s=2, ceil=true)", lambda c: torch.nn.MaxPool2d(3, 2, ceil_mode=True)),
    ("MAXPOOL(2, s=2, p=1, ceil=true)", lambda c: torch.nn.MaxPool2d(2, 2, 1, ceil_mode=True)),
    ("MAXPOOL(3, s=2, p=1)", lambda c: torch.nn.MaxPool2d(3, 2, 1)),
    ("AVGPOOL(3, s=3, ceil=true)", lambda c: torch.nn.AvgPool2d(3, 3, ceil_mode=True)),
    ("ADAPTIVEAVGPOOL(3)", lambda c: torch.nn.AdaptiveAvgPool2d(3)),
    ("GAP", lambda c: torch.nn.AdaptiveAvgPool2d(1)),
]


@pytest.mark.parametrize("size", [5, 7, 8, 13, 14, 17, 224])
@pytest.mark.parametrize("layer,module", [c for c in CASES if c[1]])
def test_shape_rule_equals_pytorch(layer, module, size):
    try:
        rep = report(f"input {size}x{size + 1}x3\n{layer}")
    except CnnError:
        with pytest.raises(RuntimeError):
            module(3)(torch.zeros(1, 3, size, size + 1))
        return
    with torch.no_grad():
        y = module(3)(torch.zeros(1, 3, size, size + 1))
    H, W, C = rep["layers"][0]["out"]
    assert list(y.shape) == [1, C, H, W]
    m = module(3)
    assert rep["totals"]["params"] == sum(p.numel() for p in m.parameters())


def test_even_kernel_same_padding_is_refused_with_a_hint():
    with pytest.raises(CnnError, match="odd kernel"):
        cnndsl.loads("input 8x8x3\nCONV(4, 4, p=same)")


def test_pool_padding_over_half_the_window_is_refused_like_pytorch():
    with pytest.raises(CnnError, match="more than half"):
        cnndsl.loads("input 8x8x3\nMAXPOOL(2, p=2)")
    with pytest.raises(RuntimeError):
        torch.nn.MaxPool2d(2, padding=2)(torch.zeros(1, 3, 8, 8))


def test_groups_must_divide_channels_like_pytorch():
    with pytest.raises(CnnError, match="groups=4 does not divide"):
        cnndsl.loads("input 8x8x6\nCONV(8, 3, groups=4)")
    with pytest.raises(ValueError):
        torch.nn.Conv2d(6, 8, 3, groups=4)


def test_parameter_count_of_every_kind_equals_pytorch():
    text = "input 12x12x6\nCONV(8, 3, groups=2) - BN - LRN(size=3) - FC(5, bias=false) - BN - FC(3)"
    rep = report(text)
    mods = [torch.nn.Conv2d(6, 8, 3, groups=2), torch.nn.BatchNorm2d(8), torch.nn.LocalResponseNorm(3),
            torch.nn.Flatten(), torch.nn.Linear(800, 5, bias=False), torch.nn.BatchNorm1d(5), torch.nn.Linear(5, 3)]
    assert [l["params"] for l in rep["layers"]] == [sum(p.numel() for p in m.parameters()) for m in mods]
    assert rep["totals"]["params"] == sum(p.numel() for m in mods for p in m.parameters())
