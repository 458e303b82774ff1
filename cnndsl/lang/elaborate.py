"""AST -> IR: variables, blocks, repeats, optionals and branches become a flat graph.

    >>> from cnndsl.lang.syntax import parse_text
    >>> g = elaborate(parse_text("input 32x32x3\\n(CONV-RELU)*N - POOL?"), bindings={"N": 2})
    >>> [n.name for n in g.nodes]
    ['conv1', 'relu1', 'conv2', 'relu2', 'pool1']

Each layer's output shape is computed as the node is built (layers.py holds the
rules); a rule's failure becomes a CnnError pointing at the layer's text.

Independent mistakes are all reported, up to MAX_ERRORS: an unknown layer or block, a
bad call or argument, a bad repeat count or `let` is recorded and the call passes its
input through (a `let` that failed makes later uses of its name silent); the first
shape error ends elaboration, since what follows it would only echo it.

Names: a labelled layer takes its label; an unlabelled one takes the name it was
written with, lower-cased and numbered in its scope (`conv1`, `pool2`). Block
instances and labelled groups open a scope: `stage2.conv1`.

The budget walk (budget.py) that refuses a huge expansion before it begins is itself a walk of
the network, as long as a third of elaborating a net of distinct blocks (MobileNet's table). So
`elaborate` expands first and walks only when it must: once the expansion passes CHECK_AT steps
or expressions, or when it fails. The walk's bound is never below what an expansion that
succeeds takes, so one that succeeds within CHECK_AT would have passed the walk; and an
expansion that fails or grows walks before its errors are reported, so a spec the walk refuses
is refused with the walk's error alone, as when it came first.
"""
from __future__ import annotations

import math
import os

from . import astnodes as A
from ..errors import MAX_ERRORS, CnnError, Diagnostic, Note, Span, shown_path
from ..ir import Frame, Graph, Node, Optional_, Param, Site
from .arguments import Arguments
from ..kinds import CALLABLE, KINDS, MAX_DIM, DoesNotFit, Kind, ShapeError, fmt_shape
from .values import BOOLS, MAX_BLOCK_DEPTH, MAX_NODES, POISON, Poisoned, Values, _Scope, show as _show
from .budget import MAX_STEPS, Budget
from .memo import Memoised
from .printer import format_value
from .replay import Replay

MAX_COPIES = 1000  # branches one `b ** n` may give a join (MobileOne has 4, ResNeSt's radix at most 4)
CHECK_AT = 5_000  # steps or expressions after which an expansion stops to run the budget walk


def elaborate(program: A.Program, *, input_shape=None, bindings=None, strict=False, path=None) -> Graph:
    """Expand a parsed program into a Graph. `bindings` override `let`s (the -D option)."""
    return _Plain(program, input_shape, bindings or {}, strict, path or program.path).run()


class _Refused(Exception):
    """The budget walk's error, carried out of the expansion untouched (no block adds a note to it)."""

    def __init__(self, err):
        self.err = err


