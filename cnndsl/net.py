"""`Net`: a checked network, and the entry points to every later stage.

    >>> net = loads("input 32x32x3\\nCONV(10, 5, s=1, p=2)")
    >>> net.report()["layers"][0]["out"], net.report()["totals"]["params"]
    ([32, 32, 10], 760)

`parse` makes an immutable Program once; `Program.bind` makes a Net of it for each
input and bindings (a family of nets costs one parse); `load`/`loads` do both.

Heavy libraries are imported only by the method that needs them, so that
`load` and `report` stay fast (`cnndsl report` never imports torch).
"""
from __future__ import annotations

import gc
import hashlib
import os
import threading
from contextlib import contextmanager

from .lang.elaborate import elaborate
from .errors import CnnError, shown_path
from .ir import Graph
from .lang import astnodes as A
from .lang.program import parse as _parse


class Program(A.Program):
    """A parsed spec (lang/astnodes.py's Program: plain, immutable data) that binds into Nets:

        >>> prog = parse("input 32x32x3\\n(CONV(8, 3, p=1) - RELU)*N - FC(10)")
        >>> [len(prog.bind(bindings={"N": n}).graph.nodes) for n in (1, 2, 3)]
        [4, 6, 8]
    """

    def bind(self, input=None, bindings=None, strict=False) -> "Net":
        """The Net for an input volume (`'HxWxC'` or a tuple) and `bindings` ({NAME: value}, as -D)."""
        return bind(self, input=input, bindings=bindings, strict=strict)


def parse_defines(defines) -> dict:
    """["N=3", "pool=off"] (the -D option) -> {"N": "3", "pool": "off"}; values are parsed when used."""
    out = {}
    for d in defines:
        name, eq, value = d.partition("=")
        if not eq or not name.strip().isidentifier():
            raise CnnError(f"-D {d!r} is not NAME=VALUE", usage=True, hint="e.g. -D N=3 or -D pool=off")
        out[name.strip()] = value.strip()
    return out


def parse(text, path=None, include_dirs=(), quotable=True) -> Program:
    """Parse the text of a spec (str or bytes) and the files it includes (relative to `path`) into
    an immutable Program; `program.bind(...)` checks it for an input and bindings and gives a Net.
    Includes stay inside the spec's folder tree, or one of `include_dirs` (README, "Includes")."""
    with _gc_paused():
        p = _parse(text, path, include_dirs, quotable)
    return Program(p.statements, p.net, p.path, p.names)


def bind(program: Program, input=None, bindings=None, strict=False) -> "Net":
    """A Net of a parsed program (the same as `program.bind`)."""
    with _gc_paused():
        graph = elaborate(program, input_shape=input, bindings=bindings, strict=strict)
    net = Net(graph, program.path)
    net._program, net._bindings = program, dict(bindings or {})  # for spec_info
    return net


def load(path, input=None, bindings=None, strict=False, include_dirs=()) -> "Net":
    """Parse and check a .net file. `input`: 'HxWxC' or a tuple; `bindings`: {NAME: value} (as -D);
    `include_dirs`: folders beyond the spec's own tree that its includes may read."""
    from .files import read_spec
    from .lang.syntax import MAX_TEXT
    path = os.fspath(path)
    program = parse(read_spec(path, MAX_TEXT), path, include_dirs, quotable=path.endswith(".net"))
    return bind(program, input=input, bindings=bindings, strict=strict)


def loads(text, input=None, bindings=None, strict=False, path="<string>", include_dirs=()) -> "Net":
    """Like `load`, from the text of a spec: `parse(text, path).bind(input, bindings, strict)`."""
    return bind(parse(text, path, include_dirs), input=input, bindings=bindings, strict=strict)


CHECK_SCHEMA = "cnndsl.check/1"


def check(paths, input=None, bindings=None, strict=False, include_dirs=()) -> tuple[dict, int]:
    """`cnndsl check --format json` as data: ({"schema", "files": [{file, ok, layers, errors,
    warnings}], "diagnostics": [every error and warning, as dicts, with its file]}, the worst
    outcome: 0 every spec loads, 1 one has an error, 2 a usage error)."""
    files, diagnostics, status = [], [], 0
    for f in paths:
        try:
            net = load(f, input=input, bindings=bindings, strict=strict, include_dirs=include_dirs)
            found, entry = list(net.warnings), {"file": shown_path(f), "ok": True, "layers": len(net.graph.nodes)}
        except CnnError as e:
            found, entry = list(e.diagnostics), {"file": shown_path(f), "ok": False, "layers": None}
            status = max(status, 2 if e.usage else 1)
        entry["errors"] = sum(d.severity == "error" for d in found)
        entry["warnings"] = len(found) - entry["errors"]
        files.append(entry)
        diagnostics += [{**d.to_dict(), "file": d.to_dict()["file"] or shown_path(f)} for d in found]
    return {"schema": CHECK_SCHEMA, "files": files, "diagnostics": diagnostics}, status


_GC = threading.Lock()
_GC_PAUSES = [0, False]  # how many threads are inside _gc_paused; whether the collector ran before the first


@contextmanager
def _gc_paused():
    """Parsing, elaboration and analysis allocate tens of objects per layer and free almost none, so
    the cyclic collector only rescans the growing graph, again and again: 20% of a 100k-layer
    analysis. Reference counting still frees everything; the collector resumes afterwards, when the
    last of the threads inside leaves (a count under a lock: two threads each saving and restoring
    gc.isenabled() would leave it off when their pauses overlap)."""
    with _GC:
        if _GC_PAUSES[0] == 0:
            _GC_PAUSES[1] = gc.isenabled()
            gc.disable()
        _GC_PAUSES[0] += 1
    try:
        yield
    finally:
        with _GC:
            _GC_PAUSES[0] -= 1
            if _GC_PAUSES[0] == 0 and _GC_PAUSES[1]:
                gc.enable()


