"""The fuzz harness: specs built from the grammar's own productions, and mutations of nets/*.net,
through the API (every spec) and the CLI (a sample); anything but success or CnnError fails, and
so does a case that runs past its time cap.

    pytest tests/test_fuzz.py                      # seeded, ~10 s, part of the default run
    CNNDSL_FUZZ=1 pytest tests/test_fuzz.py -s     # the long run: 5 minutes (CNNDSL_FUZZ_SECONDS),
                                                   # in a subprocess under a 2 GiB address-space cap

The generator reads grammars/cnn.lark through lark (its rules and terminals), so a production
added to the grammar is fuzzed without a change here. Terminals are drawn from pools of edge
cases: numbers at 0, 1, powers of two, 2**31, 10**18 and past them, floats (3.0, 2.5, 1e400),
names that are kinds, blocks, variables, module attributes (`training`, `_modules`) or a
100,000-character run, strings that are paths to devices and to files outside the tree.

Hostile files go to the options that read files (`hostile_argv`: --weights, --init, --data, run's
model and --input, --weights-map): folders, sockets, cut-short files, random bytes behind the right
magic, headers that declare more than they hold; 24 seeded cases in the default run, and FIFOs and
/dev/zero too in their own long run (CNNDSL_FUZZ=1, CNNDSL_FUZZ_FILES_SECONDS, default 120).

The long run prints its figures (specs per second, classes of failure found); README's
"Reliability" section records them. A failure's class is the exception type and the innermost
cnndsl frame, so a thousand cases of one bug count once.
"""
from __future__ import annotations

import contextlib
import io
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cnndsl
from cnndsl import CnnError
from cnndsl.cli import main
from cnndsl.kinds import CALLABLE

import datagen

ROOT = Path(__file__).resolve().parent.parent
NETS = sorted((ROOT / "nets").glob("*.net"))
CASE_SECONDS = 5  # a case past this fails (the bound: each case under 5 s)

# ---- the pools a terminal is drawn from ---------------------------------------------------------
INTS = ["0", "1", "2", "3", "4", "7", "8", "16", "64", "255", "1023", "2147483647", "2147483648",
        "9007199254740993", "1000000", "999999999999999999", "1000000000000000000", "99999999999999999999"]
FLOATS = ["0.0", "0.5", "1.0", "3.0", "2.5", ".5", "1e-9", "1e9", "1e18", "1e400", "4e0"]
DIMS = ["3x3", "1x1", "2x2", "1x3", "0x0", "8x8x3", "16x16x3", "1x1x1", "4x4x4x4", "2147483648x2"]
STRINGS = ['"lib.net"', '"/dev/zero"', '"/etc/passwd"', '"../up.net"', '""', '"sub/x.net"', '"self.net"']
NAMES = sorted(CALLABLE) + ["b", "blk", "N", "M", "c", "k", "x", "pool", "on", "off", "true", "same", "valid",
                            "training", "_steps", "_modules", "forward", "code", "__init__", "input", "relu",
                            "s", "p", "d", "groups", "kernel", "filters", "units", "ceil", "eps", "size"]
VOLUMES = ["8x8x3", "16x16x3", "1x1x1", "32x32x3", "7x7x1", "10", "3x224x224", "HxWxC", "8x8xC", "0x8x3",
           "2147483648x1x1"]
ODD = ["\u2028", "\x0b", "\x0c", "\r", "\r\n", "\x00", "\t", "\ufeff", "é", "\x85"]


class _Chooser:
    """A source of choices: hypothesis's `data.draw` in the seeded run, a Random in the long run."""

    def __init__(self, data=None, rng=None):
        self.data, self.rng = data, rng

    def below(self, n: int) -> int:
        if n <= 1:
            return 0
        if self.data is not None:
            return self.data.draw(st.integers(0, n - 1))
        return self.rng.randrange(n)

    def pick(self, items):
        return items[self.below(len(items))]


# ---- specs from the grammar's productions -------------------------------------------------------
@lru_cache(maxsize=1)
def _grammar():
    """{nonterminal: [expansions]}, {terminal: literal or None}, and each rule's shortest derivation."""
    from lark import Lark
    from cnndsl.lang.syntax import GRAMMAR
    parser = Lark.open(GRAMMAR, parser="lalr", lexer="basic", start=["start"])
    rules: dict = {}
    for r in parser.rules:
        rules.setdefault(r.origin.name, []).append([s.name for s in r.expansion])
    literal = {}
    for t in parser.terminals:
        p = t.pattern
        literal[t.name] = p.value if type(p).__name__ == "PatternStr" else None
    depth = {}  # symbol -> depth of its shallowest derivation
    for t in literal:
        depth[t] = 0
    changed = True
    while changed:
        changed = False
        for name, alts in rules.items():
            d = min((1 + max((depth.get(s, 10**9) for s in alt), default=0) for alt in alts), default=10**9)
            if d < depth.get(name, 10**9):
                depth[name], changed = d, True
    return rules, literal, depth


