"""The front end as a library: parse once and bind many, re-entrant parsing, diagnostics as data,
every independent error of a file reported, and the habits users bring (HxWxC, True/False)."""
import dataclasses
import json
import logging
import os
import subprocess
import sys
import threading

import pytest
from lark import Lark, logger as lark_logger

import cnndsl
from cnndsl.cli import main
from cnndsl.errors import CODES, MAX_ERRORS, Diagnostic
from cnndsl.lang.syntax import GRAMMAR

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PATTERN = "input 32x32x3\nlet N = 2\nlet K = 1\n[(CONV(32, 3, p=1) - RELU)*N - POOL]*3 - (FC(128) - RELU)*K - FC(10)\n"


def errors(text, **kw):
    with pytest.raises(cnndsl.CnnError) as e:
        cnndsl.loads(text, **kw)
    return e.value


# ---- parse once, bind many --------------------------------------------------------------------
def test_a_program_binds_like_loads_for_every_member():
    prog = cnndsl.parse(PATTERN)
    for n in (1, 2, 3):
        for k in (0, 2):
            net = prog.bind(bindings={"N": n, "K": k})
            assert net.report() == cnndsl.loads(PATTERN, bindings={"N": n, "K": k}).report()


def test_a_program_is_immutable_data():
    prog = cnndsl.parse(PATTERN, "pattern.net")
    assert isinstance(prog, cnndsl.Program) and prog.path == "pattern.net"
    assert isinstance(prog.statements, tuple)
    with pytest.raises(dataclasses.FrozenInstanceError):
        prog.net = None
    before = prog.statements
    prog.bind(bindings={"N": 3})
    assert prog.statements is before


def test_includes_are_read_at_parse_time_not_at_bind_time(tmp_path):
    (tmp_path / "blocks.net").write_text("def unit(c) = CONV(c, 3, p=1) - RELU\n")
    (tmp_path / "net.net").write_text('include "blocks.net"\ninput 8x8x3\nunit(4)*N\n')
    prog = cnndsl.parse((tmp_path / "net.net").read_text(), tmp_path / "net.net")
    (tmp_path / "blocks.net").unlink()
    assert len(prog.bind(bindings={"N": 3}).graph.nodes) == 6


def test_parse_errors_come_from_parse_and_binding_errors_from_bind():
    with pytest.raises(cnndsl.CnnError):
        cnndsl.parse("input 32x32x3\nCONV(8, 3")
    prog = cnndsl.parse("input 32x32x3\nCONV(8, 3) - FOO")
    with pytest.raises(cnndsl.CnnError, match="FOO"):
        prog.bind()


# ---- re-entrant --------------------------------------------------------------------------------
def _texts(i):
    """A faulty and a valid text per thread, with a marker that says which thread wrote it."""
    pad = "".join(f"let v{j} = {j}\n" for j in range(i * 3))
    return [
        (f"input 32x32x3\n{pad}CONV(8, 3) - BOGUS{i}\n", f"BOGUS{i}"),
        (f"input 32x32x3\n{pad}CONV(8, 3) - RELU - (POOL{i}\n", f"POOL{i}"),
        (f"input 32x32x3\n{pad}CONV(8, 3, s=) - T{i}\n", f"T{i}"),
        (f"input 32x32x3\n{pad}let w{i} = {i + 1}\nCONV(8, 3) - FC(w{i})\n", None),
    ]


def test_eight_threads_parse_at_once_and_every_span_points_into_its_own_text():
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    wrong = []

    def work(i):
        for _ in range(15):
            for text, marker in _texts(i):
                try:
                    net = cnndsl.parse(text, f"t{i}.net").bind()
                    if marker is not None or net.graph.nodes[-1].attrs["units"] != i + 1:
                        wrong.append((i, "accepted or wrong"))
                except cnndsl.CnnError as e:
                    for d in e.diagnostics:
                        spans = [d.span] + [n.span for n in d.notes]
                        for s in spans:
                            if s.source.text != text or s.source.path != f"t{i}.net":
                                wrong.append((i, str(s)))
                        if marker and marker not in text.splitlines()[d.span.line - 1]:
                            wrong.append((i, d.render()))
                except Exception as e:  # anything else is a bug
                    wrong.append((i, f"{type(e).__name__}: {e}"))

    try:
        threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
        [t.start() for t in threads]
        [t.join() for t in threads]
    finally:
        sys.setswitchinterval(interval)
    assert not wrong, wrong[:3]


# ---- diagnostics as data -----------------------------------------------------------------------
def test_independent_errors_are_all_reported():
    e = errors("input 32x32x3\nCONV(8, 3) - FOO - RELU - BAR(3)")
    assert [(d.code, d.span.col, d.span.end_col) for d in e.diagnostics] == [("E201", 14, 17), ("E201", 27, 33)]
    assert "FOO" in str(e) and "BAR" in str(e)


