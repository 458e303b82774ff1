"""The PyTorch source backend: an IR graph -> a standalone, readable .py file (no cnndsl import).

    >>> import cnndsl
    >>> src = cnndsl.loads("input 8x8x3\\nstem: [CONV(4, 3, p=1) - BN - RELU] - GAP - FC(10)").torch_source()
    >>> "class Stem(nn.Module):" in src and "import cnndsl" not in src
    True

The generated module has the same module tree as `to_torch()` (module path == layer name),
hence the same `state_dict` keys and shapes, the same in-place choices and the same
arithmetic in the same order: a checkpoint of one loads into the other with identical outputs.

Each named part of the spec (a block instance, a labelled group) with one input and one
output becomes a helper class with its own `forward`; instances with identical code share
one class. Other parts are plain `nn.Module()` holders whose layers the enclosing forward
calls. Parameter-free joins are written inline (`torch.cat`, `+`, `torch.flatten`); every
statement group carries the spec line it came from as a comment.
"""
from __future__ import annotations

import keyword
import os
import re
import textwrap

from .torch_plan import he_convs, inplace_nodes

RESERVED = {"x", "out", "self", "torch", "nn", "he", "super"}
JOINS = ("ADD", "CONCAT", "FLATTEN")  # written inline, without a spec-line comment of their own


# ---- the op table: node -> constructor source (None: written inline) and call source ----------
def _pair(v, default):
    """Source of a (h, w) argument: `3` when square, `(3, 1)` otherwise; None when the default."""
    if tuple(v) == (default, default):
        return None
    return str(v[0]) if v[0] == v[1] else f"({v[0]}, {v[1]})"


def _args(*positional, **named):
    parts = [str(p) for p in positional] + [f"{k}={v}" for k, v in named.items() if v is not None]
    return ", ".join(parts)


def _conv(n, ins, inplace):
    a = n.attrs
    return "nn.Conv2d(" + _args(ins[0][2], a["filters"], _pair(a["kernel"], None), stride=_pair(a["s"], 1),
                                padding=_pair(a["p"], 0), dilation=_pair(a["d"], 1),
                                groups=a["groups"] if a["groups"] != 1 else None,
                                bias=None if a["bias"] else "False") + ")"


def _pool(cls):
    def make(n, ins, inplace):
        a = n.attrs
        extra = {"count_include_pad": "False"} if cls == "AvgPool2d" and not a["count_pad"] else {}
        return f"nn.{cls}(" + _args(_pair(a["kernel"], None), stride=_pair(a["s"], None),
                                    padding=_pair(a["p"], 0), ceil_mode="True" if a["ceil"] else None,
                                    **extra) + ")"
    return make


def _bn(n, ins, inplace):
    cls = "BatchNorm2d" if len(ins[0]) == 3 else "BatchNorm1d"
    a = n.attrs
    return f"nn.{cls}(" + _args(ins[0][-1], eps=None if a["eps"] == 1e-5 else repr(a["eps"]),
                                momentum=None if a["momentum"] == 0.1 else repr(a["momentum"])) + ")"


def _inplace(cls, *args):
    return lambda n, ins, inplace: f"nn.{cls}(" + _args(*[a(n) for a in args],
                                                        inplace="True" if inplace else None) + ")"


def _adaptive(n, ins, inplace):
    h, w = n.attrs["size"]
    return f"nn.AdaptiveAvgPool2d({h if h == w else (h, w)})"


def _lrn(n, ins, inplace):
    a = n.attrs
    return f"nn.LocalResponseNorm({a['size']}, alpha={a['alpha']!r}, beta={a['beta']!r}, k={a['k']!r})"


def _call_module(ref, args):
    return f"{ref}({args[0]})"


