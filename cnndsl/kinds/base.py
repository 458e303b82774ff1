"""What a layer kind is: the base class, the argument schema, and the facts every kind declares.

A kind is one class and the only place where a fact about it lives. Every later stage
reads these facts and keeps no list of op names of its own:

    elaborator   `args`, `bare`, `resolve`, `flat_input`, `join`
    analysis     `out_shape`, `tensors` (params, buffers), `macs`, `flops`, `window`, `saved`,
                 `memory` and `output_overwritable` (in-place and view decisions)
    PyTorch      `torch_module` (class and arguments, as data), `tensors` (names, shapes, init),
                 `he` (whether He initialisation passes through it)
    weights      `tensors` (`Tensor.foreign`: the layouts other frameworks' state_dicts store it in)
    ONNX         `onnx` (the lowering; the builder knows the opset)
    diagrams     `draw_group` (a key of DRAW_GROUPS: legend name and colour), `describe`
    inspection   `filters` (how its weight reads as pictures), `linear_weight` (redrawn by `stats --init`)
    tests        `samples` (calls that property tests draw from)

Facts that have no neutral default are `MISSING` on the base class; a test fails, naming the
kind and the fact, when a kind leaves one of them unset (tests/test_kinds.py).

    >>> from cnndsl.kinds import KINDS
    >>> conv = KINDS["CONV"]
    >>> attrs = conv.bind({"filters": 96, "kernel": 11, "s": 4})
    >>> [(t.name, t.shape, t.init) for t in conv.tensors(attrs, [(227, 227, 3)])]
    [('weight', (96, 3, 11, 11), 'fan_in_uniform'), ('bias', (96,), 'fan_in_uniform_bias')]
    >>> conv.torch_module(attrs, [(227, 227, 3)], False).cls
    'nn.Conv2d'
"""
from __future__ import annotations

import math
from dataclasses import dataclass

Shape = tuple
MISSING = type("MissingFact", (), {"__repr__": lambda self: "MISSING", "__bool__": lambda self: False})()
MAX_DIM = 2**31 - 1  # PyTorch and ONNX Runtime index sizes with 32-bit ints in places
REQUIRED = None

# The diagram's colour groups: legend name and fill colour, in legend order.
DRAW_GROUPS = {
    "convolution": ("convolution", "#c9daf8"),
    "pooling": ("pooling", "#d9ead3"),
    "dense": ("fully connected", "#fce5cd"),
    "norm": ("normalisation", "#ead1dc"),
    "activation": ("activation", "#f3f3f3"),
    "join": ("join", "#fff2cc"),
    "reshape": ("reshape, dropout", "#ffffff"),
}

# What a kind's output memory is (`Kind.memory`):
OWN = "own"                  # a tensor of its own
INPLACE = "inplace"          # may overwrite its input when nobody else reads it (ReLU-likes, ADD)
VIEW = "view"                # its input's memory, reshaped or as is (FLATTEN, ID)
VIEW_AT_INFERENCE = "view_at_inference"  # its input at inference, its own tensor in training (DROPOUT)
MEMORY_CLASSES = (OWN, INPLACE, VIEW, VIEW_AT_INFERENCE)

# How He initialisation sees a kind (`Kind.he`): a CONV whose output reaches a "relu" kind through
# "pass" kinds only is initialised with kaiming_normal_(fan_out, relu), as torchvision does.
HE_TARGET, HE_PASS, HE_RELU, HE_STOP = "target", "pass", "relu", "stop"
HE_CLASSES = (HE_TARGET, HE_PASS, HE_RELU, HE_STOP)

# How `cnndsl inspect filters` reads a kind's weight (`Kind.filters`):
SPATIAL_FILTERS, FLAT_FILTERS = "spatial", "flat"

# Initialisers a `Tensor` may name (the PyTorch backend applies nothing: its modules initialise
# themselves this way; the ONNX backend's random weights follow them):
INITS = ("fan_in_uniform", "ones", "zeros", "fan_in_uniform_bias", "fill")


class ShapeError(Exception):
    """A layer that cannot take its input; the elaborator attaches the span."""

    def __init__(self, message, arithmetic=None, hint=None):
        super().__init__(message)
        self.message, self.arithmetic, self.hint = message, arithmetic, hint


