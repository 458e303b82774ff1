"""Diagrams: the DOT holds every layer and every edge of the IR, repeats fold consistently,
labels survive odd names, both styles give well-formed SVG, and failures are clear errors.

The DOT is checked by letting graphviz's `dot` parse and lay it out (node and edge titles of
its SVG), not by matching our own text; tests that need `dot` skip where it is missing."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

import cnndsl
from cnndsl import draw as draw_mod
from cnndsl.cli import main
from cnndsl.draw.fold import Fold

needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="graphviz's dot is not installed")

RESNETISH = """input 32x32x3
def res(c) = { ID + CONV(c, 3, p=1) - BN - RELU - CONV(c, 3, p=1) - BN } - RELU
def down(c) = { CONV(c, 3, s=2, p=1) - BN - RELU - CONV(c, 3, p=1) - BN + CONV(c, 1, s=2) - BN } - RELU
CONV(16, 3, p=1) - BN - RELU - stage1: [res(16)*3] - stage2: [down(32) - res(32)*2] - GAP - FC(10)
"""
INCEPTIONISH = """input 28x28x8
def inc(a, b) = { CONV(a, 1) | CONV(b, 1) - CONV(b, 3, p=1) | CONV(a, 1) - CONV(a, 5, p=2) | MAXPOOL(3, s=1, p=1) - CONV(a, 1) }
inc3a: inc(8, 16) - inc3b: inc(8, 16) - MAXPOOL(2) - GAP - FC(10) - SOFTMAX
"""
NESTED = """input 32x32x3
((CONV(8, 3, p=1) - RELU)*2 - MAXPOOL(2))*3 - GAP - FC(10)
"""
# the implicit flatten is made in the first iteration only: iterations 2 and 3 are one layer shorter
FLAT_IN_FIRST = """input 32x32x3
CONV(8, 3) - (FC(64) - RELU)*3 - FC(10)
"""
CHAIN = """input 32x32x1
CONV(6, 5) - TANH - AVGPOOL(2) - CONV(16, 5) - TANH - AVGPOOL(2) - FC(120) - TANH - FC(84) - FC(10)
"""


def _svg_of_dot(dot_text: str) -> ET.Element:
    import subprocess
    done = subprocess.run(["dot", "-Tsvg"], input=dot_text.encode(), capture_output=True, check=True)
    return ET.fromstring(done.stdout)


def _titles(svg: ET.Element, cls: str) -> list[str]:
    ns = "{http://www.w3.org/2000/svg}"
    return [g.find(f"{ns}title").text for g in svg.iter(f"{ns}g") if g.get("class") == cls]


def _ir_edges(graph) -> set:
    return {(i, n.name) for n in graph.nodes for i in n.inputs}


@needs_dot
@pytest.mark.parametrize("text", [RESNETISH, INCEPTIONISH, NESTED, CHAIN, FLAT_IN_FIRST])
def test_expanded_dot_holds_every_layer_once_and_every_edge(text):
    net = cnndsl.loads(text)
    svg = _svg_of_dot(net.draw(expand=True))
    nodes = _titles(svg, "node")
    assert sorted(nodes) == sorted(["input"] + [n.name for n in net.graph.nodes])
    edges = {tuple(t.split("->")) for t in _titles(svg, "edge")}
    assert edges == _ir_edges(net.graph)


@needs_dot
@pytest.mark.parametrize("text", [RESNETISH, INCEPTIONISH, NESTED, FLAT_IN_FIRST])
def test_folded_dot_draws_the_first_iteration_once_with_consistent_edges(text):
    net = cnndsl.loads(text)
    graph = net.graph
    first = [n.name for n in graph.nodes
             if all(f.index == 0 for f in n.frames if f.kind == "repeat")]
    dot = net.draw()
    svg = _svg_of_dot(dot)
    assert sorted(_titles(svg, "node")) == sorted(["input"] + first)
    drawn = {tuple(t.split("->")) for t in _titles(svg, "edge")}
    # every IR edge into a drawn layer is drawn, from the source's first-iteration counterpart
    fold = Fold(graph)
    for a, b in _ir_edges(graph):
        if b in first:
            assert (fold.rep[a], b) in drawn
    assert all(a in first + ["input"] and b in first for a, b in drawn)
    for n in graph.nodes:
        for f in n.frames:
            if f.kind == "repeat" and f.count > 1:
                assert f"x {f.count}" in dot


def test_nested_repeats_fold_to_one_iteration_of_each():
    net = cnndsl.loads(NESTED)
    fold = Fold(net.graph)
    assert [n.op for n in fold.nodes] == ["CONV", "RELU", "MAXPOOL", "GAP", "FLATTEN", "FC"]
    assert sorted(r.count for r in fold.repeats.values()) == [2, 3]
    # the GAP reads the last iteration's pool: drawn as the first iteration's pool
    assert (fold.nodes[2].name, fold.nodes[3].name) in fold.edges
    assert len(Fold(net.graph, expand=True).nodes) == len(net.graph.nodes) == 3 * 5 + 3


def _badges(text: str, count: int) -> int:
    return len(re.findall(rf"(?<![0-9A-Za-z])x {count}(?![0-9])", text))


def test_a_repeat_whose_first_pass_holds_the_implicit_flatten_folds_to_one_frame():
    net = cnndsl.loads(FLAT_IN_FIRST)
    fold = Fold(net.graph)
    # three FC(64)-RELU passes drawn once; the flatten, made once, is drawn once and outside the frame
    assert [n.name for n in fold.nodes] == ["conv1", "flatten1", "fc1", "relu1", "fc4"]
    assert [(r.count, r.members) for r in fold.repeats.values()] == [(3, ["fc1", "relu1"])]
    assert ("relu1", "fc4") in fold.edges and ("relu1", "fc1") not in fold.edges
    dot = net.draw()
    assert _badges(dot, 3) == 1
    frame = dot[dot.index("subgraph cluster_"):]
    frame = frame[:frame.index("}")]
    assert '"fc1"' in frame and '"relu1"' in frame and '"flatten1"' not in frame
    texts = [t.text for t in ET.fromstring(net.draw(style="volumes")).iter("{http://www.w3.org/2000/svg}text")]
    assert texts.count("x 3") == 1 and texts.count("FC 64") == 1


def test_nested_repeats_keep_both_badges_in_both_styles():
    # [(CONV-RELU)*2 - POOL]*3: an x 3 over each stage and an x 2 over its convolutions
    net = cnndsl.loads(NESTED)
    assert _badges(net.draw(), 3) == 1 and _badges(net.draw(), 2) == 1
    texts = [t.text for t in ET.fromstring(net.draw(style="volumes")).iter("{http://www.w3.org/2000/svg}text")]
    assert texts.count("x 3") == 1 and texts.count("x 2") == 1
    # the pattern net with two FC layers: stages x M, convolutions x N, FC-RELU x K (the last with a flatten)
    pattern = cnndsl.load("nets/cs231n_pattern.net", bindings={"N": 3, "M": 2, "K": 4})
    assert (_badges(pattern.draw(), 2), _badges(pattern.draw(), 3), _badges(pattern.draw(), 4)) == (1, 1, 1)
    svg = ET.fromstring(pattern.draw(style="volumes"))
    texts = [t.text for t in svg.iter("{http://www.w3.org/2000/svg}text")]
    assert (texts.count("x 2"), texts.count("x 3"), texts.count("x 4")) == (1, 1, 1)
    # the inner badge sits below the outer one and spans less
    ys = {t.text: float(t.get("y")) for t in svg.iter("{http://www.w3.org/2000/svg}text") if t.text in ("x 2", "x 3")}
    assert ys["x 3"] > ys["x 2"]


def test_residual_shortcut_is_a_skip_edge_into_the_add():
    net = cnndsl.loads(RESNETISH)
    dot = net.draw(expand=True)
    add = next(n for n in net.graph.nodes if n.op == "ADD" and n.name.startswith("stage1.res1"))
    shortcut = [i for i in add.inputs if not i.startswith("stage1.res1")][0]
    assert re.search(rf'"{re.escape(shortcut)}" -> "{re.escape(add.name)}" \[[^]]*tooltip="shortcut"', dot)


def test_labels_show_op_hyperparameters_and_volume():
    dot = cnndsl.loads("input 224x224x3\nCONV(64, 3, s=2, p=1) - MAXPOOL(2)").draw()
    assert "<b>CONV</b> 3x3/2 p1, 64" in dot and "112x112x64" in dot and "56x56x64" in dot
    high = cnndsl.loads("input 224x224x3\nCONV(64, 3, s=2, p=1) - MAXPOOL(2)").draw(detail="high")
    assert "1.79k params" in high   # 3*3*3*64 + 64 = 1792


ODD = ['a"b', "<x>&y", "back\\slash", "ünïcödé→", "end\\", "line\nbreak"]


def _renamed(net, names):
    """The same graph with odd layer names (the language cannot spell them; a renamed IR can)."""
    g = net.graph
    old = [n.name for n in g.nodes]
    mapping = dict(zip(old, names + old[len(names):]))
    for n in g.nodes:
        n.name = mapping[n.name]
        n.inputs = [mapping.get(i, i) for i in n.inputs]
    g._by_name = {n.name: n for n in g.nodes}
    g.output = mapping.get(g.output, g.output)
    return net


@needs_dot
def test_odd_names_are_escaped_in_the_dot():
    net = _renamed(cnndsl.loads(CHAIN, path='my "net" <v2>.net'), ODD)
    dot = net.draw(expand=True)
    svg = _svg_of_dot(dot)   # dot parses it: no quote or bracket broke out of its string
    nodes = _titles(svg, "node")
    assert len(nodes) == len(net.graph.nodes) + 1
    for name in ('a"b', "<x>&y", "ünïcödé→"):
        assert nodes.count(name) == 1
    assert len(_titles(svg, "edge")) == len(_ir_edges(net.graph))


def test_odd_names_keep_the_volume_svg_well_formed():
    net = _renamed(cnndsl.loads(CHAIN, path='my "net" <v2>.net'), ODD)
    root = ET.fromstring(net.draw(style="volumes", detail="high"))
    text = " ".join(t.text or "" for t in root.iter() if t.text)
    assert 'a"b' in text and "back\\slash" in text and "my \"net\" <v2>" in text


def test_volumes_svg_shows_the_main_path_volumes():
    net = cnndsl.loads(CHAIN)
    root = ET.fromstring(net.draw(style="volumes"))
    texts = [t.text for t in root.iter("{http://www.w3.org/2000/svg}text")]
    for shape in ("32x32x1", "28x28x6", "14x14x6", "10x10x16", "5x5x16", "120", "84", "10"):
        assert shape in texts
    assert "CONV 5x5/1, 6" in texts
    # the activations get no box: each is noted (small) under the layer it follows
    sized = [(t.text, t.get("font-size")) for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert sized.count(("TANH", "9")) == 3 and not any(s.startswith("TANH") and z != "9" for s, z in sized)


def test_volumes_marks_blocks_and_repeats_of_branching_nets():
    net = cnndsl.loads(RESNETISH)
    root = ET.fromstring(net.draw(style="volumes"))
    texts = [t.text for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert "res" in texts and "down1" in texts and texts.count("x 3") == 1 and texts.count("x 2") == 1
    assert "stage1" in texts and "stage2" in texts and "16x16x32" in texts
    inc = ET.fromstring(cnndsl.loads(INCEPTIONISH).draw(style="volumes"))
    texts = [t.text for t in inc.iter("{http://www.w3.org/2000/svg}text")]
    assert "inc3a" in texts and "inc3b" in texts and "28x28x40" in texts and "CONCAT" in texts


@needs_dot
@pytest.mark.parametrize("ext,magic", [("svg", b"<?xml"), ("png", b"\x89PNG"), ("pdf", b"%PDF"), ("dot", b"digraph")])
def test_cli_writes_every_graph_format(tmp_path, ext, magic):
    spec = tmp_path / "n.net"
    spec.write_text(CHAIN)
    out = tmp_path / f"n.{ext}"
    assert main(["draw", str(spec), "-o", str(out), "--rankdir", "LR"]) == 0
    assert out.read_bytes().startswith(magic)
    if ext == "svg":
        ET.parse(out)


def test_cli_volumes_svg_is_well_formed(tmp_path):
    spec = tmp_path / "n.net"
    spec.write_text(RESNETISH)
    out = tmp_path / "v.svg"
    assert main(["draw", str(spec), "-o", str(out), "--style", "volumes", "--expand"]) == 0
    ET.parse(out)


@pytest.mark.parametrize("args", [["-o", "x.jpg"], ["-o", "x"], ["-o", "x.dot", "--style", "volumes"]])
def test_bad_output_extension_is_a_usage_error(tmp_path, capsys, args):
    spec = tmp_path / "n.net"
    spec.write_text(CHAIN)
    args = [a if not a.startswith("x") else str(tmp_path / a) for a in args]
    assert main(["draw", str(spec), *args]) == 2
    err = capsys.readouterr().err
    assert "cannot draw" in err and "OUT.svg" in err and "Traceback" not in err


def test_missing_dot_leaves_the_dot_file_and_says_how_to_install(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(draw_mod, "find_dot", lambda: None)
    spec = tmp_path / "n.net"
    spec.write_text(CHAIN)
    out = tmp_path / "pic.png"
    assert main(["draw", str(spec), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert not out.exists()
    assert (tmp_path / "pic.dot").read_text().startswith('digraph "n"')
    assert "apt-get install graphviz" in err and "brew install graphviz" in err and "pic.dot" in err



def test_missing_dot_never_writes_the_dot_over_the_spec(tmp_path):
    """Run with a PATH that holds no `dot`: the DOT left beside -o pic.svg would be pic.dot, which is
    the spec being read: refused before anything is written, as -o itself is."""
    env = {**os.environ, "PATH": str(tmp_path / "no-bin"), "PYTHONPATH": os.path.join(os.path.dirname(__file__), "..")}
    (tmp_path / "pic.dot").write_text(CHAIN)  # a spec may have any name (an include must be a .net)
    done = subprocess.run([sys.executable, "-m", "cnndsl", "draw", "pic.dot", "-o", "pic.svg"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "pic.dot is the spec being read" in done.stderr, done.stderr
    assert (tmp_path / "pic.dot").read_text() == CHAIN and not (tmp_path / "pic.svg").exists()
    # an ordinary output: the DOT is left beside it (into a folder made for it, as -o's own folder is), atomically
    done = subprocess.run([sys.executable, "-m", "cnndsl", "draw", "pic.dot", "-o", "sub/out.svg"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "the DOT source is in sub/out.dot" in done.stderr
    assert (tmp_path / "sub" / "out.dot").read_text().startswith('digraph "pic"')
    assert sorted(os.listdir(tmp_path / "sub")) == ["out.dot"]  # no temporary file left beside it

def test_missing_dot_on_path_is_found_missing(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    assert draw_mod.find_dot() is None


@pytest.mark.parametrize("ext,magic", [("png", b"\x89PNG"), ("pdf", b"%PDF")])
def test_volumes_png_and_pdf_need_no_cairosvg(tmp_path, monkeypatch, ext, magic):
    monkeypatch.setitem(sys.modules, "cairosvg", None)   # import cairosvg -> ImportError
    spec = tmp_path / "n.net"
    spec.write_text(CHAIN)
    out = tmp_path / f"v.{ext}"
    assert main(["draw", str(spec), "-o", str(out), "--style", "volumes", "--size", "800x450", "--dpi", "96"]) == 0
    assert out.read_bytes().startswith(magic)
    if ext == "png":
        from PIL import Image
        w, h = Image.open(out).size
        assert w <= 800 and h <= 450 and max(w / 800, h / 450) > 0.99


def test_draw_without_a_path_returns_the_text():
    net = cnndsl.loads(CHAIN)
    assert net.draw().startswith('digraph "net" {')
    assert net.draw(style="volumes").startswith("<svg")
    with pytest.raises(cnndsl.errors.CnnError):
        net.draw(style="pie")


def test_report_does_not_import_graphviz():
    import subprocess
    code = ("import sys, cnndsl; cnndsl.loads('input 8x8x3\\nCONV(4, 3)').report(); "
            "assert 'graphviz' not in sys.modules and 'cnndsl.draw' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_folded_growing_repeat_shows_the_volume_after_its_last_iteration():
    # a dense block: each iteration concatenates 4 more channels (8 -> 12 -> 16 -> 20)
    net = cnndsl.loads("input 16x16x8\ndense: [{ ID | BN - RELU - CONV(4, 3, p=1) }*3] - GAP")
    assert "16x16x12 … 16x16x20" in net.draw()
    texts = [t.text for t in ET.fromstring(net.draw(style="volumes")).iter("{http://www.w3.org/2000/svg}text")]
    assert "16x16x12 … 16x16x20" in texts and "x 3" in texts


def _positions(dot_text: str) -> dict:
    """{node: (x, y)} as dot lays the graph out (y grows upwards)."""
    import subprocess
    plain = subprocess.run(["dot", "-Tplain"], input=dot_text, capture_output=True, text=True, timeout=60).stdout
    out = {}
    for line in plain.splitlines():
        f = line.split()
        if f and f[0] == "node":
            out[f[1].strip('"')] = (float(f[2]), float(f[3]))
    return out


@needs_dot
@pytest.mark.parametrize("rankdir", ["TB", "LR"])
def test_branches_read_in_source_order_in_both_directions(rankdir):
    """Inception's branches left to right in TB, top to bottom in LR (the first branch first)."""
    net = cnndsl.loads(INCEPTIONISH)
    heads = ["inc3a.conv1", "inc3a.conv2", "inc3a.conv4", "inc3a.maxpool1"]   # the four branches' first layers
    assert all(n.inputs == ["input"] for n in net.graph.nodes if n.name in heads)
    pos = _positions(net.draw(rankdir=rankdir))
    across = [pos[h][0] for h in heads] if rankdir == "TB" else [-pos[h][1] for h in heads]
    assert across == sorted(across) and len(set(across)) == 4, (rankdir, across)


