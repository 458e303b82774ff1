"""Importers: an ONNX file, a PyTorch module or a Caffe prototxt -> a `.net` spec of the language,
its repeats folded into `def`s and `*N`, and its weights under the spec's own names.

    source -> reader (onnx.py, fx.py, prototxt.py): a graph of plain nodes (graph.py)
           -> lifting passes: the source's ops to layers of the language (onnx_patterns, pointwise,
              onnx_ops for ONNX; fx and prototxt lift as they read), BN unfolded (bn_unfold)
           -> layers.finish: every shape and tensor checked by the kinds
           -> labels, structure (a term: sequences and joins), fold (defs, repeats)
           -> emit: an AST Program, printed by lang/printer.py, parsed and bound again
           -> tensors: the weights under the spec's names; the source and the import run side by side

`import_model(source)` picks the reader: `package.module:callable` is a PyTorch module, a file
that reads as protobuf text with `layer {` is a Caffe prototxt, anything else an ONNX file.
Nothing heavy is imported until an import runs.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

from ..errors import CnnError

TOLERANCE = 1e-5  # the largest difference of outputs, relative to their scale (at least 1), an import may show
MAX_LAYERS = 20_000  # structure.py's bitsets grow with the square of the layers: a bound on time and memory

__all__ = ["Imported", "import_model", "import_onnx", "import_torch", "import_prototxt"]


@dataclass
class Imported:
    """An import: the spec's text, its Program and Net, the weights under its names (None where the
    source has none), what could not be imported (with partial=True) and how to run the source."""
    text: str
    program: object
    net: object
    tensors: dict | None
    graph: object
    unsupported: list = field(default_factory=list)
    reference: object = None  # NCHW float32 array -> the source's output, or None

    def check(self, seed=0) -> dict:
        """Run the source and the import on one random input (see tensors.compare); a CnnError when
        they differ by more than TOLERANCE times the outputs' scale."""
        from .tensors import compare
        if self.tensors is None or self.reference is None:
            return {"params": self.net.report()["totals"]["params"], "macs": self.net.report()["totals"]["macs"]}
        result = compare(self.net, self.tensors, self.reference, seed=seed)
        limit = TOLERANCE * max(1.0, result["output_scale"])
        result["tolerance"] = limit
        if not result["max_abs_diff"] <= limit:
            raise CnnError(f"{self.graph.source}: the imported net computes something else than its source: outputs "
                           f"differ by {result['max_abs_diff']:.3g} (of scale {result['output_scale']:.3g})",
                           hint="the importer misread a node: please report it with the model")
        return result

    def save(self, path, weights=None) -> None:
        """Write the spec to `path` (and the weights to `weights`, safetensors, recording that spec),
        each atomically."""
        from ..files import atomic_write
        from ..net import loads
        if weights is not None:
            if self.tensors is None:
                raise CnnError(f"{self.graph.source} holds no weights to write to {weights}", usage=True,
                               hint="a Caffe prototxt describes the net only; its weights are in a .caffemodel")
            import torch
            from ..weights import save
            net = loads(self.text, path=os.fspath(path))
            save({k: torch.from_numpy(v) for k, v in self.tensors.items()}, weights, net=net)
        atomic_write(os.fspath(path), self.text.encode("utf-8"))


def import_model(source, input=None, partial=False) -> Imported:
    """Import `source`: an ONNX file, a Caffe prototxt, or `package.module:callable` (a PyTorch module)."""
    from . import prototxt
    text = os.fspath(source) if isinstance(source, (str, os.PathLike)) else None
    if text is not None and ":" in text and not os.path.exists(text) and _looks_like_callable(text):
        return import_torch(text, input=input, partial=partial)
    if text is not None and prototxt.sniff(text):
        return import_prototxt(text, input=input, partial=partial)
    if text is None:
        return import_torch(source, input=input, partial=partial)
    return import_onnx(text, input=input, partial=partial)


def _looks_like_callable(text):
    module, _, name = text.partition(":")
    return all(p.isidentifier() for p in module.split(".")) and all(p.isidentifier() for p in name.split("."))


def import_onnx(path, input=None, partial=False) -> Imported:
    """An ONNX file (any opset onnx converts to 13 or newer) as a spec; `input` ('HxWxC') sizes an
    input the file leaves open."""
    from . import chains, onnx as reader, onnx_groups, onnx_ops, onnx_patterns, pointwise
    graph = reader.read(path, input=input)
    onnx_patterns.lift(graph)
    chains.lift(graph, chains.OnnxReader(graph.meta["opset"]))
    onnx_groups.lift(graph)
    pointwise.lift_onnx(graph, graph.meta["opset"])
    onnx_ops.lift(graph)
    header = [f"imported by `cnndsl import` from {os.path.basename(os.fspath(path))} (ONNX, opset "
              f"{graph.meta['opset']})"]
    return finish(graph, header, partial, reference=_onnx_runner(path))


