"""search --train (issue 15, "accuracy, not only cost"): a family's members trained on digits, their accuracy
in every format and in the plot, equal to `cnndsl train` on the emitted member and to `cnndsl eval` of its
weights; bad data and options as clear errors; failures reported; Ctrl-C keeps what is done."""
import csv
import io
import json
import os

import numpy as np
import pytest

import cnndsl
from cnndsl.cli import main
from cnndsl.search.enumerate import search
from cnndsl.search.space import Space

torch = pytest.importorskip("torch")
pytest.importorskip("sklearn")

# 4 members on scikit-learn's 8x8 digits; the front of (params, depth) is C=2 with K=0 and K=1
FAMILY = """input 8x8x1
let C = 2 in 2, 4
let K = 0 in 0..1
CONV(C, 3, p=1) - RELU - POOL - (FC(16) - RELU)*K - FC(10)
"""
TRAIN = ["--train", "digits", "--epochs", "1", "--device", "cpu"]


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread: on a busy 2-core machine two threads wait on each other (10x slower); the
    results are the same figures either way (the comparisons below run under the same setting)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def family(tmp_path):
    path = tmp_path / "fam.net"
    path.write_text(FAMILY)
    return str(path)


def _run(argv, capsys):
    rc = main(argv)
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return rc, out, err


def test_accuracy_in_json_csv_table_plot_and_equal_to_train_and_eval(family, tmp_path, capsys):
    emit, png = str(tmp_path / "members"), str(tmp_path / "front.png")
    rc, out, err = _run(["search", family, *TRAIN, "--pareto", "params,depth", "--top", "2", "--format", "json",
                         "--emit", emit, "--plot", png], capsys)
    assert rc == 0, err
    res = json.loads(out)
    t = res["training"]
    assert (t["selected"], t["trained"], t["failed"], t["interrupted"], t["on"]) == (2, 2, 0, False, "front")
    assert t["options"]["seed"] == 0 and t["options"]["batch"] == 32 and t["options"]["epochs"] == 1
    front = res["pareto"]
    assert [m["bindings"] for m in front] == [{"C": 2, "K": 0}, {"C": 2, "K": 1}]
    for m in front:
        assert 0.3 < m["val_acc"] <= 1 and m["epochs_trained"] == 1 and os.path.isfile(m["file"])
    assert "val_acc" in res["members"][0] and "val_acc" not in res["members"][1]  # C=4 K=0: listed, not on the front
    assert [ln for ln in err.splitlines() if ln.startswith("[")] == [
        f"[{i}/2] C=2 K={k} ({m['params']:,} params, {m['macs']:,} MACs): val acc {m['val_acc']:.4f}, "
        f"train acc {m['train_acc']:.4f}, 1 epoch, {m['train_seconds']:.1f} s" for i, (k, m) in enumerate(zip((0, 1), front), 1)]

    # the plot gained the accuracy panel: two panels side by side
    from PIL import Image
    with Image.open(png) as im:
        assert im.size[0] > 1.5 * im.size[1]

    # the emitted member trained by `cnndsl train` with the same seed: the same run, to the bit
    m = front[1]
    run = str(tmp_path / "alone")
    rc, out2, err2 = _run(["train", m["file"], "--data", "digits", "--epochs", "1", "--device", "cpu", "--seed", "0",
                           "--out", run], capsys)
    assert rc == 0, err2
    mine = [json.loads(ln) for ln in open(os.path.join(m["train_dir"], "metrics.jsonl"))]
    theirs = [json.loads(ln) for ln in open(os.path.join(run, "metrics.jsonl"))]
    timing = ("images_per_s", "train_seconds", "seconds")
    assert [{k: v for k, v in r.items() if k not in timing} for r in mine] == \
        [{k: v for k, v in r.items() if k not in timing} for r in theirs]
    assert mine[-1]["val_acc"] == m["val_acc"] and f"final validation accuracy: {m['val_acc']:.4f}" in out2
    # and cnndsl eval of its weights counts the same validation accuracy
    from cnndsl.train import evaluate
    net = cnndsl.load(m["file"])
    assert evaluate(net, os.path.join(m["train_dir"], "weights.safetensors"), "digits", device="cpu")["accuracy"] \
        == pytest.approx(m["val_acc"], abs=1e-12)
    summary = json.load(open(os.path.join(emit, "training.json")))
    assert [r["val_acc"] for r in summary["members"]] == [r["val_acc"] for r in front]

    # csv and table from the same runs (--resume reads the finished members back: nothing retrains)
    rc, out, err = _run(["search", family, *TRAIN, "--pareto", "params,depth", "--top", "2", "--format", "csv",
                         "--emit", emit, "--resume"], capsys)
    assert rc == 0 and "epoch 1/1" not in err
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [(r["C"], r["K"], r["pareto"]) for r in rows] == [("2", "0", "true"), ("4", "0", "false"), ("2", "1", "true")]
    assert [float(rows[i]["val_acc"]) for i in (0, 2)] == [front[0]["val_acc"], front[1]["val_acc"]]
    assert rows[1]["val_acc"] == "" and rows[0]["epochs_trained"] == "1"
    rc, out, err = _run(["search", family, *TRAIN, "--pareto", "params,depth", "--emit", emit, "--resume"], capsys)
    assert rc == 0
    lines = out.splitlines()
    assert lines[lines.index("Pareto front (params, depth): 2 members") + 1].split()[-3:] == ["rf", "val", "acc"]
    assert f"{front[0]['val_acc']:.4f}" in lines[lines.index("Pareto front (params, depth): 2 members") + 3]
    best = max(front, key=lambda r: r["val_acc"])
    assert any(ln.startswith(f"  most accurate: C=2 K={best['bindings']['K']}  val acc {best['val_acc']:.4f}")
               for ln in lines)


