"""ONNX pass: each remaining node, by its op, to one layer (a table: op -> rule).

A rule lifts the node (layers.lift: the kind's argument names, PyTorch's where ONNX has no word of
the language) or returns why it cannot; `UNSUPPORTED` says why for ops the language lacks. Run after
onnx_patterns and pointwise, which take the groups of nodes; what is left unlifted after this pass is
refused by name.

    >>> import onnx, onnx.helper as h, numpy as np
    >>> from cnndsl.importers import onnx as O
    >>> x = h.make_tensor_value_info("x", 1, [1, 3, 8, 8])
    >>> w = h.make_tensor("w", 1, [4, 3, 3, 3], np.zeros(108))
    >>> node = h.make_node("Conv", ["x", "w"], ["y"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[2, 2])
    >>> g = O.from_model(h.make_model(h.make_graph([node], "g", [x], [h.make_tensor_value_info("y", 1, None)], [w])))
    >>> lift(g); g.nodes[0].op, g.nodes[0].attrs
    ('CONV', {'filters': 4, 'kernel': 3, 's': 2, 'p': 1, 'd': 1, 'groups': 1, 'bias': False})
"""
from __future__ import annotations

from ..kinds import ShapeError
from ..kinds.conv import TF_SAME, tf_same_padding
from .layers import lift as make

UNSUPPORTED = {
    "ConvTranspose": "a transposed convolution (upsampling): the language has none",
    "Transpose": "a transpose of axes outside a layer the language knows (layer norm, channel shuffle)",
    "Loop": "data-dependent control flow (a loop)",
    "Scan": "data-dependent control flow (a scan)",
    "If": "data-dependent control flow (an If whose condition depends on the input)",
    "LogSoftmax": "a log-softmax: the language has SOFTMAX only",
    "Gather": "indexing by values (Gather) outside the shape arithmetic the importer folds",
    "RNN": "a recurrent layer", "LSTM": "a recurrent layer", "GRU": "a recurrent layer",
}


def lift(graph) -> None:
    """Lift every node a rule of RULES takes; record why the others are refused (meta["why"])."""
    dims = {n.name: n.meta.get("dims") for n in graph.nodes}
    s = graph.input_shape
    dims["input"] = [1, s[2], s[0], s[1]] if len(s) == 3 else [1, s[0]]
    for n in list(graph.nodes):
        if n.lifted:
            continue
        rule = RULES.get(n.op)
        if rule is None:
            why = UNSUPPORTED.get(n.op, f"the language has no layer for ONNX's {n.op}")
        elif any(not dims.get(i) for i in n.inputs) or not dims.get(n.name):
            why = "its shapes are unknown (onnx's shape inference stops before it)"
        else:
            try:
                why = rule(n, dims, graph)
            except (TypeError, ValueError, KeyError, IndexError, AttributeError, ShapeError) as e:  # unlike an exporter's
                why = getattr(e, "message", None) or f"its attributes or inputs cannot be read ({type(e).__name__}: {e})"
        if why:
            n.meta["why"] = why


def _ints(v, default):
    return list(v) if v is not None else list(default)


