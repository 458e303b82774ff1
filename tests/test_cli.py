"""The command line as a user runs it: formats, exit statuses, no torch import for `report`."""
import csv
import io
import json
import subprocess
import sys

import pytest

from cnndsl.cli import main

VGG = "nets/vgg16.net"


def run(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_json_report_follows_the_versioned_contract(capsys):
    code, out, err = run(capsys, "report", VGG, "--format", "json")
    assert code == 0
    rep = json.loads(out)
    assert rep["schema"] == "cnndsl.report/1"
    assert rep["input"] == [224, 224, 3]
    first = rep["layers"][0]
    assert set(first) >= {"name", "op", "line", "col", "inputs", "out", "params", "macs", "flops",
                          "act_elems", "rf", "jump", "warnings"}
    assert set(rep["totals"]) >= {"params", "trainable_params", "macs", "flops", "param_bytes", "act_bytes",
                                  "train_bytes"}
    assert rep["totals"]["params"] == 138357544


def test_table_markdown_and_csv_agree_on_the_layers(capsys):
    _, table, _ = run(capsys, "report", VGG)
    assert "features.stage1.conv1" in table and "224x224x64" in table and "138,357,544" in table
    _, md, _ = run(capsys, "report", VGG, "--format", "markdown")
    assert md.count("\n| ") >= 41
    _, text, _ = run(capsys, "report", VGG, "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == 1 + 40 and rows[1]["out"] == "224x224x64" and int(rows[1]["params"]) == 1792


# The lecture's VGG-16 table (CS231n, "ConvNet Architectures"): INPUT 224*224*3 = 150K values and no
# weights, then one row per CONV/POOL/FC; its rows sum to 15,237,608 values. torchvision's twin adds
# an adaptive 7x7 average pool, an identity at 224x224 that still allocates 7*7*512 = 25,088 values.
VGG_VALUES = 150528 + 2 * 224 * 224 * 64 + 112 * 112 * 64 + 2 * 112 * 112 * 128 + 56 * 56 * 128 \
    + 3 * 56 * 56 * 256 + 28 * 28 * 256 + 3 * 28 * 28 * 512 + 14 * 14 * 512 + 3 * 14 * 14 * 512 + 7 * 7 * 512 \
    + 4096 + 4096 + 1000
VGG_TORCHVISION_VALUES = VGG_VALUES + 7 * 7 * 512


def test_csv_marks_in_place_rows_and_its_own_memory_rows_sum_to_the_lecture(capsys):
    assert VGG_VALUES == 15237608
    _, text, _ = run(capsys, "report", VGG, "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert list(rows[0].values()) == ["input", "INPUT", "", "", "", "224x224x3", "0", "0", "0", "150528",
                                      str(150528 * 4), "1", "1", "false"]
    assert {r["inplace"] for r in rows} == {"true", "false"}
    # in place: the 13 + 2 ReLUs (each overwrites its conv's or FC's output), the two dropouts, the flatten
    assert sum(r["inplace"] == "true" for r in rows) == 13 + 2 + 2 + 1
    own = sum(int(r["act_elems"]) for r in rows if r["inplace"] == "false")
    assert own == VGG_TORCHVISION_VALUES == 15262696
    assert sum(int(r["act_elems"]) for r in rows if r["inplace"] == "false" and r["op"] != "ADAPTIVEAVGPOOL") \
        == VGG_VALUES
    _, out, _ = run(capsys, "report", VGG, "--format", "json")
    assert json.loads(out)["totals"]["act_elems"] == own


def test_table_starts_with_the_input_and_ends_with_the_totals(capsys):
    _, table, _ = run(capsys, "report", VGG)
    lines = table.splitlines()
    # the lecture's first row: INPUT: [224x224x3] memory: 224*224*3=150K weights: 0
    assert lines[3].split() == ["input", "INPUT", "224x224x3", "150.53K", "588.0", "KiB", "0", "1"]
    assert lines[4].split()[:2] == ["1", "features.stage1.conv1"]
    total = next(l for l in lines if l.split()[:1] == ["total"]).split()
    # values and memory of the input and the 22 outputs with memory of their own; torchvision's parameters
    assert total == ["total", "40", "layers", "15.26M", f"{VGG_TORCHVISION_VALUES * 4 / 2**20:.1f}", "MiB",
                     "138,357,544", "15.47G"]
    assert lines[lines.index(next(l for l in lines if l.split()[:1] == ["total"])) - 1].startswith("--")
    _, md, _ = run(capsys, "report", VGG, "--format", "markdown")
    rows = [l for l in md.splitlines() if l.startswith("| ")]
    assert rows[1].split(" | ")[1:3] == ["input", "INPUT"] and "**total**" in rows[-1] and "**138,357,544**" in rows[-1]
    assert len(rows) == 1 + 1 + 40 + 1   # header, input, layers, totals


def test_memory_budget_gives_the_largest_batch(capsys):
    code, out, _ = run(capsys, "report", VGG, "--format", "json", "--memory", "24GiB", "--batch", "32",
                       "--optimizer", "momentum", "--dtype", "bf16")
    rep = json.loads(out)
    t, b = rep["totals"], rep["memory"]["max_batch"]
    assert b > 0 and t["train_fixed_bytes"] + b * t["train_per_image_bytes"] <= 24 * 2**30
    assert t["train_fixed_bytes"] + (b + 1) * t["train_per_image_bytes"] > 24 * 2**30


def test_defines_and_input_override(capsys, tmp_path):
    spec = tmp_path / "p.net"
    spec.write_text("input 32x32x3\n[(CONV-RELU)*N - POOL?]*M - (FC-RELU)*K - SOFTMAX\n")
    code, out, _ = run(capsys, "report", str(spec), "--format", "json", "-D", "N=2", "-D", "M=3", "-D", "K=1",
                       "-D", "pool=off", "--input", "16x16x1")
    rep = json.loads(out)
    assert code == 0 and rep["input"] == [16, 16, 1]
    assert [l["op"] for l in rep["layers"]].count("CONV") == 6
    assert "MAXPOOL" not in [l["op"] for l in rep["layers"]]
    assert rep["optionals"] == [{"name": "pool", "line": 2, "col": 18, "included": False, "source": "-D", "uses": 3}]


@pytest.mark.parametrize("args,status", [
    (["report", "nets/does-not-exist.net"], 2),
    (["report", VGG, "--format", "yaml"], 2),
    (["report", VGG, "-D", "oops"], 2),
    (["report", VGG, "--input", "big"], 2),
    (["report", VGG, "--memory", "lots"], 2),
    (["frobnicate"], 2),
])
def test_usage_errors_exit_2_without_traceback(capsys, args, status):
    code, out, err = run(capsys, *args)
    assert code == status and "Traceback" not in out + err and err.strip()


def test_faulty_spec_exits_1_with_position(capsys, tmp_path):
    spec = tmp_path / "bad.net"
    spec.write_text("input 8x8x3\nCONV(8, 3) - FC(10) - CONV(4, 3)\n")
    code, out, err = run(capsys, "report", str(spec))
    assert code == 1 and "bad.net:2:23: error: CONV needs an HxWxC volume" in err
    assert "^" in err and "Traceback" not in err


def test_check_validates_several_files(capsys, tmp_path):
    bad = tmp_path / "bad.net"
    bad.write_text("input 8x8x3\nCOVN(8, 3)\n")
    code, out, err = run(capsys, "check", VGG, str(bad))
    assert code == 1 and "nets/vgg16.net: ok" in out and "did you mean CONV?" in err
    assert run(capsys, "check", VGG)[0] == 0


def test_report_never_imports_torch_onnx_or_graphviz():
    code = ("import sys; from cnndsl.cli import main; main(['report', 'nets/vgg16.net', '--format', 'json']);"
            "heavy = {'torch', 'onnx', 'onnxruntime', 'graphviz'} & set(sys.modules); "
            "sys.stderr.write(repr(sorted(heavy)))")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert p.returncode == 0 and p.stderr.strip().endswith("[]"), p.stderr


def test_report_written_atomically_to_a_file(capsys, tmp_path):
    out = tmp_path / "r.json"
    assert run(capsys, "report", VGG, "--format", "json", "-o", str(out))[0] == 0
    assert json.loads(out.read_text())["totals"]["params"] == 138357544
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]  # no temporary left behind