def test_members_that_fail_are_reported_and_the_others_train(tmp_path, capsys):
    path = tmp_path / "heads.net"
    path.write_text("input 8x8x1\nlet U = 10 in 10, 5\nlet C = 2 in 2, 4\nCONV(C, 3, p=1) - RELU - POOL - FC(U)\n")
    rc, out, err = _run(["search", str(path), *TRAIN, "--train-on", "top", "--top", "0", "--format", "json"], capsys)
    assert rc == 1  # a member failed; the rest is there
    res = json.loads(out)
    assert res["training"]["trained"] == 2 and res["training"]["failed"] == 2
    for m in res["members"]:
        if m["bindings"]["U"] == 5:
            assert "val_acc" not in m and m["train_error"].startswith("digits has 10 classes")
        else:
            assert 0.3 < m["val_acc"] <= 1
    assert "heads-U5-C2.net:6:33: error: digits has 10 classes" in err and "^~~~~" in err  # positioned


def _npz(tmp_path, shape):
    rng = np.random.default_rng(0)
    path = str(tmp_path / "d.npz")
    np.savez(path, x=rng.normal(size=(40, *shape)).astype(np.float32), y=np.arange(40) % 10)
    return path


@pytest.mark.parametrize("argv,message", [
    (["--train", "nosuch"], "--data nosuch: not a dataset name"),
    (["--train", "missing/d.npz"], "no such file or folder"),
    (["--train", "NPZ10"], "x holds samples of 10x10x1, but the network's input is 8x8x1"),
    (["--train", "digits", "--epochs", "0"], "argument --epochs: must be a whole number from 1"),
    (["--train", "digits", "--val", "1.5"], "argument --val: must be a finite number in [0, 1)"),
    (["--train", "digits", "--threads", "0"], "argument --threads: must be a whole number from 1"),
    (["--lr", "0.1"], "--lr is a training option: it needs --train DATA"),
    (["--train", "digits", "--resume"], "--resume continues the members' runs in --emit DIR"),
])
def test_bad_data_and_options_are_clear_errors(argv, message, family, tmp_path, capsys):
    argv = [_npz(tmp_path, (10, 10, 1)) if a == "NPZ10" else a for a in argv]
    rc, out, err = _run(["search", family, "--device", "cpu", *argv], capsys)
    assert rc == 2 and message in err, err
    assert "[1/" not in err  # nothing trained


