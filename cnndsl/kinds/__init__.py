"""The layer table: every layer kind of the language, defined once.

A kind holds its argument schema (names, types, defaults, ranges), its shape
rule, and its parameter, MAC and FLOP counts. The elaborator validates calls
against the schema; the analyzer asks the counts; each backend is a table keyed
by `Kind.name` (a test proves every backend covers every kind).

    >>> conv = KINDS["CONV"]
    >>> attrs = conv.bind({"filters": 96, "kernel": 11, "s": 4})
    >>> conv.out_shape(attrs, [(227, 227, 3)])
    (55, 55, 96)
    >>> conv.params(attrs, [(227, 227, 3)])
    34944

Shapes are tuples: (H, W, C) for a volume, (N,) for a flat vector. Errors are
raised as `ShapeError` (message, arithmetic, hint) and get their span from the
elaborator, which knows where the layer was written.

Counting conventions (README, "Counting"):
* MACs: multiply-accumulates of CONV (H2*W2*K*F*F*D1/groups) and FC (in*out),
  bias additions not counted, as fvcore counts them; every other kind has 0.
* FLOPs: 2 per MAC, plus one per elementary operation of the other kinds at
  inference (pool: one per window element per output; BN: 2 per element,
  activations: 1, SOFTMAX: 3, LRN: size + 3, ADD: 1 per extra input, bias: 1
  per output element of CONV/FC); FLATTEN, ID, DROPOUT, CONCAT: 0.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

Shape = tuple


class ShapeError(Exception):
    """A layer that cannot take its input; the elaborator attaches the span."""

    def __init__(self, message, arithmetic=None, hint=None):
        super().__init__(message)
        self.message, self.arithmetic, self.hint = message, arithmetic, hint


# ---- argument types -------------------------------------------------------------
@dataclass(frozen=True)
class Arg:
    """One argument of a kind. `type` is one of: int, pair, padding, float, bool."""
    name: str
    type: str
    default: object = None  # None: required
    lo: float | None = None  # inclusive lower bound (ints, floats)
    hi: float | None = None  # exclusive upper bound (floats), inclusive (ints)
    aliases: tuple = ()
    doc: str = ""


REQUIRED = None
MAX_DIM = 2**31 - 1  # PyTorch and ONNX Runtime index sizes with 32-bit ints in places


def _pair(v):
    return v if isinstance(v, tuple) else (v, v)


def fmt_pair(p) -> str:
    h, w = _pair(p)
    return f"{h}" if h == w else f"{h}x{w}"


# ---- the kinds ---------------------------------------------------------------------
class Kind:
    """Base of all layer kinds. Subclasses set the class attributes and override rules."""
    name = ""
    aliases: tuple = ()
    args: tuple = ()
    bare: dict = {}         # what a bare `NAME` (no parentheses) means, beyond the schema defaults
    doc = ""
    spatial = False         # needs an HxWxC input
    flat_input = False      # works on a vector: a spatial input is flattened first (FC)
    elementwise = True      # output shape == input shape
    join = False            # takes several inputs (CONCAT, ADD)
    inplace = False         # PyTorch runs it in place or as a view: no memory of its own at inference
    param_kinds = ()        # names of parameter tensors, for the backends' weight maps

    # -- schema -------------------------------------------------------------------
    def arg(self, name: str) -> Arg | None:
        for a in self.args:
            if a.name == name or name in a.aliases:
                return a
        return None

    def bind(self, values: dict) -> dict:
        """Complete `values` (already validated) with the schema defaults."""
        out = {a.name: a.default for a in self.args}
        out.update(values)
        return self.resolve(out)

    def resolve(self, attrs: dict) -> dict:
        """Derive what depends on other arguments (stride = kernel, padding = same)."""
        return attrs

    # -- rules ---------------------------------------------------------------------
    def out_shape(self, attrs: dict, ins: list[Shape]) -> Shape:
        return ins[0]

    def params(self, attrs: dict, ins: list[Shape]) -> int:
        return 0

    def buffers(self, attrs: dict, ins: list[Shape]) -> int:
        return 0

    def macs(self, attrs: dict, ins: list[Shape], out: Shape) -> int:
        return 0

    def flops(self, attrs: dict, ins: list[Shape], out: Shape) -> int:
        return 2 * self.macs(attrs, ins, out) + self.elementwise_ops * _n(out)

    elementwise_ops = 0

    def window(self, attrs: dict, ins: list[Shape]):
        """(effective kernel (h, w), stride (h, w)) for the receptive field; None: passes it through."""
        return None

    def saved(self, attrs: dict, ins: list[Shape], out: Shape) -> tuple[tuple, int]:
        """What autograd keeps for backward: (which of 'in'/'out' tensors, extra bytes per image)."""
        return ((), 0)

    def describe(self, attrs: dict) -> str:
        """Hyper-parameters as the report prints them after the op name."""
        return ""


def _n(shape: Shape) -> int:
    return math.prod(shape)


def _need_volume(kind: str, shape: Shape):
    if len(shape) != 3:
        raise ShapeError(f"{kind} needs an HxWxC volume, but its input is a flat vector of {shape[0]}",
                         hint="put spatial layers before the first FC/FLATTEN")


def _window_fit(kind, axis, size, k_eff, s, p, kernel_text, ceil=False):
    """Output length along one axis, PyTorch's way; and real input rows the floor drops."""
    padded = size + 2 * p
    if k_eff > padded:
        raise ShapeError(f"{kernel_text} {'filter' if kind == 'CONV' else 'window'} does not fit "
                         f"a {'padded ' if p else ''}{axis} of {padded}",
                         arithmetic=f"{axis}: {size} + 2*{p} = {padded} < {k_eff}",
                         hint="use a smaller kernel, add padding, or drop a pooling layer before it")
    span = padded - k_eff
    out = span // s + 1
    if ceil and span % s:
        out += 1
        if (out - 1) * s >= size + p:  # PyTorch: the last window must start inside the input or left padding
            out -= 1
    covered = (out - 1) * s + k_eff
    dropped = max(0, padded - covered - p)
    return out, dropped, span


