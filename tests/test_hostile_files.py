"""Files that are not files, and sizes declared then allocated (issue 22, classes 2 and 3).

Every path a user gives is opened by cnndsl.files (a FIFO, a device, a socket or a folder is refused
before a byte is read), and every declared size is checked by cnndsl.memory before it is allocated
(a PNG header's pixels, an .npy/.npz header's array, synthetic:N, a network's parameters). The CLI
cases run in one subprocess (one import of torch), under an address-space cap of its size after the
imports plus 3 GiB, each under a 20 s alarm, the whole under a timeout: a hang or a read of /dev/zero
fails the case, never the machine.

    pytest tests/test_hostile_files.py      # ~10 s
"""
from __future__ import annotations

import ast
import io
import json
import os
import socket
import subprocess
import sys
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest

import cnndsl
import cnndsl.weights
from cnndsl import CnnError, memory

ROOT = Path(__file__).resolve().parent.parent
CASE_SECONDS = 20
NET = "input 8x8x1\nCONV(4, 3) - RELU - FC(2)\n"
HUGE = "input 8x8x3\nCONV(1000000000, 3) - GAP - FC(2)\n"  # legal: 3e10 parameters, 112 GiB as fp32

pytestmark = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs and sockets are POSIX")


# ---- hostile files ------------------------------------------------------------------------------------
def png(width: int, height: int) -> bytes:
    """A PNG whose header declares width x height 8-bit gray pixels, with no pixel data: a bomb's header."""
    def chunk(kind, data):
        return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")
    ihdr = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 0, 0, 0, 0])
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def npy_header(shape, dtype="uint8") -> bytes:
    """The header of an .npy array of `shape`, without its data."""
    out = io.BytesIO()
    np.lib.format.write_array_header_1_0(out, {"descr": np.dtype(dtype).str, "fortran_order": False,
                                               "shape": tuple(shape)})
    return out.getvalue()


def npz_bomb(path, shape, dtype="uint8"):
    """An .npz of a few hundred bytes whose `x` header declares `shape` (numpy would allocate it first)."""
    y = io.BytesIO()
    np.save(y, np.arange(2) % 2)
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("x.npy", npy_header(shape, dtype))
        z.writestr("y.npy", y.getvalue())
    return path


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    """A folder of hostile files, and a good spec, model, image folder and run beside them."""
    d = tmp_path_factory.mktemp("hostile")
    for name in ("fifo", "fifo.npz", "fifo.npy", "fifo.png", "fifo.json", "fifo.safetensors"):
        os.mkfifo(d / name)
    (d / "folder").mkdir()
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(d / "sock"))
    (d / "t.net").write_text(NET)
    (d / "huge.net").write_text(HUGE)
    cnndsl.loads(NET).to_onnx(d / "m.onnx")
    from PIL import Image
    for cls, n in (("a", 2), ("b", 2)):
        (d / "imgs" / cls).mkdir(parents=True)
        for i in range(n):
            Image.new("L", (8, 8), 40 * i).save(d / "imgs" / cls / f"{i}.png")
    for name, inside in (("fifo_imgs", "fifo"), ("folder_imgs", "folder"), ("bomb_imgs", "bomb")):
        for cls in ("a", "b"):
            (d / name / cls).mkdir(parents=True)
            Image.new("L", (8, 8)).save(d / name / cls / "0.png")
        odd = d / name / "b" / "odd.png"
        os.mkfifo(odd) if inside == "fifo" else odd.mkdir() if inside == "folder" else odd.write_bytes(png(10**5, 10**5))
    (d / "bomb.png").write_bytes(png(10**5, 10**5))      # 10^10 pixels: Pillow raises at 2x its bound
    (d / "bomb1x.png").write_bytes(png(10_000, 10_000))  # 10^8: over 1x (Pillow would only warn)
    npz_bomb(d / "bomb.npz", (100_000_000, 32, 32, 3))    # the issue's: 100M images declared, 300 bytes
    (d / "bomb.npy").write_bytes(npy_header((100_000_000, 1, 8, 8), "float32"))
    cnndsl.weights.save(cnndsl.loads(NET).to_torch(seed=0), d / "w.safetensors", meta={})
    from cnndsl.backends import onnx_graph
    large, onnx_graph.LARGE_MODEL = onnx_graph.LARGE_MODEL, 1000  # its weights in ext/m.onnx.data
    try:
        cnndsl.loads(NET).to_onnx(d / "ext" / "m.onnx")
    finally:
        onnx_graph.LARGE_MODEL = large
    (d / "ext" / "m.onnx.data").unlink()
    os.mkfifo(d / "ext" / "m.onnx.data")  # onnxruntime would wait on it for a writer
    (d / "run").mkdir()
    os.mkfifo(d / "run" / "checkpoint.safetensors")
    yield d
    sock.close()


