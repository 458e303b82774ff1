"""What the speed work of issue 23 keeps true: the caches and replays give what the work gives.

Speed itself is measured by tools/bench_report.py, never asserted here."""
import glob
import os
import re
import subprocess
import sys
import threading

import pytest

import cnndsl
from cnndsl.lang import elaborate as E
from cnndsl.lang import memo, program

ROOT = os.path.join(os.path.dirname(__file__), "..")
NETS = sorted(glob.glob(os.path.join(ROOT, "nets", "*.net")) + glob.glob(os.path.join(ROOT, "nets", "examples", "*.net")))
if not os.environ.get("CNNDSL_FULL_ZOO"):  # one net of each family (the first by name), and every example
    _families = {}
    for _path in NETS:
        _stem = os.path.basename(_path)[:-4]
        _families.setdefault(_path if "examples" in _path else re.match(r"[a-z]*", _stem).group(), _path)
    NETS = sorted(_families.values())


def _signature(g):
    """Everything a graph holds, frames and provenance included, as comparable data."""
    frames = lambda fs: tuple((f.kind, f.path, f.name, f.index, f.count, f.span and (f.span.line, f.span.col),
                               f.params, f.written, f.defined and (f.defined.line, f.defined.col), f.args, f.variable)
                              for f in fs)
    return (g.input_shape, g.output, g.lets,
            [(n.name, n.op, n.attrs, n.inputs, n.span and (n.span.line, n.span.col), n.out_shape, frames(n.frames),
              n.implicit, n.defaults, n.meta, n.site) for n in g.nodes],
            [(o.name, o.span.line, o.span.col, o.included, o.source, o.uses) for o in g.optionals],
            [w.to_dict() for w in g.warnings])


def _plainly(prog, **kw):
    """The elaborator without memos, replays or the lazy budget walk: what they must reproduce."""
    try:
        return _signature(E.Elaborator(prog, kw.get("input_shape"), kw.get("bindings") or {}, kw.get("strict", False),
                                        prog.path).run())
    except cnndsl.CnnError as e:
        return ("error", e.render() if hasattr(e, "render") else str(e))


def _memoised(prog, **kw):
    try:
        return _signature(E.elaborate(prog, **kw))
    except cnndsl.CnnError as e:
        return ("error", e.render() if hasattr(e, "render") else str(e))


def test_every_shipped_net_elaborates_as_without_memos():
    memo.clear()
    for path in NETS:
        prog = cnndsl.parse(open(path, "rb").read(), path)
        want = _plainly(prog)
        for _ in range(3):  # blocks recorded, then replayed; the network itself kept the second time, then replayed
            assert _memoised(prog) == want, path


@pytest.mark.parametrize("text,bindings", [
    # a block whose optionals follow its arguments, called with both; a -D value read inside a block
    ("input 16x16x3\ndef b(c, act=on) = CONV(c, 3, p=1) - BN - relu: RELU?\n"
     "b(8) - b(8, act=off) - b(8) - b(8, act=off) - b(C)", {"C": 8}),
    # an unlabelled optional group numbered inside a block: never replayed (its number is positional)
    ("input 16x16x3\ndef b(c) = CONV(c, 3, p=1) - (BN - RELU)?\nb(4) - b(4) - (b(4))*3", {"optional1": "off"}),
    # a window that does not fit (a warning points at one call) and a repeat inside a block
    ("input 15x15x3\ndef b(c) = CONV(c, 2, s=2) - (RELU)*2\nb(4) - b(4)", {}),
    # blocks in repeats with an index, labels, joins and the same block at other shapes
    ("input 32x32x8\ndef r(c) = { ID + CONV(c, 3, p=1) - BN - RELU } - RELU\n"
     "(stage: r(8) - r(8))*2 @i - POOL - r(8) - { r(8) | r(8) }", {}),
])
def test_replays_match_a_plain_expansion(text, bindings):
    memo.clear()
    prog = cnndsl.parse(text)
    want = _plainly(prog, bindings=bindings)
    for _ in range(3):
        assert _memoised(prog, bindings=bindings) == want
    # other bindings of the same program get their own expansions
    if "C" in bindings:
        assert _memoised(prog, bindings={"C": 4}) == _plainly(prog, bindings={"C": 4})


