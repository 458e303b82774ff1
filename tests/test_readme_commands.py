"""Every command README shows runs on a fresh copy of nets/ and prints what README shows.

README's fenced blocks say what they are by their info string:

    ```console   a session: each `$ command` runs (a trailing `\\` continues it on the next line);
                 the lines under it, up to the next `$`, are what it prints. A line `...` stands
                 for any number of lines; times and speeds (`0.2 s`, `7484 img/s`, `12 ms`) are
                 compared as "a number here", every other character exactly.
    ```sh        commands that must succeed (a trailing `# exits N` expects exit status N)
    ```python    a program that must run without an exception
    anything else (no info string, `text`, `json`) is not run: specs, synopses, excerpts.

A block preceded by `<!-- not run: REASON -->` is skipped, with its reason (a GPU, torchvision); one
preceded by `<!-- slow: REASON -->` runs under CNNDSL_SLOW=1 only (what it makes, no later block needs).
All runnable blocks run in README's order in one temporary folder that holds a fresh copy of nets/,
with `cnndsl` and `python` of this environment on PATH: a command may use what an earlier one wrote
(runs/lenet5, members/), never a file README does not make.

    pytest tests/test_readme_commands.py -q
"""
import os
import re
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
README = os.path.join(ROOT, "README.md")
RUN = ("console", "sh", "python")
TIMING = re.compile(r"\d[\d,]*(\.\d+)?\s?(ms|s|img/s|images/s|min)\b")


def blocks(text):
    """[(line number, info string, [lines], skip reason or None)] of README's fenced blocks."""
    out, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        m = re.match(r"^```(\S*)\s*$", lines[i])
        if not m:
            i += 1
            continue
        skip = None
        for back in (i - 1, i - 2):
            n = re.match(r"^<!-- (not run|slow): (.*) -->$", lines[back]) if back >= 0 else None
            if n and (n.group(1) == "not run" or not os.environ.get("CNNDSL_SLOW")):
                skip = n.group(2) + ("" if n.group(1) == "not run" else " (slow: CNNDSL_SLOW=1 runs it)")
            if n:
                break
        j = lines.index("```", i + 1)
        out.append((i + 1, m.group(1), lines[i + 1:j], skip))
        i = j + 1
    return out


def session(body):
    """[(command, [expected lines])] of a console block."""
    steps = []
    it = iter(body)
    for line in it:
        if line.startswith("$ "):
            cmd = line[2:]
            while cmd.endswith("\\"):
                cmd = cmd[:-1] + " " + next(it).strip()
            steps.append((cmd, []))
        elif steps:
            steps[-1][1].append(line)
        else:
            raise AssertionError(f"console block starts with output, not a `$ ` command: {line!r}")
    return steps


def commands(body):
    """[(command, expected exit status)] of an sh block: `\\` continues, `# exits N` expects N."""
    out, cur = [], ""
    for line in body:
        cur += line.rstrip()
        if cur.endswith("\\"):
            cur = cur[:-1] + " "
            continue
        if cur.strip() and not cur.lstrip().startswith("#"):
            m = re.search(r"#\s*exits (\d+)", cur)
            out.append((cur, int(m.group(1)) if m else 0))
        cur = ""
    return out


def shape(line):
    return TIMING.sub("<time>", line.rstrip())


def matches(expected, actual):
    """Whether `actual` lines are `expected` with each `...` line standing for any lines."""
    exp, act = [shape(x) for x in expected], [shape(x) for x in actual]
    memo = {}

    def go(i, j):
        if (i, j) in memo:
            return memo[(i, j)]
        if i == len(exp):
            r = j == len(act)
        elif exp[i].strip() == "...":
            r = any(go(i + 1, k) for k in range(j, len(act) + 1))
        else:
            r = j < len(act) and exp[i] == act[j] and go(i + 1, j + 1)
        memo[(i, j)] = r
        return r
    return go(0, 0)


def first_difference(expected, actual):
    exp = [shape(x) for x in expected if x.strip() != "..."]
    act = [shape(x) for x in actual]
    missing = [x for x in exp if x not in act]
    return missing[0] if missing else "(the lines are there, in another order or with more around them)"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    d = tmp_path_factory.mktemp("readme")
    shutil.copytree(os.path.join(ROOT, "nets"), d / "nets")
    return d


def environment():
    env = dict(os.environ)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    env.setdefault("OMP_NUM_THREADS", "1")
    env["COLUMNS"] = "200"
    env["PYTHONPATH"] = ROOT  # this checkout's cnndsl, whichever one is installed
    env["PYTHONHASHSEED"] = "0"
    env["MPLBACKEND"] = "Agg"
    env["PYTHONUNBUFFERED"] = "1"  # stdout and stderr interleaved as a terminal shows them
    return env


def sh(cmd, cwd):
    return subprocess.run(["bash", "-c", cmd], cwd=cwd, env=environment(), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=600)


BLOCKS = [b for b in blocks(open(README).read()) if b[1] in RUN]


@pytest.mark.parametrize("line,info,body,skip", BLOCKS, ids=[f"README:{b[0]}" for b in BLOCKS])
def test_readme_block(line, info, body, skip, workdir):
    if skip:
        pytest.skip(skip)
    if info == "python":
        p = subprocess.run([sys.executable, "-c", "\n".join(body)], cwd=workdir, env=environment(),
                           capture_output=True, text=True, timeout=600)
        assert p.returncode == 0, f"README:{line}: the python block fails:\n{p.stderr[-2000:]}"
    elif info == "sh":
        for cmd, want in commands(body):
            p = sh(cmd, workdir)
            assert p.returncode == want, \
                f"README:{line}: `{cmd}` exits {p.returncode}, README says {want}:\n{p.stdout[-2000:]}"
    else:
        for cmd, expected in session(body):
            p = sh(cmd, workdir)
            actual = p.stdout.splitlines()
            want = 1 if re.search(r"error:", "\n".join(expected)) else 0
            assert p.returncode == want, f"README:{line}: `{cmd}` exits {p.returncode}:\n{p.stdout[-2000:]}"
            assert matches(expected, actual), (
                f"README:{line}: `{cmd}` prints other lines than README shows; first missing:\n"
                f"  {first_difference(expected, actual)}\nit printed:\n" + "\n".join(actual[:80]))


def test_blocks_parse():
    """The conventions hold on README itself: sessions start with a command, sh blocks have commands."""
    for line, info, body, _ in BLOCKS:
        if info == "console":
            assert session(body), f"README:{line}: a console block without `$ ` commands"
        elif info == "sh":
            assert commands(body), f"README:{line}: an sh block without commands"


def test_matcher():
    assert matches(["a", "...", "d"], ["a", "b", "c", "d"])
    assert matches(["epoch 1: 0.2 s  7484 img/s"], ["epoch 1: 13.5 s  91 img/s"])
    assert not matches(["acc 0.9777"], ["acc 0.9776"])
    assert not matches(["a", "...", "d"], ["a", "b"])