def _pads(n, dims_in, kernel, strides, dilations):
    """(ph, pw) from ONNX's pads or auto_pad, "tf_same" where they are TensorFlow's SAME for this input
    (the smaller half before: SAME_UPPER, or timm's Conv2dSame padded first), or a reason they cannot
    be written."""
    auto = n.attrs.get("auto_pad", "NOTSET")
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        total = []
        for size, k, s, d in zip(dims_in[2:], kernel, strides, dilations):
            out = -(-size // s)
            total.append(max(0, (out - 1) * s + d * (k - 1) + 1 - size))
        if any(t % 2 for t in total):
            if auto == "SAME_UPPER":
                return TF_SAME
            return f"{auto} padding is uneven ({total}), the larger half before: PyTorch pads both sides alike"
        return (total[0] // 2, total[1] // 2)
    pads = _ints(n.attrs.get("pads"), [0, 0, 0, 0]) if auto in ("NOTSET", "") else [0, 0, 0, 0]
    if pads[:2] != pads[2:]:
        (t, b), (l, r) = tf_same_padding({"kernel": tuple(kernel), "s": tuple(strides), "d": tuple(dilations)}, dims_in[2:])
        return TF_SAME if pads == [t, l, b, r] else pads
    return tuple(pads[:2])


def _conv(n, dims, graph):
    w, b = n.consts.get(1), n.consts.get(2)
    if w is None or len(n.inputs) != 1:
        return "its weights are computed from the input, not stored"
    if w.ndim != 4:
        return f"a {w.ndim - 2}-d convolution: the language's CONV is 2-d"
    kernel = _ints(n.attrs.get("kernel_shape"), w.shape[2:])
    strides = _ints(n.attrs.get("strides"), [1, 1])
    dilations = _ints(n.attrs.get("dilations"), [1, 1])
    pads = _pads(n, dims[n.inputs[0]], kernel, strides, dilations)
    if (isinstance(pads, str) and pads != TF_SAME) or len(pads) == 4:
        return pads if isinstance(pads, str) else f"padding {pads} differs between the sides: PyTorch pads both alike"
    from .bn_unfold import folded
    n.meta["folded_bn"] = folded(n.meta.get("const_names", {}).get(1, ""))
    args = {"filters": w.shape[0], "kernel": kernel, "stride": strides, "padding": pads, "dilation": dilations,
            "groups": n.attrs.get("group", 1), "bias": b is not None}
    if 1 in n.meta.get("computed", {}) and _standardised(n, w, args, b, graph):
        return None
    make(n, "CONV", {"filters": w.shape[0], "kernel": kernel, "stride": strides, "padding": pads,
                     "dilation": dilations, "groups": n.attrs.get("group", 1), "bias": b is not None},
         {"weight": w, **({"bias": b} if b is not None else {})})


def _standardised(n, w, args, b, graph) -> bool:
    """A conv whose weight is computed from a stored one by standardising each filter (and scaling
    it by a gain): STDCONV or SCALEDSTDCONV. The exporter has folded the gains with SCALEDSTDCONV's
    gamma / sqrt(fan_in), which cannot be told apart: imported with gamma 1, the gains holding it."""
    from .layers import clean_float
    from .numeric import judge_standardised
    found = judge_standardised(w, *n.meta["computed"][1])
    if found is None:
        return False
    raw, eps, gains = found
    bias = {"bias": b} if b is not None else {}
    if gains is None:
        make(n, "STDCONV", {**args, "eps": clean_float(eps)}, {"weight": raw, **bias})
        return True
    import numpy as np
    gains = gains * np.sqrt(raw[0].size)
    same = bool(np.allclose(gains, gains[0], rtol=1e-6, atol=0))
    short = float(f"{gains[0]:.6g}")  # 0.5, not 0.50000004: the gains went through float32 products
    gain = (short if abs(short - gains[0]) <= 1e-6 * abs(short) else clean_float(gains[0])) if same else 1.0
    make(n, "SCALEDSTDCONV", {**args, "eps": clean_float(eps), "gain": gain},
         {"weight": raw, **bias, "gain": gains.reshape(-1, 1, 1, 1)})
    note = "the exporter folded SCALEDSTDCONV's gamma / sqrt(fan_in) into its gains: imported with gamma 1, the gains holding it"
    if note not in graph.notes:
        graph.notes.append(note)
    return True


def _resize(n, dims, graph):
    """Resize by whole factors of H and W, nearest or linear, as PyTorch computes it (the coordinate
    and rounding modes checked by running the node on a sample): UPSAMPLE."""
    from .numeric import judge_upsample
    from .onnx import run_nodes
    d_in, d_out = dims[n.inputs[0]], dims[n.name]
    if len(d_in) != 4 or list(d_out[:2]) != list(d_in[:2]):
        return "a resize of other axes than height and width"
    fh, fw = (o / i for o, i in zip(d_out[2:], d_in[2:]))
    mode = n.attrs.get("mode", "nearest")
    if not (fh.is_integer() and fw.is_integer()):
        if mode != "nearest":
            return f"a {mode} resize by {fh:g}x{fw:g}: UPSAMPLE's factors are whole numbers (a size is nearest only)"
        size = (int(d_out[2]), int(d_out[3]))
        if not judge_upsample(lambda x: run_nodes([n], n.inputs[0], x, graph.meta.get("opset", 13)),
                              [1, *d_in[1:]], None, "nearest", size=size):
            return (f"a nearest resize to {size[0]}x{size[1]} with coordinate_transformation_mode "
                    f"{n.attrs.get('coordinate_transformation_mode', 'half_pixel')}: not PyTorch's (UPSAMPLE(size=...))")
        make(n, "UPSAMPLE", {"size": size, "mode": "nearest"})
        return None
    kind_mode = {"nearest": "nearest", "linear": "bilinear"}.get(mode)
    if kind_mode is None:
        return f"{mode} interpolation: UPSAMPLE is nearest or bilinear"
    sample = [1, 2, 5, 4] if 3 not in n.consts else d_in  # sizes (input 3) hold the input's own size
    factors = (int(fh), int(fw))
    if not judge_upsample(lambda x: run_nodes([n], n.inputs[0], x, graph.meta.get("opset", 13)), sample, factors,
                          kind_mode):
        return (f"{mode} interpolation with coordinate_transformation_mode "
                f"{n.attrs.get('coordinate_transformation_mode', 'half_pixel')}: not PyTorch's (UPSAMPLE's)")
    make(n, "UPSAMPLE", {"factor": factors, "mode": kind_mode})


def _pool(n, dims, graph):
    from ..kinds import ShapeError
    from .layers import out_shape
    kernel = list(n.attrs["kernel_shape"])
    if len(kernel) != 2:
        return f"a {len(kernel)}-d pooling window: the language pools 2-d"
    if any(d != 1 for d in n.attrs.get("dilations", [1, 1])):
        return "a dilated pooling window: the language's pools have none"
    strides = _ints(n.attrs.get("strides"), [1, 1])
    d_in, want = dims[n.inputs[0]], dims.get(n.name)
    pads = _pads(n, d_in, kernel, strides, [1, 1])
    if isinstance(pads, str) and pads != TF_SAME:
        return pads
    kind = "MAXPOOL" if n.op == "MaxPool" else "AVGPOOL"
    count = bool(n.attrs.get("count_include_pad", 0))
    ceil = bool(n.attrs.get("ceil_mode", 0))
    if pads == TF_SAME and n.op == "AveragePool" and not count:
        return "TensorFlow's SAME padding of an average that leaves the zeros out: timm's AvgPool2dSame counts them"
    if pads == TF_SAME:
        ceil = False
    elif len(pads) != 2:  # cnndsl's exporter pads the far end where PyTorch's ceil rule drops a last window
        if any(e < b for b, e in zip(pads[:2], pads[2:])) or (count and any(pads[:2])):
            return f"padding {pads} differs between the sides: PyTorch pads both alike"
        pads, ceil = tuple(pads[:2]), True
    args = {"kernel": kernel, "stride": strides, "padding": pads, "ceil": ceil}
    if kind == "AVGPOOL":
        args["count_pad"] = count or pads == TF_SAME or not any(pads)
    try:
        shape = out_shape(kind, args, [(d_in[2], d_in[3], d_in[1])])
    except ShapeError as e:
        return e.message
    if want is not None and list(shape[:2]) != list(want[2:]):
        return (f"pooling {'x'.join(map(str, d_in[2:]))} to {'x'.join(map(str, want[2:]))}: PyTorch's rounding "
                f"(and the language's) gives {'x'.join(map(str, shape[:2]))}")
    make(n, kind, args)


def _global(kind):
    def rule(n, dims, graph):
        if len(dims[n.inputs[0]]) != 4:
            return "a global pooling of a non-image"
        make(n, kind, {"size": 1} if kind == "ADAPTIVEMAXPOOL" else {})
    return rule


def _reduce(n, dims, graph):
    """ReduceMean / ReduceMax over height and width: a global pooling (then a flatten, without keepdims)."""
    axes = n.attrs.get("axes")
    if axes is None and 1 in n.consts:
        axes = n.consts[1].reshape(-1).tolist()
    d = dims[n.inputs[0]]
    if axes is None or len(d) != 4 or sorted(a % 4 for a in axes) != [2, 3]:
        return f"a {n.op} over axes {axes}: only the mean or max over height and width is a layer (GAP)"
    kind, args = ("GAP", {}) if n.op == "ReduceMean" else ("ADAPTIVEMAXPOOL", {"size": 1})
    if n.attrs.get("keepdims", 1):
        make(n, kind, args)
        return None
    from .graph import Node
    pooled = Node(n.name + ":pooled", kind, list(n.inputs), source=n.source, where=n.where,
                  meta={"dims": d[:2] + [1, 1]})
    make(pooled, kind, args)
    graph.nodes.insert(graph.nodes.index(n), pooled)
    make(n, "FLATTEN", {}, inputs=[pooled.name])


def _gemm(n, dims, graph):
    import numpy as np
    w, c = n.consts.get(1), n.consts.get(2)
    if w is None or len(n.inputs) != 1 or n.attrs.get("transA", 0):
        return "a product of two computed tensors, not an FC layer's"
    w = w if n.attrs.get("transB", 0) else w.T
    if n.attrs.get("alpha", 1.0) != 1.0:
        w = w * n.attrs["alpha"]
    tensors = {"weight": w}
    if c is not None:
        tensors["bias"] = np.broadcast_to(c.reshape(-1) * n.attrs.get("beta", 1.0), (w.shape[0],)).copy()
    make(n, "FC", {"units": w.shape[0], "bias": c is not None}, tensors)


def _matmul(n, dims, graph):
    w = n.consts.get(1)
    if w is None or w.ndim != 2 or len(dims[n.inputs[0]]) != 2:
        return "a product that is not an FC layer's (a vector times a stored matrix)"
    make(n, "FC", {"units": w.shape[1], "bias": False}, {"weight": w.T})


def _flatten(n, dims, graph):
    d_in, d_out = dims[n.inputs[0]], dims.get(n.name)
    if d_out is not None and list(d_out) == list(d_in):
        return _passthrough(n, graph)
    if n.op == "Flatten" and n.attrs.get("axis", 1) != 1:
        return f"a flatten from axis {n.attrs['axis']}: FLATTEN keeps the batch axis only"
    if d_out is None or len(d_out) != 2 or len(d_in) != 4 or d_out[1] != d_in[1] * d_in[2] * d_in[3]:
        return f"a reshape of {d_in} to {d_out}: only a flatten of an image is a layer"
    make(n, "FLATTEN", {})


def _passthrough(n, graph):
    graph.nodes.remove(n)
    graph.rename_input(n.name, n.inputs[0])


def _expand(n, dims, graph):
    """An Expand read only by products (timm's ECA: `x * y.expand_as(x)`): its input, which `.*` broadcasts."""
    made = graph.by_name()
    readers = [made[r] for r in graph.consumers().get(n.name, []) if r in made]
    if not readers or any(r.op not in ("Mul", "MUL") for r in readers) or n.name == graph.output:
        return "an Expand other than of a gate before a product"
    _passthrough(n, graph)


def _batchnorm(n, dims, graph):
    if len(n.consts) != 4 or len(n.inputs) != 1:
        return "a batch norm whose statistics are computed, not stored"
    if n.attrs.get("training_mode", 0):
        return "a batch norm in training mode: export the model in eval mode"
    scale, bias, mean, var = (n.consts[i].reshape(-1) for i in (1, 2, 3, 4))
    from .layers import clean_float
    momentum = 1 - clean_float(n.attrs.get("momentum", 0.9))  # ONNX keeps 1 - PyTorch's momentum
    make(n, "BN", {"eps": n.attrs.get("epsilon", 1e-5), "momentum": momentum},
         {"weight": scale, "bias": bias, "running_mean": mean, "running_var": var})


def _instancenorm(n, dims, graph):
    """InstanceNormalization is group normalisation with a group per channel."""
    c = dims[n.inputs[0]][1]
    make(n, "GROUPNORM", {"groups": c, "eps": n.attrs.get("epsilon", 1e-5), "affine": True},
         {"weight": n.consts[1].reshape(-1), "bias": n.consts[2].reshape(-1)})


def _lrn(n, dims, graph):
    size = n.attrs["size"]
    if size % 2 == 0:
        return ("an LRN of even size: ONNX's window has (size-1)/2 channels before and size/2 after, "
                "PyTorch's (and the language's) the other way round")
    make(n, "LRN", {"size": size, "alpha": n.attrs.get("alpha", 1e-4), "beta": n.attrs.get("beta", 0.75),
                    "k": n.attrs.get("bias", 1.0)})


def _dropout(n, dims, graph):
    ratio = n.consts.get(1)
    make(n, "DROPOUT", {"p": float(ratio) if ratio is not None else n.attrs.get("ratio", 0.5)})


def _softmax(n, dims, graph):
    rank = len(dims[n.inputs[0]])
    axis = n.attrs.get("axis", -1) % rank  # the opset is 13 or newer (onnx.py converts older ones)
    if axis != 1:
        return f"a softmax over axis {axis}: SOFTMAX is over the channels (axis 1)"
    make(n, "SOFTMAX", {})


def _prelu(n, dims, graph):
    slope = n.consts.get(1)
    if slope is None:
        return "a PReLU whose slope is computed"
    make(n, "PRELU", {"shared": slope.size == 1}, {"weight": slope.reshape(-1)})


def _concat(n, dims, graph):
    rank = len(dims[n.inputs[0]])
    if n.consts or n.attrs.get("axis", 1) % rank != 1:
        return f"a concatenation along axis {n.attrs.get('axis')}" + (" with constants" if n.consts else "")
    make(n, "CONCAT", {})


def _join(kind):
    def rule(n, dims, graph):
        if not n.consts and len(n.inputs) >= 2:
            make(n, kind, {})
            return None
        if kind == "MUL" and len(n.inputs) == 1 and len(n.consts) == 1:
            return _scale(n, dims)
        return f"a {n.op} of a tensor and a constant: no layer of the language computes it"
    return rule


def _scale(n, dims):
    """x times a stored vector of its channels: LAYERSCALE."""
    (w,) = n.consts.values()
    c = dims[n.inputs[0]][1]
    if w.size != c or w.size == 1 or w.reshape(-1).shape[0] != c or (w.ndim >= 3 and w.shape[-2:] != (1, 1)):
        return f"a product with a constant of shape {list(w.shape)}: only a scale per channel is a layer"
    make(n, "LAYERSCALE", {}, {"weight": w.reshape(-1)})


def _slice(n, dims, graph):
    """Channels start..stop of the input (step 1): SPLIT where they are one of equal parts, else CHANNELS."""
    c = dims[n.inputs[0]][1]
    get = lambda pos, name: n.consts[pos].reshape(-1).tolist() if pos in n.consts else n.attrs.get(name)  # noqa: E731
    starts, ends, axes, steps = get(1, "starts"), get(2, "ends"), get(3, "axes"), get(4, "steps")
    rank = len(dims[n.inputs[0]])
    axes = axes or list(range(len(starts)))
    if len(axes) != 1 or axes[0] % rank != 1 or (steps and steps != [1]):
        return "a slice other than a range of channels"
    lo, hi = (max(0, min(v + c if v < 0 else v, c)) for v in (starts[0], ends[0]))
    _channels(n, c, lo, hi)


def _channels(n, c, lo, hi):
    size = hi - lo
    if size and c % size == 0 and lo % size == 0 and c // size > 1:
        make(n, "SPLIT", {"index": lo // size, "parts": c // size})
    else:
        make(n, "CHANNELS", {"start": lo, "stop": 0 if hi == c else hi})


def _split(n, dims, graph):
    c = dims[n.inputs[0]][1]
    rank = len(dims[n.inputs[0]])
    if n.attrs.get("axis", 0) % rank != 1:
        return "a split along another axis than the channels"
    sizes = n.consts[1].reshape(-1).tolist() if 1 in n.consts else n.attrs.get("split")
    parts = n.meta["outputs"]
    sizes = sizes or [-(-c // parts)] * (parts - 1) + [c - -(-c // parts) * (parts - 1)]
    k = n.meta["output"]
    lo = sum(sizes[:k])
    _channels(n, c, lo, lo + sizes[k])


def _pad(n, dims, graph):
    """Zeros after the channels: PADCHANNELS."""
    import numpy as np
    pads = n.consts.get(1)
    value = n.consts.get(2)
    rank = len(dims[n.inputs[0]])
    if pads is None or n.attrs.get("mode", "constant") != "constant" or (value is not None and np.any(value != 0)):
        return "a padding other than zeros"
    p = pads.reshape(-1).tolist()
    if len(p) != 2 * rank or any(p[:rank]) or any(p[rank + 2:]) or p[rank] or not p[rank + 1]:
        return f"padding {p}: only zeros after the channels (PADCHANNELS), or before a Conv or an AveragePool, are layers"
    make(n, "PADCHANNELS", {"extra": p[rank + 1]})


RULES = {
    "Conv": _conv, "MaxPool": _pool, "AveragePool": _pool,
    "GlobalAveragePool": _global("GAP"), "GlobalMaxPool": _global("ADAPTIVEMAXPOOL"),
    "ReduceMean": _reduce, "ReduceMax": _reduce,
    "Gemm": _gemm, "MatMul": _matmul,
    "Flatten": _flatten, "Reshape": _flatten, "Squeeze": _flatten, "Unsqueeze": _flatten,
    "BatchNormalization": _batchnorm, "InstanceNormalization": _instancenorm, "LRN": _lrn,
    "Dropout": _dropout, "Softmax": _softmax, "PRelu": _prelu,
    "Concat": _concat, "Add": _join("ADD"), "Sum": _join("ADD"), "Mul": _join("MUL"), "Mean": _join("MEAN"),
    "Slice": _slice, "Split": _split, "Pad": _pad, "Resize": _resize,
    "Expand": _expand,
}
