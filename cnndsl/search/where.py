"""`--where EXPR`: a condition on a member's variables (and figures), checked without `eval`.

    >>> w = Where("N >= M and K != 1", variables={"N", "M", "K"})
    >>> w({"N": 3, "M": 2, "K": 0}, None), w.variables_only
    (True, True)
    >>> Where("params < 1e6 and N % 2 == 1", {"N"})({"N": 3}, {"params": 5})
    True

The expression is Python's syntax for comparisons, `and`/`or`/`not` and arithmetic, over the
space's variables and the measures (params, macs, flops, memory, depth, rf, layers). Anything else
is a usage error that names what is allowed, and so is an expression longer than MAX_TEXT
characters, nested deeper than MAX_DEPTH, or with a constant part too large to compute (a power
tower). While members are checked, a number past 2**MAX_BITS makes the condition false for that
member instead of computing a number of millions of digits.
"""
from __future__ import annotations

import ast
import operator

from ..errors import CnnError

MEASURES = ("params", "macs", "flops", "memory", "depth", "rf", "layers")
_BIN = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
        ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow}
_CMP = {ast.Lt: operator.lt, ast.LtE: operator.le, ast.Gt: operator.gt, ast.GtE: operator.ge,
        ast.Eq: operator.eq, ast.NotEq: operator.ne}
MAX_TEXT = 2000   # characters of an expression
MAX_DEPTH = 200   # operators nested in it (as a spec's operator chains)
MAX_BITS = 1024   # an integer past 2**1024 is an overflow (as a float past ~1.8e308 is)
_WORDS = {"on": True, "off": False, "true": True, "false": False, "True": True, "False": False}


class Where:
    def __init__(self, text: str, variables):
        self.text, self.variables = text, set(variables)
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise self._error(f"--where {text.encode('utf-8', 'backslashreplace').decode()[:60]!r} is not UTF-8 text") \
                from None
        if len(text) > MAX_TEXT:
            raise self._error(f"--where has {len(text):,} characters, more than the {MAX_TEXT:,} it may have")
        try:
            self.tree = ast.parse(text.strip(), mode="eval").body
        except SyntaxError as e:
            raise self._error(f"--where {text!r} is not an expression ({e.msg})") from None
        except (RecursionError, MemoryError):
            raise self._error(f"--where is nested more than {MAX_DEPTH} deep") from None
        self.names = set()
        self._check(self.tree, 0)
        self.variables_only = not (self.names & set(MEASURES))

    def _error(self, message):
        return CnnError(message, usage=True, code="E501",
                        hint=f"write a condition on the variables ({', '.join(sorted(self.variables)) or 'none'}) "
                             f"or the measures ({', '.join(MEASURES)}), e.g. --where 'N >= M and params < 1e6'")

    def _check(self, e, depth):
        """Allowed nodes only; True when `e` is a constant, whose value is computed here once, so
        that a constant too large to compute (`(9**64)**64`) is refused before any member."""
        if depth > MAX_DEPTH:
            raise self._error(f"--where is nested more than {MAX_DEPTH} deep")
        depth += 1
        if isinstance(e, ast.Name):
            if e.id in _WORDS:
                return True
            if e.id not in self.variables and e.id not in MEASURES:
                raise self._error(f"--where: `{e.id}` is not a variable of the space")
            self.names.add(e.id)
            return False
        if isinstance(e, ast.Constant):
            if isinstance(e.value, (str, bytes, complex)) or e.value is None or e.value is Ellipsis:
                raise self._error(f"--where: {e.value!r} is not a number")
            return True
        if isinstance(e, ast.BoolOp):
            parts = e.values
        elif isinstance(e, ast.UnaryOp) and isinstance(e.op, (ast.Not, ast.USub, ast.UAdd)):
            parts = [e.operand]
        elif isinstance(e, ast.BinOp) and type(e.op) in _BIN:
            parts = [e.left, e.right]
        elif isinstance(e, ast.Compare) and all(type(o) in _CMP for o in e.ops):
            parts = [e.left, *e.comparators]
        else:
            raise self._error(f"--where {self.text!r}: `{ast.unparse(e)[:60]}` is not allowed here")
        constant = all([self._check(v, depth) for v in parts])
        if constant and isinstance(e, ast.BinOp):
            try:
                self._eval(e, {})
            except OverflowError:
                raise self._error(f"--where: `{ast.unparse(e)[:60]}` is too large (numbers stay below 2**{MAX_BITS})") \
                    from None
            except (ZeroDivisionError, TypeError, ValueError):
                raise self._error(f"--where: `{ast.unparse(e)[:60]}` cannot be computed") from None
        return constant

    def __call__(self, choices, figures) -> bool:
        env = dict(choices)
        if figures:
            env.update({m: figures.get(m) for m in MEASURES})
        try:
            return bool(self._eval(self.tree, env))
        except (TypeError, ZeroDivisionError, OverflowError):
            return False

    def _eval(self, e, env):
        if isinstance(e, ast.Name):
            return _WORDS[e.id] if e.id in _WORDS else env.get(e.id)
        if isinstance(e, ast.Constant):
            return e.value
        if isinstance(e, ast.BoolOp):
            vals = (self._eval(v, env) for v in e.values)
            return all(vals) if isinstance(e.op, ast.And) else any(vals)
        if isinstance(e, ast.UnaryOp):
            v = self._eval(e.operand, env)
            return not v if isinstance(e.op, ast.Not) else (-v if isinstance(e.op, ast.USub) else v)
        if isinstance(e, ast.BinOp):
            a, b = self._eval(e.left, env), self._eval(e.right, env)
            if isinstance(e.op, ast.Pow) and (abs(b) > 64 or _bits(a) * abs(b) > MAX_BITS):
                raise OverflowError  # before computing it: (9**64)**64 has 3,900 digits, its **64 250,000
            r = _BIN[type(e.op)](a, b)
            if _bits(r) > MAX_BITS:
                raise OverflowError
            return r
        left = self._eval(e.left, env)
        for op, c in zip(e.ops, e.comparators):
            right = self._eval(c, env)
            if not _CMP[type(op)](left, right):
                return False
            left = right
        return True


def _bits(v) -> int:
    """The size of an integer's magnitude in bits (0 for a float, which overflows by itself)."""
    return abs(v).bit_length() if isinstance(v, int) else 0
