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
rely on. `forward` is Python generated from the IR, one call a node in IR order, that
looks each layer up by name when it runs (no references kept from build time), so a
module put at a layer's name computes in its place, and `del` drops each tensor right
after its last reader:

    >>> m.fc1 = torch.nn.Linear(4, 3)
    >>> m(torch.randn(2, 3, 8, 8)).shape
    torch.Size([2, 3])
    >>> print(m.code.splitlines()[1])
        stem_conv1 = self._modules['stem']._modules['conv1'](x); del x

Options of `build_module(net, seed=None, logits=False, device=None, dtype=None, weights=None)`:
  seed     initialise from this seed without touching the global RNG (None: the global RNG).
  logits   leave out a final SOFTMAX, to train with nn.CrossEntropyLoss (which applies
           log-softmax itself) without a double softmax.
  device   where to build the parameters ("meta" builds shapes only, no memory).
  dtype    parameter dtype (default float32).
  weights  a checkpoint path or state_dict to load, by name, or a torchvision-style
           state_dict of a zoo net's twin (see cnndsl.weights for the rules); the load
           report is left in `module.cnndsl_weights`.
  weights_strict  False: load what matches by name and shape, keep the rest as initialised.
  weights_mapping  {foreign module prefix: ours}: where a foreign state_dict's modules go when
           its names and shapes leave them ambiguous (cnndsl.weights_map).
The module's `cnndsl_meta` ({str: str}, Net.spec_info) is what weights.save() records; its
`cnndsl_layouts` ({key: kinds.Foreign, ...}) the other layouts its tensors may have in a foreign
state_dict, and `cnndsl_feeds` ({module: the module it reads}), by which weights.load_into places them.
Initialisation: He (kaiming_normal_, fan_out, relu; bias 0) for a CONV that feeds a
ReLU-like through BN/ADD/CONCAT/pools, PyTorch's defaults otherwise, BN weight 1 bias 0.
"""
from __future__ import annotations

import functools
import itertools
import keyword
import linecache
import re

import torch
from torch import nn

from . import torch_modules
from ..kinds import torch_classes
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
    # cnndsl's own: the shared ones here, or a class the kind's file defines (kinds.torch_classes)
    factory = getattr(nn, cls) if owner == "nn" else CNNDSL_MODULES.get(cls) or torch_classes(kind)[cls]
    args, kwargs = spec.call()
    return factory(*args, **kwargs)


# ---- the module ----------------------------------------------------------------------------------
class _Holder(nn.Module):
    """A module whose children are named by the spec: a child may be called `training` too."""

    def __setattr__(self, name, value):
        if name == "training" and isinstance(value, bool):  # the mode, even with a layer called `training`
            self.__dict__["training"] = value               # (nn.Module would refuse a bool at a child's name)
        else:
            super().__setattr__(name, value)


class Group(_Holder):
    """A named part of the spec (block instance, labelled group): holds its layers, runs nothing.
    The network's forward calls the layers inside it by name, so swap layers, not groups."""

    def forward(self, *args):
        raise RuntimeError("a cnndsl group is run by its network's forward, not on its own")


class CnnNet(_Holder):
    """A network compiled from a cnndsl spec; takes NCHW input (or (N, features) for vector inputs).

    `forward` is straight-line code generated from the IR (`self.code` holds its source): each
    line looks its layer up by name when it runs, so a module put in a layer's place computes."""

    def __init__(self, input_shape: tuple, name: str):
        super().__init__()
        self.input_shape, self.spec_name = tuple(input_shape), name
        self.code = ""
        self._run = None

    def forward(self, x):
        return self._run(self, x)

    def extra_repr(self):
        return f"spec={self.spec_name!r}, input={'x'.join(map(str, self.input_shape))} (HxWxC)"

    def __getstate__(self):  # pickling: the generated function is rebuilt from its source
        state = dict(super().__getstate__())
        state.pop("_run", None)
        return state

    def __setstate__(self, state):
        super().__setstate__(state)
        self.__dict__["_run"] = _compile(self.code, self.spec_name)

    def _set_forward(self, source: str):
        # through __dict__: a layer may be called `code` (nn.Module.__setattr__ would refuse a str there)
        self.__dict__["code"], self.__dict__["_run"] = source, _compile(source, self.spec_name)


