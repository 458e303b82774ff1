"""`--where EXPR`: a condition on a member's variables (and figures), checked without `eval`.

    >>> w = Where("N >= M and K != 1", variables={"N", "M", "K"})
    >>> w({"N": 3, "M": 2, "K": 0}, None), w.variables_only
    (True, True)
    >>> Where("params < 1e6 and N % 2 == 1", {"N"})({"N": 3}, {"params": 5})
    True

The expression is Python's syntax for comparisons, `and`/`or`/`not` and arithmetic, over the
space's variables and the measures (params, macs, flops, memory, depth, rf, layers). Anything else
is a usage error that names what is allowed.
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
_WORDS = {"on": True, "off": False, "true": True, "false": False, "True": True, "False": False}


class Where:
    def __init__(self, text: str, variables):
        self.text, self.variables = text, set(variables)
        try:
            self.tree = ast.parse(text.strip(), mode="eval").body
        except SyntaxError as e:
            raise self._error(f"--where {text!r} is not an expression ({e.msg})") from None
        self.names = set()
        self._check(self.tree)
        self.variables_only = not (self.names & set(MEASURES))

    def _error(self, message):
        return CnnError(message, usage=True, code="E501",
                        hint=f"write a condition on the variables ({', '.join(sorted(self.variables)) or 'none'}) "
                             f"or the measures ({', '.join(MEASURES)}), e.g. --where 'N >= M and params < 1e6'")

    def _check(self, e):
        if isinstance(e, ast.Name):
            if e.id in _WORDS:
                return
            if e.id not in self.variables and e.id not in MEASURES:
                raise self._error(f"--where: `{e.id}` is not a variable of the space")
            self.names.add(e.id)
        elif isinstance(e, ast.Constant):
            if isinstance(e.value, str) or e.value is None:
                raise self._error(f"--where: {e.value!r} is not a number")
        elif isinstance(e, ast.BoolOp):
            for v in e.values:
                self._check(v)
        elif isinstance(e, ast.UnaryOp) and isinstance(e.op, (ast.Not, ast.USub, ast.UAdd)):
            self._check(e.operand)
        elif isinstance(e, ast.BinOp) and type(e.op) in _BIN:
            self._check(e.left)
            self._check(e.right)
        elif isinstance(e, ast.Compare) and all(type(o) in _CMP for o in e.ops):
            for v in (e.left, *e.comparators):
                self._check(v)
        else:
            raise self._error(f"--where {self.text!r}: `{ast.unparse(e)}` is not allowed here")

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
            if isinstance(e.op, ast.Pow) and abs(b) > 64:
                raise OverflowError
            return _BIN[type(e.op)](a, b)
        left = self._eval(e.left, env)
        for op, c in zip(e.ops, e.comparators):
            right = self._eval(c, env)
            if not _CMP[type(op)](left, right):
                return False
            left = right
        return True
