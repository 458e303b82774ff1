"""Caffe prototxt -> the importers' graph: a grammar of our own (grammars/prototxt.lark, protobuf's text
format), no Caffe and no protoc.

Caffe's layers are lifted as they are read, Caffe's rules made explicit: pooling rounds up (`ceil=true`
where that changes the size: Caffe always rounds up, PyTorch only in ceil mode) and strides 1 by
default, LRN's alpha defaults to 1, a `BatchNorm` followed by a `Scale` (with a bias) is one BN,
`group` splits a convolution, `ReLU` with a negative slope is LEAKYRELU, `BNLL` is SOFTPLUS, `Power`
with power 1 and no shift is SCALE, an Eltwise sum's `coeff`s SCALEs of its inputs (Inception-ResNet's
0.17), an `Upsample` of one input (the darknet ports' nearest upsampling) UPSAMPLE. Data and
input layers give the input volume; loss and accuracy layers (training heads) are left out, said in a
note. A prototxt holds no weights (those are in a .caffemodel): an import of one is a spec only.

    >>> g = parse('input: "data" input_shape { dim: 1 dim: 1 dim: 28 dim: 28 }\\n'
    ...           'layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1" '
    ...           'convolution_param { num_output: 20 kernel_size: 5 } }')
    >>> g.input_shape, [(n.op, n.attrs["filters"], n.attrs["kernel"]) for n in g.nodes]
    ((28, 28, 1), [('CONV', 20, 5)])
"""
from __future__ import annotations

import functools
import os

from ..errors import CnnError
from .graph import Graph, Node, read_model
from ..kinds import ShapeError
from .layers import lift as make, out_shape

MAX_BYTES = 16 << 20
DATA = {"Data", "ImageData", "HDF5Data", "WindowData", "Python", "AnnotatedData", "VideoData"}
DROPPED = {"SoftmaxWithLoss", "Accuracy", "EuclideanLoss", "SigmoidCrossEntropyLoss", "HingeLoss",
           "InfogainLoss", "MultinomialLogisticLoss", "ContrastiveLoss", "Silence"}
V1 = {"CONVOLUTION": "Convolution", "POOLING": "Pooling", "INNER_PRODUCT": "InnerProduct", "RELU": "ReLU",
      "SIGMOID": "Sigmoid", "TANH": "TanH", "LRN": "LRN", "DROPOUT": "Dropout", "SOFTMAX": "Softmax",
      "SOFTMAX_LOSS": "SoftmaxWithLoss", "CONCAT": "Concat", "ELTWISE": "Eltwise", "FLATTEN": "Flatten",
      "SPLIT": "Split", "DATA": "Data", "IMAGE_DATA": "ImageData", "ACCURACY": "Accuracy", "BNLL": "BNLL",
      "MEMORY_DATA": "MemoryData", "DUMMY_DATA": "DummyData", "HDF5_DATA": "HDF5Data", "SLICE": "Slice",
      "SILENCE": "Silence", "EUCLIDEAN_LOSS": "EuclideanLoss", "POWER": "Power", "ABSVAL": "AbsVal"}


def sniff(path) -> bool:
    """Whether `path` is a prototxt: by its name, or a regular file whose start reads like one."""
    path = os.fspath(path)
    if path.endswith((".prototxt", ".pbtxt")):
        return True
    if not os.path.isfile(path):
        return False
    from ..files import user_file
    with user_file(path, "MODEL") as f:  # regular files only, opened without waiting on a FIFO
        head = f.read(4096)
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return any(w in text for w in ("layer {", "layers {", "layer{", "layers{")) and "\0" not in text


def read(path, input=None) -> Graph:
    path = os.fspath(path)
    data = read_model(path, MAX_BYTES, "a Caffe .prototxt")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise CnnError(f"{path}: not a prototxt (not UTF-8 text at byte {e.start})") from None
    return parse(text, path, input)


@functools.cache
def _parser():
    from lark import Lark
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for path in (os.path.join(here, "grammars", "prototxt.lark"), os.path.join(os.path.dirname(here), "grammars",
                                                                                "prototxt.lark")):
        if os.path.exists(path):
            return Lark.open(path, parser="lalr")
    raise CnnError("cnndsl is installed without its grammar (grammars/prototxt.lark)", hint="reinstall: pip install -e .")


