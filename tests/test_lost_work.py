"""Lost work (issue 22, class 7): no command writes over the spec it reads, a file that spec includes
or another `.net` file, through whatever name (a symlink, a hard link); `search --emit` never writes
two members to one file; `train --out` refuses a folder that holds another run unless told (--resume,
--overwrite) and one that another training is writing (a lock naming its pid). Every case here replaced
or mixed files before (cnndsl.outputs)."""
import json
import os
import subprocess
import sys
import time

import pytest

import cnndsl
from cnndsl import CnnError
from cnndsl.cli import main
from cnndsl.outputs import check_unique, folder_lock

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
SPEC = "input 8x8x1\nCONV(4, 3) - RELU - FC(3)\n"
TRAIN = ("--data", "synthetic:64", "--epochs", "1", "--device", "cpu")


def cli(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    assert "internal error" not in err and "Traceback" not in err
    return code, out, err


@pytest.fixture
def spec(tmp_path):
    path = tmp_path / "a.net"
    path.write_text(SPEC)
    return path


def _intact(path, text=SPEC):
    assert path.read_text() == text


# ---- -o never replaces the spec, an include or another .net ---------------------------------------------
@pytest.mark.parametrize("command", [["report"], ["report", "--format", "json"], ["compile"], ["export"], ["draw"],
                                     ["report", "--symbolic", "C"]])
def test_o_naming_the_spec_itself_is_refused(command, spec, capsys):
    code, out, err = cli(capsys, command[0], spec, *command[1:], "-o", spec)
    assert code == 2 and f"-o {spec} is the spec being read" in err
    _intact(spec)


@pytest.mark.parametrize("how", ["symlink to the spec", "hard link", "spec read through a symlink", "dot-dot"])
def test_o_reaching_the_spec_by_another_name_is_refused(how, spec, tmp_path, capsys):
    other = tmp_path / "other.py"
    read, target = spec, other
    if how == "symlink to the spec":
        other.symlink_to(spec)
    elif how == "hard link":
        os.link(spec, other)
    elif how == "spec read through a symlink":
        link = tmp_path / "link.net"
        link.symlink_to(spec)
        read, target = link, spec
    else:
        (tmp_path / "sub").mkdir()
        target = tmp_path / "sub" / ".." / "a.net"
    code, out, err = cli(capsys, "compile", read, "-o", target)
    assert code == 2 and "is the spec being read" in err, err
    _intact(spec)


def test_o_naming_an_include_is_refused_at_any_depth(tmp_path, capsys):
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "deep.net").write_text("let C = 4\n")
    (lib / "blocks.net").write_text('include "deep.net"\ndef block = CONV(C, 3) - RELU\n')
    main_spec = tmp_path / "m.net"
    main_spec.write_text('include "lib/blocks.net"\ninput 8x8x1\nblock - FC(3)\n')
    for target in (lib / "blocks.net", lib / "deep.net"):
        before = target.read_text()
        code, out, err = cli(capsys, "report", main_spec, "-o", target)
        assert code == 2 and "a file the spec includes" in err and str(target) in err
        assert target.read_text() == before


def test_o_naming_another_existing_spec_is_refused_and_a_new_file_is_written(spec, tmp_path, capsys):
    other = tmp_path / "b.net"
    other.write_text("input 4x4x1\nFC(2)\n")
    code, out, err = cli(capsys, "report", spec, "-o", other)
    assert code == 2 and "is an existing spec" in err and other.read_text() == "input 4x4x1\nFC(2)\n"
    code, out, err = cli(capsys, "report", spec, "-o", tmp_path / "report.txt")
    assert code == 0 and "CONV" in (tmp_path / "report.txt").read_text()


# ---- search --emit / --plot -----------------------------------------------------------------------------
def test_emit_into_the_familys_folder_with_every_variable_fixed_keeps_the_family(tmp_path, capsys, monkeypatch):
    fam = tmp_path / "fam.net"
    text = "input 8x8x1\nlet C = 2 in 2, 4\nCONV(C, 3) - RELU - FC(3)\n"
    fam.write_text(text)
    monkeypatch.chdir(tmp_path)
    code, out, err = cli(capsys, "search", "fam.net", "-D", "C=4", "--emit", ".")
    assert code == 2 and "fam.net is the spec being read" in err
    _intact(fam, text)


def test_members_whose_names_sanitise_alike_get_their_own_files(tmp_path, capsys):
    fam = tmp_path / "fam.net"
    fam.write_text("input 8x8x1\nlet P = 11 in (1, 1), 11\nCONV(4, 3, p=P) - RELU - FC(3)\n")
    code, out, err = cli(capsys, "search", fam, "--format", "json", "--emit", tmp_path / "m")
    assert code == 0, err
    members = json.loads(out)["members"]
    files = {m["file"] for m in members}
    assert len(files) == 2 == len(os.listdir(tmp_path / "m"))
    for m in members:  # each file is its own member: the report of the file agrees with the search
        assert cnndsl.load(m["file"]).report()["totals"]["params"] == m["params"]