# op -> (constructor or None, call(ref, arg sources) -> expression)
OPS = {
    "CONV": (_conv, _call_module),
    "MAXPOOL": (_pool("MaxPool2d"), _call_module),
    "AVGPOOL": (_pool("AvgPool2d"), _call_module),
    "GAP": (lambda n, ins, inplace: "nn.AdaptiveAvgPool2d(1)", _call_module),
    "ADAPTIVEAVGPOOL": (_adaptive, _call_module),
    "FC": (lambda n, ins, inplace: "nn.Linear(" + _args(ins[0][0], n.attrs["units"],
                                                        bias=None if n.attrs["bias"] else "False") + ")",
           _call_module),
    "FLATTEN": (None, lambda ref, args: f"torch.flatten({args[0]}, 1)"),
    "RELU": (_inplace("ReLU"), _call_module),
    "RELU6": (_inplace("ReLU6"), _call_module),
    "LEAKYRELU": (_inplace("LeakyReLU", lambda n: repr(n.attrs["slope"])), _call_module),
    "SIGMOID": (lambda n, ins, inplace: "nn.Sigmoid()", _call_module),
    "TANH": (lambda n, ins, inplace: "nn.Tanh()", _call_module),
    "SOFTPLUS": (lambda n, ins, inplace: "nn.Softplus()", _call_module),
    "SOFTMAX": (lambda n, ins, inplace: "nn.Softmax(dim=1)", _call_module),
    "BN": (_bn, _call_module),
    "LRN": (_lrn, _call_module),
    "DROPOUT": (lambda n, ins, inplace: f"nn.Dropout({n.attrs['p']!r})", _call_module),
    "ID": (None, lambda ref, args: args[0]),
    "CONCAT": (None, lambda ref, args: f"torch.cat([{', '.join(args)}], 1)"),
    "ADD": (None, lambda ref, args: " + ".join(args)),  # the in-place case is written by _forward
}


# ---- the module tree --------------------------------------------------------------------------------
class Part:
    """A dotted prefix of layer names: the root, a block instance or a labelled group."""

    def __init__(self, path):
        self.path, self.children, self.nodes = path, {}, []   # children: name -> Part or Node


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


def _callable(part, graph, readers):
    """One outside input and one outside output (its last layer): it can be a class with forward(x)."""
    inside = {n.name for n in part.nodes}
    outside_in = {s for n in part.nodes for s in n.inputs if s not in inside}
    used_out = [n.name for n in part.nodes if n.name == graph.output or any(r not in inside for r in readers[n.name])]
    return len(outside_in) == 1 and used_out == [part.nodes[-1].name]


def _ref(owner: str, name: str) -> str:
    import torch.nn as nn
    if name.isidentifier() and not keyword.iskeyword(name) and not hasattr(nn.Module, name):
        return f"{owner}.{name}"
    return f'{owner}._modules["{name}"]'


def _camel(text: str) -> str:
    base = re.sub(r"_?\d+$", "", text) or text
    name = "".join(w[:1].upper() + w[1:] for w in re.split(r"[^0-9A-Za-z]+", base) if w)
    return name if name and name[0].isalpha() else "Part" + name


def _identifier(text: str) -> str:
    name = re.sub(r"\W", "_", text)
    return name if name.isidentifier() and not keyword.iskeyword(name) else "a_" + name


def _top_name(file_name: str) -> str:
    words = [w for w in re.split(r"[^0-9A-Za-z]+", file_name) if w]
    name = "".join(w[:1].upper() + w[1:] for w in words)
    return name if name and name[0].isalpha() else "Net" + name


ROLES = {"Conv2d": ("cin", "cout", "k"), "Linear": ("fin", "fout"), "BatchNorm2d": ("c",), "BatchNorm1d": ("c",),
         "MaxPool2d": ("k",), "AvgPool2d": ("k",), "AdaptiveAvgPool2d": ("size",), "Dropout": ("p",),
         "LeakyReLU": ("slope",), "LocalResponseNorm": ("size",)}
# constructor role -> the spec argument it comes from (a role not here comes from the input's shape)
SPEC_ARG = {"cout": "filters", "fout": "units", "k": "kernel", "stride": "s", "padding": "p", "dilation": "d",
            "groups": "groups", "p": "p", "slope": "slope", "size": "size"}