_TERMINAL_POOLS = {"INT": INTS, "FLOAT": FLOATS, "DIMS": DIMS, "STRING": STRINGS, "NAME": NAMES}


def _terminal(name, c: _Chooser) -> str:
    rules, literal, _ = _grammar()
    if literal.get(name) is not None:
        return literal[name]
    if name == "_NL":
        return "\n"
    pool = _TERMINAL_POOLS.get(name)
    if pool is None:  # a terminal a later grammar adds: a name or a number fits most
        pool = NAMES + INTS
    if name == "NAME" and c.below(400) == 0:
        return "A" * 100_000
    return c.pick(pool)


def derive(symbol: str, c: _Chooser, budget: list, depth=0) -> list[str]:
    """Tokens of one random derivation of `symbol`; past the depth or the token budget, the
    shallowest alternatives are taken, so every derivation ends."""
    rules, literal, shallow = _grammar()
    if symbol not in rules:
        budget[0] -= 1
        return [_terminal(symbol, c)]
    alts = rules[symbol]
    if depth > 12 or budget[0] <= 0:
        best = min(1 + max((shallow.get(s, 0) for s in a), default=0) for a in alts)
        alts = [a for a in alts if 1 + max((shallow.get(s, 0) for s in a), default=0) == best]
    out = []
    for s in c.pick(alts):
        out += derive(s, c, budget, depth + 1)
    return out


def grammar_spec(c: _Chooser) -> str:
    """A spec from the grammar: its statements and network, one derivation each, joined by spaces
    (the input line is drawn whole, since its parts must touch)."""
    lines = []
    if c.below(8):
        lines.append("input " + c.pick(VOLUMES))
    for _ in range(c.below(4)):
        stmt = c.pick(["let_stmt", "def_stmt", "default_stmt", "let_stmt", "def_stmt", "include_stmt"])
        lines.append(" ".join(derive(stmt, c, [30])))
    lines.append(" ".join(derive("net", c, [40])))
    return "\n".join(lines) + "\n"


# ---- mutations of the shipped nets --------------------------------------------------------------
def mutate(text: str, c: _Chooser) -> str:
    """One to three edits of a shipped net: a number swapped for an edge case, a token dropped or
    doubled, a line dropped or repeated, an odd character, a truncation, a float for an int."""
    import re
    for _ in range(1 + c.below(3)):
        tokens = re.findall(r"[A-Za-z_][A-Za-z_0-9]*|[0-9]+(?:x[0-9]+)*|\s+|.", text)
        if not tokens:
            break
        i = c.below(len(tokens))
        op = c.below(9)
        if op == 0 and any(t.isdigit() for t in tokens):
            i = c.pick([j for j, t in enumerate(tokens) if t.isdigit()])
            tokens[i] = c.pick(INTS + FLOATS)
        elif op == 1:
            tokens[i] = ""
        elif op == 2:
            tokens[i] = tokens[i] * 2
        elif op == 3:
            tokens[i] = c.pick(NAMES + ["-", "*", "?", "(", ")", "{", "}", "|", "+", ":", "=", ","])
        elif op == 4:
            tokens[i] = c.pick(ODD) + tokens[i]
        elif op == 5:
            lines = text.split("\n")
            j = c.below(len(lines))
            lines[j:j + 1] = [] if c.below(2) else [lines[j]] * 2
            text = "\n".join(lines)
            continue
        elif op == 6:
            text = text[:c.below(len(text) + 1)]
            continue
        elif op == 7 and tokens[i].isdigit():
            tokens[i] += ".0"
        else:
            tokens[i] = f"({tokens[i]})*{c.pick(['0', '2', '1000', '100000'])}" if tokens[i].isupper() else tokens[i]
        text = "".join(tokens)
    return text


# ---- running one case ---------------------------------------------------------------------------
class CaseTimeout(Exception):
    pass


