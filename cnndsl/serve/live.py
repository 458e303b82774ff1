"""What the page asks of the analyzer, as JSON-able data: the report, the diagnostics, a family's
controls, the diagram, the search's Pareto front and the downloads. No torch here (an ONNX download
imports it, when asked for).

    >>> import os, tempfile
    >>> from cnndsl.serve.tree import Tree
    >>> t = Tree(tempfile.mkdtemp())
    >>> r = analyze(t, "a.net", "input 32x32x3\\nlet N = 2 in 1..4\\n(CONV(8, 3, p=1) - RELU)*N - POOL? - FC(10)")
    >>> r["ok"], r["report"]["totals"]["params"], [(c["name"], c["kind"], c["default"]) for c in r["controls"]]
    (True, 21298, [('N', 'range', '2'), ('pool', 'switch', 'on')])
    >>> r = analyze(t, "a.net", "input 32x32x3\\nCONV(8, 3) - FOO")
    >>> r["ok"], [(d["code"], d["line"], d["col"], d["end_col"], d["here"]) for d in r["diagnostics"]]
    (False, [('E201', 2, 14, 17, True)])

A request names a file under DIR (`rel`) and sends the editor's text: the text is parsed with the
file's real path, so its includes resolve as `cnndsl report FILE` resolves them. Bindings are -D's
({NAME: "text"}); those the text no longer mentions (a variable just deleted) are left out and
named in `ignored`, instead of failing every later keystroke.
"""
from __future__ import annotations

import os
import subprocess
import time

from ..errors import CnnError
from ..net import parse as _parse
from ..search.space import Space

ORDER = {"error": 0, "warning": 1}
MAX_ROWS = 2000            # layers of the report the page lists
MAX_CHOICES = 1000         # values of a listed range the page offers
MAX_DRAWN = 3000            # layers the live page draws; `cnndsl draw` takes any
DOT_TIMEOUT_S = 20
SEARCH_LIMIT = 20_000       # members the page measures; a larger family is sampled
SEARCH_SAMPLE = 5_000


def analyze(tree, rel, text, bindings=None, input=None) -> dict:
    """The report of the editor's text (schema cnndsl.report/1, as `cnndsl report --format json`),
    its warnings, or the errors that stop it; the family's controls; how long it took."""
    t0 = time.perf_counter()
    full = tree.spec(rel)
    out = {"ok": False, "path": rel, "report": None, "diagnostics": [], "controls": None, "notes": [],
           "ignored": []}
    try:
        program = _parse(text, full)
        out["controls"], out["family_error"] = _controls(program)
        net = _bind(program, bindings, input, out)
        rep = net.report()
        rep["source"] = rel
        rep["output_shape"] = rep["layers"][-1]["out"] if rep["layers"] else rep["input"]
        rep["layer_count"] = len(rep["layers"])
        del rep["layers"][MAX_ROWS:]  # a 100,000-layer net: the page lists the first rows (the JSON download all)
        out.update(ok=True, report=rep, notes=net.notes,
                   diagnostics=[diagnostic(tree, d, full) for d in net.warnings])
        _switches(out, rep)
    except CnnError as e:
        out["diagnostics"] = [diagnostic(tree, d, full) for d in e.diagnostics]
        if e.truncated:
            out["truncated"] = True
    out["ms"] = round((time.perf_counter() - t0) * 1000, 2)
    return out


def load(tree, rel, text, bindings=None, input=None):
    """The Net of the editor's text (a CnnError as the CLI raises it)."""
    program = _parse(text, tree.spec(rel))
    return _bind(program, bindings, input, {})


def _bind(program, bindings, input, out):
    given = {str(k): str(v) for k, v in (bindings or {}).items()}
    known = {k: v for k, v in given.items() if k in program.names}
    if out is not None:
        out["ignored"] = sorted(set(given) - set(known))
    return program.bind(input=input or None, bindings=known)


