"""Block calls expanded once: what a block's body made is kept and replayed under a new name.

A mixin of the plain elaborator (elaborate.py's `_Plain`), beside memo.py. A block call's
expansion is a function of the `def`, its bound arguments, the shape it is applied to and the
elaboration's environment: the `let` and -D values, the `default`s, which `def` each name
means, --strict, the kinds, and the counts of the repeats around it (their layer limit). Its
names are its instance's (`layer3.identity7.conv2`: nothing outside the instance makes a name
under that prefix), and its scope, counters and variables are its own. So the nodes, scopes,
optionals and names one expansion made are a Template, and a call that agrees on all of the
above takes the template with its instance name and frames swapped in, instead of walking
the body again: ResNet-152's 36 `identity(256)` blocks expand once, and a spec loaded again
(a library's blocks, across specs) costs a copy of its nodes.

    >>> import cnndsl
    >>> net = cnndsl.loads("input 8x8x4\\ndef b(c) = CONV(c, 3, p=1) - RELU\\nb(4) - b(4)")
    >>> [(n.name, n.inputs) for n in net.graph.nodes]
    [('b1.conv1', ['input']), ('b1.relu1', ['b1.conv1']), ('b2.conv1', ['b1.relu1']), ('b2.relu1', ['b2.conv1'])]

What the expansion did besides making nodes is kept and done again: the steps it counted
(the budget walk still runs where it would have, and the step and layer limits refuse at the
same point: a template that would cross one is not used), the optionals it met (their names,
choices and uses), the names it read (`used`) and the -D values it bound on first use. An
expansion that recorded an error or a warning (they point at one call), numbered an
unlabelled optional group (numbers follow the order groups are met in) or ran the budget walk
is not kept.
"""
from __future__ import annotations

from dataclasses import fields

from ..ir import Frame, Node
from ..kinds import CALLABLE, KINDS
from .arguments import _typed
from .budget import MAX_STEPS
from .values import MAX_BLOCK_DEPTH, MAX_NODES


FRAME_FIELDS = tuple(f.name for f in fields(Frame))


def _frame(values: dict) -> Frame:
    """A Frame of its fields' values, made without the frozen dataclass's __init__ (a field at a time
    through object.__setattr__: the most of a replay's time); the same object in every other way."""
    frame = object.__new__(Frame)
    frame.__dict__.update(values)
    return frame


class Template:
    __slots__ = ("nodes", "frames", "out", "taken", "optionals", "used", "globals", "steps", "visits", "depth",
                 "rows")

    def __init__(self, nodes, frames, out, taken, optionals, used, globals_, steps, visits, depth):
        self.nodes = nodes          # (name, op, attrs, inputs, span, shape, frames index, implicit, defaults, site)
        self.frames = frames        # (the frames below the call's scope, their paths without the instance
        #                             name; each node's tuple of them, as indices; for the network itself,
        #                             the tuples themselves)
        self.out = out              # the output's name without the instance name; None: the input itself
        self.taken = taken          # names given out, without the instance name
        self.optionals = optionals  # (site, name, span, included, source) of each optional met, in order
        self.used = used            # names read
        self.globals = globals_     # (name, value) of -D values bound into the globals on first use
        self.steps, self.visits, self.depth = steps, visits, depth
        self.rows = None

    def whole(self, originals) -> list:
        """The network's nodes as Node's fields, their inputs and frames resolved (the network's
        template: replayed under its own names from the input, so they are the same every time)."""
        if self.rows is None:
            self.rows = [(name, op, attrs, tuple("input" if i is None else i for i in inputs), span, shape,
                          originals[at], implicit, defaults, site)
                         for name, op, attrs, inputs, span, shape, at, implicit, defaults, site in self.nodes]
        return self.rows


