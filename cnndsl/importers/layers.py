"""Nodes -> layers of the language, by the kinds' own facts (cnndsl/kinds/).

An importer says what a node is in PyTorch's or the kind's vocabulary (`lift(node, "CONV",
{"out_channels": 64, "kernel_size": 3, "stride": 2}, {"weight": w})`); the kind's schema says
what its arguments are called (an alias such as `stride` is the argument `s`), `kind.bind` fills
in the defaults, and after the whole graph is lifted `finish` computes every shape with the kind's
`out_shape` and checks every tensor against the kind's `tensors` (names and shapes): an importer
that read a model wrongly fails here, not in a report.

    >>> from cnndsl.importers.graph import Graph, Node
    >>> g = Graph(input_shape=(8, 8, 3))
    >>> n = lift(g.add(Node("c", "Conv", ["input"])), "CONV", {"out_channels": 4, "kernel_size": 3, "padding": 1})
    >>> g.output = "c"
    >>> finish(g); n.shape, call_args(n.op, n.attrs)
    ((8, 8, 4), [(None, 4), (None, 3), ('p', 1)])
"""
from __future__ import annotations

import math

from ..errors import CnnError
from ..kinds import KINDS, DoesNotFit, ShapeError

# torch parameter names the kinds take under another name (their TorchModule.spec says which)
_TORCH = {"out_channels": "filters", "kernel_size": "kernel", "out_features": "units", "output_size": "size"}


def lift(node, kind: str, args: dict, tensors: dict | None = None, inputs=None, exact=False):
    """Make `node` a layer of `kind` with `args` (the kind's names, aliases or PyTorch's) and
    `tensors` ({kind tensor name: array}); `inputs` replaces its activation inputs. Floats are
    read as float32 values written by a person (`exact=False`: 1e-5, not 9.99999974738e-06) unless
    `exact` (a PyTorch module's own Python floats)."""
    node.op, node.attrs = kind, named(kind, args, exact)
    node.meta["lifted"] = True
    node.tensors = dict(tensors or {})
    node.consts = {}
    if inputs is not None:
        node.inputs = list(inputs)
    return node


def named(kind: str, args: dict, exact=False) -> dict:
    """`args` under the kind's own argument names, each in its schema's type; a value of another type,
    or out of the schema's range, is a ValueError that says which."""
    k = KINDS[kind]
    values = {}
    for name, v in args.items():
        schema = k.arg(_TORCH.get(name, name))
        if schema is None:
            raise CnnError(f"internal: {kind} has no argument {name!r}", code="E900")
        _check(kind, schema, v)
        values[schema.name] = _exact(v) if exact and schema.type == "float" else _typed(schema.type, v)
    return values


def _check(kind, schema, v):
    """The source's value fits the argument: numbers where numbers go, whole where whole, in range."""
    if hasattr(v, "tolist"):
        v = v.tolist()
    items = v if isinstance(v, (list, tuple)) else [v]
    if schema.type in ("padding", "word", "int") and isinstance(v, str) and schema.choices:
        if v not in schema.choices:
            raise ValueError(f"{kind}'s `{schema.name}` is one of {', '.join(schema.choices)}, not {v!r}")
        return
    for x in items:
        ok = isinstance(x, (int, float)) and not (schema.type in ("int", "pair", "padding") and
                                                  not float(x).is_integer()) and math.isfinite(float(x))
        if schema.type == "bool":
            ok = isinstance(x, (bool, int))
        if ok and schema.type != "bool" and schema.lo is not None and x < schema.lo:
            ok = False
        if not ok:
            what = "a whole number" if schema.type in ("int", "pair", "padding") else "a number"
            low = f" of at least {schema.lo:g}" if schema.lo is not None and schema.type != "bool" else ""
            raise ValueError(f"{kind}'s `{schema.name}` must be {what}{low}, not {x!r}")


def _exact(v) -> float:
    """A Python float as written, without the last bit's noise of its arithmetic (0.2 * 3 / 8 is
    0.07500000000000001 in binary; 0.075 is 1 ulp away)."""
    v = float(v)
    return float(f"{v:.15g}") if math.isfinite(v) else v


def out_shape(kind: str, args: dict, ins: list) -> tuple:
    """The shape a layer of `kind` with `args` makes of inputs of shapes `ins` (a ShapeError where it
    cannot; a window that drops rows gives its shape)."""
    k = KINDS[kind]
    try:
        return k.out_shape(k.bind(named(kind, args)), ins)
    except DoesNotFit as e:
        return e.shape


def _typed(kind_type: str, v):
    """A value in the form the schema's type takes: pairs as tuples, switches as bools, floats
    read from float32 without their noise (1e-5, not 9.99999974738e-06)."""
    if hasattr(v, "tolist"):
        v = v.tolist()
    if kind_type in ("pair", "padding"):
        if isinstance(v, (list, tuple)):
            v = tuple(int(x) for x in v)
            return v[0] if len(set(v)) == 1 else v
        return int(v) if not isinstance(v, str) else v
    if kind_type == "bool":
        return bool(v)
    if kind_type == "float":
        return clean_float(v)
    if kind_type == "int":
        return int(v)
    return v


