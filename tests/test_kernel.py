"""The counting kernel (cnndsl/analysis/kernel.py) is the single source of the figures: analyze(), the
search's member totals (with and without memoised parts) and `report --symbolic`'s formulas, evaluated
at the member's own values, agree exactly on random specs; and the search reaches the elaborator and
the analysis through public names only."""
import ast
import os
import random

import pytest
import sympy

import cnndsl
from cnndsl.analysis.analyze import analyze
from cnndsl.search.member import measure, totals
from cnndsl.search.space import Space
from cnndsl.search.symbolic import NotSymbolic, symbolic
from specgen import random_specs

ROOT = os.path.join(os.path.dirname(__file__), "..", "cnndsl")
SPECS = list(random_specs(40, seed=23))


def _measured(net, t):
    """measure()'s figures of a member, from analyze()'s totals and annotations."""
    rf = [n.meta["rf"] for n in net.graph.nodes if n.meta["rf"] is not None]
    depth = sum(1 for n in net.graph.nodes if n.meta["params"] and n.kind.weight_layer)
    return {"params": t["params"], "macs": t["macs"], "flops": t["flops"], "memory": t["train_bytes"],
            "depth": depth, "rf": max(rf[-1]) if rf else None, "layers": len(net.graph.nodes), "warnings": 0}


@pytest.mark.parametrize("options", [dict(batch=1, dtype="fp32", optimizer="adam"),
                                     dict(batch=8, dtype="fp16", optimizer="sgd")])
def test_analyze_and_the_search_totals_agree_on_random_specs(options):
    for text, net in SPECS:
        want = _measured(net, analyze(net.graph, **options))
        assert totals(net.graph, options["batch"], options["dtype"], options["optimizer"], {}) == want, text
        assert totals(net.graph, options["batch"], options["dtype"], options["optimizer"], None) == want, text


def test_the_search_with_parts_agrees_with_analyze_on_random_families():
    # a random spec's body repeated N times: the search folds the repeated body as one part
    r = random.Random(5)
    for text, _ in SPECS[:20]:
        head, body = text.rstrip("\n").rsplit("\n", 1)
        if "FC(" in body or "GAP" in body or "ADAPTIVE" in body:
            continue  # a flat tail does not repeat
        family = f"{head}\nlet N = 1 in 1..3\nlet W = 8 in 4, 8\n({body} - CONV(W, 1))*N - GAP - FC(10)\n"
        prog = cnndsl.parse(family, "family.net")
        space, shared = Space(prog), {}
        for i in r.sample(range(space.count), min(6, space.count)) * 2:
            b = space.bindings(space.member(i))
            fast = measure(prog, b, shared=shared)
            if "error" in fast:
                continue
            net = cnndsl.loads(family, bindings=b)
            want = _measured(net, analyze(net.graph))
            want["warnings"] = len(net.warnings)
            assert {k: v for k, v in fast.items() if k != "read"} == want, (family, b)


def test_the_symbolic_evaluation_at_a_point_is_analyze(tmp_path):
    # the input's channels as a variable: every figure is a formula in C0; at C0's own value each
    # layer's and each total's formula is what analyze() counts for the member
    checked = 0
    for text, _ in SPECS[:12]:
        lines = text.splitlines()
        h, w, c = lines[0].split()[1].split("x")
        if c == "1":
            continue
        spec = "\n".join([f"let C0 = {c}", f"input {h}x{w}xC0", *lines[1:]]) + "\n"
        prog = cnndsl.parse(spec, str(tmp_path / "s.net"))
        result = symbolic(prog, ["C0"], ranges={"C0": [int(c)]})
        net = cnndsl.loads(spec)
        t = analyze(net.graph)
        at = {sympy.Symbol("C0", integer=True, positive=True): int(c)}
        for layer, node in zip(result["layers"], net.graph.nodes):
            assert layer["name"] == node.name
            assert layer["params"].subs(at) == node.meta["params"] and layer["macs"].subs(at) == node.meta["macs"]
            assert (layer["rf"] is None) == (node.meta["rf"] is None), spec
        for k, f in result["totals"].items():
            if isinstance(f, NotSymbolic):
                continue
            assert f.subs(at) == (t["train_bytes"] if k == "memory" else t[k]), (spec, k)
        checked += 1
    assert checked >= 5


def _private_imports(path):
    """(module, name) of each private name a module imports from outside its package (`from ..x
    import _y`), and of each `__import__` of a cnndsl module."""
    tree = ast.parse(open(path, encoding="utf-8").read())
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.level >= 2 or (node.module or "").startswith("cnndsl")):
            out += [(node.module, a.name) for a in node.names if a.name.startswith("_") and not a.name.startswith("__")]
        elif isinstance(node, ast.Call) and getattr(node.func, "id", "") == "__import__":
            out.append(("__import__", ast.unparse(node)))
    return out


def test_the_search_imports_no_private_name_of_another_package():
    folder = os.path.join(ROOT, "search")
    found = {f: _private_imports(os.path.join(folder, f)) for f in sorted(os.listdir(folder)) if f.endswith(".py")}
    assert not {f: p for f, p in found.items() if p}


def test_only_the_kernel_asks_the_kinds_for_counts():
    # the per-layer counts (kinds' params, MACs, FLOPs, saved rules) are asked for in one place
    rules = (".macs(", ".flops(", ".saved(", ".buffers(")
    for folder in ("analysis", "search"):
        for f in os.listdir(os.path.join(ROOT, folder)):
            if f.endswith(".py") and f != "kernel.py":
                text = open(os.path.join(ROOT, folder, f), encoding="utf-8").read()
                assert not [r for r in rules if r in text], f"{folder}/{f} counts a layer itself"
