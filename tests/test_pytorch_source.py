"""Generated PyTorch source against to_torch(): same state_dict keys and shapes, identical outputs."""
import ast
import os
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")

import cnndsl  # noqa: E402
from cnndsl.backends import pytorch_source  # noqa: E402
from cnndsl.kinds import KINDS  # noqa: E402
from specgen import random_specs, zoo_params  # noqa: E402
from specgen import RESNETISH as SMALL  # noqa: E402

ROOT = os.path.join(os.path.dirname(__file__), "..")


def load_class(source, class_name):
    namespace = {"__name__": "generated"}
    exec(compile(source, "<generated>", "exec"), namespace)
    return namespace[class_name]


def top_name(source):
    return [n.name for n in ast.parse(source).body if isinstance(n, ast.ClassDef)][-1]


def same_outputs(net, batch=2):
    src = net.torch_source()
    m = net.to_torch(seed=0).eval()
    g = load_class(src, top_name(src))().eval()
    g.load_state_dict(m.state_dict(), strict=True)
    shape = net.graph.input_shape
    x = torch.randn((batch, shape[2], shape[0], shape[1]) if len(shape) == 3 else (batch, *shape))
    with torch.no_grad():
        return torch.equal(m(x), g(x))


def test_every_kind_has_an_entry():
    assert set(pytorch_source.OPS) == set(KINDS)


def test_source_is_standalone_and_formatted():
    src = cnndsl.loads(SMALL, path="small.net").torch_source()
    assert "cnndsl" not in src.split('"""', 2)[2]  # only the docstring names the tool
    assert "class Small(nn.Module):" in src and "def forward(self, x):" in src
    assert all(len(line) <= 110 for line in src.splitlines())
    assert "# line 3: stem: [CONV(8, 3, p=1, bias=false) - BN - RELU]" in src
    compile(src, "small.py", "exec")
    # runs in a fresh interpreter without cnndsl on the path
    code = src + "\nm = Small().eval()\nprint(tuple(m(torch.randn(2, 3, 16, 16)).shape))\n"
    out = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "(2, 10)"


def test_small_net_identical_outputs_both_ways():
    net = cnndsl.loads(SMALL)
    assert same_outputs(net)
    src = net.torch_source(class_name="Tiny")
    g = load_class(src, "Tiny")()
    m = net.to_torch()
    m.load_state_dict(g.state_dict(), strict=True)  # and a checkpoint of the source loads into to_torch()


@pytest.mark.parametrize("path", zoo_params())
def test_zoo_source_has_to_torch_state_dict(path):
    net = cnndsl.load(path)
    src = net.torch_source()
    with torch.device("meta"):
        g = load_class(src, top_name(src))()
    m = net.to_torch(device="meta")
    assert [(k, tuple(v.shape)) for k, v in g.state_dict().items()] == \
           [(k, tuple(v.shape)) for k, v in m.state_dict().items()]
    # the same module paths, less the parameter-free joins the source writes inline (+, torch.cat, flatten)
    inline = {n.name for n in net.graph.nodes if n.op in ("ADD", "CONCAT", "FLATTEN")}
    assert {n for n, _ in g.named_modules()} == {n for n, _ in m.named_modules()} - inline
    # no variable the code never reads (the cs231n pattern's N, M, K; ResNet-50's `channels`)
    assert unread_names(src) == []
    # the docstring's state_dict example is a key of this module (LeNet-5 has no `conv1.weight`)
    named = docstring_keys(src)
    assert named and named <= set(m.state_dict())


def unread_names(source):
    """[(scope, name)]: names a module or function body assigns that nothing in it reads."""
    tree = ast.parse(source)

    def names(node, ctx):
        return {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ctx)}
    module = [t.id for n in tree.body if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name)]
    out = [("<module>", n) for n in module if n not in names(tree, ast.Load)]
    for f in ast.walk(tree):
        if isinstance(f, ast.FunctionDef):
            out += [(f.name, n) for n in sorted(names(f, ast.Store) - names(f, ast.Load))]
    return out


def docstring_keys(source):
    """The state_dict keys (`c1.weight`) the module's docstring names."""
    import re
    return set(re.findall(r"`([\w.]+\.(?:weight|bias|running_mean|running_var))`", ast.get_docstring(ast.parse(source))))


