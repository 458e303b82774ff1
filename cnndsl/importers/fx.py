"""PyTorch module -> the importers' graph, traced with torch.fx.

Leaf modules become layers by the kinds' own facts: the kind whose PyTorch class is the module's
(`TorchModule.cls`: `nn.Conv2d` is CONV) takes its arguments from the module's attributes by the
kind's `spec` (torch parameter -> argument), and the module rebuilt from the kind's constructor must
have the same configuration as the original (so `padding_mode="reflect"` or a dilated MaxPool2d is
refused, never read as something else). Functional calls become joins (`+`, `*`, `torch.cat`),
flattens, poolings, channel slices; other calls on one tensor (`F.relu`, `x.sigmoid()`,
`F.gelu(x, approximate="tanh")`) are recognised by what they compute (pointwise.identify); chains of
reshapes and transposes by the permutation of channels they make (a channel shuffle) or as a flatten.

    >>> import torch.nn as nn
    >>> g, _ = read(nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 4 * 4, 10)),
    ...            input="4x4x3")
    >>> [(n.op, n.meta.get("path")) for n in g.nodes]
    [('CONV', '0'), ('RELU', '1'), ('FLATTEN', '2'), ('FC', '3')]
"""
from __future__ import annotations

import importlib
import math

import numpy as np

from ..errors import CnnError
from ..kinds import KINDS, ShapeError
from . import chains
from .fx_groups import grouped_call
from .fx_modules import Tracer, computed_layer, known, module_layer, own_forward
from .fx_shapes import shape_chains
from .graph import Graph, Node
from .layers import clean_float, lift as make
from .pointwise import lift_regions

SHAPE_OPS = frozenset({"view", "reshape", "unflatten", "transpose", "permute", "contiguous", "flatten", "squeeze",
                       "unsqueeze", "swapaxes", "swapdims"})
PASSTHROUGH = frozenset({"contiguous", "clone", "detach", "float", "to"})
ARITHMETIC = frozenset({"add", "sub", "mul", "truediv", "div", "neg", "pow", "exp", "log", "abs", "sqrt", "rsqrt",
                        "erf", "tanh", "sigmoid", "clamp", "clip", "hardtanh", "square", "reciprocal", "minimum",
                        "maximum", "relu", "relu6", "softplus", "iadd", "imul", "itruediv", "isub", "rsub"})
REFUSED = {"interpolate": "upsampling: the language has no upsampling layer",
           "upsample": "upsampling: the language has no upsampling layer",
           "conv_transpose2d": "a transposed convolution: the language has none"}


def read(module, input=None):
    """(the graph, the module in eval mode) of an nn.Module, or of `package.module:callable`."""
    import torch
    name = module if isinstance(module, str) else type(module).__name__
    model = _resolve(module) if isinstance(module, str) else module
    if not isinstance(model, torch.nn.Module):
        raise CnnError(f"{name}: not a torch.nn.Module but {type(model).__name__}", usage=True)
    model = model.eval()
    shape, note = _input_shape(model, input, name)
    try:
        gm = torch.fx.GraphModule(model, Tracer().trace(model))
    except Exception as e:
        raise CnnError(f"{name}: torch.fx cannot trace it: {str(e).splitlines()[0][:200] if str(e) else type(e).__name__}",
                       hint="data-dependent control flow (an `if` on a tensor's values) has no static graph") from None
    values = _run(gm, shape, name)
    graph = _Walk(gm, values, shape, name).graph
    if note:
        graph.notes.append(note)
    return graph, model


def _resolve(spec: str):
    """`package.module:callable` (or `:Class`) called with no arguments."""
    mod, _, attr = spec.partition(":")
    try:
        obj = importlib.import_module(mod)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as e:
        raise CnnError(f"cannot import {spec}: {e}", usage=True,
                       hint="give package.module:callable, importable from here (pip install the package)") from None
    try:
        return obj()
    except Exception as e:
        raise CnnError(f"{spec}() fails: {type(e).__name__}: {str(e)[:200]}", usage=True) from None


