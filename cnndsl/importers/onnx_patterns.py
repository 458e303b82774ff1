"""ONNX pass: groups of nodes that exporters write for one layer, lifted back to that layer.

`RULES` runs in order, each over the whole graph: what torch.onnx.export and cnndsl's own
exporter write for LRN (square, pad, average over channels, scale, power, divide), layer norm
(mean, centre, variance, divide; transposed to NHWC around it), group norm (reshaped to groups,
instance-normalised), the channel shuffle (reshape, transpose, reshape), the element-wise mean
(a sum divided by its count), an FC layer as MatMul + Add, and a constant zero Pad before a
Conv or an AveragePool (merged into its padding).

    >>> import onnx, onnx.helper as h, numpy as np
    >>> from cnndsl.importers import onnx as O
    >>> w, b = h.make_tensor("w", 1, [4, 2], np.ones(8)), h.make_tensor("b", 1, [2], [0.5, 0.5])
    >>> x = h.make_tensor_value_info("x", 1, [1, 4])
    >>> nodes = [h.make_node("MatMul", ["x", "w"], ["m"]), h.make_node("Add", ["m", "b"], ["y"])]
    >>> m = h.make_model(h.make_graph(nodes, "g", [x], [h.make_tensor_value_info("y", 1, None)], [w, b]))
    >>> g = O.from_model(m); lift(g); [(n.op, n.attrs, n.tensors["weight"].shape) for n in g.nodes]
    [('FC', {'units': 2, 'bias': True}, (2, 4))]
"""
from __future__ import annotations

from .graph import Node
from .layers import lift as make
from .match import Alt, C, Matcher, P

_SQUARE = Alt(P("Pow", "d", C("two")), P("Mul", "d", "d"))
# (x - mean(x)) / sqrt(mean((x - mean(x))^2) + eps): PyTorch's layer norm, written out
_NORMALISED = P("Div", P("Sub", "x", P("ReduceMean", "x", name="mean"), name="d"),
                P("Sqrt", P("Add", P("ReduceMean", _SQUARE), C("eps"))), name="normalised")


def lift(graph) -> None:
    """Apply every rule of RULES, in order, wherever it matches."""
    for pattern, build in RULES:
        m = Matcher(graph)
        for node in list(graph.nodes):
            if node not in graph.nodes or node.lifted:
                continue
            b = m.match(pattern, node)
            new = build(b, graph, m) if b else None
            if new is not None:
                graph.replace(b["nodes"], new)
                m.refresh()


def _scalar(v):
    import numpy as np
    a = np.asarray(v)
    return float(a.reshape(-1)[0]) if a.size == 1 else None


def _dims(graph, tensor):
    if tensor == "input":
        s = graph.input_shape
        return [1, s[2], s[0], s[1]] if len(s) == 3 else [1, s[0]]
    n = graph.by_name().get(tensor)
    return n.meta.get("dims") if n is not None else None


def _axes(node):
    """A reduction's axes: an attribute before opset 18, an input from it."""
    if "axes" in node.attrs:
        return list(node.attrs["axes"])
    return node.consts[1].reshape(-1).tolist() if 1 in node.consts else None


def _new(b, graph, inputs, extend=()):
    """A node for the match `b` (and the nodes of `extend` after it): it takes the last one's name and dims."""
    nodes = list(b["nodes"]) + list(extend)
    last = nodes[-1]
    names = [name for n in nodes for name in n.meta.get("const_names", {}).values()]  # weights' names: labels
    return Node(last.name, last.op, list(inputs), source=last.source, where=last.where,
                meta={"dims": last.meta.get("dims"), "const_names": dict(enumerate(names)),
                      "node_name": last.meta.get("node_name", "")})


# ---- LRN ---------------------------------------------------------------------------------------
_LRN = P("Div", "x", P("Pow", P("Add", P("Mul", P("Squeeze", P("AveragePool", P("Pad", P(
    ("Unsqueeze", "Reshape"), P("Mul", "x", "x")), C("pads")), name="pool")), C("alpha")), C("k")), C("beta")))