@dataclass(frozen=True)
class Arg:
    """One argument of a kind. `type` is one of: int, pair, padding, float, bool, word.

    `choices`: the words it takes (a `word` argument takes only these; a `padding` takes a size or
    one of them). The language reads every kind's words as themselves (`mode=bilinear`)."""
    name: str
    type: str
    default: object = None  # None: required
    lo: float | None = None  # inclusive lower bound (ints, floats)
    hi: float | None = None  # exclusive upper bound (floats), inclusive (ints)
    aliases: tuple = ()
    doc: str = ""
    choices: tuple = ()


@dataclass(frozen=True)
class Foreign:
    """A layout in which another framework's state_dict (torchvision's, timm's) stores a tensor of
    ours: the same numbers in the same order, so a reshape to our shape loads it (cnndsl.weights).

    `bare`: the tensor is a parameter of the enclosing module itself, not a tensor of a module of
    its own, so its key ends with its own name where ours ends with `layer.weight` (torchvision's
    CNBlock.layer_scale, timm's ConvNeXtBlock.gamma). `name`: the tensor's name abroad where a module
    of its own names it otherwise (timm's MetaFormer Scale keeps a layer scale as `scale`)."""
    shape: tuple
    bare: bool = False
    name: str = ""


@dataclass(frozen=True)
class Tensor:
    """A parameter or buffer of a layer, as its PyTorch module names it in the state_dict.

    `init`: "fan_in_uniform" is U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with fan_in from this
    tensor's shape (PyTorch's default for conv and linear weights); "fan_in_uniform_bias" the
    same bound taken from the layer's weight; "ones", "zeros"; "fill": every value `fill` (PReLU's
    0.25, a layer scale's 1e-6)."""
    name: str
    shape: tuple
    init: str
    buffer: bool = False       # a buffer (BN running statistics), not a trainable parameter
    dtype: str = "float32"     # "int64": BN's num_batches_tracked (not exported to ONNX)
    fill: float = 0.0          # the value of init "fill"
    foreign: tuple = ()        # Foreign layouts a foreign state_dict may hold it in (a 1x1 conv's weight as nn.Linear's)


@dataclass(frozen=True)
class TorchModule:
    """A PyTorch constructor as data: `cls` is `nn.<Name>` or `cnndsl.<Name>` (a module the
    PyTorch backend defines: Add, Concat); `args` positional and `kwargs` keyword arguments as
    ((torch parameter name, value), ...), keywords only where they differ from PyTorch's default.
    `spec` maps a torch parameter name to where its value comes from in the spec: a kind
    argument name (`"filters"`), or `"@in"` for the input's channels/features."""
    cls: str
    args: tuple = ()
    kwargs: tuple = ()
    spec: tuple = ()           # ((torch parameter name, spec argument or "@in"), ...)

    def call(self) -> tuple[tuple, dict]:
        return tuple(v for _, v in self.args), dict(self.kwargs)


def torch_module(cls, args=(), kwargs=(), spec=(), defaults=None) -> TorchModule:
    """Build a TorchModule, dropping keywords equal to the PyTorch defaults given in `defaults`."""
    defaults = defaults or {}
    kept = tuple((k, v) for k, v in kwargs if k not in defaults or defaults[k] != v)
    return TorchModule(cls, tuple(args), kept, tuple(spec))