@contextlib.contextmanager
def time_cap(seconds):
    """Interrupt the case after `seconds` (SIGALRM; on platforms without it, no cap)."""
    if not hasattr(signal, "setitimer"):
        yield
        return

    def fire(*_):
        raise CaseTimeout(f"the case ran past {seconds} s")
    old = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def run_api(text, path) -> str:
    """`loads` + report + table + JSON of errors: 'ok', or the error code. Raises on anything else."""
    from cnndsl.analysis import report
    try:
        net = cnndsl.loads(text, path=str(path))
        rep = net.report()
        report.table(rep)
        for w in net.warnings:
            w.render()
        return "ok"
    except CnnError as e:
        e.render()
        e.to_dict()
        assert len(e.render()) < 200_000, "a message of more than 200,000 characters"
        return e.code


def run_cli(path, c: _Chooser) -> int:
    args = c.pick([["report", str(path)], ["check", str(path)], ["report", str(path), "--format", "json"],
                   ["check", str(path), "--format", "json"], ["report", str(path), "--format", "csv"],
                   ["report", str(path), "--memory", c.pick(["24GiB", "1e400", "0", "1e30"])],
                   ["report", str(path), "--input", c.pick(VOLUMES)]])
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(args)
    assert code in (0, 1, 2), f"exit {code} for cnndsl {' '.join(args)}:\n{err.getvalue()[-2000:]}"
    return code


def fixture_tree(folder: Path):
    """A small tree of files the generated includes may name."""
    (folder / "sub").mkdir(parents=True, exist_ok=True)
    (folder / "lib.net").write_text("def b(c=4) = CONV(c, 3, p=1) - RELU\nlet N = 2\n")
    (folder / "sub" / "x.net").write_text('include "../lib.net"\ndef blk = b(8)\n')
    (folder / "self.net").write_text('include "self.net"\n')
    return folder / "main.net"


def one_case(text: str, main_path: Path, c: _Chooser, cli: bool) -> str:
    with time_cap(CASE_SECONDS):
        outcome = run_api(text, main_path)
        if cli:
            main_path.write_text(text, encoding="utf-8", errors="surrogatepass")
            run_cli(main_path, c)
    return outcome


# ---- command-line options: numbers and paths, for report, search and compile ------------------------
FAMILY = "input 8x8x3\nlet N = 2 in 1..3\nlet C = 4 in 4, 8\n(CONV(C, 3, p=1) - RELU)*N - BN? - FC(4)\n"
NUMBERS = ["0", "1", "3", "-1", "-0", "+2", "1.5", "1e6", "500k", "2.5M", "1e400", "-1e400", "inf", "-inf", "nan",
           "2147483648", "99999999999999999999999", "9" * 400, "", " ", "abc", "0x10", "1_000", "\udcff", "1e"]
WHERES = ["N > 1", "N >= 2 and params < 1e6", "((((9**64)**64)**64)**64) > N", "N ** N ** N ** N > 1",
          "(N * 10**18) ** 64 > 1", "-" * 3000 + "N > 1", "not " * 3000 + "N", "+".join(["N"] * 3000) + " > 1",
          "(" * 300 + "N" + ")" * 300 + " > 1", "params < 1e400", "1/0 < N", "N > 1\udcff", "N.__class__",
          "__import__('os')", "x" * 100_000, "N >", "", "memory < 24 and rf >= 3"]
_NUMERIC = {"report": ["--batch", "--memory"],
            "search": ["--top", "--seed", "--sample", "--limit", "--max-params", "--max-macs", "--max-memory",
                       "--min-rf", "--batch", "--jobs"],
            "compile": []}


def _paths(folder: Path) -> list:
    """Output paths: a fresh name, a file that exists, a folder, one under a file, one in a missing
    folder, a suffix nothing writes, a name that is not UTF-8."""
    return [str(folder / "out.png"), str(folder / "lib.net"), str(folder / "sub"), str(folder / "lib.net" / "x.png"),
            str(folder / "missing" / "x.png"), str(folder / "x.foo"), str(folder / "x\udcff.svg"), str(folder / "emit")]


