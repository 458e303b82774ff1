"""ONNX -> the importers' graph (graph.py): read the file, convert an old opset, fix the input's
shape, infer every tensor's shape, and fold every computation on constants into a constant.

Once the input's size is fixed, what exporters compute from shapes (`Shape - Gather - Unsqueeze -
Concat` before a Reshape, an `If` on the input's rank in torch's LRN) is constant: it is evaluated
here with onnx's reference evaluator, so the passes after see a Reshape with a constant target and
no shape arithmetic at all. What is left reads the input: those nodes become the graph's nodes,
with their constant inputs (weights, bounds) as numpy arrays.

    >>> import onnx, onnx.helper as h
    >>> x = h.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["N", 3, 8, 8])
    >>> y = h.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)
    >>> m = h.make_model(h.make_graph([h.make_node("Relu", ["x"], ["y"], name="act")], "g", [x], [y]),
    ...                  opset_imports=[h.make_opsetid("", 17)])
    >>> g = from_model(m, "m.onnx")
    >>> g.input_shape, [(n.op, n.inputs, n.meta["dims"]) for n in g.nodes]
    ((8, 8, 3), [('Relu', ['input'], [1, 3, 8, 8])])
"""
from __future__ import annotations

import os

from ..errors import CnnError
from .graph import Graph, Node, read_model

MIN_OPSET = 13          # older models are converted to this opset first (onnx.version_converter)
MAX_BYTES = 4 << 30     # an ONNX file (weights inside) read at most this large
MAX_FOLDED = 1 << 26    # values a folded constant may hold: a ConstantOfShape must not fill the memory
CONTROL_FLOW = ("Loop", "Scan")


def read(path, input=None) -> Graph:
    """The graph of the ONNX file at `path`; `input` ('HxWxC') sizes an input whose height, width or
    channels the file leaves open."""
    import onnx
    path = os.fspath(path)
    data = read_model(path, MAX_BYTES, "an .onnx file")
    try:
        model = onnx.load_model_from_string(data)
    except Exception as e:  # protobuf's DecodeError, or anything else it trips on
        raise CnnError(f"{path}: not an ONNX model ({type(e).__name__}: {str(e)[:120] or 'unreadable'})",
                       hint="a truncated download, or another format (a .pt checkpoint is imported from "
                            "its module: `cnndsl import package.module:callable`)") from None
    if not model.graph.node:
        raise CnnError(f"{path}: not an ONNX model (no graph nodes)", hint="a truncated file, or another format")
    if any(onnx.external_data_helper.uses_external_data(t) for t in model.graph.initializer):
        try:
            onnx.load_external_data_for_model(model, os.path.dirname(os.path.abspath(path)))
        except Exception as e:
            raise CnnError(f"{path}: its external weights cannot be read ({str(e)[:200]})") from None
    return from_model(model, path, input)


def from_model(model, path="<model>", input=None) -> Graph:
    """The graph of an onnx.ModelProto (see `read`)."""
    model = _convert(model, path)
    _normalise_perms(model)
    opset = _opset(model)
    shape = _input_shape(model, path, input)
    graph = _Walk(model, path, opset, shape, _infer(model, shape)).graph
    graph.meta["opset"] = opset
    _drop_noops(graph)
    return graph


_RESHAPES = ("Reshape", "Squeeze", "Unsqueeze", "Flatten", "Identity")


def _drop_noops(graph):
    """Reshapes to the shape they were given (torch's LRN writes one) are no nodes at all."""
    dims = {n.name: n.meta.get("dims") for n in graph.nodes}
    dims["input"] = None
    for n in list(graph.nodes):
        if n.op in _RESHAPES and len(n.inputs) == 1 and _known(n.meta.get("dims")) \
                and dims.get(n.inputs[0]) == n.meta["dims"]:
            graph.nodes.remove(n)
            graph.rename_input(n.name, n.inputs[0])


def _normalise_perms(model):
    """A Transpose's negative axes (torch.movedim(x, -1, 1) exports perm [0, -1, 1, 2], which
    onnxruntime reads from the end and onnx's shape inference misreads) as the axes they are."""
    from onnx import helper
    for node in model.graph.node:
        for a in node.attribute if node.op_type == "Transpose" else ():
            if a.name == "perm" and any(p < 0 for p in a.ints):
                a.CopyFrom(helper.make_attribute("perm", [p % len(a.ints) for p in a.ints]))


