"""`report --symbolic` and the search's figures: every printed formula is the concrete report's
number at the bindings it is evaluated at, or says it is not symbolic; drops and plots say what
they show."""
import json
import os

import pytest
import sympy

from cnndsl.cli import main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLASSIC = os.path.join(ROOT, "nets", "cs231n_pattern.net")
FAMILY = "let C = 16\nlet N = 3\ninput 32x32xC\n(CONV(C, 3, p=1) - RELU)*N\n"


def _json(capsys, argv):
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


def _concrete(capsys, path, point):
    """The figures `cnndsl report -D ...` prints, by the symbolic JSON's names."""
    rep = _json(capsys, ["report", path, *sum((["-D", f"{k}={v}"] for k, v in point.items()), []), "--format", "json"])
    t = rep["totals"]
    rf = next(l["rf"] for l in reversed(rep["layers"]) if l["rf"] is not None)
    rf = [rf, rf] if isinstance(rf, int) else rf
    out = next(l["out"] for l in rep["layers"] if l["name"] == rep["output"])
    return {"params": t["params"], "macs": t["macs"], "flops": t["flops"], "act_elems": t["act_elems"],
            "memory": t["train_bytes"], "rf": rf, "out": out}


def _evaluate(forms, point):
    subs = {sympy.Symbol(k, integer=True, positive=True): v for k, v in point.items()}
    val = lambda f: int(sympy.sympify(f, locals={str(s): s for s in subs}).subs(subs))
    return {k: [val(x) for x in f] if isinstance(f, list) else val(f) for k, f in forms.items()}


@pytest.mark.parametrize("text,names,points", [
    (FAMILY, "C,N", [{"C": 16, "N": 3}, {"C": 5, "N": 1}, {"C": 7, "N": 12}, {"C": 40, "N": 20}]),
    (None, "N", [{"N": n} for n in (1, 2, 5, 9, 13)]),
    (None, "N,M,K", [{"N": 1, "M": 1, "K": 0 + 1}, {"N": 4, "M": 5, "K": 2}, {"N": 7, "M": 3, "K": 9},
                     {"N": 2, "M": 4, "K": 1}]),
])
def test_every_symbolic_total_is_the_report_at_other_bindings(text, names, points, tmp_path, capsys):
    path = CLASSIC
    if text:
        path = str(tmp_path / "fam.net")
        open(path, "w").write(text)
    r = _json(capsys, ["report", path, "--symbolic", names, "--format", "json"])
    assert not r["not_symbolic"], r["not_symbolic"]
    forms = r["totals"]
    assert set(forms) == {"params", "macs", "flops", "act_elems", "memory", "rf", "out"}
    for p in points:
        assert _evaluate(forms, p) == _concrete(capsys, path, p), p


def test_the_receptive_field_of_a_repeat_is_a_formula_in_its_count(tmp_path, capsys):
    path = tmp_path / "fam.net"
    path.write_text(FAMILY)
    assert main(["report", str(path), "--symbolic", "C,N"]) == 0
    out = capsys.readouterr().out
    assert "receptive field = 2*N + 1" in out and "= 7\n" not in out
    # the classic pattern: strided pools inside the repeated stage make it geometric in M
    r = _json(capsys, ["report", CLASSIC, "--symbolic", "N,M", "--format", "json"])
    assert r["totals"]["rf"][0] == "2*2**M*N + 2**M - 2*N"


def test_a_total_no_formula_gives_says_so(tmp_path, capsys):
    # the count is also a pool's window: the output side floor(32 / N) follows no recurrence
    path = tmp_path / "odd.net"
    path.write_text("let N = 3\ninput 32x32x3\n(CONV(4, 3, p=1) - RELU)*N - POOL(N, s=N)\n")
    assert main(["report", str(path), "--symbolic", "N"]) == 0
    out = capsys.readouterr().out
    assert "output volume = not symbolic in N (10 at N=3) x not symbolic in N (10 at N=3) x 4" in out
    r = _json(capsys, ["report", str(path), "--symbolic", "N", "--format", "json"])
    assert r["not_symbolic"]["out.0"] == {"in": ["N"], "default": 10}


@pytest.mark.parametrize("flag", [["--memory", "1GiB"], ["--freeze", "conv1"], ["--format", "csv"]])
def test_symbolic_refuses_options_it_has_no_use_for(flag, capsys):
    assert main(["report", CLASSIC, "--symbolic", "N", *flag]) == 2
    assert "has no meaning with --symbolic" in capsys.readouterr().err


