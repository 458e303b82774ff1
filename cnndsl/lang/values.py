"""Values in a spec: numbers, sizes, tuples, symbols, variables and their arithmetic.

A mixin of the elaborator (elaborate.py): it evaluates argument, `let` and count
expressions in a scope, with the limits that keep hostile specs cheap.

    >>> import cnndsl
    >>> cnndsl.loads("input 8x8x3\\nlet n = 2**3 // 3\\nRELU*n").graph.nodes[-1].name
    'relu2'
"""
from __future__ import annotations

from . import astnodes as A
from ..errors import CnnError
from .functions import FUNCTIONS
from ..kinds import WORDS

MAX_NODES = 100_000   # layers a spec may expand to: building and reporting them takes ~2 s
MAX_BLOCK_DEPTH = 100  # blocks open at once (a block calling a block ...)
MAX_COUNT = 1_000_000   # a repeat count (a body that makes nothing may repeat that often)
MAX_NUMBER = 10**18
# Python's True/False as well: `bias=False` means what it means in PyTorch
BOOLS = {"true": True, "on": True, "yes": True, "false": False, "off": False, "no": False, "True": True, "False": False}
# words that mean themselves: the kinds' enumerated arguments (`same`, `valid`, `tf_same`, `bilinear`, ...)
SYMBOLS = {"same", "valid"} | set(WORDS) | set(BOOLS)
POISON = object()  # the value of a `let` whose expression failed: reading it is no new error


class Poisoned(CnnError):
    """A use of a name whose `let` failed (an error already recorded): the elaborator drops it."""


class _Scope:
    """Where an expression is expanded. Made for every block call, label and repeat iteration, so a
    plain class with slots (a frozen dataclass takes three times as long to make); never changed."""
    __slots__ = ("prefix", "counters", "env", "frames", "stack", "params")

    def __init__(self, prefix, counters, env, frames=(), stack=(), params=frozenset()):
        self.prefix = prefix        # "stage2." or ""
        self.counters = counters    # base name -> last number used in this scope
        self.env = env              # variables visible here
        self.frames = frames
        self.stack = stack          # block names being expanded, for recursion errors
        self.params = params        # the enclosing block's parameters (they can switch optionals)


def top_scope(env=None) -> _Scope:
    """The top scope over the variables `env` ({} when none): where constants and `let`s evaluate."""
    return _Scope("", {}, {} if env is None else env)