def test_a_diagnostic_drops_nothing():
    e = errors("input 8x8x3\n{ CONV(4, 3) | CONV(4, 1) }")
    d = e.to_dict()
    assert set(d) >= {"severity", "code", "message", "file", "line", "col", "end_line", "end_col", "hint",
                      "arithmetic", "notes"}
    assert d["code"] == "E302" and d["severity"] == "error"
    assert len(d["notes"]) == 2 and all({"line", "col", "end_line", "end_col", "message"} <= set(n) for n in d["notes"])
    assert isinstance(e.diagnostics[0], Diagnostic) and e.diagnostics[0].notes[0].span.line == 2


def test_every_code_used_is_documented():
    e = errors("input 32x32x3\nlet a = 1/0\nCONV(8, 3, q=1) - FOO - CONV(a, 3) - POOL(s=true) - CONV(8)")
    assert [d.code for d in e.diagnostics] == ["E206", "E202", "E201", "E204", "E203"]
    assert all(d.code in CODES for d in e.diagnostics)
    readme = open("README.md").read()
    assert all(f"`{code}`" in readme for code in CODES)


def test_a_failed_let_is_reported_once_not_at_every_use():
    e = errors("input 8x8x3\nlet c = 1/0\nCONV(c, 3) - CONV(c, 1) - RELU")
    assert [d.message for d in e.diagnostics] == ["division by zero"]


def test_an_error_in_a_repeated_block_is_reported_once_with_its_call():
    e = errors("input 8x8x3\ndef b(c) = CONV(c, 3, p=1) - BAD\nb(4)*3 - b(8)")
    assert len(e.diagnostics) == 1
    assert e.diagnostics[0].notes[0].message == "in block `b`, called here"


def test_a_shape_error_ends_the_list():
    e = errors("input 8x8x3\nFOO - FC(10) - CONV(4, 3) - BAR")
    assert [d.code for d in e.diagnostics] == ["E201", "E301"]


def test_errors_stop_at_the_limit():
    e = errors("input 8x8x3\n" + " - ".join(f"BAD{i}" for i in range(50)))
    assert len(e.diagnostics) == MAX_ERRORS and e.truncated
    assert f"stopped after {MAX_ERRORS} errors" in e.render()