def test_names_differing_only_in_case_are_one_file():
    with pytest.raises(CnnError, match="would both be written to f-Ka.net"):
        check_unique(["f-Ka.net", "f-Kb.net", "f-KA.net"], lambda i: f"member {i}")


def test_emit_refuses_a_hand_written_spec_named_like_a_member_and_rewrites_its_own(tmp_path, capsys):
    fam = tmp_path / "fam.net"
    fam.write_text("input 8x8x1\nlet C = 2 in 2, 4\nCONV(C, 3) - RELU - FC(3)\n")
    out_dir = tmp_path / "m"
    assert cli(capsys, "search", fam, "--emit", out_dir)[0] == 0
    assert sorted(os.listdir(out_dir)) == ["fam-C2.net", "fam-C4.net"]
    assert cli(capsys, "search", fam, "--emit", out_dir)[0] == 0  # a rerun rewrites the members it wrote
    mine = "# my own edit of the member\ninput 8x8x1\nCONV(4, 3) - FC(3)\n"
    (out_dir / "fam-C4.net").write_text(mine)
    code, out, err = cli(capsys, "search", fam, "--emit", out_dir)
    assert code == 2 and "fam-C4.net is an existing spec that --emit did not write" in err
    assert (out_dir / "fam-C4.net").read_text() == mine


def test_plot_naming_the_spec_is_refused_before_the_search(tmp_path, capsys):
    fam = tmp_path / "fam.net"
    fam.write_text("input 8x8x1\nlet C = 2 in 2, 4\nCONV(C, 3) - RELU - FC(3)\n")
    link = tmp_path / "front.png"  # a name matplotlib writes, that is the spec (a .net --plot is refused anyway)
    link.symlink_to(fam)
    code, out, err = cli(capsys, "search", fam, "--plot", link)
    assert code == 2 and f"--plot {link} is the spec being read" in err and out == ""
    assert fam.read_text().startswith("input 8x8x1")


# ---- train --out: another run, --resume, --overwrite ------------------------------------------------------
def test_a_folder_holding_another_run_is_refused_unless_resume_or_overwrite(spec, tmp_path, capsys):
    run = tmp_path / "run"
    assert cli(capsys, "train", spec, *TRAIN, "--out", run)[0] == 0
    ck = (run / "checkpoint.safetensors").read_bytes()
    code, out, err = cli(capsys, "train", spec, *TRAIN, "--seed", "1", "--out", run)  # a forgotten --resume
    assert code == 2 and "holds another run" in err and "--resume" in err and "--overwrite" in err
    assert (run / "checkpoint.safetensors").read_bytes() == ck
    code, out, err = cli(capsys, "train", spec, *TRAIN, "--out", run, "--resume", "--overwrite")
    assert code == 2 and "give one" in err
    code, out, err = cli(capsys, "train", spec, *TRAIN[:-2], "--epochs", "2", "--out", run, "--resume")
    assert code == 0 and "resumed after epoch 1" in out
    assert [json.loads(ln)["epoch"] for ln in open(run / "metrics.jsonl")] == [1, 2]
    # --overwrite: a new run, none of the old one's files left over
    (run / "curves.png").unlink()
    code, out, err = cli(capsys, "train", spec, *TRAIN, "--seed", "3", "--out", run, "--overwrite")
    assert code == 0 and "the previous run in" in err
    assert [json.loads(ln)["epoch"] for ln in open(run / "metrics.jsonl")] == [1]
    assert json.load(open(run / "run.json"))["options"]["seed"] == 3
    assert sorted(os.listdir(run)) == ["checkpoint.safetensors", "curves.png", "metrics.jsonl", "run.json",
                                       "spec.net", "weights.safetensors"]  # the lock is gone with the run


def test_overwrite_keeps_the_old_run_when_the_new_one_cannot_start(spec, tmp_path, capsys):
    run = tmp_path / "run"
    assert cli(capsys, "train", spec, *TRAIN, "--out", run)[0] == 0
    before = {f: (run / f).read_bytes() for f in os.listdir(run)}
    code, out, err = cli(capsys, "train", spec, "--data", "nosuch", "--out", run, "--overwrite")
    assert code == 2 and "nosuch" in err
    assert {f: (run / f).read_bytes() for f in os.listdir(run)} == before
    assert cli(capsys, "train", spec, *TRAIN, "--seed", "2", "--out", run, "--overwrite")[0] == 0
    assert (run / "checkpoint.safetensors").read_bytes() != before["checkpoint.safetensors"]


