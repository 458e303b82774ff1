"""The PyTorch backend: an IR graph -> a torch.nn.Module whose module paths are the layer names.

    >>> import cnndsl, torch
    >>> m = cnndsl.loads("input 8x8x3\\nstem: [CONV(4, 3, p=1) - BN - RELU] - GAP - FC(10)").to_torch(seed=0)
    >>> [k for k in m.state_dict()][:3]
    ['stem.conv1.weight', 'stem.conv1.bias', 'stem.bn1.weight']
    >>> m(torch.randn(2, 3, 8, 8)).shape
    torch.Size([2, 10])

Every IR node becomes one module registered at its dotted name (`layer1.bottleneck2.conv1`
is module `conv1` inside `bottleneck2` inside `layer1`), so `state_dict()` keys are
`{node.name}.weight` and friends: the naming contract the ONNX backend and checkpoints
rely on. `forward` runs the nodes in IR order from a flat plan of (module, input slots,
output slot, slots to free), so tensors are dropped as soon as nothing reads them.

Options of `build_module(net, seed=None, logits=False, device=None, dtype=None)`:
  seed     initialise from this seed without touching the global RNG (None: the global RNG).
  logits   leave out a final SOFTMAX, to train with nn.CrossEntropyLoss (which applies
           log-softmax itself) without a double softmax.
  device   where to build the parameters ("meta" builds shapes only, no memory).
  dtype    parameter dtype (default float32).
  weights  a checkpoint path or state_dict to load, by name, or a torchvision-style
           state_dict of a zoo net's twin (see cnndsl.weights for the rules); the load
           report is left in `module.cnndsl_weights`.
  weights_strict  False: load what matches by name and shape, keep the rest as initialised.
The module's `cnndsl_meta` ({str: str}, Net.spec_info) is what weights.save() records.
Initialisation: He (kaiming_normal_, fan_out, relu; bias 0) for a CONV that feeds a
ReLU-like through BN/ADD/CONCAT/pools, PyTorch's defaults otherwise, BN weight 1 bias 0.
"""
from __future__ import annotations

import torch
from torch import nn

from . import torch_modules
from .torch_plan import final_softmax, he_convs, inplace_nodes, last_uses


# ---- the op table: IR node -> module ----------------------------------------------------------
class Add(nn.Module):
    """Sum of its inputs. In place (into the first) when the plan says the first may be overwritten."""

    def __init__(self, inplace: bool = False):
        super().__init__()
        self.inplace = inplace

    def forward(self, x, *rest):
        if self.inplace:
            for r in rest:
                x += r
            return x
        for r in rest:
            x = x + r
        return x

    def extra_repr(self):
        return "inplace=True" if self.inplace else ""


class Concat(nn.Module):
    """Channel concatenation (dim 1 in NCHW, the feature axis of a vector)."""

    def forward(self, *xs):
        return torch.cat(xs, 1)


# cnndsl's own modules, for `TorchModule.cls == "cnndsl.<Name>"` (torch_modules: self-contained ones)
CNNDSL_MODULES = {"Add": Add, "Concat": Concat, **torch_modules.MODULES}


def make_module(kind, attrs, ins, inplace) -> nn.Module:
    """The module a kind describes (`Kind.torch_module`: class and arguments as data)."""
    spec = kind.torch_module(attrs, ins, inplace)
    owner, _, cls = spec.cls.partition(".")
    factory = getattr(nn, cls) if owner == "nn" else CNNDSL_MODULES[cls]
    args, kwargs = spec.call()
    return factory(*args, **kwargs)


# ---- the module ----------------------------------------------------------------------------------
class Group(nn.Module):
    """A named part of the spec (block instance, labelled group): holds its layers, runs nothing."""

    def forward(self, *args):
        raise RuntimeError("a cnndsl group is run by its network's forward, not on its own")