def diagnostic(tree, d, full) -> dict:
    """A Diagnostic as the page shows it: file paths relative to DIR, `here` when it is in the edited text."""
    out = d.to_dict()
    out["here"] = out["file"] == full
    out["file"] = _shown(tree, out["file"], full)
    for n in out["notes"]:
        n["here"] = n["file"] == full
        n["file"] = _shown(tree, n["file"], full)
    for k in ("message", "hint", "arithmetic"):
        if out.get(k):
            out[k] = out[k].replace(full, tree.relative(full)).replace(tree.root + os.sep, "")
    return out


def _shown(tree, path, full):
    if path is None:
        return None
    real = os.path.realpath(path)
    if real == tree.root or real.startswith(tree.root + os.sep):
        return tree.relative(real)
    return os.path.basename(path)


# ---- a family's controls -----------------------------------------------------------------------------
def _controls(program):
    """Sliders and selects for the ranged variables (`let N = 2 in 1..5`); ([...], None), or
    ([], the reason) when the ranges are faulty (the report still shows the default member). A range
    of whole numbers is a slider from `min` to `max`; a list (`in 16, 32, 64`) is a select of its
    `values`, the first MAX_CHOICES of them."""
    try:
        space = _Ranges(program)
    except CnnError as e:
        return [], e.message
    out = []
    for name, values in space.ranges.items():
        ints = all(isinstance(v, int) and not isinstance(v, bool) for v in values)
        default = space.defaults.get(name, values[0])
        c = {"name": name, "default": _text(default)}
        if ints and values == list(range(values[0], values[0] + len(values))):
            c.update(kind="range", min=values[0], max=values[-1])
        else:
            c.update(kind="switch" if all(isinstance(v, bool) for v in values) else "list",
                     values=[_text(v) for v in values[:MAX_CHOICES]])
        out.append(c)
    for name in space.each:  # per-occurrence choices are the search's; the page switches them together
        out.append({"name": name, "kind": "switch", "values": ["on", "off"], "default": "on"})
    return out, None


class _Ranges(Space):
    """A family's ranges as the search reads them, without counting its members: with a per-occurrence
    optional that expands the net once per structural assignment, far too slow for every keystroke
    (the Search button counts them)."""

    def _weights(self):
        self.count = None


def _switches(out, rep):
    """Optionals switched by a variable (not by a block's parameter) that no range covers: on/off."""
    have = {c["name"] for c in out["controls"]}
    for o in rep["optionals"]:
        if o["source"] != "parameter" and o["name"] not in have:
            have.add(o["name"])
            out["controls"].append({"name": o["name"], "kind": "switch", "values": ["on", "off"],
                                    "default": "on" if o["source"] in ("-D",) or o["included"] else "off",
                                    "optional": True})


def _text(v):
    if isinstance(v, bool):
        return "on" if v else "off"
    return str(v)


