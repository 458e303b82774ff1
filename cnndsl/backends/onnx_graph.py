"""IR -> ONNX: a ModelProto built with onnx.helper, one table entry per layer kind.

    >>> import cnndsl
    >>> net = cnndsl.loads("input 8x8x3\\nCONV(4, 3, p=1) - BN - RELU - GAP - FC(10)")
    >>> model = net.to_onnx()
    >>> [(n.name, n.op_type) for n in model.graph.node]
    [('conv1', 'Conv'), ('bn1', 'BatchNormalization'), ('relu1', 'Relu'), ('gap1', 'GlobalAveragePool'), ('flatten1', 'Flatten'), ('fc1', 'Gemm')]
    >>> sorted(i.name for i in model.graph.initializer)[:3]
    ['bn1.bias', 'bn1.running_mean', 'bn1.running_var']

Names follow the spec: the ONNX node and its output tensor carry the layer's
name (`layer1.conv1`); helper tensors of a layer lowered to several nodes are
`layer1.conv1:<what>`. Initializers are exactly the parameters, named as in the
PyTorch module's state_dict (`{layer}.weight`, `.bias`, BN `.running_mean`,
`.running_var`); other constants are Constant nodes, so that the initializer
set equals the state_dict minus `num_batches_tracked`.

Layout NCHW, batch dimension `N` (dynamic) unless a fixed batch is asked for.
"""
from __future__ import annotations

import functools
import json
import math
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from ..errors import CnnError

DEFAULT_OPSET = 17   # onnxruntime >= 1.13 loads it (IR 8); pyproject allows onnxruntime >= 1.17
MIN_OPSET = 13       # Softmax(axis=1) means "over channels" only from 13 on; Clip takes min/max as inputs from 11
BATCH_DIM = "N"
EXPORT_COPIES = 2  # an export built in memory holds its weights 3.0-3.1 times at its peak (maxrss): at least 2
LARGE_MODEL = 1_900_000_000  # protobuf caps a message at 2 GiB: bigger weights go to an external .data file


# ---- parameters -------------------------------------------------------------------------------
# The lowering of each kind is `Kind.onnx(builder, node, inputs)` (cnndsl/kinds/); its parameter
# tensors are `Kind.tensors`. This module keeps no table of op names.

def param_tensors(graph) -> dict[str, object]:
    """{state_dict key: kinds.Tensor} for every float parameter and buffer ONNX needs, in graph order
    (BN's int64 num_batches_tracked is not one of them)."""
    return {k: t for k, t in graph.tensors().items() if t.dtype == "float32"}


def param_shapes(graph) -> dict[str, tuple]:
    """{state_dict key: shape} for every parameter and BN buffer ONNX needs, in graph order."""
    return {k: t.shape for k, t in param_tensors(graph).items()}


def random_weights(graph, seed=None) -> dict[str, np.ndarray]:
    """PyTorch's default initialisation, as each kind's tensors name it (`Tensor.init`): weights
    U(-1/sqrt(fan_in), 1/sqrt(fan_in)), biases with their weight's bound, ones and zeros."""
    return dict(_random_arrays(graph, seed))


def _random_arrays(graph, seed):
    """random_weights one tensor at a time, in graph order: an export writes each and lets it go."""
    rng = np.random.default_rng(seed)
    fan_in = {}
    for key, t in param_tensors(graph).items():
        layer, _ = key.rsplit(".", 1)
        if t.init in ("fan_in_uniform", "fan_in_uniform_bias"):
            if t.init == "fan_in_uniform":
                fan_in[layer] = math.prod(t.shape[1:])
            bound = 1.0 / math.sqrt(fan_in[layer])
            w = rng.random(t.shape, dtype=np.float32)
            w *= 2 * bound
            w -= bound
            yield key, w
        else:
            yield key, np.full(t.shape, {"ones": 1.0, "zeros": 0.0}.get(t.init, t.fill), np.float32)


def load_weights(weights, graph, strict=True, here=None, seed=None, mapping=None) -> tuple[dict[str, np.ndarray], dict]:
    """A module, a state_dict, or a checkpoint path -> ({key: float32 array}, load report), resolved
    exactly as to_torch(weights=...) resolves it (cnndsl.weights.resolve; `mapping` as its); with
    strict=False what the checkpoint lacks or has in another shape keeps PyTorch's default initialisation."""
    arrays, report = _loaded_arrays(weights, graph, strict, here, seed, mapping=mapping)
    return dict(arrays), report


