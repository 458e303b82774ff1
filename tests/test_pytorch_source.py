"""Generated PyTorch source against to_torch(): same state_dict keys and shapes, identical outputs."""
import ast
import os
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")

import cnndsl  # noqa: E402
from cnndsl.backends import pytorch_source  # noqa: E402
from cnndsl.layers import KINDS  # noqa: E402
from specgen import NETS, random_specs  # noqa: E402
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


@pytest.mark.parametrize("path", NETS, ids=[os.path.basename(p) for p in NETS])
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
