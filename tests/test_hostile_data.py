"""Training data, checkpoints and options as a careless or hostile user gives them (issue 22, classes 4
and 5): each is refused with a clear error (exit 1 or 2, never 3, never a traceback) or converted
correctly and said in the log. Every test here failed before the fix (garbage trained, or an internal
error). Small nets and data: the file runs in a few seconds."""
import json
import os
import re
import shutil

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import save_file

import cnndsl
import cnndsl.weights as W
from cnndsl import CnnError
from cnndsl.cli import main
from cnndsl.train import checkpoint as C, data as D, evaluate, loop, optim, train

GRAY = "input 8x8x1\nCONV(4, 3) - BN - RELU - FC(2)\n"
RGB = GRAY.replace("8x8x1", "8x8x3")


def cli(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    assert "internal error" not in err and "Traceback" not in err, err
    return code, out, err


def graph(text=GRAY):
    return cnndsl.loads(text).graph


def write_folder(root, images: dict):
    """{class: [array or (array, suffix)]} -> root/class/i.suffix, written by Pillow."""
    for cls, arrays in images.items():
        os.makedirs(root / cls, exist_ok=True)
        for i, a in enumerate(arrays):
            a, suffix = a if isinstance(a, tuple) else (a, ".png")
            Image.fromarray(a).save(root / cls / f"{i}{suffix}")
    return root


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A spec, an image folder and a one-epoch run trained on it: what the eval and resume tests share."""
    base = tmp_path_factory.mktemp("hostile")
    rng = np.random.default_rng(0)
    write_folder(base / "imgs", {"a": [(rng.random((8, 8)) * 128).astype(np.uint8) for _ in range(10)],
                                 "b": [(rng.random((8, 8)) * 128 + 127).astype(np.uint8) for _ in range(10)]})
    (base / "gray.net").write_text(GRAY)
    (base / "rgb.net").write_text(RGB)
    assert main(["train", str(base / "gray.net"), "--data", str(base / "imgs"), "--epochs", "1",
                 "--out", str(base / "run")]) == 0
    return base


def copy_run(run, tmp_path):
    shutil.copytree(run / "run", tmp_path / "run")
    return tmp_path / "run"


def rewrite(path, drop=(), **meta):
    """Rewrite a safetensors file with metadata keys replaced (str values) or dropped."""
    with safe_open(str(path), "pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}
        old = dict(f.metadata())
    new = {k: v for k, v in {**old, **meta}.items() if k not in drop}
    save_file(tensors, str(path), metadata=new)
    return old


# ---- class 4: images of other depths are converted, not clipped ------------------------------------------
def test_16_bit_images_are_scaled_to_0_255_not_clipped(tmp_path):
    a = [np.full((8, 8), 1000 * (i + 1), np.uint16) for i in range(5)]
    b = [np.full((8, 8), 30000 + 1000 * i, np.uint16) for i in range(5)]
    d = D.load(write_folder(tmp_path / "deep", {"a": a, "b": b}), graph(), val_fraction=0)
    raw = np.stack([x[0, 0] for x in a + b]).astype(np.float64)
    got = np.asarray(d.x_train[:, 0, 0, 0], np.float64) * d.std[0] + d.mean[0]
    np.testing.assert_allclose(got, raw / 257, rtol=1e-5)  # 65535 -> 255; before: all 255, one white image
    assert "16-bit images: values 0..65535, scaled by 1/257 to 0..255" in d.description
    assert d.range == [pytest.approx(1000 / 257), pytest.approx(34000 / 257)]


@pytest.mark.parametrize("dtype, suffix, kind", [(np.float32, ".tif", "float"), (np.int32, ".tif", "32-bit integer")])
def test_float_and_32_bit_images_keep_their_values(tmp_path, dtype, suffix, kind):
    scale = 0.1 if dtype == np.float32 else 100000
    a = [(np.full((8, 8), scale * i, np.float64)).astype(dtype) for i in range(4)]
    b = [(np.full((8, 8), scale * (i + 5), np.float64)).astype(dtype) for i in range(4)]
    d = D.load(write_folder(tmp_path / "f", {"a": [(x, suffix) for x in a], "b": [(x, suffix) for x in b]}),
               graph(RGB), val_fraction=0)
    assert d.range == [0.0, pytest.approx(scale * 8)]  # before: converted to L, 0..1 floats became 0 or 1
    assert f"{kind} images: values kept as they are" in d.description
    assert d.x_train.shape == (8, 3, 8, 8)  # the one channel repeated for the RGB net


def test_a_folder_mixing_8_bit_and_float_images_is_refused(capsys, run, tmp_path):
    write_folder(tmp_path / "mix", {"a": [np.zeros((8, 8), np.uint8)] * 3,
                                    "b": [(np.ones((8, 8), np.float32), ".tif")] * 3})
    code, _, err = cli(capsys, "train", run / "gray.net", "--data", tmp_path / "mix", "--epochs", "1")
    assert code == 2 and "mixes 8-bit images" in err and "float images" in err and "no common scale" in err


# ---- class 4: NaN, inf, overflow, constants, labels -------------------------------------------------------
def npz(path, x, y=None):
    np.savez(path, x=x, y=np.arange(len(x)) % 2 if y is None else y)
    return path


def noise(n=40, shape=(8, 8, 1), seed=0):
    return np.random.default_rng(seed).normal(size=(n, *shape)).astype(np.float32)


@pytest.mark.parametrize("value, words", [(np.nan, "1 NaN value (first in sample 3 of 40)"),
                                          (np.inf, "1 inf value (first in sample 3 of 40)"),
                                          (-np.inf, "1 inf value")])
def test_nan_or_inf_values_are_refused_naming_the_sample(capsys, run, tmp_path, value, words):
    x = noise()
    x[3, 2, 2, 0] = value
    code, _, err = cli(capsys, "train", run / "gray.net", "--data", npz(tmp_path / "d.npz", x), "--epochs", "1",
                       "--out", tmp_path / "out")
    assert code == 2 and words in err and "NaN weights" in err
    assert not (tmp_path / "out" / "weights.safetensors").exists()


def test_a_nan_in_a_float_image_names_the_file(run, tmp_path):
    bad = np.zeros((8, 8), np.float32)
    bad[1, 1] = np.nan
    write_folder(tmp_path / "f", {"a": [(np.zeros((8, 8), np.float32), ".tif")] * 2,
                                  "b": [(np.ones((8, 8), np.float32), ".tif"), (bad, ".tif")]})
    with pytest.raises(CnnError, match=r"b/1\.tif: 1 NaN value"):
        D.load(tmp_path / "f", graph())


@pytest.mark.parametrize("x, words", [
    (noise().astype(np.float64) * np.where(np.arange(40) == 7, 1e300, 1)[:, None, None, None],
     "beyond float32's range"),
    (noise().astype(np.complex64), "real numbers"),
    (np.full((40, 8, 8, 1), 7.0, np.float32), "every value of the training split is 7"),
    (np.zeros((40, 8, 8, 1), bool), "every value of the training split is 0"),
])
def test_arrays_that_cannot_train_are_refused(run, tmp_path, x, words):
    with pytest.raises(CnnError, match=words) as e:
        D.load(npz(tmp_path / "d.npz", x), graph())
    assert e.value.usage


def test_a_constant_channel_is_said_and_other_dtypes_are_converted(tmp_path):
    x = (noise(shape=(8, 8, 3)) * 50 + 100).astype(np.uint16)
    x[..., 2] = 9
    d = D.load(npz(tmp_path / "d.npz", x), graph(RGB))
    assert "x: uint16 values read as float32, unchanged" in d.description
    assert any("channel 2 constant in the training split: divided by 1" in line for line in d.description)
    assert d.std[2] == 1.0 and np.isfinite(d.x_train).all()


def test_values_that_overflow_when_normalised_are_refused(tmp_path):
    x = np.zeros((40, 8, 8, 1), np.float32)
    x[0, 0, 0, 0] = 1.4e-45  # float32's least subnormal: a std above 0 (float64) that is 0 in float32
    with pytest.raises(CnnError, match="normalisation overflows to inf or NaN"):
        D.load(npz(tmp_path / "d.npz", x), graph())


@pytest.mark.parametrize("y, words", [(np.where(np.arange(40) == 5, np.nan, np.arange(40) % 2), "NaN or inf"),
                                      (np.ones((40, 2)), "one label per sample"),
                                      (np.arange(40) % 2 + 0j, "labels")])
def test_bad_labels_are_refused(tmp_path, y, words):
    with pytest.raises(CnnError, match=words):
        D.load(npz(tmp_path / "d.npz", noise(), y), graph())


def test_a_validation_fraction_that_leaves_nothing_to_train_on_is_refused(capsys, run, tmp_path):
    code, _, err = cli(capsys, "train", run / "gray.net", "--data", npz(tmp_path / "d.npz", noise(4)),
                       "--val", "0.9", "--epochs", "1")
    assert code == 2 and "leaves none of the 4 samples" in err


# ---- class 4: hyper-parameters that train NaN, and a loss that becomes NaN -------------------------------
@pytest.mark.parametrize("opts, words", [
    ({"lr": float("inf")}, "--lr must be a finite number above 0, not inf"),
    ({"lr": float("nan")}, "--lr must be a finite number above 0, not nan"),
    ({"lr": "0.1"}, "--lr must be a finite number above 0, not 0.1"),
    ({"weight_decay": float("inf")}, "--weight-decay must be a finite number"),
    ({"opt": "momentum", "momentum": float("nan")}, "--momentum must be in [0, 1)"),
    ({"label_smoothing": -0.5}, "--label-smoothing must be in [0, 1)"),
    ({"seed": -1}, "--seed must be a whole number in [0, 4294967295]"),
    ({"epochs": True}, "--epochs must be a whole number of at least 1, not True"),
])
def test_hyper_parameters_that_are_not_finite_are_refused(capsys, run, opts, words):
    """The command line refuses them as it parses (cnndsl.options); the library, called from Python,
    refuses them in train.options, the one place that checks the training options."""
    with pytest.raises(CnnError, match=re.escape(words)) as e:
        train(cnndsl.loads(GRAY), "synthetic:40", **{"epochs": 1, **opts})
    assert e.value.usage
    flag = "--" + next(iter(opts)).replace("_", "-")
    if isinstance(opts[next(iter(opts))], float):
        code, _, err = cli(capsys, "train", run / "gray.net", "--data", "synthetic:40", "--epochs", "1",
                           *[a for k, v in opts.items() for a in ("--" + k.replace("_", "-"), v)])
        assert code == 2 and f"argument {flag}" in err


def test_a_loss_that_becomes_nan_stops_the_run_and_keeps_the_last_good_checkpoint(monkeypatch, tmp_path):
    net = cnndsl.loads(GRAY)
    out = tmp_path / "run"
    train(net, "synthetic:96", epochs=1, batch=32, out=str(out))
    good = (out / C.CHECKPOINT).read_bytes(), (out / C.WEIGHTS).read_bytes()
    real = optim.optimizer

    def poisoned(params, o):  # the weights turn NaN after the 5th step: epoch 2 (3 steps an epoch), step 2
        opt = real(params, o)
        step, count = opt.step, [0]

        def stepped(*a, **k):
            r = step(*a, **k)
            count[0] += 1
            if count[0] == 2:  # counted from the resume: global step 5
                with torch.no_grad():
                    params[0].fill_(float("nan"))
            return r
        opt.step = stepped
        return opt
    monkeypatch.setattr(loop.optim, "optimizer", poisoned)
    with pytest.raises(CnnError) as e:
        train(net, "synthetic:96", epochs=3, out=str(out), resume=True)
    assert "training diverged: the loss became nan at epoch 2, step 3 of 3" in e.value.message
    assert "checkpoint.safetensors still holds epoch 1" in e.value.message and not e.value.usage
    assert ((out / C.CHECKPOINT).read_bytes(), (out / C.WEIGHTS).read_bytes()) == good


def test_a_huge_learning_rate_ends_in_a_clear_error_and_writes_no_nan(capsys, run, tmp_path):
    code, _, err = cli(capsys, "train", run / "gray.net", "--data", "synthetic:96", "--opt", "sgd", "--lr", "1e30",
                       "--epochs", "3", "--out", tmp_path / "run")
    assert code == 1 and "training diverged" in err
    if (tmp_path / "run" / C.WEIGHTS).exists():
        assert all(torch.isfinite(v).all() for v in W.load(tmp_path / "run" / C.WEIGHTS).values())


# ---- class 4: checkpoints of other dtypes -----------------------------------------------------------------
@pytest.mark.parametrize("change, words", [(lambda v: v.to(torch.int8), "holds int8 values, not floats"),
                                           (lambda v: v.bool(), "holds bool values, not floats"),
                                           (lambda v: v * float("nan"), "holds 36 NaN or inf values")])
def test_a_checkpoint_of_integers_bools_or_nan_is_refused(capsys, run, tmp_path, change, words):
    sd = W.load(run / "run" / C.WEIGHTS)
    sd["conv1.weight"] = change(sd["conv1.weight"])
    W.save(sd, tmp_path / "bad.safetensors")
    for args in (["eval", run / "gray.net", "--weights", tmp_path / "bad.safetensors", "--data", run / "imgs"],
                 ["train", run / "gray.net", "--data", run / "imgs", "--epochs", "1", "--init",
                  tmp_path / "bad.safetensors"]):
        code, _, err = cli(capsys, *args)
        assert code == 1 and f"conv1.weight {words}" in err
    sd["conv1.weight"] = torch.ones(4, 1, 3, 3, dtype=torch.float16)  # another float: converted
    sd["bn1.num_batches_tracked"] = torch.tensor(3)                    # BN's integer counter: an integer
    m = cnndsl.loads(GRAY).to_torch()
    assert W.load_into(m, sd)["loaded"] == 9
    assert m.conv1.weight.dtype == torch.float32 and (m.conv1.weight == 1).all() and m.bn1.num_batches_tracked == 3


# ---- class 4/5: eval -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("written", ["{}/", "./{}", "{}/../imgs", "link"])
def test_eval_knows_a_folder_however_it_is_written(capsys, run, monkeypatch, written):
    monkeypatch.chdir(run)
    if written == "link" and not os.path.exists("link"):
        os.symlink("imgs", "link")
    code, out, _ = cli(capsys, "eval", "gray.net", "--weights", "run/weights.safetensors", "--data",
                       written.format("imgs"))
    assert code == 0 and "per class (val split)" in out and re.search(r"accuracy: \S+ \(\d/4, ", out), out


@pytest.mark.parametrize("batch", ["-1", "0", "1.5"])
def test_eval_batch_below_one_is_a_usage_error(capsys, run, batch):
    code, _, err = cli(capsys, "eval", run / "gray.net", "--weights", run / "run" / C.WEIGHTS, "--data",
                       run / "imgs", "--batch", batch)
    assert code == 2 and "--batch" in err
    with pytest.raises(CnnError, match="--batch must be a whole number of at least 1"):
        evaluate(cnndsl.loads(GRAY), run / "run" / C.WEIGHTS, str(run / "imgs"), batch=-1)


def test_eval_of_a_run_without_a_validation_split_says_so(capsys, run, tmp_path):
    assert main(["train", str(run / "gray.net"), "--data", str(run / "imgs"), "--epochs", "1", "--val", "0",
                 "--out", str(tmp_path / "all")]) == 0
    capsys.readouterr()
    code, _, err = cli(capsys, "eval", run / "gray.net", "--weights", tmp_path / "all" / C.WEIGHTS, "--data", run / "imgs")
    assert code == 2 and "no validation split" in err and "--split train" in err


def test_eval_refuses_other_class_names_and_a_grown_folder(capsys, run, tmp_path):
    shutil.copytree(run / "imgs", tmp_path / "imgs")
    os.rename(tmp_path / "imgs" / "b", tmp_path / "imgs" / "c")
    code, _, err = cli(capsys, "eval", run / "gray.net", "--weights", run / "run" / C.WEIGHTS, "--data", tmp_path / "imgs")
    assert code == 2 and "classes (a, c) are not the ones the checkpoint was trained on (a, b)" in err
    run_copy = copy_run(run, tmp_path)
    rewrite(run_copy / C.WEIGHTS, data=json.dumps({**json.loads(rewrite(run_copy / C.WEIGHTS)["data"]), "samples": 19}))
    code, _, err = cli(capsys, "eval", run / "gray.net", "--weights", run_copy / C.WEIGHTS, "--data", run / "imgs")
    assert code == 2 and "holds 20 samples now, 19 when the checkpoint was trained" in err


# ---- class 5: files and folders ------------------------------------------------------------------------------
@pytest.mark.parametrize("content", [b"", b"PK\x03\x04", b"\x93NUMPY", "half"])
def test_an_empty_or_truncated_npz_is_a_clear_error(capsys, run, tmp_path, content):
    path = tmp_path / "d.npz"
    if content == "half":
        npz(path, noise())
        content = path.read_bytes()[:len(path.read_bytes()) // 2]
    path.write_bytes(content)
    code, _, err = cli(capsys, "train", run / "gray.net", "--data", path, "--epochs", "1")
    assert code == 2 and "not a readable .npz file" in err


def test_an_unreadable_class_folder_is_a_clear_error(capsys, run, tmp_path, monkeypatch):
    shutil.copytree(run / "imgs", tmp_path / "imgs")
    locked = str(tmp_path / "imgs" / "b")
    real = os.listdir

    def listdir(path="."):
        if os.fspath(path) == locked:
            raise PermissionError(13, "Permission denied", locked)
        return real(path)
    monkeypatch.setattr(D.os, "listdir", listdir)
    code, _, err = cli(capsys, "train", run / "gray.net", "--data", tmp_path / "imgs", "--epochs", "1")
    assert code == 2 and f"cannot read {locked}: Permission denied" in err


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root reads any folder")
def test_an_unreadable_class_folder_for_real(capsys, run, tmp_path):
    shutil.copytree(run / "imgs", tmp_path / "imgs")
    os.chmod(tmp_path / "imgs" / "b", 0)
    try:
        code, _, err = cli(capsys, "train", run / "gray.net", "--data", tmp_path / "imgs", "--epochs", "1")
    finally:
        os.chmod(tmp_path / "imgs" / "b", 0o755)
    assert code == 2 and "cannot read" in err and "Permission denied" in err


# ---- class 5: checkpoints whose metadata is malformed -----------------------------------------------------------
@pytest.mark.parametrize("key, value, words", [
    ("data", "{not json", "its metadata `data` is not JSON"),
    ("data", "[1, 2]", "`data` is malformed: not a table"),
    ("data", '{"source": "imgs", "classes": ["a", "b"], "mean": ["x"], "std": [1]}', "the normalisation"),
    ("data", '{"source": "imgs", "classes": ["a", "b"], "mean": [0], "std": [0]}', "stds above 0"),
    ("data", '{"source": "imgs", "classes": "ab", "mean": [0], "std": [1]}', "classes are not a list"),
    ("options", '{"seed": "zero"}', "--seed must be a whole number"),
    ("options", '{"val_fraction": 7}', "validation fraction must be in [0, 1)"),
    ("options", "[]", "records options that cannot be used"),
])
def test_eval_of_a_checkpoint_with_malformed_metadata_is_a_clear_error(capsys, run, tmp_path, key, value, words):
    ck = copy_run(run, tmp_path) / C.WEIGHTS
    rewrite(ck, **{key: value})
    code, _, err = cli(capsys, "eval", run / "gray.net", "--weights", ck, "--data", run / "imgs")
    assert code in (1, 2) and words in err and str(ck) in err


def test_a_normalisation_of_another_channel_count_is_refused(capsys, run, tmp_path):
    ck = copy_run(run, tmp_path) / C.WEIGHTS
    info = json.loads(rewrite(ck)["data"])
    rewrite(ck, data=json.dumps({**info, "mean": info["mean"] * 3, "std": info["std"] * 3}))
    code, _, err = cli(capsys, "eval", run / "gray.net", "--weights", ck, "--data", run / "imgs")
    assert code == 2 and "has 3 means and 3 stds, but the network's input has 1 channel" in err


@pytest.mark.parametrize("key, value, words", [
    ("cnndsl.train", "{", "training state (`cnndsl.train`) is malformed"),
    ("cnndsl.train", '{"__tensor__": "train/nothing"}', "training state (`cnndsl.train`) is malformed"),
    ("cnndsl.train", '{"epoch": 1}', "training state (`cnndsl.train`) is malformed (KeyError"),
    ("cnndsl.train", '[1]', "it needs an epoch, the optimizer's state"),
    ("options", '{"lr": "fast"}', "--lr must be a finite number above 0, not fast"),
    ("layers", '[["x"]]', "`layers` is malformed"),
    ("input", "8x8x3", "input: 8x8x3 there, 8x8x1 here"),
])
def test_resume_from_a_malformed_checkpoint_is_a_clear_error(capsys, run, tmp_path, key, value, words):
    out = copy_run(run, tmp_path)
    rewrite(out / C.CHECKPOINT, **{key: value, "spec_sha256": "0" * 64})
    code, _, err = cli(capsys, "train", run / "gray.net", "--data", run / "imgs", "--epochs", "2", "--out", out,
                       "--resume")
    assert code in (1, 2) and words in err


def test_resume_onto_a_weights_file_is_refused(capsys, run, tmp_path):
    out = copy_run(run, tmp_path)
    shutil.copy(out / C.WEIGHTS, out / C.CHECKPOINT)
    code, _, err = cli(capsys, "train", run / "gray.net", "--data", run / "imgs", "--epochs", "2", "--out", out, "--resume")
    assert code == 2 and "holds weights but no training state" in err and "--init" in err
    code, _, err = cli(capsys, "train", run / "gray.net", "--data", run / "imgs", "--epochs", "2",
                       "--out", out / C.WEIGHTS, "--resume")
    assert code == 2 and "is a file, not a" in err


def test_resume_into_a_spec_that_differs_only_in_input_channels_is_refused(capsys, run, tmp_path):
    out = copy_run(run, tmp_path)
    code, _, err = cli(capsys, "train", run / "rgb.net", "--data", run / "imgs", "--epochs", "2", "--out", out, "--resume")
    assert code == 2 and "input: 8x8x1 there, 8x8x3 here" in err
    code, _, err = cli(capsys, "train", run / "gray.net", "--data", run / "imgs", "--epochs", "2", "--out", out,
                       "--resume", "--input", "8x8x3")
    assert code == 2 and "input: 8x8x1 there, 8x8x3 here" in err


# ---- class 5: a spec file name that is not UTF-8 ---------------------------------------------------------------
@pytest.mark.skipif(os.name == "nt", reason="file names are UTF-16 there")
@pytest.mark.parametrize("command", [["compile", "-o", "{d}/x.py"], ["draw", "-o", "{d}/x.svg"],
                                     ["export", "-o", "{d}/x.onnx"], ["report"], ["check"],
                                     ["check", "--format", "json"]])
def test_a_spec_file_name_that_is_not_utf8(capsys, tmp_path, command):
    spec = os.path.join(os.fsencode(tmp_path), b"caf\xe9.net")
    with open(spec, "w") as f:
        f.write(GRAY)
    name = os.fsdecode(spec)
    code, out, err = cli(capsys, command[0], name, *[a.format(d=tmp_path) for a in command[1:]])
    assert code == 0, err
    if command[0] == "compile":
        assert "caf\\xe9.net" in (tmp_path / "x.py").read_text()
    if command[0] == "check":
        assert "caf\\xe9.net" in (json.loads(out)["files"][0]["file"] if "--format" in command else out)
    with open(spec, "w") as f:
        f.write(GRAY.replace("RELU", "RELUX"))
    code, out, err = cli(capsys, "report", name)
    assert code == 1 and "caf\\xe9.net:2:" in err