def cli_options(c: _Chooser, family: Path) -> list:
    """argv for one command with options drawn from the pools (many of them wrong on purpose)."""
    command = c.pick(sorted(_NUMERIC))
    args = [command, str(family)]
    for _ in range(1 + c.below(3)):
        if _NUMERIC[command] and c.below(3):
            args += [c.pick(_NUMERIC[command]), c.pick(NUMBERS)]
        elif command == "search":
            flag = c.pick(["--where", "--emit", "--plot", "-D"])
            value = (c.pick(WHERES) if flag == "--where" else c.pick(_paths(family.parent)) if flag != "-D"
                     else c.pick(["N=1..3", "N=" + " " * 100_000 + "1", "C=1..1000000", "N=1  2", "N=\udcff"]))
            args += [flag, value]
        elif command == "report":
            args += c.pick([["--symbolic", "N"], ["--symbolic", "C,N"], ["-D", "N=" + c.pick(NUMBERS)]])
        else:
            args += [c.pick(["-o", "--class-name"]), c.pick(_paths(family.parent) + [str(family.parent / n) for n in ("Net", "\udcff", "1x")])]
    if command == "search":
        args += ["--jobs", "1"] if "--jobs" not in args else []
        args += ["-D", "C=4"] if "-D" not in args else []  # few members: each case stays small
    if command == "compile" and "-o" not in args:
        args += ["-o", str(family.parent / "out.py")]
    return args


def run_options(family: Path, c: _Chooser) -> int:
    """One command with drawn options: exit 0, 1 or 2, never an internal error (3) or a hang."""
    args = cli_options(c, family)
    _warm()
    out, err = io.StringIO(), io.StringIO()
    with time_cap(CASE_SECONDS), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(args)
    assert code in (0, 1, 2), f"exit {code} for cnndsl {' '.join(a[:80] for a in args)!r}:\n{err.getvalue()[-2000:]}"
    return code


@lru_cache(maxsize=1)
def _warm():
    """Import what compile (torch), --plot (matplotlib) and --symbolic (sympy) import, once and before
    any time cap: a first import on a loaded machine is no hang of ours."""
    import matplotlib.pyplot  # noqa: F401
    import sympy  # noqa: F401
    import torch  # noqa: F401


def family_file(folder: Path) -> Path:
    fixture_tree(folder)
    path = folder / "family.net"
    path.write_text(FAMILY)
    return path


def draw_spec(c: _Chooser) -> str:
    if c.below(3) == 0:
        return mutate(c.pick(NETS).read_text(), c)
    return grammar_spec(c)