def test_npz_data_of_the_familys_input_trains_with_the_thread_count_recorded(family, tmp_path, capsys):
    rc, out, err = _run(["search", family, "--train", _npz(tmp_path, (8, 8, 1)), "--epochs", "1", "--device", "cpu",
                         "--threads", "1", "--format", "json", "--emit", str(tmp_path / "m")], capsys)
    res = json.loads(out)
    assert rc == 0 and res["pareto"][0]["val_acc"] is not None
    assert res["training"]["options"]["threads"] == 1 and "seed 0, 1 thread," in err
    run = json.load(open(os.path.join(res["pareto"][0]["train_dir"], "run.json")))
    assert run["reproducibility"]["threads"] == 1 and run["reproducibility"]["device"] == "cpu"


def test_ctrl_c_keeps_what_is_done_and_resume_continues(family, tmp_path):
    from cnndsl.search.train import train_members
    space = Space(cnndsl.parse(FAMILY, family))
    res = search(space)
    out = str(tmp_path / "runs")

    def interrupt(e):
        if e["event"] == "epoch" and e["member"] == 2:
            raise KeyboardInterrupt
    t = train_members(space, res["members"], "digits", out=out, callback=interrupt, epochs=1, device="cpu")
    assert t["interrupted"] and (t["trained"], t["left"]) == (1, 3)
    assert 0 < res["members"][0]["val_acc"] <= 1 and "val_acc" not in res["members"][1]
    on_disk = json.load(open(os.path.join(out, "training.json")))
    assert on_disk["interrupted"] and [r["val_acc"] for r in on_disk["members"]] == [res["members"][0]["val_acc"]]
    first = res["members"][0]["val_acc"]
    events = []
    t = train_members(space, res["members"], "digits", out=out, resume=True, callback=events.append, epochs=1,
                      device="cpu")
    assert not t["interrupted"] and t["trained"] == 4
    assert res["members"][0]["val_acc"] == first
    assert {e["member"] for e in events if e["event"] == "epoch"} == {2, 3, 4}  # member 1 was not retrained


def test_emitted_members_declare_the_searchs_input(tmp_path, capsys):
    """(found while adding --train) a member emitted under --input kept the family's input line."""
    path = tmp_path / "f.net"
    path.write_text("input 32x32x3\nlet C = 4 in 4, 8\nCONV(C, 3) - RELU - POOL - FC(10)\n")
    rc, out, err = _run(["search", str(path), "--input", "16x16x1", "--format", "json", "--emit",
                         str(tmp_path / "m")], capsys)
    assert rc == 0
    for m in json.loads(out)["members"]:
        assert "input 16x16x1" in open(m["file"]).read()
        assert cnndsl.load(m["file"]).report()["totals"]["params"] == m["params"]


def test_ctrl_c_on_the_command_line_prints_what_is_done(family, tmp_path, capsys, monkeypatch):
    import cnndsl.train as T
    real, calls = T.train, []

    def second_interrupted(*a, **k):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*a, **k)
    monkeypatch.setattr(T, "train", second_interrupted)
    rc, out, err = _run(["search", family, *TRAIN, "--train-on", "top", "--emit", str(tmp_path / "m")], capsys)
    assert rc == 130 and len(calls) == 2
    assert "trained 1 of 4 members" in out and "interrupted: 3 members left untrained" in out
    assert "interrupted: 1 of 4 members done; the same command with --resume continues" in err


def test_a_torch_failure_is_that_members_alone(family, monkeypatch):
    import cnndsl.train as T
    from cnndsl.search.train import train_members
    real, calls = T.train, []

    def first_out_of_memory(*a, **k):
        calls.append(1)
        if len(calls) == 1:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB\nmore lines")
        return real(*a, **k)
    monkeypatch.setattr(T, "train", first_out_of_memory)
    space = Space(cnndsl.parse(FAMILY, family))
    records = search(space)["members"][:2]
    t = train_members(space, records, "digits", epochs=1, device="cpu")
    assert (t["trained"], t["failed"]) == (1, 1)
    assert records[0]["train_error"] == "OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB"
    assert 0.3 < records[1]["val_acc"] <= 1