def _loaded_arrays(weights, graph, strict, here, seed, mapping=None):
    """(an iterator of (key, float32 array) in graph order, the load report): each array is the
    checkpoint's tensor itself where it is float32 already (no copy)."""
    from ..weights import foreign_layouts, module_feeds, resolve
    facts = param_tensors(graph)
    want = {k: t.shape for k, t in facts.items()}
    tensors, report = resolve(_as_arrays(weights), want, strict=strict, here=here, layouts=foreign_layouts(facts),
                              feeds=module_feeds(graph), mapping=mapping)

    def arrays():
        fill = _random_arrays(graph, seed) if len(tensors) < len(want) else None
        for k in want:
            random = next(fill)[1] if fill is not None else None  # drawn for every key: the same stream
            yield k, random if k not in tensors else np.ascontiguousarray(_to_numpy(tensors.pop(k)), dtype=np.float32)
    return arrays(), report


def _as_arrays(weights):
    """A safetensors checkpoint path as (numpy state_dict, metadata, path), read without torch: an
    ONNX export needs no torch. Anything else as given, for cnndsl.weights to read (a .pt file needs
    torch; a bf16 tensor has no numpy type; an unreadable file gets weights.read's error)."""
    if not isinstance(weights, (str, os.PathLike)) or os.fspath(weights).endswith((".pt", ".pth")):
        return weights
    from safetensors.numpy import load
    from ..files import size_of, user_file
    from ..memory import require
    path = os.fspath(weights)
    try:
        with user_file(path, "--weights") as f:  # a pipe or a device is refused before a byte is read
            require(2 * size_of(f), f"the checkpoint {path}")  # its bytes, and the arrays made from them
            data = f.read()
        sd = load(data)
        meta = json.loads(data[8:8 + int.from_bytes(data[:8], "little")]).get("__metadata__") or {}
    except Exception:
        return weights
    return sd, {str(k): str(v) for k, v in meta.items()}, path


def _to_numpy(v):
    if isinstance(v, np.ndarray):
        return v
    if hasattr(v, "detach"):  # a torch tensor; bf16 has no numpy type, hence float()
        return v.detach().cpu().float().numpy()
    return np.asarray(v)


# ---- the builder -------------------------------------------------------------------------------
class _Builder:
    """What a kind's `onnx` lowering appends nodes to; `opset` is the target opset."""

    def __init__(self, graph, opset=DEFAULT_OPSET):
        self.graph, self.opset = graph, opset
        self.nodes: list = []
        self._consts: dict = {}
        self._count: dict = {}

    def shape_of(self, name):
        return self.graph.shape_of(name)

    def node(self, op, inputs, n, out=None, **attrs):
        """Append an ONNX node for IR node n; its output is n.name unless `out` names a helper tensor."""
        out = out or n.name
        node = helper.make_node(op, list(inputs), [out], name=out, **attrs)
        if n.span is not None:
            node.doc_string = f"{n.span}"
        self.nodes.append(node)
        return out

    def const(self, n, what, array):
        name = self._fresh(f"{n.name}:{what}")
        t = numpy_helper.from_array(np.asarray(array), name=name)
        self.nodes.append(helper.make_node("Constant", [], [name], name=name, value=t))
        return name

    def ints(self, n, what, values):
        return self.const(n, what, np.asarray(values, np.int64))

    def scalar(self, value):
        """A float32 scalar shared by every layer that uses the same value (Clip bounds, ratios)."""
        key = float(value)
        if key not in self._consts:
            name = f":const:{key!r}"
            t = numpy_helper.from_array(np.asarray(key, np.float32), name=name)
            self.nodes.append(helper.make_node("Constant", [], [name], name=name, value=t))
            self._consts[key] = name
        return self._consts[key]

    def _fresh(self, name):
        k = self._count.get(name, 0)
        self._count[name] = k + 1
        return name if k == 0 else f"{name}{k}"


def _nchw(shape):
    return [shape[2], shape[0], shape[1]] if len(shape) == 3 else list(shape)


def check_opset(opset) -> int:
    if opset is None:
        return DEFAULT_OPSET
    newest = onnx.defs.onnx_opset_version()
    if isinstance(opset, bool) or not isinstance(opset, int) or not MIN_OPSET <= opset <= newest:
        raise CnnError(f"opset {opset!r} is not supported", usage=True,
                       hint=f"choose {MIN_OPSET}..{newest} (default {DEFAULT_OPSET}), one that your onnxruntime "
                            f"({_ort_version()}) supports too")
    return opset


def _ort_version():
    try:
        from importlib.metadata import version
        for dist in ("onnxruntime-gpu", "onnxruntime"):
            try:
                return version(dist)
            except Exception:
                continue
    except Exception:
        pass
    return "(not installed)"