def test_unread_names_finds_dead_assignments():
    assert unread_names("N = 2\ndef f(x):\n    c = x\n    return x\n") == [("<module>", "N"), ("f", "c")]
    assert unread_names("N = 2\ndef f(x):\n    c = x * N\n    return c\n") == []


def test_logits_source_leaves_the_softmax_out():
    """compile --logits: the final SOFTMAX is left out (as to_torch(logits=True)), the docstring says
    logits, and with the same weights the outputs equal to_torch(logits=True)'s."""
    net = cnndsl.load(os.path.join(ROOT, "nets", "cs231n_pattern.net"))
    probs, src = net.torch_source(), net.torch_source(logits=True)
    assert "nn.Softmax" in probs and "probabilities" in ast.get_docstring(ast.parse(probs))
    assert "Softmax" not in src and "logits" in ast.get_docstring(ast.parse(src))
    assert unread_names(src) == []
    ref = net.to_torch(seed=0, logits=True).eval()
    gen = load_class(src, top_name(src))().eval()
    gen.load_state_dict(ref.state_dict(), strict=True)
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        out = gen(x)
        assert torch.equal(out, ref(x))
        assert not torch.allclose(out.sum(1), torch.ones(3))  # logits, not probabilities
    # a net without a final SOFTMAX compiles the same either way
    lenet = cnndsl.load(os.path.join(ROOT, "nets", "lenet5.net"))
    assert lenet.torch_source(logits=True) == lenet.torch_source()


def test_cli_compile_logits(tmp_path):
    from cnndsl.cli import main
    out = tmp_path / "pattern.py"
    assert main(["compile", os.path.join(ROOT, "nets", "cs231n_pattern.net"), "--logits", "-o", str(out)]) == 0
    assert "Softmax" not in out.read_text() and "class Cs231nPattern(nn.Module):" in out.read_text()


def test_a_block_repeated_once_everywhere_refuses_other_counts():
    """A repeat whose count is 1 in every call gives no second name to fit a loop to: the block is
    written once, and its class refuses a count it was not written for instead of building a wrong net
    (it used to loop over one module name, so Stage(n=3) ran one block twice)."""
    net = cnndsl.load(os.path.join(ROOT, "nets", "resnet18.net"))
    src = net.torch_source()
    ns = classes(src)
    assert same_outputs(net, batch=1)
    assert "basic2.conv1.weight" in ns["Stage"](64, 64, n=2).state_dict()
    with pytest.raises(ValueError, match="n - 1"):
        ns["Stage"](64, 64, n=3)


@pytest.mark.parametrize("name", ["lenet5", "cs231n_pattern", "nin"])
def test_small_zoo_nets_identical_outputs(name):
    path = os.path.join(ROOT, "nets", f"{name}.net")
    if not os.path.exists(path):
        pytest.skip(f"no {path}")
    assert same_outputs(cnndsl.load(path), batch=1)


def test_random_specs_identical_outputs():
    torch.manual_seed(0)
    for text, net in random_specs(30, seed=1):
        assert same_outputs(net), text


def test_names_that_are_not_attributes():
    net = cnndsl.loads("input 8x8x3\ntrain: [CONV(4, 3) - RELU] - eval: CONV(2, 1) - { ID + RELU }")
    assert same_outputs(net)


def test_bad_class_name_is_a_usage_error():
    with pytest.raises(cnndsl.CnnError):
        cnndsl.loads(SMALL).torch_source(class_name="not a name")


def test_cli_compile_writes_the_file(tmp_path):
    spec = tmp_path / "tiny.net"
    spec.write_text(SMALL)
    out = tmp_path / "tiny.py"
    from cnndsl.cli import main
    assert main(["compile", str(spec), "-o", str(out)]) == 0
    assert "class Tiny(nn.Module):" in out.read_text()


def classes(source):
    namespace = {"__name__": "generated"}
    exec(compile(source, "<generated>", "exec"), namespace)
    return namespace


def init_args(source, class_name):
    cls = next(n for n in ast.parse(source).body if isinstance(n, ast.ClassDef) and n.name == class_name)
    init = next(f for f in cls.body if isinstance(f, ast.FunctionDef) and f.name == "__init__")
    return [a.arg for a in init.args.args[1:]]