class Elaborator(Values, Arguments, Budget):
    """The elaborator without memos: `Elaborator(program, input_shape, bindings, strict, path).run()`.

    Public hooks, which an elaborator outside lang (the search's, search/tracking.py and lean.py)
    may override to record what a member reads or to memoise by the values a part reads; each
    keeps its signature and returns what the base returns:
      bind(kind, call, scope) -> (attrs, defaults)     a call's arguments bound to its kind
      infer(kind, attrs, inputs, span) -> (shape, warnings)   a layer's output shape
      lookup(name, span, scope) / binding(name)        a variable read / a -D binding read
      let(statement), charge(net, scope)               a `let`; the budget walk
      included_statically(optional, scope, label)      the budget walk's guess at a `?`
      expr(e, x, scope, label) / repeat(e, x, scope)   a network expression from tensor x -> its output
      add(kind, attrs, inputs, shape, span, scope, name, ...) -> name   a node added to the graph
      node_count(), real_path(), input_shape()         layers built; the spec's path; the input volume
    The state they may read: graph, bindings, globals, globals_named, defaults, defs, steps,
    repeats, strict, optional_names, errors."""
    charge_first = True  # walk the budget before expanding (elaborate() turns it off: see above)

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
        self.let_spans: dict = {}
        self.used: set[str] = set()
        self.steps = 0
        self.repeats: list[int] = []  # counts of the repeats being expanded, outermost first
        self.sites: dict = {}     # id(Call) -> (arguments matched to the schema, variables they read)
        self.bound: dict = {}     # (id(Call), argument values) -> (attrs, defaults)
        self.inferred: dict = {}  # (kind, id(attrs), input shapes) -> (output shape, warnings)
        self.graph: Graph | None = None
        self.taken: set[str] = {"input"}  # layer names and scope paths given out
        self.globals_named: set[str] = set()
        self.errors: list[Diagnostic] = []  # independent errors recorded so far
        self.error_keys: set = set()
        self.read_files: set = set()  # id of each included Program whose statements took effect
        self.label_numbers: dict = {}  # full label -> the last number its copies were given
        self.def_params: dict = {}    # def name -> (the Def, its parameters' names)
        self.param_data: dict = {}    # id(Def) -> (it, its Params: their defaults' values are this elaboration's)
        self.taken_log: list | None = None  # names given out, in order, while a block is recorded (replay.py)
        self.opt_log: list | None = None    # optionals met, likewise
        self.auto_named = 0           # unlabelled optional groups numbered so far
        self.deepest = 0              # the most blocks open at once
        self.visits = 0               # network expressions expanded (the budget walk's work is below it)
        self.check_at = CHECK_AT      # steps or visits at which the budget walk runs, if it has not
        self.walked = False           # whether the budget walk has run
        self.network_errors = 0       # errors recorded before the network's expansion began

    # ---- statements ---------------------------------------------------------------
    def run(self) -> Graph:
        try:
            graph = self.expand()
        except CnnError as err:
            if not self.errors or err.usage or err.others or err.truncated:  # the latter: made of self.errors
                raise
            if not isinstance(err, Poisoned):
                self.errors.append(err.diagnostic())
            raise CnnError.of(self.errors) from None
        if self.errors:
            raise CnnError.of(self.errors)
        unused = sorted(set(self.bindings) - self.used - self.program.names)
        if unused:
            names = sorted(self.globals_named | {o.name for o in self.graph.optionals})
            raise CnnError(f"-D {unused[0]}=... binds nothing in {self.path}", usage=True,
                           hint=f"the spec's variables and optionals: {', '.join(names) or 'none'}")
        return graph

    def expand(self) -> Graph:
        self.statements(self.program, seen=None)  # the spec's real path: only for an include not yet read
        if self.program.net is None:
            raise CnnError(f"{self.path}: no network: the file has statements but no network expression",
                           hint="end the file with the network, e.g. `CONV(16, 3) - RELU - FC(10)`", code="E304")
        shape, span, warning = self.input_shape()
        self.graph = Graph(input_shape=shape, source=shown_path(self.path), input_span=span)
        if warning:
            self.graph.warnings.append(warning)
        try:
            out = self.network()
        except _Refused as refused:
            raise refused.err from None
        self.graph.output = out
        self.graph.lets = {k: v for k, v in self.globals.items() if v is not POISON}
        self.graph.optionals = sorted(self.optionals.values(), key=lambda o: (o.span.line, o.span.col))
        return self.graph

    def network(self) -> str:
        """Expand the network; the budget walk first (charge_first), or where the docstring says."""
        self.network_errors = len(self.errors)
        if self.charge_first:
            self.walk()
        try:
            try:
                out = self.network_body(_Scope("", {}, self.globals))
            except RecursionError:
                raise CnnError("the network is nested too deeply to expand", self.program.net.span,
                               hint="name parts with `def` instead of nesting them", code="E401") from None
            if not self.graph.nodes and not self.errors:
                raise CnnError("the network has no layers", self.program.net.span, code="E304")
        except CnnError:
            self.walk()  # a spec the walk refuses gets the walk's error, not what its expansion met
            raise
        if self.errors:
            self.walk()
        return out

    def network_body(self, sc) -> str:
        """Expand the network expression from the input, in the top scope."""
        return self.expr(self.program.net, "input", sc)

    def walk(self):
        """Run the budget walk once. What it refuses (OverBudget) replaces the errors the network's
        expansion has recorded so far: it would have come before them."""
        if self.walked:
            return
        self.walked, self.check_at = True, MAX_STEPS + 1
        try:
            self.charge(self.program.net, _Scope("", {}, self.globals))  # refused before any work when too large
        except CnnError as err:
            del self.errors[self.network_errors:]
            raise _Refused(err) from None

    def real_path(self) -> str:
        return os.path.realpath(self.path)

    def node_count(self) -> int:
        """The layers built so far (the search's memo stands for many with one: search/lean.py)."""
        return len(self.graph.nodes)

    def recover(self, err: CnnError, sc=None):
        """Record an independent error and let elaboration go on; re-raise a usage error, and
        stop at MAX_ERRORS. An error that only echoes an earlier one (`Poisoned`) is dropped."""
        if err.usage:
            raise err
        if isinstance(err, Poisoned):
            return
        notes = list(err.notes)
        for f in reversed(sc.frames if sc is not None else ()):
            if f.kind == "block" and f.span is not None and f.span != err.span and len(notes) < 5:
                notes.append(Note(f.span, f"in block `{f.name}`, called here"))
        d = Diagnostic("error", err.code, err.message, err.span, tuple(Note(*n) for n in notes), err.hint,
                       err.arithmetic, err.layer)
        key = (d.message, d.span and (d.span.source.path, d.span.line, d.span.col))
        if key not in self.error_keys:  # a call in a repeat or a block fails the same way each time
            self.error_keys.add(key)
            self.errors.append(d)
            if len(self.errors) >= MAX_ERRORS:
                raise CnnError.of(self.errors, truncated=True)

    def statements(self, program, seen):
        for st in program.statements:
            if isinstance(st, A.Include):
                self.include(st, seen)
            elif isinstance(st, A.InputDecl):
                if self.input_decl is not None:
                    self.recover(CnnError("a second `input` line", st.span, code="E207",
                                          notes=((self.input_decl.span, "the input is first declared here"),),
                                          hint="a spec declares its input once; --input overrides it"))
                    continue
                self.input_decl = st
            elif isinstance(st, A.Let):
                self.let(st)
            elif isinstance(st, A.Def):
                if st.name in CALLABLE:
                    self.recover(CnnError(f"a block cannot be called {st.name}: that is a layer kind", st.span,
                                          hint="choose another name, e.g. a lower-case one", code="E207"))
                    continue
                if st.name in self.defs:
                    first = self.defs[st.name].span
                    self.recover(CnnError(f"block `{st.name}` is already defined", st.span, code="E207",
                                          notes=((first, f"`{st.name}` is first defined here"),),
                                          hint="define each block once (an included file's blocks count too)"))
                    continue
                self.defs[st.name] = st
            elif isinstance(st, A.Default):
                try:
                    self.default(st)
                except CnnError as err:
                    self.recover(err)

    def let(self, st: A.Let):
        if st.name in self.let_spans:
            first = self.let_spans[st.name]
            return self.recover(CnnError(f"`{st.name}` is already bound", st.span, code="E207",
                                         notes=((first, f"`{st.name}` is first bound here"),),
                                         hint=f"bind each name once; -D {st.name}=... overrides it from the command line"))
        self.let_spans[st.name] = st.span
        self.globals_named.add(st.name)
        if st.name in self.bindings:
            self.used.add(st.name)
            self.globals[st.name] = self.binding(st.name)
            return
        try:
            self.globals[st.name] = self.let_value(st)
        except CnnError as err:
            self.globals[st.name] = POISON  # its uses would only repeat this error
            self.recover(err)

    def let_value(self, st: A.Let):
        """The value of a `let`'s expression (the lets before it bound)."""
        return self.value(st.value, _Scope("", {}, self.globals))

    def include(self, st: A.Include, seen):
        if st.program is None:  # a Program from `program.parse` holds its includes already
            from .program import resolve
            st = resolve(st, seen if seen is not None else (self.real_path(),))
        if id(st.program) in self.read_files:  # included twice (a diamond): its statements count once
            return
        self.read_files.add(id(st.program))
        self.statements(st.program, seen)

    def default(self, st: A.Default):
        kind = self.kind_named(st.kind, st.span)
        sc = _Scope("", {}, self.globals)
        values = {}
        for schema, arg in self.match_args(kind, st.args, st.span, st.kind):
            values[schema.name] = (self.check_arg(kind, schema, self.value(arg.value, sc), arg.span), arg.span)
        self.defaults.setdefault(kind.name, {}).update(values)

    def input_shape(self):
        """The input volume (declared, or --input), its span, and a warning when it reads as CxHxW."""
        if self.input_override is not None:
            shape = self.input_override
            if isinstance(shape, str):
                shape = parse_volume(shape)
            shape = tuple(shape)
            return shape, None, chw_warning(shape, None, "--input ")
        decl = self.input_decl
        if decl is None:
            raise CnnError(f"{self.path}: no input volume", self.program.net.span, code="E304",
                           hint="declare it on the first line, e.g. `input 224x224x3` (height x width x channels), "
                                "or pass --input 224x224x3")
        sc = _Scope("", {}, self.globals)
        shape = tuple(self.value(d, sc) for d in decl.dims)
        shape = tuple(int(v) if isinstance(v, float) and v.is_integer() and abs(v) <= MAX_DIM else v for v in shape)
        if (len(shape) not in (1, 3) or any(isinstance(v, bool) or not isinstance(v, int) for v in shape)
                or min(shape) < 1 or max(shape) > MAX_DIM):
            raise CnnError(f"input {'x'.join(map(_show, shape))} is not a volume HxWxC (or a vector length)",
                           decl.span, hint="write e.g. `input 224x224x3`", code="E304")
        return shape, decl.span, chw_warning(shape, decl.span, "input ")

    # ---- the network ------------------------------------------------------------------
    def expr(self, e, x: str, sc: _Scope, label: str | None = None) -> str:
        self.visits += 1
        if self.visits > self.check_at:
            self.walk()
        t = type(e)  # the kinds of expression, most frequent first (no AST class has subclasses)
        if t is A.Call:
            self.step(e.span)
            return self.call(e, x, sc, label)
        if t is A.Label:
            return self.labelled(e, x, sc)
        if t is A.Seq:
            for item in e.items:
                x = self.expr(item, x, sc)
            return x
        if t is A.Optional:
            self.step(e.span)
            opt = self.optional(e, label, sc)
            if not opt.included:
                return x
            if label and not isinstance(e.body, A.Call):  # `name: (...)?` still opens the scope `name`
                return self.labelled(A.Label(label, e.body, e.span), x, sc)
            return self.expr(e.body, x, sc, label)
        if t is A.Repeat:
            return self.repeat(e, x, sc)
        if t is A.Branches:
            self.step(e.span)
            return self.branches(e, x, sc)
        if t is A.Copies:  # only `branches` expands them
            self.recover(CnnError("`** n` copies a branch side by side: it belongs inside braces, beside another "
                                  "branch", e.span, code="E101",
                                  hint="write e.g. `{ ID + (CONV(c, 3, p=1) - BN) ** 4 }`; `*n` repeats in sequence"), sc)
            return x
        raise CnnError(f"not a network expression: {type(e).__name__}", getattr(e, "span", None))

    def labelled(self, e: A.Label, x, sc):
        body = e.body
        if type(body) is A.Call or type(body) is A.Optional:
            return self.expr(body, x, sc, label=e.name)
        path = self.fresh(sc, e.name, labelled=True)
        inner = self.scope(sc, path, Frame("label", path, e.name, span=e.span))
        return self.expr(body, x, inner)

    def repeat(self, e: A.Repeat, x, sc):
        try:
            n = self.count(e.count, sc)
        except CnnError as err:  # recorded; the repeat passes its input through
            self.recover(err, sc)
            return x
        # Too many layers or steps were refused before the expansion began (budget.py): copies of a
        # body that makes nothing cost one iteration, so a count alone is no measure here.
        outer = self.repeats
        if e.index is not None and e.index in sc.env:
            self.recover(CnnError(f"the repeat's index `{e.index}` is already bound here", e.span, code="E207",
                                  hint="name the index otherwise: `*n @j`"), sc)
            return x
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
                before = (x, self.node_count(), len(self.taken), {k: o.uses for k, o in self.optionals.items()})
            env = sc.env if e.index is None else {**sc.env, e.index: i}  # `*n @i`: the body sees i
            x = self.expr(e.body, x, _Scope(sc.prefix, sc.counters, env, sc.frames, sc.stack, sc.params) if n == 1 else
                          _Scope(sc.prefix, sc.counters, env, sc.frames + (Frame("repeat", sc.prefix, rid, i, n, e.span, variable=e.index),),
                                 sc.stack, sc.params))
            if i == 0 and n > 1:
                made = self.node_count() - before[1]
                total = made * n * math.prod(self.repeats[:-1])
                if total > MAX_NODES:  # known after one iteration, instead of after a million nodes
                    counts = " * ".join(map(str, self.repeats))
                    raise CnnError(f"the repeats make {total:,} layers, more than the {MAX_NODES:,} a spec may have",
                                   e.count.span, code="E401", arithmetic=f"{counts} copies of {made} layer{'s' * (made != 1)} = {total:,}",
                                   hint="check the counts: is a variable bound to the wrong value?")
            if i == 0 and n > 1 and not self.reads_index(e) and before[:3] == (x, self.node_count(), len(self.taken)):
                # the body made nothing and named nothing (`(RELU*0)*1000000`, an optional switched
                # off), and its index, if any, is read nowhere in it: every iteration would do the same,
                # so a million of them cost nothing
                for k, o in self.optionals.items():
                    o.uses += (o.uses - before[3].get(k, 0)) * (n - 1)
                break
        return x

    def reads_index(self, e: A.Repeat) -> bool:
        """Whether the body of `*n @i` reads `i` (itself or through a block's arguments)."""
        if e.index is None:
            return False
        names = set()
        A.mentions(e.body, self.defs, names, set())
        return e.index in names

    def optional(self, e: A.Optional, label, sc):
        """Decide a `?`: a -D binding, a `let`, or a block parameter of its name; else included."""
        site = (e.span.source.path, e.span.line, e.span.col)
        name = self.optional_names.get(site)
        if name is None:
            name = e.switch(label)
            if name is None:
                name = f"optional{len(self.optional_names) + 1}"
                self.auto_named += 1
            self.optional_names[site] = name
        included, source = True, "default"
        if name in sc.params:  # per call: def block(c, shortcut=off) = ... shortcut: (...)?
            included, source = sc.env[name], "parameter"
        elif name in self.bindings:
            self.used.add(name)
            raw, source = self.bindings[name], "-D"
            if isinstance(raw, str) and raw.strip().isidentifier() and raw.strip() not in BOOLS:
                raise CnnError(f"-D {name}={raw}: optional `{name}` is switched on or off, not {raw}", usage=True,
                               hint=f"write -D {name}=off to drop it, -D {name}=on to keep it",
                               notes=((e.span, f"the optional `{name}`"),))
            included = self.binding(name)
        elif name in self.globals_named:
            included, source = self.globals[name], "let"
        if isinstance(included, int) and not isinstance(included, bool) and included in (0, 1):
            included = bool(included)
        if not isinstance(included, bool):
            self.recover(CnnError(f"optional `{name}` is bound to {_show(included)}, not on/off", e.span, code="E206",
                                  hint=f"write -D {name}=off to drop it, -D {name}=on to keep it"), sc)
            included = True
        key = site + (included,)
        if key not in self.optionals:
            self.optionals[key] = Optional_(name, e.span, included, source)
        opt = self.optionals[key]
        opt.uses += 1
        if self.opt_log is not None:
            self.opt_log.append((site, name, e.span, included, source))
        return opt

    def branches(self, e: A.Branches, x, sc):
        outs, asts = [], []  # a branch `b ** n` is n branches
        for b in e.items:
            made = self.copies(b, x, sc) if isinstance(b, A.Copies) else [self.expr(b, x, sc)]
            outs += made
            asts += [b] * len(made)
        if len(outs) < 2:  # `{ ID + b ** 0 }`: the one branch left is no join
            return outs[0] if outs else x
        kind = KINDS[e.join]
        try:
            shape = kind.out_shape({}, [self.graph.shape_of(o) for o in outs])
        except ShapeError as err:
            notes = tuple((self.where(o, b), f"this branch gives {fmt_shape(self.graph.shape_of(o))}")
                          for o, b in zip(outs, asts))
            raise CnnError(err.message, e.span, arithmetic=err.arithmetic, hint=err.hint, notes=notes[:2],
                           code="E302") from None
        return self.add(kind, {}, outs, shape, e.span, sc, self.fresh(sc, kind.name.lower()), site=self.site(e))

    def copies(self, e: A.Copies, x, sc) -> list[str]:
        """The outputs of `b ** n @i`: n copies of the branch, side by side, each reading x (copy i sees i)."""
        try:
            n = self.count(e.count, sc)
            if n > MAX_COPIES:
                raise CnnError(f"{n:,} copies of a branch are more than the {MAX_COPIES:,} one join may take",
                               e.count.span, code="E401", hint="check the count: is a variable bound to the wrong value?")
            if e.index is not None and e.index in sc.env:
                raise CnnError(f"the copies' index `{e.index}` is already bound here", e.span, code="E207",
                               hint="name the index otherwise: `** n @j`")
        except CnnError as err:  # recorded; the copies give no branch
            self.recover(err, sc)
            return []
        outs = []
        for i in range(n):
            self.step(e.span)
            env = sc.env if e.index is None else {**sc.env, e.index: i}
            outs.append(self.expr(e.body, x, _Scope(sc.prefix, sc.counters, env, sc.frames, sc.stack, sc.params)))
        return outs

    def where(self, name, branch_ast) -> Span:
        return self.graph[name].span if name in self.graph else branch_ast.span

    def call(self, c: A.Call, x, sc, label):
        if c.name in self.defs:
            return self.block(self.defs[c.name], c, x, sc, label)
        try:
            kind = CALLABLE.get(c.name) or self.kind_named(c.name, c.span, sc)
            attrs, defaults = self.bind(kind, c, sc)
        except CnnError as err:  # a name or argument error: recorded; the layer passes its input through
            self.recover(err, sc)
            return x
        if kind.name == "ID":
            return x
        if kind.flat_input and len(self.graph.shape_of(x)) == 3:
            flat = KINDS["FLATTEN"]
            shape = flat.out_shape({}, [self.graph.shape_of(x)])
            x = self.add(flat, {}, [x], shape, c.span, sc, self.fresh(sc, "flatten"), implicit=True)
        shape, warnings = self.infer(kind, attrs, [x], c.span)
        name = self.fresh(sc, label, labelled=True) if label else self.fresh(sc, c.name.lower())
        return self.add(kind, attrs, [x], shape, c.span, sc, name, defaults=defaults, warnings=warnings,
                        site=self.site(c))

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
            if self.strict:
                raise CnnError(w.message, span, arithmetic=w.arithmetic, hint=w.hint, code="E303") from None
            warnings.append(Diagnostic("warning", "W301", w.message, span, hint=w.hint, arithmetic=w.arithmetic))
            shape = w.shape
        except ShapeError as err:
            shown = fmt_shape(ins[0])
            message = err.message if f" {shown}" in err.message else f"{err.message} (input {shown})"
            raise CnnError(message, span, arithmetic=err.arithmetic,
                           hint=err.hint, code="E301") from None
        # a kind's rule let a non-integer through: never to a backend (int subclasses, such as the
        # search's formula-carrying Sym, are whole numbers; bool is not a size)
        if any(not isinstance(d, int) or isinstance(d, bool) for d in shape):
            raise CnnError(f"{kind.name} output {fmt_shape(shape)} is not whole numbers", span, code="E204",
                           hint="sizes, counts and strides are whole numbers")
        if max(shape) > MAX_DIM:
            raise CnnError(f"{kind.name} output {fmt_shape(shape)} is too large", span, code="E301",
                           hint=f"a dimension over {MAX_DIM:,} is beyond what PyTorch and ONNX Runtime handle")
        return shape, warnings

    def add(self, kind, attrs, inputs, shape, span, sc, name, implicit=False, defaults=None, warnings=(), site=None) -> str:
        if warnings:  # shared by every node of a call site: give each its layer and its call trace
            warnings = [self.located(w, name, sc) for w in warnings]
        node = Node(name, kind.name, attrs, list(inputs), span, shape, sc.frames, implicit,
                    {} if defaults is None else defaults, {"warnings": list(warnings)} if warnings else {}, site)
        if self.node_count() >= MAX_NODES:
            raise CnnError(f"the network expands to more than {MAX_NODES:,} layers", span, code="E401")
        if warnings:
            self.graph.warnings.extend(warnings)
        self.graph.add(node)
        return name

    def site(self, e) -> Site:
        """What a call (or a join's braces) wrote, as plain data (`_origin`)."""
        return _origin(e, _site)

    def params_of(self, d: A.Def) -> tuple:
        """A def's parameters as plain data: their defaults' text (`_origin`), and values, which
        depend on this elaboration's `let`s and -D values: worked out once per def."""
        hit = self.param_data.get(id(d))
        if hit is None or hit[0] is not d:
            params, used = [], set(self.used)
            for p, text in zip(d.params, _origin(d, _default_texts)):
                value = None
                if p.default is not None:
                    try:  # as block_args evaluates a default: in the global scope
                        value = self.value(p.default, _Scope("", {}, self.globals))
                    except CnnError:  # a call that relies on it reports the error
                        pass
                params.append(Param(p.name, text, value))
            self.used.intersection_update(used)  # a default no call relies on reads nothing
            hit = self.param_data[id(d)] = (d, tuple(params))
        return hit[1]

    def located(self, w: Diagnostic, layer: str, sc) -> Diagnostic:
        blocks = [f for f in reversed(sc.frames) if f.kind == "block" and f.span is not None][:3]
        calls = tuple(Note(f.span, (f"layer `{layer}` " if i == 0 else "") + f"in block `{f.name}`, called here")
                      for i, f in enumerate(blocks))
        return Diagnostic(w.severity, w.code, w.message, w.span, calls, w.hint, w.arithmetic, layer)

    def step(self, span):
        self.steps += 1
        if self.steps > self.check_at and not self.walked:
            self.walk()
        if self.steps > MAX_STEPS:
            raise CnnError(f"the spec takes more than {MAX_STEPS:,} steps to expand", span, code="E401",
                           hint="a repeat count is probably far larger than meant")

    def block(self, d: A.Def, c: A.Call, x, sc, label):
        if d.name in sc.stack:
            chain = " -> ".join(sc.stack[sc.stack.index(d.name):] + (d.name,))
            self.recover(CnnError(f"block `{d.name}` calls itself ({chain})", c.span, code="E401",
                                  hint="blocks cannot recurse; repeat with `*N` instead"), sc)
            return x
        if len(sc.stack) >= MAX_BLOCK_DEPTH:
            raise CnnError(f"blocks nested more than {MAX_BLOCK_DEPTH} deep", c.span, code="E401")
        env = dict(self.globals)
        try:
            bound = tuple(self.block_args(d, c, sc))
        except CnnError as err:  # recorded; the block passes its input through
            self.recover(err, sc)
            return x
        for (param, v) in bound:
            env[param] = v
        inst = self.fresh(sc, label, labelled=True) if label else self.fresh(sc, d.name)
        params = self.def_params.get(d.name)
        if params is None or params[0] is not d:
            params = self.def_params[d.name] = (d, frozenset(p.name for p in d.params))
        inner = self.scope(sc, inst, Frame("block", inst, d.name, span=c.span, params=self.params_of(d),
                                           written=self.site(c).args, args=bound, defined=d.span),
                           env=env, call=d.name, params=params[1])
        if len(inner.stack) > self.deepest:
            self.deepest = len(inner.stack)
        try:
            return self.block_body(d, x, inner)
        except CnnError as err:
            # the fault is in the block's text; say which call made it (a short call trace)
            if err.span is not None and err.span != c.span and len(err.notes) < 5 and not err.others and not err.truncated:
                err.notes = err.notes + ((c.span, f"in block `{d.name}`, called here"),)
            raise

    def block_body(self, d: A.Def, x, inner) -> str:
        """Expand a block's body from x in its own scope (`inner`, whose last frame is the call's)."""
        return self.expr(d.body, x, inner)

    def scope(self, sc, path, frame, env=None, call=None, params=None):
        if frame.path != path:
            frame = Frame(frame.kind, path, frame.name, frame.index, frame.count, frame.span, frame.params,
                          frame.written, frame.args, frame.variable, frame.defined)
        return _Scope(path + ".", {}, sc.env if env is None else env, sc.frames + (frame,),
                      sc.stack + ((call,) if call else ()), sc.params if params is None else params)

    def fresh(self, sc: _Scope, base: str, labelled=False) -> str:
        """A full name unique in the graph: labels as written, others numbered per scope."""
        taken = self.taken
        if labelled:
            first = name = sc.prefix + base
            n = self.label_numbers.get(first, 1)  # the last number given: a label repeated 50,000
            while name in taken:                   # times costs 50,000 tries, not 50,000**2 / 2
                n += 1
                name = f"{first}_{n}"
            self.label_numbers[first] = n
        else:
            while True:
                n = sc.counters[base] = sc.counters.get(base, 0) + 1
                # relu6 -> relu6_1, not relu61
                name = f"{sc.prefix}{base}{'_' if base[-1:].isdigit() else ''}{n}"
                if name not in taken:
                    break
        taken.add(name)
        if self.taken_log is not None:
            self.taken_log.append(name)
        return name