@functools.lru_cache(maxsize=None)
def runtime_max_opset():
    """(onnxruntime version, the newest opset it loads), or None when onnxruntime is not installed.

    onnxruntime publishes no such number, and its version alone says nothing about a build from
    source, so ask it: open a one-node model per opset, newest first (under a millisecond each;
    the import of onnxruntime is the cost, ~0.2 s, paid only for an opset above the default)."""
    try:
        import onnxruntime as ort
    except Exception:
        return None
    opts = ort.SessionOptions()
    opts.log_severity_level = 4  # fatal only: a refused probe is an answer, not news
    for opset in range(onnx.defs.onnx_opset_version(), MIN_OPSET - 1, -1):
        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
        y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])
        g = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "probe", [x], [y])
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], ir_version=_ir_version(opset))
        try:
            ort.InferenceSession(m.SerializeToString(), sess_options=opts, providers=["CPUExecutionProvider"])
        except Exception:
            continue
        return ort.__version__, opset
    return ort.__version__, None


def runtime_warning(opset) -> str | None:
    """One line when the installed onnxruntime would refuse a model of this opset, else None."""
    if opset is None or opset <= DEFAULT_OPSET:  # every onnxruntime cnndsl supports loads these
        return None
    found = runtime_max_opset()
    if found is None or found[1] is None or opset <= found[1]:
        return None
    version, newest = found
    return (f"the installed onnxruntime {version} loads opsets up to {newest}, not {opset}: `cnndsl run` will "
            f"refuse this model (export with --opset {newest} unless it is meant for a newer runtime)")


def _ir_version(opset):
    """The IR version of the first onnx release that knew this opset: the oldest runtime that can load it."""
    for _release, ir, ai_onnx, *_ in helper.VERSION_TABLE:
        if ai_onnx >= opset:
            return ir
    return helper.VERSION_TABLE[-1][1]


def check_batch(batch):
    if batch == "dynamic" or batch is None:
        return BATCH_DIM
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise CnnError(f"batch {batch!r} must be a positive whole number or 'dynamic'", usage=True)
    return batch


def build(net, weights=None, opset=None, batch="dynamic", seed=None, weights_strict=True,
          normalize=None, weights_mapping=None) -> onnx.ModelProto:
    """The ModelProto for `net` (no file written). With `weights`, the load report (cnndsl.weights)
    is kept as JSON in the model's metadata_props["cnndsl.weights"]; the input's preprocessing, in
    metadata_props["cnndsl.preprocessing"] (cnndsl.backends.onnx_preprocessing); `normalize`
    ("raw" or "unit") starts the graph with it; `weights_mapping` places foreign modules (cnndsl.weights)."""
    model, params = _prepare(net, weights, opset, batch, seed, weights_strict, normalize, weights_mapping)
    for t, data in _initializers(model, params):
        t.raw_data = bytes(data)
    return model


def _prepare(net, weights, opset, batch, seed, weights_strict, normalize, weights_mapping=None):
    """(the model without its initializers, an iterator of (key, float32 array) in graph order)."""
    from . import onnx_preprocessing as P
    check_opset(opset), check_batch(batch)  # usage errors before a checkpoint is read
    if weights is None:
        params, report, meta = _random_arrays(net.graph, seed), None, None
    else:
        params, report = _loaded_arrays(weights, net.graph, weights_strict, net.spec_info, seed, mapping=weights_mapping)
        meta = report["checkpoint"]
    pre = P.record(meta, weights)
    if normalize:
        pre = P.in_graph(pre, normalize, P.in_graph_scale(pre, normalize))
    model = structure(net, opset, batch, pre=pre, typed_params=False)
    props = P.props(pre, P.classes(meta))
    if report is not None:
        props["cnndsl.weights"] = json.dumps(report)
    helper.set_model_props(model, props)
    # ONNX's own inference on the weightless twin (milliseconds): shapes on every edge in Netron
    inferred = onnx.shape_inference.infer_shapes(structure(net, opset, batch, pre=pre))
    model.graph.value_info.extend(inferred.graph.value_info)
    return model, params


def _initializers(model, params):
    """For each (key, array): its initializer, appended to the model, and the array's bytes, a view."""
    for key, array in params:  # straight into the model: make_graph/make_model would copy each twice
        t = model.graph.initializer.add()
        t.name, t.data_type = key, TensorProto.FLOAT
        t.dims.extend(array.shape)
        # ONNX stores raw data little-endian; on a little-endian machine this is the array itself
        yield t, memoryview(np.ascontiguousarray(array.astype("<f4", copy=False)).reshape(-1)).cast("B")


