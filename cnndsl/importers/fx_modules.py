"""Leaf modules -> kinds, by the kinds' own facts (their `torch_module`: class and arguments as data).

The kind whose PyTorch class a module is (`nn.Conv2d` is CONV, `cnndsl.LayerNorm2d` LAYERNORM) takes its
arguments from the module's attributes by the kind's `spec` (torch parameter -> argument; an argument
the constructor takes under the kind's own name, such as Channels' `start`, directly), switches the spec
leaves out are tried both ways, and the module rebuilt from the kind's constructor (on the meta device)
must have the original's configuration, attribute for attribute: a `padding_mode="reflect"` conv or a
dilated MaxPool2d is no kind's, and is refused rather than read as something else.

    >>> import torch.nn as nn
    >>> module_layer(nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False), (8, 8, 3))
    ('CONV', {'filters': 8, 'kernel': (3, 3), 's': (2, 2), 'p': (1, 1), 'd': (1, 1), 'groups': 1, 'bias': False})
    >>> module_layer(nn.Conv2d(3, 8, 3, padding_mode="reflect"), (8, 8, 3)) is None
    True
"""
from __future__ import annotations

import functools

from ..kinds import KINDS
from .layers import named


def _origin(m) -> str | None:
    """"nn" for a module of torch.nn, "cnndsl" for one of cnndsl's own (a to_torch() layer), else None."""
    import torch
    cls = type(m)
    if getattr(torch.nn, cls.__name__, None) is cls:
        return "nn"
    if cls.__module__.startswith(("cnndsl.backends.", "cnndsl.kinds.")):
        return "cnndsl"
    return None


def _tracer_class():
    import torch

    class Tracer(torch.fx.Tracer):
        """torch.nn's modules and cnndsl's own are leaves: the kinds know them."""

        def is_leaf_module(self, m, qualname):
            return (_origin(m) == "cnndsl" and type(m).__name__ in _classes() or own_forward(m)
                    or super().is_leaf_module(m, qualname))
    return Tracer


def Tracer():
    """torch.fx's tracer, with cnndsl's own modules as leaves."""
    return _tracer_class()()


# ---- leaf modules -> kinds ----------------------------------------------------------------------
def _variants(k) -> list:
    """Settings of kind `k` whose PyTorch module may differ: the bare one, then each word an argument
    takes (`p=tf_same` is Conv2dSame, not nn.Conv2d) and 2 for each whole number (SOFTMAX(groups=2)
    is RadixSoftmax)."""
    required = {a.name: 1 for a in k.args if a.default is None}
    base = {**required, **k.bare}
    out = [base]
    for a in k.args:
        for v in tuple(a.choices or ()) + ((2,) if a.type == "int" and a.default is not None else ()):
            out.append({**base, a.name: v})
        if a.type == "pair" and a.default == 0 and k.bare and a.name not in k.bare:
            out.append({**required, a.name: 2})  # an alternative to the bare setting (UPSAMPLE(size=2))
    return out


def _probes(k, in_shape):
    """(settings, TorchModule) of each of `k`'s variants that builds for an input of `in_shape`."""
    out = []
    for attrs in _variants(k):
        try:
            out.append((attrs, k.torch_module(k.bind(named(k.name, attrs)), [in_shape], False)))
        except Exception:
            continue
    return out


@functools.cache
def _classes() -> dict:
    """{PyTorch class name: [kinds whose module it is]}, from each kind's torch_module fact."""
    table = {}
    for k in KINDS.values():
        for shape in ((8, 8, 4), (4,)):
            for _, tm in _probes(k, shape):
                kinds = table.setdefault(tm.cls.split(".")[-1], [])  # "nn.Conv2d" -> "Conv2d"
                if k not in kinds:
                    kinds.append(k)
    return table


def known(m) -> bool:
    """Whether a kind has the module's class (so a module no kind rebuilds is configured unlike it)."""
    return _origin(m) is not None and type(m).__name__ in _classes()


def module_layer(m, in_shape):
    """(kind name, arguments) of a leaf module, or None where no kind rebuilds it exactly."""
    cls = type(m).__name__
    for k in _classes().get(cls, []) if _origin(m) else ():
        for variant, probe in _probes(k, in_shape):
            if probe.cls.split(".")[-1] == cls:
                found = _rebuilt(m, k, variant, probe, in_shape)
                if found is not None:
                    return k.name, found
    return None


def _rebuilt(m, k, variant, probe, in_shape):
    """The arguments of kind `k` that rebuild module `m` (of the class of `probe`, the kind's module
    for `variant`): read by the probe's spec, the rest tried (switches both ways, the variant's words)."""
    import torch
    args = {}
    for torch_name, spec_arg in probe.spec:
        if spec_arg != "@in" and hasattr(m, torch_name):
            args[spec_arg] = _from_torch(m, torch_name, k.arg(spec_arg).type)
    for a in k.args:  # arguments the constructor takes under the kind's own name (Channels' start, stop)
        if a.name not in args and not isinstance(getattr(m, a.name, None), (type(None), torch.Tensor)):
            args[a.name] = getattr(m, a.name)
    args.update(READERS.get(type(m).__name__, lambda m: {})(m))
    args.update({a: v for a, v in variant.items() if a not in args and isinstance(v, str)})
    free = [a.name for a in k.args if a.type == "bool" and a.name not in args]
    for combo in _combos(len(free)):
        tried = {**args, **dict(zip(free, combo))}
        try:
            attrs = k.bind(named(k.name, tried, exact=True))
            tm = k.torch_module(attrs, [in_shape], bool(getattr(m, "inplace", False)))
            if tm.cls.split(".")[-1] != type(m).__name__:
                continue
            a, kw = tm.call()
            with torch.device("meta"):
                rebuilt = type(m)(*a, **kw)
        except Exception:
            continue
        if _same_config(m, rebuilt) and _same_tensors(m, rebuilt):
            return tried
    return None