class Values:
    """Evaluation of value expressions; needs `bindings`, `globals`, `globals_named`, `used`."""

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

    def value(self, e, sc: _Scope):
        t = type(e)  # the kinds of value, most frequent first
        if t is A.Num:
            v = e.value
            return v if type(v) is int and -MAX_NUMBER <= v <= MAX_NUMBER else self.number(v, e.span)
        if t is A.Var:
            return self.lookup(e.name, e.span, sc)
        if t is A.BinOp:
            return self.binop(e, self.value(e.left, sc), self.value(e.right, sc))
        if t is A.Func:
            return self.func(e, [self.value(a, sc) for a in e.args])
        if t is A.Str:
            return e.value
        if t is A.Tuple:
            return tuple(self.value(i, sc) for i in e.items)
        if t is A.Dims:
            return tuple(self.number(v, e.span) for v in e.value)
        if t is A.Neg:
            v = self.value(e.operand, sc)
            self.need_number(v, e.operand.span, "-")
            return -v
        raise CnnError(f"not a value: {type(e).__name__}", getattr(e, "span", None), code="E900")

    def lookup(self, name, span, sc):
        if name in sc.env:
            self.used.add(name)
            v = sc.env[name]
            if v is POISON:
                raise Poisoned(f"`{name}` has no value: its `let` failed", span, code="E205")
            return v
        if name in self.bindings and name not in self.globals_named:
            self.used.add(name)
            self.globals[name] = self.binding(name)
            return self.globals[name]
        if name in BOOLS:
            return BOOLS[name]
        if name in SYMBOLS or name in WORDS:  # WORDS: read live, it holds a kind registered later
            return name
        memo = self.__dict__.setdefault("_close_vars", {})  # once per name and scope, not per repeat
        key = (name, len(sc.env), next(iter(sc.env), None))
        if key not in memo:
            memo[key] = _close_matches(name[:100], sorted(sc.env), 1)
        close = memo[key]
        raise CnnError(f"`{name}` is not bound", span, code="E205",
                       hint=(f"did you mean `{close[0]}`? " if close else "")
                       + f"bind it with `let {name} = ...` in the file or `-D {name}=...` on the command line")

    def number(self, v, span):
        if isinstance(v, float) and not abs(v) <= MAX_NUMBER:  # inf, nan (1e400 - 1e400), 1e300
            raise CnnError(f"the number {v:g} is {'not a number' if v != v else 'too large'}", span, code="E206",
                           hint="numbers in a spec stay below 10**18")
        if isinstance(v, int) and abs(v) > MAX_NUMBER:
            raise CnnError(f"the number {v if len(str(v)) < 30 else str(v)[:20] + '...'} is too large", span, code="E206",
                           hint="numbers in a spec stay below 10**18")
        return v

    def need_number(self, v, span, op):
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise CnnError(f"`{op}` needs numbers, got {show(v)}", span, code="E206")

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
                    raise CnnError(f"{a}**{b} is too large", e.span, hint="numbers in a spec stay below 10**18",
                                   code="E206")
                r = a ** b
        except ZeroDivisionError:
            raise CnnError("division by zero", e.span, code="E206") from None
        except (OverflowError, ValueError) as ex:
            raise CnnError(f"cannot compute {e.op}: {ex}", e.span, code="E206") from None
        return self.number(r, e.span) if not isinstance(r, complex) else self.need_number(r, e.span, e.op)

    def func(self, e: A.Func, args):
        """`min(a, b)`, `make_divisible(v, 8)`, ...: lang/functions.py; numbers in, a number out."""
        f = FUNCTIONS.get(e.name)
        if f is None:
            close = _close_matches(e.name, list(FUNCTIONS), 1)
            raise CnnError(f"unknown function `{e.name}`", e.span, code="E205",
                           hint=(f"did you mean `{close[0]}`? " if close else "") + "the functions: " + ", ".join(FUNCTIONS))
        lo, hi = f.arity
        if len(args) < lo or (hi is not None and len(args) > hi):
            want = f"{lo}" if lo == hi else f"at least {lo}" if hi is None else f"{lo} to {hi}"
            raise CnnError(f"`{e.name}` takes {want} argument{'s' * (want != '1')}, got {len(args)}", e.span,
                           code="E206", hint=f"{e.name}: {f.doc}")
        for v, a in zip(args, e.args):
            self.need_number(v, a.span, e.name)
        try:
            r = f.call(args)
        except ZeroDivisionError:
            raise CnnError(f"division by zero in `{e.name}`", e.span, code="E206") from None
        except (OverflowError, ValueError) as ex:
            raise CnnError(f"cannot compute `{e.name}`: {ex}", e.span, code="E206") from None
        return self.number(r, e.span)

    def count(self, e, sc) -> int:
        n = self.value(e, sc)
        if isinstance(n, bool) or not isinstance(n, int):
            if isinstance(n, float) and n.is_integer():
                n = int(n)
            else:
                raise CnnError(f"a repeat count must be a whole number, got {show(n)}", e.span, code="E206")
        if n < 0:
            raise CnnError(f"a repeat count cannot be negative ({n})", e.span, code="E206")
        if n > MAX_COUNT:
            raise CnnError(f"a repeat count of {n:,} is more than the {MAX_COUNT:,} a repeat may have",
                           e.span, code="E401", hint="check the count: is a variable bound to the wrong value?")
        return n


def show(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return v
    if isinstance(v, tuple):
        return "(" + ", ".join(show(i) for i in v) + ")"
    return repr(v)


def _close_matches(word, possibilities, n=3, cutoff=0.6):
    """difflib.get_close_matches, imported when a message needs it (not on every cold start)."""
    import difflib
    return difflib.get_close_matches(word, possibilities, n, cutoff)