def cases(d):
    """(argv, exit statuses allowed, a phrase the error must hold)."""
    t, m = str(d / "t.net"), str(d / "m.onnx")
    train = ["train", t, "--epochs", "1", "--batch", "2"]
    return [
        # class 2: files that are not files, each refused before a read
        (["export", t, "-o", str(d / "o.onnx"), "--weights", str(d / "fifo")], (2,), "FIFO"),
        (["export", t, "-o", str(d / "o.onnx"), "--weights", "/dev/zero"], (2,), "device"),
        (["export", t, "-o", str(d / "o.onnx"), "--weights", str(d / "folder")], (2,), "folder"),
        (["export", t, "-o", str(d / "o.onnx"), "--weights", str(d / "sock")], (2,), "socket"),
        (["export", t, "-o", str(d / "o.onnx"), "--weights", str(d / "fifo.safetensors")], (2,), "FIFO"),
        (["export", t, "-o", str(d / "o.onnx"), "--weights-map", str(d / "fifo.json")], (2,), "--weights-map"),
        (["export", t, "-o", str(d / "o.onnx"), "--weights-map", "/dev/zero"], (2,), "device"),
        ([*train, "--data", "synthetic:64", "--init", str(d / "fifo")], (2,), "--init"),
        ([*train, "--data", "synthetic:64", "--init", "/dev/zero"], (2,), "device"),
        ([*train, "--data", "synthetic:64", "--out", str(d / "run"), "--resume"], (2,), "--resume checkpoint"),
        ([*train, "--data", str(d / "fifo.npz")], (2,), "FIFO"),
        ([*train, "--data", str(d / "fifo_imgs")], (2,), "FIFO"),
        ([*train, "--data", str(d / "folder_imgs")], (2,), "folder"),
        (["eval", t, "--weights", str(d / "fifo"), "--data", "synthetic:64"], (2,), "--weights"),
        (["eval", t, "--weights", str(d / "fifo.safetensors"), "--data", "synthetic:64"], (2,), "--weights"),
        (["run", str(d / "fifo")], (2,), "FIFO"),
        (["run", "/dev/zero"], (2,), "device"),
        (["run", str(d / "folder")], (2,), "folder"),
        (["run", str(d / "ext" / "m.onnx")], (2,), "FIFO"),
        (["run", m, "--input", str(d / "fifo.npy")], (2,), "--input"),
        (["run", m, "--input", str(d / "fifo.png")], (2,), "--input"),
        (["run", m, "--input", str(d / "sock")], (2,), "socket"),
        (["report", str(d / "fifo")], (2,), "FIFO"),
        (["match", str(d / "fifo"), t], (2,), "FIFO"),
        (["match", t, "/dev/zero"], (2,), "device"),
        # class 3: sizes declared, then allocated: each refused from its header, before the allocation
        ([*train, "--data", str(d / "bomb_imgs")], (2,), "pixels"),
        (["run", m, "--input", str(d / "bomb.png")], (2,), "10,000,000,000 pixels"),
        (["run", m, "--input", str(d / "bomb1x.png")], (2,), "100,000,000 pixels"),
        ([*train, "--data", str(d / "bomb.npz")], (2,), "100000000x32x32x3"),
        (["run", m, "--input", str(d / "bomb.npy")], (2,), "100000000x1x8x8"),
        ([*train, "--data", "synthetic:" + "1" + "0" * 20], (2,), "would need"),
        (["export", str(d / "huge.net"), "-o", str(d / "h.onnx")], (1,), "would need"),
        (["run", str(d / "huge.net")], (1,), "would need"),
        (["train", str(d / "huge.net"), "--data", "synthetic:64", "--epochs", "1"], (1,), "would need"),
        (["eval", str(d / "huge.net"), "--weights", str(d / "m.onnx"), "--data", "synthetic:64"], (1,), "would need"),
        # and what is fine still works
        (["run", m, "--repeat", "1"], (0,), "latency"),
        (["eval", t, "--weights", str(d / "w.safetensors"), "--data", str(d / "imgs")], (0,), "accuracy"),
    ]