def test_out_that_is_a_file_or_holds_a_foreign_spec_net_is_refused(spec, tmp_path, capsys):
    code, out, err = cli(capsys, "train", spec, *TRAIN, "--out", spec)
    assert code == 2 and "is a file, not a folder" in err
    _intact(spec)
    folder = tmp_path / "f"
    folder.mkdir()
    (folder / "spec.net").write_text("input 4x4x1\nFC(2)\n")
    code, out, err = cli(capsys, "train", spec, *TRAIN, "--out", folder, "--overwrite")
    assert code == 2 and "spec.net that no run wrote" in err
    assert (folder / "spec.net").read_text() == "input 4x4x1\nFC(2)\n"


def test_the_runs_spec_net_is_never_written_over_the_spec_or_an_include(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    own = run / "spec.net"
    own.write_text(SPEC)
    ino = os.stat(own).st_ino
    code, out, err = cli(capsys, "train", own, *TRAIN, "--out", run)  # training the run folder's own spec
    assert code == 0, err
    assert os.stat(own).st_ino == ino and own.read_text() == SPEC  # left as it is, not replaced
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "spec.net").write_text("let C = 4\n")
    top = tmp_path / "top.net"
    top.write_text('include "lib/spec.net"\ninput 8x8x1\nCONV(C, 3) - RELU - FC(3)\n')
    code, out, err = cli(capsys, "train", top, *TRAIN, "--out", lib)
    assert code == 2 and "which" in err and "includes" in err
    assert (lib / "spec.net").read_text() == "let C = 4\n"


# ---- the lock -------------------------------------------------------------------------------------------
def _env():
    return {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""), "OMP_NUM_THREADS": "1"}


def test_two_trainings_into_one_folder_at_once_the_second_is_refused_with_the_holders_pid(spec, tmp_path, capsys):
    """The holder is another process (`cnndsl train`); the second training runs in this one (a process
    of its own too, and torch is imported already: the test costs one start, not two)."""
    run = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-m", "cnndsl", "train", str(spec), "--data", "synthetic:256",
                               "--epochs", "100000", "--device", "cpu", "--out", str(run)],
                              env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        while not (run / "run.json").exists():  # the holder has started writing (on main too)
            assert holder.poll() is None and time.time() < deadline, holder.stderr.read() if holder.poll() else "slow"
            time.sleep(0.05)
        code, out, err = cli(capsys, "train", spec, *TRAIN, "--seed", "5", "--out", run, "--resume")
        assert holder.poll() is None  # still training: the two really overlapped
    finally:
        holder.kill()
        holder.wait()
    assert code == 2 and "is in use: another training writes there" in err and f"pid {holder.pid} on" in err
    assert json.load(open(run / "run.json"))["options"]["seed"] == 0  # the holder's run, nothing of the second's


def test_a_lock_left_by_a_killed_run_is_taken_over_and_only_rank_0_locks(tmp_path, monkeypatch):
    from cnndsl.train import train
    from cnndsl.train.loop import _out_folder
    net = cnndsl.loads(SPEC, path="a.net")
    run = tmp_path / "run"
    run.mkdir()
    (run / ".lock").write_text("pid 999999 on elsewhere\n")  # its holder died: the kernel dropped the flock
    train(net, "synthetic:64", epochs=1, device="cpu", out=str(run))
    assert not (run / ".lock").exists()
    with folder_lock(str(run)):
        with pytest.raises(CnnError, match=f"in use: a training run writes there \\(pid {os.getpid()} on"):
            with folder_lock(str(run)):
                pass
        # under torchrun rank 0 holds the lock; its peers write nothing and take none (tests/test_train.py
        # trains two gloo processes into one --out)
        monkeypatch.setenv("RANK", "1")
        with _out_folder(net, str(run), resume=False, overwrite=False) as clear:
            assert clear is None


# ---- search --train's member runs ---------------------------------------------------------------------------
def test_search_train_refuses_member_runs_before_anything_trains(tmp_path, capsys):
    fam = tmp_path / "fam.net"
    fam.write_text("input 8x8x1\nlet C = 2 in 2, 4\nCONV(C, 3, p=1) - RELU - POOL - FC(10)\n")
    emit = tmp_path / "study"
    args = ("search", fam, "--train", "digits", "--epochs", "1", "--device", "cpu", "--train-on", "top",
            "--emit", emit)
    assert cli(capsys, *args)[0] == 0
    before = {f: (emit / "fam-C4" / f).read_bytes() for f in os.listdir(emit / "fam-C4")}
    code, out, err = cli(capsys, *args, "--seed", "1")
    assert code == 2 and "holds the runs of 2 of these members" in err and "epoch" not in err
    assert {f: (emit / "fam-C4" / f).read_bytes() for f in os.listdir(emit / "fam-C4")} == before
    code, out, err = cli(capsys, *args, "--resume")
    assert code == 0 and err.count("trained before (--resume)") == 2
    code, out, err = cli(capsys, *args, "--seed", "1", "--overwrite")
    assert code == 0 and json.load(open(emit / "fam-C4" / "run.json"))["options"]["seed"] == 1
    code, out, err = cli(capsys, "search", fam, "--overwrite")
    assert code == 2 and "--overwrite is a training option" in err