_ORIGINS: dict = {}  # id(AST node) -> (it, its plain data): ids stay unique while the node is held here
MAX_ORIGINS = 20_000  # then it starts afresh: a node pins its text (a live page parses a new one per keystroke)


def _origin(e, make):
    """`make(e)`, the plain data of an AST node, made once per node whatever elaborates it: the
    parse cache hands every load of a text, and every member of a search, the same nodes."""
    hit = _ORIGINS.get(id(e))
    if hit is None or hit[0] is not e:
        if len(_ORIGINS) >= MAX_ORIGINS:
            _ORIGINS.clear()
        hit = _ORIGINS[id(e)] = (e, make(e))
    return hit[1]


def _site(e) -> Site:
    if type(e) is A.Branches:
        return Site(e.join, (), e.span)
    return Site(e.name, tuple((a.name, _text(a.value)) for a in e.args), e.span)


def _default_texts(d: A.Def) -> tuple:
    return tuple(None if p.default is None else _text(p.default) for p in d.params)


def _text(e) -> str | None:
    """A value expression as the spec writes it (lang/printer.py); None where it has no spelling (an
    AST built by code)."""
    try:
        return format_value(e)
    except CnnError:
        return None


def chw_warning(shape, span, what="input ") -> Diagnostic | None:
    """PyTorch writes volumes CxHxW: `input 3x224x224` is most likely meant as 224x224x3."""
    if len(shape) != 3:
        return None
    c, h, w = shape
    if c <= 4 and h >= 16 and w >= 16 and min(h, w) >= 4 * c:
        return Diagnostic("warning", "W302", f"{what}{c}x{h}x{w} is {c} high and {h} wide with {w} channels: "
                          f"volumes are height x width x channels (HxWxC)", span,
                          hint=f"PyTorch's order is CxHxW: for {c} channels of {h}x{w}, write {what}{h}x{w}x{c}")
    return None


def parse_volume(text: str) -> tuple:
    """`224x224x3` (or a vector length `784`) -> a shape tuple; a usage error otherwise."""
    try:
        dims = tuple(int(v) for v in text.lower().replace(",", "x").split("x"))
    except ValueError:
        dims = ()
    if len(dims) not in (1, 3) or min(dims) < 1 or max(dims) > MAX_DIM:
        raise CnnError(f"--input {text!r} is not a volume", usage=True, code="E501",
                       hint="write height x width x channels, e.g. --input 224x224x3")
    return dims


_Elaborator = Elaborator  # its name before it was public


class _Plain(Replay, Memoised, Elaborator):
    """The elaborator of `elaborate()`: the budget walk only where it can matter (the module's
    docstring); arguments and shapes kept across elaborations (memo.py), and block expansions
    (replay.py)."""
    charge_first = False

    def __init__(self, *args):
        super().__init__(*args)
        self.start_memo()
        self.start_replay()