def test_a_repeat_whose_iterations_differ_is_not_folded():
    from types import SimpleNamespace as N
    from cnndsl.draw.fold import _foldable
    same, odd = ("outer", "r1"), ("outer", "r2")
    its = {same + (0,): [N(op="CONV"), N(op="RELU")], same + (1,): [N(op="CONV"), N(op="RELU")],
           odd + (0,): [N(op="CONV")], odd + (1,): [N(op="CONV"), N(op="RELU")]}
    assert _foldable(its) == {same}


# ---- issue 21: per-pass volumes, no layer left out, pictures for a slide --------------------------
SVG = "{http://www.w3.org/2000/svg}"


def _texts(svg_text: str) -> list[str]:
    return [t.text for t in ET.fromstring(svg_text).iter(f"{SVG}text")]


def test_volumes_show_each_pass_of_a_repeat_not_only_the_last():
    # [(CONV-RELU)*2 - POOL]*2: the first conv works on 32x32 (stage 1), its last pass on 16x16 (stage 2)
    net = cnndsl.load("nets/cs231n_pattern.net")
    convs = [n for n in net.graph.nodes if n.op == "CONV"]
    first, last = convs[0].out_shape, convs[-1].out_shape
    assert first == (32, 32, 32) and last == (16, 16, 32)
    assert "32x32x32 … 16x16x32" in _texts(net.draw(style="volumes"))


