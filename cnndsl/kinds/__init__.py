"""The layer kinds of the language, each defined once (cnndsl/kinds/base.py lists the facts).

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
  inference (pool: one per window element per output, adaptive pools one per
  input element; BN: 2 per element; LAYERNORM, GROUPNORM: 5 per element, 7
  with the affine; LAYERSCALE 1; activations (PRELU, GELU, SILU, ... too): 1;
  SOFTMAX: 3, LRN: size + 3, ADD and MUL: 1 per extra input, MEAN: 1 per
  input (n - 1 additions, a division), bias: 1 per output element of CONV/FC);
  FLATTEN, ID, DROPOUT, DROPPATH, CONCAT, CHANNELS, SPLIT, SHUFFLE, PADCHANNELS: 0.

Adding a kind: one class in a file of this package (a family file, or a file of its own such as
upsample.py), and a row in README's layer table, counting conventions and diagram legend;
nothing else. A kind defined elsewhere (a plugin, a test's fixture: tests/kind_fixture.py) joins
the same tables with `register(kind)`, and leaves them with `unregister(name)`. The package finds it (`discover`: every class of a module here that names
itself, `name = "..."`, and is not `_private`), and every stage reads its facts: the kind-
completeness test (tests/test_kinds.py) names any fact it lacks. A PyTorch module that torch
lacks is a class in the file's `torch_modules()` (torch imported there, when a backend calls it:
see `torch_classes` and `torch_sources`), and an enumerated argument's words are its
`Arg.choices`, which the language then reads as words (`UPSAMPLE(2, mode=bilinear)`).
"""
from __future__ import annotations

import importlib
import pkgutil
import sys

from .activations import (ELU, GELU, Hardsigmoid, Hardswish, LeakyReLU, Mish, PReLU, ReLU, ReLU6, Sigmoid, SiLU,
                          Softmax, Softplus, Tanh)
from .base import (DRAW_GROUPS, FLAT_FILTERS, MAX_DIM, MISSING, SPATIAL_FILTERS, VIEW, Arg, Foreign, Kind, Shape,
                   ShapeError, Tensor, TorchModule, fmt_pair, fmt_shape)
from .conv import Conv, DoesNotFit
from .dense import FC, DropPath, Dropout, Flatten, Identity
from .channels import Channels, PadChannels, Shuffle, Split
from .joins import Add, Concat, JoinError, Mean, Mul
from .norm import LRN, BatchNorm, GroupNorm, LayerNorm, LayerScale
from .pool import AdaptiveAvgPool, AdaptiveMaxPool, AvgPool, GlobalAvgPool, MaxPool

__all__ = ["ALL", "KINDS", "CALLABLE", "WORDS", "discover", "register", "unregister", "torch_classes", "torch_sources", "DRAW_GROUPS", "MAX_DIM",
           "MISSING", "Arg", "Kind", "Shape", "ShapeError", "DoesNotFit", "JoinError", "Foreign", "Tensor", "TorchModule",
           "fmt_pair", "fmt_shape", "SPATIAL_FILTERS", "FLAT_FILTERS", "VIEW"]

# The first kinds, in the order the error hints list them; every other kind is found (`discover`)
FIRST = (Conv(), MaxPool(), AvgPool(), GlobalAvgPool(), AdaptiveAvgPool(), AdaptiveMaxPool(), FC(), Flatten(), ReLU(),
         ReLU6(), LeakyReLU(), Sigmoid(), Tanh(), Softplus(), SiLU(), Hardsigmoid(), Hardswish(), GELU(), Mish(), ELU(),
         PReLU(), Softmax(), BatchNorm(), LayerNorm(), GroupNorm(), LayerScale(), LRN(), Dropout(), DropPath(),
         Identity(), Channels(), Split(), Shuffle(), PadChannels(), Concat(), Add(), Mul(), Mean())


def discover(first=FIRST) -> tuple:
    """`first`, then every other kind class of this package's modules, by module name and line: a
    class defined in a module here that sets `name` itself and whose name has no leading `_`."""
    seen, found = {type(k) for k in first}, []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        mod = importlib.import_module(f"{__name__}.{info.name}")
        for cls in vars(mod).values():
            if (isinstance(cls, type) and issubclass(cls, Kind) and cls.__module__ == mod.__name__
                    and cls.__dict__.get("name") and not cls.__name__.startswith("_") and cls not in seen):
                seen.add(cls)
                found.append((info.name, cls.__dict__.get("__firstlineno__", 0) or _line(cls), cls))
    return tuple(first) + tuple(cls() for _, _, cls in sorted(found, key=lambda f: f[:2]))