# ---- the seeded short run (default test command: 100 specs, 250 with CNNDSL_SLOW=1) -----------------
SHORT = settings(max_examples=250 if os.environ.get("CNNDSL_SLOW") else 100, deadline=None, derandomize=True, database=None,
                 suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return fixture_tree(tmp_path_factory.mktemp("fuzz"))


def test_the_generator_covers_the_grammar():
    """Every production of the grammar is reachable: its nonterminals all appear in derivations."""
    rules, _, _ = _grammar()
    rng = random.Random(0)
    seen = set()
    for i in range(300):
        c = _Chooser(rng=rng)
        for sym in ("net", "let_stmt", "def_stmt", "default_stmt", "include_stmt", "value"):
            derive(sym, c, [40])
    assert {"net", "value", "args"} <= set(rules)


@SHORT
@given(st.data())
def test_fuzz_api_and_cli(tree, data):
    c = _Chooser(data=data)
    text = draw_spec(c)
    one_case(text, tree, c, cli=c.below(8) == 0)


OPTIONS = settings(max_examples=25, deadline=None, derandomize=True, database=None,
                   suppress_health_check=list(HealthCheck))


@OPTIONS
@given(st.data())
def test_fuzz_command_line_options(tmp_path_factory, data):
    run_options(family_file(tmp_path_factory.getbasetemp() / "options"), _Chooser(data=data))


# ---- training data and checkpoints (generators: tests/datagen.py) -------------------------------------
def data_spec(c, classes: int) -> str:
    """A small net for the data: gray, RGB or a vector input, with `classes` outputs (one time in eight another count)."""
    k = classes if c.below(8) else c.pick([1, 2, 5])
    return c.pick([f"input 8x8x1\nCONV(4, 3) - BN - RELU - FC({k})\n", f"input 8x8x3\nCONV(2, 3) - FC({k})\n",
                   f"input 64\nFC({k})\n", f"input 5x7x1\nGAP - FC({k})\n"])


def trained_run(folder: Path) -> Path:
    """A one-epoch run (checkpoint, weights) on a small image folder: what checkpoint cases mutate."""
    from PIL import Image
    rng = np.random.default_rng(0)
    for i in range(12):
        (folder / "imgs" / "ab"[i % 2]).mkdir(parents=True, exist_ok=True)
        Image.fromarray((rng.random((8, 8)) * 127 + 128 * (i % 2)).astype(np.uint8)).save(folder / "imgs" / "ab"[i % 2] / f"{i}.png")
    (folder / "gray.net").write_text(datagen.GRAY)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        assert main(["train", str(folder / "gray.net"), "--data", str(folder / "imgs"), "--epochs", "1",
                     "--out", str(folder / "run")]) == 0, err.getvalue()
    return folder


def data_case(c: _Chooser, case: Path, base: Path) -> str:
    """One drawn dataset or checkpoint through data.load, train, eval or a resume: its outcome ('ok',
    'refused'), or an AssertionError for anything else (an exit 3, garbage accepted)."""
    from cnndsl.train import data as D
    case.mkdir(parents=True)
    kind = c.pick(["folder", "npz", "checkpoint"])
    with time_cap(CASE_SECONDS):
        if kind == "checkpoint":
            return _checkpoint_case(c, case, base)
        path = datagen.folder(c, case / "imgs", c.below(1000)) if kind == "folder" else datagen.npz(c, case / "d.npz", c.below(1000))
        spec = data_spec(c, len([d for d in path.iterdir() if d.is_dir()]) if kind == "folder" else 2)
        if c.below(6):  # the library, whose result is checked; else the command, trained one epoch
            try:
                d = D.load(path, cnndsl.loads(spec).graph, seed=c.below(3), val_fraction=c.pick([0.2, 0.0, 0.5]))
            except CnnError as e:
                e.render()
                return "refused"
            datagen.check_data(d)
            return "ok"
        (case / "x.net").write_text(spec)
        return _cli(["train", str(case / "x.net"), "--data", str(path), "--epochs", "1", "--batch", "8",
                     "--out", str(case / "run")], case)


def _checkpoint_case(c, case, base):
    ck = datagen.checkpoint(c, base / "run", case / c.pick(["weights.safetensors", "x.safetensors"]))
    spec, imgs = str(base / "gray.net"), str(base / "imgs")
    how = c.pick(["eval", "eval", "resume", "init", "export"])
    if how == "eval":
        return _cli(["eval", spec, "--weights", str(ck), "--data", c.pick([imgs, imgs + "/", "synthetic:40"])], case)
    if how == "resume":
        datagen.copy_run(base / "run", case / "run", ck)
        return _cli(["train", spec, "--data", imgs, "--epochs", "2", "--out", str(case / "run"), "--resume"], case)
    if how == "init":
        return _cli(["train", spec, "--data", imgs, "--epochs", "1", "--init", str(ck)], case)
    return _cli(["export", spec, "--weights", str(ck), "-o", str(case / "x.onnx")], case)


def _cli(args, case) -> str:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(args)
    assert code in (0, 1, 2), f"exit {code} for cnndsl {' '.join(args)}:\n{err.getvalue()[-2000:]}"
    if code == 0 and args[0] == "train" and (case / "run" / "weights.safetensors").exists():
        import torch
        from cnndsl.weights import load
        assert all(torch.isfinite(v).all() for v in load(case / "run" / "weights.safetensors").values()), \
            "NaN weights written"
    return "ok" if code == 0 else "refused"


DATA = settings(max_examples=int(os.environ.get("CNNDSL_FUZZ_DATA", "30")), deadline=None, derandomize=True,
                database=None, suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    return trained_run(tmp_path_factory.mktemp("trained"))


@DATA
@given(st.data())
def test_fuzz_training_data_and_checkpoints(trained, tmp_path_factory, data):
    c = _Chooser(data=data)
    case = Path(tempfile.mkdtemp(dir=tmp_path_factory.getbasetemp()))
    try:
        data_case(c, case / "case", trained)
    finally:
        shutil.rmtree(case, ignore_errors=True)


# ---- the long run (CNNDSL_FUZZ=1): in a subprocess, under a memory cap ----------------------------
def long_run(seconds: float, seed: int, folder: Path) -> dict:
    """Fuzz for `seconds`; return figures and the failure classes found (not stopping at one)."""
    rng = random.Random(seed)
    main_path = fixture_tree(folder)
    family = family_file(folder / "options")
    base = trained_run(folder / "trained")  # also imports torch and the optimizer before any time cap
    n = ok = 0
    classes: dict = {}
    outcomes: dict = {}
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        c = _Chooser(rng=rng)
        options = rng.random() < 0.05  # one case in twenty: a command with drawn options, not a spec
        training = not options and rng.random() < 0.05  # and one in twenty: data or a checkpoint (datagen)
        text = "(command-line options)" if options else "(training data)" if training else draw_spec(c)
        n += 1
        try:
            if training:
                case = folder / f"data{n}"
                try:
                    outcome = f"data {data_case(c, case, base)}"
                finally:
                    shutil.rmtree(case, ignore_errors=True)
            else:
                outcome = f"options exit {run_options(family, c)}" if options else \
                    one_case(text, main_path, c, cli=rng.random() < 0.1)
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
            ok += outcome == "ok"
        except BaseException as e:  # noqa: BLE001 - the harness records every class of failure
            if isinstance(e, KeyboardInterrupt):
                raise
            key = _failure_class(e)
            if key not in classes:
                classes[key] = {"count": 0, "example": text[:2000], "error": f"{type(e).__name__}: {str(e)[:300]}"}
            classes[key]["count"] += 1
    elapsed = time.perf_counter() - start
    return {"specs": n, "seconds": round(elapsed, 1), "specs_per_second": round(n / elapsed, 1),
            "accepted": ok, "outcomes": outcomes, "failure_classes": classes}


def _failure_class(e) -> str:
    frames = [f for f in traceback.extract_tb(e.__traceback__) if "cnndsl" in f.filename and "tests" not in f.filename]
    where = f"{Path(frames[-1].filename).name}:{frames[-1].name}" if frames else "harness"
    return f"{type(e).__name__} at {where}"


@pytest.mark.skipif(not os.environ.get("CNNDSL_FUZZ"), reason="the long fuzz run: set CNNDSL_FUZZ=1")
def test_long_fuzz_run(tmp_path):
    seconds = float(os.environ.get("CNNDSL_FUZZ_SECONDS", "300"))
    seed = int(os.environ.get("CNNDSL_FUZZ_SEED", str(int(time.time()))))
    code = (f"import sys, json; sys.path[:0] = [{str(ROOT)!r}, {str(ROOT / 'tests')!r}]\n"
            "import resource\n"
            "resource.setrlimit(resource.RLIMIT_AS, (2 * 2**30, 2 * 2**30))\n"
            "import test_fuzz\n"
            f"r = test_fuzz.long_run({seconds}, {seed}, __import__('pathlib').Path({str(tmp_path)!r}))\n"
            "print(json.dumps(r))\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                       timeout=seconds + 120)
    assert p.returncode == 0, f"the long run died (a memory cap hit?): {p.stderr[-3000:]}"
    import json
    r = json.loads(p.stdout.strip().splitlines()[-1])
    print(f"\nfuzz seed {seed}: {r['specs']} specs in {r['seconds']} s ({r['specs_per_second']} specs/s), "
          f"{r['accepted']} accepted; outcomes {r['outcomes']}")
    for key, v in r["failure_classes"].items():
        print(f"  FAILURE {key} x{v['count']}: {v['error']}\n    {v['example'][:300]!r}")
    assert not r["failure_classes"], f"{len(r['failure_classes'])} classes of failure"


# ---- hostile files through the CLI's options (issue 22, classes 2 and 3) ----------------------------------
# Each case hands one option a file that is not a file (a folder, a socket; a FIFO and /dev/zero in the long
# run only, where a regression would hang or read until the memory cap rather than stall the default run),
# a file cut short, random bytes behind the right magic, or a header that declares more than it holds
# (a PNG, an .npy, an .npz, a safetensors checkpoint): exit 0, 1 or 2 within the time cap, never 3.
FILE_NET = "input 8x8x1\nCONV(4, 3) - RELU - FC(2)\n"
MAGIC = {".png": b"\x89PNG\r\n\x1a\n", ".npy": b"\x93NUMPY\x01\x00", ".npz": b"PK\x03\x04", ".pt": b"PK\x03\x04",
         ".safetensors": b"\x10\x00\x00\x00\x00\x00\x00\x00{", ".json": b"{", ".onnx": b"\x08\x07", ".net": b"input "}
HUGE_DIMS = [0, 1, 3, 8, 65535, 100_000, 2**31 - 1, 2**32 - 1]


def file_fixtures(folder: Path) -> dict:
    """A spec, a model and one good file of each suffix, to cut short and to hand to each option."""
    import numpy as np
    import torch
    from PIL import Image
    import cnndsl.weights as W
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "t.net").write_text(FILE_NET)
    net = cnndsl.loads(FILE_NET)
    net.to_onnx(folder / "good.onnx")
    W.save(net.to_torch(seed=0), folder / "good.safetensors", meta={})
    torch.save(net.to_torch(seed=0).state_dict(), folder / "good.pt")
    np.savez(folder / "good.npz", x=np.zeros((8, 8, 8), np.uint8), y=np.arange(8) % 2)
    np.save(folder / "good.npy", np.zeros((1, 1, 8, 8), np.float32))
    Image.new("L", (8, 8), 7).save(folder / "good.png")
    (folder / "good.json").write_text('{"conv": "conv1"}')
    (folder / "good.net").write_text(FILE_NET)
    return {suffix: (folder / f"good{suffix}").read_bytes() for suffix in MAGIC}


def hostile_file(c: _Chooser, folder: Path, suffix: str, good: dict, long: bool) -> str:
    """A hostile file named *`suffix`* in `folder`: its path."""
    import struct
    import zlib
    path = folder / f"h{c.below(10**9)}{suffix}"
    kinds = ["folder", "socket", "empty", "cut", "magic", "bomb"] + (["fifo", "/dev/zero"] if long else [])
    kind = c.pick(kinds)
    if kind == "/dev/zero":
        return "/dev/zero"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "folder":
        path.mkdir()
    elif kind == "socket":
        import socket
        s = socket.socket(socket.AF_UNIX)
        s.bind(str(path))
        s.close()  # the name stays: a socket file nobody listens on
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "cut":
        data = good[suffix]
        path.write_bytes(data[:c.below(len(data))])
    elif kind == "magic":
        path.write_bytes(MAGIC[suffix] + bytes(c.below(256) for _ in range(c.below(200))))
    else:
        path.write_bytes(_bomb(c, suffix, good))
    return str(path)


def _bomb(c: _Chooser, suffix: str, good: dict) -> bytes:
    """A header that declares more than the file holds: pixels, an array, a tensor."""
    import io
    import zipfile
    import zlib
    import numpy as np
    shape = tuple(c.pick(HUGE_DIMS) for _ in range(1 + c.below(4)))
    if suffix == ".png":
        def chunk(kind, data):
            return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")
        w, h = c.pick(HUGE_DIMS), c.pick(HUGE_DIMS)
        ihdr = w.to_bytes(4, "big") + h.to_bytes(4, "big") + bytes([c.pick([1, 8, 16]), c.pick([0, 2, 6]), 0, 0, 0])
        return MAGIC[".png"] + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * c.below(64))) + chunk(b"IEND", b"")
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": np.dtype(c.pick(["u1", "<f4", "<f8", "<i8", "?"])).str,
                                                 "fortran_order": False, "shape": shape})
    if suffix == ".npy":
        return header.getvalue()
    if suffix in (".npz", ".pt"):
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w") as z:
            z.writestr(c.pick(["x.npy", "x", "y.npy"]), header.getvalue())
            z.writestr("y.npy", good[".npy"])
        return out.getvalue()
    if suffix == ".safetensors":
        n = 1
        for d in shape:
            n *= d
        head = ('{"w": {"dtype": "F32", "shape": %s, "data_offsets": [0, %d]}}' % (list(shape), 4 * n)).encode()
        return len(head).to_bytes(8, "little") + head + bytes(c.below(64))
    return MAGIC[suffix] + bytes(c.below(64))