def test_one_class_per_def_with_the_defs_parameters():
    path = os.path.join(ROOT, "nets", "resnet50.net")
    def_line = next(i for i, line in enumerate(open(path), 1) if line.startswith("def bottleneck"))
    net = cnndsl.load(path)
    src = net.torch_source()
    names = [n.name for n in ast.parse(src).body if isinstance(n, ast.ClassDef)]
    assert names == ["Bottleneck", "Stage", "Resnet50"]
    assert f'"""The `bottleneck` block (spec line {def_line}): 16 instances."""' in src
    assert init_args(src, "Bottleneck") == ["cin", "c", "s", "downsample"]
    assert "def __init__(self, cin, c, s=1, downsample=False):" in src
    assert "nn.Conv2d(c * WIDTH_PER_GROUP // 64 * GROUPS, 4 * c, 1, bias=False)" in src
    assert "if downsample:" in src and "if self.downsample is not None:" in src
    assert 'self.add_module(f"bottleneck{i + 2}", Bottleneck(4 * c, c))' in src
    b = classes(src)["Bottleneck"](256, 64)
    assert b.conv1.in_channels == b.conv3.out_channels == 256 and b.downsample is None
    assert same_outputs(net, batch=1)


def test_included_defs_keep_their_file_and_parameter_names(tmp_path):
    (tmp_path / "blocks.net").write_text("# shared blocks\ndef block(c, k) = CONV(c, k, p=1) - BN - RELU\n")
    spec = tmp_path / "main.net"
    spec.write_text('include "blocks.net"\ninput 16x16x3\nblock(8, 3) - block(16, 5) - block(32, 3) - GAP - FC(10)\n')
    net = cnndsl.load(spec)
    src = net.torch_source()
    assert '"""The `block` block (blocks.net line 2)' in src and "# blocks.net line 2: def block" in src
    assert init_args(src, "Block") == ["cin", "c", "k"]
    b = classes(src)["Block"](cin=3, c=8, k=5)
    assert (b.conv1.in_channels, b.conv1.out_channels, b.conv1.kernel_size) == (3, 8, (5, 5))
    assert same_outputs(net)


def test_arguments_follow_block_parameters_through_nested_blocks():
    path = os.path.join(ROOT, "nets", "googlenet.net")
    src = cnndsl.load(path).torch_source()
    assert init_args(src, "Inception") == ["cin", "c1", "c3red", "c3", "c5red", "c5", "proj"]
    assert "self.branch2.basic2 = Basic(c3red, c3, 3, p=1)" in src
    m = classes(src)["Inception"](cin=192, c1=64, c3red=96, c3=128, c5red=16, c5=32, proj=32)
    assert m.branch1.conv.out_channels == 64 and m.branch2.basic1.conv.out_channels == 96
    assert m.branch2.basic2.conv.out_channels == 128 and m.branch4.basic1.conv.out_channels == 32


FEATURES = """input 16x16x3
let width = 8
def unit(c, k=3) = CONV(c, k, p=(k - 1) / 2) - BN - RELU
def body(c, n, extra=off, pool=on) = stem: [unit(c) - unit(2 * c, k=1)]
  - (unit(2 * c) - unit(2 * c, 1))*n
  - extra: (CONV(c, 1) - RELU)?
  - { ID | CONV(width, 1) } - MAXPOOL?
def twice(c) = body(c, 1) - body(c, 2, extra=on)
twice(4) - body(8, 3, pool=off) - GAP - FC(10)
"""


def test_nested_defs_defaults_optionals_repeats_and_labels():
    net = cnndsl.loads(FEATURES, path="features.net")
    src = net.torch_source()
    ast.parse(src)
    names = [n.name for n in ast.parse(src).body if isinstance(n, ast.ClassDef)]
    assert names == ["Unit", "Body", "Twice", "Features"]
    assert init_args(src, "Body") == ["cin", "c", "n", "extra", "pool"]
    assert "def __init__(self, cin, c, n, extra=False, pool=True):" in src
    assert "if extra:" in src and "if self.extra is not None:" in src
    assert "for i in range(n):" in src and "self.stem = nn.Module()" in src
    assert "nn.Conv2d(cin, c, k, padding=(k - 1) // 2)" in src
    assert "WIDTH = 8" in src and "Written as literals" not in src
    assert same_outputs(net)


def test_what_cannot_be_written_falls_back_to_literals():
    # `p=same` is not a Python expression of the def's parameters: a per-call argument
    text = "input 16x16x3\ndef u(c, k) = CONV(c, k, p=same) - RELU\nu(4, 3) - u(8, 5) - GAP - FC(10)\n"
    net = cnndsl.loads(text)
    src = net.torch_source()
    assert "Written as literals" in src and "conv1_padding" in src
    assert same_outputs(net)


