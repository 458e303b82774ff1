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
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from ..errors import CnnError

DEFAULT_OPSET = 17   # onnxruntime >= 1.13 loads it (IR 8); pyproject allows onnxruntime >= 1.17
MIN_OPSET = 13       # Softmax(axis=1) means "over channels" only from 13 on; Clip takes min/max as inputs from 11
BATCH_DIM = "N"
LARGE_MODEL = 1_900_000_000  # protobuf caps a message at 2 GiB: bigger weights go to an external .data file


# ---- the table ---------------------------------------------------------------------------------
# Each entry: emit(b, node, xs) where xs are the input tensor names; it appends nodes whose last
# output is the tensor named node.name.

def _conv(b, n, xs):
    a = n.attrs
    ins = [xs[0], f"{n.name}.weight"] + ([f"{n.name}.bias"] if a["bias"] else [])
    ph, pw = a["p"]
    b.node("Conv", ins, n, kernel_shape=list(a["kernel"]), strides=list(a["s"]), pads=[ph, pw, ph, pw],
           dilations=list(a["d"]), group=a["groups"])


def _maxpool(b, n, xs):
    _pool(b, n, xs, "MaxPool", {})


def _avgpool(b, n, xs):
    _pool(b, n, xs, "AveragePool", {"count_include_pad": int(bool(n.attrs["count_pad"]))})