def hostile_argv(c: _Chooser, folder: Path, good: dict, long: bool) -> list:
    """A CLI command that hands a hostile file to one of the options that read files."""
    net, model, out = str(folder / "t.net"), str(folder / "good.onnx"), str(folder / "out.onnx")
    train = ["train", net, "--epochs", "1", "--batch", "4"]

    def f(suffix):
        return hostile_file(c, folder, suffix, good, long)
    which = c.below(10)
    if which == 0:
        return ["export", net, "-o", out, "--weights", f(c.pick([".safetensors", ".pt"]))]
    if which == 1:
        return ["export", net, "-o", out, "--weights-map", f(".json")]
    if which == 2:
        return [*train, "--data", "synthetic:16", "--init", f(c.pick([".safetensors", ".pt"]))]
    if which == 3:
        return [*train, "--data", f(".npz")]
    if which == 4:
        images = folder / f"imgs{c.below(10**9)}"
        for cls in ("a", "b"):
            (images / cls).mkdir(parents=True)
            (images / cls / "0.png").write_bytes(good[".png"])
        if c.below(2):
            odd = f(".png")
            (os.symlink if odd == "/dev/zero" else os.replace)(odd, images / "b" / "odd.png")
        return [*train, "--data", str(images)]
    if which == 5:
        return ["eval", net, "--weights", f(".safetensors"), "--data", "synthetic:16"]
    if which == 6:
        return ["run", f(".onnx"), "--repeat", "1"]
    if which == 7:
        return ["run", model, "--repeat", "1", "--input", f(c.pick([".npy", ".png"]))]
    if which == 8:
        return [*train, "--data", "synthetic:" + c.pick(["1" + "0" * 20, str(2**63), "64", "9" * 30])]
    return ["report", f(".net")]


