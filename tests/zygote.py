"""A process that imports torch once and forks one child per command the tests run.

A `cnndsl train` or `inspect` command spends 3.3 s of CPU importing torch and torch._dynamo (torch.optim's
first step imports it) before it computes anything, a second or less for LeNet-5 on digits. README's
blocks run fourteen such commands, test_train.py's torchrun test two workers. Here each command runs in
a process of its own all the same (its own pid, cwd, descriptors and exit status; SIGKILL kills it
alone; stdout and stderr go to one file, interleaved as a terminal shows them), forked from a process
that has imported torch, matplotlib, captum and cnndsl already, so the imports are paid once.

What a fork cannot check is what a fresh interpreter imports: the tests that say "never imports torch"
start real interpreters, and CNNDSL_SLOW=1 runs README's commands as real `bash -c` processes too.
onnxruntime is not imported here: it starts a thread at import, and a fork keeps only the forking one.

    z = Zygote(); pid = z.start(["cnndsl", "report", "nets/vgg16.net"], cwd, "out.txt"); z.wait(pid)

conftest.py's session fixture `zygote` starts one for the tests that ask for it.
"""
import json
import os
import select
import signal
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def environment():
    """The environment of the commands the tests run: this environment's `cnndsl` and `python` first on
    PATH, this checkout's cnndsl, one thread, a fixed hash seed, a wide terminal, unbuffered output."""
    env = dict(os.environ)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    env.setdefault("OMP_NUM_THREADS", "1")
    env["COLUMNS"] = "200"
    env["PYTHONPATH"] = ROOT  # this checkout's cnndsl, whichever one is installed
    env["PYTHONHASHSEED"] = "0"
    env["MPLBACKEND"] = "Agg"
    env["PYTHONUNBUFFERED"] = "1"  # stdout and stderr interleaved as a terminal shows them
    return env


# What two or more of the forked commands import: paid once, in the zygote. Not onnxruntime (above).
PRELOAD = ("torch", "torch._dynamo", "matplotlib.figure", "matplotlib.backends.backend_agg", "captum.attr",
           "onnx", "safetensors.torch", "cnndsl.cli", "cnndsl.train", "cnndsl.inspection", "cnndsl.search")


def forkable(argv, python=sys.executable):
    """The request that runs `argv` in a forked child, or None where it needs a real process: `cnndsl ...`,
    `python -m cnndsl ...`, `python -c CODE ...` and `python SCRIPT.py ...` can be forked."""
    if not argv:
        return None
    head, rest = argv[0], list(argv[1:])
    if head == "cnndsl":
        return {"kind": "cnndsl", "argv": ["cnndsl", *rest]}
    if head not in ("python", "python3", python):
        return None
    if rest[:2] == ["-m", "cnndsl"]:
        return {"kind": "cnndsl", "argv": ["cnndsl", *rest[2:]]}
    if rest[:1] == ["-c"] and len(rest) >= 2:
        return {"kind": "code", "code": rest[1], "argv": ["-c", *rest[2:]]}
    if rest and rest[0].endswith(".py") and not rest[0].startswith("-"):
        return {"kind": "script", "argv": rest}
    return None