def _opset(model) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 1)


def _convert(model, path):
    opset = _opset(model)
    if opset >= MIN_OPSET:
        return model
    from onnx import version_converter
    try:
        return version_converter.convert_version(model, MIN_OPSET)
    except Exception as e:
        raise CnnError(f"{path}: onnx cannot convert opset {opset} to {MIN_OPSET}: {str(e).splitlines()[0][:200]}",
                       hint="re-export the model at opset 13 or newer") from None


def _input_shape(model, path, override):
    """The one input's (N, C, H, W) or (N, F), with the batch fixed (1 where the file leaves it open)."""
    inits = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in inits]
    if len(inputs) != 1:
        names = ", ".join(f"`{i.name}`" for i in inputs) or "none"
        raise CnnError(f"{path}: a net of the language has one input; this model has {len(inputs)} ({names})")
    t = inputs[0].type.tensor_type
    dims = [d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim] if t.HasField("shape") else []
    if len(dims) not in (2, 4):
        raise CnnError(f"{path}: input `{inputs[0].name}` has rank {len(dims) or 'unknown'}: the language takes "
                       f"images (N, C, H, W) or vectors (N, F)")
    batch = dims[0] or 1
    if override is not None:
        from ..lang.elaborate import parse_volume
        want = parse_volume(override) if isinstance(override, str) else tuple(override)
        want = [want[2], want[0], want[1]] if len(want) == 3 else list(want)
        if len(want) != len(dims) - 1 or any(d not in (None, w) for d, w in zip(dims[1:], want)):
            raise CnnError(f"--input {override}: the model's input is {_shown(dims)} (N, C, H, W)", usage=True)
        dims = [batch] + want
    if any(d is None or d < 1 for d in dims[1:]):
        raise CnnError(f"{path}: input `{inputs[0].name}` has open dimensions {_shown(dims)}",
                       usage=True, hint="give its size: --input HxWxC (e.g. 224x224x3)")
    return [batch] + dims[1:]


def _shown(dims):
    return "x".join("?" if d is None else str(d) for d in dims)


def _infer(model, shape):
    """Every tensor's shape onnx can infer once the input has `shape`: {tensor: dims}. Inference
    runs on a copy without the large weights' values (their shapes are all it reads), so a 500 MB
    VGG is not copied twice."""
    import onnx
    light = onnx.ModelProto(ir_version=model.ir_version, producer_name=model.producer_name)
    light.opset_import.extend(model.opset_import)
    light.functions.extend(model.functions)
    g, src = light.graph, model.graph
    g.name = src.name
    g.node.extend(src.node)
    g.output.extend(src.output)
    for o in g.output:  # inferred afresh: torch writes the output of a negative-perm Transpose misshapen
        o.type.tensor_type.ClearField("shape")
    for t in src.initializer:
        g.initializer.append(t if _prod(t.dims) <= 4096 else onnx.TensorProto(name=t.name, dims=t.dims,
                                                                             data_type=t.data_type))
    inits = {t.name for t in src.initializer}
    for i in src.input:
        g.input.append(i)
        if i.name not in inits:
            for d, v in zip(g.input[-1].type.tensor_type.shape.dim, shape):
                d.Clear()
                d.dim_value = v
    try:
        light = onnx.shape_inference.infer_shapes(light, data_prop=True)
    except Exception:  # a custom op stops inference: what it did reach is still there
        pass
    dims = {}
    for vi in list(light.graph.value_info) + list(light.graph.output) + list(light.graph.input):
        t = vi.type.tensor_type
        if t.HasField("shape"):
            dims[vi.name] = [d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim]
    return dims


