"""The layout shows the pipeline: text -> AST -> IR -> analysis -> backends, in one direction.

No stage imports a later one, backends never import each other, and only the CLI prints."""
import ast
import os

import pytest

ROOT = os.path.join(os.path.dirname(__file__), "..", "cnndsl")
# stage of each top-level part of the package, in pipeline order (equal stages may import each other)
STAGE = {"errors": 0, "files": 0, "metadata": 0, "kinds": 1, "lang": 2, "ir": 2, "analysis": 3, "backends": 4, "draw": 4,
         "weights": 4, "weights_map": 4, "memory": 0, "outputs": 5, "net": 5, "runtime": 6, "search": 6,
         "train": 6, "inspection": 6, "importers": 6, "options": 7, "serve": 7, "cli": 7, "__init__": 7, "__main__": 7}
BACKENDS = {"pytorch", "pytorch_source", "onnx_graph"}
# upward calls that are the public API's convenience, imported only when called:
# `cnndsl.parse(text).bind(...)` hands the program to net.bind
ALLOWED = {("lang/astnodes", "net")}


def _modules():
    for dirpath, _, files in os.walk(ROOT):
        for f in files:
            if f.endswith(".py"):
                path = os.path.join(dirpath, f)
                rel = os.path.relpath(path, ROOT)[:-3].split(os.sep)
                yield rel, ast.parse(open(path, encoding="utf-8").read(), path)


def _imports(rel, tree):
    """(top-level part, full dotted module) of every cnndsl-internal import, module level or not."""
    package = rel[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package[:len(package) - (node.level - 1)] if node.level > 1 else package
            parts = base + (node.module.split(".") if node.module else [])
            if not parts:  # `from . import x` at the top
                parts = [a.name for a in node.names][:1]
            yield parts[0], ".".join(parts)


MODULES = list(_modules())


@pytest.mark.parametrize("rel,tree", MODULES, ids=lambda v: "/".join(v) if isinstance(v, list) else "")
def test_no_stage_imports_a_later_one(rel, tree):
    here = STAGE[rel[0]]
    later = [m for top, m in _imports(rel, tree) if STAGE.get(top, 0) > here and not (top == rel[0])
             and ("/".join(rel), m) not in ALLOWED]
    # net.py is the API over the stages; what stands on it (runtime, and later training and search)
    # comes after it; the CLI and the package's __init__ sit on top
    assert not later, f"{'/'.join(rel)} imports {later}"


@pytest.mark.parametrize("rel,tree", [m for m in MODULES if m[0][0] == "backends"], ids=lambda v: "/".join(v) if isinstance(v, list) else "")
def test_backends_never_import_each_other(rel, tree):
    others = {m.split(".")[1] for top, m in _imports(rel, tree) if top == "backends" and "." in m} - {rel[1]}
    assert not (others & BACKENDS), f"{'/'.join(rel)} imports {others & BACKENDS}"


@pytest.mark.parametrize("rel,tree", [m for m in MODULES if m[0][0] != "cli"], ids=lambda v: "/".join(v) if isinstance(v, list) else "")
def test_only_the_cli_prints(rel, tree):
    prints = [n.lineno for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "print"]
    assert not prints, f"{'/'.join(rel)} prints (lines {prints}); return data or raise CnnError instead"


CLI = [m for m in MODULES if m[0][0] == "cli"]


def test_the_cli_is_a_package_that_parses_calls_and_prints():
    # issue 23, item 4: cnndsl/cli/ parses arguments, calls the library and prints what it returns;
    # a command runs through the COMMANDS table (not a name looked up in globals()), and the tables,
    # CSV and JSON documents are the library's renderers, not the CLI's
    assert len(CLI) > 1 and all(rel[0] == "cli" for rel, _ in CLI)
    for rel, tree in CLI:
        calls = {getattr(n.func, "id", None) for n in ast.walk(tree) if isinstance(n, ast.Call)}
        imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        assert "globals" not in calls and "csv" not in imported, "/".join(rel)