def _sliding_shape(kind, attrs, shape, channels):
    _need_volume(kind, shape)
    H, W, C = shape
    kh, kw = _pair(attrs["kernel"])
    dh, dw = _pair(attrs.get("d", 1))
    sh, sw = _pair(attrs["s"])
    ph, pw = _pair(attrs["p"])
    ceil = bool(attrs.get("ceil", False))
    ktext = f"{kh}x{kw}"
    dims, notes = [], []
    for axis, size, k, d, s, p in (("height", H, kh, dh, sh, ph), ("width", W, kw, dw, sw, pw)):
        k_eff = d * (k - 1) + 1
        out, dropped, span = _window_fit(kind, axis, size, k_eff, s, p, ktext, ceil)
        dims.append(out)
        # with a stride wider than the window every step skips s - k rows by design; a last
        # unread stretch no longer than that gap is the pattern, not a misfit (ResNet's 1x1/2)
        if dropped > max(0, s - k_eff):
            notes.append((axis, size, k_eff, s, p, out, dropped, span))
    if notes:
        axis, size, k_eff, s, p, out, dropped, span = notes[0]
        what = ("row" if axis == "height" else "column") + ("s" if dropped != 1 else "")
        raise DoesNotFit(
            f"{ktext} {'filter' if kind == 'CONV' else 'window'} at stride {s} does not fit a {H}x{W} input",
            arithmetic=f"({size} - {k_eff} + 2*{p})/{s} + 1 = {span / s + 1:.2f}: PyTorch floors to {out} "
                       f"and ignores the last {dropped} input {what}",
            hint=_fit_hint(size, k_eff, s, p),
            shape=(dims[0], dims[1], channels))
    return (dims[0], dims[1], channels)


def _fit_hint(size, k_eff, s, p):
    """Ways to make (size - k + 2p) divisible by s: more padding, or another stride."""
    ways = []
    pads = [q for q in range(p + 1, p + s + 1) if (size - k_eff + 2 * q) % s == 0 and 2 * q <= k_eff]
    if pads:
        ways.append(f"padding p={pads[0]}")
    strides = [t for t in range(s - 1, 0, -1) if (size - k_eff + 2 * p) % t == 0]
    if strides:
        ways.append(f"stride {strides[0]}")
    ways.append(f"an input whose size minus {k_eff - 2 * p} is a multiple of {s}")
    return "to use every input row, choose " + ", or ".join(ways)