# ---- the generated forward -----------------------------------------------------------------------
def _lookup(name: str) -> str:
    """Python that finds layer `name` under `self` when it runs: `self._modules['layer1']._modules['conv1']`.

    Dict look-ups, not attributes: nn.Module.__getattr__ costs about 1 us a step (0.6 ms per
    resnet50 forward, a few % of a GPU step), the dicts 0.02 ms; and no layer name (`train`,
    `training`, `class`) can find a method, an attribute or a keyword instead of the layer."""
    return "self" + "".join(f"._modules[{part!r}]" for part in name.split("."))


def _variables(names) -> dict[str, str]:
    """A distinct Python identifier for each tensor (layer name, "input" -> "x"), readable."""
    taken, out = {"self", "x"}, {"input": "x"}
    for name in names:
        base = re.sub(r"\W", "_", name.replace(".", "_"))
        if not base.isidentifier() or keyword.iskeyword(base):
            base = "t_" + base
        var, k = base, 2
        while var in taken:
            var, k = f"{base}_{k}", k + 1
        taken.add(var)
        out[name] = var
    return out


def forward_source(steps, output: str) -> str:
    """The source of `forward(self, x)` for `steps` = [(layer name, input names, names to free)]:
    one call a line, in IR order; `del` drops a tensor right after its last reader ran."""
    var = _variables([name for name, _, _ in steps])
    lines = ["def forward(self, x):"]
    for name, ins, free in steps:
        line = f"    {var[name]} = {_lookup(name)}({', '.join(var[i] for i in ins)})"
        if free:
            line += f"; del {', '.join(var[f] for f in free)}"
        lines.append(line)
    lines.append(f"    return {var[output]}")
    return "\n".join(lines) + "\n"


@functools.lru_cache(maxsize=64)
def _compile(source: str, spec_name: str):
    """The function `source` defines; its text is registered with linecache for tracebacks."""
    filename = f"<cnndsl forward of {spec_name} #{next(_COMPILED)}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    scope: dict = {}
    exec(compile(source, filename, "exec"), scope)
    return scope["forward"]


_COMPILED = itertools.count(1)


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
                 weights_mapping=None, **options) -> CnnNet:
    """See the module docstring; `net` is a cnndsl.Net."""
    if options:
        from ..errors import CnnError
        raise CnnError(f"to_torch() got unknown options {sorted(options)}", usage=True,
                       hint="known: seed, logits, device, dtype, weights, weights_strict, weights_mapping")
    graph = net.graph
    if device is None or torch.device(device).type == "cpu":  # "meta" builds shapes only
        from ..memory import require_network
        require_network(graph, "this network's PyTorch module")  # its tensors, before any is made
    if seed is None:
        module = _build(net, graph, logits, device, dtype)
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            module = _build(net, graph, logits, device, dtype)
    # through __dict__: a layer may be called `cnndsl_meta` (nn.Module would refuse a dict over it)
    module.__dict__["cnndsl_meta"] = net.spec_info  # the spec it was built from: what weights.save() records
    module.__dict__["cnndsl_weights"] = None
    # the kinds' foreign layouts of its tensors (a 1x1 conv's weight as nn.Linear's): load_into places
    # a torchvision state_dict by them
    # and what each of its modules reads (a BN its conv): the foreign mapping's `structure` rule
    from ..weights import foreign_layouts, module_feeds
    module.__dict__["cnndsl_layouts"] = foreign_layouts(graph.tensors())
    module.__dict__["cnndsl_feeds"] = module_feeds(graph)
    if weights is not None:
        from ..weights import load_into
        module.__dict__["cnndsl_weights"] = load_into(module, weights, strict=weights_strict,
                                                      mapping=weights_mapping)  # the load report
    return module


def _build(net, graph, logits, device, dtype):
    nodes = list(graph.nodes)
    drop = final_softmax(graph) if logits else None
    if drop is not None:
        nodes = nodes[:-1]
    inplace, he = inplace_nodes(graph), he_convs(graph)
    frees = last_uses(graph)
    output = drop.inputs[0] if drop is not None else graph.output
    root, steps = CnnNet(graph.input_shape, net.name), []
    with torch.device(device) if device is not None else _nothing():
        for i, n in enumerate(nodes):
            first = inplace.get(n.name)
            module = make_module(n.kind, n.attrs, [graph.shape_of(s) for s in n.inputs], first is not None)
            if n.name in he:
                _he_init(module)
            _place(root, n.name, module)
            order = list(n.inputs)
            if first is not None and n.kind.join:  # a join run in place writes into its first input
                order.insert(0, order.pop(first))
            steps.append((n.name, order, [s for s in frees[i] if s != output]))
    root._set_forward(forward_source(steps, output))
    if dtype is not None:
        root.to(dtype=dtype)
    return root


class _nothing:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False