def _report_options() -> set:
    """Every option `cnndsl report` takes, from its parser."""
    import argparse
    from cnndsl.cli import parser
    sub = next(a for a in parser()._actions if isinstance(a, argparse._SubParsersAction))
    return {a.option_strings[-1] for a in sub.choices["report"]._actions if a.option_strings} - {"--help"}


def test_every_report_option_works_with_symbolic_or_is_refused(tmp_path, capsys):
    # a family whose block comes from a folder beyond the spec's own (--include-dir), and whose 2x2
    # stride-2 window leaves the last row of a 9x9 input unread (--strict)
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "blocks.net").write_text("def block(c) = CONV(c, 3, p=1) - RELU\n")
    (tmp_path / "fam").mkdir()
    path = tmp_path / "fam" / "net.net"
    path.write_text(f'include "{tmp_path / "lib" / "blocks.net"}"\nlet C = 4\ninput 9x9x3\n'
                    "block(C) - CONV(C, 2, s=2) - FC(10)\n")
    base = ["report", str(path), "--symbolic", "C", "--include-dir", str(tmp_path / "lib")]

    def run(*more):
        code = main(base + list(more))
        out, err = capsys.readouterr()
        return code, out, err

    code, plain, err = run()
    assert code == 0 and "params = 4*C**2 + 189*C + 10" in plain  # 27C + C, 4C^2 + C, 16C*10 + 10
    assert "does not fit a 9x9 input" in err  # the default member's warning, as report prints it
    worked = {"--include-dir"}
    # the spec's own options: each changes the member the formulas are for, or refuses it
    code, out, err = run("--input", "10x10x3")
    assert "params = 4*C**2 + 279*C + 10" in out and err == ""  # a 5x5xC volume before the FC; every row read
    assert "C=8" in run("-D", "C=8")[1]
    code, _, err = run("--strict")
    assert code == 1 and "error: 2x2 filter at stride 2 does not fit a 9x9 input" in err
    worked |= {"--input", "-D", "--strict"}
    # the training memory's options change the memory formula
    memory = lambda out: next(l for l in out.splitlines() if "memory =" in l)
    for flag, value in (("--batch", "4"), ("--dtype", "fp16"), ("--optimizer", "sgd")):
        assert memory(run(flag, value)[1]) != memory(plain), flag
        worked.add(flag)
    assert json.loads(run("--format", "json")[1])["schema"] == "cnndsl.symbolic/1"
    assert run("-o", str(tmp_path / "out.txt"))[1] == "" and (tmp_path / "out.txt").read_text() == plain
    worked |= {"--format", "--output", "--symbolic"}
    refused = set()
    for flag, value in (("--memory", "1GiB"), ("--freeze", "conv1"), ("--format", "markdown"), ("--format", "csv")):
        code, _, err = run(flag, value)
        assert code == 2 and "has no meaning with --symbolic" in err, (flag, value)
        refused.add(flag)
    assert worked | refused == _report_options()  # a new option of report is added to this test


def test_search_drops_say_what_they_are_with_a_real_member(capsys):
    assert main(["search", CLASSIC, "-D", "N=1..2", "-D", "M=1..7", "-D", "K=0", "--max-params", "60k"]) == 0
    out = capsys.readouterr().out
    drops = [l for l in out.splitlines() if "dropped" in l]
    assert drops and not any("#" in l for l in drops) and " 1 members" not in out
    assert any("a layer does not accept its input's shape (E301); e.g. N=1 M=6: 2x2 window does not fit a "
               "height of 1 (input 1x1x32)" in l for l in drops), drops
    assert any("over --max-params; e.g." in l and "params > --max-params 60,000" in l for l in drops), drops
    assert "MiB" in out or "KiB" in out  # memory with its unit


def test_plot_draws_budgets_and_a_one_member_front():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from cnndsl.search.plot import cost_panel
    r = {"index": 0, "bindings": {"N": 1}, "params": 24522, "macs": 3838976}
    res = {"pareto_measures": ["params", "macs"], "members": [r], "pareto": [r], "source": "x", "distinct": 1,
           "count": 1, "budgets": {"max_params": 50000, "max_macs": 10**7}}
    fig, ax = plt.subplots()
    cost_panel(ax, res)
    labels = [h.get_label() for h in ax.get_legend_handles_labels()[0]]
    assert "--max-params 50,000" in labels and "--max-macs 10,000,000" in labels
    assert "Pareto front (1 member)" in labels and "dominated by the front" in labels
    x0, x1 = ax.get_xlim()
    assert x0 < 24522 < x1 and x1 > 50000  # the point and the budget inside the axes, not on an edge
    plt.close(fig)