class Kind:
    """Base of all layer kinds. Subclasses set the class attributes and override rules."""
    name = ""
    aliases: tuple = ()
    args: tuple = ()
    bare: dict = {}         # what a bare `NAME` (no parentheses) means, beyond the schema defaults
    doc = ""
    flat_input = False      # works on a vector: a spatial input is flattened first (FC)
    elementwise = True      # output shape == input shape
    join = False            # takes several inputs (CONCAT, ADD, MUL, MEAN)
    lead_positional = False  # an importer writes its first argument by position (UPSAMPLE(2), not factor=2)
    positional_together = False  # its arguments all by position or none (PAD(1) would read as every side)
    symbol = ""             # a join's operator in the spec (`|`, `+`, `.*`, `&`): diagrams show it
    probabilities = False   # turns logits into probabilities (SOFTMAX): `to_torch(logits=True)` drops it
    weight_layer = False    # a layer the depth counts (the lecture's CONV and FC; `search --sort depth`)
    # How `cnndsl inspect filters` reads its weight: SPATIAL_FILTERS, a bank of K filters (K, C/groups,
    # kh, kw) drawn as images (CONV and its kin; the first such layer is the command's default);
    # FLAT_FILTERS, a unit per row over a flattened input, folded back to the volume it reads (FC);
    # "": none (a layer without a weight, or one whose weight is not a picture: CHANCONV's k taps).
    filters = ""
    # Its `weight` is a linear map's, (out, in/groups, *kernel), with fan-in weight[0].numel():
    # `inspect stats --init` draws it afresh (and zeroes its bias).
    linear_weight = False

    # ---- facts without a neutral default: every kind sets them (tests/test_kinds.py) ----------
    memory = MISSING              # one of MEMORY_CLASSES
    output_overwritable = MISSING  # an in-place successor may overwrite its output: autograd does
    #                               not keep it and the kind never returns its input itself
    he = MISSING                  # one of HE_CLASSES
    draw_group = MISSING          # a key of DRAW_GROUPS
    samples = MISSING             # spec texts of calls on an HxWxC volume, for property tests

    def tensors(self, attrs: dict, ins: list[Shape]) -> tuple:
        """Parameters and buffers, in the PyTorch module's state_dict order."""
        return MISSING

    def torch_module(self, attrs: dict, ins: list[Shape], inplace: bool) -> TorchModule:
        """The PyTorch module that computes this layer; `inplace`: the in-place decision."""
        return MISSING

    def onnx(self, b, n, xs):
        """Append the ONNX nodes of IR node `n` to builder `b` (b.opset is the target opset);
        `xs` are its input tensor names; the last node's output tensor is named n.name."""
        return MISSING

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
        """Trainable values: the sizes of the non-buffer tensors."""
        return sum(math.prod(t.shape) for t in self.tensors(attrs, ins) if not t.buffer)

    def buffers(self, attrs: dict, ins: list[Shape]) -> int:
        """Float buffer values (BN's running mean and variance)."""
        return sum(math.prod(t.shape) for t in self.tensors(attrs, ins) if t.buffer and t.dtype == "float32")

    def macs(self, attrs: dict, ins: list[Shape], out: Shape) -> int:
        return 0

    def flops(self, attrs: dict, ins: list[Shape], out: Shape) -> int:
        return 2 * self.macs(attrs, ins, out) + self.elementwise_ops * n_elems(out)

    elementwise_ops = 0

    def window(self, attrs: dict, ins: list[Shape]):
        """(effective kernel (h, w), stride (h, w)) for the receptive field; None: passes it through."""
        return None

    def saved(self, attrs: dict, ins: list[Shape], out: Shape, inplace: bool = False) -> tuple[tuple, int]:
        """What autograd keeps for backward: (which of 'in'/'out' tensors, extra bytes per image).

        `inplace`: the layer overwrites its input (the in-place decision, analysis/inplace.py); its
        output is then its input's memory, so "in" and "out" name the same tensor; "partners" (a product)
        names each input whose fellow inputs need a gradient. Measured against
        autograd on CPU (saved_tensors_hooks, tests/test_kinds_new.py); extra bytes are fp32."""
        return ((), 0)

    def describe(self, attrs: dict) -> str:
        """Hyper-parameters as the report prints them after the op name."""
        return ""


NO_TENSORS = ()


def n_elems(shape: Shape) -> int:
    return math.prod(shape)


def pair(v):
    return v if isinstance(v, tuple) else (v, v)


def fmt_pair(p) -> str:
    h, w = pair(p)
    return f"{h}" if h == w else f"{h}x{w}"


def kernel_text(k):
    kh, kw = pair(k)
    return f"{kh}x{kw}"


def fmt_shape(shape: Shape) -> str:
    return "x".join(str(v) for v in shape)


def need_volume(kind: str, shape: Shape):
    if len(shape) != 3:
        raise ShapeError(f"{kind} needs an HxWxC volume, but its input is a flat vector of {shape[0]}",
                         hint="put spatial layers before the first FC/FLATTEN")


def channels(ins) -> int:
    """The input's channels (a volume) or features (a vector)."""
    return ins[0][-1]


class Elementwise(Kind):
    """A parameter-free kind that keeps its input's shape (activations and friends)."""
    draw_group = "activation"
    he = HE_STOP
    memory = OWN
    output_overwritable = False

    def tensors(self, attrs, ins):
        return NO_TENSORS
