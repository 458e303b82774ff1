"""Layer and block arguments: matched to the kind's schema, checked, defaulted, memoised.

A mixin of the elaborator (elaborate.py). A call's attributes are computed once
per call site and per values of the variables its arguments read, and shared,
read-only, by every node built from it.

    >>> import cnndsl
    >>> cnndsl.loads("input 8x8x3\\nCONV(4, 3, stride=2)").graph.nodes[0].attrs["s"]
    (2, 2)
"""
from __future__ import annotations

from . import astnodes as A
from ..errors import CnnError
from ..kinds import CALLABLE, KINDS, MAX_DIM, Kind, ShapeError
from .values import _Scope, _close_matches, show as _show


class Arguments:
    """Binding of layer and block arguments; needs `defs`, `defaults`, `sites`, `bound`, `globals`."""

    def kind_named(self, name, span, sc=None) -> Kind:
        if name in CALLABLE:
            return CALLABLE[name]
        memo = self.__dict__.setdefault("_close_names", {})  # difflib costs ~0.1 ms: once per name, not per call
        if name not in memo:
            upper = {c.upper(): c for c in list(CALLABLE) + list(self.defs)}
            memo[name] = [upper[m] for m in _close_matches(name.upper()[:100], list(upper), 1, 0.6)]
        close = memo[name]
        if sc is not None and name in sc.env:
            hint = f"`{name}` is a variable; a repeat count is written `(...)*{name}`"
        elif close:
            hint = f"did you mean {close[0]}?"
        else:
            hint = "layers: " + ", ".join(k.name for k in KINDS.values() if not k.join)
        raise CnnError(f"unknown layer or block `{name}`", span, hint=hint, code="E201")

    def match_args(self, kind: Kind, args, span, written):
        positional = [a for a in args if a.name is None]
        if len(positional) > len(kind.args):
            raise CnnError(f"{written} takes at most {len(kind.args)} positional argument{'s' * (len(kind.args) != 1)}"
                           f"{' (' + ', '.join(a.name for a in kind.args) + ')' if kind.args else ''}, "
                           f"got {len(positional)}", positional[len(kind.args)].span, code="E203")
        if positional and len(positional) < len(kind.args) and kind.positional_together:
            names = ", ".join(a.name for a in kind.args)
            raise CnnError(f"{written} takes its {len(kind.args)} arguments ({names}) all by position or by name, "
                           f"got {len(positional)} by position", positional[0].span, code="E203",
                           hint=f"write all {len(kind.args)}, e.g. {written}({', '.join('1' for _ in kind.args)}), or name the ones you mean, "
                                f"e.g. {written}({kind.args[-1].name}=1)")
        pairs = list(zip(kind.args, positional))
        seen = {s.name for s, _ in pairs}
        for a in args:
            if a.name is None:
                continue
            schema = kind.arg(a.name)
            if schema is None:
                names = [n for s in kind.args for n in (s.name, *s.aliases)]
                close = _close_matches(a.name, names, 1)
                raise CnnError(f"{written} has no argument `{a.name}`", a.span, code="E202",
                               hint=(f"did you mean `{close[0]}`? " if close else "")
                               + f"{written} takes {', '.join(s.name for s in kind.args) or 'no arguments'}")
            if schema.name in seen:
                raise CnnError(f"{written}: `{schema.name}` is given twice", a.span, code="E202")
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
            raw = [self.word_or_value(schema, arg, sc, c.name) for schema, arg in pairs]
            hit = self.bound[key] = self.bind_values(kind, c, pairs, raw)
        return hit  # shared by every node of this call site and arguments: read-only

    def word_or_value(self, schema, arg, sc, written):
        """An argument's value; a name that is neither bound nor a word, where the argument takes words
        (`mode=trilinear`), is a wrong word rather than an unbound variable."""
        try:
            return self.value(arg.value, sc)
        except CnnError as err:
            if not (schema.choices and isinstance(arg.value, A.Var) and err.code == "E205"):
                raise
            raise CnnError(f"{written}'s `{schema.name}` is one of {', '.join(schema.choices)}"
                           f"{'' if schema.type == 'word' else ' or a number'}, got {arg.value.name}", arg.value.span,
                           code="E204", hint=f"write e.g. {schema.name}={schema.choices[-1]}") from None

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
            elif c.bare and not user and schema.name in kind.bare:  # a `default` replaces the built-in meaning
                values[schema.name] = kind.bare[schema.name]
                defaults[schema.name] = (values[schema.name], f"bare {c.name}")
            elif schema.default is None:
                what = f"{schema.name} ({schema.doc})" if schema.doc else schema.name
                example = ", ".join(str(kind.bare.get(s.name, "...")) for s in kind.args if s.default is None)
                if c.bare and user:
                    line = next(iter(user.values()))[1].line
                    raise CnnError(f"bare {c.name} needs {what}: `default {kind.name}(...)` at line {line} does not give it",
                                   c.span, hint=f"give it there, e.g. `default {kind.name}({example})`", code="E203")
                raise CnnError(f"{c.name} needs {what}", c.span, code="E203",
                               hint=f"write {c.name}({example}), or set `default {kind.name}({example})`")
        try:
            return kind.bind(values), defaults
        except ShapeError as err:
            raise CnnError(err.message, c.span, arithmetic=err.arithmetic, hint=err.hint, code="E204") from None

    def check_arg(self, kind: Kind, schema, v, span, written=None):
        written = written or kind.name
        where = f"{written}'s `{schema.name}`"
        t = schema.type
        if isinstance(v, str) and v in schema.choices:  # a word it takes (`p=tf_same`, `kernel=adaptive`)
            return v
        if t == "bool":
            if isinstance(v, bool):
                return v
            if isinstance(v, int) and v in (0, 1):
                return bool(v)
            raise CnnError(f"{where} must be true or false, got {_show(v)}", span, code="E204")
        if t == "float":
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise CnnError(f"{where} must be a number, got {_show(v)}", span, code="E204")
            lo, hi = schema.lo, schema.hi
            if (lo is not None and v < lo) or (hi is not None and v >= hi):
                rng = f"at least {lo}" if hi is None else f"in [{lo}, {hi:g})"
                raise CnnError(f"{where} must be {rng}, got {v}", span, code="E204")
            return float(v)
        if t == "word":
            raise CnnError(f"{where} is one of {', '.join(schema.choices)}, got {_show(v)}", span, code="E204")
        if t in ("pair", "padding"):
            items = v if isinstance(v, tuple) else (v,)
            if len(items) not in (1, 2):
                raise CnnError(f"{where} takes one size or two (height, width), got {_show(v)}", span, code="E204")
            items = tuple(self.check_int(where, i, schema.lo, span, extra=" or " + "/".join(schema.choices) if t == "padding" else "")
                          for i in items)
            return items if isinstance(v, tuple) else items[0]
        if t == "int":
            return self.check_int(where, v, schema.lo, span, extra=" or " + "/".join(schema.choices) if schema.choices else "")
        raise AssertionError(t)

    def check_int(self, where, v, lo, span, extra="") -> int:
        """A whole number (3.0 is 3: a float that is whole becomes an int here, so no float ever
        reaches a shape, a count or a backend; 2.5 is an error)."""
        if isinstance(v, float) and v.is_integer() and abs(v) <= 2 * MAX_DIM:
            v = int(v)
        if isinstance(v, bool) or not isinstance(v, int):
            raise CnnError(f"{where} must be a whole number{extra}, got {_show(v)}", span, code="E204")
        if lo is not None and v < lo:
            raise CnnError(f"{where} must be at least {lo}, got {v}", span, code="E204")
        if v > MAX_DIM:
            raise CnnError(f"{where} is {v:,}; sizes stay below {MAX_DIM:,}", span, code="E204")
        return v

    def block_args(self, d: A.Def, c: A.Call, sc):
        names = [p.name for p in d.params]
        given = {}
        positional = [a for a in c.args if a.name is None]
        if len(positional) > len(names):
            raise CnnError(f"block `{d.name}` takes {len(names)} argument{'s' * (len(names) != 1)}"
                           f"{' (' + ', '.join(names) + ')' if names else ''}, got {len(positional)}", c.span, code="E203",
                           notes=((d.span, f"`{d.name}` is defined here"),))
        for p, a in zip(d.params, positional):
            given[p.name] = self.value(a.value, sc)
        for a in c.args:
            if a.name is None:
                continue
            if a.name not in names:
                close = _close_matches(a.name, names, 1)
                raise CnnError(f"block `{d.name}` has no parameter `{a.name}`", a.span, code="E202",
                               hint=f"did you mean `{close[0]}`?" if close else f"its parameters: {', '.join(names) or 'none'}")
            if a.name in given:
                raise CnnError(f"`{a.name}` is given twice", a.span, code="E202")
            given[a.name] = self.value(a.value, sc)
        out = []
        for p in d.params:
            if p.name in given:
                out.append((p.name, given[p.name]))
            elif p.default is not None:
                out.append((p.name, self.value(p.default, _Scope("", {}, self.globals))))
            else:
                raise CnnError(f"block `{d.name}` needs `{p.name}`", c.span, code="E203",
                               hint=f"call it as {d.name}({', '.join(names)})",
                               notes=((d.span, f"`{d.name}` is defined here"),))
        return out


_UNSET = object()
UNSET = _UNSET  # public: a variable that is not bound (the search's memo keys)


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
    elif isinstance(e, A.Func):
        for i in e.args:
            yield from _free_vars(i)


def _typed(v):
    """A hashable key that tells 1 from true and 1 from 1.0 (they validate differently)."""
    if isinstance(v, (list, tuple)):
        return tuple(_typed(i) for i in v)
    return (type(v), v)


typed = _typed  # public: the search keys its memos by typed values, as memo.py does