def _line(cls) -> int:
    """Where a class starts in its file (sorting by it keeps a file's kinds in their written order)."""
    code = next((f.__code__ for f in vars(cls).values() if hasattr(f, "__code__")), None)
    return code.co_firstlineno if code else 0


ALL = discover()
# The tables every stage reads, filled by _index: changed in place (never rebound), so that a module
# that imported one sees a kind registered later.
KINDS: dict[str, Kind] = {}
# What a user may write: names and aliases, joins excluded (they are written with braces).
CALLABLE: dict[str, Kind] = {}
# The words enumerated arguments take (`mode=bilinear`, `p=tf_same`): the language reads each as itself
WORDS: set[str] = set()


def _index():
    for table in (KINDS, CALLABLE, WORDS):
        table.clear()
    KINDS.update((k.name, k) for k in ALL)
    CALLABLE.update((n, k) for k in ALL if not k.join for n in (k.name, *k.aliases))
    WORDS.update(w for k in ALL for a in k.args for w in a.choices)


_index()


def register(kind: Kind) -> Kind:
    """Add a kind defined outside this package (an instance of a Kind subclass that sets every
    fact: tests/test_kinds.py's checks apply to it as to ours). Every stage then reads it as it
    reads the package's own kinds: the language its name and its argument's words, the analysis,
    both PyTorch backends (its file's `torch_modules()`, copied into compiled source), ONNX and
    the diagrams. `ALL` is rebound: read it as `kinds.ALL`, not a copy taken at import."""
    global ALL
    names = (kind.name, *kind.aliases)
    if not kind.name or any(n in KINDS or n in CALLABLE for n in names):
        raise ValueError(f"a kind named {kind.name!r} (or one of its aliases) is already defined")
    ALL = ALL + (kind,)
    _index()
    mod = sys.modules[type(kind).__module__]
    if "torch_modules" in vars(mod) and "__getattr__" not in vars(mod):
        mod.__getattr__ = _lazy(mod)
    return kind


def unregister(name: str) -> None:
    """Remove a kind that `register` added (a test's fixture, after its test)."""
    global ALL
    if name not in KINDS or KINDS[name] in FIRST or type(KINDS[name]).__module__.startswith(__name__ + "."):
        raise ValueError(f"{name!r} is not a registered kind")
    ALL = tuple(k for k in ALL if k.name != name)
    _index()


def torch_classes(kind) -> dict:
    """{name: class} of the PyTorch modules defined in `kind`'s file (its `torch_modules()`, which
    imports torch): built once, and bound in that module, so pickle finds them by module and name."""
    return _built(sys.modules[type(kind).__module__])


def _built(mod) -> dict:
    built = mod.__dict__.get("_torch_classes")
    if built is None:
        maker = getattr(mod, "torch_modules", None)
        built = maker() if maker else {}
        for name, cls in built.items():
            if name in vars(mod):  # a kind's class of the same name: pickle would find the wrong one
                raise AssertionError(f"{mod.__name__}.torch_modules() defines {name}, a name the file uses")
            cls.__module__, cls.__qualname__ = mod.__name__, name
            setattr(mod, name, cls)
        mod._torch_classes = built
    return built


def torch_sources() -> tuple:
    """((name, class source), ...) of the modules the kinds' files define in `torch_modules()`, read
    as text (no torch import): the PyTorch source generator copies them into generated files."""
    import ast
    import textwrap
    out = []
    for mod in dict.fromkeys(sys.modules[type(k).__module__] for k in ALL):
        path = mod.__file__
        if "torch_modules" not in vars(mod) or not path:
            continue
        with open(path, encoding="utf-8") as f:
            text = f.read()
        fn = next(n for n in ast.parse(text).body if isinstance(n, ast.FunctionDef) and n.name == "torch_modules")
        for n in fn.body:
            if isinstance(n, ast.ClassDef):
                out.append((n.name, textwrap.dedent(ast.get_source_segment(text, n, padded=True))))
    return tuple(out)


def _lazy(mod):
    """A module `__getattr__` (PEP 562) that builds the file's PyTorch classes when one is asked for:
    unpickling a module finds `cnndsl.kinds.upsample.<Class>` before any backend has run."""
    def __getattr__(name):
        classes = {} if name.startswith("__") else _built(mod)
        if name in classes:
            return classes[name]
        raise AttributeError(f"module {mod.__name__!r} has no attribute {name!r}")
    return __getattr__


for _mod in {sys.modules[type(k).__module__] for k in ALL}:
    if "torch_modules" in vars(_mod) and "__getattr__" not in vars(_mod):
        _mod.__getattr__ = _lazy(_mod)