WORKER = r"""
import contextlib, io, json, os, resource, signal, sys, time
sys.path[:0] = [ROOT]
os.environ["OMP_NUM_THREADS"] = "1"
import torch, onnxruntime, PIL.Image, safetensors.torch
from cnndsl.cli import main
status = open("/proc/self/status").read()
vm = int(status.split("VmSize:")[1].split()[0]) * 1024
resource.setrlimit(resource.RLIMIT_AS, (vm + 3 * 2**30, vm + 3 * 2**30))

class Hang(Exception):
    pass

def fire(*_):
    raise Hang()

signal.signal(signal.SIGALRM, fire)
for i, argv in enumerate(json.loads(sys.argv[1])):
    out, err = io.StringIO(), io.StringIO()
    t = time.perf_counter()
    signal.setitimer(signal.ITIMER_REAL, SECONDS)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = main(argv)
    except Hang:
        rc = "hung"
    except BaseException as e:
        rc = f"raised {type(e).__name__}: {e}"
    signal.setitimer(signal.ITIMER_REAL, 0)
    print(json.dumps({"i": i, "rc": rc, "text": (out.getvalue() + err.getvalue())[-1500:],
                      "s": round(time.perf_counter() - t, 2)}), flush=True)
"""


def run_cases(argvs, timeout):
    """{index: result} of running each argv through cnndsl.cli.main in one capped subprocess; the
    cases after one that hung past every guard have no result."""
    code = WORKER.replace("ROOT", repr(str(ROOT))).replace("SECONDS", str(CASE_SECONDS))
    try:
        p = subprocess.run([sys.executable, "-c", code, json.dumps(argvs)], capture_output=True, text=True,
                           timeout=timeout, cwd=ROOT)
        stdout = p.stdout
    except subprocess.TimeoutExpired as e:
        stdout = (e.stdout or b"").decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
    results = {}
    for line in stdout.splitlines():
        if line.startswith('{"i"'):
            r = json.loads(line)
            results[r["i"]] = r
    return results


@pytest.mark.skipif(not os.environ.get("CNNDSL_SLOW"), reason="every option in a fresh interpreter (about 10 s of CPU): "
                    "CNNDSL_SLOW=1 runs it; the API tests below refuse the same files in-process")
def test_every_option_refuses_hostile_files_in_bounded_time(hostile):
    table = cases(hostile)
    results = run_cases([argv for argv, _, _ in table], timeout=240)
    failed = []
    for i, (argv, codes, says) in enumerate(table):
        r = results.get(i)
        if r is None:
            failed.append(f"{' '.join(argv[:2])} ... {' '.join(argv[-2:])}: no result (hung past the alarm)")
        elif r["rc"] not in codes or says not in r["text"] or "internal error" in r["text"]:
            failed.append(f"{' '.join(argv[:2])} ... {' '.join(argv[-2:])}: exit {r['rc']} in {r['s']} s, "
                          f"wanted {codes} and {says!r}:\n{r['text'][-600:]}")
    assert not failed, f"{len(failed)} of {len(table)} cases:\n" + "\n".join(failed)


# ---- the API: the same refusals, in-process ---------------------------------------------------------------
def small_machine(monkeypatch, nbytes=2**20):
    monkeypatch.setattr(memory, "available", lambda: (nbytes, "this machine has {} available"))