class _Walk:
    """One pass over the nodes in order: constants folded, the rest made Nodes."""

    def __init__(self, model, path, opset, shape, dims):
        import numpy as np
        from onnx import numpy_helper
        self.np, self.path, self.opset = np, path, opset
        g = model.graph
        total = len(g.node)
        self.consts = {i.name: numpy_helper.to_array(i) for i in g.initializer}
        self.origins = {i.name: (frozenset([i.name]), frozenset()) for i in g.initializer}  # see trace
        self.dims = dims
        inp = next(i for i in g.input if i.name not in self.consts)
        self.acts = {inp.name: "input"}     # ONNX tensor -> our node name
        self.dims[inp.name] = list(shape)
        self.extra = {}                      # outputs no node of ours stands for: tensor -> the node it came from
        self.names = {"input"}
        hw = (shape[2], shape[3], shape[1]) if len(shape) == 4 else (shape[1],)
        self.graph = Graph(input_shape=hw, source=path, format="onnx")
        self.total = total
        for k, node in enumerate(_sorted(g.node, set(self.consts) | {inp.name} | {""}, path)):
            self.node(node, f"node {k + 1} of {total}")
        outs = [o.name for o in g.output]
        if len(outs) != 1:
            raise CnnError(f"{path}: a net of the language has one output; this model has {len(outs)} "
                           f"({', '.join(outs)})", hint="export the model with its main output only")
        if outs[0] not in self.acts:
            raise CnnError(f"{path}: its output `{outs[0]}` does not depend on the input")
        self.graph.output = self.acts[outs[0]]

    # ---- one node --------------------------------------------------------------------------------
    def node(self, node, where):
        from onnx import helper
        if node.domain not in ("", "ai.onnx"):
            return self.keep(node, where, op=f"{node.domain}:{node.op_type}")
        attrs = {a.name: _attr(helper.get_attribute_value(a)) for a in node.attribute}
        op = node.op_type
        if op == "Constant":
            return self.constant(node, attrs)
        if op == "If" and node.input[0] in self.consts:
            return self.inline(node, attrs, where)
        if op in ("Shape", "Size") and node.input[0] in self.acts:
            dims = self.dims.get(node.input[0])
            if dims and all(isinstance(d, int) for d in dims):
                dims = dims[attrs.get("start", 0):attrs.get("end", len(dims))] if op == "Shape" else [_prod(dims)]
                self.consts[node.output[0]] = self.np.array(dims, dtype=self.np.int64)
                return
        if all(i in self.consts or i == "" for i in node.input) and op not in CONTROL_FLOW:
            return self.fold(node, where)
        if op == "Identity":
            self.acts[node.output[0]] = self.acts[node.input[0]]
            return
        self.keep(node, where, attrs=attrs)

    def constant(self, node, attrs):
        np = self.np
        from onnx import numpy_helper
        (name, value), = attrs.items()
        if hasattr(value, "dims"):
            value = numpy_helper.to_array(value)
        elif name in ("value_float", "value_int"):
            value = np.array(value, np.float32 if name == "value_float" else np.int64)
        elif name in ("value_floats", "value_ints"):
            value = np.array(value, np.float32 if name == "value_floats" else np.int64)
        else:
            value = np.array(value)
        self.consts[node.output[0]] = value

    def fold(self, node, where):
        from onnx.reference import ReferenceEvaluator
        feeds = {i: self.consts[i] for i in node.input if i}
        self.trace(node, feeds)
        try:
            if node.op_type == "BatchNormalization" and len([o for o in node.output if o]) > 1:
                outs = _batch_norm_training(*[feeds.get(i) for i in node.input], node)
            else:
                outs = ReferenceEvaluator(node, opsets={"": self.opset}).run(None, feeds)
        except Exception as e:
            raise CnnError(f"{self.path}: {node.op_type} `{node.name}` ({where}) on constants cannot be evaluated: "
                           f"{str(e).splitlines()[0][:200] if str(e) else type(e).__name__}") from None
        for name, value in zip(node.output, outs):
            value = self.np.asarray(value)
            if value.size > MAX_FOLDED:
                raise CnnError(f"{self.path}: {node.op_type} `{node.name}` ({where}) makes a constant of "
                               f"{value.size:,} values", hint="over the importer's limit of {MAX_FOLDED:,}")
            self.consts[name] = value

    def trace(self, node, feeds):
        """What a folded constant was made from: the stored weights it reads and the small numbers
        added to them (a batch norm's epsilon, an `Add` of a scalar): onnx_ops reads a weight
        standardised before a Conv from these (STDCONV)."""
        inits, numbers = set(), set()
        for name, value in feeds.items():
            got = self.origins.get(name)
            if got is not None:
                inits |= got[0]
                numbers |= got[1]
            elif self.np.size(value) == 1 and node.op_type == "Add":
                numbers.add(float(self.np.asarray(value).reshape(-1)[0]))
        if node.op_type == "BatchNormalization":
            from onnx import helper
            eps = [helper.get_attribute_value(a) for a in node.attribute if a.name == "epsilon"]
            numbers.add(float(eps[0]) if eps else 1e-5)
        for out in node.output:
            self.origins[out] = (frozenset(inits), frozenset(numbers))

    def computed(self, const_names) -> dict:
        """{input position: ({weight name: array}, {numbers})} of the constant inputs folded from
        stored weights (see trace), not stored themselves."""
        out = {}
        for pos, name in const_names.items():
            inits, numbers = self.origins.get(name, (frozenset(), frozenset()))
            if inits and inits != {name}:
                out[pos] = ({i: self.consts[i] for i in inits}, numbers)
        return out

    def inline(self, node, attrs, where):
        """An If whose condition is constant: its chosen branch's nodes, in place."""
        branch = attrs["then_branch" if bool(self.consts[node.input[0]].reshape(-1)[0]) else "else_branch"]
        known = set(self.consts) | set(self.acts) | {""}
        for inner in _sorted(branch.node, known, self.path):
            self.node(inner, where)
        for mine, theirs in zip(node.output, branch.output):
            if theirs.name in self.consts:
                self.consts[mine] = self.consts[theirs.name]
            elif theirs.name in self.acts:
                self.acts[mine] = self.acts[theirs.name]
                self.dims.setdefault(mine, self.dims.get(theirs.name))

    def keep(self, node, where, op=None, attrs=None):
        """A node that reads the input: one Node per output that is a tensor (a Split's parts)."""
        inputs, consts, const_names, act_pos = [], {}, {}, []
        for pos, name in enumerate(node.input):
            if name == "":
                continue
            if name in self.consts:
                consts[pos] = self.consts[name]
                const_names[pos] = name
            elif name in self.acts:
                inputs.append(self.acts[name])
                act_pos.append(pos)
            else:
                origin = self.extra.get(name)
                raise CnnError(f"{self.path}: {node.op_type} `{node.name}` ({where}) reads `{name}`"
                               + (f", a second output of {origin}: not a tensor the language computes" if origin
                                  else ", which no node before it makes"))
        outputs = [o for o in node.output if o]
        if any(not _known(self.dims.get(o)) for o in outputs[:1]) and op is None:
            self.infer_one(node)
        per_output = node.op_type == "Split"
        for k, out in enumerate(outputs if per_output else outputs[:1]):
            ours = self.unique(out)
            n = Node(ours, op or node.op_type, inputs, dict(attrs or {}), consts, source=node.name or out, where=where)
            n.meta.update(dims=self.dims.get(out), const_names=const_names, act_pos=act_pos, node_name=node.name,
                          computed=self.computed(const_names))
            if per_output:
                n.meta.update(output=k, outputs=len(outputs))
            self.graph.add(n)
            self.acts[out] = ours
        for out in outputs[1:] if not per_output else ():
            self.extra[out] = f"{node.op_type} `{node.name or outputs[0]}`"

    def infer_one(self, node):
        """Shapes of one node's outputs from its inputs' (where inference over the whole model stopped,
        at an If whose branch only folding chose)."""
        import onnx
        from onnx import helper, numpy_helper
        inits, inputs = [], []
        for name in node.input:
            if name in self.consts:
                inits.append(numpy_helper.from_array(self.np.asarray(self.consts[name]), name))
            elif name and _known(self.dims.get(name)):
                inputs.append(helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, self.dims[name]))
        outs = [helper.make_empty_tensor_value_info(o) for o in node.output if o]
        g = helper.make_graph([node], "one", inputs, outs, initializer=inits)
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", self.opset)])
        try:
            m = onnx.shape_inference.infer_shapes(m, strict_mode=False)
        except Exception:
            return
        for vi in list(m.graph.output) + list(m.graph.value_info):
            t = vi.type.tensor_type
            if t.HasField("shape"):
                dims = [d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim]
                if _known(dims):
                    self.dims[vi.name] = dims

    def unique(self, name):
        name = name or f"t{len(self.names)}"
        while name in self.names:
            name += "_"
        self.names.add(name)
        return name


