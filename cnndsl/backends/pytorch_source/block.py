"""One Python class per `def`, its structure read from the def's body and checked against every instance.

The writer walks the def's body (the parsed program's: layers, repeats, optionals, branches) once
for all its instances at a time (a `Ctx` each: where the instance sits in the IR, its arguments).
At each layer it finds the IR node that the call built (its `Site`'s span and the frames), and
writes each constructor argument as the expression the IR says the spec wrote (`Site.args`,
`Frame.written`, `Param.text`) in Python (`4 * c`), kept only when it gives every instance's value. Otherwise the argument is a
literal when all instances agree, else a per-instance constructor argument of the class. A
repeat whose body cannot be written once (names that do not follow `name{i + k}`) is unrolled
when its count is fixed; anything else makes the def fall back to plain holders (`Fail`).
"""
from __future__ import annotations

import keyword
import re
from dataclasses import dataclass, field, replace

import ast

from ...kinds import CALLABLE
from ...lang import astnodes as A
from ...lang.printer import format_value
from .expr import UNKNOWN, free_names, literal, named, num, parse, plus, run, same, substitute, to_python

LOOP = "<loop>"          # spec names of __init__'s own variables (the channels along a loop)
CIN = "<cin>"           # the spec name of a block's input channels (no spec text can spell it)
RESERVED = {"self", "nn", "torch", "he", "super", "cin", "range", "getattr"}  # names __init__ uses
INLINE = {"FLATTEN", "ID", "ADD", "CONCAT"}  # written in forward, no module (other joins are modules)


class Fail(Exception):
    """The def cannot be one class for all its instances (the reason is the message)."""


@dataclass(frozen=True)
class Ctx:
    """One instance (or one repeat iteration of it) while the body is walked."""
    frames: tuple           # the IR frames around the current position
    inst: str               # the block instance's path: per-instance arguments are keyed by it
    owner: str              # the IR path of the module `St.owner` refers to
    env: dict               # Python names -> values (to check translations)
    spec: dict              # spec names -> values (the def's arguments and the lets)
    x: str | None           # the IR tensor flowing in, when known


@dataclass(frozen=True)
class St:
    src: str                # the variable read next in forward
    target: str             # the variable the chain writes
    ch: object              # the channels flowing in, as an expression of spec names (expr.parse; None: unknown)
    owner: str              # Python reference of the module registering layers ("self")


def indent(lines, n=1):
    return ["    " * n + line for line in lines]


def wrap(line, width=100):
    """A long constructor call broken after its `(` at the commas between its arguments."""
    m = re.search(r"(nn\.\w+|[A-Z]\w*)\(", line)
    if len(line) <= width or m is None:
        return [line]
    lead, rest = line[:m.end()], line[m.end():]
    pad = " " * (len(line) - len(line.lstrip()) + 4)
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(rest):
        depth += (ch in "([") - (ch in ")]")
        if ch == "," and depth == 0:
            parts.append(rest[start:i + 1].strip())
            start = i + 1
    parts.append(rest[start:].strip())
    out, cur = [lead], pad
    for part in parts:
        if len(cur) + len(part) + 1 > width and cur.strip():
            out.append(cur.rstrip())
            cur = pad
        cur += part + " "
    return out + [cur.rstrip()]


def camel(name):
    out = "".join(w[:1].upper() + w[1:] for w in re.split(r"[^0-9A-Za-z]+", name) if w)
    return out if out and out[0].isalpha() else "Block" + out


def safe(name, taken=RESERVED):
    return name + "_" if keyword.iskeyword(name) or name in taken else name


@dataclass
class ClassCode:
    """A def's class: its name, parameters (Python name, default source), and code."""
    name: str
    d: A.Def
    spec_params: tuple = ()                         # the def's ir.Params (names, defaults as written and their values)
    uses_cin: bool = False
    params: list = field(default_factory=list)      # [(spec name, Python name, default source or None)]
    extras: list = field(default_factory=list)      # [(Python name, {instance path: value}, why)]
    init: list = field(default_factory=list)
    forward: list = field(default_factory=list)
    out_ch: object = None                           # output channels as a spec expression
    count: int = 0                                  # instances

    def default_value(self, spec_name, consts):
        src = next(p[2] for p in self.params if p[0] == spec_name)
        return UNKNOWN if src is None else run(src, dict(consts))