def run_file_case(argv) -> int:
    out, err = io.StringIO(), io.StringIO()
    with time_cap(CASE_SECONDS), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    assert code in (0, 1, 2), f"exit {code} for cnndsl {' '.join(argv)}:\n{err.getvalue()[-2000:]}"
    return code


def test_fuzz_hostile_files(tmp_path):
    """A seeded 24 cases (the long run draws FIFOs and /dev/zero too)."""
    pytest.importorskip("torch")
    if not hasattr(os, "mkfifo"):
        pytest.skip("sockets and FIFOs are POSIX")
    good = file_fixtures(tmp_path)
    rng = random.Random(0)
    codes = [run_file_case(hostile_argv(_Chooser(rng=rng), tmp_path, good, long=False)) for _ in range(24)]
    assert 2 in codes


def long_files_run(seconds: float, seed: int, folder: Path) -> dict:
    """hostile_argv cases for `seconds`; figures and failure classes, as long_run."""
    rng = random.Random(seed)
    good = file_fixtures(folder)
    n, classes, outcomes = 0, {}, {}
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        argv = hostile_argv(_Chooser(rng=rng), folder, good, long=True)
        n += 1
        try:
            code = run_file_case(argv)
            outcomes[code] = outcomes.get(code, 0) + 1
        except BaseException as e:  # noqa: BLE001 - every class of failure is recorded
            if isinstance(e, KeyboardInterrupt):
                raise
            key = _failure_class(e)
            classes.setdefault(key, {"count": 0, "example": " ".join(argv), "error": f"{type(e).__name__}: {str(e)[:300]}"})
            classes[key]["count"] += 1
    elapsed = time.perf_counter() - start
    return {"cases": n, "seconds": round(elapsed, 1), "outcomes": outcomes, "failure_classes": classes}