def test_require_says_what_it_would_need_and_what_there_is(monkeypatch):
    small_machine(monkeypatch, 3 * 2**30)
    memory.require(2 * 2**30, "two GiB")  # fits
    with pytest.raises(CnnError) as e:
        memory.require(5 * 2**30 + 2**29, "X", hint="use less")
    assert (e.value.message, e.value.hint, e.value.code, e.value.usage) == \
        ("X would need 5.5 GiB; this machine has 3 GiB available", "use less", "E402", True)


def test_available_is_the_least_of_the_limits(monkeypatch):
    have, said = memory.available()
    assert 0 < have and "{}" in said
    monkeypatch.setattr(memory, "_meminfo", lambda: (8 * 2**30, "this machine has {} available"))
    monkeypatch.setattr(memory, "_cgroup", lambda: (2 * 2**30, "this container's memory limit leaves {}"))
    monkeypatch.setattr(memory, "_address_space", lambda: None)
    assert memory.available() == (2 * 2**30, "this container's memory limit leaves {}")


def test_size_text():
    assert [memory.size_text(n) for n in (512, 1536, 3 * 2**30, 10**21, 10**26)] == \
        ["512 bytes", "1.5 KiB", "3 GiB", "867 EiB", "86,736,174 EiB"]


def test_a_network_too_large_is_refused_before_any_tensor_and_points_at_its_layer():
    net = cnndsl.loads(HUGE)
    assert net.to_torch(device="meta") is not None  # shapes only: no memory, no refusal
    with pytest.raises(CnnError) as e:
        net.to_torch()
    assert e.value.code == "E402" and "would need 112 GiB" in e.value.message and e.value.span.line == 2
    assert "`conv1` holds the most" in e.value.hint


def test_training_memory_is_the_reports_estimate(monkeypatch):
    from cnndsl.analysis.analyze import analyze
    from cnndsl.train.loop import require_training
    net = cnndsl.loads("input 32x32x3\nCONV(64, 3, p=1) - RELU - CONV(64, 3, p=1) - GAP - FC(10)")
    need = analyze(net.graph, batch=256, optimizer="adam")["train_bytes"]
    small_machine(monkeypatch, need - 1)
    with pytest.raises(CnnError, match="training this network") as e:
        require_training(net.graph, 256, "adamw")
    assert memory.size_text(need) in e.value.message
    small_machine(monkeypatch, need)
    require_training(net.graph, 256, "adamw")


def test_data_that_cannot_fit_is_refused_before_it_is_read(tmp_path, monkeypatch):
    from cnndsl.train import data as D
    graph = cnndsl.loads("input 8x8x1\nCONV(4, 3) - FC(2)").graph
    np.savez(tmp_path / "d.npz", x=np.zeros((4096, 8, 8), np.uint8), y=np.arange(4096) % 2)
    small_machine(monkeypatch, 2**20)  # 4096 x 8x8 float32 is 1 MiB: three copies do not fit
    for source in (str(tmp_path / "d.npz"), "synthetic:4096"):
        with pytest.raises(CnnError, match="4,096 samples of 8x8.* would need 3 MiB") as e:
            D.load(source, graph)
        assert e.value.code == "E402"


def test_an_npz_header_that_lies_is_refused(tmp_path):
    from cnndsl.train import data as D
    graph = cnndsl.loads("input 8x8x1\nCONV(4, 3) - FC(2)").graph
    path = npz_bomb(tmp_path / "b.npz", (100_000_000, 8, 8))
    assert path.stat().st_size < 700
    with pytest.raises(CnnError, match=r"declares 100000000x8x8 uint8 \(5.96 GiB\), but the file holds 0 bytes"):
        D.load(str(path), graph)
    bad = tmp_path / "obj.npz"
    np.savez(bad, x=np.array([{}, {}], dtype=object), y=np.arange(2))
    with pytest.raises(CnnError, match="Python objects"):
        D.load(str(bad), graph)