def drop_unread(lines, names):
    """`lines` less the assignments to those of `names` that no line reads (the channels after an
    optional, tracked in case a later layer needs them); a block left empty gets a `pass`."""
    def assigns(line, name):
        return re.match(rf"\s*{name} = ", line) is not None
    unread = {n for n in names if not any(re.search(rf"\b{n}\b", line.split(" = ", 1)[1] if assigns(line, n) else line)
                                          for line in lines)}
    kept = [line for line in lines if not any(assigns(line, n) for n in unread)]
    out = []
    for i, line in enumerate(kept):
        out.append(line)
        depth = len(line) - len(line.lstrip())
        following = kept[i + 1] if i + 1 < len(kept) else ""
        if line.endswith(":") and len(following) - len(following.lstrip()) <= depth:
            out.append(" " * depth + "    pass")
    return out


def class_ref(cls: str) -> str:
    """How generated code names a module class: `nn.Conv2d` as is, cnndsl's own (`cnndsl.LayerNorm2d`,
    from backends/torch_modules.py) by its bare name: the generated file defines it."""
    return cls[len("cnndsl."):] if cls.startswith("cnndsl.") else cls


class ClassWriter:
    def __init__(self, gen, d, instances):
        self.gen, self.d, self.g = gen, d, gen.graph
        # the input channels' argument: "cin" is reserved, so a parameter named cin is cin_ (safe)
        self.cin = "cin"
        self.names = {name: py for name, (py, _) in gen.consts.items()}
        self.names.update({p.name: safe(p.name) for p in d.params})
        self.names[CIN] = self.cin
        self.code = ClassCode(gen.class_name(d), d, instances[0][-1].params, count=len(instances))
        self.taken = set(self.names.values()) | RESERVED
        self.locals = {"self", "x", "torch", "nn", "he", "getattr", "range"}  # forward's
        self.loop_vars, self.last_line = [], None
        self.loop_scope = {}  # loop variable -> (the owner its body registers in,)
        self.channel_vars = set()  # __init__'s channel variables: kept in case a later layer reads them
        self.instances = instances

    # ---- the class ------------------------------------------------------------------------
    def write(self) -> ClassCode:
        code, consts = self.code, dict(self.gen.consts.values())
        for p in code.spec_params:
            default = None
            if p.text is not None:  # the default as written (a `let` read by name), else its value
                default = to_python(parse(p.text), {k: v[0] for k, v in self.gen.consts.items()}) or literal(p.value)
            code.params.append((p.name, self.names[p.name], default))
        ctxs = []
        for frames in self.instances:
            f = frames[-1]
            env = {self.names[k]: v for k, v in f.args}
            env.update(consts)
            env[self.cin] = self.g.shape_of(self.gen.block_input[f.path])[-1]
            ctxs.append(Ctx(frames, f.path, f.path, env, {**self.gen.globals, **dict(f.args)},
                            self.gen.block_input[f.path]))
        init, fwd, st, ctxs = self.walk(self.d.body, ctxs, St("x", "x", named(CIN), "self"))
        code.init, code.forward = drop_unread(init, self.channel_vars), fwd + [f"return {st.src}"]
        code.out_ch = None if st.ch is None or any(v.startswith(LOOP) for v in free_names(st.ch)) else st.ch
        code.uses_cin = any(re.search(rf"\b{self.cin}\b", line) for line in init)
        return code

    # ---- the walk: (init lines, forward lines, state, contexts) ---------------------------------
    def walk(self, e, ctxs, st, label=None):
        if not ctxs:
            return [], [], st, ctxs
        if isinstance(e, A.Seq):
            init, fwd = [], []
            for item in e.items:
                i, f, st, ctxs = self.walk(item, ctxs, st)
                init, fwd = init + i, fwd + f
            return init, fwd, st, ctxs
        if isinstance(e, A.Call):
            return (self.layer if e.name in CALLABLE else self.block_call)(e, ctxs, st)
        if isinstance(e, A.Label):
            if isinstance(e.body, (A.Call, A.Optional)):
                return self.walk(e.body, ctxs, st, label=e.name)
            return self.holder(e.body, e.span, ctxs, st)
        kinds = {A.Repeat: self.repeat, A.Optional: self.optional, A.Branches: self.branches}
        if type(e) not in kinds:
            raise Fail(f"cannot write {type(e).__name__}")
        return kinds[type(e)](e, ctxs, st, label) if type(e) is A.Optional else kinds[type(e)](e, ctxs, st)

    def comment(self, span):
        if span is None or span.line == self.last_line:
            return []
        self.last_line = span.line
        return [f"# {self.gen.spec_line(span)}"]

    # ---- layers -------------------------------------------------------------------------------
    def layer(self, call, ctxs, st):
        kind = CALLABLE[call.name]
        if kind.name == "ID":
            return [], [], st, ctxs
        nodes = [self.gen.node_at(call, c.frames) for c in ctxs]
        fwd = self.comment(call.span)
        flat = [self.g[n.inputs[0]].implicit if n.inputs[0] in self.g else False for n in nodes]
        if any(flat) != all(flat):
            raise Fail("an implicit flatten in some instances only")
        for c, n in zip(ctxs, nodes):
            want = self.g[n.inputs[0]].inputs[0] if flat[0] else n.inputs[0]
            if c.x is not None and want != c.x:
                raise Fail(f"layer {n.name} reads {want}, not {c.x}")
        ch = st.ch
        if flat[0] or kind.name == "FLATTEN":
            fwd.append(f"{st.target} = torch.flatten({st.src}, 1)")
            st, ch = replace(st, src=st.target), None
        ctxs = [replace(c, x=n.name) for c, n in zip(ctxs, nodes)]
        if kind.name == "FLATTEN":
            return [], fwd, replace(st, ch=None), ctxs
        ref, reg = self.module_ref(st.owner, [n.name for n in nodes], ctxs)
        ctor, out_ch = self.constructor(kind, call, nodes, ctxs, ch)
        he = {n.name in self.gen.he for n in nodes}
        if len(he) > 1:
            raise Fail("He initialisation differs between instances")
        fwd.append(f"{st.target} = {ref}({st.src})")
        init = [reg(f"he({ctor})" if he.pop() else ctor)]
        return init, fwd, replace(st, src=st.target, ch=out_ch), ctxs

    def constructor(self, kind, call, nodes, ctxs, ch):
        mods = [kind.torch_module(n.attrs, [self.g.shape_of(s) for s in n.inputs], n.name in self.gen.inplace)
                for n in nodes]
        if len({m.cls for m in mods}) > 1 or len({tuple(k for k, _ in m.args) for m in mods}) > 1:
            raise Fail(f"{call.name} is built differently in different instances")
        spec, written = dict(mods[0].spec), self.written(kind, nodes[0].site)
        local = nodes[0].name.rsplit(".", 1)[-1]
        kw_names = [k for m in mods for k, _ in m.kwargs]
        kw_names += [k for k, a in spec.items() if a in written and k not in {p for p, _ in mods[0].args}]
        parts, out_ch = [], None
        order = list(spec) + kw_names
        for name in dict.fromkeys([k for k, _ in mods[0].args] + sorted(set(kw_names), key=order.index)):
            values = [self.torch_value(m, n, name, spec) for m, n in zip(mods, nodes)]
            attr = spec.get(name)
            ast = ch if attr == "@in" else written.get(attr)
            src = self.hole(ast, values, ctxs, f"{local}_{name}")
            parts.append(src if name in dict(mods[0].args) else f"{name}={src}")
            if attr not in (None, "@in") and all(same(v, n.out_shape[-1]) for v, n in zip(values, nodes)):
                out_ch = written.get(attr) or (num(values[0]) if src == literal(values[0]) else None)
        if out_ch is None and all(n.out_shape[-1] == self.g.shape_of(n.inputs[0])[-1] for n in nodes):
            out_ch = ch
        return f"{class_ref(mods[0].cls)}({', '.join(parts)})", out_ch

    @staticmethod
    def torch_value(module, node, name, spec):
        given = dict(module.args) | dict(module.kwargs)
        if name in given:
            return given[name]
        if spec.get(name) in node.attrs:
            return node.attrs[spec[name]]
        if name == "inplace":
            return False
        raise Fail(f"{node.name}: argument {name} is given in some instances only")

    @staticmethod
    def written(kind, site):
        """{kind argument: expression} as the call wrote them (the IR's Site)."""
        out = {}
        for i, (name, text) in enumerate(site.args):
            schema = kind.arg(name) if name else (kind.args[i] if i < len(kind.args) else None)
            if schema is not None:
                out[schema.name] = parse(text)
        return out

    # ---- holes: an expression, a literal, or a per-instance argument -----------------------------
    def hole(self, e, values, ctxs, hint):
        """An argument: the expression `e` the spec wrote, in Python, where it gives every instance's
        value; else a literal (a word such as `bilinear` is no name here, so always one); else a
        per-instance argument of the class."""
        if e is not None:
            for division in ("//", "/"):  # the spec's `/`: whole where it divides, else a fraction
                src = to_python(e, self.names, division)
                if src is not None and all(same(run(src, c.env), v) for c, v in zip(ctxs, values)):
                    return src
        if all(same(v, values[0]) for v in values):
            return literal(values[0])
        per = {}
        for c, v in zip(ctxs, values):
            if c.inst in per and not same(per[c.inst], v):
                raise Fail(f"{hint} changes within one instance")
            per[c.inst] = v
        name = self.fresh(re.sub(r"\W", "_", hint))
        self.code.extras.append((name, per, hint))
        for c in ctxs:
            c.env[name] = per[c.inst]
        return name

    def fresh(self, base):
        name, n = safe(base, set()), 2
        while name in self.taken:
            name, n = f"{base}{n}", n + 1
        self.taken.add(name)
        return name

    def local(self, base):
        """A fresh variable of forward."""
        name, n = safe(base, set()), 2
        while name in self.locals:
            name, n = f"{base}{n}", n + 1
        self.locals.add(name)
        return name

    def module_ref(self, owner, paths, ctxs):
        """(reference for forward, registration(source) -> line) of the module at `paths`."""
        names = [p[len(c.owner) + 1:] if c.owner else p for p, c in zip(paths, ctxs)]
        # one name in a loop's own scope is a loop run once everywhere: its names still follow the loop
        in_loop = any(self.loop_scope[v][0] == owner for v in self.loop_vars)
        if all(n == names[0] for n in names) and not in_loop:
            name = names[0]
            if name.isidentifier() and not keyword.iskeyword(name) and name not in self.gen.module_attrs:
                return f"{owner}.{name}", lambda src: f"{owner}.{name} = {src}"
            return f'{owner}._modules["{name}"]', lambda src: f'{owner}._modules["{name}"] = {src}'
        pattern = self.name_pattern(names, ctxs)
        return f"getattr({owner}, {pattern})", lambda src: f"{owner}.add_module({pattern}, {src})"

    def name_pattern(self, names, ctxs):
        """`f"bottleneck{i + 2}"`: names numbered along the loops (fitted, then checked)."""
        parts = [re.fullmatch(r"(.*?[^0-9_]|)(\d+)", n) for n in names]
        if not all(parts) or len({p.group(1) for p in parts}) > 1 or not self.loop_vars:
            raise Fail(f"names {names[0]}, {names[1]}, ... do not follow the repeats")
        points = [({v: c.env[v] for v in self.loop_vars}, int(p.group(2))) for p, c in zip(parts, ctxs)]
        base = next((n for at, n in points if not any(at.values())), None)
        steps = {}
        for v in self.loop_vars:
            steps[v] = next((n - base for at, n in points if at[v] == 1 and not any(
                at[w] for w in self.loop_vars if w != v)), 0) if base is not None else 0
            if base is not None and not any(at[v] for at, _ in points):  # run once: no second name to fit
                raise Fail(f"the names of loop {v} are not known (no instance runs it twice)")
        if base is None or any(n != base + sum(steps[v] * at[v] for v in at) for at, n in points):
            raise Fail(f"names {names[0]}, {names[1]}, ... do not follow the repeats")
        terms = [v if s == 1 else f"{s} * {v}" for v, s in steps.items() if s] + ([str(base)] if base else [])
        return f'f"{parts[0].group(1)}{{{" + ".join(terms) or 0}}}"'

    # ---- blocks and labels -----------------------------------------------------------------------
    def block_call(self, call, ctxs, st):
        frames = [self.gen.child_frame(c.frames, "block", call.span) for c in ctxs]
        if all(f is None for f in frames):
            return [], [], st, ctxs
        if any(f is None for f in frames):
            raise Fail(f"block {call.name} makes layers in some instances only")
        child = self.gen.class_for(frames[0].name)
        if child is None:
            raise Fail(f"block {call.name} has no class")
        fwd = self.comment(call.span)
        for c, f in zip(ctxs, frames):
            if c.x is not None and self.gen.block_input[f.path] != c.x:
                raise Fail(f"block {f.path} reads {self.gen.block_input[f.path]}, not {c.x}")
        args, given = self.block_args(call, child, frames, ctxs, st)
        ref, reg = self.module_ref(st.owner, [f.path for f in frames], ctxs)
        fwd.append(f"{st.target} = {ref}({st.src})")
        ctxs = [replace(c, x=self.gen.block_output[f.path]) for c, f in zip(ctxs, frames)]
        out_ch = None
        if child.out_ch is not None and (st.ch is not None or CIN not in free_names(child.out_ch)):
            out_ch = substitute(child.out_ch, {**given, CIN: st.ch})
        return [reg(f"{child.name}({', '.join(args)})")], fwd, replace(st, src=st.target, ch=out_ch), ctxs

    def block_args(self, call, child, frames, ctxs, st):
        """The child's constructor arguments (its input channels first, as the spec writes the call);
        and {parameter: expression} for its output channels."""
        params = [p[0] for p in child.params]
        pyname = {p[0]: p[1] for p in child.params}
        local = frames[0].path.rsplit(".", 1)[-1]
        args, given = [], {}
        if child.uses_cin:
            args.append(self.hole(st.ch, [self.g.shape_of(self.gen.block_input[f.path])[-1] for f in frames],
                                  ctxs, f"{local}_cin"))
        for i, (written, text) in enumerate(frames[0].written):  # the same call: the same text
            name = written or params[i]
            given[name] = parse(text)
            src = self.hole(given[name], [dict(f.args)[name] for f in frames], ctxs, f"{local}_{name}")
            args.append(f"{pyname[name]}={src}" if written else src)
        for (name, py, default), p in zip(child.params, child.spec_params):
            if name in given:
                continue
            given[name] = parse(p.text)
            values = [dict(f.args)[name] for f in frames]
            if not all(same(v, child.default_value(name, self.gen.consts.values())) for v in values):
                args.append(f"{py}={self.hole(None, values, ctxs, f'{local}_{name}')}")
        for name, per, _ in child.extras:
            args.append(f"{name}={self.hole(None, [per[f.path] for f in frames], ctxs, f'{local}_{name}')}")
        return args, given

    def holder(self, body, span, ctxs, st):
        """A labelled group inside the def: an `nn.Module()` that holds its layers."""
        frames = [self.gen.child_frame(c.frames, "label", span) for c in ctxs]
        if all(f is None for f in frames):
            return self.walk(body, ctxs, st)
        if any(f is None for f in frames):
            raise Fail("a labelled group makes layers in some instances only")
        ref, reg = self.module_ref(st.owner, [f.path for f in frames], ctxs)
        inner = [replace(c, frames=c.frames + (f,), owner=f.path) for c, f in zip(ctxs, frames)]
        init, fwd, out, inner = self.walk(body, inner, replace(st, owner=ref))
        ctxs = [replace(c, x=i.x) for c, i in zip(ctxs, inner)]
        return [reg("nn.Module()")] + init, fwd, replace(out, owner=st.owner), ctxs

    # ---- repeats, optionals, branches ------------------------------------------------------------
    def repeat(self, e, ctxs, st):
        rid = f"repeat@{e.span.line}:{e.span.col}"
        iterations, counts = [], []
        for c in ctxs:
            rep = [f for f in self.gen.children(c.frames) if f.kind == "repeat" and f.name == rid]
            n = rep[0].count if rep else self.count_of(e, c)
            if n is UNKNOWN or isinstance(n, bool) or not float(n).is_integer():
                raise Fail(f"the count of the repeat on line {e.span.line} is unknown")
            counts.append(int(n))
            iterations.append(rep)
        if not any(counts):  # `x*(n - 1)` with n = 1 in every instance: no layers, so no code (an empty loop is no Python)
            return [], [], st, ctxs
        fixed = len(set(counts)) == 1
        if not fixed or not isinstance(e.count, A.Num) or counts[0] > 3:
            saved = (len(self.code.extras), set(self.taken), self.last_line)
            try:
                return self.loop(e, ctxs, st, counts, iterations)
            except Fail:
                if not fixed:
                    raise
                del self.code.extras[saved[0]:]
                self.taken, self.last_line = saved[1], saved[2]
        init, fwd = self.count_guard(e, ctxs, counts[0]), []
        for i in range(counts[0]):
            inner = [replace(c, frames=c.frames + tuple(rep[i:i + 1]), spec={**c.spec, e.index: i} if e.index else c.spec)
                     for c, rep in zip(ctxs, iterations)]
            a, b, st, inner = self.walk(e.body, inner, st)
            init, fwd = init + a, fwd + b
            ctxs = [replace(c, x=i.x) for c, i in zip(ctxs, inner)]
        return init, fwd, st, ctxs

    def count_expr(self, e):
        """A repeat's count as the spec wrote it (the def's body), as an expression."""
        return parse(format_value(e.count))

    def count_of(self, e, c):
        """The count of a repeat that made no layers in instance `c` (its Python, run)."""
        src = to_python(self.count_expr(e), self.names)
        return UNKNOWN if src is None else run(src, c.env)

    def count_guard(self, e, ctxs, n):
        """An unrolled repeat whose count is an expression: __init__ refuses other counts, not build n."""
        src = None if isinstance(e.count, A.Num) else to_python(self.count_expr(e), self.names)
        if src is None or not all(same(run(src, c.env), n) for c in ctxs):
            return []
        return [f"if {src} != {n}:", f'    raise ValueError(f"written for {src} == {n} (the spec\'s calls): compile the '
                f'spec again for {src} == {{{src}}}")']

    def loop(self, e, ctxs, st, counts, iterations):
        if e.index is not None:  # `*n @i`: the loop variable is the spec's index, seen by the body's expressions
            var = e.index if e.index not in self.loop_vars and safe(e.index) == e.index and e.index not in self.taken \
                and e.index not in self.locals else self.fresh(safe(e.index))
            self.names = {**self.names, e.index: var}
        else:
            var = next(v for v in ("i", "j", "k", "i2", "j2", "k2") if v not in self.loop_vars and v not in self.taken)
        self.locals.add(var)
        count = self.hole(self.count_expr(e), counts, ctxs, "n")
        inner, owners = [], []
        for c, n, rep in zip(ctxs, counts, iterations):
            for i in range(n):
                frames = c.frames + tuple(rep[i:i + 1])
                inner.append(replace(c, frames=frames, env={**c.env, var: i},
                                     spec={**c.spec, e.index: i} if e.index else c.spec,
                                     x=c.x if i == 0 else self.gen.input_of(frames)))
                owners.append(c)
        init, st_in, running = self.running_channels(inner, st, var)
        self.loop_vars.append(var)
        self.loop_scope[var] = (st.owner,)
        try:
            body_init, fwd, out, inner = self.walk(e.body, inner, replace(st_in, target=st.src))
        finally:
            self.loop_vars.pop()
        if running:
            body_init.append(f"{running} = {self.next_channels(out.ch, inner)}")
        if out.src != st.src:
            fwd.append(f"{st.src} = {out.src}")
        last = {id(c): i for c, i in zip(owners, inner)}
        ctxs = [replace(c, x=last[id(c)].x) if id(c) in last else c for c in ctxs]
        for c in ctxs if running else ():
            c.env[running] = self.g.shape_of(c.x)[-1]
        store = []
        if not count.isdigit():  # forward reads the count from the module
            attr = self.fresh("repeats")
            store = [f"self.{attr} = {count}"]
        init += store + [f"for {var} in range({count}):"] + indent(body_init)
        fwd = [f"for {var} in range({'self.' + attr if store else count}):"] + indent(fwd)
        return init, fwd, replace(out, src=st.src, target=st.target, ch=named(LOOP + running) if running
                                  else out.ch), ctxs

    def running_channels(self, inner, st, var):
        """A loop whose body changes the channels tracks them in a variable of __init__."""
        values = [self.g.shape_of(c.x)[-1] if c.x else None for c in inner]
        start = to_python(st.ch, self.names) if st.ch is not None else None
        if None in values or start is None or all(same(run(start, c.env), v) for c, v in zip(inner, values)):
            return [], st, None
        if not all(same(run(start, c.env), v) for c, v in zip(inner, values) if c.env[var] == 0):
            raise Fail("the channels before a repeat are not known")
        name, init = self.channel_var(st.ch)
        for c, v in zip(inner, values):
            c.env[name] = v
        return init, replace(st, ch=named(LOOP + name)), name

    def channel_var(self, ch):
        """The variable of __init__ that holds the channels (`channels = cin`), and its first line."""
        if isinstance(ch, ast.Name) and ch.id.startswith(LOOP):
            return ch.id[len(LOOP):], []
        name = self.fresh("channels")
        self.names[LOOP + name] = name
        self.channel_vars.add(name)
        return name, [f"{name} = {to_python(ch, self.names)}"]

    def next_channels(self, ch, inner):
        src = to_python(ch, self.names) if ch is not None else None
        if src is None or not all(same(run(src, c.env), self.g.shape_of(c.x)[-1]) for c in inner):
            raise Fail("the channels after a repeat's body are not known")
        return src

    def optional(self, e, ctxs, st, label):
        entries = [o for o in self.g.optionals if (o.span.line, o.span.col) == (e.span.line, e.span.col)
                   and o.span.source is e.span.source]
        param = next((o.name for o in entries if o.source == "parameter"), None)
        on = [bool(c.spec[param]) if param else any(o.included for o in entries) for c in ctxs]
        inner = [c for c, v in zip(ctxs, on) if v]
        if not inner:
            return [], [], st, ctxs
        if st.src != st.target:
            pre, st = [f"{st.target} = {st.src}"], replace(st, src=st.target)
        else:
            pre = []
        body = (self.holder(e.body, e.span, inner, st) if label and not isinstance(e.body, A.Call)
                else self.walk(e.body, inner, st, label))
        init, fwd, out, done = body
        if out.src != st.src:
            fwd.append(f"{st.src} = {out.src}")
        after = iter(done)
        ctxs = [next(after) if v else c for c, v in zip(ctxs, on)]
        ch, before, inside = self.optional_channels(st.ch, out.ch, on, ctxs)
        if param is None:
            return init, pre + fwd, replace(out, src=st.src, ch=out.ch), ctxs
        test, init_else, flag = self.condition(param, label, init)
        init = before + [f"if {self.names[param]}:"] + indent(init + inside) + init_else
        return flag + init, pre + [f"if {test}:"] + indent(fwd), replace(out, src=st.src, ch=ch), ctxs

    def optional_channels(self, ch_in, ch_out, on, ctxs):
        """The channels after an optional that changes them: a variable set in the `if`."""
        src_in, src_out = (to_python(c, self.names) if c is not None else None for c in (ch_in, ch_out))
        if all(on) or src_in == src_out or src_in is None or src_out is None:
            return (ch_out if all(on) or src_in == src_out else None), [], []
        if not all(same(run(src_out, c.env), self.g.shape_of(c.x)[-1]) for c, v in zip(ctxs, on) if v):
            return None, [], []
        name, before = self.channel_var(ch_in)
        for c in ctxs:
            c.env[name] = self.g.shape_of(c.x)[-1]
        return named(LOOP + name), before, [f"{name} = {src_out}"]

    def condition(self, param, label, init):
        """How forward tells whether the optional is there: its module (labelled), else a flag."""
        py = self.names[param]
        if label and init and init[0].startswith(f"self.{label} = "):
            return f"self.{label} is not None", ["else:", f"    self.{label} = None"], []
        flag = self.fresh(f"use_{py}")
        return f"self.{flag}", [], [f"self.{flag} = {py}"]

    def branches(self, e, ctxs, st):
        init, fwd, outs, chs, ends = [], [], [], [], []
        for b in e.items:
            if isinstance(b, A.Call) and b.name in ("ID", "IDENTITY"):
                outs.append(st.src), chs.append(st.ch), ends.append([c.x for c in ctxs])
                continue
            name = b.name if isinstance(b, A.Label) else "out"
            bst = replace(st, target=self.local(re.sub(r"\W", "_", name)))
            a, f, bout, bctx = self.walk(b, ctxs, bst)
            init, fwd = init + a, fwd + f
            outs.append(bout.src), chs.append(bout.ch), ends.append([c.x for c in bctx])
        joins = [self.gen.node_at(e, c.frames) for c in ctxs]
        for k, n in enumerate(joins):
            known = [end[k] for end in ends]
            if None not in known and known != n.inputs:
                raise Fail(f"join {n.name} reads {n.inputs}, not {known}")
        if e.join in INLINE:
            fwd += self.join(e.join, joins, outs, st)
        else:  # a module that takes the branches (MUL, MEAN)
            ref, reg = self.module_ref(st.owner, [n.name for n in joins], ctxs)
            ins = [[self.g.shape_of(s) for s in n.inputs] for n in joins]
            init.append(reg(f"{class_ref(joins[0].kind.torch_module(joins[0].attrs, ins[0], False).cls)}()"))
            fwd.append(f"{st.target} = {ref}({', '.join(outs)})")
            # the channels of the branch that has the output's (a gate's are 1 or equal)
            k = next((k for k in range(len(outs)) if all(s[k][-1] == n.out_shape[-1] for s, n in zip(ins, joins))), 0)
            chs = chs[k:k + 1]
        if e.join == "CONCAT":
            ch = None if None in chs else chs[0]
            for c in chs[1:] if ch is not None else ():
                ch = plus(ch, c)
        else:
            ch = chs[0]
        src = outs[self.gen.inplace[joins[0].name]] if e.join == "ADD" and joins[0].name in self.gen.inplace \
            else st.target
        return init, fwd, replace(st, src=src, ch=ch), [replace(c, x=n.name) for c, n in zip(ctxs, joins)]

    def join(self, op, joins, outs, st):
        if op == "CONCAT":
            return [f"{st.target} = torch.cat([{', '.join(outs)}], 1)"]
        first = {self.gen.inplace.get(n.name) for n in joins}
        if len(first) > 1:
            raise Fail("a sum is in place in some instances only")
        k = first.pop()
        if k is None:
            return [f"{st.target} = {' + '.join(outs)}"]
        return [f"{outs[k]} += {r}" for r in outs[:k] + outs[k + 1:]]
