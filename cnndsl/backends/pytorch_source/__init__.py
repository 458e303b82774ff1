"""The PyTorch source backend: an IR graph -> a standalone, readable .py file (no cnndsl import).

    >>> import cnndsl
    >>> src = cnndsl.loads("input 8x8x3\\ndef unit(c) = CONV(c, 3, p=1) - RELU\\nunit(4) - GAP - FC(10)").torch_source()
    >>> "class Unit(nn.Module):" in src and "def __init__(self, cin, c):" in src
    True

Each `def` becomes one class whose constructor takes the def's parameters (with the spec's
defaults) and, first, the input channels it needs (`cin`); its body follows the def's body in the
parsed program, its arguments are what the IR says the spec wrote (plain data: `Node.site`,
`Frame.written`, `Frame.params`, never evaluated here): `if downsample:` for an optional a
parameter switches, a `for` loop for a repeat whose count is a parameter (see block.py for how
each is checked against every instance, and what falls back). The constants are the spec's
`let`s that the code reads (`Graph.lets`), nothing else. The network's
own class is written from the IR: labelled groups are `nn.Module()` holders, block instances
their class, with the values of that call.

The module tree equals `to_torch()`'s (module path == layer name), hence the same `state_dict`
keys and shapes, the same in-place choices and arithmetic in the same order: a checkpoint of
one loads into the other with identical outputs. Joins are written inline (`torch.cat`, `+`,
`torch.flatten`).
"""
from __future__ import annotations

import keyword
import os
import functools
import re
import textwrap

from ...errors import shown_path
from ... import kinds as _kinds
from ...kinds import KINDS, torch_sources
from ...lang import astnodes as A
from ..torch_plan import final_softmax, he_convs, inplace_nodes
from .block import INLINE, ClassWriter, Fail, camel, class_ref, indent, wrap
from .expr import helpers, literal
from .module_attrs import module_attrs

# what forward writes inline, per op (every other kind is a module: `Kind.torch_module`)
OPS = {op: INLINE.__contains__(op) for op in KINDS}
HE = ["def he(conv):",
      '    """He initialisation (fan_out, ReLU) for a convolution that feeds a ReLU, as to_torch() does."""',
      '    nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")',
      "    if conv.bias is not None:",
      "        nn.init.zeros_(conv.bias)",
      "    return conv"]


def own_modules(text) -> list[tuple[str, str]]:
    """[(name, class source)] of the cnndsl modules (backends/torch_modules.py, then those the kinds'
    files define: kinds.torch_sources) that generated code calls, in file order; read as text, so
    compiling never imports torch."""
    import ast
    sources = _own_module_sources(_kinds.ALL)  # the kinds now: one registered later brings its modules
    wanted = {name for name, _ in sources if re.search(rf"\b{name}\(", text)}
    while True:  # and the classes their code names (a base class, a helper: `Conv2dSame.same_pads`)
        named = {n.id for name, src in sources if name in wanted for n in ast.walk(ast.parse(src))
                 if isinstance(n, ast.Name)}
        more = {name for name, _ in sources if name in named} - wanted
        if not more:
            return [(name, src) for name, src in sources if name in wanted]
        wanted |= more


@functools.lru_cache(maxsize=2)
def _own_module_sources(kinds):
    import ast
    import os
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "torch_modules.py")
    with open(path, encoding="utf-8") as f:
        text = f.read()
    shared = tuple((n.name, ast.get_source_segment(text, n)) for n in ast.parse(text).body if isinstance(n, ast.ClassDef))
    return shared + torch_sources()


def _key(frames):
    return tuple((f.kind, f.path, f.name, f.index) for f in frames)


def _at(span):
    return (id(span.source), span.line, span.col)