CHANNEL_ROLES = {"cin", "cout", "c", "fin", "fout", "channels"}


def _is_channels(role):
    return role in CHANNEL_ROLES or re.fullmatch(r"width\d*", role) is not None


def _own_frame(part):
    """The innermost frame that gives the part its path: its block instance or its label."""
    frames = [f for f in part.nodes[0].frames if f.path == part.path]
    return frames[-1] if frames else None


def _var_arg(call, param_of, want):
    """The variable that `call` passes as its parameter `want` (param_of(arg, index) says which one
    an argument binds), or None when it passes an expression or nothing."""
    for i, arg in enumerate(call.args):
        p = param_of(arg, i)
        if (p if isinstance(p, str) or p is None else p.name) == want:
            return arg.value.name if type(arg.value).__name__ == "Var" else None
    return None


def _calls(tree) -> dict:
    """{(line, col): Call} for every call in an AST subtree."""
    out = {}
    stack = [tree]
    while stack:
        t = stack.pop()
        if isinstance(t, (tuple, list)):
            stack.extend(t)
        elif hasattr(t, "__dataclass_fields__"):
            if type(t).__name__ == "Call":
                out[(t.span.line, t.span.col)] = t
            stack.extend(getattr(t, f) for f in t.__dataclass_fields__ if f != "span")
    return out


_TOKEN = re.compile(r"\d+(?:\.\d*)?(?:e[-+]?\d+)?|[A-Za-z_][\w.]*|\S")


def _pieces(src: str) -> list:
    """Split constructor source into text and ("num", role, text) pieces: the numbers a class may take."""
    out, stack, kw, prev = [], [], None, None
    for tok in _TOKEN.findall(src):
        if tok[0].isdigit():
            top = stack[-1] if stack else ("call", "", [0])
            if top[0] == "tuple":
                role = f"{top[1]}_{'hw'[min(top[2][0], 1)]}"
            else:
                roles = ROLES.get(top[1].rsplit(".", 1)[-1], ())
                role = kw or (roles[top[2][0]] if top[2][0] < len(roles) else f"arg{top[2][0]}")
            out.append(("num", role, tok))
        else:
            if tok == "(":
                if prev and (prev[0].isalpha() or prev[0] == "_"):
                    stack.append(("call", prev, [0]))
                else:
                    parent = stack[-1] if stack else ("call", "", [0])
                    roles = ROLES.get(parent[1].rsplit(".", 1)[-1], ())
                    stack.append(("tuple", kw or (roles[parent[2][0]] if parent[2][0] < len(roles) else "t"), [0]))
                kw = None
            elif tok == ")":
                stack.pop() if stack else None
            elif tok == "," and stack:
                stack[-1][2][0] += 1
                kw = None
            elif tok == "=" and prev and prev[0].isalpha():
                kw = prev
            out.append(tok + (" " if tok == "," else ""))
        prev = tok
    return out


class _Inst:
    """One callable part: the template of its class (pieces, forward) and where it sits."""

    def __init__(self, part, pieces, forward, children):
        self.part, self.pieces, self.forward, self.children = part, pieces, forward, children
        self.key = None
        self.group = None
        self.args = []          # its values for its class's arguments


class _Group:
    def __init__(self, key, height):
        self.key, self.height, self.insts = key, height, []
        self.name, self.arg_names, self.render_slot = None, [], []