def messages(text, path="<prototxt>"):
    """The text as a message: a list of (field, value) pairs, a value a str, a number, or a message."""
    from lark.exceptions import LarkError, UnexpectedInput
    try:
        return _message(_parser().parse(text).children)
    except UnexpectedInput as e:
        raise CnnError(f"{path}:{e.line}:{e.column}: not protobuf text: {str(e).splitlines()[0][:120]}",
                       hint="a Caffe .prototxt: `layer { name: \"conv1\" type: \"Convolution\" ... }`") from None
    except (LarkError, RecursionError) as e:
        raise CnnError(f"{path}: not protobuf text ({type(e).__name__}: messages nested too deeply?)") from None


def _message(items):
    out = []
    for it in items:
        if getattr(it, "data", None) == "field":
            out.append((str(it.children[0]), _value(it.children[1])))
        elif getattr(it, "data", None) == "message":
            out.append((str(it.children[0]), _message(it.children[1:])))
    return out


def _value(v):
    token = v.children[0]
    if v.data == "string":
        return bytes(token[1:-1], "utf-8").decode("unicode_escape") if "\\" in token else str(token[1:-1])
    if v.data == "number":
        f = float(token)
        return int(f) if f.is_integer() and not any(c in token for c in ".eE") else f
    return str(token)


class Msg:
    """Read access to a message: `m.get("kernel_size", 1)`, `m.all("bottom")`, `m.sub("pooling_param")`."""

    def __init__(self, pairs):
        self.pairs = pairs

    def all(self, key):
        return [v for k, v in self.pairs if k == key]

    def get(self, key, default=None):
        values = self.all(key)
        return values[-1] if values else default

    def sub(self, key):
        v = self.get(key)
        return Msg(v if isinstance(v, list) else [])


def parse(text, path="<prototxt>", input=None) -> Graph:
    top = Msg(messages(text, path))
    return _Reader(top, path, input).graph