def test_a_checkpoint_that_cannot_fit_is_refused_before_it_is_read(tmp_path, monkeypatch):
    import torch
    from cnndsl import weights as W
    W.save({"a": torch.zeros(300_000)}, tmp_path / "w.safetensors", meta={})
    torch.save({"a": torch.zeros(300_000)}, tmp_path / "w.pt")
    small_machine(monkeypatch, 2**20)
    for name in ("w.safetensors", "w.pt"):
        with pytest.raises(CnnError, match="checkpoint .* would need 1.1[45] MiB") as e:
            W.read(tmp_path / name)
        assert e.value.code == "E402"


def test_safetensors_are_read_into_memory_once(tmp_path):
    import torch
    from cnndsl import weights as W
    t = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    W.save({"a": t}, tmp_path / "w.safetensors", meta={"k": "v"})
    sd, meta = W.read(tmp_path / "w.safetensors")
    assert torch.equal(sd["a"], t) and meta["k"] == "v"
    (tmp_path / "w.safetensors").unlink()  # the tensors are the process's own memory, not a mapping
    assert torch.equal(sd["a"] * 1, t)


def test_outputs_get_the_umask_without_it_being_changed_under_threads(tmp_path):
    """atomic_files gives its outputs mode 0666 minus the umask. Reading the umask by setting it to 0 and
    back let a file another thread created in between be world-writable (most of 20,000, measured):
    writers in threads beside file creation now leave every mode as the umask says."""
    import threading
    from cnndsl import files
    if not (os.path.exists("/proc/self/status") and b"Umask:" in Path("/proc/self/status").read_bytes()):
        pytest.skip("no Umask line in /proc/self/status: the umask is read once, at import")
    old = os.umask(0o027)
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible: the old read raced at once
    stop, modes, seen = threading.Event(), [], set()

    def writer(i):  # the umask as atomic_files reads it for each output, and now and then an output
        n = 0
        while not stop.is_set():
            seen.add(files._umask())
            if n % 256 == 0:
                files.atomic_write(str(tmp_path / f"w{i}-{n // 256 % 4}"), b"x")
            n += 1
    threads = [threading.Thread(target=writer, args=(i,)) for i in range(2)]
    try:
        for t in threads:
            t.start()
        for i in range(1000):
            path = tmp_path / f"c{i}"
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o666))
            modes.append(os.stat(path).st_mode & 0o777)
    finally:
        stop.set()
        for t in threads:
            t.join()
        sys.setswitchinterval(interval)
        os.umask(old)
    assert set(modes) == {0o640} and seen == {0o027}
    assert {os.stat(tmp_path / f"w{i}-0").st_mode & 0o777 for i in range(2)} == {0o640}