def _pool(b, n, xs, op, extra):
    a = n.attrs
    (kh, kw), (sh, sw), (ph, pw) = a["kernel"], a["s"], a["p"]
    H, W, _ = b.shape_of(n.inputs[0])
    oh, ow, _ = n.out_shape
    common = dict(kernel_shape=[kh, kw], strides=[sh, sw])
    floor = [(H + 2 * ph - kh) // sh + 1, (W + 2 * pw - kw) // sw + 1]
    ceil = [-(-(H + 2 * ph - kh) // sh) + 1, -(-(W + 2 * pw - kw) // sw) + 1]
    if not a["ceil"] or [oh, ow] in (ceil, floor):
        # ONNX's ceil_mode rounds up without PyTorch's rule that a last window starting in the right
        # padding is dropped; where that rule removed the extra window everywhere, floor is exact
        b.node(op, xs[:1], n, pads=[ph, pw, ph, pw], ceil_mode=int([oh, ow] != floor), **common, **extra)
        return
    # the rule applies along one axis only: pad the end explicitly so that floor gives PyTorch's count
    eh, ew = max(0, (oh - 1) * sh + kh - (H + 2 * ph)), max(0, (ow - 1) * sw + kw - (W + 2 * pw))
    if op == "MaxPool":
        b.node(op, xs[:1], n, pads=[ph, pw, ph + eh, pw + ew], **common)
    elif not a["count_pad"] or (ph, pw) == (0, 0):
        b.node(op, xs[:1], n, pads=[ph, pw, ph + eh, pw + ew], count_include_pad=0, **common)
    else:
        # PyTorch counts the symmetric padding but not the overhang: make the padding real zeros
        pads = b.ints(n, "pads", [0, 0, ph, pw, 0, 0, ph, pw])
        x = b.node("Pad", [xs[0], pads], n, out=f"{n.name}:padded")
        b.node(op, [x], n, pads=[0, 0, eh, ew], count_include_pad=0, **common)


def _gap(b, n, xs):
    b.node("GlobalAveragePool", xs[:1], n)


def _adaptive(b, n, xs):
    """PyTorch's adaptive average pool, exactly: bin i spans [floor(i*H/h), ceil((i+1)*H/h))."""
    H, W, _ = b.shape_of(n.inputs[0])
    oh, ow = n.attrs["size"]
    if (H, W) == (oh, ow):
        b.node("Identity", xs[:1], n)
    elif (oh, ow) == (1, 1):
        b.node("GlobalAveragePool", xs[:1], n)
    elif H % oh == 0 and W % ow == 0:
        k = [H // oh, W // ow]
        b.node("AveragePool", xs[:1], n, kernel_shape=k, strides=k)
    else:
        # uneven bins: y = A_h @ x @ A_w^T with averaging matrices, a standard MatMul either side
        rows = b.const(n, "rows", _bins(H, oh))          # (oh, H), broadcast over N, C
        cols = b.const(n, "cols", _bins(W, ow).T.copy())  # (W, ow)
        half = b.node("MatMul", [rows, xs[0]], n, out=f"{n.name}:rows_pooled")
        b.node("MatMul", [half, cols], n)


def _bins(size, out):
    m = np.zeros((out, size), np.float32)
    for i in range(out):
        lo, hi = (i * size) // out, -(-((i + 1) * size) // out)
        m[i, lo:hi] = 1.0 / (hi - lo)
    return m


def _fc(b, n, xs):
    ins = [xs[0], f"{n.name}.weight"] + ([f"{n.name}.bias"] if n.attrs["bias"] else [])
    b.node("Gemm", ins, n, transB=1)


def _flatten(b, n, xs):
    b.node("Flatten", xs[:1], n, axis=1)


def _simple(op, **attrs):
    def emit(b, n, xs):
        b.node(op, xs[:1], n, **attrs)
    emit.__name__ = f"_{op.lower()}"
    return emit


def _relu6(b, n, xs):
    b.node("Clip", [xs[0], b.scalar(0.0), b.scalar(6.0)], n)


def _leakyrelu(b, n, xs):
    b.node("LeakyRelu", xs[:1], n, alpha=float(n.attrs["slope"]))


def _bn(b, n, xs):
    p = n.name
    b.node("BatchNormalization", [xs[0], f"{p}.weight", f"{p}.bias", f"{p}.running_mean", f"{p}.running_var"], n,
           epsilon=float(n.attrs["eps"]))


def _lrn(b, n, xs):
    a = n.attrs
    size, alpha, beta, k = a["size"], float(a["alpha"]), float(a["beta"]), float(a["k"])
    if size % 2:
        b.node("LRN", xs[:1], n, size=size, alpha=alpha, beta=beta, bias=k)
        return
    # Even windows: ONNX's LRN looks at (size-1)//2 channels before and size//2 after, PyTorch's at
    # size//2 before and (size-1)//2 after; lower it as PyTorch does (pad, average over channels).
    sq = b.node("Mul", [xs[0], xs[0]], n, out=f"{n.name}:square")
    x5 = b.node("Unsqueeze", [sq, b.ints(n, "axis", [1])], n, out=f"{n.name}:square5d")
    pads = b.ints(n, "pads", [0, 0, size // 2, 0, 0, 0, 0, (size - 1) // 2, 0, 0])
    padded = b.node("Pad", [x5, pads], n, out=f"{n.name}:padded")
    avg = b.node("AveragePool", [padded], n, out=f"{n.name}:avg5d", kernel_shape=[size, 1, 1])
    avg = b.node("Squeeze", [avg, b.ints(n, "axis", [1])], n, out=f"{n.name}:avg")
    scaled = b.node("Mul", [avg, b.scalar(alpha)], n, out=f"{n.name}:scaled")
    shifted = b.node("Add", [scaled, b.scalar(k)], n, out=f"{n.name}:shifted")
    div = b.node("Pow", [shifted, b.scalar(beta)], n, out=f"{n.name}:divisor")
    b.node("Div", [xs[0], div], n)


def _dropout(b, n, xs):
    b.node("Dropout", [xs[0], b.scalar(float(n.attrs["p"]))], n)  # inference: passes x through


def _concat(b, n, xs):
    b.node("Concat", xs, n, axis=1)


def _add(b, n, xs):
    b.node({1: "Identity", 2: "Add"}.get(len(xs), "Sum"), xs, n)


EMIT = {
    "CONV": _conv, "MAXPOOL": _maxpool, "AVGPOOL": _avgpool, "GAP": _gap, "ADAPTIVEAVGPOOL": _adaptive,
    "FC": _fc, "FLATTEN": _flatten, "RELU": _simple("Relu"), "RELU6": _relu6, "LEAKYRELU": _leakyrelu,
    "SIGMOID": _simple("Sigmoid"), "TANH": _simple("Tanh"), "SOFTPLUS": _simple("Softplus"),
    "SOFTMAX": _simple("Softmax", axis=1), "BN": _bn, "LRN": _lrn, "DROPOUT": _dropout,
    "ID": _simple("Identity"),  # never in the IR (an edge), kept so that the table covers every kind
    "CONCAT": _concat, "ADD": _add,
}


# ---- parameters -------------------------------------------------------------------------------
def param_shapes(graph) -> dict[str, tuple]:
    """{state_dict key: shape} for every parameter and BN buffer ONNX needs, in graph order."""
    out = {}
    for n in graph.nodes:
        a = n.attrs
        if n.op == "CONV":
            cin = graph.shape_of(n.inputs[0])[2]
            out[f"{n.name}.weight"] = (a["filters"], cin // a["groups"], *a["kernel"])
            if a["bias"]:
                out[f"{n.name}.bias"] = (a["filters"],)
        elif n.op == "FC":
            out[f"{n.name}.weight"] = (a["units"], graph.shape_of(n.inputs[0])[0])
            if a["bias"]:
                out[f"{n.name}.bias"] = (a["units"],)
        elif n.op == "BN":
            c = graph.shape_of(n.inputs[0])[-1]
            for what in ("weight", "bias", "running_mean", "running_var"):
                out[f"{n.name}.{what}"] = (c,)
    return out


def random_weights(graph, seed=None) -> dict[str, np.ndarray]:
    """PyTorch's default initialisation: CONV/FC weight and bias U(-1/sqrt(fan_in), 1/sqrt(fan_in)),
    BN scale 1, shift 0, running mean 0, variance 1."""
    rng = np.random.default_rng(seed)
    out = {}
    fan_in = {}
    for key, shape in param_shapes(graph).items():
        layer, what = key.rsplit(".", 1)
        if what == "weight" and len(shape) >= 2:  # CONV or FC; BN's weight is 1-d
            fan_in[layer] = math.prod(shape[1:])
        if layer in fan_in:
            bound = 1.0 / math.sqrt(fan_in[layer])
            w = rng.random(shape, dtype=np.float32)
            w *= 2 * bound
            w -= bound
            out[key] = w
        else:
            out[key] = (np.ones if what in ("weight", "running_var") else np.zeros)(shape, np.float32)
    return out


def load_weights(weights, graph, strict=True, here=None, seed=None) -> tuple[dict[str, np.ndarray], dict]:
    """A module, a state_dict, or a checkpoint path -> ({key: float32 array}, load report), resolved
    exactly as to_torch(weights=...) resolves it (cnndsl.weights.resolve); with strict=False
    what the checkpoint lacks or has in another shape keeps PyTorch's default initialisation."""
    from ..weights import resolve
    want = param_shapes(graph)
    tensors, report = resolve(weights, want, strict=strict, here=here)
    fill = random_weights(graph, seed) if len(tensors) < len(want) else {}
    out = {}
    for k, shape in want.items():
        if k not in tensors:
            out[k] = fill[k]
            continue
        out[k] = np.ascontiguousarray(_to_numpy(tensors[k]), dtype=np.float32)
    return out, report


def _to_numpy(v):
    if isinstance(v, np.ndarray):
        return v
    if hasattr(v, "detach"):  # a torch tensor; bf16 has no numpy type, hence float()
        return v.detach().cpu().float().numpy()
    return np.asarray(v)


# ---- the builder -------------------------------------------------------------------------------
class _Builder:
    def __init__(self, graph):
        self.graph = graph
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


def build(net, weights=None, opset=None, batch="dynamic", seed=None, weights_strict=True) -> onnx.ModelProto:
    """The ModelProto for `net` (no file written). With `weights`, the load report (cnndsl.weights)
    is kept as JSON in the model's metadata_props["cnndsl.weights"]."""
    opset, batch_dim = check_opset(opset), check_batch(batch)
    report = None
    if weights is None:
        params = random_weights(net.graph, seed)
    else:
        params, report = load_weights(weights, net.graph, strict=weights_strict, here=net.spec_info, seed=seed)
    model = _model(net, opset, batch_dim)
    if report is not None:
        helper.set_model_props(model, {"cnndsl.weights": json.dumps(report)})
    for key, array in params.items():  # straight into the model: make_graph/make_model would copy each twice
        t = model.graph.initializer.add()
        t.name, t.data_type = key, TensorProto.FLOAT
        t.dims.extend(array.shape)
        t.raw_data = array.astype("<f4", copy=False).tobytes()  # ONNX stores raw data little-endian
    # ONNX's own inference on the weightless twin (milliseconds): shapes on every edge in Netron
    inferred = onnx.shape_inference.infer_shapes(structure(net, opset, batch))
    model.graph.value_info.extend(inferred.graph.value_info)
    return model


def structure(net, opset=None, batch="dynamic") -> onnx.ModelProto:
    """The same graph with the parameters as typed graph inputs instead of initializers: kilobytes
    instead of the weights' size, for checking and drawing the architecture (not for running)."""
    opset, batch_dim = check_opset(opset), check_batch(batch)
    extra = [helper.make_tensor_value_info(k, TensorProto.FLOAT, list(shape))
             for k, shape in param_shapes(net.graph).items()]
    return _model(net, opset, batch_dim, extra_inputs=extra)


def _model(net, opset, batch_dim, extra_inputs=()):
    graph = net.graph
    b = _Builder(graph)
    for n in graph.nodes:
        emit = EMIT.get(n.op)
        if emit is None:  # a kind added to layers.py without an ONNX lowering: a bug, caught by tests
            raise CnnError(f"layer {n.name}: the ONNX backend has no lowering for {n.op}", n.span)
        emit(b, n, list(n.inputs))
    if not graph.nodes:  # `input 8x8x3` alone: the identity network
        b.nodes.append(helper.make_node("Identity", ["input"], ["output"], name="output"))
    out_name = graph.output if graph.nodes else "output"
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, [batch_dim, *_nchw(graph.input_shape)])
    y = helper.make_tensor_value_info(out_name, TensorProto.FLOAT, [batch_dim, *_nchw(graph.shape_of(graph.output))])
    g = helper.make_graph(b.nodes, net.name, [x, *extra_inputs], [y],
                          doc_string=f"from {net.path} by cnndsl")
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], ir_version=_ir_version(opset),
                             producer_name="cnndsl", producer_version=_cnndsl_version())


def _cnndsl_version():
    from .. import __version__
    return __version__


def export(net, path=None, weights=None, opset=None, batch="dynamic", seed=None,
           weights_strict=True) -> onnx.ModelProto:
    """Build the model and, when `path` is given, write it there (atomically)."""
    model = build(net, weights=weights, opset=opset, batch=batch, seed=seed, weights_strict=weights_strict)
    if path is not None:
        write(model, os.fspath(path))
    warning = runtime_warning(opset)
    if warning:  # still written: the model may be meant for a newer runtime than this machine's
        print(f"cnndsl: warning: {warning}", file=sys.stderr)
    return model


def write(model, path):
    size = sum(len(t.raw_data) for t in model.graph.initializer)
    if size < LARGE_MODEL:
        from ..files import atomic_write
        atomic_write(path, model.SerializeToString())
        return
    # over protobuf's 2 GiB: weights beside the model in PATH.data (not atomic, as onnx writes it)
    try:
        onnx.save_model(model, path, save_as_external_data=True, all_tensors_to_one_file=True,
                        location=os.path.basename(path) + ".data", size_threshold=1024)
    except OSError as e:
        raise CnnError(f"cannot write {path}: {e.strerror}", usage=True) from None