class _Reader:
    def __init__(self, top, path, input):
        self.path = path
        layers = [Msg(v) for k, v in top.pairs if k in ("layer", "layers") and isinstance(v, list)]
        if not layers:
            raise CnnError(f"{path}: no `layer {{ ... }}` in it: not a Caffe net")
        layers = [m for m in layers if _in_test_phase(m)]
        self.blobs = {}        # Caffe blob -> our tensor
        self.shapes = {}       # our tensor -> (H, W, C) or (N,)
        self.names = set()
        self.dropped = []
        shape = _net_input(top, layers, input, path)
        self.graph = Graph(input_shape=shape, source=os.path.basename(path), format="prototxt")
        self.shapes["input"] = shape
        for name in top.all("input") or []:
            self.blobs[name] = "input"
        self.last = None
        for k, m in enumerate(layers):
            self.layer(m, f"layer {k + 1} of {len(layers)}")
        if self.last is None:
            raise CnnError(f"{path}: no layer computes anything from the input")
        self.graph.output = self.last
        if self.dropped:
            self.graph.notes.append("left out, as training heads: " + ", ".join(self.dropped))
        plain = [n.source for n in self.graph.nodes if n.op == "BN" and not n.meta.get("affine")]
        if plain:
            self.graph.notes.append(f"Caffe's BatchNorm {', '.join(plain)} has no Scale after it: no learnt scale "
                                    f"and shift, which BN here has (2 parameters a channel more)")

    def layer(self, m, where):
        kind = str(m.get("type", ""))
        kind = V1.get(kind, kind)
        name = str(m.get("name", kind))
        tops = m.all("top")
        if kind in DATA or kind in ("Input", "MemoryData", "DummyData"):
            for t in tops[:1]:
                self.blobs[t] = "input"
            return
        if kind in DROPPED:
            self.dropped.append(f"{name} ({kind})")
            return
        bottoms = m.all("bottom")
        missing = [b for b in bottoms if b not in self.blobs]
        if missing:
            raise CnnError(f"{self.path}: layer `{name}` ({where}) reads `{missing[0]}`, which no layer before it makes")
        ins = [self.blobs[b] for b in bottoms]
        if kind == "Split":
            for t in tops:
                self.blobs[t] = ins[0]
            return
        if kind == "Scale" and self._scale_after_bn(m, ins, tops):
            return
        if kind == "Slice":
            return self.slice(m, name, where, ins, tops)
        node = Node(self.unique(name), kind, ins, source=name, where=where, meta={"path": name})
        try:
            why = RULES[kind](self, node, m) if kind in RULES else f"no layer of the language is a Caffe {kind or 'layer'}"
            if not why:
                self.shapes[node.name] = out_shape(node.op, node.attrs, [self.shapes[i] for i in ins])
        except (ShapeError, CnnError, ValueError, TypeError, KeyError) as e:
            why = getattr(e, "message", None) or str(e)
        if why:
            node.meta["why"] = why
            node.meta.pop("lifted", None)
            node.op = kind or "layer"
            self.shapes[node.name] = self.shapes[ins[0]] if ins else None
        self.graph.add(node)
        for t in tops[:1]:
            self.blobs[t] = node.name
        self.last = node.name

    def unique(self, name):
        base, k = name, 2
        while name in self.names or name == "input":
            name, k = f"{base}_{k}", k + 1
        self.names.add(name)
        return name

    def shape_in(self, node):
        return self.shapes[node.inputs[0]]

    def _scale_after_bn(self, m, ins, tops):
        """Caffe's BatchNorm normalises only; the Scale after it (with a bias) is BN's affine part."""
        made = self.graph.nodes[-1] if self.graph.nodes else None
        p = m.sub("scale_param")
        if made is None or made.name != ins[0] or made.op != "BN" or made.meta.get("affine") \
                or not p.get("bias_term", False) in (True, "true"):
            return False
        made.meta["affine"] = True
        for t in tops[:1]:
            self.blobs[t] = made.name
        return True

    def slice(self, m, name, where, ins, tops):
        p = m.sub("slice_param")
        shape = self.shapes[ins[0]]
        if p.get("axis", p.get("slice_dim", 1)) != 1:
            raise CnnError(f"{self.path}: layer `{name}` ({where}) slices along another axis than the channels")
        c = shape[-1]
        points = [int(v) for v in p.all("slice_point")] or [c * k // len(tops) for k in range(1, len(tops))]
        bounds = [0] + points + [c]
        for k, t in enumerate(tops):
            node = Node(self.unique(f"{name}_{k}"), "Slice", ins, source=name, where=where, meta={"path": name})
            make(node, "CHANNELS", {"start": bounds[k], "stop": 0 if bounds[k + 1] == c else bounds[k + 1]})
            self.shapes[node.name] = out_shape(node.op, node.attrs, [shape])
            self.graph.add(node)
            self.blobs[t] = node.name


def _in_test_phase(m) -> bool:
    """Layers a deploy (TEST) net has: none that includes only TRAIN, or excludes TEST."""
    for inc in m.all("include"):
        if Msg(inc).get("phase") == "TRAIN":
            return False
    for exc in m.all("exclude"):
        if Msg(exc).get("phase") == "TEST":
            return False
    return True


def _net_input(top, layers, input, path):
    """(H, W, C) from --input, the net's `input_shape`/`input_dim`, an Input/MemoryData/DummyData layer,
    or a data layer's crop size (3 channels then, said in the hint if it is wrong)."""
    from ..lang.elaborate import parse_volume
    if input is not None:
        return parse_volume(input) if isinstance(input, str) else tuple(input)
    dims = [int(v) for v in top.all("input_dim")] or [int(v) for v in top.sub("input_shape").all("dim")]
    for m in layers:
        kind = V1.get(str(m.get("type", "")), str(m.get("type", "")))
        if dims:
            break
        if kind == "Input":
            dims = [int(v) for v in m.sub("input_param").sub("shape").all("dim")]
        elif kind == "DummyData":
            dims = [int(v) for v in m.sub("dummy_data_param").sub("shape").all("dim")]
        elif kind == "MemoryData":
            q = m.sub("memory_data_param")
            dims = [1, q.get("channels", 0), q.get("height", 0), q.get("width", 0)]
        elif kind in DATA:
            crop = m.sub("transform_param").get("crop_size")
            if crop:
                return (int(crop), int(crop), 3)
    if len(dims) == 4 and min(dims[1:]) > 0:
        return (dims[2], dims[3], dims[1])
    if len(dims) == 2 and dims[1] > 0:
        return (dims[1],)
    raise CnnError(f"{path}: its input size is not in it", usage=True, hint="give it: --input HxWxC")


# ---- layer rules: fill the node (lift it) or return why not --------------------------------------
def _pair(p, key, default=None):
    """Caffe's `kernel_size: 3` / `kernel_h: 3 kernel_w: 5` / repeated `kernel_size` as (h, w)."""
    h, w = p.get(key + "_h"), p.get(key + "_w")
    if h is not None or w is not None:
        return (int(h if h is not None else default), int(w if w is not None else default))
    values = p.all(key + "_size") if key == "kernel" else p.all(key)
    if not values:
        return None if default is None else (default, default)
    return (int(values[0]), int(values[-1]))


def _convolution(r, node, m):
    p = m.sub("convolution_param")
    kernel = _pair(p, "kernel")
    if kernel is None or p.get("num_output") is None:
        return "a convolution without num_output or kernel_size"
    make(node, "CONV", {"filters": p.get("num_output"), "kernel": kernel, "stride": _pair(p, "stride", 1),
                        "padding": _pair(p, "pad", 0), "dilation": _pair(p, "dilation", 1),
                        "groups": p.get("group", 1), "bias": p.get("bias_term", True) not in (False, "false")})


def _pooling(r, node, m):
    p = m.sub("pooling_param")
    pool = p.get("pool", "MAX")
    if pool not in ("MAX", "AVE", 0, 1):
        return f"{pool} pooling: the language pools by max or average"
    maximum = pool in ("MAX", 0)
    if p.get("global_pooling", False) in (True, "true"):
        make(node, "ADAPTIVEMAXPOOL" if maximum else "GAP", {"size": 1} if maximum else {})
        return None
    kernel = _pair(p, "kernel")
    if kernel is None:
        return "a pooling without kernel_size"
    kind = "MAXPOOL" if maximum else "AVGPOOL"
    args = {"kernel": kernel, "stride": _pair(p, "stride", 1), "padding": _pair(p, "pad", 0)}
    if not maximum:
        args["count_pad"] = True  # Caffe divides by the window clipped to the padded input, as PyTorch does
    x = r.shape_in(node)
    floor = out_shape(kind, {**args, "ceil": False}, [x])
    ceil = out_shape(kind, {**args, "ceil": True}, [x])
    make(node, kind, {**args, "ceil": ceil != floor})  # Caffe rounds up; written only where it matters


def _inner_product(r, node, m):
    p = m.sub("inner_product_param")
    if p.get("axis", 1) != 1 or p.get("transpose", False) in (True, "true"):
        return "an inner product over another axis, or transposed"
    if p.get("num_output") is None:
        return "an inner product without num_output"
    make(node, "FC", {"units": p.get("num_output"), "bias": p.get("bias_term", True) not in (False, "false")})


def _relu(r, node, m):
    slope = m.sub("relu_param").get("negative_slope", 0)
    if slope:
        make(node, "LEAKYRELU", {"slope": slope})
    else:
        make(node, "RELU", {})


def _lrn(r, node, m):
    p = m.sub("lrn_param")
    if p.get("norm_region", "ACROSS_CHANNELS") not in ("ACROSS_CHANNELS", 0):
        return "LRN within channels: the language's LRN runs across channels"
    make(node, "LRN", {"size": p.get("local_size", 5), "alpha": p.get("alpha", 1.0), "beta": p.get("beta", 0.75),
                       "k": p.get("k", 1.0)})


def _batch_norm(r, node, m):
    make(node, "BN", {"eps": m.sub("batch_norm_param").get("eps", 1e-5)})
    node.meta["affine"] = False


def _scale(r, node, m):
    if m.sub("scale_param").get("bias_term", False) in (True, "true"):
        return "a Scale with a bias that does not follow a BatchNorm"
    make(node, "LAYERSCALE", {})


def _eltwise(r, node, m):
    if len(node.inputs) < 2:
        return "an Eltwise of one input"
    p = m.sub("eltwise_param")
    op = p.get("operation", "SUM")
    kinds = {"SUM": "ADD", 1: "ADD", "PROD": "MUL", 0: "MUL"}
    if op not in kinds:
        return f"an Eltwise {op}: the language joins by sum, product, mean or concatenation"
    coeffs = [float(c) for c in p.all("coeff")]
    if coeffs and (kinds[op] != "ADD" or len(coeffs) != len(node.inputs)):
        return "Eltwise coefficients other than one per input of a sum"
    for k, c in enumerate(coeffs):  # x + 0.17 * f(x): each weighted input through a SCALE of its own
        if c != 1:
            scaled = Node(r.unique(f"{node.source}_scale{k}"), "coeff", [node.inputs[k]], source=node.source,
                          where=node.where, meta={"path": node.source})
            make(scaled, "SCALE", {"value": c})
            r.shapes[scaled.name] = r.shapes[node.inputs[k]]
            r.graph.add(scaled)
            node.inputs[k] = scaled.name
    make(node, kinds[op], {})


def _power(r, node, m):
    """y = (shift + scale * x) ^ power: with power 1 and no shift, SCALE (or nothing, at scale 1)."""
    p = m.sub("power_param")
    power, scale, shift = (float(p.get(k, d)) for k, d in (("power", 1.0), ("scale", 1.0), ("shift", 0.0)))
    if power != 1 or shift != 0:
        return f"a Power layer of power {power:g} and shift {shift:g}: only a constant scale (SCALE) is a layer"
    make(node, "SCALE", {"value": scale})


def _upsample(r, node, m):
    """The darknet ports' Upsample (one input, `scale`): nearest upsampling. SegNet's, which also
    reads the pooling's indices (a second input), puts each value back where the max came from."""
    if len(node.inputs) != 1:
        return "an Upsample by a pooling's indices (SegNet's unpooling): the language has no unpooling"
    p = m.sub("upsample_param")
    scale = p.get("scale", 2)
    make(node, "UPSAMPLE", {"factor": (p.get("scale_h", scale), p.get("scale_w", scale))})


def _interp(r, node, m):
    return "Caffe's Interp interpolates with the corners aligned, UPSAMPLE's bilinear without"


def _concat(r, node, m):
    p = m.sub("concat_param")
    if p.get("axis", p.get("concat_dim", 1)) != 1:
        return "a concatenation along another axis than the channels"
    make(node, "CONCAT", {})


def _simple(kind, **fixed):
    def rule(r, node, m):
        make(node, kind, dict(fixed))
    return rule


def _dropout(r, node, m):
    make(node, "DROPOUT", {"p": m.sub("dropout_param").get("dropout_ratio", 0.5)})


def _elu(r, node, m):
    make(node, "ELU", {"alpha": m.sub("elu_param").get("alpha", 1.0)})


def _prelu(r, node, m):
    p = m.sub("prelu_param")
    make(node, "PRELU", {"shared": p.get("channel_shared", False) in (True, "true")})


def _softmax(r, node, m):
    if m.sub("softmax_param").get("axis", 1) != 1:
        return "a softmax over another axis than the channels"
    make(node, "SOFTMAX", {})


def _flatten(r, node, m):
    if m.sub("flatten_param").get("axis", 1) != 1 or len(r.shape_in(node)) != 3:
        return "a flatten from another axis"
    make(node, "FLATTEN", {})


RULES = {"Convolution": _convolution, "Pooling": _pooling, "InnerProduct": _inner_product, "ReLU": _relu,
         "Sigmoid": _simple("SIGMOID"), "TanH": _simple("TANH"), "BNLL": _simple("SOFTPLUS"), "ELU": _elu,
         "PReLU": _prelu, "LRN": _lrn, "BatchNorm": _batch_norm, "Scale": _scale, "Eltwise": _eltwise,
         "Concat": _concat, "Dropout": _dropout, "Softmax": _softmax, "Flatten": _flatten, "Power": _power,
         "Upsample": _upsample, "Interp": _interp}