class CnnNet(nn.Module):
    """A network compiled from a cnndsl spec; takes NCHW input (or (N, features) for vector inputs)."""

    def __init__(self, steps, out_slot: int, input_shape: tuple, name: str):
        super().__init__()
        self.input_shape, self.spec_name = tuple(input_shape), name
        # a plain list (not registered): the modules are already registered under their names
        self._steps = steps
        self._out = out_slot
        self._nslots = 1 + len(steps)
        self._names, self._bound = [], id(self)

    def forward(self, x):
        if self._bound != id(self):  # a shallow copy (DataParallel's replicas): use its own modules
            self._rebind()
        vals = [None] * self._nslots
        vals[0] = x
        for fn, ins, out, free in self._steps:
            if len(ins) == 1:
                vals[out] = fn(vals[ins[0]])
            else:
                vals[out] = fn(*[vals[i] for i in ins])
            for i in free:
                vals[i] = None
        return vals[self._out]

    def _rebind(self):
        self._steps = [(self.get_submodule(name), ins, out, free)
                       for name, (_, ins, out, free) in zip(self._names, self._steps)]
        self._bound = id(self)

    def extra_repr(self):
        return f"spec={self.spec_name!r}, input={'x'.join(map(str, self.input_shape))} (HxWxC)"


def _place(root: nn.Module, name: str, module: nn.Module):
    """Register `module` at dotted path `name`, creating Groups on the way.

    Writes `_modules` directly so that a layer may be called `train` or `eval` (names
    nn.Module uses as methods): state_dict() and named_modules() read `_modules`."""
    *parents, leaf = name.split(".")
    node = root
    for p in parents:
        child = node._modules.get(p)
        if child is None:
            child = node._modules[p] = Group()
        node = child
    if leaf in node._modules:  # a group already took the name: keep its children under the layer
        for k, v in node._modules[leaf]._modules.items():
            module._modules[k] = v
    node._modules[leaf] = module


def _he_init(conv: nn.Conv2d):
    nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)


def build_module(net, seed=None, logits=False, device=None, dtype=None, weights=None, weights_strict=True,
                 **options) -> CnnNet:
    """See the module docstring; `net` is a cnndsl.Net."""
    if options:
        from ..errors import CnnError
        raise CnnError(f"to_torch() got unknown options {sorted(options)}", usage=True,
                       hint="known: seed, logits, device, dtype, weights, weights_strict")
    graph = net.graph
    if seed is None:
        module = _build(net, graph, logits, device, dtype)
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            module = _build(net, graph, logits, device, dtype)
    module.cnndsl_meta = net.spec_info  # the spec it was built from: what weights.save() records
    module.cnndsl_weights = None
    if weights is not None:
        from ..weights import load_into
        module.cnndsl_weights = load_into(module, weights, strict=weights_strict)  # the load report
    return module


def _build(net, graph, logits, device, dtype):
    nodes = list(graph.nodes)
    drop = final_softmax(graph) if logits else None
    if drop is not None:
        nodes = nodes[:-1]
    inplace, he = inplace_nodes(graph), he_convs(graph)
    frees = last_uses(graph)
    slot = {"input": 0}
    for i, n in enumerate(nodes):
        slot[n.name] = i + 1
    out_name = drop.inputs[0] if drop is not None else graph.output
    steps = []
    root = CnnNet([], slot[out_name], graph.input_shape, net.name)
    with torch.device(device) if device is not None else _nothing():
        for i, n in enumerate(nodes):
            ins = [graph.shape_of(s) for s in n.inputs]
            first = inplace.get(n.name)
            module = make_module(n.kind, n.attrs, ins, first is not None)
            if n.name in he:
                _he_init(module)
            order = list(n.inputs)
            if n.op == "ADD" and first is not None:  # the overwritten input goes first
                order.insert(0, order.pop(first))
            free = tuple(slot[s] for s in frees[i] if s != out_name)
            _place(root, n.name, module)
            steps.append((module, tuple(slot[s] for s in order), slot[n.name], free))
    root._steps = steps
    root._names = [n.name for n in nodes]
    root._nslots = len(nodes) + 1
    if dtype is not None:
        root.to(dtype=dtype)
    return root


class _nothing:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False