class Zygote:
    """The tests' side: start(request or argv, cwd, output) -> pid; wait(pid) -> exit status; cpu[pid]."""

    def __init__(self, env=None, preload=PRELOAD):
        env = env or environment()
        self.proc = subprocess.Popen([sys.executable, __file__, *preload], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, env=env, text=True)
        self.cpu = {}  # pid -> CPU seconds of a child waited for (its own, and its waited children's)
        if self._ask({"op": "ping"}, timeout=120) is None:
            self.proc.kill()
            raise RuntimeError("the zygote did not finish its imports in 120 s")

    def _ask(self, request, timeout=None):
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            return None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the zygote died (exit status {self.proc.wait()})")
        return json.loads(line)

    def start(self, argv, cwd, output, env=None):
        """Forks a child that runs argv (see forkable) in cwd, stdout and stderr to the file `output`."""
        request = argv if isinstance(argv, dict) else forkable(argv)
        if request is None:
            raise ValueError(f"not a command a fork can run: {argv}")
        reply = self._ask({"op": "start", **request, "cwd": str(cwd), "output": str(output), "env": env or {}})
        return reply["pid"]

    def wait(self, pid, timeout=600):
        """The child's exit status (negative: killed by that signal); past `timeout` it is killed."""
        reply = self._ask({"op": "wait", "pid": pid}, timeout=timeout)
        if reply is None:  # still running: kill it, and the zygote's pending wait answers
            os.kill(pid, signal.SIGKILL)
            line = self.proc.stdout.readline()
            raise TimeoutError(f"{pid} ran past {timeout} s (killed; {line.strip()})")
        self.cpu[pid] = reply["cpu"]
        return reply["status"]

    def alive(self, pid):
        return self._ask({"op": "poll", "pid": pid})["status"] is None

    def run(self, argv, cwd, output, env=None, timeout=600):
        """(exit status, what it printed) of argv run to its end."""
        status = self.wait(self.start(argv, cwd, output, env), timeout)
        with open(output, errors="replace") as f:
            return status, f.read()

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(60)


# ---- the zygote's side ---------------------------------------------------------------------------------
def _child(request):
    """Runs in the forked child; never returns."""
    code = 1
    try:
        fd = os.open(request["output"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        sys.stdin = open(os.devnull)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        os.chdir(request["cwd"])
        os.environ.update(request["env"])
        _reseed()
        code = _exit_status(_run(request))
    except SystemExit as e:
        code = _exit_status(e.code)
    except BaseException:
        import traceback
        traceback.print_exc()
        code = 1
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def _run(request):
    sys.argv = list(request["argv"])
    if request["kind"] == "cnndsl":
        sys.path[0] = os.path.dirname(sys.executable)  # as the console script's, not tests/
        from cnndsl.cli import main
        return main()
    if request["kind"] == "code":
        sys.path[0] = ""
        exec(compile(request["code"], "<string>", "exec"), {"__name__": "__main__", "__builtins__": __builtins__})
        return 0
    import runpy
    sys.path[0] = os.path.dirname(os.path.abspath(sys.argv[0]))
    runpy.run_path(sys.argv[0], run_name="__main__")
    return 0


def _exit_status(value):
    """As the interpreter turns sys.exit's argument into a status."""
    if value is None:
        return 0
    if isinstance(value, int):
        return value & 0xFF
    print(value, file=sys.stderr)
    return 1


def _reseed():
    """A fresh interpreter seeds numpy's and torch's global generators from the OS (random reseeds itself
    after a fork); every child would otherwise draw the zygote's numbers."""
    if "numpy" in sys.modules:
        sys.modules["numpy"].random.seed()
    if "torch" in sys.modules:
        sys.modules["torch"].seed()


def _serve(preload):
    import importlib
    for name in preload:
        try:
            importlib.import_module(name)
        except ImportError:  # not installed here: the commands that need it say so themselves
            pass
    tasks = os.listdir("/proc/self/task") if os.path.isdir("/proc/self/task") else ["1"]
    assert len(tasks) == 1, f"the zygote has {len(tasks)} threads after its imports: a fork keeps one"
    reply = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # a stray print of the zygote's own goes to stderr, not into the answers
    done = {}  # pid -> exit status of the children a poll found ended
    for line in sys.stdin:
        r = json.loads(line)
        if r["op"] == "start":
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:
                reply.close()
                _child(r)
            answer = {"pid": pid}
        elif r["op"] in ("wait", "poll"):
            if r["pid"] not in done:
                pid, status, usage = os.wait4(r["pid"], os.WNOHANG if r["op"] == "poll" else 0)
                if pid:
                    done[pid] = (os.waitstatus_to_exitcode(status), usage.ru_utime + usage.ru_stime)
            status, cpu = done.get(r["pid"], (None, None))
            answer = {"status": status, "cpu": cpu}
        else:
            answer = {"ok": True}
        reply.write(json.dumps(answer) + "\n")
        reply.flush()
    while True:  # the tests are done: reap what is left, so that its CPU time is counted
        try:
            os.wait()
        except ChildProcessError:
            break


if __name__ == "__main__":
    _serve(sys.argv[1:])