class Generator:
    def __init__(self, net, class_name, logits=False):
        self.net, self.graph = net, _without_softmax(net.graph) if logits else net.graph
        # planned on the whole graph, as to_torch(logits=True) plans them
        self.inplace, self.he = inplace_nodes(net.graph), he_convs(net.graph)
        self.dropped = self.graph is not net.graph
        self.module_attrs = module_attrs()
        self.top_name = class_name or camel(re.sub(r"\W", "_", net.name)) or "Net"
        self.classes, self.order, self.fallbacks = {}, [], []
        self.spec_name = os.path.basename(net.path) if not net.path.startswith("<") else "a cnndsl spec"
        self._index()
        self.defs = _defs(getattr(net, "program", None))
        self.globals = dict(self.graph.lets)  # the `let`s (and -D names): what the elaborator bound
        self.consts = {name: (self._const_name(name), v) for name, v in self.globals.items()}

    # ---- indexes of the IR ----------------------------------------------------------------------
    def _index(self):
        self.nodes_at, self.next_frames, self.instances = {}, {}, {}
        self.block_input, self.block_output, self.first_input = {}, {}, {}
        for n in self.graph.nodes:
            start = self.graph[n.inputs[0]].inputs[0] if n.inputs[0] in self.graph and \
                self.graph[n.inputs[0]].implicit else n.inputs[0]
            for k in range(len(n.frames) + 1):
                self.first_input.setdefault(_key(n.frames[:k]), start)
            if n.site is not None:
                self.nodes_at[(n.site.name, _at(n.site.span), _key(n.frames))] = n  # a join's braces start where its first call does
            for k, f in enumerate(n.frames):
                self.next_frames.setdefault(_key(n.frames[:k]), {}).setdefault(_key([f]), f)
                if f.kind == "block":
                    self.instances.setdefault(f.name, {}).setdefault(f.path, n.frames[:k + 1])
                    self.block_output[f.path] = n.name
                    self.block_input.setdefault(f.path, n.inputs[0])

    def node_at(self, site, frames):
        """The node that the def body's call (or braces) `site` built inside `frames`."""
        n = self.nodes_at.get((site.join if isinstance(site, A.Branches) else site.name, _at(site.span), _key(frames)))
        if n is None:
            raise Fail(f"no layer for the call on line {site.span.line}")
        return n

    def input_of(self, frames):
        """The tensor the first layer inside `frames` reads (None: no layer inside)."""
        return self.first_input.get(_key(frames))

    def children(self, frames):
        return list(self.next_frames.get(_key(frames), {}).values())

    def child_frame(self, frames, kind, span):
        return next((f for f in self.children(frames) if f.kind == kind and f.span is not None
                     and _at(f.span) == _at(span)), None)

    def _const_name(self, name):
        const = re.sub(r"\W", "_", name).upper()
        return const + "_" if keyword.iskeyword(const) or const == self.top_name else const

    # ---- classes ----------------------------------------------------------------------------------
    def class_name(self, d):
        name = camel(d.name)
        taken = {c.name for c in self.order} | {self.top_name}
        return name + "Block" if name in taken else name

    def class_for(self, name):
        """The class of the def `name` (built on first use, its children first); None when it falls back."""
        if name not in self.classes:
            self.classes[name] = None
            d = self.defs.get(name)
            if d is None:  # a Net built from a graph: no program to read the def's body from
                return None
            try:
                code = ClassWriter(self, d, list(self.instances.get(name, {}).values())).write()
            except Fail as why:
                self.fallbacks.append(f"def {name}: {why}")
                return None
            self.classes[name] = code
            self.order.append(code)
        return self.classes[name]

    def spec_line(self, span):
        text = re.sub(r"\s+", " ", span.source.line(span.line).split("#")[0]).strip()
        text = text if len(text) <= 80 else text[:77] + "..."
        path = shown_path(span.source.path)
        if path != self.net.path and not path.startswith("<"):
            return f"{os.path.basename(path)} line {span.line}: {text}"
        return f"line {span.line}: {text}"

    # ---- the file ---------------------------------------------------------------------------------
    def source(self) -> str:
        top = TopWriter(self).write()
        spec = self.spec_name
        body = [line for code in self.order for line in self.render_class(code)]
        body += top
        text = "\n".join(body)
        code = _code(text)  # what the file's names are looked for in: not the spec lines quoted in comments
        consts = [f"{py} = {literal(v)}  # let {name}" for name, (py, v) in self.consts.items()
                  if re.search(rf"\b{py}\b", code)]
        in_doc = _nchw(self.graph.input_shape)
        about = " ".join([f"Input: a float tensor of shape {in_doc} (NCHW).", self._output_doc(),
                          *self._keys_doc(), "Needs only torch."])
        out = [f'"""{self.top_name}: PyTorch source compiled by cnndsl from {spec}.', "",
               *textwrap.wrap(about, 100), "", f"    model = {self.top_name}()",
               f"    y = model(torch.randn({in_doc.replace('N', '1')}))"]
        imports, defs = helpers(code)
        out += self._fallback_note() + ['"""', *imports, "import torch", "from torch import nn", "", ""]
        out += defs + ["", ""] if defs else []
        out += (consts + ["", ""] if consts else []) + (HE + ["", ""] if self.he else [])
        out += [line for _, src in own_modules(code) for line in (src, "", "")]
        return "\n".join(out + body) + "\n"

    def _output_doc(self):
        """What forward returns: its shape, and whether a final SOFTMAX makes it probabilities."""
        shape = _nchw(self.graph.shape_of(self.graph.output))
        if self.dropped:
            return f"Output: logits of shape {shape} (the spec's final SOFTMAX left out, for nn.CrossEntropyLoss)."
        if final_softmax(self.graph) is not None:
            return (f"Output: probabilities of shape {shape} (the spec's final SOFTMAX; "
                    "`cnndsl compile --logits` leaves it out, to train with nn.CrossEntropyLoss).")
        return f"Output: a tensor of shape {shape}, the last layer's ({self.graph.output})."

    def _keys_doc(self):
        """The state_dict naming, with a key this module has (none when it has no tensors)."""
        keys = list(self.graph.tensors())
        if not keys:
            return []
        key = next((k for k in keys if k.endswith(".weight")), keys[0])
        return [f"Module paths are the spec's layer names, so state_dict keys read like the spec (`{key}`)."]

    def _fallback_note(self):
        notes = [f"  {c.name}: `{x[0]}` is passed per call ({x[2]} is not written with the def's parameters)"
                 for c in self.order for x in c.extras] + [f"  {f}" for f in self.fallbacks]
        return ["", "Written as literals, not from the spec's expressions:"] + notes if notes else []

    def render_class(self, code):
        d = code.d
        where = self.spec_line(d.span).split(":")[0]
        params = ([self_cin(code)] if code.uses_cin else []) + [
            f"{py}={default}" if default is not None else py for _, py, default in code.params]
        if code.extras:
            params += ["*"] + [name for name, _, _ in code.extras]
        n = code.count
        where = "spec " + where if where.startswith("line") else where
        doc = f'    """The `{d.name}` block ({where}): {n} instance{"s" * (n != 1)}."""'
        return [f"class {code.name}(nn.Module):", doc, "",
                f"    def __init__({', '.join(['self'] + params)}):", "        super().__init__()",
                *[w for line in indent(code.init, 2) for w in wrap(line)], "", "    def forward(self, x):", *indent(code.forward, 2), "", ""]


