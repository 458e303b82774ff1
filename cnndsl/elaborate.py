"""AST -> IR: variables, blocks, repeats, optionals and branches become a flat graph.

    >>> from cnndsl.syntax import parse_text
    >>> g = elaborate(parse_text("input 32x32x3\\n(CONV-RELU)*N - POOL?"), bindings={"N": 2})
    >>> [n.name for n in g.nodes]
    ['conv1', 'relu1', 'conv2', 'relu2', 'pool1']

Each layer's output shape is computed as the node is built (layers.py holds the
rules); a rule's failure becomes a CnnError pointing at the layer's text.

Names: a labelled layer takes its label; an unlabelled one takes the name it was
written with, lower-cased and numbered in its scope (`conv1`, `pool2`). Block
instances and labelled groups open a scope: `stage2.conv1`.
"""
from __future__ import annotations

import difflib
import math
import os
from dataclasses import dataclass

from . import astnodes as A
from .errors import CnnError, Span
from .ir import Frame, Graph, Node, Optional_
from .layers import CALLABLE, KINDS, MAX_DIM, DoesNotFit, Kind, ShapeError, fmt_shape

MAX_NODES = 1_000_000   # layers a spec may expand to
MAX_STEPS = 5_000_000   # repeat iterations + layers: bounds time even for empty repeated bodies
MAX_BLOCK_DEPTH = 100
MAX_NUMBER = 10**18
MAX_INCLUDES = 50

BOOLS = {"true": True, "on": True, "yes": True, "false": False, "off": False, "no": False}
SYMBOLS = {"same", "valid"} | set(BOOLS)


@dataclass(frozen=True)
class _Scope:
    prefix: str                 # "stage2." or ""
    counters: dict              # base name -> last number used in this scope
    env: dict                   # variables visible here
    frames: tuple = ()
    stack: tuple = ()           # block names being expanded, for recursion errors
    params: frozenset = frozenset()  # the enclosing block's parameters (they can switch optionals)


def elaborate(program: A.Program, *, input_shape=None, bindings=None, strict=False, path="<string>") -> Graph:
    """Expand a parsed program into a Graph. `bindings` override `let`s (the -D option)."""
    return _Elaborator(program, input_shape, bindings or {}, strict, path).run()


