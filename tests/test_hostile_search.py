"""Issue 22, classes 4-6 for search and the command line: numbers checked in one place (options.py),
outputs checked before a search, and unbounded work bounded (--where, -D, --symbolic, the memo,
indexed repeats, compile of a repeated wide block). Hang cases run in a subprocess under a guard;
nothing here times anything."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import cnndsl
from cnndsl import CnnError
from cnndsl.cli import main

ROOT = Path(__file__).resolve().parent.parent
HANG = 60  # a guard against a hang (each case answers in well under a second), not a speed test
FAMILY = "input 8x8x3\nlet N = 2 in 1..3\nlet C = 4 in 4, 8\n(CONV(C, 3, p=1) - RELU)*N - FC(4)\n"


@pytest.fixture
def family(tmp_path):
    path = tmp_path / "fam.net"
    path.write_text(FAMILY)
    return str(path)


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def subprocess_cli(*argv):
    """The CLI in a fresh process under the hang guard: (exit status, stderr)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    p = subprocess.run([sys.executable, "-m", "cnndsl", *argv], capture_output=True, text=True, timeout=HANG,
                       env=env, cwd=ROOT, errors="backslashreplace")
    return p.returncode, p.stderr


# ---- class 4 and 5: every numeric option through one checker --------------------------------------
@pytest.mark.parametrize("argv", [
    ["search", "F", "--top", "-1"], ["search", "F", "--top", "1e400"], ["search", "F", "--seed", "-1"],
    ["search", "F", "--max-params", "1e400"], ["search", "F", "--max-macs", "nan"], ["search", "F", "--max-params", "-5"],
    ["search", "F", "--max-memory", "1e400"], ["search", "F", "--sample", "0"], ["search", "F", "--limit", "-1"],
    ["search", "F", "--jobs", "0"], ["search", "F", "--batch", "inf"], ["search", "F", "--min-rf", "-3"],
    ["search", "F", "--seed", "1.5"], ["report", "F", "--batch", "1e400"], ["report", "F", "--memory", "inf"],
    ["match", "F", "F", "--limit", "0"], ["draw", "F", "-o", "x.svg", "--dpi", "-1"],
    ["train", "F", "--data", "digits", "--lr", "nan"], ["train", "F", "--data", "digits", "--lr", "0"],
    ["train", "F", "--data", "digits", "--epochs", "1e400"], ["train", "F", "--data", "digits", "--momentum", "inf"],
    ["train", "F", "--data", "digits", "--val", "nan"], ["train", "F", "--data", "digits", "--seed", "-1"],
    ["train", "F", "--data", "digits", "--workers", "-2"], ["eval", "F", "--weights", "w", "--data", "d", "--batch", "0"],
    ["export", "F", "-o", "x.onnx", "--batch", "-3"], ["run", "F", "--repeat", "0"],
])
def test_a_bad_number_is_a_usage_error_naming_the_option(argv, family, capsys):
    argv = [family if a == "F" else a for a in argv]
    flag = argv[-2]  # each case ends with the bad option
    code, out, err = run(capsys, *argv)
    assert code == 2 and f"argument {flag}: " in err and argv[-1] in err, err
    assert "internal error" not in err and not out


def test_top_zero_lists_all_and_a_whole_top_lists_that_many(family, capsys):
    import json
    counts = {}
    for top in ("0", "2"):
        code, out, _ = run(capsys, "search", family, "--top", top, "--format", "json", "--jobs", "1")
        counts[top] = len(json.loads(out)["members"])
    assert counts == {"0": 6, "2": 2}


@pytest.mark.parametrize("option, path, message", [
    ("--emit", "fam.net", "is a file, not a folder"), ("--emit", "fam.net/sub", "is a file, not a folder"),
    ("--plot", "missing/x.png", "does not exist"), ("--plot", "x.foo", "does not write .foo"),
    ("--plot", ".", "a folder, not a file name"), ("--plot", "x", "no suffix"),
])
def test_outputs_are_checked_before_the_search(option, path, message, family, capsys):
    folder = os.path.dirname(family)
    code, out, err = run(capsys, "search", family, option, os.path.join(folder, path))
    assert code == 2 and message in err, err
    assert "6 members" not in err  # refused before the space was even counted


@pytest.mark.parametrize("argv, message", [
    (["--input", "8x8xZ"], "--input '8x8xZ' is not a volume"), (["-D", "N=1  2"], "unexpected '2'"),
])
def test_search_command_line_mistakes_are_not_every_members(argv, message, family, capsys):
    code, out, err = run(capsys, "search", family, *argv)
    assert code == 2 and message in err and "dropped" not in err, err


@pytest.mark.parametrize("command", ["compile", "draw", "report"])
def test_a_spec_file_name_that_is_not_utf8(command, tmp_path, capsys):
    name = os.fsdecode(b"a\xff.net")
    spec = tmp_path / name
    spec.write_text("input 8x8x3\nCONV(4, 3) - RELU\n")
    out_file = {"compile": ["-o", str(tmp_path / "o.py")], "draw": ["-o", str(tmp_path / "o.dot")],
                "report": ["--format", "json"]}[command]
    code, out, err = run(capsys, command, str(spec), *out_file)
    assert code == 0, err
    written = out if command == "report" else Path(out_file[1]).read_text()
    assert "xff" in written and "\udcff" not in written and "\\udcff" not in written