def _input_shape(model, input, name):
    """The input (H, W, C) or (N,): --input, else the spec a cnndsl module was built from, else 224x224
    with the first conv's channels (said in a note)."""
    import torch
    from ..lang.elaborate import parse_volume
    if input is not None:
        return (parse_volume(input) if isinstance(input, str) else tuple(input)), None
    meta = getattr(model, "cnndsl_meta", None) or {}
    if meta.get("input"):
        return parse_volume(meta["input"]), None
    for m in model.modules():
        if isinstance(m, torch.nn.Conv2d):
            return (224, 224, m.in_channels), f"the input size 224x224x{m.in_channels} is assumed (--input sets it)"
        if isinstance(m, torch.nn.Linear):
            return (m.in_features,), None
    raise CnnError(f"{name}: give its input size with --input HxWxC", usage=True)


def _run(gm, shape, name) -> dict:
    """Every fx node's value on a sample input (zeros): tensors' shapes, sizes' numbers."""
    import torch
    x = torch.zeros((1, shape[2], shape[0], shape[1]) if len(shape) == 3 else (1, shape[0]))
    values = {}

    class Recorder(torch.fx.Interpreter):
        def run_node(self, n):
            out = super().run_node(n)
            values[n] = out
            return out
    try:
        with torch.no_grad():
            Recorder(gm).run(x)
    except Exception as e:
        raise CnnError(f"{name} does not run on an input of {'x'.join(map(str, shape))}: "
                       f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}", usage=True,
                       hint="give its input size with --input HxWxC") from None
    return values


def runner(model):
    def run(x):
        import torch
        with torch.no_grad():
            return model(torch.from_numpy(x)).numpy()
    return run