def test_errors_are_those_of_a_plain_expansion():
    # the budget walk runs lazily but refuses first; independent errors come out in the same order
    specs = ["input 8x8x3\n(CONV(foo))*1000000",
             "input 8x8x3\ndef e = RELU*0\ndef f = e-e-e-e-e-e-e-e-e-e\ndef g = f-f-f-f-f-f-f-f-f-f\n"
             "(g-g-g-g-g-g-g-g-g-g)*10000",
             "input 8x8x3\nlet x = 1/0\nCONV(4, 3) - FOO - (RELU)*2000000",
             "input 8x8x3\ndef b(c) = CONV(c, 3) - BAR\nb(4) - b(4) - CONV(4, 9)"]
    for text in specs:
        memo.clear()
        prog = cnndsl.parse(text)
        want = _plainly(prog)
        assert want[0] == "error"
        assert _memoised(prog) == want, text
        assert _memoised(prog) == want, text


def test_a_spec_is_parsed_again_only_when_its_text_changes(tmp_path):
    lib = tmp_path / "lib.net"
    lib.write_text("def b(c) = CONV(c, 3, p=1) - RELU\n")
    spec = tmp_path / "net.net"
    spec.write_text('include "lib.net"\ninput 8x8x3\nb(4)\n')
    a, b = cnndsl.parse(spec.read_bytes(), str(spec)), cnndsl.parse(spec.read_bytes(), str(spec))
    assert a.statements[0].program.statements[0] is b.statements[0].program.statements[0]  # parsed once
    assert a.statements[1] is b.statements[1]  # the spec's own text too
    assert cnndsl.load(spec).report()["totals"]["params"] == 3 * 9 * 4 + 4
    lib.write_text("def b(c) = CONV(c, 1) - RELU\n")  # same size class, maybe the same mtime: still seen
    assert cnndsl.load(spec).report()["totals"]["params"] == 3 * 4 + 4
    lib.write_text("def b(c) = CONV(c, 3, p=1) - RELU\n")
    assert cnndsl.load(spec).report()["totals"]["params"] == 3 * 9 * 4 + 4


def test_the_parse_cache_is_bounded_and_thread_safe(monkeypatch):
    monkeypatch.setattr(program, "MAX_PARSED_FILES", 8)
    program.clear_cache()
    errors = []

    def work(k):
        try:
            for i in range(20):
                text = f"input 8x8x3\nCONV({1 + (k * 20 + i) % 12}, 3)\n"
                assert cnndsl.loads(text).report()["layers"][0]["out"] == [6, 6, 1 + (k * 20 + i) % 12]
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(program._PARSED) <= 8
    program.clear_cache()


def test_export_with_safetensors_weights_never_imports_torch(tmp_path):
    import numpy as np
    from safetensors.numpy import save_file
    net = cnndsl.loads("input 8x8x3\nCONV(4, 3) - BN - RELU - FC(3)")
    ckpt = tmp_path / "w.safetensors"  # written as to_torch() + weights.save would, without torch here either
    save_file({k: np.full(t.shape, 0.5, dtype=t.dtype) for k, t in net.graph.tensors().items()}, str(ckpt),
              metadata={"format": "cnndsl.checkpoint/1", **net.spec_info})
    spec = tmp_path / "n.net"
    spec.write_text("input 8x8x3\nCONV(4, 3) - BN - RELU - FC(3)\n")
    code = ("import sys; from cnndsl.cli import main; "
            f"main(['export', {str(spec)!r}, '-o', {str(tmp_path / 'n.onnx')!r}, '--weights', {str(ckpt)!r}]); "
            "sys.stderr.write(repr(sorted({'torch'} & set(sys.modules))))")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                       env=dict(os.environ, PYTHONPATH=ROOT))
    assert p.returncode == 0 and p.stderr.strip().endswith("[]"), p.stderr
    import onnx
    from onnx import numpy_helper
    weights = {i.name: numpy_helper.to_array(i) for i in onnx.load(str(tmp_path / "n.onnx")).graph.initializer}
    assert weights and all((w == 0.5).all() for k, w in weights.items() if "num_batches" not in k)


def test_the_fast_lalr_loop_builds_what_lark_builds():
    # every spec of the repository (and the error corpus): the same AST, or lark's own error
    from cnndsl.lang import lalr, syntax as S
    files = sorted(set(glob.glob(os.path.join(ROOT, "nets", "**", "*.net"), recursive=True)
                       + glob.glob(os.path.join(ROOT, "tests", "**", "*.net"), recursive=True)))
    parser = S._parser()
    for path in files:
        try:
            src = S._source(open(path, "rb").read(), path)
        except cnndsl.CnnError:
            continue
        results = []
        for run in (lambda: lalr.parse(parser, src.text, "start", parser.options.postlex),
                    lambda: parser.parse(src.text, start="start")):
            token = S._CURRENT.set(S._Parse(src, True, {}))
            try:
                prog = run()
                results.append((prog.statements, prog.net))
            except Exception:
                results.append(None)
            finally:
                S._CURRENT.reset(token)
        fast, lark = results
        assert fast == lark or (fast is None and lark is None), path