def _lrn(b, graph, m):
    """PyTorch's LRN: x / (k + alpha * avg over `size` channels of x^2) ** beta, the average over a
    window padded with size//2 channels before and (size-1)//2 after."""
    pool = b["@pool"]
    size = pool.attrs.get("kernel_shape", [0])[0]
    pads = b["pads"].reshape(-1).tolist()
    if len(pads) != 10 or (pads[2], pads[7]) != (size // 2, (size - 1) // 2) or any(pads[i] for i in (0, 1, 3, 4, 5, 6, 8, 9)):
        return None
    alpha, k, beta = _scalar(b["alpha"]), _scalar(b["k"]), _scalar(b["beta"])
    if None in (alpha, k, beta):
        return None
    return make(_new(b, graph, [b["x"]]), "LRN", {"size": size, "alpha": alpha, "beta": beta, "k": k})


# ---- layer norm ----------------------------------------------------------------------------------
def _affine(graph, m, node):
    """The Mul by a weight of C and the Add of a bias of C that follow `node`, where they do."""
    out, tensors = [], {}
    for op, name in (("Mul", "weight"), ("Add", "bias")):
        readers = m.readers.get((out[-1] if out else node).name, [])
        nxt = m.made.get(readers[0]) if len(readers) == 1 else None
        if nxt is None or nxt.op != op or len(nxt.consts) != 1 or len(nxt.inputs) != 1:
            break
        (value,) = nxt.consts.values()
        if value.size <= 1 and name == "weight":
            break
        out.append(nxt)
        tensors[name] = value.reshape(-1)
    if len(out) == 1:  # a scale without a shift: not the kind's affine
        return [], {}
    return out, tensors


def _transposed(graph, m, first_input, last):
    """(the NCHW input, the Transpose before, the Transpose after) where a layer norm over the last
    axis runs on an NHWC view of a volume (PyTorch's LayerNorm2d: permute, layer_norm, permute back)."""
    before = m.made.get(first_input)
    readers = m.readers.get(last.name, [])
    after = m.made.get(readers[0]) if len(readers) == 1 else None
    if (before is not None and before.op == "Transpose" and list(before.attrs.get("perm", ())) == [0, 2, 3, 1]
            and after is not None and after.op == "Transpose" and list(after.attrs.get("perm", ())) == [0, 3, 1, 2]):
        return before.inputs[0], before, after
    return None


def _layer_norm(b, graph, m):
    x, mean = b["x"], b["@mean"]
    dims = _dims(graph, x)
    axes = _axes(mean)
    if dims is None or axes is None or len(axes) != 1 or not mean.attrs.get("keepdims", 1):
        return None
    axis = axes[0] % len(dims)
    extend, tensors = _affine(graph, m, b["@normalised"])
    last = (b["nodes"] + extend)[-1]
    inputs, before, after = [x], [], []
    if len(dims) == 4 and axis == 3:
        wrapped = _transposed(graph, m, x, last)
        if wrapped is None:
            return None
        inputs, before, after = [wrapped[0]], [wrapped[1]], [wrapped[2]]
        if m.readers.get(wrapped[1].name, []) and set(m.readers[wrapped[1].name]) - {n.name for n in b["nodes"]}:
            return None
    elif not (len(dims) == 4 and axis == 1 or len(dims) == 2 and axis == 1):
        return None
    b["nodes"] = before + b["nodes"] + extend + after
    eps = _scalar(b["eps"])
    return make(_new(b, graph, inputs), "LAYERNORM", {"eps": eps, "affine": bool(tensors)}, tensors)


_LAYERNORM_OP = P("LayerNormalization", "x", C("scale"), None, name="ln")
_LAYERNORM_OP_NOBIAS = P("LayerNormalization", "x", C("scale"), name="ln")


def _layer_norm_op(b, graph, m):
    """ONNX's LayerNormalization over the last axis: of a vector, or of a volume seen as NHWC."""
    ln, x = b["@ln"], b["x"]
    dims = _dims(graph, x)
    if dims is None or ln.attrs.get("axis", -1) % len(dims) != len(dims) - 1 or len(ln.inputs) != 1:
        return None
    inputs, nodes = [x], list(b["nodes"])
    if len(dims) == 4:
        wrapped = _transposed(graph, m, x, ln)
        if wrapped is None:
            return None
        inputs, nodes = [wrapped[0]], [wrapped[1]] + nodes + [wrapped[2]]
    scale, bias = ln.consts[1].reshape(-1), ln.consts.get(2)
    tensors = {"weight": scale, "bias": bias.reshape(-1) if bias is not None else 0 * scale}
    b["nodes"] = nodes
    # ones and zeros an exporter made up (no parameter's name) are a layer norm without the affine
    names = ln.meta.get("const_names", {}).values()
    plain = all(not n.endswith((".weight", ".bias")) for n in names) and (scale == 1).all() and (tensors["bias"] == 0).all()
    return make(_new(b, graph, inputs), "LAYERNORM", {"eps": ln.attrs.get("epsilon", 1e-5), "affine": not plain},
                {} if plain else tensors)


# ---- group norm ---------------------------------------------------------------------------------
_GROUPED = P("Reshape", "x", C("grouped_shape"), name="grouped")
_GROUPNORM = P("Reshape", Alt(P("InstanceNormalization", _GROUPED, C("scale"), C("shift"), name="inorm"),
                              P("Div", P("Sub", "g", P("ReduceMean", _GROUPED, name="mean"), name="d"),
                                P("Sqrt", P("Add", P("ReduceMean", _SQUARE), C("eps"))), name="normalised")),
               C("shape"), name="ungrouped")


def _group_norm(b, graph, m):
    """x reshaped to (N, groups, -1), each group normalised (InstanceNormalization, or written out),
    reshaped back, then the per-channel affine where there is one."""
    import numpy as np
    dims, grouped = _dims(graph, b["x"]), b["@grouped"].meta.get("dims")
    if dims is None or grouped is None or len(grouped) != 3 or _dims(graph, b["ungrouped"]) != dims:
        return None
    if "g" in b and b["g"] != b["grouped"]:
        return None
    groups = grouped[1]
    if "@inorm" in b:
        inorm = b["@inorm"]
        if not (np.all(b["scale"] == 1) and np.all(b["shift"] == 0)):
            return None
        eps = inorm.attrs.get("epsilon", 1e-5)
    else:
        axes = _axes(b["@mean"])
        if axes is None or [a % 3 for a in axes] != [2]:
            return None
        eps = _scalar(b["eps"])
    extend, tensors = _affine(graph, m, b["@ungrouped"])
    b["nodes"] = b["nodes"] + extend
    return make(_new(b, graph, [b["x"]]), "GROUPNORM", {"groups": groups, "eps": eps, "affine": bool(tensors)},
                tensors)


# ---- channel shuffle ----------------------------------------------------------------------------
_SHUFFLE = P("Reshape", P("Transpose", P("Reshape", "x", C("s1"), name="grouped"), name="swap"), C("s2"), name="out")


def _shuffle(b, graph, m):
    dims, grouped = _dims(graph, b["x"]), b["@grouped"].meta.get("dims")
    if (dims is None or len(dims) != 4 or grouped is None or len(grouped) != 5
            or list(b["@swap"].attrs.get("perm", ())) != [0, 2, 1, 3, 4] or b["@out"].meta.get("dims") != dims
            or grouped[1] * grouped[2] != dims[1] or grouped[3:] != dims[2:]):
        return None
    return make(_new(b, graph, [b["x"]]), "SHUFFLE", {"groups": grouped[1]})


# ---- the element-wise mean ----------------------------------------------------------------------
_MEAN = P("Div", P(("Add", "Sum"), name="sum"), C("n"))


def _mean(b, graph, m):
    """A sum of n tensors divided by n (cnndsl's Mean module, traced)."""
    n = _scalar(b["n"])
    leaves, sums = _leaf_order(b["@sum"], m)
    if n is None or n != len(leaves) or n < 2 or any(s.consts for s in sums):
        return None
    order = {id(x): k for k, x in enumerate(graph.nodes)}
    b["nodes"] = sorted(sums, key=lambda x: order[id(x)]) + [b["nodes"][-1]]
    return make(_new(b, graph, leaves), "MEAN", {})


def _leaf_order(node, m):
    """The summed tensors left to right ((a + b) + c reads a, b, c), and the sums that add them."""
    out, sums = [], [node]
    for t in node.inputs:
        src = m.made.get(t)
        if src is not None and src.op in ("Add", "Sum") and m.readers.get(t) == [node.name] and not src.lifted:
            more, inner = _leaf_order(src, m)
            out, sums = out + more, sums + inner
        else:
            out.append(t)
    return out, sums


# ---- FC as MatMul + Add --------------------------------------------------------------------------
_FC = P("Add", P("MatMul", "x", C("w"), name="mm"), C("b"))


def _fc(b, graph, m):
    w, bias, dims = b["w"], b["b"], _dims(graph, b["x"])
    if w.ndim != 2 or dims is None or len(dims) != 2 or bias.size not in (1, w.shape[1]):
        return None
    import numpy as np
    bias = np.broadcast_to(bias.reshape(-1), (w.shape[1],))
    return make(_new(b, graph, [b["x"]]), "FC", {"units": w.shape[1], "bias": True},
                {"weight": w.T, "bias": bias})


# ---- a zero Pad merged into the window after it ------------------------------------------------
_PADDED = P(("Conv", "AveragePool", "MaxPool"), P("Pad", "x", C("pads"), name="pad"), name="window")


def _pad_window(b, graph, m):
    """Pad of H and W, then a Conv or an AveragePool (zeros, which the average then counts: they
    were real) or a MaxPool (-inf, which no window takes), with that padding added to the window's own.
    Pads that differ between the sides stay so: onnx_ops reads TensorFlow's SAME in them (timm's
    Conv2dSame, MaxPool2dSame), or refuses them."""
    import numpy as np
    pad, window = b["@pad"], b["@window"]
    value = pad.consts.get(2)
    fill = -np.inf if window.op == "MaxPool" else 0
    if pad.attrs.get("mode", "constant") != "constant" or (value is not None and np.any(value != fill)) \
            or (window.op == "MaxPool" and value is None) or len(pad.consts) > (2 if value is not None else 1):
        return None
    p = b["pads"].reshape(-1).tolist()
    if len(p) != 8 or any(p[i] for i in (0, 1, 4, 5)) or min(p) < 0:
        return None
    old = list(window.attrs.get("pads", [0, 0, 0, 0]))
    if window.op != "Conv" and any(old):
        return None
    new = Node(window.name, window.op, [b["x"]], dict(window.attrs), dict(window.consts), source=window.source,
               where=window.where, meta=dict(window.meta))
    new.attrs["pads"] = [old[0] + p[2], old[1] + p[3], old[2] + p[6], old[3] + p[7]]
    if window.op == "AveragePool":
        new.attrs["count_include_pad"] = 1
    return new


# ---- adaptive average pooling to sizes that do not divide: two products with averaging matrices ----
_BINS = P("MatMul", P("MatMul", C("rows"), "x", name="half"), C("cols"))


def _adaptive_bins(b, graph, m):
    """cnndsl's exporter: y = A_h @ x @ A_w^T, A's rows averaging PyTorch's adaptive bins."""
    import numpy as np
    dims = _dims(graph, b["x"])
    rows, cols = b["rows"], b["cols"]
    if dims is None or len(dims) != 4 or rows.ndim != 2 or cols.ndim != 2:
        return None
    (oh, h), (w, ow) = rows.shape, cols.shape
    if (h, w) != tuple(dims[2:]) or not (np.allclose(rows, _bins(h, oh)) and np.allclose(cols, _bins(w, ow).T)):
        return None
    return make(_new(b, graph, [b["x"]]), "ADAPTIVEAVGPOOL", {"size": (oh, ow)})


def _bins(size, out):
    """PyTorch's own averaging matrix of adaptive pooling from `size` to `out` (out x size)."""
    import torch
    eye = torch.eye(size).unsqueeze(0)  # each input position a channel: the pooling of each is its column
    return torch.nn.functional.adaptive_avg_pool1d(eye, out)[0].T.numpy()


# ---- cnndsl's exporter's UPSAMPLE: repeats (nearest) or two interpolating products (bilinear) ---------
_REPEATED = P("Reshape", P("Expand", P("Unsqueeze", "x", C("axes")), C("repeats")), C("shape"))


def _upsampled(b, graph, m):
    """Nodes that upsample x by whole factors, as PyTorch does (run on a sample to be sure): UPSAMPLE."""
    from .numeric import judge_upsample
    from .onnx import run_nodes
    d_in, d_out = _dims(graph, b["x"]), b["nodes"][-1].meta.get("dims")
    if d_in is None or d_out is None or len(d_in) != 4 or len(d_out) != 4 or d_in[:2] != d_out[:2] \
            or any(o % i for o, i in zip(d_out[2:], d_in[2:])):
        return None
    factors = tuple(o // i for o, i in zip(d_out[2:], d_in[2:]))
    run = lambda x: run_nodes(b["nodes"], b["x"], x, graph.meta.get("opset", 13))  # noqa: E731
    for mode in ("nearest", "bilinear"):
        if judge_upsample(run, d_in, factors, mode):
            return make(_new(b, graph, [b["x"]]), "UPSAMPLE", {"factor": factors, "mode": mode})
    return None


# ---- cnndsl's exporter's UPSAMPLE(size=...): PyTorch's nearest source rows, then columns, gathered --------
_GATHERED = P("Gather", P("Gather", "x", C("rows")), C("cols"))


def _gathered(b, graph, m):
    """Two gathers by constant indices that compute PyTorch's nearest interpolation to a size (run on a
    sample to be sure): UPSAMPLE(size=...)."""
    from .numeric import judge_upsample
    from .onnx import run_nodes
    d_in, d_out = _dims(graph, b["x"]), b["nodes"][-1].meta.get("dims")
    if d_in is None or d_out is None or len(d_in) != 4 or len(d_out) != 4 or d_in[:2] != d_out[:2]:
        return None
    size = (int(d_out[2]), int(d_out[3]))
    run = lambda x: run_nodes(b["nodes"], b["x"], x, graph.meta.get("opset", 13))  # noqa: E731
    if judge_upsample(run, d_in, None, "nearest", size=size):
        return make(_new(b, graph, [b["x"]]), "UPSAMPLE", {"size": size, "mode": "nearest"})
    return None


def _products(b, graph, m):
    """Two products with constant matrices: adaptive average pooling's bins, or bilinear upsampling."""
    return _adaptive_bins(b, graph, m) or _upsampled(b, graph, m)


RULES = (
    (_BINS, _products),
    (_REPEATED, _upsampled),
    (_GATHERED, _gathered),
    (_LRN, _lrn),
    (_GROUPNORM, _group_norm),
    (_NORMALISED, _layer_norm),
    (_LAYERNORM_OP, _layer_norm_op),
    (_LAYERNORM_OP_NOBIAS, _layer_norm_op),
    (_SHUFFLE, _shuffle),
    (_MEAN, _mean),
    (_FC, _fc),
    (_PADDED, _pad_window),
)