def test_a_streamed_export_checks_the_disk(tmp_path, monkeypatch):
    import shutil
    from collections import namedtuple
    from cnndsl.backends import onnx_graph
    monkeypatch.setattr(onnx_graph, "LARGE_MODEL", 1000)  # stream this small net's weights
    monkeypatch.setattr(shutil, "disk_usage", lambda _: namedtuple("u", "total used free")(10**6, 10**6, 100))
    with pytest.raises(CnnError, match="would take .*; the disk of .* has 100 bytes free"):
        cnndsl.loads("input 8x8x3\nCONV(64, 3) - GAP - FC(10)").to_onnx(tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()


# ---- one opener: no other `open` of a path the user gives --------------------------------------------------
OPENERS = {"open", "load_model", "safe_open", "load_file", "InferenceSession", "ZipFile", "fromfile", "loadtxt",
           "fdopen", "memmap", "read_bytes", "read_text"}
LOADERS = {"np", "numpy", "torch", "onnx", "pickle", "json"}  # their `load` reads a file (cnndsl's own do not)
WHOLE_FILES = {  # modules whose every open is of a file that is not the user's path, or is the opener itself
    "cnndsl/files.py": "the opener itself",
    "cnndsl/memory.py": "the kernel's files (/proc, /sys)",
    "cnndsl/lang/syntax.py": "the grammar in the package, and the parser table's cache",
}
REVIEWED = {  # (module, function, callee): why it is not an unchecked user path
    ("cnndsl/backends/pytorch_source/__init__.py", "_own_module_sources", "open"): "torch_modules.py, in the package",
    ("cnndsl/kinds/__init__.py", "torch_sources", "open"): "the kinds' own files (module.__file__), in the package",
    ("cnndsl/backends/onnx_graph.py", "runtime_max_opset", "InferenceSession"): "bytes built here",
    ("cnndsl/runtime/onnx_run.py", "open_session", "InferenceSession"): "a path _load_model checked (user_file)",
    ("cnndsl/runtime/onnx_run.py", "_diagnose", "load"): "a file opened by user_file",
    ("cnndsl/runtime/onnx_run.py", "_read_npy", "load"): "a file opened by user_file, its header checked",
    ("cnndsl/inspection/subject.py", "_array", "load"): "a file opened by user_file, its header checked",
    ("cnndsl/importers/__init__.py", "run", "InferenceSession"): "the model the import read through user_file",
    ("cnndsl/importers/__init__.py", "run", "load"): "the model the import read through user_file",
    ("cnndsl/importers/prototxt.py", "_parser", "open"): "grammars/prototxt.lark, in the package",
    ("cnndsl/kinds/__init__.py", "torch_sources", "open"): "the kinds' own files, in the package",
    ("cnndsl/train/data.py", "digits_arrays", "open"): "scikit-learn's bundled digits.csv.gz",
    ("cnndsl/train/data.py", "digits_arrays", "loadtxt"): "scikit-learn's bundled digits.csv.gz",
    ("cnndsl/train/data.py", "_npz", "load"): "a file opened by user_file, its headers checked",
    ("cnndsl/train/data.py", "_require_npz", "ZipFile"): "a file opened by user_file",
    ("cnndsl/train/data.py", "_require_npz", "open"): "a member of that zip",
    ("cnndsl/weights.py", "read", "load"): "torch.load of a file opened by user_file, its size checked",
    ("cnndsl/weights.py", "_read_safetensors", "safe_open"): "the descriptor of a file opened by user_file",
    ("cnndsl/weights.py", "_declared_pt", "ZipFile"): "a file opened by user_file",
    ("cnndsl/serve/live.py", "_onnx", "open"): "the model it has just exported into its own temporary folder",
    ("cnndsl/serve/app.py", "_page", "open"): "the page in the package",
    ("cnndsl/serve/app.py", "_static", "open"): "a file of the package, by a name in STATIC_FILES",
    ("cnndsl/cli/serve.py", "cmd_serve", "open"): "webbrowser.open of the server's URL",
    ("cnndsl/outputs.py", "is_member_file", "open"): "an output's first bytes: O_NONBLOCK, fstat, a bounded read",
    ("cnndsl/outputs.py", "folder_lock", "open"): "the run folder's lock file, O_NOFOLLOW, for writing",
}


def opener_calls():
    """(module, innermost enclosing function, callee) of every call of an opener's name in cnndsl/."""
    found = []

    class Calls(ast.NodeVisitor):
        def __init__(self, rel):
            self.rel, self.fn = rel, "<module>"

        def visit_FunctionDef(self, node):
            outer, self.fn = self.fn, node.name
            self.generic_visit(node)
            self.fn = outer

        visit_AsyncFunctionDef = visit_FunctionDef

        def visit_Call(self, node):
            f = node.func
            name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", None)
            owner = f.value.id if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) else None
            if name in OPENERS or name == "load" and owner in LOADERS:
                found.append((self.rel, self.fn, name))
            self.generic_visit(node)

    for path in sorted((ROOT / "cnndsl").rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        Calls(rel).visit(ast.parse(path.read_text(encoding="utf-8")))
    return found


def test_no_other_open_of_a_user_path():
    calls = opener_calls()
    unreviewed = sorted({c for c in calls if c[0] not in WHOLE_FILES and c not in REVIEWED})
    assert not unreviewed, ("calls that may open a path the user gave without cnndsl.files (open it with "
                            f"files.user_file / read_user_bytes / user_image, or review it into REVIEWED): {unreviewed}")
    stale = sorted(set(REVIEWED) - set(calls))
    assert not stale, f"REVIEWED entries that no longer exist: {stale}"