# ---- the walk --------------------------------------------------------------------------------------
class _Walk:
    def __init__(self, gm, values, shape, name):
        import torch
        self.torch, self.gm, self.values = torch, gm, values
        self.graph = Graph(input_shape=tuple(shape), source=name, format="fx")
        self.acts = {}      # fx node -> our tensor name
        self.tuples = {}    # fx node of a chunk/split -> (input tensor, sizes)
        self.grouped = {}   # fx node of a 5-d view of channel groups -> (the volume's tensor, groups)
        self.skip = set()   # fx nodes a rule has taken already (the permute back after a layer norm)
        nodes = list(gm.graph.nodes)
        self.total = len(nodes)
        for k, n in enumerate(nodes):
            self.where = f"node {k + 1} of {len(nodes)}"
            if n not in self.skip:
                getattr(self, n.op)(n)
        chains.lift(self.graph, ChainReader(self))  # timm's RadixSoftmax, EcaModule
        lift_regions(self.graph, self.elementwise, self.run_region)  # x * F.relu6(x + 3) / 6: HARDSWISH
        shape_chains(self)

    def dims(self, n):
        v = self.values.get(n)
        return list(v.shape) if isinstance(v, self.torch.Tensor) else None

    def add(self, n, op, inputs, **meta):
        node = Node(n.name, op, list(inputs), source=str(n.target) if n.op == "call_module" else n.name,
                    where=self.where, meta={"dims": self.dims(n), "fx": n, **meta})
        self.graph.add(node)
        self.acts[n] = node.name
        return node

    def tensor_inputs(self, n):
        fx_node = self.torch.fx.Node
        return [a for a in _flat(n.args) + _flat(list(n.kwargs.values()))
                if isinstance(a, fx_node) and (a in self.acts or a in self.grouped)]

    # -- fx node kinds --
    def placeholder(self, n):
        if "input" in self.acts.values():
            raise CnnError(f"{self.graph.source}: a net of the language has one input; forward takes several")
        self.acts[n] = "input"

    def get_attr(self, n):
        pass  # a parameter or buffer used by a call: read from `values` where the call needs it

    def output(self, n):
        out = n.args[0]
        if out not in self.acts:
            raise CnnError(f"{self.graph.source}: its output is not one tensor (a tuple or a dict of outputs)",
                           hint="import a module whose forward returns one tensor")
        self.graph.output = self.acts[out]

    def call_module(self, n):
        m = self.gm.get_submodule(n.target)
        ins = self.tensor_inputs(n)
        if any(a in self.grouped for a in ins):
            node = self.add(n, f"module:{type(m).__name__}", [self.grouped[a][0] for a in ins if a in self.grouped])
            node.meta["why"] = "a module on a 5-d view of channel groups: no layer of the language computes it"
            return
        if type(m).__name__ == "Identity" and len(ins) == 1:
            self.acts[n] = self.acts[ins[0]]
            return
        found = module_layer(m, _hwc(self.dims(ins[0]))) if len(ins) >= 1 else None
        node = self.add(n, f"module:{type(m).__name__}", [self.acts[a] for a in ins], path=n.target)
        if found is not None and (KINDS[found[0]].join or len(ins) == 1):
            tensors = {k: v.detach().cpu().numpy() for k, v in m.state_dict().items()}
            make(node, found[0], found[1], tensors, exact=True)
            return
        computed = computed_layer(m, _hwc(self.dims(ins[0]))) if own_forward(m) and len(ins) == 1 else None
        if computed is not None:
            make(node, *computed, exact=True)
            return
        if not known(m) and len(ins) == 1 and not list(m.parameters()) and self._pointwise(node, n, lambda x: m(x)):
            return  # a module of its own making that computes an activation (or nothing, at inference)
        node.meta["why"] = f"no layer of the language is a {type(m).__name__} configured like this one ({m})"

    def call_function(self, n):
        self.call(n, getattr(n.target, "__name__", str(n.target)))

    def call_method(self, n):
        self.call(n, n.target)

    def call(self, n, fname):
        fname = fname.rstrip("_") if fname not in ("__getitem__",) else "getitem"
        ins = self.tensor_inputs(n)
        if fname == "getitem" and isinstance(n.args[0], self.torch.fx.Node) and n.args[0] in self.tuples:
            self.f_getitem(n, ins)
            return
        if not ins:
            return  # arithmetic on sizes (x.size(0)): its values are in `values`
        if grouped_call(self, n, fname, ins):
            return  # SKNet's and ResNeSt's 5-d views of channel groups (fx_groups.py)
        rule = getattr(self, "f_" + fname, None)
        if fname in PASSTHROUGH and len(ins) == 1 and self.dims(n) == self.dims(ins[0]):
            self.acts[n] = self.acts[ins[0]]
            return
        if rule is not None:
            try:
                if rule(n, ins) is not False:
                    return
            except (TypeError, ValueError, KeyError, IndexError, AttributeError, ShapeError) as e:
                made = self.graph.by_name().get(self.acts.get(n)) if n in self.acts else None
                node = made or self.add(n, f"call:{fname}", [self.acts[a] for a in ins])
                node.meta.pop("lifted", None)
                node.op = f"call:{fname}"
                node.meta["why"] = getattr(e, "message", None) or f"its arguments cannot be read ({e})"
                return
        if not isinstance(self.values.get(n), self.torch.Tensor):
            return  # x.shape, x.size(1) // 2: sizes, whose values calls read from `values`
        node = self.add(n, f"call:{fname}", [self.acts[a] for a in ins])
        if fname in SHAPE_OPS and len(ins) == 1:
            node.meta["shape_op"] = True
            return
        if len(ins) == 1 and self.dims(n) == self.dims(ins[0]):
            fn = (lambda x: getattr(x, n.target)(*_sub(n.args[1:], n, x), **_sub(n.kwargs, n, x))) \
                if n.op == "call_method" else (lambda x: n.target(*_sub(n.args, n, x, ins[0]), **_sub(n.kwargs, n, x, ins[0])))
            if self._pointwise(node, n, fn):
                return
        node.meta["why"] = REFUSED.get(fname, f"no layer of the language computes {fname}(...) here")

    # -- element-wise functions written out in Python, recognised as a whole ---------------------------
    def elementwise(self, node) -> bool:
        """A call on one tensor (or two, of the same size) and numbers, element by element: an
        arithmetic operator or function, or an activation already recognised alone."""
        n = node.meta.get("fx")
        if n is None or node.meta.get("shape_op") or node.tensors or (
                node.lifted and node.op not in ("ADD", "MUL", "SCALE") and KINDS[node.op].draw_group != "activation"):
            return False  # a layer with weights (PRELU's slope) is no function of its input alone
        if n.op == "call_module":
            return node.lifted and KINDS[node.op].draw_group == "activation"
        name = _fname(n)
        if name not in ARITHMETIC and not node.lifted:
            return False
        dims = self.dims(n)
        for a in _flat(n.args) + _flat(list(n.kwargs.values())):
            if isinstance(a, self.torch.fx.Node):
                v = self.values.get(a)
                if isinstance(v, self.torch.Tensor) and list(v.shape) != dims and v.numel() != 1:
                    return False
        return True

    def run_region(self, region, x):
        """The region's fx calls on the probe (as the tensor `x`), constants as traced."""
        from .pointwise import probe
        try:
            return self.run_nodes(region, x, probe()).reshape(-1)
        except Exception:
            return None

    def run_nodes(self, nodes, src, x, skip=()):
        """The fx calls of `nodes` (in order) with tensor `src` = the array `x`, other values as traced;
        nodes of `skip` pass their input on."""
        torch, env = self.torch, {}
        start = torch.from_numpy(np.asarray(x, np.float32).copy())
        skipped = {id(s) for s in skip}

        def value(a):
            if isinstance(a, (list, tuple)):
                return type(a)(value(b) for b in a)
            if not isinstance(a, torch.fx.Node):
                return a
            if a in env:
                return env[a]
            return start.clone() if self.acts.get(a) == src else self.values.get(a)  # in-place calls (`x.mul_`)
        with torch.no_grad():
            for node in nodes:
                n = node.meta["fx"]
                args, kwargs = value(n.args), {k: value(v) for k, v in n.kwargs.items()}
                if id(node) in skipped:
                    env[n] = next(a for a in _flat(args) if isinstance(a, torch.Tensor))
                elif n.op == "call_module":
                    env[n] = self.gm.get_submodule(n.target)(*args, **kwargs)
                elif n.op == "call_method":
                    env[n] = getattr(args[0], n.target)(*args[1:], **kwargs)
                else:
                    env[n] = n.target(*args, **kwargs)
        return env[nodes[-1].meta["fx"]].numpy()

    def _pointwise(self, node, n, fn) -> bool:
        from .pointwise import identify, probe
        torch = self.torch
        for shape in ((-1,), (1, -1, 1, 1)):
            try:
                with torch.no_grad():
                    out = fn(torch.from_numpy(probe().copy()).reshape(shape))
                result = identify(out.reshape(-1).numpy())
            except Exception:
                continue
            if result == "identity":  # at inference: a dropout of its own, say; what it does in training is lost
                self.graph.nodes.remove(node)
                self.acts[n] = node.inputs[0]
                self.graph.notes.append(f"left out as the identity it is at inference: {node.source}")
                return True
            if result is not None:
                make(node, result[0], result[1])
                return True
        return False

    # -- functional calls --
    def f_add(self, n, ins):
        if len(ins) == 2 and len(_flat(n.args)) == 2:
            make(self.add(n, "add", [self.acts[a] for a in ins]), "ADD", {})
            return None
        return False

    f_iadd = f_add

    def f_mul(self, n, ins):
        if len(ins) == 2:
            make(self.add(n, "mul", [self.acts[a] for a in ins]), "MUL", {})
            return None
        other = [a for a in _flat(n.args) if not (isinstance(a, self.torch.fx.Node) and a in self.acts)]
        value = self.values.get(other[0]) if len(other) == 1 and hasattr(other[0], "op") else None
        c = (self.dims(ins[0]) or [0, 0])[1]
        if isinstance(value, self.torch.Tensor) and value.numel() == c and c > 1 and self.dims(n) == self.dims(ins[0]):
            make(self.add(n, "mul", [self.acts[ins[0]]], path=str(other[0].target)), "LAYERSCALE", {},
                 {"weight": value.detach().cpu().numpy().reshape(-1)})
            return None
        return False

    f_imul = f_mul

    def f_expand_as(self, n, ins):
        """`y.expand_as(x)` read only by products: y itself, which `.*` broadcasts (timm's ECA gate)."""
        if not all(_fname(u) == "mul" for u in n.users) or n.args[0] not in self.acts:
            return False
        self.acts[n] = self.acts[n.args[0]]

    f_expand = f_expand_as

    def f_conv2d(self, n, ins):
        """F.conv2d of a stored weight (CONV), or of one standardised per filter on the way (timm's
        StdConv2d and ScaledStdConv2d: STDCONV, SCALEDSTDCONV), judged by its values."""
        names = ("input", "weight", "bias", "stride", "padding", "dilation", "groups")
        given = {**dict(zip(names, n.args)), **n.kwargs}
        if len(ins) != 1 or given["input"] is not ins[0]:
            return False
        value = lambda v: self.values.get(v) if isinstance(v, self.torch.fx.Node) else v  # noqa: E731
        w, b = value(given["weight"]).detach().cpu().numpy(), value(given.get("bias"))
        args = {"filters": w.shape[0], "kernel": w.shape[2:], "stride": given.get("stride", 1),
                "padding": given.get("padding", 0), "dilation": given.get("dilation", 1),
                "groups": given.get("groups", 1), "bias": b is not None}
        tensors = {"bias": b.detach().cpu().numpy()} if b is not None else {}
        node = self.add(n, "conv2d", [self.acts[ins[0]]], path=_param_path(given["weight"]))
        if given["weight"].op == "get_attr":
            make(node, "CONV", args, {"weight": w, **tensors}, exact=True)
            return None
        sources, numbers = self._weight_sources(given["weight"])
        from .numeric import judge_standardised
        found = judge_standardised(w, sources, numbers) if sources is not None else None
        if found is None:
            node.meta["why"] = "a convolution with a weight computed otherwise than by standardising a stored one"
            return None
        raw, eps, gains = found
        if gains is None:
            make(node, "STDCONV", {**args, "eps": eps}, {"weight": raw, **tensors}, exact=True)
            return None
        gain = next((g for g in sources.values() if g.size == w.shape[0] and g is not raw), None)
        if gain is None:
            node.meta["why"] = "a standardised weight scaled by something other than a gain per filter"
            return None
        gamma = clean_float(float(np.median(gains / gain.reshape(-1))) * math.sqrt(raw[0].size))  # float32 products
        flat = gain.reshape(-1)
        make(node, "SCALEDSTDCONV", {**args, "eps": eps, "gamma": gamma,
                                     "gain": float(flat[0]) if (flat == flat[0]).all() else 1.0},
             {"weight": raw, **tensors, "gain": gain}, exact=True)

    def f_batch_norm(self, n, ins):
        """F.batch_norm with stored running statistics, at inference (timm's BatchNormAct2d, whose
        activation follows as a module of its own): BN."""
        names = ("input", "running_mean", "running_var", "weight", "bias", "training", "momentum", "eps")
        given = {**dict(zip(names, n.args)), **n.kwargs}
        stats = [given.get(k) for k in ("running_mean", "running_var", "weight", "bias")]
        if len(ins) != 1 or given["input"] is not ins[0] or given.get("training") or len(self.dims(ins[0])) != 4 \
                or any(getattr(v, "op", None) != "get_attr" for v in stats):
            return False
        tensors = {k: self.values[v].detach().cpu().numpy() for k, v in zip(names[1:5], stats)}
        momentum = given.get("momentum")
        make(self.add(n, "batch_norm", [self.acts[ins[0]]], path=_param_path(given["weight"])), "BN",
             {"eps": given.get("eps", 1e-5), **({"momentum": momentum} if momentum else {})}, tensors, exact=True)

    def _weight_sources(self, weight):
        """({parameter path: array}, {eps and numbers added}) of what a computed weight is made from;
        (None, None) where it reads the input."""
        sources, numbers, stack, seen = {}, set(), [weight], set()
        while stack:
            a = stack.pop()
            if a in seen:
                continue
            seen.add(a)
            if a.op == "placeholder":
                return None, None
            if a.op == "get_attr":
                sources[str(a.target)] = self.values[a].detach().cpu().numpy()
                continue
            if _fname(a) == "batch_norm":
                numbers.add(float(a.kwargs.get("eps", a.args[7] if len(a.args) > 7 else 1e-5)))
            numbers.update(float(v) for v in a.args if isinstance(v, float) and _fname(a) == "add")
            stack.extend(a.all_input_nodes)
        return sources, numbers

    def f_cat(self, n, ins):
        dim = n.kwargs.get("dim", n.args[1] if len(n.args) > 1 else 0)
        rank = len(self.dims(ins[0]))
        if dim % rank != 1 or len(ins) != len(_flat(n.args[0])):
            return False
        make(self.add(n, "cat", [self.acts[a] for a in ins]), "CONCAT", {})

    f_concat = f_concatenate = f_cat

    def f_flatten(self, n, ins):
        d_in, d_out = self.dims(ins[0]), self.dims(n)
        if d_out is not None and len(d_out) == 2 and len(d_in) == 4 and d_out[1] == math.prod(d_in[1:]):
            make(self.add(n, "flatten", [self.acts[ins[0]]]), "FLATTEN", {})
            return None
        return False

    def f_mean(self, n, ins):
        dims = n.kwargs.get("dim", n.args[1] if len(n.args) > 1 else None)
        keep = n.kwargs.get("keepdim", n.args[2] if len(n.args) > 2 else False)
        d_in = self.dims(ins[0])
        if dims is None or len(d_in) != 4 or sorted(d % 4 for d in _flat([dims])) != [2, 3]:
            return False
        return self._global(n, ins, "GAP", {}, keep)

    def f_adaptive_avg_pool2d(self, n, ins):
        size = n.kwargs.get("output_size", n.args[1] if len(n.args) > 1 else None)
        if _flat([size]) == [1] or _flat([size]) == [1, 1]:
            return self._global(n, ins, "GAP", {}, True)
        make(self.add(n, "pool", [self.acts[ins[0]]]), "ADAPTIVEAVGPOOL", {"size": size})

    def f_adaptive_max_pool2d(self, n, ins):
        size = n.kwargs.get("output_size", n.args[1] if len(n.args) > 1 else None)
        make(self.add(n, "pool", [self.acts[ins[0]]]), "ADAPTIVEMAXPOOL", {"size": size})

    def _global(self, n, ins, kind, args, keep):
        if keep:
            make(self.add(n, "pool", [self.acts[ins[0]]]), kind, args)
            return None
        pooled = Node(n.name + ":pooled", kind, [self.acts[ins[0]]], source=n.name, where=self.where,
                      meta={"dims": self.dims(ins[0])[:2] + [1, 1]})
        make(pooled, kind, args)
        self.graph.add(pooled)
        make(self.add(n, "flatten", [pooled.name]), "FLATTEN", {})
        return None

    def f_max_pool2d(self, n, ins):
        return self._pool(n, ins, "MAXPOOL", ("input", "kernel_size", "stride", "padding", "dilation", "ceil_mode"))

    def f_avg_pool2d(self, n, ins):
        return self._pool(n, ins, "AVGPOOL", ("input", "kernel_size", "stride", "padding", "ceil_mode",
                                                "count_include_pad"))

    def _pool(self, n, ins, kind, names):
        given = {**dict(zip(names, n.args)), **n.kwargs}
        if _flat([given.get("dilation", 1)]) not in ([1], [1, 1]) or given.get("divisor_override") \
                or given.get("return_indices"):
            return False
        kernel = given["kernel_size"]
        args = {"kernel": kernel, "stride": given.get("stride") or kernel, "padding": given.get("padding", 0),
                "ceil": bool(given.get("ceil_mode", False))}
        if kind == "AVGPOOL":
            args["count_pad"] = bool(given.get("count_include_pad", True))
        make(self.add(n, "pool", [self.acts[ins[0]]]), kind, args)

    def f_layer_norm(self, n, ins):
        """F.layer_norm over the last axis: of a vector, or of a volume permuted to NHWC and back
        (torchvision's LayerNorm2d)."""
        x = n.args[0]
        shape = n.kwargs.get("normalized_shape", n.args[1] if len(n.args) > 1 else None)
        params = [n.kwargs.get(k, n.args[i] if len(n.args) > i else None) for i, k in ((2, "weight"), (3, "bias"))]
        eps = n.kwargs.get("eps", n.args[4] if len(n.args) > 4 else 1e-5)
        d = self.dims(x)
        if len(_flat([shape])) != 1 or x not in self.acts:
            return False
        tensors = {}
        for name, p in zip(("weight", "bias"), params):
            if p is not None:
                tensors[name] = self.values[p].detach().cpu().numpy()
        affine = len(tensors) == 2
        if len(tensors) == 1:
            return False
        if len(d) == 2:
            make(self.add(n, "layer_norm", [self.acts[x]]), "LAYERNORM", {"eps": eps, "affine": affine}, tensors)
            return None
        users = list(n.users)
        before, after = self.graph.by_name().get(self.acts[x]), users[0] if len(users) == 1 else None
        if (len(d) != 4 or before is None or not _permutes(before.meta.get("fx"), (0, 2, 3, 1)) or len(x.users) != 1
                or not _permutes(after, (0, 3, 1, 2))):
            return False
        self.graph.nodes.remove(before)
        node = self.add(after, "layer_norm", [before.inputs[0]], path=str(n.name))
        make(node, "LAYERNORM", {"eps": eps, "affine": affine}, tensors)
        self.skip.add(after)

    def f_dropout(self, n, ins):
        p = n.kwargs.get("p", n.args[1] if len(n.args) > 1 else 0.5)
        make(self.add(n, "dropout", [self.acts[ins[0]]]), "DROPOUT", {"p": p})

    def f_softmax(self, n, ins):
        dim = n.kwargs.get("dim", n.args[1] if len(n.args) > 1 else None)
        if dim is None or dim % len(self.dims(ins[0])) != 1:
            return False
        make(self.add(n, "softmax", [self.acts[ins[0]]]), "SOFTMAX", {})

    def f_pad(self, n, ins):
        pads = _flat([n.kwargs.get("pad", n.args[1] if len(n.args) > 1 else None)])
        rank = len(self.dims(ins[0]))
        value = n.kwargs.get("value", n.args[3] if len(n.args) > 3 else 0)
        mode = n.kwargs.get("mode", n.args[2] if len(n.args) > 2 else "constant")
        channel = 2 * (rank - 2)  # F.pad's pairs run from the last axis back: the channels' pair follows H's and W's
        if mode != "constant" or value not in (0, None) or len(pads) != channel + 2 or any(pads[:channel]) \
                or pads[channel] or not pads[channel + 1]:
            return False
        make(self.add(n, "pad", [self.acts[ins[0]]]), "PADCHANNELS", {"extra": pads[channel + 1]})

    def f_chunk(self, n, ins):
        chunks = n.kwargs.get("chunks", n.args[1] if len(n.args) > 1 else None)
        dim = n.kwargs.get("dim", n.args[2] if len(n.args) > 2 else 0)
        c = self.dims(ins[0])[1]
        if dim % len(self.dims(ins[0])) != 1:
            return False
        size = -(-c // chunks)
        self.tuples[n] = (ins[0], [min(size, c - i * size) for i in range(chunks) if i * size < c])

    def f_split(self, n, ins):
        sizes = n.kwargs.get("split_size_or_sections", n.args[1] if len(n.args) > 1 else None)
        dim = n.kwargs.get("dim", n.args[2] if len(n.args) > 2 else 0)
        c = self.dims(ins[0])[1]
        if dim % len(self.dims(ins[0])) != 1:
            return False
        if isinstance(sizes, int):
            sizes = [min(sizes, c - i) for i in range(0, c, sizes)]
        self.tuples[n] = (ins[0], list(sizes))

    def f_getitem(self, n, ins):
        src, index = n.args[0], n.args[1]
        if isinstance(src, self.torch.fx.Node) and src in self.tuples:
            x, sizes = self.tuples[src]
            lo = sum(sizes[:index])
            node = self.add(n, "getitem", [self.acts[x]])
            c = sum(sizes)
            if len(set(sizes)) == 1 and c % sizes[0] == 0:
                make(node, "SPLIT", {"index": index, "parts": len(sizes)})
            else:
                make(node, "CHANNELS", {"start": lo, "stop": 0 if lo + sizes[index] == c else lo + sizes[index]})
            return None
        c = (self.dims(ins[0]) or [0, 0])[1]
        if (isinstance(index, tuple) and len(index) == 2 and index[0] == slice(None) and isinstance(index[1], slice)
                and index[1].step in (None, 1)):
            known = lambda v: self.values.get(v, v) if isinstance(v, self.torch.fx.Node) else v  # noqa: E731
            lo, hi, _ = slice(known(index[1].start), known(index[1].stop)).indices(c)
            make(self.add(n, "getitem", [self.acts[ins[0]]]), "CHANNELS", {"start": lo, "stop": 0 if hi == c else hi})
            return None
        return False


def _fname(n) -> str:
    """The name of an fx call: `add` for operator.add, torch.add and x.add_ alike."""
    name = n.target if isinstance(n.target, str) else getattr(n.target, "__name__", str(n.target))
    return name.strip("_") if name.startswith("__") else name.rstrip("_")


def _param_path(node) -> str:
    """`conv.weight`'s module path, `conv`, where a weight is read straight from a module."""
    target = str(getattr(node, "target", ""))
    return target.rpartition(".")[0] if getattr(node, "op", "") == "get_attr" else ""


def _permutes(n, order) -> bool:
    """Whether fx node `n` is `x.permute(*order)` (or torch.permute(x, order))."""
    if n is None or n.op not in ("call_method", "call_function") or getattr(n.target, "__name__", n.target) != "permute":
        return False
    dims = _flat(n.args[1:]) or _flat([n.kwargs.get("dims", ())])
    return tuple(dims) == order


def _hwc(dims):
    if not dims:
        return (1,)
    return (dims[2], dims[3], dims[1]) if len(dims) == 4 else tuple(dims[1:])


def _flat(args) -> list:
    out = []
    for a in args:
        if isinstance(a, (list, tuple)):
            out += _flat(a)
        else:
            out.append(a)
    return out


def _sub(args, n, x, tensor=None):
    """A call's arguments with its tensor input replaced by `x` (for probing what it computes)."""
    def one(a):
        if tensor is not None and a is tensor:
            return x
        if isinstance(a, (list, tuple)):
            return type(a)(one(b) for b in a)
        return a
    if isinstance(args, dict):
        return {k: one(v) for k, v in args.items()}
    return [one(a) for a in args]


class ChainReader:
    """chains.py's reader of torch.fx calls as the walk left them (a softmax already lifted, the
    reshapes not), run by the walk on the traced values."""

    def __init__(self, walk):
        self.walk = walk

    def _fx(self, n):
        return n.meta.get("fx")

    def _name(self, n):
        fx = self._fx(n)
        return _fname(fx) if fx is not None and fx.op != "call_module" else None

    def layout(self, n):
        return not n.lifted and (bool(n.meta.get("shape_op")) or self._name(n) == "pad")

    def elementwise(self, n):
        return self.walk.elementwise(n)

    def softmax(self, n):
        fx = self._fx(n)
        if fx is not None and fx.op == "call_module":
            return type(self.walk.gm.get_submodule(fx.target)).__name__ == "Softmax"
        return self._name(n) == "softmax"

    def conv1d(self, n):
        fx = self._fx(n)
        if n.lifted or fx is None or fx.op != "call_module" or len(n.inputs) != 1:
            return None
        m = self.walk.gm.get_submodule(fx.target)
        if type(m).__name__ != "Conv1d" or (m.in_channels, m.out_channels, m.groups) != (1, 1, 1) \
                or m.stride != (1,) or m.dilation != (1,) or m.padding_mode != "zeros":
            return None
        bias = m.bias.detach().cpu().numpy() if m.bias is not None else None
        return m.weight.detach().cpu().numpy(), bias

    def run(self, nodes, src, x, skip):
        return self.walk.run_nodes(nodes, src, x, skip)

    def unflat(self, node, dims, commit):
        """A FLATTEN of a 1x1xC volume read back as that volume: the volume."""
        made = self.walk.graph.by_name()
        inner = made.get(node.inputs[0]) if node.op == "FLATTEN" and node.inputs else None
        if inner is not None and list(inner.meta.get("dims") or ()) == list(dims):
            return inner.name
        return None