def _batch_norm_training(x, scale, bias, mean, var, node):
    """BatchNormalization in training mode (its statistics among the outputs; opset 13's form, which
    onnx's reference evaluator does not run): normalised by the statistics of `x` over all but axis 1."""
    import numpy as np
    from onnx import helper
    eps = next((helper.get_attribute_value(a) for a in node.attribute if a.name == "epsilon"), 1e-5)
    axes = tuple(a for a in range(x.ndim) if a != 1)
    shape = [1, -1] + [1] * (x.ndim - 2)
    m, v = x.mean(axis=axes), x.var(axis=axes)
    y = (x - m.reshape(shape)) / np.sqrt(v.reshape(shape) + np.float32(eps)) * scale.reshape(shape) + bias.reshape(shape)
    return [y.astype(x.dtype), mean, var, m, v][:len(node.output)]


def run_nodes(nodes, src, x, opset, skip=()):
    """The graph's source nodes `nodes` (in order, one reading the other) evaluated by onnx's reference
    evaluator with tensor `src` = the array `x`; nodes of `skip` pass their input on."""
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper
    from onnx.reference import ReferenceEvaluator
    alias, made, inits = {src: "x"}, [], []
    skipped = {id(n) for n in skip}
    for n in nodes:
        act = dict(zip(n.meta.get("act_pos", range(len(n.inputs))), n.inputs))
        if id(n) in skipped:
            alias[n.name] = alias.get(n.inputs[0], n.inputs[0])
            continue
        names = []
        for pos in range(max([*act, *n.consts, -1]) + 1):
            if pos in n.consts:
                names.append(f"{n.name}:c{pos}")
                inits.append(numpy_helper.from_array(np.asarray(n.consts[pos]), names[-1]))
            else:
                names.append(alias.get(act.get(pos, ""), act.get(pos, "")))
        made.append(helper.make_node(n.op, names, [n.name], **n.attrs))
    last = alias.get(nodes[-1].name, nodes[-1].name)
    inp = helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, list(np.shape(x)))
    out = helper.make_tensor_value_info(last, onnx.TensorProto.FLOAT, None)
    model = helper.make_model(helper.make_graph(made, "chain", [inp], [out], inits),
                              opset_imports=[helper.make_opsetid("", opset)])
    return ReferenceEvaluator(model).run(None, {"x": np.asarray(x, np.float32)})[0]


