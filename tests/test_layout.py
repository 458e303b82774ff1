"""The layout shows the pipeline: text -> AST -> IR -> analysis -> backends, in one direction.

The import graph of cnndsl's modules is read with `ast` (every import, at module level or inside a
function: a lazy import is an arrow too). It has no circle; no stage imports a later one; backends
never import each other; no private name (`_x`) is imported from another package; only the CLI
prints. What is still wrong is listed below as a known exception, with the issue item that removes
it: the lists only shrink."""
import ast
import os

import pytest

ROOT = os.path.join(os.path.dirname(__file__), "..", "cnndsl")
# stage of each top-level part of the package, in pipeline order (equal stages may import each
# other). net.py is the API over the stages; what stands on it (training, search) comes after it;
# the runtime runs exported models beside the backends, below the API; the CLI and the package's
# __init__ sit on top.
STAGE = {"errors": 0, "files": 0, "version": 0, "metadata": 0, "memory": 0, "kinds": 1, "lang": 2, "ir": 2,
         "analysis": 3, "backends": 4, "draw": 4, "weights": 4, "weights_map": 4, "runtime": 4, "outputs": 5,
         "net": 5, "search": 6, "train": 6, "inspection": 6, "importers": 6, "options": 7, "serve": 7, "cli": 7,
         "__init__": 7, "__main__": 7}
BACKENDS = {"pytorch", "pytorch_source", "onnx_graph"}

# Known exceptions, each removed by the work named beside it (issue 23); the tests below fail when
# one is gone, so that its entry goes too and the lists only shrink.
CIRCLES: list = []  # (item 1 removed the search's lean <-> member <-> space circle)
UPWARD = {  # the runtime reads the image extensions a training folder may hold from train/data.py (a
    # constant to move below both, beside files.py, by whoever edits train/ next)
    ("runtime.preprocess", "train.data"),
}
PRIVATE: set = set()  # (item 1 removed the search's reach into the elaborator, the analysis and the API)


def _modules():
    """{dotted name below cnndsl ("lang.syntax", "lang" for lang/__init__.py): (path, ast)}."""
    out = {}
    for dirpath, _, files in os.walk(ROOT):
        for f in sorted(files):
            if f.endswith(".py"):
                path = os.path.join(dirpath, f)
                parts = os.path.relpath(path, ROOT)[:-3].split(os.sep)
                if parts[-1] == "__init__":
                    parts = parts[:-1] or ["__init__"]
                out[".".join(parts)] = (path, ast.parse(open(path, encoding="utf-8").read(), path))
    return out


MODULES = _modules()


def _package(name):
    """The package a module is in ("" for the top-level modules)."""
    path, _ = MODULES[name]
    return name if path.endswith("__init__.py") and name != "__init__" else name.rpartition(".")[0]


def _target(base: str, name: str) -> str:
    """The module that `from <base> import <name>` reads: the submodule itself, or base's __init__."""
    full = f"{base}.{name}" if base else name
    if full in MODULES:
        return full
    return base if base else "__init__"


def imports(name):
    """(module imported, names taken from it, line) of every cnndsl import in a module."""
    _, tree = MODULES[name]
    package = _package(name).split(".") if _package(name) else []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - (node.level - 1)] if node.level > 1 else package
                mod = ".".join(base + (node.module.split(".") if node.module else []))
            elif node.module and (node.module == "cnndsl" or node.module.startswith("cnndsl.")):
                mod = node.module[len("cnndsl."):] if node.module != "cnndsl" else ""
            else:
                continue
            for alias in node.names:
                target = _target(mod, alias.name)
                yield target, ("" if target != mod else alias.name), node.lineno
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("cnndsl."):
                    yield alias.name[len("cnndsl."):], "", node.lineno
        elif (isinstance(node, ast.Call) and getattr(node.func, "id", "") == "__import__" and node.args
              and isinstance(node.args[0], ast.Constant) and str(node.args[0].value).startswith("cnndsl.")):
            mod = node.args[0].value[len("cnndsl."):]
            names = [e.value for k in node.keywords if k.arg == "fromlist" for e in getattr(k.value, "elts", [])]
            for n in names or [""]:
                yield mod, n, node.lineno


GRAPH = {name: {t for t, _, _ in imports(name) if t != name} for name in MODULES}


def _stage(name):
    return STAGE[name.split(".")[0]]


def test_the_graph_is_read():
    # a sample of arrows that must be there, so that a broken reader cannot pass the tests below
    assert "lang.astnodes" in GRAPH["lang.syntax"] and "errors" in GRAPH["lang.syntax"]
    assert "kinds" in GRAPH["ir"] and "lang.elaborate" in GRAPH["net"]
    assert "lang.values" in GRAPH["search.symbolic"]


def _circles():
    """The strongly connected parts of the graph with more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(GRAPH.get(v, ())):
            if w not in MODULES:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            part = set()
            while True:
                w = stack.pop()
                on.discard(w)
                part.add(w)
                if w == v:
                    break
            if len(part) > 1:
                out.append(part)

    for v in sorted(MODULES):
        if v not in index:
            visit(v)
    return out


def test_no_import_circles():
    unknown = [sorted(part) for part in _circles() if part not in CIRCLES]
    assert not unknown, f"import circles: {unknown}"


def test_known_circles_are_still_there():
    # a circle that is gone must leave CIRCLES, so the list only shrinks
    found = _circles()
    for known in CIRCLES:
        assert any(known <= part for part in found), f"{sorted(known)} is no longer a circle: remove it from CIRCLES"


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_stage_imports_a_later_one(name):
    here = _stage(name)
    later = sorted({t for t in GRAPH[name] if t in MODULES and _stage(t) > here and (name, t) not in UPWARD})
    assert not later, f"{name} imports {later}, a later stage (text -> AST -> IR -> analysis -> backends)"


def test_known_upward_arrows_are_still_there():
    for name, target in UPWARD:
        assert target in GRAPH[name], f"{name} no longer imports {target}: remove it from UPWARD"


def test_lang_and_runtime_stay_below_the_api():
    # the arrows issue 23 names: the AST does not build Nets; the runtime does not load specs; the
    # ONNX backend reads the version from its own module, not the package's __init__
    assert "net" not in GRAPH["lang.astnodes"]
    assert "net" not in GRAPH["runtime.onnx_run"]
    assert "__init__" not in GRAPH["backends.onnx_graph"] and "version" in GRAPH["backends.onnx_graph"]


@pytest.mark.parametrize("name", sorted(n for n in MODULES if n.startswith("backends.")))
def test_backends_never_import_each_other(name):
    own = name.split(".")[1]
    others = {t.split(".")[1] for t in GRAPH[name] if t.startswith("backends.")} - {own}
    assert not (others & BACKENDS), f"{name} imports {others & BACKENDS}"


def test_no_private_name_crosses_a_package():
    crossing = set()
    for name in MODULES:
        for target, taken, _ in imports(name):
            if (taken.startswith("_") and not taken.startswith("__") and target in MODULES
                    and _package(target) != _package(name)):
                crossing.add((name, target, taken))
    assert not crossing - PRIVATE, f"private names imported across packages: {sorted(crossing - PRIVATE)}"
    assert not PRIVATE - crossing, f"no longer imported (remove from PRIVATE): {sorted(PRIVATE - crossing)}"


@pytest.mark.parametrize("name", sorted(n for n in MODULES if n.split(".")[0] != "cli"))
def test_only_the_cli_prints(name):
    _, tree = MODULES[name]
    prints = [n.lineno for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "print"]
    assert not prints, f"{name} prints (lines {prints}); return data or raise CnnError instead"