def test_volumes_name_every_layer_in_path_order():
    # AlexNet (227) normalises after conv1 and conv2: LRN layers keep the volume, so they have no box,
    # but every layer is named, in order, as a box title or in the note under the box it follows
    net = cnndsl.load("nets/alexnet_227.net")
    from cnndsl.draw.volumes import main_path
    units = main_path(Fold(net.graph))
    named = [op for u in units[1:] for op in [u.title.split()[0]] + u.after]
    assert named == [n.op for n in net.graph.nodes if n.op != "FLATTEN"]
    notes = [t for t in _texts(net.draw(style="volumes")) if "LRN" in t]
    assert len(notes) == sum(n.op == "LRN" for n in net.graph.nodes) == 2


def test_volume_depth_is_a_visible_log_scale_of_channels():
    from cnndsl.draw.volumes import box_size
    t = {c: box_size((7, 7, c))[0] for c in (32, 64, 128, 256, 512)}
    assert t[512] / t[64] >= 1.6                                    # 512 channels drawn clearly deeper
    assert t[128] - t[64] == pytest.approx(t[512] - t[256])         # the same step per doubling


def _png_size(path):
    from PIL import Image
    with Image.open(path) as im:
        return im.size


@needs_dot
@pytest.mark.parametrize("name,size,box", [("resnet50", [], (1920, 1080)), ("googlenet", [], (1920, 1080)),
                                           ("resnet50", ["--size", "10x5.625in", "--dpi", "128"], (1280, 720))])