class _Writer:
    def __init__(self, net, class_name):
        self.net, self.graph = net, net.graph
        self.readers = self.graph.consumers()
        self.inplace, self.he = inplace_nodes(self.graph), he_convs(self.graph)
        self.groups: dict[str, _Group] = {}
        self.top_name = class_name or _top_name(net.name)

    # -- phase 1: a template per callable part ------------------------------------------------------
    def describe(self, part, top=False) -> _Inst:
        pieces, items, children = [], [], []
        self._init(part, "self", pieces, items, children)
        inst = _Inst(part, pieces, self._forward(part, items, top), children)
        sig = [p if isinstance(p, str) else ("#" if p[0] == "num" else "C" + p[1].key) for p in pieces]
        inst.key = "\x00".join(sig) + "\x01" + "\n".join(inst.forward) + ("\x02top" if top else "")
        height = 1 + max((c.group.height for c in children), default=-1)
        group = self.groups.setdefault(inst.key, _Group(inst.key, height))
        group.insts.append(inst)
        inst.group = group
        return inst

    def _init(self, part, owner, pieces, items, children):
        """Constructor pieces for `part`'s layers (registered in order); forward items in order."""
        for name, child in part.children.items():
            ref = _ref(owner, name)
            if isinstance(child, Part):
                if _callable(child, self.graph, self.readers):
                    inst = self.describe(child)
                    children.append(inst)
                    pieces += [f"        {ref} = ", ("child", inst, name), "\n"]
                    items.append(("part", child, ref))
                else:
                    pieces.append(f"        {ref} = nn.Module()\n")
                    self._init(child, ref, pieces, items, children)
            else:
                make = OPS[child.op][0]
                if make is not None:
                    ins = [self.graph.shape_of(s) for s in child.inputs]
                    src = make(child, ins, child.name in self.inplace)
                    if child.name in self.he:
                        src = f"he({src})"
                    pieces += [f"        {ref} = "] + [(*p, name, child) if isinstance(p, tuple) else p
                                                       for p in _pieces(src)] + ["\n"]
                items.append(("node", child, ref))

    # -- phase 2: classes, from the innermost out; numbers that differ become arguments -------------
    def finish(self):
        taken_names = {self.top_name}
        bases: dict[str, int] = {}
        for group in sorted(self.groups.values(), key=lambda g: g.height):
            slots = [self._slots(inst) for inst in group.insts]   # per instance [(role, local, value, origin)]
            for inst, own in zip(group.insts, slots):
                inst.slots = own
            width = len(slots[0])
            columns = [tuple(s[i][2] for s in slots) for i in range(width)]
            arg_of = self._arg_names(group, slots[0], columns)
            names = [(name, col) for col, name in arg_of.items()]
            group.render_slot = [arg_of.get(col, col[0]) for col in columns]
            group.arg_names = [n for n, _ in names]
            group.arg_first = {arg_of[col]: columns.index(col) for col in arg_of}
            for j, inst in enumerate(group.insts):
                inst.args = [col[j] for _, col in names]
            if group.key.endswith("\x02top"):
                group.name = self.top_name
                continue
            base = self._class_base(group)
            count = bases.get(base, 0) + 1
            name = base if count == 1 else f"{base}{count}"
            while name in taken_names:
                count += 1
                name = f"{base}{count}"
            bases[base] = count
            taken_names.add(name)
            group.name = name

    def _arg_names(self, group, slots, columns) -> dict:
        """{column of differing values: argument name}, in order of first use. A name says what the
        value is: the block's own parameter where the spec passes it unchanged (`s` in
        `CONV(4 * c, 1, s=s)`), else for a channel count `cin`/`cout`/`channels` (the part's input,
        output or both) or `width` (inside), else the constructor's role (`k`, `stride`)."""
        ends = self._end_channels(group)
        block = self._block_of(group)
        chosen = {}
        for i, col in enumerate(columns):
            if len(set(col)) == 1 or col in chosen:
                continue
            at = [j for j, c in enumerate(columns) if c == col]
            name = block and next((v for j in at for v in [self._param_at(slots[j][3], block)] if v), None)
            if name is None and all(_is_channels(slots[j][0]) for j in at):
                name = {(True, True): "channels", (True, False): "cin", (False, True): "cout"}.get(
                    (col == ends[0], col == ends[1]), "width")
            chosen[col] = name or slots[i][0], slots[i][1]
        out, used = {}, set(RESERVED)
        widths = sum(1 for name, _ in chosen.values() if name == "width")
        k = 0
        for col, (name, local) in chosen.items():
            if name == "width" and widths > 1:
                k += 1
                name = f"width{k}"
            name = _identifier(name)
            if name in used:
                name = _identifier(f"{local}_{name}")
            base, n = name, 2
            while name in used:
                name, n = f"{base}_{n}", n + 1
            used.add(name)
            out[col] = name
        return out

    def _end_channels(self, group):
        """Per instance, as source text: the channels (features) of the part's input and of its output."""
        cin, cout = [], []
        for inst in group.insts:
            inside = {n.name for n in inst.part.nodes}
            src = next(s for n in inst.part.nodes for s in n.inputs if s not in inside)
            cin.append(str(self.graph.shape_of(src)[-1]))
            cout.append(str(inst.part.nodes[-1].out_shape[-1]))
        return tuple(cin), tuple(cout)

    @staticmethod
    def _block_of(group):
        """The part of the group's first instance when all instances are instances of one block."""
        frames = [_own_frame(inst.part) for inst in group.insts]
        if all(f is not None and f.kind == "block" and f.name == frames[0].name for f in frames):
            return group.insts[0].part
        return None

    def _def_of(self, name, part):
        """The `def NAME` whose body holds one of the part's layers or the call of a block inside it
        (searched in the sources that their spans name)."""
        spans = {}
        for n in part.nodes:
            inner = [f.span for f in n.frames if f.kind == "block" and f.path.startswith(part.path + ".")]
            for span in [n.span, *inner]:
                if span is not None:
                    spans.setdefault(id(span.source), (span.source, set()))[1].add((span.line, span.col))
        for source, positions in spans.values():
            for d in self._defs(source):
                if d.name == name and not positions.isdisjoint(_calls(d.body)):
                    return d
        return None

    def _defs(self, source):
        cache = self.__dict__.setdefault("_def_cache", {})
        if id(source) not in cache:
            from ..lang.syntax import parse_text
            try:  # the text parsed once already; a second parse cannot fail, but a docstring is not worth a crash
                program = parse_text(source.text, source.path)
                cache[id(source)] = (source, [st for st in program.statements if type(st).__name__ == "Def"])
            except Exception:
                cache[id(source)] = (source, [])
        return cache[id(source)][1]

    def _param_at(self, origin, part):
        """The parameter of the part's block that a number is, when the spec passes it unchanged
        all the way down: `s` for `CONV(4 * c, 1, s=s)` in the block's body, `c3` for
        `basic(c3, 3)` in it when `basic`'s body has `CONV(c, ...)`; None otherwise."""
        node, role = origin
        attr = SPEC_ARG.get(role)
        if attr is None or node.span is None:
            return None
        frames = [f for f in node.frames if f.kind == "block" and f.span is not None and
                  (f.path == part.path or f.path.startswith(part.path + "."))]
        if not frames or frames[0].path != part.path:
            return None
        d = self._def_at(frames[-1].name, node.span)
        call = d and _calls(d.body).get((node.span.line, node.span.col))
        if call is None:
            return None
        kind = node.kind
        name = _var_arg(call, lambda arg, i: (kind.arg(arg.name) if arg.name else
                                              (kind.args[i] if i < len(kind.args) else None)), attr)
        for inner, outer in zip(reversed(frames), reversed(frames[:-1])):  # out through each block call
            if name not in [p.name for p in d.params]:
                return None
            params = [p.name for p in d.params]
            d = self._def_at(outer.name, inner.span)
            call = d and _calls(d.body).get((inner.span.line, inner.span.col))
            if call is None:
                return None
            name = _var_arg(call, lambda arg, i: arg.name or (params[i] if i < len(params) else None), name)
        return name if d is not None and name in [p.name for p in d.params] else None

    def _def_at(self, name, span):
        """The `def NAME` whose body has a call at `span`."""
        for d in self._defs(span.source):
            if d.name == name and (span.line, span.col) in _calls(d.body):
                return d
        return None

    @staticmethod
    def _class_base(group):
        """The block's name (`Bottleneck`), else the label (`Features`; `Stage` for stage1, stage2, ...)."""
        part = group.insts[0].part
        frames = [f for f in part.nodes[0].frames if f.path == part.path]
        if frames and frames[-1].kind == "block":
            return _camel(frames[-1].name)
        local = part.path.rsplit(".", 1)[-1]
        return _camel(local) if len(group.insts) > 1 else _top_name(local)

    @staticmethod
    def _slots(inst):
        """[(role, local name, value, origin)]: origin is the (layer, constructor role) whose number
        the slot is, through the arguments of nested classes (children are done first)."""
        out = []
        for p in inst.pieces:
            if isinstance(p, tuple) and p[0] == "num":
                out.append((p[1], p[3], p[2], (p[4], p[1])))
            elif isinstance(p, tuple):
                child, local = p[1], p[2]
                out += [(n, local, v, child.slots[child.group.arg_first[n]][3])
                        for n, v in zip(child.group.arg_names, child.args)]
        return out

    def render(self, group) -> str:
        inst, slot, lines = group.insts[0], iter(group.render_slot), []
        for p in inst.pieces:
            if isinstance(p, str):
                lines.append(p)
            elif p[0] == "num":
                lines.append(next(slot))
            else:
                child = p[1].group
                lines.append(f"{child.name}({', '.join(next(slot) for _ in child.arg_names)})")
        params = "".join(f", {a}" for a in group.arg_names)
        head = [f"    def __init__(self{params}):", "        super().__init__()"]
        return "\n".join(head) + "\n" + "".join(lines) + "\n" + "\n".join(inst.forward)

    def _doc(self, group):
        part = group.insts[0].part
        f = _own_frame(part)
        what = (f"The `{f.name}` block" if f and f.kind == "block" else
                f"The group labelled `{f.name}`" if f else f"`{part.path}`")
        n = len(group.insts)
        where = f"`{part.path}`" + (f" and {n - 1} more" if n > 1 else "")
        text = f"{what}{self._where_defined(f, part)}: {where}."
        return "\n    ".join(textwrap.wrap(text, 92)) + ("\n    " if len(text) > 92 else "")

    def _where_defined(self, frame, part):
        """` (spec line 15)`: a block's `def` line (a frame's span is where the block is called), a
        label's own line; the file is named when it is not the spec's (an included file)."""
        if frame is None or frame.span is None:
            return ""
        span = frame.span
        if frame.kind == "block":
            d = self._def_of(frame.name, part)
            if d is None:
                return f" (called on spec line {span.line})"
            span = d.span
        if span.source.path != self.net.path and not span.source.path.startswith("<"):
            return f" ({os.path.basename(span.source.path)} line {span.line})"
        return f" (spec line {span.line})"

    # -- forward: straight-line code, `x` reused along chains -------------------------------------
    def _forward(self, part, items, top):
        produced = [it[1].nodes[-1].name if it[0] == "part" else it[1].name for it in items]
        inputs = [self._inputs(it) for it in items]
        position = {t: i for i, t in enumerate(produced)}
        last_read = {}
        for i, ins in enumerate(inputs):
            for s in ins:
                last_read[s] = i
        ret = produced[-1]
        outer_in = next(s for ins in inputs for s in ins if s not in position)
        var = {outer_in: "x"}
        holder = {"x": outer_in}
        lines = ["    def forward(self, x):"]
        taken = set(RESERVED)
        last_line = None
        for i, (it, ins, out) in enumerate(zip(items, inputs, produced)):
            node = it[1] if it[0] == "node" else None
            span = node.span if node else self._frame_span(it[1])
            if span is not None and span.line != last_line and not (node and node.op in JOINS):
                lines.append(f"        # {self._spec_line(span)}")
                last_line = span.line
            args = [var[s] for s in ins]
            if node is not None and node.op == "ADD" and node.name in self.inplace:
                k = self.inplace[node.name]
                acc, rest = args[k], args[:k] + args[k + 1:]
                lines.append(f"        {acc} += {' + '.join(rest)}" if len(rest) == 1 else
                             "\n".join(f"        {acc} += {r}" for r in rest))
                var[out] = acc
                holder[acc] = out
                continue
            if node is not None and node.op == "ADD":
                expr = " + ".join(args)
            elif node is not None:
                expr = OPS[node.op][1](it[2], args)
            else:
                expr = f"{it[2]}({args[0]})"
            readers = [j for j, r in enumerate(inputs) if out in r]
            name = None
            if len(readers) == 1 or (out == ret and not readers):  # read once: reuse x (or out)
                name = next((v for v in ("x", "out") if v not in holder or
                             (last_read.get(holder[v], -1) <= i and holder[v] != ret)), None)
            name = name or self._fresh(out if node is not None else it[1].path, taken)
            var[out] = name
            holder[name] = out
            lines.append(f"        {name} = {expr}")
        lines.append(f"        return {var[ret]}")
        return lines

    @staticmethod
    def _frame_span(part):
        frames = [f for f in part.nodes[0].frames if f.path == part.path and f.span is not None]
        return frames[-1].span if frames else part.nodes[0].span

    def _inputs(self, item):
        if item[0] == "node":
            return list(item[1].inputs)
        inside = {n.name for n in item[1].nodes}
        return [next(s for n in item[1].nodes for s in n.inputs if s not in inside)]

    def _fresh(self, tensor, taken):
        base = re.sub(r"\W", "_", tensor.rsplit(".", 1)[-1])
        if not base.isidentifier() or keyword.iskeyword(base):
            base = "t_" + base
        name, k = base, 2
        while name in taken:
            name, k = f"{base}_{k}", k + 1
        taken.add(name)
        return name

    def _spec_line(self, span):
        text = span.source.line(span.line).strip()
        text = text if len(text) <= 80 else text[:77] + "..."
        if span.source.path != self.net.path and not span.source.path.startswith("<"):
            return f"{os.path.basename(span.source.path)} line {span.line}: {text}"  # an included file
        return f"line {span.line}: {text}"

    # -- the file -------------------------------------------------------------------------------------
    def source(self) -> str:
        g = self.graph
        self.describe(_tree(g), top=True)
        self.finish()
        shape = g.input_shape
        in_doc = f"(N, {shape[2]}, {shape[0]}, {shape[1]})" if len(shape) == 3 else f"(N, {shape[0]})"
        spec = os.path.basename(self.net.path) if not self.net.path.startswith("<") else "a cnndsl spec"
        out = [f'"""{self.top_name}: PyTorch source compiled by cnndsl from {spec}.',
               "",
               f"Input: a float tensor of shape {in_doc} (NCHW). Module paths are the spec's layer",
               "names, so state_dict keys read like the spec (e.g. `conv1.weight`). Needs only torch.",
               "",
               f"    model = {self.top_name}()",
               f"    y = model(torch.randn({in_doc.replace('N', '1')}))",
               '"""',
               "import torch",
               "from torch import nn",
               "",
               ""]
        if self.he:
            out += ["def he(conv):",
                    '    """He initialisation (fan_out, ReLU) for a convolution that feeds a ReLU."""',
                    '    nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")',
                    "    if conv.bias is not None:",
                    "        nn.init.zeros_(conv.bias)",
                    "    return conv",
                    "", ""]
        groups = sorted(self.groups.values(), key=lambda gr: gr.height)
        for group in groups:
            if group.name == self.top_name:
                continue
            out += [f"class {group.name}(nn.Module):", f'    """{self._doc(group)}"""', "", self.render(group), "", ""]
        top = next(gr for gr in groups if gr.name == self.top_name)
        out += [f"class {self.top_name}(nn.Module):",
                f'    """The network of {spec}; input {in_doc}."""', "", self.render(top), ""]
        return "\n".join(out)


def generate(net, class_name=None) -> str:
    """Standalone PyTorch source for `net` (a cnndsl.Net); `class_name` defaults to the file's name."""
    if class_name is not None and (not class_name.isidentifier() or keyword.iskeyword(class_name)):
        from ..errors import CnnError
        raise CnnError(f"--class-name {class_name!r} is not a Python identifier", usage=True)
    return _Writer(net, class_name).source()