@pytest.mark.skipif(not os.environ.get("CNNDSL_FUZZ"), reason="the long fuzz run: set CNNDSL_FUZZ=1")
def test_long_fuzz_files_run(tmp_path):
    """CNNDSL_FUZZ_FILES_SECONDS (default 120) of hostile files, in a subprocess whose address space is
    capped at its size after the imports plus 2 GiB."""
    seconds = float(os.environ.get("CNNDSL_FUZZ_FILES_SECONDS", "120"))
    seed = int(os.environ.get("CNNDSL_FUZZ_SEED", str(int(time.time()))))
    code = (f"import sys, json, os; sys.path[:0] = [{str(ROOT)!r}, {str(ROOT / 'tests')!r}]\n"
            "os.environ['OMP_NUM_THREADS'] = '1'\n"
            "import resource, torch, onnxruntime, PIL.Image, test_fuzz\n"
            "vm = int(open('/proc/self/status').read().split('VmSize:')[1].split()[0]) * 1024\n"
            "resource.setrlimit(resource.RLIMIT_AS, (vm + 2 * 2**30, vm + 2 * 2**30))\n"
            f"r = test_fuzz.long_files_run({seconds}, {seed}, __import__('pathlib').Path({str(tmp_path)!r}))\n"
            "print(json.dumps(r))\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=seconds + 180)
    assert p.returncode == 0, f"the long run died (a hang past the alarm, a memory cap hit?): {p.stderr[-3000:]}"
    import json
    r = json.loads(p.stdout.strip().splitlines()[-1])
    print(f"\nfile fuzz seed {seed}: {r['cases']} cases in {r['seconds']} s; exits {r['outcomes']}")
    for key, v in r["failure_classes"].items():
        print(f"  FAILURE {key} x{v['count']}: {v['error']}\n    {v['example'][:300]!r}")
    assert not r["failure_classes"], f"{len(r['failure_classes'])} classes of failure"


if __name__ == "__main__":  # python tests/test_fuzz.py SECONDS [SEED]: the long run, in-process
    # (run as a script, `cnndsl` above came from sys.path: run it with PYTHONPATH=. from the checkout)
    import json
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        print(json.dumps(long_run(float(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 0, Path(d)),
                         indent=1))
