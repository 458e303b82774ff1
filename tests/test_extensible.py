"""A new kind with a new enumerated argument needs no edit outside its own file (issue 23): the
fixture kind SPATIALPAD (tests/kind_fixture.py, `mode=zeros|reflect|replicate`), registered from
outside the package, is read by the language, the report, the PyTorch module, the compiled
source, ONNX (run by onnxruntime) and the diagrams; and the IR holds no AST, only plain data."""
import dataclasses

import numpy as np
import pytest

import cnndsl
from cnndsl import kinds
from cnndsl.errors import CnnError
from cnndsl.kinds import DRAW_GROUPS
from cnndsl.lang import astnodes as A

import kind_fixture

torch = pytest.importorskip("torch")

SPEC = """input 12x12x3
def unit(c, m=reflect) = SPATIALPAD(1, mode=m) - CONV(c, 3) - BN - RELU - SPATIALPAD(1, mode=replicate)
unit(8) - unit(8, m=zeros) - SPATIALPAD(2, mode=reflect) - unit(4) - FC(10)
"""


@pytest.fixture(scope="module")
def pad():
    kind = kinds.register(kind_fixture.SpatialPad())
    yield kind
    kinds.unregister(kind.name)


@pytest.fixture(scope="module")
def net(pad):
    return cnndsl.loads(SPEC, path="pad.net")


def test_the_language_reads_the_new_kind_and_its_words(net):
    pads = [n for n in net.graph.nodes if n.op == "SPATIALPAD"]
    assert [(n.name, n.attrs["mode"], n.out_shape) for n in pads[:3]] == [
        ("unit1.spatialpad1", "reflect", (14, 14, 3)), ("unit1.spatialpad2", "replicate", (14, 14, 8)),
        ("unit2.spatialpad1", "zeros", (16, 16, 8))]
    with pytest.raises(CnnError) as err:
        cnndsl.loads("input 8x8x3\nSPATIALPAD(1, mode=mirror)")
    assert "one of zeros, reflect, replicate" in err.value.message


def test_it_declares_every_fact_the_package_kinds_do(pad):
    import test_kinds
    test_kinds.test_every_kind_declares_every_fact(pad)
    test_kinds.test_samples_build_and_name_their_kind(pad)
    test_kinds.test_tensors_and_constructor_agree_with_pytorch(pad)


class WrapPad(kind_fixture.SpatialPad):
    """Another kind, with a word of its own (`wrap`)."""
    name = "WRAPPAD"
    args = (kind_fixture.SpatialPad.args[0],
            dataclasses.replace(kind_fixture.SpatialPad.args[1], choices=("zeros", "wrap")))


def test_a_registered_kind_leaves_with_unregister(pad):
    kind = kinds.register(WrapPad())
    assert cnndsl.loads("input 8x8x3\nWRAPPAD(1, mode=wrap)").graph.nodes[0].attrs["mode"] == "wrap"
    with pytest.raises(ValueError):
        kinds.register(WrapPad())  # once
    kinds.unregister(kind.name)
    assert "WRAPPAD" not in kinds.KINDS and "wrap" not in kinds.WORDS and kind not in kinds.ALL
    assert "reflect" in kinds.WORDS  # SPATIALPAD's stay
    with pytest.raises(CnnError):
        cnndsl.loads("input 8x8x3\nWRAPPAD(1)")
    with pytest.raises(ValueError):
        kinds.unregister("CONV")  # the package's own stay


def test_report_and_torch_module_agree(net, capsys, tmp_path):
    m = net.to_torch(seed=0).eval()
    report = net.report()
    assert report["totals"]["params"] == sum(p.numel() for p in m.parameters())
    with torch.no_grad():
        y = m(torch.randn(2, 3, 12, 12))
    assert list(y.shape) == [2, *report["layers"][-1]["out"]]
    rows = {row["name"]: row for row in report["layers"]}
    assert rows["spatialpad1"]["out"] == [20, 20, 8] and rows["spatialpad1"]["params"] == 0
    from cnndsl.cli import main
    path = tmp_path / "pad.net"
    path.write_text(SPEC)
    assert main(["report", str(path)]) == 0
    assert "SPATIALPAD 2 reflect" in capsys.readouterr().out  # the kind's `describe`


def test_compiled_source_matches_and_prints_what_the_spec_wrote(net):
    from test_pytorch_source import same_outputs, unread_names
    src = net.torch_source()
    assert "class Pad2d(nn.Module):" in src  # the kind's own module, copied from its file
    assert "def __init__(self, cin, c, m='reflect'):" in src
    assert "self.spatialpad1 = Pad2d(1, mode=m)" in src  # the parameter, not a value
    assert "self.spatialpad2 = Pad2d(1, mode='replicate')" in src
    assert "# let" not in src and "REFLECT" not in src  # a word is no constant
    assert unread_names(src) == []
    assert same_outputs(net)


def test_onnx_export_runs_in_onnxruntime(net):
    pytest.importorskip("onnxruntime")
    from test_onnx import verify
    model = verify(net)
    assert {"reflect", "edge", "constant"} <= {a.s.decode() for n in model.graph.node for a in n.attribute
                                               if n.op_type == "Pad" and a.name == "mode"}


def test_diagrams_draw_it_in_its_group(net, pad):
    dot = net.draw(style="graph")
    legend, colour = DRAW_GROUPS[pad.draw_group]
    assert f'"spatialpad1" [label=<<b>SPATIALPAD</b> 2 reflect' in dot
    line = next(line for line in dot.splitlines() if line.strip().startswith('"spatialpad1" ['))
    assert f'fillcolor="{colour}"' in line
    assert legend in dot  # no other layer of this net is in its group
    svg = net.draw(style="volumes")
    assert colour in svg


# ---- the IR is plain data ---------------------------------------------------------------------------
AST_TYPES = tuple(c for c in vars(A).values() if isinstance(c, type) and c.__module__ == A.__name__)


def _ast_inside(value, seen, depth=0):
    """A path to an astnodes instance inside `value` (dataclasses, tuples, lists, dicts), or None."""
    if isinstance(value, AST_TYPES):
        return type(value).__name__
    if id(value) in seen or depth > 8 or isinstance(value, (str, int, float, bool, type(None))):
        return None
    seen.add(id(value))
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        items = [(f.name, getattr(value, f.name)) for f in dataclasses.fields(value)]
    elif isinstance(value, dict):
        items = [(repr(k), v) for k, v in value.items()] + [(f"key {k!r}", k) for k in value]
    elif isinstance(value, (tuple, list, set, frozenset)):
        items = list(enumerate(value))
    else:
        return None
    for name, v in items:
        found = _ast_inside(v, seen, depth + 1)
        if found:
            return f"{name}.{found}"
    return None


@pytest.mark.parametrize("name", ["resnet50", "mobilenet_v3_large", "densenet121", "efficientnet_b0"])
def test_the_ir_holds_no_ast(name):
    import os
    g = cnndsl.load(os.path.join(os.path.dirname(__file__), "..", "nets", f"{name}.net")).graph
    seen = set()
    for n in g.nodes:
        where = _ast_inside(n, seen)
        assert where is None, f"{n.name}: {where}"
    assert _ast_inside(g.lets, seen) is None and _ast_inside(g.optionals, seen) is None
    blocks = [f for n in g.nodes for f in n.frames if f.kind == "block"]
    assert blocks and all(isinstance(f.params, tuple) and isinstance(f.written, tuple) for f in blocks)
    assert any(text and "make_divisible" in text for n in g.nodes if n.site for _, text in n.site.args) \
        or name != "mobilenet_v3_large"