class _Elaborator:
    def __init__(self, program, input_shape, bindings, strict, path):
        self.program, self.strict, self.path = program, strict, path
        self.bindings = dict(bindings)
        self.input_override = input_shape
        self.globals: dict = {}
        self.defs: dict[str, A.Def] = {}
        self.defaults: dict[str, dict] = {}      # kind -> {arg: (value, span)}
        self.input_decl: A.InputDecl | None = None
        self.optionals: dict[tuple, Optional_] = {}
        self.optional_names: dict[tuple, str] = {}
        self.used: set[str] = set()
        self.steps = 0
        self.repeats: list[int] = []  # counts of the repeats being expanded, outermost first
        self.sites: dict = {}     # id(Call) -> (arguments matched to the schema, variables they read)
        self.bound: dict = {}     # (id(Call), argument values) -> (attrs, defaults)
        self.inferred: dict = {}  # (kind, id(attrs), input shapes) -> (output shape, warnings)
        self.graph: Graph | None = None
        self.taken: set[str] = {"input"}  # layer names and scope paths given out

    # ---- statements ---------------------------------------------------------------
    def run(self) -> Graph:
        self.statements(self.program, seen=(os.path.abspath(self.path),))
        if self.program.net is None:
            raise CnnError(f"{self.path}: no network: the file has statements but no network expression",
                           hint="end the file with the network, e.g. `CONV(16, 3) - RELU - FC(10)`")
        shape, span = self.input_shape()
        self.graph = Graph(input_shape=shape, source=self.path, input_span=span)
        try:
            out = self.expr(self.program.net, "input", _Scope("", {}, self.globals))
        except RecursionError:
            raise CnnError("the network is nested too deeply to expand", self.program.net.span,
                           hint="name parts with `def` instead of nesting them") from None
        if not self.graph.nodes:
            raise CnnError("the network has no layers", self.program.net.span)
        self.graph.output = out
        self.graph.optionals = sorted(self.optionals.values(), key=lambda o: (o.span.line, o.span.col))
        unused = sorted(set(self.bindings) - self.used)
        if unused:
            names = sorted(self.globals_named | {o.name for o in self.graph.optionals})
            raise CnnError(f"-D {unused[0]}=... binds nothing in {self.path}", usage=True,
                           hint=f"the spec's variables and optionals: {', '.join(names) or 'none'}")
        return self.graph

    def statements(self, program, seen):
        self.globals_named = getattr(self, "globals_named", set())
        for st in program.statements:
            if isinstance(st, A.Include):
                self.include(st, seen)
            elif isinstance(st, A.InputDecl):
                self.input_decl = st
            elif isinstance(st, A.Let):
                self.globals_named.add(st.name)
                if st.name in self.bindings:
                    self.used.add(st.name)
                    self.globals[st.name] = self.binding(st.name)
                else:
                    self.globals[st.name] = self.value(st.value, _Scope("", {}, self.globals))
            elif isinstance(st, A.Def):
                if st.name in CALLABLE:
                    raise CnnError(f"a block cannot be called {st.name}: that is a layer kind", st.span,
                                   hint="choose another name, e.g. a lower-case one")
                self.defs[st.name] = st
            elif isinstance(st, A.Default):
                self.default(st)

    def include(self, st: A.Include, seen):
        from .syntax import parse_text
        base = os.path.dirname(st.span.source.path) if st.span.source.path not in ("<string>",) else "."
        target = os.path.abspath(os.path.join(base, st.path))
        if target in seen:
            raise CnnError(f"`{st.path}` includes itself (through {' -> '.join(os.path.basename(s) for s in seen)})", st.span)
        if len(seen) > MAX_INCLUDES:
            raise CnnError("includes nested too deeply", st.span)
        try:
            with open(target, "rb") as f:
                text = f.read()
        except OSError as e:
            raise CnnError(f"cannot include `{st.path}`: {e.strerror}", st.span,
                           hint=f"paths are relative to the including file: looked for {target}") from None
        prog = parse_text(text, target)
        if prog.net is not None:
            raise CnnError(f"`{st.path}` holds a network; an included file may only hold let/def/default", prog.net.span)
        self.statements(prog, seen + (target,))

    def default(self, st: A.Default):
        kind = self.kind_named(st.kind, st.span)
        sc = _Scope("", {}, self.globals)
        values = {}
        for schema, arg in self.match_args(kind, st.args, st.span, st.kind):
            values[schema.name] = (self.check_arg(kind, schema, self.value(arg.value, sc), arg.span), arg.span)
        self.defaults.setdefault(kind.name, {}).update(values)

    def binding(self, name):
        v = self.bindings[name]
        if isinstance(v, str):
            from .syntax import parse_value
            try:
                v = self.value(parse_value(v, f"-D {name}"), _Scope("", {}, {}))
            except CnnError as err:  # a bad -D value is a mistake on the command line: exit status 2
                err.usage = True
                raise
        return v

    def input_shape(self):
        if self.input_override is not None:
            shape = self.input_override
            if isinstance(shape, str):
                shape = parse_volume(shape)
            return tuple(shape), None
        if self.input_decl is None:
            raise CnnError(f"{self.path}: no input volume", self.program.net.span,
                           hint="declare it on the first line, e.g. `input 224x224x3` (height x width x channels), "
                                "or pass --input 224x224x3")
        shape = self.input_decl.shape
        if len(shape) not in (1, 3) or min(shape) < 1 or max(shape) > MAX_DIM:
            raise CnnError(f"input {'x'.join(map(str, shape))} is not a volume HxWxC (or a vector length)",
                           self.input_decl.span, hint="write e.g. `input 224x224x3`")
        return shape, self.input_decl.span

    # ---- values ---------------------------------------------------------------------
    def value(self, e, sc: _Scope):
        if isinstance(e, A.Num):
            return self.number(e.value, e.span)
        if isinstance(e, A.Dims):
            return tuple(self.number(v, e.span) for v in e.value)
        if isinstance(e, A.Var):
            return self.lookup(e.name, e.span, sc)
        if isinstance(e, A.Str):
            return e.value
        if isinstance(e, A.Tuple):
            return tuple(self.value(i, sc) for i in e.items)
        if isinstance(e, A.Neg):
            v = self.value(e.operand, sc)
            self.need_number(v, e.operand.span, "-")
            return -v
        if isinstance(e, A.BinOp):
            return self.binop(e, self.value(e.left, sc), self.value(e.right, sc))
        raise CnnError(f"not a value: {type(e).__name__}", getattr(e, "span", None))

    def lookup(self, name, span, sc):
        if name in sc.env:
            self.used.add(name)
            return sc.env[name]
        if name in self.bindings and name not in self.globals_named:
            self.used.add(name)
            self.globals[name] = self.binding(name)
            return self.globals[name]
        if name in BOOLS:
            return BOOLS[name]
        if name in SYMBOLS:
            return name
        known = sorted(sc.env)
        close = difflib.get_close_matches(name, known, 1)
        raise CnnError(f"`{name}` is not bound", span,
                       hint=(f"did you mean `{close[0]}`? " if close else "")
                       + f"bind it with `let {name} = ...` in the file or `-D {name}=...` on the command line")

    def number(self, v, span):
        if isinstance(v, float) and not abs(v) <= MAX_NUMBER:  # inf, nan (1e400 - 1e400), 1e300
            raise CnnError(f"the number {v:g} is {'not a number' if v != v else 'too large'}", span,
                           hint="numbers in a spec stay below 10**18")
        if isinstance(v, int) and abs(v) > MAX_NUMBER:
            raise CnnError(f"the number {v if len(str(v)) < 30 else str(v)[:20] + '...'} is too large", span,
                           hint=f"numbers in a spec stay below 10**18")
        return v

    def need_number(self, v, span, op):
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise CnnError(f"`{op}` needs numbers, got {_show(v)}", span)

    def binop(self, e: A.BinOp, a, b):
        for v, side in ((a, e.left), (b, e.right)):
            self.need_number(v, side.span, e.op)
        try:
            if e.op == "+":
                r = a + b
            elif e.op == "-":
                r = a - b
            elif e.op == "*":
                r = a * b
            elif e.op == "/":
                r = a // b if isinstance(a, int) and isinstance(b, int) and a % b == 0 else a / b
            elif e.op == "//":
                r = a // b
            elif e.op == "%":
                r = a % b
            else:
                if abs(a) > 1 and abs(b) > 64:
                    raise CnnError(f"{a}**{b} is too large", e.span, hint="numbers in a spec stay below 10**18")
                r = a ** b
        except ZeroDivisionError:
            raise CnnError("division by zero", e.span) from None
        except (OverflowError, ValueError) as ex:
            raise CnnError(f"cannot compute {e.op}: {ex}", e.span) from None
        return self.number(r, e.span) if not isinstance(r, complex) else self.need_number(r, e.span, e.op)

    def count(self, e, sc) -> int:
        n = self.value(e, sc)
        if isinstance(n, bool) or not isinstance(n, int):
            if isinstance(n, float) and n.is_integer():
                n = int(n)
            else:
                raise CnnError(f"a repeat count must be a whole number, got {_show(n)}", e.span)
        if n < 0:
            raise CnnError(f"a repeat count cannot be negative ({n})", e.span)
        if n > MAX_NODES:
            raise CnnError(f"a repeat count of {n:,} would make more than the {MAX_NODES:,} layers a spec may have",
                           e.span, hint="check the count: is a variable bound to the wrong value?")
        return n

    # ---- the network ------------------------------------------------------------------
    def expr(self, e, x: str, sc: _Scope, label: str | None = None) -> str:
        if isinstance(e, A.Seq):
            for item in e.items:
                x = self.expr(item, x, sc)
            return x
        if isinstance(e, A.Call):
            return self.call(e, x, sc, label)
        if isinstance(e, A.Label):
            return self.labelled(e, x, sc)
        if isinstance(e, A.Repeat):
            return self.repeat(e, x, sc)
        if isinstance(e, A.Optional):
            opt = self.optional(e, label, sc)
            if not opt.included:
                return x
            if label and not isinstance(e.body, A.Call):  # `name: (...)?` still opens the scope `name`
                return self.labelled(A.Label(label, e.body, e.span), x, sc)
            return self.expr(e.body, x, sc, label)
        if isinstance(e, A.Branches):
            return self.branches(e, x, sc)
        raise CnnError(f"not a network expression: {type(e).__name__}", getattr(e, "span", None))

    def labelled(self, e: A.Label, x, sc):
        body = e.body
        if isinstance(body, (A.Call, A.Optional)):
            return self.expr(body, x, sc, label=e.name)
        inner = self.scope(sc, self.fresh(sc, e.name, labelled=True), Frame("label", "", e.name, span=e.span))
        return self.expr(body, x, inner)

    def repeat(self, e: A.Repeat, x, sc):
        n = self.count(e.count, sc)
        # Nested repeats multiply: ((RELU*1000)*1000)*1000 is refused here, before it builds a
        # million nodes, not after minutes and gigabytes.
        outer = self.repeats
        if n and math.prod(outer) * n > MAX_NODES:
            counts = [*outer, n]
            raise CnnError(f"nested repeats multiply to {math.prod(counts):,} copies, more than the "
                           f"{MAX_NODES:,} layers a spec may have", e.count.span,
                           arithmetic=" * ".join(map(str, counts)) + f" = {math.prod(counts):,}",
                           hint="check the counts: is a variable bound to the wrong value?")
        self.repeats = outer + [n]
        try:
            return self.repeat_body(e, x, sc, n)
        finally:
            self.repeats = outer

    def repeat_body(self, e: A.Repeat, x, sc, n):
        rid = f"repeat@{e.span.line}:{e.span.col}"
        for i in range(n):
            self.step(e.span)
            if i == 0 and n > 1:
                before = (x, len(self.graph.nodes), len(self.taken), {k: o.uses for k, o in self.optionals.items()})
            x = self.expr(e.body, x, sc if n == 1 else _Scope(
                sc.prefix, sc.counters, sc.env, sc.frames + (Frame("repeat", sc.prefix, rid, i, n, e.span),), sc.stack,
                sc.params))
            if i == 0 and n > 1:
                made = len(self.graph.nodes) - before[1]
                total = made * n * math.prod(self.repeats[:-1])
                if total > MAX_NODES:  # known after one iteration, instead of after a million nodes
                    counts = " * ".join(map(str, self.repeats))
                    raise CnnError(f"the repeats make {total:,} layers, more than the {MAX_NODES:,} a spec may have",
                                   e.count.span, arithmetic=f"{counts} copies of {made} layer{'s' * (made != 1)} = {total:,}",
                                   hint="check the counts: is a variable bound to the wrong value?")
            if i == 0 and n > 1 and before[:3] == (x, len(self.graph.nodes), len(self.taken)):
                # the body made nothing and named nothing (`(RELU*0)*1000000`, an optional switched
                # off): every iteration would do the same, so a million of them cost nothing
                for k, o in self.optionals.items():
                    o.uses += (o.uses - before[3].get(k, 0)) * (n - 1)
                break
        return x

    def optional(self, e: A.Optional, label, sc):
        """Decide a `?`: a -D binding, a `let`, or a block parameter of its name; else included."""
        site = (e.span.source.path, e.span.line, e.span.col)
        name = self.optional_names.get(site)
        if name is None:
            name = label or (e.body.name.lower() if isinstance(e.body, A.Call) else f"optional{len(self.optional_names) + 1}")
            self.optional_names[site] = name
        included, source = True, "default"
        if name in sc.params:  # per call: def block(c, shortcut=off) = ... shortcut: (...)?
            included, source = sc.env[name], "parameter"
        elif name in self.bindings:
            self.used.add(name)
            included, source = self.binding(name), "-D"
        elif name in self.globals_named:
            included, source = self.globals[name], "let"
        if isinstance(included, int) and not isinstance(included, bool) and included in (0, 1):
            included = bool(included)
        if not isinstance(included, bool):
            raise CnnError(f"optional `{name}` is bound to {_show(included)}, not on/off", e.span,
                           hint=f"write -D {name}=off to drop it, -D {name}=on to keep it")
        key = site + (included,)
        if key not in self.optionals:
            self.optionals[key] = Optional_(name, e.span, included, source)
        opt = self.optionals[key]
        opt.uses += 1
        return opt

    def branches(self, e: A.Branches, x, sc):
        outs = [self.expr(b, x, sc) for b in e.items]
        kind = KINDS[e.join]
        try:
            shape = kind.out_shape({}, [self.graph.shape_of(o) for o in outs])
        except ShapeError as err:
            notes = tuple((self.where(o, b), f"this branch gives {fmt_shape(self.graph.shape_of(o))}")
                          for o, b in zip(outs, e.items))
            raise CnnError(err.message, e.span, arithmetic=err.arithmetic, hint=err.hint, notes=notes[:2]) from None
        return self.add(kind, {}, outs, shape, e.span, sc, self.fresh(sc, kind.name.lower()))

    def where(self, name, branch_ast) -> Span:
        return self.graph[name].span if name in self.graph else branch_ast.span

    def call(self, c: A.Call, x, sc, label):
        if c.name in self.defs:
            return self.block(self.defs[c.name], c, x, sc, label)
        kind = self.kind_named(c.name, c.span, sc)
        attrs, defaults = self.bind(kind, c, sc)
        if kind.name == "ID":
            return x
        if kind.flat_input and len(self.graph.shape_of(x)) == 3:
            flat = KINDS["FLATTEN"]
            shape = flat.out_shape({}, [self.graph.shape_of(x)])
            x = self.add(flat, {}, [x], shape, c.span, sc, self.fresh(sc, "flatten"), implicit=True)
        shape, warnings = self.infer(kind, attrs, [x], c.span)
        name = self.fresh(sc, label, labelled=True) if label else self.fresh(sc, c.name.lower())
        return self.add(kind, attrs, [x], shape, c.span, sc, name, defaults=defaults, warnings=warnings)

    def infer(self, kind: Kind, attrs, inputs, span):
        """The output shape, and the warnings (a window that does not fit) that come with it."""
        ins = [self.graph.shape_of(i) for i in inputs]
        key = (kind.name, id(attrs), *ins)
        hit = self.inferred.get(key)
        if hit is None:
            hit = self.inferred[key] = self.infer_once(kind, attrs, ins, span)
        return hit

    def infer_once(self, kind: Kind, attrs, ins, span):
        warnings = []
        try:
            shape = kind.out_shape(attrs, ins)
        except DoesNotFit as w:
            err = CnnError(w.message, span, arithmetic=w.arithmetic, hint=w.hint)
            if self.strict:
                raise err from None
            warnings.append(err)
            shape = w.shape
        except ShapeError as err:
            shown = fmt_shape(ins[0])
            message = err.message if f" {shown}" in err.message else f"{err.message} (input {shown})"
            raise CnnError(message, span, arithmetic=err.arithmetic,
                           hint=err.hint) from None
        if max(shape) > MAX_DIM:
            raise CnnError(f"{kind.name} output {fmt_shape(shape)} is too large", span,
                           hint=f"a dimension over {MAX_DIM:,} is beyond what PyTorch and ONNX Runtime handle")
        return shape, warnings

    def add(self, kind, attrs, inputs, shape, span, sc, name, implicit=False, defaults=None, warnings=()) -> str:
        self.steps += 1
        if self.steps > MAX_STEPS:
            self.step(span)
        node = Node(name, kind.name, attrs, list(inputs), span, shape, sc.frames, implicit, defaults or {},
                    {"warnings": list(warnings)} if warnings else {})
        if len(self.graph.nodes) >= MAX_NODES:
            raise CnnError(f"the network expands to more than {MAX_NODES:,} layers", span)
        if warnings:
            self.graph.warnings.extend(warnings)
        self.graph.add(node)
        return name

    def step(self, span):
        self.steps += 1
        if self.steps > MAX_STEPS:
            raise CnnError(f"the spec takes more than {MAX_STEPS:,} steps to expand", span,
                           hint="a repeat count is probably far larger than meant")

    def block(self, d: A.Def, c: A.Call, x, sc, label):
        if d.name in sc.stack:
            chain = " -> ".join(sc.stack[sc.stack.index(d.name):] + (d.name,))
            raise CnnError(f"block `{d.name}` calls itself ({chain})", c.span,
                           hint="blocks cannot recurse; repeat with `*N` instead")
        if len(sc.stack) >= MAX_BLOCK_DEPTH:
            raise CnnError(f"blocks nested more than {MAX_BLOCK_DEPTH} deep", c.span)
        env = dict(self.globals)
        for (param, v) in self.block_args(d, c, sc):
            env[param] = v
        inst = self.fresh(sc, label, labelled=True) if label else self.fresh(sc, d.name)
        inner = self.scope(sc, inst, Frame("block", "", d.name, span=c.span), env=env, call=d.name,
                           params=frozenset(p.name for p in d.params))
        try:
            return self.expr(d.body, x, inner)
        except CnnError as err:
            # the fault is in the block's text; say which call made it (a short call trace)
            if err.span is not None and err.span != c.span and len(err.notes) < 5:
                err.notes = err.notes + ((c.span, f"in block `{d.name}`, called here"),)
            raise

    def scope(self, sc, path, frame, env=None, call=None, params=None):
        frame = Frame(frame.kind, path, frame.name, frame.index, frame.count, frame.span)
        return _Scope(path + ".", {}, sc.env if env is None else env, sc.frames + (frame,),
                      sc.stack + ((call,) if call else ()), sc.params if params is None else params)

    def block_args(self, d: A.Def, c: A.Call, sc):
        names = [p.name for p in d.params]
        given = {}
        positional = [a for a in c.args if a.name is None]
        if len(positional) > len(names):
            raise CnnError(f"block `{d.name}` takes {len(names)} argument{'s' * (len(names) != 1)}"
                           f"{' (' + ', '.join(names) + ')' if names else ''}, got {len(positional)}", c.span,
                           notes=((d.span, f"`{d.name}` is defined here"),))
        for p, a in zip(d.params, positional):
            given[p.name] = self.value(a.value, sc)
        for a in c.args:
            if a.name is None:
                continue
            if a.name not in names:
                close = difflib.get_close_matches(a.name, names, 1)
                raise CnnError(f"block `{d.name}` has no parameter `{a.name}`", a.span,
                               hint=f"did you mean `{close[0]}`?" if close else f"its parameters: {', '.join(names) or 'none'}")
            if a.name in given:
                raise CnnError(f"`{a.name}` is given twice", a.span)
            given[a.name] = self.value(a.value, sc)
        out = []
        for p in d.params:
            if p.name in given:
                out.append((p.name, given[p.name]))
            elif p.default is not None:
                out.append((p.name, self.value(p.default, _Scope("", {}, self.globals))))
            else:
                raise CnnError(f"block `{d.name}` needs `{p.name}`", c.span,
                               hint=f"call it as {d.name}({', '.join(names)})",
                               notes=((d.span, f"`{d.name}` is defined here"),))
        return out

    # ---- layer arguments -----------------------------------------------------------------
    def kind_named(self, name, span, sc=None) -> Kind:
        if name in CALLABLE:
            return CALLABLE[name]
        candidates = list(CALLABLE) + list(self.defs)
        upper = {c.upper(): c for c in candidates}
        close = [upper[m] for m in difflib.get_close_matches(name.upper(), list(upper), 1, 0.6)]
        if sc is not None and name in sc.env:
            hint = f"`{name}` is a variable; a repeat count is written `(...)*{name}`"
        elif close:
            hint = f"did you mean {close[0]}?"
        else:
            hint = "layers: " + ", ".join(k.name for k in KINDS.values() if not k.join)
        raise CnnError(f"unknown layer or block `{name}`", span, hint=hint)

    def match_args(self, kind: Kind, args, span, written):
        positional = [a for a in args if a.name is None]
        if len(positional) > len(kind.args):
            raise CnnError(f"{written} takes at most {len(kind.args)} positional argument{'s' * (len(kind.args) != 1)}"
                           f"{' (' + ', '.join(a.name for a in kind.args) + ')' if kind.args else ''}, "
                           f"got {len(positional)}", positional[len(kind.args)].span)
        pairs = list(zip(kind.args, positional))
        seen = {s.name for s, _ in pairs}
        for a in args:
            if a.name is None:
                continue
            schema = kind.arg(a.name)
            if schema is None:
                names = [n for s in kind.args for n in (s.name, *s.aliases)]
                close = difflib.get_close_matches(a.name, names, 1)
                raise CnnError(f"{written} has no argument `{a.name}`", a.span,
                               hint=(f"did you mean `{close[0]}`? " if close else "")
                               + f"{written} takes {', '.join(s.name for s in kind.args) or 'no arguments'}")
            if schema.name in seen:
                raise CnnError(f"{written}: `{schema.name}` is given twice", a.span)
            seen.add(schema.name)
            pairs.append((schema, a))
        return pairs

    def bind(self, kind: Kind, c: A.Call, sc):
        # Memoised per call site and the values of the variables its arguments read: a block
        # repeated 36 times (ResNet-152's layer3) evaluates and validates its layers once.
        site = self.sites.get(id(c))
        if site is None:
            pairs = self.match_args(kind, c.args, c.span, c.name)
            site = self.sites[id(c)] = (pairs, tuple(sorted({v for _, a in pairs for v in _free_vars(a.value)})))
        pairs, free = site
        env = sc.env
        key = (id(c), *[_typed(env.get(v, _UNSET)) for v in free]) if free else id(c)
        hit = self.bound.get(key)
        if hit is None:
            raw = [self.value(arg.value, sc) for _, arg in pairs]
            hit = self.bound[key] = self.bind_values(kind, c, pairs, raw)
        return hit  # shared by every node of this call site and arguments: read-only

    def bind_values(self, kind: Kind, c: A.Call, pairs, raw):
        values, defaults = {}, {}
        for (schema, arg), v in zip(pairs, raw):
            values[schema.name] = self.check_arg(kind, schema, v, arg.span, c.name)
        user = self.defaults.get(kind.name, {})
        for schema in kind.args:
            if schema.name in values:
                continue
            if schema.name in user:
                values[schema.name] = user[schema.name][0]
                defaults[schema.name] = (values[schema.name], f"`default {kind.name}` at line {user[schema.name][1].line}")
            elif c.bare and schema.name in kind.bare:
                values[schema.name] = kind.bare[schema.name]
                defaults[schema.name] = (values[schema.name], f"bare {c.name}")
            elif schema.default is None:
                what = f"{schema.name} ({schema.doc})" if schema.doc else schema.name
                example = ", ".join(str(kind.bare.get(s.name, "...")) for s in kind.args if s.default is None)
                raise CnnError(f"{c.name} needs {what}", c.span,
                               hint=f"write {c.name}({example}), or set `default {kind.name}({example})`")
        try:
            return kind.bind(values), defaults
        except ShapeError as err:
            raise CnnError(err.message, c.span, arithmetic=err.arithmetic, hint=err.hint) from None

    def check_arg(self, kind: Kind, schema, v, span, written=None):
        written = written or kind.name
        where = f"{written}'s `{schema.name}`"
        t = schema.type
        if t == "bool":
            if isinstance(v, bool):
                return v
            if isinstance(v, int) and v in (0, 1):
                return bool(v)
            raise CnnError(f"{where} must be true or false, got {_show(v)}", span)
        if t == "float":
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise CnnError(f"{where} must be a number, got {_show(v)}", span)
            lo, hi = schema.lo, schema.hi
            if (lo is not None and v < lo) or (hi is not None and v >= hi):
                rng = f"at least {lo}" if hi is None else f"in [{lo}, {hi:g})"
                raise CnnError(f"{where} must be {rng}, got {v}", span)
            return float(v)
        if t == "padding" and v in ("same", "valid"):
            return v
        if t in ("pair", "padding"):
            items = v if isinstance(v, tuple) else (v,)
            if len(items) not in (1, 2):
                raise CnnError(f"{where} takes one size or two (height, width), got {_show(v)}", span)
            for i in items:
                self.check_int(where, i, schema.lo, span, extra=" or same" if t == "padding" else "")
            return v if isinstance(v, tuple) else v
        if t == "int":
            self.check_int(where, v, schema.lo, span)
            return v
        raise AssertionError(t)

    def check_int(self, where, v, lo, span, extra=""):
        if isinstance(v, float) and v.is_integer():
            v = int(v)
        if isinstance(v, bool) or not isinstance(v, int):
            raise CnnError(f"{where} must be a whole number{extra}, got {_show(v)}", span)
        if lo is not None and v < lo:
            raise CnnError(f"{where} must be at least {lo}, got {v}", span)
        if v > MAX_DIM:
            raise CnnError(f"{where} is {v:,}; sizes stay below {MAX_DIM:,}", span)

    def fresh(self, sc: _Scope, base: str, labelled=False) -> str:
        """A full name unique in the graph: labels as written, others numbered per scope."""
        taken = self.taken
        if labelled:
            name, n = sc.prefix + base, 1
            while name in taken:
                n += 1
                name = f"{sc.prefix}{base}_{n}"
        else:
            while True:
                n = sc.counters[base] = sc.counters.get(base, 0) + 1
                # relu6 -> relu6_1, not relu61
                name = f"{sc.prefix}{base}{'_' if base[-1:].isdigit() else ''}{n}"
                if name not in taken:
                    break
        taken.add(name)
        return name