def _defs(program) -> dict:
    """{name: Def} of a parsed program and the files it includes (a def is defined once)."""
    out, todo, seen = {}, [program] if program is not None else [], set()
    while todo:
        p = todo.pop()
        if id(p) in seen:
            continue
        seen.add(id(p))
        for st in p.statements:
            if isinstance(st, A.Def):
                out.setdefault(st.name, st)
            elif isinstance(st, A.Include) and st.program is not None:
                todo.append(st.program)
    return out


def _nchw(shape):
    """(N, C, H, W) of an HWC shape, (N, F) of a vector, for the docstring."""
    return f"(N, {shape[2]}, {shape[0]}, {shape[1]})" if len(shape) == 3 else f"(N, {', '.join(map(str, shape))})"


def _code(text):
    """`text` without its comments (parsed and written back): a name of a spec line quoted in a
    comment (`*N`) is no use of the constant `N`."""
    import ast
    return ast.unparse(ast.parse(text))


def _without_softmax(graph):
    """`graph` less a final SOFTMAX (torch_plan.final_softmax, what to_torch(logits=True) drops)."""
    drop = final_softmax(graph)
    if drop is None:
        return graph
    from ...ir import Graph
    out = Graph(graph.input_shape, output=drop.inputs[0], optionals=graph.optionals, warnings=graph.warnings,
                source=graph.source, input_span=graph.input_span, lets=graph.lets)
    for n in graph.nodes:
        if n is not drop:
            out.add(n)
    return out