gc_paused = _gc_paused  # public: the search pauses the collector around its members too


class Net:
    def __init__(self, graph: Graph, path: str = "<string>"):
        self.graph = graph
        self.path = shown_path(path)  # a name to show and write into outputs; the file was read already

    @property
    def name(self) -> str:
        base = os.path.splitext(os.path.basename(self.path))[0]
        return base if base and not base.startswith("<") else "net"

    @property
    def program(self):
        """The parsed program this net was bound from (None for a Net built from a graph)."""
        return getattr(self, "_program", None)

    @property
    def spec_hash(self) -> str | None:
        """sha256 of the spec's text and, in order, of every file it includes, as they were when it
        was loaded (None for a Net built from a graph): what a checkpoint records of its spec."""
        if getattr(self, "_spec_hash", None) is None and getattr(self, "_program", None) is not None:
            self._spec_hash = program_digest(self._program)
        return getattr(self, "_spec_hash", None)

    @property
    def spec_info(self) -> dict:
        """{str: str}: what a checkpoint saved from this net records in its safetensors metadata."""
        import json
        from .version import __version__
        return {"spec_sha256": self.spec_hash or "", "spec_name": self.name, "spec_path": self.path,
                "bindings": json.dumps(getattr(self, "_bindings", {}), sort_keys=True),
                "input": "x".join(map(str, self.graph.input_shape)), "cnndsl_version": __version__}

    @property
    def notes(self) -> list[str]:
        """The spec's own `# note: ...` comment lines, which `cnndsl report` prints under its table:
        what a reader of the figures should know (VGG-16's: the lecture's 24M total is a slip)."""
        from .lang.program import notes
        span = self.graph.input_span
        return notes(span.source if span is not None else None)

    @property
    def warnings(self):
        return list(self.graph.warnings)

    def report(self, dtype="fp32", batch=1, optimizer="adam", memory=None) -> dict:
        """The analysis as the versioned JSON-able dict (schema cnndsl.report/1)."""
        from .analysis import report
        from .analysis.quantity import parse_bytes
        if isinstance(memory, str):
            memory = parse_bytes(memory)
        with _gc_paused():
            return report.build(self.graph, dtype=dtype, batch=batch, optimizer=optimizer, memory=memory)

    def to_torch(self, seed=None, **options):
        """A torch.nn.Module (NCHW input) whose module paths are the layer names.

        Options: `seed` (initialise reproducibly, leaving the global RNG alone), `logits=True`
        (leave out a final SOFTMAX, to train with CrossEntropyLoss), `device` ("cpu", "cuda",
        "meta"), `dtype`, `weights` (a checkpoint path or a state_dict, by name; torchvision keys
        mapped), `weights_strict=False` (load what matches by name and shape; see cnndsl.weights),
        `weights_mapping` ({foreign module prefix: ours}, where a foreign mapping is ambiguous)."""
        from .backends.pytorch import build_module
        return build_module(self, seed=seed, **options)

    def torch_source(self, class_name=None, logits=False) -> str:
        """Standalone, readable PyTorch source for this net (no cnndsl import needed); `logits=True`
        leaves out a final SOFTMAX, as to_torch(logits=True) does."""
        from .backends.pytorch_source import generate
        return generate(self, class_name=class_name, logits=logits)

    def to_onnx(self, path=None, weights=None, opset=None, batch="dynamic", weights_strict=True, normalize=None,
                weights_mapping=None):
        """An onnx.ModelProto built from the IR; written to `path` when given. `weights` resolve as in
        to_torch (cnndsl.weights); the load report is in metadata_props["cnndsl.weights"] (JSON), the
        input's normalisation in ["cnndsl.preprocessing"]; `normalize` ("raw" or "unit") puts it
        in the graph (cnndsl.backends.onnx_preprocessing); `weights_mapping` as in to_torch."""
        from .backends.onnx_graph import export
        return export(self, path=path, weights=weights, opset=opset, batch=batch, weights_strict=weights_strict,
                      normalize=normalize, weights_mapping=weights_mapping)

    def draw(self, path=None, style="graph", **options):
        """An architecture diagram (graphviz DOT or a volume SVG); rendered to `path` when given."""
        from .draw import draw
        return draw(self, path=path, style=style, **options)

    def __repr__(self):
        return f"<Net {self.name}: {len(self.graph.nodes)} layers, input {'x'.join(map(str, self.graph.input_shape))}>"


def program_digest(program) -> str:
    """sha256 of a parsed program's text and, depth first in include order, of every file it
    includes, as they were parsed (nothing is read again): what a checkpoint records of its spec."""
    h = hashlib.sha256()
    _hash_program(h, program, set())
    return h.hexdigest()


def _hash_program(h, program, done):
    from .lang import astnodes as A
    source = _source_of(program)
    data = (source.text if source is not None else "").encode("utf-8")
    h.update(len(data).to_bytes(8, "little") + data)
    for st in program.statements:
        if isinstance(st, A.Include) and st.program is not None:
            h.update(b"include " + st.path.encode("utf-8"))
            if id(st.program) not in done:  # a file included twice is hashed once (as it is elaborated once)
                done.add(id(st.program))
                _hash_program(h, st.program, done)


def _source_of(program):
    """The Source a program was parsed from (every statement and the network carry its spans)."""
    for node in (*program.statements, program.net):
        span = getattr(node, "span", None)
        if span is not None:
            return span.source
    return None
