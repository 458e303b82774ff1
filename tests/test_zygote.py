"""tests/zygote.py: a forked command behaves as the process it stands for (exit status, output, cwd,
environment, signals, fresh random numbers), so that the tests that fork commands check what they say."""
import os
import signal
import sys
import time

from zygote import forkable


def run(zygote, tmp_path, argv, **kw):
    return zygote.run(argv, tmp_path, tmp_path / "out.txt", **kw)


def test_exit_status_and_output_as_the_interpreter_gives_them(zygote, tmp_path):
    py = sys.executable
    assert run(zygote, tmp_path, [py, "-c", "print('out'); import sys; print('err', file=sys.stderr); print('out2')"]) \
        == (0, "out\nerr\nout2\n")  # one file, in the order written (unbuffered, as on a terminal)
    assert run(zygote, tmp_path, [py, "-c", "import sys; sys.exit(3)"]) == (3, "")
    assert run(zygote, tmp_path, [py, "-c", "import sys; sys.exit('no')"]) == (1, "no\n")
    code, out = run(zygote, tmp_path, [py, "-c", "raise ValueError('boom')"])
    assert code == 1 and "Traceback" in out and "ValueError: boom" in out
    code, out = run(zygote, tmp_path, ["cnndsl", "report", "missing.net"])
    assert code == 2 and "cnndsl: error: cannot read missing.net" in out


def test_cwd_argv_and_environment_are_the_commands_own(zygote, tmp_path):
    script = tmp_path / "show.py"
    script.write_text("import os, sys; print(os.getcwd(), sys.argv[1:], os.environ['X'], os.environ['OMP_NUM_THREADS'])")
    (tmp_path / "sub").mkdir()
    code, out = zygote.run([sys.executable, str(script), "a", "b"], tmp_path / "sub", tmp_path / "o.txt", env={"X": "1"})
    assert (code, out) == (0, f"{tmp_path / 'sub'} ['a', 'b'] 1 1\n")
    assert "X" not in os.environ  # the child's environment, not this process's
    code, out = run(zygote, tmp_path, [sys.executable, "-c", "import os; print(os.environ.get('X'))"])
    assert out == "None\n"  # nor the next child's


def test_sigkill_kills_the_child_alone_and_random_numbers_are_fresh(zygote, tmp_path):
    pid = zygote.start([sys.executable, "-c", "import time; time.sleep(60)"], tmp_path, tmp_path / "s.txt")
    assert zygote.alive(pid)
    os.kill(pid, signal.SIGKILL)
    assert zygote.wait(pid) == -signal.SIGKILL and not zygote.alive(pid)
    draw = "import numpy, torch, random; print(numpy.random.rand(), torch.rand(1).item(), random.random())"
    outs = {run(zygote, tmp_path, [sys.executable, "-c", draw])[1] for _ in range(3)}
    assert len(outs) == 3  # each child seeds its generators as a fresh interpreter does


def test_a_child_past_its_time_is_killed(zygote, tmp_path):
    pid = zygote.start([sys.executable, "-c", "import time; time.sleep(60)"], tmp_path, tmp_path / "s.txt")
    t0 = time.time()
    try:
        zygote.wait(pid, timeout=0.5)
        raise AssertionError("no TimeoutError")
    except TimeoutError:
        pass
    assert time.time() - t0 < 30 and not zygote.alive(pid)


def test_what_a_fork_can_run():
    assert forkable(["cnndsl", "report", "a.net"])["kind"] == "cnndsl"
    assert forkable([sys.executable, "-m", "cnndsl", "train"]) == {"kind": "cnndsl", "argv": ["cnndsl", "train"]}
    assert forkable(["python", "tools/x.py", "-v"]) == {"kind": "script", "argv": ["tools/x.py", "-v"]}
    for argv in (["bash", "-c", "ls"], ["python", "-m", "pip"], ["python"], ["torchrun", "x.py"], []):
        assert forkable(argv) is None, argv