class Replay:
    """`block_body` with templates; needs the elaborator and memo.py's `memo`."""

    def start_replay(self):
        self.env_seen = None  # (globals size, the environment's number) once worked out

    def environment(self) -> int | None:
        """A number for everything other than the call that an expansion can read (the docstring);
        None when a value cannot be a key."""
        if self.env_seen is not None and self.env_seen[0] == len(self.globals):
            return self.env_seen[1]
        memo = self.memo
        try:
            env = (tuple((k, _typed(v)) for k, v in self.globals.items()),
                   tuple((k, v if isinstance(v, str) else _typed(v)) for k, v in self.bindings.items()),
                   tuple((k, tuple((a, _typed(v), sp.line) for a, (v, sp) in d.items())) for k, d in self.defaults.items()),
                   tuple((k, id(d)) for k, d in self.defs.items()), tuple(sorted(self.globals_named)), self.strict,
                   tuple((k, id(v)) for k, v in CALLABLE.items()), tuple((k, id(v)) for k, v in KINDS.items()))
            number = memo.envs.get(env)
        except TypeError:  # an unhashable binding
            return None
        if number is None:
            memo.pin(*self.defs.values(), *CALLABLE.values(), *KINDS.values())
            number = memo.envs[env] = len(memo.envs)
        self.env_seen = (len(self.globals), number)
        return number

    def block_body(self, d, x, inner):
        env = self.environment()
        frame = inner.frames[-1]
        key = None
        if env is not None:
            try:
                args = self.memo.typed_args.get(id(frame.args))
                if args is None or args[0] is not frame.args:
                    args = self.memo.typed_args[id(frame.args)] = (frame.args, _typed(tuple(v for _, v in frame.args)))
                key = (id(d), args[1], self.graph.shape_of(x), env, tuple(self.repeats))
                hash(key)
            except TypeError:
                key = None
        if key is None:
            return super().block_body(d, x, inner)
        t = self.memo.blocks_done.get(key)
        if t is not None and self.fits(t, len(inner.stack)):
            return self.replay(t, x, frame.path, inner.frames[:-1], len(inner.stack), frame)
        return self.record(key, d, lambda: super(Replay, self).block_body(d, x, inner), frame.path, x,
                           len(inner.frames) - 1, len(inner.stack))

    def network_body(self, sc) -> str:
        """The network itself, as a block called once: a spec elaborated again with nothing changed
        (its text, includes, bindings and input) replays its whole expansion. It is kept the second
        time it is met: an edited text (a new AST every keystroke) is never met twice."""
        env, net = self.environment(), self.program.net
        key = None if env is None else (id(net), self.graph.input_shape, env)
        if key is None:
            return super().network_body(sc)
        t = self.memo.blocks_done.get(key)
        if t is not None and self.fits(t, 0):
            return self.replay(t, "input", "", (), 0, None)
        if key not in self.memo.seen or t is not None:  # met for the first time (or too large to replay)
            self.memo.seen[key] = net
            return super().network_body(sc)
        return self.record(key, net, lambda: super(Replay, self).network_body(sc), "", "input", 0, 0)

    def fits(self, t: Template, stack: int) -> bool:
        """Whether replaying stays inside the limits where expanding would (else expand: it refuses)."""
        if self.steps + t.steps > MAX_STEPS or self.node_count() + len(t.nodes) > MAX_NODES:
            return False
        if stack + t.depth > MAX_BLOCK_DEPTH:
            return False
        if not self.walked and (self.steps + t.steps > self.check_at or self.visits + t.visits > self.check_at):
            self.walk()  # the budget walk, where the expansion would have run it
        return True

    def record(self, key, pin, run, inst, x, outer, stack):
        """run() (an expansion under the name `inst`, from x), kept as a Template when it can be."""
        graph = self.graph
        n0, steps, visits, deepest = len(graph.nodes), self.steps, self.visits, self.deepest
        errors, warnings, walked, auto = len(self.errors), len(graph.warnings), self.walked, self.auto_named
        globals0 = len(self.globals)
        taken_log, opt_log, used = self.taken_log, self.opt_log, self.used
        self.taken_log, self.opt_log, self.used, self.deepest = [], [], set(), stack
        try:
            out = run()
            ok = (len(self.errors) == errors and len(graph.warnings) == warnings and self.walked == walked
                  and self.auto_named == auto)
            template = self.template(inst, x, out, graph.nodes[n0:], outer, self.taken_log, self.opt_log,
                                     set(self.used), list(self.globals.items())[globals0:], self.steps - steps,
                                     self.visits - visits, self.deepest - stack) if ok else None
        finally:
            if taken_log is not None:
                taken_log += self.taken_log
            if opt_log is not None:
                opt_log += self.opt_log
            used |= self.used
            self.taken_log, self.opt_log, self.used = taken_log, opt_log, used
            self.deepest = max(deepest, self.deepest)
        if template is not None:
            memo = self.memo
            memo.pin(pin)
            memo.blocks_done[key] = template
            memo.template_nodes += len(template.nodes) + 1
        return out

    def template(self, inst, x, out, nodes, outer, taken, optionals, used, globals_, steps, visits, depth):
        """The Template of an expansion, or None when a name in it is not under the instance's."""
        cut = len(inst)
        prefix = inst + "." if inst else ""  # the network itself: every name is its own
        made, seen = [], {}   # the frames below the call's scope, each once (nodes of a scope share them)
        tuples, index, originals = [], {}, []
        rows = []
        for n in nodes:
            if not n.name.startswith(prefix) or n.meta:
                return None
            at = index.get(id(n.frames))
            if at is None:
                refs = []
                for f in n.frames[outer:]:
                    i = seen.get(id(f))
                    if i is None:
                        if not f.path.startswith(inst):
                            return None
                        i = seen[id(f)] = len(made)
                        values = {name: getattr(f, name) for name in FRAME_FIELDS}
                        values["path"] = f.path[cut:]
                        made.append(values)
                    refs.append(i)
                at = index[id(n.frames)] = len(tuples)
                tuples.append(tuple(refs))
                originals.append(n.frames)
            inputs = []
            for i in n.inputs:
                if i == x:
                    inputs.append(None)
                elif i.startswith(prefix):
                    inputs.append(i[cut:])
                else:
                    return None
            rows.append((n.name[cut:], n.op, n.attrs, tuple(inputs), n.span, n.out_shape, at, n.implicit,
                         n.defaults, n.site))
        if out != x and not out.startswith(prefix) or any(not t.startswith(prefix) for t in taken):
            return None
        frames = (tuple(made), tuple(tuples), None if inst else originals)
        return Template(rows, frames, None if out == x else out[cut:], tuple(t[cut:] for t in taken),
                        tuple(optionals), frozenset(used), tuple(globals_), steps, visits, depth)

    def replay(self, t: Template, x, inst, outer, stack, call) -> str:
        """The template's nodes from x, under the name `inst`, inside the frames `outer`; `call` is the
        block call's own frame (its span is this call's), None for the network itself."""
        made, tuples, originals = t.frames
        if originals is not None:  # the network itself: the same names, inputs and (immutable) frames
            self.graph.extend([Node(name, op, attrs, list(inputs), span, shape, frames, implicit, defaults, {}, site)
                               for name, op, attrs, inputs, span, shape, frames, implicit, defaults, site
                               in t.whole(originals)])
            self.taken.update(t.taken)
        else:
            new = [call if call is not None and values["kind"] == "block" and values["path"] == "" else
                   _frame({**values, "path": inst + values["path"]}) for values in made]
            frames = [outer + tuple([new[i] for i in refs]) for refs in tuples]
            # one input (most layers) without a comprehension of its own (a function call each in 3.11)
            self.graph.extend([Node(inst + name, op, attrs, ([x if inputs[0] is None else inst + inputs[0]]
                                                             if len(inputs) == 1 else
                                                             [x if i is None else inst + i for i in inputs]),
                                    span, shape, frames[at], implicit, defaults, {}, site)
                               for name, op, attrs, inputs, span, shape, at, implicit, defaults, site in t.nodes])
            self.taken.update([inst + name for name in t.taken])
        if self.taken_log is not None:
            self.taken_log.extend(inst + name for name in t.taken)
        self.replay_optionals(t.optionals)
        self.used |= t.used
        for name, value in t.globals:
            self.globals.setdefault(name, value)
        self.steps += t.steps
        self.visits += t.visits
        if stack + t.depth > self.deepest:
            self.deepest = stack + t.depth
        return x if t.out is None else inst + t.out

    def replay_optionals(self, met):
        from ..ir import Optional_
        names, optionals = self.optional_names, self.optionals
        for site, name, span, included, source in met:
            if site not in names:
                names[site] = name
            key = site + (included,)
            opt = optionals.get(key)
            if opt is None:
                opt = optionals[key] = Optional_(name, span, included, source)
            opt.uses += 1
        if self.opt_log is not None:
            self.opt_log.extend(met)