def test_check_json_lists_files_and_diagnostics(tmp_path, capsys):
    bad = tmp_path / "bad.net"
    bad.write_text("input 32x32x3\nCONV(8, 3) - FOO - RELU - BAR(3)\n")
    good = tmp_path / "good.net"
    good.write_text("input 7x7x1\nCONV(1, 3, s=3)\n")
    assert main(["check", str(bad), str(good), "--format", "json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert [f["ok"] for f in out["files"]] == [False, True]
    assert [(d["code"], d["severity"], d["file"]) for d in out["diagnostics"]] == [
        ("E201", "error", str(bad)), ("E201", "error", str(bad)), ("W301", "warning", str(good))]
    assert main(["check", str(good), "--format", "json"]) == 0


def test_report_json_carries_warnings_as_diagnostics():
    rep = cnndsl.loads("input 7x7x1\nCONV(1, 3, s=3)").report()
    w = rep["warnings"][0]
    assert (w["severity"], w["code"], w["line"], w["col"], w["end_col"]) == ("warning", "W301", 2, 1, 16)


def test_errors_never_escape_as_other_exceptions():
    texts = ["input 32x32xC\nRELU", "input 32x32x0.5\nRELU", "input 32x32xlet\nRELU", "input\nRELU",
             "input 3 2\nRELU", "input 32x32x3\nCONV(8, 3) - ]", "input 32x32x3\n{CONV(8,3) | (RELU}",
             "input 32x32x3\nlet a = b\nlet b = a\nCONV(a, 3)", "input 8x8x3\ndef CONV(c) = RELU\nCONV(c)"]
    for text in texts:
        with pytest.raises(cnndsl.CnnError):
            cnndsl.loads(text)


# ---- -D binds nothing only when the text never mentions the name --------------------------------
@pytest.mark.parametrize("text, name", [
    ("input 8x8x3\n(CONV(c, 3, p=1))*0 - RELU", "c"),
    ("input 8x8x3\nCONV(4, 3) - p: (CONV(c, 1))? - RELU", "c"),
    ("input 8x8x3\nlet c = 2\nCONV(4, 3) - (CONV(c, 1))*0", "c"),
])
def test_a_binding_read_only_where_this_binding_does_not_go_is_not_an_error(text, name):
    bindings = {name: 4, "p": "off"} if "p:" in text else {name: 4}
    cnndsl.loads(text, bindings=bindings)


def test_a_binding_the_text_never_mentions_is_a_usage_error(tmp_path):
    (tmp_path / "lib.net").write_text("def u(c) = CONV(c, 3) - RELU*k\n")
    text = 'include "lib.net"\ninput 8x8x3\nu(4)*0 - RELU'
    path = tmp_path / "n.net"
    cnndsl.loads(text, path=str(path), bindings={"k": 2})     # read only in the included file
    e = errors(text, path=str(path), bindings={"c": 2})       # c is u's parameter: -D cannot reach it
    assert e.usage and "binds nothing" in e.message


# ---- what users bring -------------------------------------------------------------------------
@pytest.mark.parametrize("decl, want", [("32x32xC", [32, 32, 16]), ("HxWxC", [8, 4, 16]), ("Hx32x3", [8, 32, 3]),
                                        ("32xWx3", [32, 4, 3]), ("C", [16]), ("224x224x3", [224, 224, 3])])
def test_an_input_volume_may_use_variables(decl, want):
    net = cnndsl.loads(f"let C = 16\nlet H = 8\nlet W = 4\ninput {decl}\nRELU")
    assert list(net.graph.input_shape) == want


def test_an_input_variable_can_be_bound_from_the_command_line():
    assert cnndsl.loads("input 32x32xC\nRELU", bindings={"C": "5"}).graph.input_shape == (32, 32, 5)
    e = errors("input 32x32xC\nRELU")
    assert e.code == "E205" and "C" in e.message


def test_the_grammar_has_no_lalr_conflicts():
    """lark resolves a shift/reduce conflict silently (as a shift) and says so only in debug mode."""
    seen = []

    class Keep(logging.Handler):
        def emit(self, record):
            seen.append(record.getMessage())

    handler, level = Keep(), lark_logger.level
    lark_logger.addHandler(handler)
    lark_logger.setLevel(logging.DEBUG)
    try:
        Lark.open(GRAMMAR, parser="lalr", lexer="basic", debug=True, cache=False, start=["start", "value"])
    finally:
        lark_logger.removeHandler(handler)
        lark_logger.setLevel(level)
    assert not [m for m in seen if "conflict" in m.lower()]


@pytest.mark.parametrize("word, params", [("False", 108), ("True", 112), ("false", 108)])
def test_python_booleans_mean_what_they_mean_in_pytorch(word, params):
    rep = cnndsl.loads(f"input 8x8x3\nCONV(4, 3, bias={word}) - BN").report()
    assert rep["layers"][0]["params"] == params


def test_a_chw_input_is_a_warning_not_an_error():
    net = cnndsl.loads("input 3x224x224\nCONV(64, 7, s=2, p=3)")
    w = net.warnings[0]
    assert (w.code, w.severity, w.span.line) == ("W302", "warning", 1)
    assert "HxWxC" in w.message and "224x224x3" in w.hint
    assert not cnndsl.loads("input 4x4x3\nRELU").warnings
    assert not cnndsl.loads("input 224x224x3\nRELU").warnings
    assert cnndsl.loads("RELU", input="1x28x28").warnings[0].code == "W302"


@pytest.mark.parametrize("text, line, col", [
    ("input 8x8x3\n[CONV(4, 3) - RELU\n- POOL\n", 2, 1),
    ("input 8x8x3\n{ CONV(4, 3) | (RELU - BN }\n", 2, 16),
    ("input 8x8x3\nCONV(4, 3\n- RELU\n", 2, 5),
])
def test_a_missing_closer_points_at_its_opener(text, line, col):
    e = errors(text)
    assert e.code == "E102"
    (span, note), = e.notes
    assert (span.line, span.col) == (line, col) and "not closed" in note
    assert "close the" in e.hint


def test_syntax_errors_in_separate_statements_are_all_reported():
    e = errors("input 32x32x3\nlet N = 2 *\nlet M = (3\nlet K = 1\ndef b(c) = CONV(c 3)\nb(4)*N\n")
    assert [(d.span.line, d.code) for d in e.diagnostics] == [(3, "E101"), (4, "E102"), (5, "E101")]


def test_a_syntax_error_in_the_network_is_reported_once():
    e = errors("input 32x32x3\nCONV(8, 3) - - RELU\n- FC(10) FC\n")
    assert len(e.diagnostics) == 1


def test_check_never_imports_torch_or_onnx(tmp_path):
    spec = tmp_path / "a.net"
    spec.write_text("input 32x32x3\nCONV(8, 3) - FOO\n")
    code = ("import sys; from cnndsl.cli import main; main(['check', sys.argv[1], '--format', 'json']);"
            "print(sorted(m for m in ('torch', 'onnx', 'onnxruntime', 'graphviz') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code, str(spec)], capture_output=True, text=True, cwd=ROOT)
    assert out.stdout.strip().splitlines()[-1] == "[]"