# ---- --where ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("where, message", [
    ("((((9**64)**64)**64)**64) > N", "too large"), ("N > 2**64**64", "too large"),
    ("-" * 1500 + "N > 1", "nested more than"), ("not " * 450 + "N", "nested more than"),
    ("-" * 5000 + "N > 1", "characters, more than"), ("(" * 5000 + "N" + ")" * 5000, "characters, more than"),
    ("+".join(["N"] * 900) + " > 1", "nested more than"), ("N > 1" + os.fsdecode(b"\xff"), "not UTF-8"),
    ("N > 1/0", "cannot be computed"), ("N > 1" + " " * 5000, "characters, more than"),
])
def test_where_is_bounded(where, message, family):
    code, err = subprocess_cli("search", family, "--where=" + where)
    assert code == 2 and message in err, err


def test_where_stops_a_member_whose_numbers_grow_past_the_bound():
    from cnndsl.search.where import Where
    w = Where("(N * 10**18) ** 64 ** 1 > 5 or N ** N ** N > 1", {"N"})
    assert w({"N": 3}, None) is False  # 3**27 passes; (3e18)**64 and 3**(3**3)... overflow: false, at once
    assert Where("N ** 3 > 20", {"N"})({"N": 3}, None) is True


# ---- class 6: unbounded work -----------------------------------------------------------------------
def test_a_range_of_spaces_is_read_in_linear_time():
    code = ("from cnndsl.search.space import parse_choices\n"
            "assert parse_choices('N', '1' + ' ' * 1_000_000 + '+ 2') is None\n"
            "assert parse_choices('N', ' 2 ' + ' ' * 1_000_000 + '.. 4') == [2, 3, 4]\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=HANG, cwd=ROOT,
                   env={**os.environ, "PYTHONPATH": str(ROOT)})


@pytest.mark.parametrize("text, codes", [
    ("RELU - (RELU*x)*1000000 @i", ["E205"]),
    ("RELU - (RELU*x - (RELU*0)*7)*300000 @i", ["E205"]),
    ("def b(n) = RELU*n\nRELU - (b(x))*1000000 @j", ["E205"]),
    ("RELU - (RELU*(x + i))*1000000 @i", ["E401"]),  # the index read: costed in full, refused by the budget
])
def test_an_indexed_repeat_that_makes_nothing(text, codes):
    with pytest.raises(CnnError) as e:
        cnndsl.loads("input 8x8x3\n" + text)
    assert [d.code for d in e.value.diagnostics] == codes


def test_an_indexed_repeat_that_reads_its_index_still_runs_each_pass():
    net = cnndsl.loads("input 8x8x3\n(RELU*(i % 2))*5 @i")
    assert len(net.graph.nodes) == 2  # passes 1 and 3


def test_the_search_memo_is_bounded_and_starts_afresh(monkeypatch):
    from cnndsl.search import lean
    from cnndsl.search.member import measure
    monkeypatch.setattr(lean, "MAX_KEPT", 40)
    prog = cnndsl.parse("input 8x8x3\n(CONV(C + i, 1) - RELU)*12 @i - FC(3)")
    shared, peak = {}, 0
    for c in range(1, 9):
        got = measure(prog, {"C": c}, shared=shared)
        peak = max(peak, shared["kept"])
        assert got["params"] == measure(prog, {"C": c})["params"] and got["macs"] == measure(prog, {"C": c})["macs"]
    assert 0 < peak <= 40


def test_compile_reads_the_graph_once_per_file(monkeypatch):
    from cnndsl.ir import Graph
    calls = []
    real = Graph.consumers
    monkeypatch.setattr(Graph, "consumers", lambda self: calls.append(1) or real(self))
    net = cnndsl.loads("input 8x8x4\ndef b = {" + " | ".join(["CONV(1, 1)"] * 20) + "} - CONV(4, 1)\nb*30")
    source = net.torch_source()
    assert "class B(nn.Module)" in source and len(calls) <= 2


def test_symbolic_of_a_long_range_fits_a_bounded_run(tmp_path):
    import json
    spec = tmp_path / "r.net"
    spec.write_text("input 224x224x3\nlet N = 2 in 1..100\n(CONV(8, 3, s=2, p=1) - RELU)*N - FC(10)\n")
    p = subprocess.run([sys.executable, "-m", "cnndsl", "report", str(spec), "--symbolic", "N", "--format", "json"],
                       capture_output=True, text=True, timeout=HANG, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    r = json.loads(p.stdout)
    assert r["domain"]["N"]["fitted"] == [1, 12]
    assert set(r["not_symbolic"]) >= {"params", "macs"}  # no closed form through 1..12: said, not interpolated


def test_symbolic_refuses_too_many_repeat_counts_at_once(capsys, tmp_path):
    spec = tmp_path / "s.net"
    spec.write_text("input 8x8x3\nlet A = 1\nlet B = 1\nlet C = 1\nlet D = 1\nRELU*A - RELU*B - RELU*C - RELU*D\n")
    code, out, err = run(capsys, "report", str(spec), "--symbolic", "A,B,C,D")
    assert code == 2 and "all change the layers" in err, err