def _known(dims) -> bool:
    return dims is not None and all(isinstance(d, int) and d > 0 for d in dims)


def _attr(v):
    return v.decode("utf-8", "replace") if isinstance(v, bytes) else v


def _prod(dims):
    out = 1
    for d in dims:
        out *= d
    return out


def _sorted(nodes, known, path):
    """`nodes` in an order where every node comes after what it reads (ONNX requires it; some
    writers do not keep it). Inputs no node makes are read from the enclosing scope (`known`)."""
    import heapq
    nodes = list(nodes)
    maker = {o: k for k, n in enumerate(nodes) for o in n.output if o}
    needs = [{maker[i] for i in n.input if i in maker and maker[i] != k} for k, n in enumerate(nodes)]
    readers = [[] for _ in nodes]
    for k, deps in enumerate(needs):
        for d in deps:
            readers[d].append(k)
    waiting = [len(d) for d in needs]
    heap = [k for k, w in enumerate(waiting) if w == 0]  # Kahn's, the file's own order where it is free
    out = []
    while heap:
        k = heapq.heappop(heap)
        out.append(nodes[k])
        for r in readers[k]:
            waiting[r] -= 1
            if waiting[r] == 0:
                heapq.heappush(heap, r)
    if len(out) < len(nodes):
        stuck = next(n for k, n in enumerate(nodes) if waiting[k])
        raise CnnError(f"{path}: the graph has a cycle through {stuck.op_type} `{stuck.name}`")
    return out