def _scaled_std(m) -> dict:
    """ScaledStdConv2d keeps gamma only inside its scale, gamma / sqrt(fan_in); its gains' initial
    value is theirs where they are all alike (a module not trained yet), else 1."""
    gain = m.gain.detach().reshape(-1)
    return {"gamma": getattr(m, "scale", 1.0) * m.weight[0].numel() ** 0.5,
            "gain": float(gain[0]) if bool((gain == gain[0]).all()) else 1.0}


# what a module keeps only in a form of its own: {class name: module -> kind arguments}
READERS = {"ScaledStdConv2d": _scaled_std, "ChannelConv": lambda m: {"kernel": m.kernel_size[0]},
           "ZeroPad2d": lambda m: dict(zip(("left", "right", "top", "bottom"), m.padding))}


# ---- subclasses with a forward of their own: judged by their outputs ---------------------------------
_BASES = ("Conv2d", "MaxPool2d", "AvgPool2d")


def own_forward(m) -> bool:
    """A subclass of nn.Conv2d or a pooling with a forward of its own (timm's Conv2dSame, StdConv2d,
    ScaledStdConv2d, MaxPool2dSame): a leaf, since TensorFlow's SAME padding reads the input's size
    (`ih, iw = x.size()[-2:]`, which torch.fx cannot trace), judged by its outputs (computed_layer)."""
    import torch
    if _origin(m) is not None:
        return False
    for name in _BASES:
        base = getattr(torch.nn, name)
        if isinstance(m, base) and type(m).forward is not base.forward:
            return True
    return False


def computed_layer(m, in_shape):
    """(kind, arguments, tensors) of an own_forward module: each kind configured from its attributes
    (its padding or TensorFlow's SAME; a standardised conv's eps, gamma and gain), holding its
    parameters, run beside it on one random input; None where none computes the same."""
    import torch
    from ..backends.pytorch import make_module
    gen = torch.Generator().manual_seed(0)
    x = torch.randn((1, in_shape[2], in_shape[0], in_shape[1]), generator=gen)
    state = {k: v.detach().clone() for k, v in m.state_dict().items()}
    try:
        with torch.no_grad():
            want = m(x)
    except Exception:
        return None
    for kind, args in _candidates(m):
        try:
            k = KINDS[kind]
            module = make_module(k, k.bind(named(kind, args, exact=True)), [in_shape], False).eval()
            module.load_state_dict(state, strict=True)
            with torch.no_grad():
                got = module(x)
        except Exception:
            continue
        if got.shape == want.shape and torch.allclose(got, want, rtol=1e-4, atol=1e-5):
            return kind, args, {name: v.numpy() for name, v in state.items()}
    return None


def _candidates(m):
    import torch
    pads = [m.padding, "tf_same"] if not isinstance(m.padding, str) else [m.padding]
    if isinstance(m, torch.nn.Conv2d):
        conv = {"filters": m.out_channels, "kernel": m.kernel_size, "s": m.stride, "d": m.dilation,
                "groups": m.groups, "bias": m.bias is not None}
        eps = getattr(m, "eps", 1e-6)
        for p in pads:
            yield "CONV", {**conv, "p": p}
            yield "STDCONV", {**conv, "p": p, "eps": eps}
            if isinstance(getattr(m, "gain", None), torch.Tensor):
                yield "SCALEDSTDCONV", {**conv, "p": p, "eps": eps, **_scaled_std(m)}
        return
    kind = "MAXPOOL" if isinstance(m, torch.nn.MaxPool2d) else "AVGPOOL"
    window = {"kernel": m.kernel_size, "s": m.stride or m.kernel_size}
    for p in pads:
        extra = {} if p == "tf_same" else {"ceil": m.ceil_mode}
        if kind == "AVGPOOL" and p != "tf_same":
            extra["count_pad"] = m.count_include_pad
        yield kind, {**window, "p": p, **extra}


def _combos(n):
    import itertools
    return list(itertools.product((False, True), repeat=n))


def _from_torch(m, torch_name, kind_type):
    v = getattr(m, torch_name)
    if torch_name == "bias":
        return v is not None
    if kind_type == "bool" and isinstance(v, str):
        return v not in ("none", "")
    return v


def _same_config(a, b) -> bool:
    """The modules' plain attributes agree (pairs and their number alike: (3, 3) is 3)."""
    import torch
    for key, v in vars(a).items():
        if key.startswith("_") or key == "training" or isinstance(v, torch.Tensor):
            continue
        w = vars(b).get(key, v)
        if not _same(v, w):
            return False
    return True


def _same_tensors(a, b) -> bool:
    """The same parameters and buffers, by name and shape (a switch that only adds a learnt tensor,
    STARRELU's `learnt`, leaves the plain attributes alike)."""
    return {k: tuple(v.shape) for k, v in a.state_dict().items()} == {k: tuple(v.shape) for k, v in b.state_dict().items()}


def _same(v, w) -> bool:
    if v == w:
        return True
    if isinstance(v, float) and isinstance(w, float):  # 0.07500000000000001 (0.2 * 3 / 8) is 0.075
        return abs(v - w) <= 1e-12 * max(abs(v), abs(w))
    if isinstance(v, (tuple, list)) and not isinstance(w, (tuple, list)):
        return all(x == w for x in v)
    if isinstance(w, (tuple, list)) and not isinstance(v, (tuple, list)):
        return all(x == v for x in w)
    return isinstance(v, (tuple, list)) and isinstance(w, (tuple, list)) and list(v) == list(w)