def structure(net, opset=None, batch="dynamic", pre=None, typed_params=True) -> onnx.ModelProto:
    """The same graph with the parameters as typed graph inputs instead of initializers: kilobytes
    instead of the weights' size, for checking and drawing the architecture (not for running).
    `pre`: the preprocessing record; its Sub and Div nodes go first when it is `in_graph`.
    `typed_params=False`: the graph without the parameters, the model that initializers complete."""
    opset, batch_dim = check_opset(opset), check_batch(batch)
    extra = [helper.make_tensor_value_info(k, TensorProto.FLOAT, list(shape))
             for k, shape in param_shapes(net.graph).items()] if typed_params else []
    return _model(net, opset, batch_dim, extra_inputs=extra, pre=pre)


def _model(net, opset, batch_dim, extra_inputs=(), pre=None):
    graph = net.graph
    b = _Builder(graph, opset)
    for n in graph.nodes:
        n.kind.onnx(b, n, list(n.inputs))
    if not graph.nodes:  # `input 8x8x3` alone: the identity network
        b.nodes.append(helper.make_node("Identity", ["input"], ["output"], name="output"))
    nodes = b.nodes
    if pre is not None and pre.get("in_graph"):
        from .onnx_preprocessing import prepend
        nodes = prepend(graph.input_shape, nodes, pre)
    out_name = graph.output if graph.nodes else "output"
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, [batch_dim, *_nchw(graph.input_shape)])
    y = helper.make_tensor_value_info(out_name, TensorProto.FLOAT, [batch_dim, *_nchw(graph.shape_of(graph.output))])
    g = helper.make_graph(nodes, net.name, [x, *extra_inputs], [y],
                          doc_string=f"from {net.path} by cnndsl")
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], ir_version=_ir_version(opset),
                             producer_name="cnndsl", producer_version=_cnndsl_version())


def _cnndsl_version():
    from ..version import __version__
    return __version__


def export(net, path=None, weights=None, opset=None, batch="dynamic", seed=None,
           weights_strict=True, normalize=None, weights_mapping=None) -> onnx.ModelProto:
    """Build the model and, when `path` is given, write it there (atomically). Weights over
    LARGE_MODEL bytes go to PATH.data one tensor at a time, never all in memory; the model returned
    then names them there (its initializers hold no data)."""
    from ..memory import require_disk, require_network
    if path is None or param_bytes(net.graph) < LARGE_MODEL:
        require_network(net.graph, "an ONNX model of this network", copies=EXPORT_COPIES)
        model = build(net, weights=weights, opset=opset, batch=batch, seed=seed, weights_strict=weights_strict,
                      normalize=normalize, weights_mapping=weights_mapping)
        if path is not None:
            write(model, os.fspath(path))
    else:
        require_network(net.graph, "an ONNX model of this network", largest=True)
        require_disk(param_bytes(net.graph), os.path.dirname(os.path.abspath(path)), f"{path}.data")
        model, params = _prepare(net, weights, opset, batch, seed, weights_strict, normalize, weights_mapping)
        _write_external(model, _initializers(model, params), os.fspath(path))
    warning = runtime_warning(opset)
    if warning:  # still written: the model may be meant for a newer runtime than this machine's
        import warnings
        warnings.warn(warning, RuntimeWarning, stacklevel=3)
    return model


def param_bytes(graph) -> int:
    return 4 * sum(math.prod(shape) for shape in param_shapes(graph).values())


def write(model, path):
    """Write a built model atomically: one file, or over LARGE_MODEL bytes of weights (protobuf caps
    a message at 2 GiB) the model and PATH.data beside it."""
    size = sum(len(t.raw_data) for t in model.graph.initializer)
    if size < LARGE_MODEL:
        from ..files import atomic_write
        atomic_write(path, model.SerializeToString())
        return
    _write_external(model, ((t, t.raw_data) for t in model.graph.initializer), path)


def _write_external(model, tensors, path):
    """The model at `path` and its tensors' bytes in PATH.data, both written afresh into temporary
    files beside them and renamed over them, the data first: an old PATH.data is replaced whole
    (onnx.save_model appends to it), and a failure leaves both old files. `tensors`: (initializer,
    its bytes) pairs, consumed one at a time; each initializer is pointed at its bytes there."""
    from ..files import atomic_files
    location = os.path.basename(path) + ".data"
    with atomic_files(os.path.join(os.path.dirname(path), location), path) as (data, out):
        offset = 0
        for t, raw in tensors:
            n = data.write(raw)
            t.ClearField("raw_data")
            del t.external_data[:]
            t.data_location = TensorProto.EXTERNAL
            for key, value in (("location", location), ("offset", str(offset)), ("length", str(n))):
                entry = t.external_data.add()
                entry.key, entry.value = key, value
            offset += n
        out.write(model.SerializeToString())
