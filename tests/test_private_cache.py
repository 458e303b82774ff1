"""The parser's table cache is the user's own: never a shared folder, never a file someone else could
have written (lark unpickles it), and the garbage collector survives threads that parse at once."""
import gc
import os
import subprocess
import sys
import tempfile
import threading

import cnndsl
from cnndsl.lang import syntax

ROOT = os.path.join(os.path.dirname(__file__), "..")


def cache_in(monkeypatch, base):
    monkeypatch.setenv("XDG_CACHE_HOME", str(base))
    return syntax._cache_path()


def test_cache_lives_in_the_users_folder(tmp_path, monkeypatch):
    path = cache_in(monkeypatch, tmp_path)
    assert path and os.path.dirname(path) == str(tmp_path / "cnndsl")
    assert not os.path.realpath(path).startswith(os.path.realpath(tempfile.gettempdir()) + os.sep) \
        or str(tmp_path).startswith(tempfile.gettempdir())  # pytest's tmp_path is under /tmp itself
    assert os.stat(tmp_path / "cnndsl").st_mode & 0o777 == 0o700


def test_a_folder_others_can_write_is_not_used(tmp_path, monkeypatch):
    (tmp_path / "cnndsl").mkdir(mode=0o777)
    os.chmod(tmp_path / "cnndsl", 0o777)
    assert cache_in(monkeypatch, tmp_path) is False


def test_a_planted_or_linked_file_is_not_loaded(tmp_path, monkeypatch):
    path = cache_in(monkeypatch, tmp_path)
    with open(path, "wb") as f:
        f.write(b"planted")
    os.chmod(path, 0o666)  # writable by anyone: someone else may have written it
    assert cache_in(monkeypatch, tmp_path) is False
    os.unlink(path)
    os.symlink(tmp_path / "elsewhere.pickle", path)
    assert cache_in(monkeypatch, tmp_path) is False


def test_report_opens_nothing_in_the_temporary_folder():
    """The planted-pickle attack: the system's temporary folder is never read, nor written, by a report."""
    code = ("import sys, os, tempfile\n"
            "tmp = os.path.realpath(tempfile.gettempdir())\n"
            "seen = []\n"
            "sys.addaudithook(lambda ev, a: seen.append(a[0]) if ev == 'open' and isinstance(a[0], str)"
            " and os.path.realpath(a[0]).startswith(tmp + os.sep) else None)\n"
            "from cnndsl.cli import main\n"
            "main(['report', 'nets/lenet5.net'])\n"
            "own = (os.path.realpath(sys.prefix), os.path.realpath(sys.argv[1]))\n"
            "print('OPENED', [f for f in seen if not os.path.realpath(f).startswith(own)])\n")
    env = dict(os.environ, PYTHONPATH=os.path.abspath(ROOT))
    env.pop("TMPDIR", None)
    # the project's own files may lie under the temporary folder (a clone there): they are not a cache
    p = subprocess.run([sys.executable, "-c", code, os.path.abspath(ROOT)], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=120)
    assert p.stdout.strip().splitlines()[-1] == "OPENED []", p.stdout[-500:] + p.stderr[-500:]


def test_threads_leave_the_collector_on():
    prog = cnndsl.parse("input 8x8x3\n(CONV(4, 3, p=1) - RELU)*3 - GAP - FC(2)\n")
    assert gc.isenabled()
    errors = []

    def work():
        try:
            for _ in range(300):
                prog.bind()
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)
    threads = [threading.Thread(target=work) for _ in range(8)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads often, so that their pauses overlap in every way
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(interval)
    assert not errors and gc.isenabled()