def import_torch(module, input=None, partial=False) -> Imported:
    """A PyTorch module (an nn.Module, or `package.module:callable` that makes one) traced with torch.fx."""
    from . import fx
    graph, model = fx.read(module, input=input)
    return finish(graph, [f"imported by `cnndsl import` from {graph.source} (PyTorch, traced with torch.fx)"], partial,
                  reference=fx.runner(model))


def import_prototxt(path, input=None, partial=False) -> Imported:
    """A Caffe prototxt (protobuf text) as a spec; it holds no weights."""
    from . import prototxt
    graph = prototxt.read(path, input=input)
    return finish(graph, [f"imported by `cnndsl import` from {os.path.basename(os.fspath(path))} (Caffe prototxt)"],
                  partial)


def finish(graph, header, partial=False, reference=None) -> Imported:
    """The lifted graph -> the spec, shared by every reader."""
    from . import bn_unfold, emit, fold, labels, layers, structure
    from .tensors import by_name
    from ..net import parse
    graph.prune()  # what the output does not read is no part of the net, importable or not
    unsupported = [n for n in graph.nodes if not n.lifted]
    if unsupported and not partial:
        from .graph import refuse
        raise refuse(graph, unsupported, lambda n: n.meta.get("why") or "no layer of the language computes it",
                     hint="--partial imports the net up to the first of them")
    if unsupported:
        _cut(graph, unsupported[0])
        reference = None
    graph.prune()
    if not graph.nodes:
        raise CnnError(f"{graph.source}: nothing to import: its output is its input")
    if len(graph.nodes) > MAX_LAYERS:
        raise CnnError(f"{graph.source}: {len(graph.nodes):,} layers; the importer's limit is {MAX_LAYERS:,}",
                       code="E401")
    bn_unfold.unfold(graph)
    _implicit_flattens(graph)
    _single_joins(graph)
    layers.finish(graph)
    labels.assign(graph)
    term = structure.build(graph)
    term, blocks = fold.fold(term, graph)
    notes = list(graph.notes)
    if unsupported:
        notes.append(f"imported up to {unsupported[0].describe()}, the first node the language has no layer for")
    text = emit.text(emit.program(graph.input_shape, term, blocks), header, notes)
    program = parse(text, "<import>")
    net = program.bind()
    return Imported(text, program, net, by_name(net, term, graph), graph, [n.describe() for n in unsupported],
                    reference)


def _cut(graph, first_bad):
    """Keep what comes before `first_bad`, ending at the last layer before it."""
    at = graph.nodes.index(first_bad)
    graph.nodes = graph.nodes[:at]
    if not graph.nodes:
        raise CnnError(f"{graph.source}: its first node, {first_bad.describe()}, has no layer in the language")
    graph.output = graph.nodes[-1].name


def _implicit_flattens(graph):
    """A FLATTEN read only by an FC is the FC's own (FC flattens a volume it is given)."""
    readers = graph.consumers()
    made = graph.by_name()
    for n in list(graph.nodes):
        rs = readers.get(n.name, [])
        if n.op == "FLATTEN" and len(rs) == 1 and made[rs[0]].op == "FC" and n.name != graph.output:
            graph.nodes.remove(n)
            graph.rename_input(n.name, n.inputs[0])


def _single_joins(graph):
    """A join of one input (a Concat or a Sum of one tensor) is that tensor: no branches to write."""
    from ..kinds import KINDS
    for n in list(graph.nodes):
        if KINDS[n.op].join and len(n.inputs) == 1:
            graph.nodes.remove(n)
            graph.rename_input(n.name, n.inputs[0])


def _onnx_runner(path):
    """The ONNX file run by onnxruntime. A file of a newer IR version than onnxruntime reads (onnx's
    helpers write their newest) runs with the IR version its opset needs at most."""
    def run(x):
        import onnx
        import onnxruntime as ort
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # the file as written
        try:
            sess = ort.InferenceSession(os.fspath(path), options, providers=["CPUExecutionProvider"])
        except Exception as e:
            if "IR version" not in str(e):
                raise CnnError(f"onnxruntime cannot run {path} to check the import: {_first_line(e)}",
                               hint="--no-check imports it unchecked") from None
            model = onnx.load(os.fspath(path))
            model.ir_version = min(model.ir_version, 8)
            try:
                sess = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
            except Exception as e:
                raise CnnError(f"onnxruntime cannot run {path} to check the import: {_first_line(e)}",
                               hint="--no-check imports it unchecked") from None
        try:
            return sess.run(None, {sess.get_inputs()[0].name: x})[0]
        except Exception as e:
            raise CnnError(f"onnxruntime cannot run {path} to check the import: {_first_line(e)}",
                           hint="--no-check imports it unchecked") from None
    return run


def _first_line(e) -> str:
    text = str(e).strip()
    return (text.splitlines()[0] if text else type(e).__name__)[:240]
