"""lark's LALR tables and lexer rules, run by a tighter loop: the same parse in about half the time.

syntax.py parses with `parse(lark, text, start, postlex)` first. lark's own loop spends most of a
token's time in generality this grammar does not use (per-token callbacks, interactive parser
state, a line counter object); this one reads the same tables, the same compiled terminal
patterns and keyword callbacks, and calls the same rule callbacks (the AST builders), so it
makes the same AST. Whatever it does not expect (a character no terminal matches, a token the
table has no action for, an exception anywhere) makes it raise GiveUp, and syntax.py parses
again with lark itself, which raises lark's error for the message. A lark whose internals
differ from 1.x's leaves every parse to lark.
"""
from __future__ import annotations

import threading

_TABLES: dict = {}
MAX_KEYWORDS = 10_000  # distinct names whose keyword check is kept (a generated spec may have many)
_LOCK = threading.Lock()


class GiveUp(Exception):
    """This loop cannot parse the text: lark parses it (and says what is wrong)."""


def parse(lark, text: str, start: str, postlex):
    """The value lark.parse(text, start=start) gives, or GiveUp."""
    try:
        tables = _tables(lark, start)
    except Exception:  # other internals: lark parses
        raise GiveUp from None
    return tables.parse(text, postlex)


def _tables(lark, start):
    key = (id(lark), start)
    t = _TABLES.get(key)
    if t is None or t.lark is not lark:
        with _LOCK:
            t = _TABLES[key] = _Tables(lark, start)
    return t


class _Tables:
    def __init__(self, lark, start):
        from lark.lexer import Token
        from lark.parsers.lalr_analysis import Shift
        self.lark, self.Token, self.Shift = lark, Token, Shift
        frontend = lark.parser
        lexer = frontend.lexer
        basic = getattr(lexer, "lexer", lexer)  # the postlexer's connector wraps the basic lexer
        scanner = basic.scanner
        self.patterns = list(scanner._mres)
        self.callback = dict(basic.callback)     # keyword terminals: NAME `input` becomes INPUT
        self.ignore, self.newline = basic.ignore_types, basic.newline_types
        from lark.lexer import UnlessCallback
        self.unless, self.keywords = UnlessCallback, {}  # token text -> its keyword terminal, or None
        parser = frontend.parser.parser
        table = parser.parse_table
        callbacks = parser.callbacks
        if any(isinstance(k, str) for k in callbacks):  # a callback per terminal: not this loop's
            raise GiveUp
        self.states = table.states
        self.start_state, self.end_state = table.start_states[start], table.end_states[start]
        from lark.parse_tree_builder import ExpandSingleChild
        # each rule's reduce: (size, callback, the symbol it makes, whether it hands its one child on:
        # a `?rule` of one symbol, the precedence chain an operand climbs, done without a call)
        self.reduce = {rule: (len(rule.expansion), callbacks[rule], rule.origin.name,
                              len(rule.expansion) == 1 and type(callbacks[rule]) is ExpandSingleChild)
                       for rule in callbacks}

    def tokens(self, text: str):
        """lark's BasicLexer.next_token, inline: the same tokens with the same positions. A keyword
        callback (lark's UnlessCallback: NAME `input` becomes INPUT) is a function of the token's
        text alone, so its answer is kept per text (`keywords`) instead of matched again."""
        Token, new = self.Token, str.__new__
        patterns, callback, ignore, newline = self.patterns, self.callback, self.ignore, self.newline
        keywords, unless = self.keywords, self.unless
        match = patterns[0].match if len(patterns) == 1 else None
        pos, line, line_start, end = 0, 1, 0, len(text)
        while pos < end:
            m = match(text, pos) if match is not None else None
            if m is None:
                for pattern in patterns:
                    m = pattern.match(text, pos)
                    if m:
                        break
                else:
                    raise GiveUp
            kind = m.lastgroup
            after = m.end()
            if kind in ignore and kind not in callback:  # whitespace, a comment: no token
                if kind in newline:
                    n = text.count("\n", pos, after)
                    if n:
                        line += n
                        line_start = text.rindex("\n", pos, after) + 1
                pos = after
                continue
            value = m.group(0)
            t = new(Token, value)
            t.type, t.start_pos, t.value, t.line, t.column = kind, pos, value, line, pos - line_start + 1
            if kind in newline:
                n = value.count("\n")
                if n:
                    line += n
                    line_start = pos + value.rindex("\n") + 1
            pos = after
            t.end_line, t.end_column, t.end_pos = line, pos - line_start + 1, pos
            if kind in callback:
                cb = callback[kind]
                if cb.__class__ is unless:  # what UnlessCallback.__call__ does, its answer kept
                    k = keywords.get(value, keywords)
                    if k is keywords:
                        k = cb.scanner.fullmatch(value)
                        if len(keywords) < MAX_KEYWORDS:
                            keywords[value] = k
                    if k is not None:
                        t.type = k
                else:
                    t = cb(t)
            if kind not in ignore:
                yield t

    def parse(self, text: str, postlex):
        states, reduce, Shift = self.states, self.reduce, self.Shift
        stack, values = [self.start_state], []
        token = None
        for token in postlex.process(self.tokens(text)):
            kind = token.type
            while True:
                try:
                    action, arg = states[stack[-1]][kind]
                except KeyError:
                    raise GiveUp from None
                if action is Shift:
                    stack.append(arg)
                    values.append(token)
                    break
                size, build, origin, unit = reduce[arg]
                if unit:
                    stack[-1] = states[stack[-2]][origin][1]
                    continue
                if size:
                    args = values[-size:]
                    del stack[-size:], values[-size:]
                else:
                    args = []
                values.append(build(args))
                stack.append(states[stack[-1]][origin][1])
        end = self.end_state
        while True:  # the end of the text: reduce until the start symbol is complete
            try:
                action, arg = states[stack[-1]]["$END"]
            except KeyError:
                raise GiveUp from None
            if action is Shift:
                raise GiveUp
            size, build, origin, _ = reduce[arg]
            if size:
                args = values[-size:]
                del stack[-size:], values[-size:]
            else:
                args = []
            values.append(build(args))
            stack.append(states[stack[-1]][origin][1])
            if stack[-1] == end:
                return values[-1]