def test_cnndsl_modules_are_written_into_the_file():
    """Kinds built from cnndsl's own modules (LayerNorm2d, LayerScale, StochasticDepth) compile to a
    file that defines them: it needs only torch, and loads to_torch()'s weights with equal outputs."""
    net = cnndsl.loads("input 8x8x4\nCONV(8, 3, p=1) - LAYERNORM - LAYERSCALE - DROPPATH(0.1) - GELU - GAP - FC(3)")
    src = pytorch_source.generate(net, class_name="Tiny")
    assert "class LayerNorm2d(nn.LayerNorm):" in src and "import cnndsl" not in src and "cnndsl." not in src
    ns = {}
    exec(compile(src, "<generated>", "exec"), ns)
    gen, ref = ns["Tiny"]().eval(), net.to_torch(seed=0).eval()
    gen.load_state_dict(ref.state_dict())
    x = torch.randn(2, 4, 8, 8)
    with torch.no_grad():
        assert torch.equal(gen(x), ref(x))


def test_a_layer_named_training_is_refused_with_its_position():
    net = cnndsl.loads("input 8x8x3\ntraining: CONV(4, 3) - RELU")
    with pytest.raises(cnndsl.CnnError) as e:
        pytorch_source.generate(net)
    assert e.value.span.line == 2 and "training" in e.value.message


def test_a_parameter_named_cin_beside_the_input_channels():
    """A def's own `cin` parameter is written cin_, beside the input channels' cin (EfficientNet's blocks)."""
    net = cnndsl.loads("input 8x8x3\ndef blk(cin, c) = CONV(c, 1) - CONV(cin, 1)\nblk(3, 4) - blk(5, 6)")
    src = net.torch_source()
    assert init_args(src, "Blk") == ["cin", "cin_", "c"]
    assert same_outputs(net)


def test_compile_needs_no_torch_and_knows_every_nn_module_attribute():
    """`cnndsl compile` writes source without importing torch, so the names a layer must not take
    (nn.Module's attributes) are data; they hold every name of the installed torch."""
    import tempfile
    import torch.nn as nn
    from cnndsl.backends.pytorch_source.module_attrs import NN_MODULE_ATTRS
    # torch._dynamo, once imported by another test, marks nn.Module with `___...` names of its own
    missing = {n for n in dir(nn.Module()) if not n.startswith("___")} - NN_MODULE_ATTRS
    assert not missing, f"nn.Module has attributes the compiled source does not avoid: {sorted(missing)}"
    code = ("import sys\nfrom cnndsl.cli import main\n"
            "main(['compile', 'nets/resnet50.net', '-o', sys.argv[1]])\n"
            "print('torch' in sys.modules)\n")
    root = os.path.join(os.path.dirname(__file__), "..")
    out = os.path.join(tempfile.mkdtemp(), "r50.py")
    p = subprocess.run([sys.executable, "-c", code, out], cwd=root, capture_output=True, text=True, timeout=300)
    assert p.stdout.strip().splitlines()[-1] == "False", p.stdout + p.stderr


def test_source_prints_what_the_spec_wrote_and_nothing_else():
    """From the IR's provenance (issue 23): an expression stays one, a word is written as its value and
    never as a constant (`bilinear`, a default or an argument), no `let` the code does not read."""
    net = cnndsl.loads("input 8x8x8\nlet W = 1.5\nlet unused = 3\n"
                       "def up(c, m=bilinear) = CONV(make_divisible(c * W, 8), 3, p=1) - UPSAMPLE(2, mode=m)"
                       " - UPSAMPLE(1, mode=nearest) - RELU\n"
                       "up(8) - up(16, m=nearest) - up(8)", path="up.net")
    src = net.torch_source()
    assert "def __init__(self, cin, c, m='bilinear'):" in src
    assert "nn.Conv2d(cin, make_divisible(c * W, 8), 3, padding=1)" in src
    assert "nn.Upsample(scale_factor=2, mode=m)" in src and "mode='nearest'" in src
    assert "W = 1.5  # let W" in src
    assert "# let" not in src.replace("# let W", "") and "BILINEAR" not in src and "NEAREST" not in src
    assert "self.up2 = UpBlock(16, 16, m='nearest')" in src
    assert unread_names(src) == []
    assert same_outputs(net)
