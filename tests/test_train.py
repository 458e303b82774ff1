"""Training: accuracy on digits, exact resume, kill -9 safety, transfer and freezing, DDP with gloo,
eval, and data that does not fit the net. Heavy versions run with CNNDSL_SLOW=1 (README, "Training")."""
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

import cnndsl
import cnndsl.weights as W
from cnndsl import CnnError
from cnndsl.cli import main
from cnndsl.train import evaluate, train
from cnndsl.train import checkpoint as C

ROOT = os.path.join(os.path.dirname(__file__), "..")
SLOW = bool(os.environ.get("CNNDSL_SLOW"))
TINY = "input 8x8x1\nfeatures: [CONV(4, 3) - BN - RELU - DROPOUT(0.2)] - head: FC(3)\n"


def tiny(text=TINY, path="tiny.net"):
    return cnndsl.loads(text, path=path)


def cli(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def _env():
    return {**os.environ, "PYTHONPATH": os.path.abspath(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}


# ---- learning ---------------------------------------------------------------------------------------
def test_lenet5_learns_digits_in_a_small_budget():
    net = cnndsl.load(os.path.join(ROOT, "nets/lenet5.net"))
    epochs = 10 if SLOW else 3
    r = train(net, "digits", epochs=epochs, seed=0)
    acc = r["final"]["val_acc"]
    assert acc >= (0.97 if SLOW else 0.9), r["history"]
    row = r["history"][-1]
    assert set(row) >= {"epoch", "lr", "train_loss", "train_acc", "val_loss", "val_acc", "images_per_s", "seconds"}
    assert any("centred in 32x32" in line for line in r["data"])


def test_cli_train_writes_the_run_and_ends_with_the_validation_accuracy(capsys, tmp_path):
    spec = tmp_path / "tiny.net"
    spec.write_text(TINY)
    out = tmp_path / "run"
    code, o, e = cli(capsys, "train", str(spec), "--data", "synthetic:96", "--epochs", "2", "--batch", "16",
                     "--opt", "nesterov", "--schedule", "cosine", "--warmup", "3", "--augment", "flip+crop",
                     "--label-smoothing", "0.1", "--out", str(out))
    assert code == 0, e
    assert o.strip().splitlines()[-1].startswith("final validation accuracy: ")
    assert "nesterov lr 0.01 momentum 0.9" in o and "warm-up 3 steps" in o
    assert sorted(os.listdir(out)) == ["checkpoint.safetensors", "curves.png", "metrics.jsonl", "run.json",
                                       "spec.net", "weights.safetensors"]
    rows = [json.loads(line) for line in open(out / "metrics.jsonl")]
    assert [r["epoch"] for r in rows] == [1, 2]
    assert (out / "spec.net").read_text() == TINY
    assert json.load(open(out / "run.json"))["spec"]["spec_sha256"] == tiny().spec_hash
    assert W.read(out / "weights.safetensors")[1]["spec_name"] == "tiny"
    code, o, e = cli(capsys, "eval", str(spec), "--weights", str(out / "weights.safetensors"),
                     "--data", "synthetic:96", "--out", str(out))
    assert code == 0, e
    assert "confusion matrix" in o and o.strip().splitlines()[-1].startswith("accuracy: ")
    assert (out / "confusion.png").read_bytes()[:4] == b"\x89PNG"


# ---- exact resume -----------------------------------------------------------------------------------------
class Interrupt(Exception):
    pass


@pytest.mark.parametrize("opts", [
    dict(opt="momentum", schedule="step", warmup=4, augment="flip+crop"),
    dict(opt="adam", schedule="plateau", label_smoothing=0.1),
])
def test_resume_after_an_interruption_is_bit_identical(tmp_path, opts):
    net = tiny()
    common = dict(epochs=4, batch=16, seed=3, **opts)
    whole = train(net, "synthetic:128", out=str(tmp_path / "a"), **common)

    def stop(e):
        if e["event"] == "epoch_end" and e["row"]["epoch"] == 2:
            raise Interrupt
    with pytest.raises(Interrupt):
        train(net, "synthetic:128", out=str(tmp_path / "b"), callback=stop, **common)
    assert C.Loaded(tmp_path / "b" / C.CHECKPOINT).state["epoch"] == 2
    torch.manual_seed(12345)  # whatever the process did meanwhile, resume restores the RNG
    resumed = train(net, "synthetic:128", out=str(tmp_path / "b"), resume=True, **common)
    assert resumed["resumed_from"] == 2
    a, b = whole["module"].state_dict(), resumed["module"].state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    strip = lambda rows: [{k: v for k, v in r.items() if "second" not in k and k != "images_per_s"} for r in rows]
    assert strip(whole["history"]) == strip(resumed["history"])


def test_resume_refuses_another_spec_and_other_options(tmp_path):
    train(tiny(), "synthetic:64", epochs=1, out=str(tmp_path))
    other = tiny(TINY.replace("CONV(4, 3)", "CONV(6, 3)"))
    with pytest.raises(CnnError) as e:
        train(other, "synthetic:64", epochs=2, out=str(tmp_path), resume=True)
    assert "features.conv1: CONV 3x3/1, 4" in str(e.value) and "another spec" in str(e.value)
    with pytest.raises(CnnError) as e:
        train(tiny(), "synthetic:64", epochs=2, lr=0.5, out=str(tmp_path), resume=True)
    assert "lr (0.003 there, 0.5 here)" in str(e.value)
    comment = tiny("# a comment\n" + TINY)  # other text, same layers: resumed, with a note
    assert train(comment, "synthetic:64", epochs=2, out=str(tmp_path), resume=True)["notes"]


KILL_SPEC = "input 8x8x1\nCONV(8, 3) - BN - RELU - DROPOUT(0.1) - FC(4)\n"
KILL_EPOCHS = 8


def _train_cmd(spec, out, *extra):
    return [sys.executable, "-m", "cnndsl", "train", str(spec), "--data", "synthetic:192", "--epochs", str(KILL_EPOCHS),
            "--batch", "16", "--opt", "momentum", "--schedule", "exp", "--seed", "1", "--out", str(out), *extra]


def _kill_at_random_moments(spec, out, rng):
    """CNNDSL_SLOW=1: eight `cnndsl train` commands, each killed 0.1 to 1 s after its first epoch."""
    for trial in range(8):
        p = subprocess.Popen(_train_cmd(spec, out, "--resume"), env=_env(), stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, text=True)
        p.stdout.readline()  # training has started (the log is flushed at the end of each epoch)
        time.sleep(rng.uniform(0.1, 1.0))
        p.send_signal(signal.SIGKILL)
        p.wait()
        yield


def _kill_within_an_epoch(zygote, spec, out, rng):
    """One `cnndsl train` killed within the epoch after a random one (an epoch takes ~10 ms here; the
    last leaves ~0.2 s for curves.png), never after the run's end."""
    log = out.parent / "killed.log"
    pid = zygote.start(_train_cmd(spec, out, "--resume"), out.parent, log)
    last = rng.randint(1, KILL_EPOCHS - 2)
    while f"epoch {last}:" not in (log.read_text() if log.exists() else ""):
        assert zygote.alive(pid), f"the training ended before its log showed epoch {last}:\n{log.read_text()}"
        time.sleep(0.002)
    time.sleep(rng.uniform(0, 0.01))
    os.kill(pid, signal.SIGKILL)
    zygote.wait(pid)
    yield


def test_kill_9_never_corrupts_and_resume_ends_bit_identical(tmp_path, zygote):
    """A real `cnndsl train` process killed with SIGKILL (once by default, eight times at random moments
    with CNNDSL_SLOW=1) leaves complete files, and the resume ends bit-identical to an uninterrupted run.
    By default every run is forked from tests/zygote.py's process (the command without its imports)."""
    spec = tmp_path / "k.net"
    spec.write_text(KILL_SPEC)
    out, rng = tmp_path / "killed", random.Random(0)

    def command(*args):
        code, printed = zygote.run(_train_cmd(spec, *args), tmp_path, tmp_path / "train.log")
        assert code == 0, printed
    if SLOW:
        ref = subprocess.Popen(_train_cmd(spec, tmp_path / "ref"), env=_env(), stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
        kills = _kill_at_random_moments(spec, out, rng)
    else:
        command(tmp_path / "ref")
        kills = _kill_within_an_epoch(zygote, spec, out, rng)
    for _ in kills:
        ck = C.find(str(out))
        if ck is not None:  # whatever moment it died at, the files are complete
            loaded = C.Loaded(ck)
            assert loaded.state["epoch"] == len(loaded.state["history"]) >= 1
            W.read(out / C.WEIGHTS)
    if SLOW:
        done = subprocess.run(_train_cmd(spec, out, "--resume"), env=_env(), capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        assert ref.wait() == 0, ref.stderr.read()
    else:
        command(out, "--resume")
    a, b = W.load(tmp_path / "ref" / C.WEIGHTS), W.load(out / C.WEIGHTS)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not [f for f in os.listdir(out) if f.endswith(".tmp")]
    assert len(open(out / "metrics.jsonl").readlines()) == KILL_EPOCHS


def test_a_resume_after_the_last_checkpoint_writes_the_weights_and_the_log_again(tmp_path):
    """Killed after the last epoch's checkpoint, before its weights.safetensors, metrics.jsonl and
    curves.png: the resume has nothing to train and writes them from the checkpoint."""
    whole = train(tiny(), "synthetic:64", epochs=2, batch=16, out=str(tmp_path / "run"))
    train(tiny(), "synthetic:64", epochs=1, batch=16, out=str(tmp_path / "one"))
    run = tmp_path / "run"
    rows = open(run / "metrics.jsonl").readlines()
    (run / "metrics.jsonl").write_text(rows[0])
    (run / "curves.png").unlink()
    (run / C.WEIGHTS).write_bytes((tmp_path / "one" / C.WEIGHTS).read_bytes())  # the epoch before
    again = train(tiny(), "synthetic:64", epochs=2, batch=16, out=str(run), resume=True)
    assert again["resumed_from"] == 2 and again["final"] == whole["final"]
    assert open(run / "metrics.jsonl").readlines() == rows
    assert (run / "curves.png").read_bytes()[:4] == b"\x89PNG"
    saved, trained = W.load(run / C.WEIGHTS), whole["module"].state_dict()
    assert saved.keys() == trained.keys() and all(torch.equal(saved[k], trained[k]) for k in saved)


# ---- transfer learning ------------------------------------------------------------------------------------
def test_init_into_a_new_head_and_frozen_layers_do_not_move(tmp_path):
    base = train(tiny(), "synthetic:96", epochs=1, out=str(tmp_path / "base"))
    five = tiny(TINY.replace("head: FC(3)", "head: FC(5)"), "five.net")
    ck = str(tmp_path / "base" / C.WEIGHTS)
    r = train(five, "synthetic:160", epochs=2, init=ck, freeze="features", out=str(tmp_path / "ft"))
    assert r["init"]["resized"] == ["head.weight", "head.bias"] and r["init"]["loaded"] >= 5
    assert r["frozen"] == ["features.conv1", "features.bn1", "features.relu1", "features.dropout1"]
    assert r["trainable_params"] == 4 * 6 * 6 * 5 + 5
    before, after = base["module"].state_dict(), r["module"].state_dict()
    for k in before:
        if k.startswith("features."):  # weights and the frozen BN's running statistics
            assert torch.equal(before[k], after[k]), k
    assert not torch.equal(before["head.weight"][:3], after["head.weight"][:3]) if after["head.weight"].shape == \
        before["head.weight"].shape else True
    # a training checkpoint also serves as --init, and a torchvision-style state_dict through the mapping
    r2 = train(five, "synthetic:160", epochs=1, init=str(tmp_path / "base" / C.CHECKPOINT), freeze="..features.bn1")
    assert r2["init"]["resized"] == ["head.weight", "head.bias"]


def test_eval_and_init_read_the_tensors_once(tmp_path, monkeypatch):
    """The record (normalisation, options) comes from the safetensors header: a checkpoint's tensors are
    read once by eval and by train --init, from a weights file and from a training checkpoint."""
    train(tiny(), "synthetic:96", epochs=1, out=str(tmp_path / "base"))
    reads, real = [], W._read_safetensors

    def counted(f, path, *args, **kw):
        reads.append((os.path.basename(path), kw.get("tensors", True)))
        return real(f, path, *args, **kw)
    monkeypatch.setattr(W, "_read_safetensors", counted)
    for name in (C.WEIGHTS, C.CHECKPOINT):
        path = str(tmp_path / "base" / name)
        for run in (lambda: evaluate(tiny(), path, "synthetic:96"),
                    lambda: train(tiny(), "synthetic:96", epochs=1, init=path)):
            reads.clear()
            run()
            assert [r for r in reads if r[1]] == [(name, True)], reads


def test_the_seeds_bound_is_defined_once():
    """The command line's --seed and the training options take one MAX_SEED (numpy's generators' 2**32 - 1)."""
    import argparse
    import ast
    from cnndsl import options as O
    from cnndsl.train import options as TO
    package = os.path.join(ROOT, "cnndsl")
    defined = [os.path.relpath(os.path.join(d, f), package) for d, _, files in os.walk(package) for f in files
               if f.endswith(".py") for node in ast.walk(ast.parse(open(os.path.join(d, f), encoding="utf-8").read()))
               if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "MAX_SEED" for t in node.targets)]
    assert defined == [os.path.join("train", "options.py")]
    assert O.MAX_SEED == TO.MAX_SEED == 2**32 - 1 and O.seed(str(2**32 - 1)) == 2**32 - 1
    with pytest.raises(argparse.ArgumentTypeError):
        O.seed(str(2**32))


def test_cli_init_prints_what_it_skipped_and_report_shows_trainable(capsys, tmp_path):
    spec, new = tmp_path / "t.net", tmp_path / "n.net"
    spec.write_text(TINY)
    new.write_text(TINY.replace("head: FC(3)", "newhead: FC(3)"))
    assert cli(capsys, "train", str(spec), "--data", "synthetic:64", "--epochs", "1", "--out", str(tmp_path / "a"))[0] == 0
    code, o, e = cli(capsys, "train", str(new), "--data", "synthetic:64", "--epochs", "1", "--freeze", "features",
                     "--init", str(tmp_path / "a" / C.WEIGHTS))
    assert code == 0, e
    assert "skipped, no layer here: head.weight" in e and "not in the checkpoint, random: newhead.weight" in e
    assert "parameters: 435 trainable of 483 (frozen: features: 4 layers)" in o
    code, o, e = cli(capsys, "report", str(spec), "--freeze", "..features.bn1")
    assert code == 0 and "trainable parameters: 435 of 483" in o
    code, o, e = cli(capsys, "report", str(spec), "--freeze", "featurs", "--format", "json")
    assert code == 2 and "did you mean features" in e


def test_the_freeze_log_names_what_was_asked_never_cut_short(capsys, tmp_path):
    spec = tmp_path / "deep.net"
    spec.write_text("input 8x8x1\nfeatures: [(CONV(4, 3, p=1) - RELU)*4] - head: FC(3)\n")
    code, o, e = cli(capsys, "train", str(spec), "--data", "synthetic:64", "--epochs", "1", "--freeze", "features")
    assert code == 0 and "(frozen: features: 8 layers)" in o and "more" not in o, o
    code, o, e = cli(capsys, "report", str(spec), "--freeze", "features.conv1, ..features.relu3")
    assert code == 0 and "(frozen: features.conv1, ..features.relu3: 6 layers)" in o, o


def test_report_freeze_never_imports_torch_matplotlib_or_sklearn():
    code = ("import sys; from cnndsl.cli import main; main(['report', 'nets/lenet5.net', '--freeze', 'c1,c3']);"
            "heavy = {'torch', 'matplotlib', 'sklearn', 'PIL', 'tqdm'} & set(sys.modules); "
            "sys.stderr.write(repr(sorted(heavy)))")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=_env())
    assert p.returncode == 0 and p.stderr.strip().endswith("[]"), p.stderr


# ---- torchrun ---------------------------------------------------------------------------------------------
def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _two_ranks(zygote, worker, folder, *args):
    """The two processes `torchrun --standalone --nproc_per_node=2 WORKER` starts, with the variables
    torchrun gives them (cnndsl reads RANK, LOCAL_RANK, WORLD_SIZE; torch.distributed the master address),
    forked from tests/zygote.py's process: without torchrun's own process and three torch imports.
    CNNDSL_SLOW=1 runs torchrun itself."""
    port = str(_free_port())
    pids = [zygote.start([sys.executable, worker, *args], folder, folder / f"rank{r}.log",
                         env={"RANK": str(r), "LOCAL_RANK": str(r), "WORLD_SIZE": "2", "LOCAL_WORLD_SIZE": "2",
                              "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port})
            for r in (0, 1)]
    codes = [zygote.wait(pid, timeout=300) for pid in pids]
    return max(codes, key=abs), "\n".join((folder / f"rank{r}.log").read_text() for r in (0, 1))


def test_ddp_two_gloo_processes_under_torchrun(tmp_path, zygote):
    out, trace = tmp_path / "out", tmp_path / "trace"
    trace.mkdir()
    worker = os.path.join(os.path.dirname(__file__), "train_ddp_worker.py")
    if SLOW:
        p = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                            worker, str(out), str(trace)], env=_env(), capture_output=True, text=True, timeout=300)
        code, stderr = p.returncode, p.stderr
    else:
        code, stderr = _two_ranks(zygote, worker, tmp_path, str(out), str(trace))
    assert code == 0, stderr[-3000:]
    ranks = [json.load(open(trace / f"rank{i}.json")) for i in (0, 1)]
    assert [r["world"] for r in ranks] == [2, 2]
    for epoch in ("1", "2"):
        a, b = (set(r["seen"][epoch]) for r in ranks)
        assert a and b and not a & b and len(a) == len(b) == len(ranks[0]["seen"][epoch])
    w0, w1 = W.load(trace / "rank0.safetensors"), W.load(trace / "rank1.safetensors")
    assert all(torch.equal(w0[k], w1[k]) for k in w0)
    assert ranks[0]["files"] and ranks[1]["files"] == []
    assert sorted(os.listdir(out)) == ["checkpoint.safetensors", "curves.png", "metrics.jsonl", "run.json",
                                       "spec.net", "weights.safetensors"]
    assert ranks[0]["val_acc"] == ranks[1]["val_acc"]


# ---- data -------------------------------------------------------------------------------------------------
def test_an_image_folder_is_fitted_to_the_net(tmp_path):
    from PIL import Image
    rng = np.random.default_rng(0)
    for c, colour in (("cat", 40), ("dog", 200)):
        (tmp_path / c).mkdir()
        for i in range(10):
            size = (12 + i % 3, 10 + i % 2)
            arr = np.clip(colour + rng.normal(0, 20, size[::-1] + (3,)), 0, 255).astype(np.uint8)
            Image.fromarray(arr).save(tmp_path / c / f"{i}.{'png' if i % 2 else 'jpg'}")
    net = tiny(TINY.replace("FC(3)", "FC(2)"))
    r = train(net, str(tmp_path), epochs=3, batch=4)
    assert r["classes"] == ["cat", "dog"] and r["final"]["val_acc"] == 1.0
    assert any("-> 8x8 (bilinear" in line for line in r["data"]) and any("RGB -> L" in line for line in r["data"])


def test_an_npz_must_fit_and_the_error_says_what_to_change(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, x=np.zeros((20, 28, 28), np.float32), y=np.arange(20) % 3)
    with pytest.raises(CnnError) as e:
        train(tiny(), str(path), epochs=1)
    assert "28x28" in e.value.message and "input 28x28x1" in e.value.hint
    np.savez(path, x=np.zeros((20, 8, 8, 1), np.float32), y=np.arange(20) % 5)
    with pytest.raises(CnnError) as e:
        train(tiny(), str(path), epochs=1)
    assert "5 classes" in e.value.message and "`head` has 3 units" in e.value.message
    assert (e.value.span.line, e.value.span.col) == (2, 59) and "FC(5)" in e.value.hint
    np.savez(path, x=np.ones((30, 1, 8, 8), np.float32) * (np.arange(30) % 3)[:, None, None, None],
             y=np.arange(30) % 3)
    assert "read as NCHW" in train(tiny(), str(path), epochs=1)["data"]


@pytest.mark.parametrize("data,opts,words", [
    ("nowhere", {}, "not a dataset name"),
    ("digits", {}, "10 classes"),
    ("synthetic:1", {}, "at least 6"),
    ("synthetic", {"momentum": 0.9}, "--momentum applies to"),
    ("synthetic", {"opt": "lbfgs"}, "not one of"),
    ("synthetic", {"freeze": "nothing"}, "no layer or group `nothing`"),
    ("synthetic", {"freeze": "features,head"}, "leaves nothing to train"),
    ("synthetic", {"device": "cuda"} if not torch.cuda.is_available() else {"epochs": 0}, ""),
])
def test_bad_input_is_a_clear_error(data, opts, words):
    with pytest.raises(CnnError) as e:
        train(tiny(), data, epochs=opts.pop("epochs", 1), **opts)
    assert words in str(e.value)


def test_cli_bad_data_exits_2_without_a_traceback(capsys, tmp_path):
    code, o, e = cli(capsys, "train", os.path.join(ROOT, "nets/lenet5.net"), "--data", str(tmp_path / "x.npz"))
    assert code == 2 and "Traceback" not in e and "no such file or folder" in e


# ---- reproducibility: seed, device, thread count ---------------------------------------------------------
def test_threads_is_set_for_the_run_recorded_and_the_same_seed_and_threads_give_the_same_bits(capsys, tmp_path):
    spec = tmp_path / "tiny.net"
    spec.write_text(TINY)
    caller = torch.get_num_threads()
    torch.set_num_threads(2)  # a count other than the run's 1 (the suite runs with OMP_NUM_THREADS=1)
    before = torch.get_num_threads()
    runs = []
    try:
        for name in ("a", "b"):
            code, o, e = cli(capsys, "train", str(spec), "--data", "synthetic:96", "--epochs", "2", "--seed", "5",
                             "--threads", "1", "--device", "cpu", "--out", str(tmp_path / name))
            assert code == 0 and "seed 5, on cpu, 1 thread" in o, e
            runs.append(W.read(tmp_path / name / C.WEIGHTS)[0])
            assert torch.get_num_threads() == before == 2  # the caller's count comes back
        assert train(tiny(), "synthetic:64", epochs=1, threads=1)["final"] and torch.get_num_threads() == before
    finally:
        torch.set_num_threads(caller)
    assert all(torch.equal(runs[0][k], runs[1][k]) for k in runs[0]) and runs[0].keys() == runs[1].keys()
    rec = json.load(open(tmp_path / "a" / "run.json"))["reproducibility"]
    assert rec == {"seed": 5, "device": "cpu", "threads": 1, "torch": torch.__version__}
    assert json.loads(W.read(tmp_path / "a" / C.CHECKPOINT)[1]["reproducibility"]) == rec
    with pytest.raises(CnnError, match="--threads must be a whole number of at least 1"):
        train(tiny(), "synthetic:64", epochs=1, threads=0)


def test_digits_is_sklearns_bundled_csv_read_without_importing_sklearn():
    from sklearn.datasets import load_digits
    from cnndsl.train.data import digits_arrays
    images, labels = digits_arrays()
    d = load_digits()
    assert images.dtype == d.images.dtype and np.array_equal(images, d.images)
    assert np.array_equal(labels, d.target) and labels.dtype == np.int64
    code = ("import sys, cnndsl; from cnndsl.train import data as D; "
            "D.load('digits', cnndsl.load('nets/lenet5.net').graph); "
            "sys.stderr.write(repr(sorted({'sklearn', 'scipy'} & set(sys.modules))))")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=_env())
    assert p.returncode == 0 and p.stderr.strip().endswith("[]"), p.stderr


def test_eval_and_init_warn_on_data_of_another_scale(capsys, tmp_path):
    """A net trained on 0..1 images, evaluated on the same images as 0..255: the checkpoint's normalisation
    would be applied to values 255 times too large. The warning names both ranges; the same scale: none."""
    rng = np.random.default_rng(0)
    y = np.arange(96) % 3
    x = (rng.random((96, 8, 8, 1)) * 0.5 + (y[:, None, None, None] == 1) * 0.5).astype(np.float32)
    np.savez(tmp_path / "unit.npz", x=x, y=y)
    np.savez(tmp_path / "bytes.npz", x=x * 255, y=y)
    spec = tmp_path / "tiny.net"
    spec.write_text(TINY)
    assert cli(capsys, "train", str(spec), "--data", str(tmp_path / "unit.npz"), "--epochs", "1",
               "--out", str(tmp_path / "run"))[0] == 0
    low, high = json.load(open(tmp_path / "run" / "run.json"))["data"]["range"]  # the training split's
    assert x.min() <= low < 0.05 and 0.95 < high <= x.max()
    weights = str(tmp_path / "run" / C.WEIGHTS)
    code, o, e = cli(capsys, "eval", str(spec), "--weights", weights, "--data", str(tmp_path / "bytes.npz"))
    said = re.search(r"cnndsl: warning: .*bytes.npz: the values span ([\d.]+)\.\.([\d.]+), ([\d.]+)x as wide as "
                     r"the ([\d.]+)\.\.([\d.]+) of its training data", e)
    assert code == 0 and said, e
    assert [float(v) for v in said.group(1, 2, 4, 5)] == pytest.approx([x.min() * 255, x.max() * 255, low, high],
                                                                       rel=1e-3, abs=1e-3)
    assert 240 < float(said.group(3)) < 270
    assert "the checkpoint's normalisation" in e
    code, o, e = cli(capsys, "eval", str(spec), "--weights", weights, "--data", str(tmp_path / "unit.npz"),
                     "--split", "all")
    assert code == 0 and "warning" not in e, e
    code, o, e = cli(capsys, "train", str(spec), "--data", str(tmp_path / "bytes.npz"), "--epochs", "1",
                     "--init", weights)
    assert code == 0 and re.search(r"cnndsl: warning: .*bytes.npz: the values span .*x as wide as the .* of "
                                   r".*weights.safetensors's training data", e), e