def clean_float(v) -> float:
    """The shortest decimal that float32 rounds to the same value: what the source's author wrote."""
    v = float(v)
    if not math.isfinite(v) or v == 0:
        return v
    import numpy as np
    f = np.float32(v)
    for digits in range(1, 10):
        short = float(f"{v:.{digits}g}")
        if np.float32(short) == f:
            return short
    return v


def finish(graph) -> None:
    """Bind every layer's arguments, compute its shape, check its tensors; an error names the node."""
    shapes = {"input": graph.input_shape}
    for n in graph.nodes:
        k = KINDS[n.op]
        ins = [shapes[i] for i in n.inputs]
        if k.flat_input:  # an FC flattens a volume first (the spec's implicit FLATTEN)
            ins = [(math.prod(s),) for s in ins]
        try:
            attrs = k.bind(dict(n.attrs))
            try:
                out = k.out_shape(attrs, ins)
            except DoesNotFit as e:  # a window that drops rows: a warning of the report, the shape holds
                out = e.shape
        except ShapeError as e:
            raise CnnError(f"{graph.source}: {n.describe()} as {k.name}: {e.message}",
                           arithmetic=e.arithmetic, hint=e.hint) from None
        n.attrs, n.shape = attrs, tuple(out)
        shapes[n.name] = n.shape
        if n.tensors:
            n.tensors = _checked(graph, n, k.tensors(attrs, ins))
        _check_dims(graph, n)


def _checked(graph, n, expected) -> dict:
    """The node's tensors in the kind's order and shapes (a layout of the same numbers reshaped:
    PReLU's slope (C, 1, 1) is the kind's (C,)); BN's step counter made where the source has none."""
    import numpy as np
    out = {}
    for t in expected:
        have = n.tensors.get(t.name)
        if have is None and t.dtype == "int64":
            have = np.zeros(t.shape, np.int64)
        if have is None or math.prod(np.shape(have)) != math.prod(t.shape):
            got = "none" if have is None else "x".join(map(str, np.shape(have)))
            raise CnnError(f"{graph.source}: {n.describe()}: its {t.name} has shape {got}, "
                           f"{n.op} needs {'x'.join(map(str, t.shape))}")
        arr = np.asarray(have, dtype=np.int64 if t.dtype == "int64" else np.float32).reshape(t.shape)
        out[t.name] = arr if arr.flags.writeable and arr.flags.c_contiguous else np.array(arr)  # torch takes it as is
    return out


def _check_dims(graph, n):
    """The source's own shape of the node's output, where it has one (ONNX's inferred NCHW), must be ours."""
    dims = n.meta.get("dims")
    if not dims or any(not isinstance(d, int) for d in dims):
        return
    ours = (dims[2], dims[3], dims[1]) if len(dims) == 4 else tuple(dims[1:])
    if ours != n.shape:
        raise CnnError(f"{graph.source}: {n.describe()} makes {'x'.join(map(str, ours))} in the model, "
                       f"but {n.op} would make {'x'.join(map(str, n.shape))}", code="E900",
                       hint="the importer misread this node: please report it with the model")


def call_args(kind: str, attrs: dict) -> list:
    """The arguments to write for a layer: the required ones positionally, then those that differ
    from the kind's defaults by name, in the schema's order; pairs of equal halves as one number.
    A kind's only argument is written by position (`LEAKYRELU(0.1)`, `DROPOUT(0.2)`; not a switch:
    `GELU(approx=true)`)."""
    k = KINDS[kind]
    required = {a.name: attrs[a.name] for a in k.args if a.default is None}
    defaults = k.bind(dict(required))
    out = []
    for i, a in enumerate(k.args):
        v = attrs[a.name]
        if a.default is None:
            out.append((None, _short(v)))
        elif _short(v) != _short(defaults[a.name]):
            out.append((None if by_position(k, i) else a.name, _short(v)))
    return out


def by_position(k, i: int) -> bool:
    """Whether a kind's i-th argument, where written, reads best by position: a required one, or the
    first of a kind whose first argument is its subject (`UPSAMPLE(2)`, `lead_positional`) or whose
    only argument it is, unless a switch."""
    a = k.args[i]
    return a.default is None or (i == 0 and a.type != "bool" and (len(k.args) == 1 or k.lead_positional))


def full_args(kind: str, written) -> dict:
    """Every argument of a layer written with `written` (call_args' form), defaults included."""
    k = KINDS[kind]
    values = {(name or k.args[i].name): v for i, (name, v) in enumerate(written)}  # positional ones come first
    return {name: _short(v) for name, v in k.bind(named(kind, values, exact=True)).items()}


def _short(v):
    if isinstance(v, tuple) and len(v) == 2 and v[0] == v[1]:
        return v[0]
    return v