def test_graph_png_fits_a_slide(tmp_path, name, size, box):
    """A long net wraps into columns: the PNG fills the box on one side and reads as a slide."""
    out = tmp_path / f"{name}.png"
    assert main(["draw", f"nets/{name}.net", "-o", str(out), *size]) == 0
    w, h = _png_size(out)
    assert w <= box[0] and h <= box[1] and max(w / box[0], h / box[1]) > 0.99, (w, h)
    assert 1.2 <= w / h <= 2.4, (w, h)


@needs_dot
def test_a_wrapped_graph_keeps_every_layer_and_edge(tmp_path):
    spec = tmp_path / "r.net"
    spec.write_text(RESNETISH)
    out = tmp_path / "r.svg"
    assert main(["draw", str(spec), "-o", str(out), "--expand"]) == 0
    svg = ET.parse(out).getroot()
    graph = cnndsl.loads(RESNETISH).graph
    assert sorted(_titles(svg, "node")) == sorted(["input"] + [n.name for n in graph.nodes])
    # an edge between columns runs from the bottom of one to the top of the next: dot names its ports
    edges = {tuple(re.sub(r":[nsew]$", "", e) for e in t.split("->")) for t in _titles(svg, "edge")}
    assert edges == _ir_edges(graph)
    assert len([t for t in _titles(svg, "cluster") if t.startswith("cluster_column")]) >= 2