class DoesNotFit(ShapeError):
    """A window that leaves real input rows unused: a warning (an error with --strict)."""

    def __init__(self, message, arithmetic, hint, shape):
        super().__init__(message, arithmetic, hint)
        self.shape = shape


def _padding_resolve(attrs, pad_key="p"):
    p = attrs[pad_key]
    if p == "valid":
        attrs[pad_key] = (0, 0)
    elif p == "same":
        kh, kw = _pair(attrs["kernel"])
        dh, dw = _pair(attrs.get("d", 1))
        eh, ew = dh * (kh - 1), dw * (kw - 1)
        if eh % 2 or ew % 2:
            raise ShapeError(f"p=same needs an odd kernel, got {kh}x{kw}",
                             hint="PyTorch pads same-size outputs of even kernels unevenly; write the padding explicitly")
        attrs[pad_key] = (eh // 2, ew // 2)
    else:
        attrs[pad_key] = _pair(p)
    return attrs


class Conv(Kind):
    name = "CONV"
    doc = "2-d convolution: K filters of F x F over all (or groups of) input channels"
    spatial, elementwise = True, False
    args = (
        Arg("filters", "int", REQUIRED, lo=1, aliases=("k_out", "out"), doc="number of filters K (output depth)"),
        Arg("kernel", "pair", REQUIRED, lo=1, aliases=("f", "size"), doc="filter size F: 3, 3x3 or (3,5)"),
        Arg("s", "pair", 1, lo=1, aliases=("stride",), doc="stride S"),
        Arg("p", "padding", 0, lo=0, aliases=("pad", "padding"), doc="zero padding P per side, or same/valid"),
        Arg("d", "pair", 1, lo=1, aliases=("dilation",), doc="dilation"),
        Arg("groups", "int", 1, lo=1, aliases=("g",), doc="channel groups (depthwise: groups = input depth)"),
        Arg("bias", "bool", True, doc="learn a bias per filter"),
    )
    bare = {"filters": 32, "kernel": 3, "p": "same"}
    param_kinds = ("weight", "bias")

    def resolve(self, attrs):
        attrs["kernel"], attrs["s"], attrs["d"] = _pair(attrs["kernel"]), _pair(attrs["s"]), _pair(attrs["d"])
        return _padding_resolve(attrs)

    def out_shape(self, attrs, ins):
        x = ins[0]
        _need_volume(self.name, x)
        g, k = attrs["groups"], attrs["filters"]
        if x[2] % g or k % g:
            bad = x[2] if x[2] % g else k
            raise ShapeError(f"groups={g} does not divide the {'input depth' if x[2] % g else 'filter count'} {bad}",
                             arithmetic=f"{bad} / {g} = {bad / g:.2f}",
                             hint="groups must divide both the input depth and the number of filters")
        return _sliding_shape(self.name, attrs, x, k)

    def params(self, attrs, ins):
        kh, kw = attrs["kernel"]
        return kh * kw * ins[0][2] // attrs["groups"] * attrs["filters"] + (attrs["filters"] if attrs["bias"] else 0)

    def macs(self, attrs, ins, out):
        kh, kw = attrs["kernel"]
        return out[0] * out[1] * out[2] * kh * kw * ins[0][2] // attrs["groups"]

    def flops(self, attrs, ins, out):
        return 2 * self.macs(attrs, ins, out) + (_n(out) if attrs["bias"] else 0)

    def window(self, attrs, ins):
        (kh, kw), (dh, dw) = attrs["kernel"], attrs["d"]
        return (dh * (kh - 1) + 1, dw * (kw - 1) + 1), attrs["s"]

    def saved(self, attrs, ins, out):
        return (("in",), 0)

    def describe(self, attrs):
        s = f"{_kernel_text(attrs['kernel'])}/{fmt_pair(attrs['s'])}"
        if any(attrs["p"]):
            s += f" p{fmt_pair(attrs['p'])}"
        if attrs["d"] != (1, 1):
            s += f" d{fmt_pair(attrs['d'])}"
        if attrs["groups"] != 1:
            s += f" g{attrs['groups']}"
        s += f", {attrs['filters']}"
        return s + ("" if attrs["bias"] else " nobias")


def _kernel_text(k):
    kh, kw = _pair(k)
    return f"{kh}x{kw}"


class _Pool(Kind):
    spatial, elementwise = True, False
    args = (
        Arg("kernel", "pair", REQUIRED, lo=1, aliases=("f", "size"), doc="window size F"),
        Arg("s", "pair", "kernel", lo=1, aliases=("stride",), doc="stride S (default: the window size)"),
        Arg("p", "pair", 0, lo=0, aliases=("pad", "padding"), doc="padding per side (at most half the window)"),
        Arg("ceil", "bool", False, aliases=("ceil_mode",), doc="round the output size up (GoogLeNet, SqueezeNet)"),
    )
    bare = {"kernel": 2}

    def resolve(self, attrs):
        attrs["kernel"] = _pair(attrs["kernel"])
        attrs["s"] = attrs["kernel"] if attrs["s"] == "kernel" else _pair(attrs["s"])
        attrs["p"] = _pair(attrs["p"])
        return attrs

    def out_shape(self, attrs, ins):
        x = ins[0]
        _need_volume(self.name, x)
        (kh, kw), (ph, pw) = attrs["kernel"], attrs["p"]
        if 2 * ph > kh or 2 * pw > kw:
            raise ShapeError(f"padding {fmt_pair(attrs['p'])} is more than half the {kh}x{kw} window",
                             arithmetic=f"2*{max(ph, pw)} > {kh if 2 * ph > kh else kw}",
                             hint="PyTorch and ONNX Runtime reject pool padding over half the window")
        return _sliding_shape(self.name, attrs, x, x[2])

    def flops(self, attrs, ins, out):
        kh, kw = attrs["kernel"]
        return _n(out) * kh * kw

    def window(self, attrs, ins):
        return attrs["kernel"], attrs["s"]

    def describe(self, attrs):
        s = f"{_kernel_text(attrs['kernel'])}/{fmt_pair(attrs['s'])}"
        if any(attrs["p"]):
            s += f" p{fmt_pair(attrs['p'])}"
        return s + (" ceil" if attrs["ceil"] else "")


class MaxPool(_Pool):
    name = "MAXPOOL"
    aliases = ("POOL",)
    doc = "max pooling (POOL means MAXPOOL)"

    def saved(self, attrs, ins, out):
        return (("in",), 8 * _n(out))  # and the int64 argmax indices


class AvgPool(_Pool):
    name = "AVGPOOL"
    doc = "average pooling; padded windows count the padding, as PyTorch does (count_pad=false: they don't)"
    args = _Pool.args + (Arg("count_pad", "bool", True, aliases=("count_include_pad",),
                             doc="divide by the whole window, padding included"),)

    def saved(self, attrs, ins, out):
        return (("in",), 0)


class GlobalAvgPool(Kind):
    name = "GAP"
    aliases = ("GLOBALAVGPOOL",)
    doc = "global average pooling: HxWxC -> 1x1xC"
    spatial, elementwise = True, False

    def out_shape(self, attrs, ins):
        _need_volume(self.name, ins[0])
        return (1, 1, ins[0][2])

    def flops(self, attrs, ins, out):
        return _n(ins[0])

    def window(self, attrs, ins):
        return (ins[0][0], ins[0][1]), (1, 1)

    def saved(self, attrs, ins, out):
        return (("in",), 0)


class AdaptiveAvgPool(Kind):
    name = "ADAPTIVEAVGPOOL"
    doc = "adaptive average pooling to a fixed HxW (torchvision's AlexNet/VGG heads); identity when sizes match"
    spatial, elementwise = True, False
    args = (Arg("size", "pair", REQUIRED, lo=1, aliases=("out",), doc="output height x width"),)

    def resolve(self, attrs):
        attrs["size"] = _pair(attrs["size"])
        return attrs

    def out_shape(self, attrs, ins):
        _need_volume(self.name, ins[0])
        return (*attrs["size"], ins[0][2])

    def flops(self, attrs, ins, out):
        return _n(ins[0]) if ins[0] != out else 0

    def window(self, attrs, ins):
        (H, W, _), (oh, ow) = ins[0], attrs["size"]
        # the largest bin of PyTorch's adaptive pooling; exact when the size divides
        return (-(-H // oh) if H % oh else H // oh, -(-W // ow) if W % ow else W // ow), (max(1, H // oh), max(1, W // ow))

    def saved(self, attrs, ins, out):
        return (("in",), 0)

    def describe(self, attrs):
        return _kernel_text(attrs["size"])


class FC(Kind):
    name = "FC"
    aliases = ("LINEAR",)
    doc = "fully connected: every output sees the whole (flattened) input"
    flat_input, elementwise = True, False
    args = (Arg("units", "int", REQUIRED, lo=1, aliases=("out", "n"), doc="number of outputs"),
            Arg("bias", "bool", True, doc="learn a bias per output"))
    bare = {"units": 512}
    param_kinds = ("weight", "bias")

    def out_shape(self, attrs, ins):
        return (attrs["units"],)

    def params(self, attrs, ins):
        return ins[0][0] * attrs["units"] + (attrs["units"] if attrs["bias"] else 0)

    def macs(self, attrs, ins, out):
        return ins[0][0] * attrs["units"]

    def flops(self, attrs, ins, out):
        return 2 * self.macs(attrs, ins, out) + (attrs["units"] if attrs["bias"] else 0)

    def saved(self, attrs, ins, out):
        return (("in",), 0)

    def describe(self, attrs):
        return f"{attrs['units']}" + ("" if attrs["bias"] else " nobias")


class Flatten(Kind):
    name = "FLATTEN"
    inplace = True
    doc = "HxWxC -> a vector of H*W*C (inserted before an FC that follows a volume)"
    elementwise = False

    def out_shape(self, attrs, ins):
        return (_n(ins[0]),)


class _Activation(Kind):
    elementwise_ops = 1

    def saved(self, attrs, ins, out):
        return (("out",), 0)


class ReLU(_Activation):
    inplace = True
    name = "RELU"
    doc = "max(0, x)"


class ReLU6(_Activation):
    inplace = True
    name = "RELU6"
    doc = "min(max(0, x), 6) (MobileNetV2)"

    def saved(self, attrs, ins, out):
        # in place (as torchvision runs it) PyTorch's hardtanh_ keeps a copy of its input, not the
        # output: measured with saved_tensors_hooks (tests/test_pytorch.py); fp32 bytes, as LRN's
        return ((), 4 * _n(out))


class LeakyReLU(_Activation):
    inplace = True
    name = "LEAKYRELU"
    doc = "x if x > 0 else slope*x"
    args = (Arg("slope", "float", 0.01, lo=0.0, aliases=("negative_slope", "a"), doc="slope for x < 0"),)

    def saved(self, attrs, ins, out):
        return (("in",), 0)

    def describe(self, attrs):
        return f"{attrs['slope']:g}"


class Sigmoid(_Activation):
    name = "SIGMOID"
    doc = "1/(1+exp(-x))"


class Tanh(_Activation):
    name = "TANH"
    doc = "tanh(x)"


class Softplus(_Activation):
    name = "SOFTPLUS"
    doc = "log(1+exp(x))"

    def saved(self, attrs, ins, out):
        return (("in",), 0)


class Softmax(_Activation):
    name = "SOFTMAX"
    doc = "class probabilities over the depth (channels) axis"
    elementwise_ops = 3


class BatchNorm(Kind):
    name = "BN"
    aliases = ("BATCHNORM",)
    doc = "batch normalisation per channel: trainable scale and shift, running mean and variance"
    args = (Arg("eps", "float", 1e-5, lo=0.0, doc="added to the variance"),
            Arg("momentum", "float", 0.1, lo=0.0, hi=1.0000001, doc="running-statistics update rate"))
    elementwise_ops = 2
    param_kinds = ("weight", "bias")

    def params(self, attrs, ins):
        return 2 * ins[0][-1]

    def buffers(self, attrs, ins):
        return 2 * ins[0][-1]

    def saved(self, attrs, ins, out):
        return (("in",), 0)


class LRN(Kind):
    name = "LRN"
    aliases = ("NORM",)
    doc = "local response normalisation across `size` neighbouring channels (AlexNet)"
    spatial = True
    args = (Arg("size", "int", 5, lo=1, aliases=("n",), doc="channels in the window"),
            Arg("alpha", "float", 1e-4, lo=0.0, doc="scale"),
            Arg("beta", "float", 0.75, lo=0.0, doc="exponent"),
            Arg("k", "float", 1.0, lo=0.0, aliases=("bias",), doc="additive constant"))

    def out_shape(self, attrs, ins):
        _need_volume(self.name, ins[0])
        return ins[0]

    def flops(self, attrs, ins, out):
        return _n(out) * (attrs["size"] + 3)

    def saved(self, attrs, ins, out):
        # PyTorch's composite LRN keeps its input, the channel-padded squares (C + size - 1 channels)
        # that avg_pool3d reads, the pow input and the divisor, not its output (measured, fp32 bytes)
        H, W, C = ins[0]
        return (("in",), 4 * (2 * _n(out) + H * W * (C + attrs["size"] - 1)))

    def describe(self, attrs):
        return f"size {attrs['size']}"


class Dropout(Kind):
    name = "DROPOUT"
    inplace = True  # at inference; in training it keeps a mask (see saved)
    doc = "zeroes each unit with probability p while training; identity at inference"
    args = (Arg("p", "float", 0.5, lo=0.0, hi=1.0, doc="drop probability"),)

    def saved(self, attrs, ins, out):
        return ((), _n(out))  # a bool mask, as CUDA keeps it (PyTorch's CPU path keeps a float one)

    def describe(self, attrs):
        return f"{attrs['p']:g}"


class Identity(Kind):
    name = "ID"
    inplace = True
    aliases = ("IDENTITY",)
    doc = "passes its input through (the shortcut in `{ ID + body }`)"


class Concat(Kind):
    name = "CONCAT"
    doc = "joins branches `{ a | b }` along the depth"
    join, elementwise = True, False

    def out_shape(self, attrs, ins):
        first = ins[0]
        for other in ins[1:]:
            if len(other) != len(first) or other[:-1] != first[:-1]:
                raise JoinError(first, other, "concatenated along the depth",
                                "branches joined with `|` must keep the same height and width")
        return (*first[:-1], sum(s[-1] for s in ins))


class Add(Kind):
    name = "ADD"
    doc = "sums branches `{ a + b }` element-wise (residual shortcuts)"
    join = True
    elementwise_ops = 0

    def out_shape(self, attrs, ins):
        for other in ins[1:]:
            if other != ins[0]:
                raise JoinError(ins[0], other, "added", _projection_hint(ins[0], other))
        return ins[0]

    def flops(self, attrs, ins, out):
        return _n(out) * (len(ins) - 1)


def _projection_hint(a: Shape, b: Shape) -> str:
    """The shortcut that maps the larger volume onto the other: `{ CONV(128, 1, s=2, bias=false) - BN + body }`."""
    if len(a) != 3 or len(b) != 3:
        return "branches joined with `+` must give the same shape"
    big, small = (a, b) if a[0] >= b[0] else (b, a)
    stride = big[0] // small[0] if small[0] and big[0] % small[0] == 0 else None
    if stride is None and big[:2] != small[:2]:
        return "branches joined with `+` must give the same shape"
    s = f", s={stride}" if stride and stride > 1 else ""
    return (f"a projection shortcut maps {fmt_shape(big)} to {fmt_shape(small)}: "
            f"{{ CONV({small[2]}, 1{s}, bias=false) - BN + body }}")


class JoinError(ShapeError):
    def __init__(self, a, b, how, hint):
        super().__init__(f"branches of shapes {fmt_shape(a)} and {fmt_shape(b)} cannot be {how}", hint=hint)
        self.shapes = (a, b)


def fmt_shape(shape: Shape) -> str:
    return "x".join(str(v) for v in shape)


ALL = (Conv(), MaxPool(), AvgPool(), GlobalAvgPool(), AdaptiveAvgPool(), FC(), Flatten(), ReLU(), ReLU6(),
       LeakyReLU(), Sigmoid(), Tanh(), Softplus(), Softmax(), BatchNorm(), LRN(), Dropout(), Identity(),
       Concat(), Add())
KINDS: dict[str, Kind] = {k.name: k for k in ALL}
# What a user may write: names and aliases, joins excluded (they are written with braces).
CALLABLE: dict[str, Kind] = {n: k for k in ALL if not k.join for n in (k.name, *k.aliases)}