def parse_volume(text: str) -> tuple:
    """`224x224x3` (or a vector length `784`) -> a shape tuple; a usage error otherwise."""
    try:
        dims = tuple(int(v) for v in text.lower().replace(",", "x").split("x"))
    except ValueError:
        dims = ()
    if len(dims) not in (1, 3) or min(dims) < 1 or max(dims) > MAX_DIM:
        raise CnnError(f"--input {text!r} is not a volume", usage=True,
                       hint="write height x width x channels, e.g. --input 224x224x3")
    return dims


_UNSET = object()


def _free_vars(e):
    """Names a value expression reads."""
    if isinstance(e, A.Var):
        yield e.name
    elif isinstance(e, A.BinOp):
        yield from _free_vars(e.left)
        yield from _free_vars(e.right)
    elif isinstance(e, A.Neg):
        yield from _free_vars(e.operand)
    elif isinstance(e, A.Tuple):
        for i in e.items:
            yield from _free_vars(i)


def _typed(v):
    """A hashable key that tells 1 from true and 1 from 1.0 (they validate differently)."""
    if isinstance(v, (list, tuple)):
        return tuple(_typed(i) for i in v)
    return (type(v), v)


def _show(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return v
    if isinstance(v, tuple):
        return "(" + ", ".join(_show(i) for i in v) + ")"
    return repr(v)