def self_cin(code):
    """The input channels' argument: `cin` is reserved (block.RESERVED), so no parameter's Python name is."""
    return "cin"


class Part:
    """A dotted prefix of layer names at the top level: a block instance or a labelled group."""

    def __init__(self, path):
        self.path, self.children, self.nodes = path, {}, []


def _tree(graph):
    root = Part("")
    for n in graph.nodes:
        *parents, leaf = n.name.split(".")
        part = root
        for i, p in enumerate(parents):
            child = part.children.get(p)
            if not isinstance(child, Part):
                child = part.children[p] = Part(".".join(parents[:i + 1]))
            part = child
            part.nodes.append(n)
        part.children[leaf] = n
        root.nodes.append(n)
    return root


class TopWriter:
    """The network's class, from the IR: one statement per layer or block instance."""

    def __init__(self, gen):
        self.gen, self.g = gen, gen.graph
        self.items = []        # (forward expression maker, input tensors, output tensor, span, op)
        self.readers = None    # the graph's consumers, found once (not once per block instance: quadratic)

    def write(self):
        init = self.part(_tree(self.g), "self")
        fwd = self.forward()
        shape = "x".join(map(str, self.g.input_shape))
        return [f"class {self.gen.top_name}(nn.Module):", f'    """The network of {self.gen.spec_name}, on {shape} input."""', "",
                "    def __init__(self):", "        super().__init__()",
                *[w for line in indent(init, 2) for w in wrap(line)], "",
                "    def forward(self, x):", *indent(fwd, 2), ""]

    def ref(self, owner, name):
        if name.isidentifier() and not keyword.iskeyword(name) and name not in self.gen.module_attrs:
            return f"{owner}.{name}"
        return f'{owner}._modules["{name}"]'

    def part(self, part, owner):
        lines = []
        for name, child in part.children.items():
            ref = self.ref(owner, name)
            if not isinstance(child, Part):
                lines += self.layer(child, ref)
                continue
            code, frame = self.class_of(child)
            if code is not None:
                lines.append(f"{ref} = {code.name}({', '.join(self.call_args(code, frame))})")
                src = self.gen.block_input[frame.path]
                self.items.append((lambda a, r=ref: f"{r}({a[0]})", [src], child.nodes[-1].name, frame.span, "block"))
            else:
                lines.append(f"{ref} = nn.Module()")
                lines += self.part(child, ref)
        return lines

    def class_of(self, part):
        frames = [f for f in part.nodes[0].frames if f.path == part.path and f.kind == "block"]
        if not frames:
            return None, None
        code = self.gen.class_for(frames[-1].name)
        inside = {n.name for n in part.nodes}
        outside = {s for n in part.nodes for s in n.inputs if s not in inside}
        if self.readers is None:
            self.readers = self.g.consumers()
        readers = self.readers
        used = [n.name for n in part.nodes if n.name == self.g.output or any(r not in inside for r in readers[n.name])]
        ok = code is not None and len(outside) == 1 and used == [part.nodes[-1].name]
        return (code, frames[-1]) if ok else (None, None)

    def call_args(self, code, frame):
        args = [literal(self.g.shape_of(self.gen.block_input[frame.path])[-1])] if code.uses_cin else []
        values = dict(frame.args)
        consts = self.gen.consts.values()
        for name, py, default in code.params:
            if default is None:
                args.append(literal(values[name]))
            elif not _same(values[name], code.default_value(name, consts)):
                args.append(f"{py}={literal(values[name])}")
        return args + [f"{name}={literal(per[frame.path])}" for name, per, _ in code.extras]

    def layer(self, n, ref):
        ins = [self.g.shape_of(s) for s in n.inputs]
        if n.op in INLINE:
            self.items.append((self.inline(n), list(n.inputs), n.name, n.span, n.op))
            return []
        m = n.kind.torch_module(n.attrs, ins, n.name in self.gen.inplace)
        src = f"{class_ref(m.cls)}({', '.join([literal(v) for _, v in m.args] + [f'{k}={literal(v)}' for k, v in m.kwargs])})"
        self.items.append((lambda a, r=ref: f"{r}({', '.join(a)})", list(n.inputs), n.name, n.span, n.op))
        return [f"{ref} = {'he(' + src + ')' if n.name in self.gen.he else src}"]

    def inline(self, n):
        if n.op == "FLATTEN":
            return lambda a: f"torch.flatten({a[0]}, 1)"
        if n.op == "CONCAT":
            return lambda a: f"torch.cat([{', '.join(a)}], 1)"
        return lambda a: " + ".join(a)

    def forward(self):
        """Straight-line code; a variable is reused once nothing reads its tensor any more."""
        left = {}
        for _, ins, _, _, _ in self.items:
            for s in ins:
                left[s] = left.get(s, 0) + 1
        var, lines, taken, last_line = {"input": "x"}, [], {"x"}, None
        for make, ins, out, span, op in self.items:
            if span is not None and span.line != last_line and op not in INLINE:
                lines.append(f"# {self.gen.spec_line(span)}")
                last_line = span.line
            args = [var[s] for s in ins]
            for s in ins:
                left[s] -= 1
            k = self.gen.inplace.get(out) if op == "ADD" else None
            if k is not None:
                lines += [f"{args[k]} += {r}" for r in args[:k] + args[k + 1:]]
                var[out] = args[k]
                continue
            free = [var[s] for s in ins if left[s] == 0 and s != self.g.output]
            name = free[0] if free else self._fresh(out, taken)
            lines.append(f"{name} = {make(args)}")
            var[out] = name
        return lines + [f"return {var[self.g.output]}"]

    @staticmethod
    def _fresh(tensor, taken):
        base = re.sub(r"\W", "_", tensor.rsplit(".", 1)[-1])
        base = base if base.isidentifier() and not keyword.iskeyword(base) else "t_" + base
        name, k = base, 2
        while name in taken:
            name, k = f"{base}_{k}", k + 1
        taken.add(name)
        return name