def _overflowing_labels(dot_text: str) -> list:
    """Text lines of dot's own layout (-Tjson) that reach past their node's box: a line spans its
    measured width, 0.8 of its font size above the baseline and 0.25 below, 1 pt inside the border."""
    import json
    import subprocess
    d = json.loads(subprocess.run(["dot", "-Tjson"], input=dot_text, capture_output=True, text=True,
                                  check=True, timeout=60).stdout)
    bad = []
    for o in d["objects"]:
        if "pos" not in o or "_ldraw_" not in o:
            continue
        cx, cy = map(float, o["pos"].split(","))
        hw, hh = float(o["width"]) * 36, float(o["height"]) * 36     # inches -> half sizes in pt
        size = 14.0
        for op in o["_ldraw_"]:
            if op["op"] == "F":
                size = op["size"]
            elif op["op"] == "T":
                x, y = op["pt"]
                x0 = {"l": x, "c": x - op["width"] / 2, "r": x - op["width"]}[op["align"]]
                if not (cx - hw + 1 <= x0 and x0 + op["width"] <= cx + hw - 1
                        and cy - hh + 1 <= y - 0.25 * size and y + 0.8 * size <= cy + hh - 1):
                    bad.append((o["name"], op["text"]))
    return bad


@needs_dot
@pytest.mark.parametrize("detail", ["low", "high"])
def test_labels_stay_inside_their_boxes(detail):
    assert _overflowing_labels(cnndsl.load("nets/resnet50.net").draw(detail=detail)) == []


@pytest.mark.parametrize("size", ["12", "0x100", "axb", "30000x10"])
def test_a_bad_size_is_a_usage_error(tmp_path, capsys, size):
    spec = tmp_path / "n.net"
    spec.write_text(CHAIN)
    assert main(["draw", str(spec), "-o", str(tmp_path / "n.svg"), "--style", "volumes", "--size", size]) == 2
    err = capsys.readouterr().err
    assert "size" in err and "Traceback" not in err