# ---- the diagram ------------------------------------------------------------------------------------------
def diagram(tree, rel, text, bindings=None, style="graph", input=None) -> dict:
    """{"svg": ..., "style": the style drawn, "note": why another style was drawn, or None}."""
    from ..draw import draw, find_dot
    net = load(tree, rel, text, bindings, input)
    note = None
    if style == "graph" and len(net.graph.nodes) > MAX_DRAWN:
        style, note = "volumes", f"{len(net.graph.nodes):,} layers: drawn as volumes (cnndsl draw draws the graph)"
    if style == "graph" and find_dot() is None:
        style, note = "volumes", "graphviz's `dot` is not installed: drawn as volumes"
    if style == "volumes":
        return {"svg": draw(net, style="volumes"), "style": style, "note": note}
    if style != "graph":
        raise CnnError(f"unknown diagram style {style!r}", usage=True, hint="choose graph or volumes")
    dot = draw(net, style="graph")
    try:
        done = subprocess.run([find_dot(), "-Tsvg"], input=dot.encode("utf-8"), capture_output=True,
                              timeout=DOT_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise CnnError(f"graphviz's dot failed: {e}", usage=True) from None
    if done.returncode != 0:
        raise CnnError("graphviz's dot could not draw this net", usage=True,
                       hint=done.stderr.decode("utf-8", "replace").strip()[-300:])
    svg = done.stdout.decode("utf-8", "replace")
    return {"svg": svg[svg.find("<svg"):], "style": style, "note": note}


# ---- the search ---------------------------------------------------------------------------------------------
def search(tree, rel, text, bindings=None, pareto=("params", "macs"), optionals=False, input=None) -> dict:
    """The family's Pareto front (cnndsl.search), measured in this process; a family over
    SEARCH_LIMIT members is sampled. `optionals`: every free optional also on and off."""
    from ..search.enumerate import MEASURES, search as run
    if len(pareto) != 2 or any(m not in MEASURES for m in pareto):
        raise CnnError(f"pareto {','.join(pareto)}: name two of {', '.join(MEASURES)}", usage=True)
    program = _parse(text, tree.spec(rel))
    defines = {str(k): str(v) for k, v in (bindings or {}).items() if k in program.names}
    if optionals:
        from ..search.space import optional_names
        for name in optional_names(program):
            defines.setdefault(name, "on,off")
    space = Space(program, defines, input=input or None)
    if space.count <= 1:
        raise CnnError("this spec is one net, not a family: nothing to search", usage=True,
                       hint="give a variable a range: let N = 2 in 1..5")
    sample = SEARCH_SAMPLE if space.count > SEARCH_LIMIT else None
    t0 = time.perf_counter()
    r = run(space, sample=sample, seed=0, workers=1, top=20, pareto=tuple(pareto))
    r["source"] = rel
    r["sampled"] = sample is not None
    r["seconds"] = round(time.perf_counter() - t0, 3)
    return r


# ---- downloads --------------------------------------------------------------------------------------------
DOWNLOADS = {"py": "text/x-python", "onnx": "application/octet-stream", "svg": "image/svg+xml",
             "json": "application/json"}


def download(tree, rel, text, fmt, bindings=None, style="graph", input=None) -> tuple[str, str, bytes]:
    """(file name, media type, bytes) of the editor's net: the .py of `cnndsl compile`, the .onnx of
    `cnndsl export` (random weights), the diagram's .svg, or the report's JSON."""
    if fmt not in DOWNLOADS:
        raise CnnError(f"unknown download {fmt!r}", usage=True, hint="choose " + ", ".join(DOWNLOADS))
    net = load(tree, rel, text, bindings, input)
    stem = os.path.splitext(os.path.basename(rel))[0] or "net"
    if fmt == "py":
        data = net.torch_source().encode("utf-8")
    elif fmt == "json":
        import json
        rep = net.report()
        rep["source"] = rel
        rep["output_shape"] = rep["layers"][-1]["out"] if rep["layers"] else rep["input"]
        rep["layer_count"] = len(rep["layers"])
        del rep["layers"][MAX_ROWS:]  # a 100,000-layer net: the page lists the first rows (the JSON download all)
        data = (json.dumps(rep, indent=1) + "\n").encode("utf-8")
    elif fmt == "svg":
        data = diagram(tree, rel, text, bindings, style, input)["svg"].encode("utf-8")
    else:
        data = _onnx(net, stem)
    return f"{stem}.{fmt}", DOWNLOADS[fmt], data


def _onnx(net, stem) -> bytes:
    import tempfile
    with tempfile.TemporaryDirectory(prefix="cnndsl-serve-") as folder:
        path = os.path.join(folder, stem + ".onnx")
        net.to_onnx(path)
        if os.path.exists(path + ".data"):
            raise CnnError("the model is over 2 GB: its weights are a second file", usage=True,
                           hint=f"run: cnndsl export {stem}.net -o {stem}.onnx")
        with open(path, "rb") as f:
            return f.read()