def _same(a, b):
    from .expr import same
    return same(a, b)


def generate(net, class_name=None, logits=False) -> str:
    """Standalone PyTorch source for `net` (a cnndsl.Net); `class_name` defaults to the file's name.
    `logits=True` leaves out a final SOFTMAX, as to_torch(logits=True) does."""
    if class_name is not None and (not class_name.isidentifier() or keyword.iskeyword(class_name)):
        from ...errors import CnnError
        raise CnnError(f"--class-name {class_name!r} is not a Python identifier", usage=True)
    _refuse_mode_names(net)
    return Generator(net, class_name, logits).source()


# names that nn.Module itself assigns plain values to (`training` in .train()/.eval()): a layer of that
# name cannot be an attribute of plain generated source (to_torch() keeps the mode apart, this file can't)
MODE_NAMES = frozenset({"training"})


def _refuse_mode_names(net):
    from ...errors import CnnError
    for n in net.graph.nodes:
        clash = MODE_NAMES.intersection(n.name.split("."))
        if clash:
            raise CnnError(f"a layer or group named `{next(iter(clash))}` cannot be written as PyTorch source: "
                           f"nn.Module keeps its train/eval mode in that attribute", n.span, code="E207",
                           hint="rename the label for `cnndsl compile` (to_torch() and export accept it)")
