"""The -Q/--filter expressions of util-linux 2.40+ (libsmartcols filters),
for `nsfast ls`: column names, numbers, 'strings' or "strings", the
comparisons == != < <= > >= (or eq ne lt le gt ge), =~ and !~ (regular
expressions), && || ! (or and or not), and parentheses.

>>> keep = compile_filter("NS == 5 && TYPE =~ 'n.t'", {"NS": (True, True), "TYPE": (0, 0)})
>>> keep({"NS": "5", "TYPE": "net"}.get), keep({"NS": "6", "TYPE": "net"}.get)
(True, False)
"""
from __future__ import annotations

from .common import UsageError

_WORD_OPS = {"eq": "==", "ne": "!=", "lt": "<", "le": "<=", "gt": ">", "ge": ">=",
             "and": "&&", "or": "||", "not": "!"}
_SYMBOLS = ("==", "!=", "<=", ">=", "=~", "!~", "&&", "||", "<", ">", "!", "(", ")")
_COMPARE = ("==", "!=", "<", "<=", ">", ">=", "=~", "!~")


def _tokens(text: str) -> list:
    """(kind, value) pairs: kind is "op", "name", "num" or "str"."""
    out = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch.isspace():
            i += 1
        elif ch in "'\"":
            end = text.find(ch, i + 1)
            if end < 0:
                raise UsageError(f"failed to parse filter: unterminated string: {text[i:]}")
            out.append(("str", text[i + 1:end]))
            i = end + 1
        elif ch.isdigit():
            j = i
            while j < len(text) and (text[j].isdigit() or text[j] == "."):
                j += 1
            out.append(("num", text[i:j]))
            i = j
        elif ch.isalpha() or ch == "_":
            j = i
            while j < len(text) and (text[j].isalnum() or text[j] in "_-"):
                j += 1
            word = text[i:j]
            out.append(("op", _WORD_OPS[word.lower()]) if word.lower() in _WORD_OPS
                       else ("name", word.upper()))
            i = j
        else:
            op = next((s for s in _SYMBOLS if text.startswith(s, i)), None)
            if op is None:
                raise UsageError(f"failed to parse filter: unexpected {text[i:]!r}")
            out.append(("op", op))
            i += len(op)
    return out


class _Parser:
    def __init__(self, tokens: list, columns: dict) -> None:
        self.tokens, self.pos, self.columns = tokens, 0, columns
        self.used: set = set()

    def peek(self):
        return self.tokens[self.pos] if self.pos < len(self.tokens) else (None, None)

    def take(self):
        tok = self.peek()
        self.pos += 1
        return tok

    def expr(self):
        left = self.conj()
        while self.peek() == ("op", "||"):
            self.take()
            right = self.conj()
            left = (lambda a, b: lambda get: a(get) or b(get))(left, right)
        return left

    def conj(self):
        left = self.neg()
        while self.peek() == ("op", "&&"):
            self.take()
            right = self.neg()
            left = (lambda a, b: lambda get: a(get) and b(get))(left, right)
        return left

    def neg(self):
        if self.peek() == ("op", "!"):
            self.take()
            inner = self.neg()
            return lambda get: not inner(get)
        return self.compare()

    def compare(self):
        left = self.operand()
        kind, op = self.peek()
        if kind == "op" and op in _COMPARE:
            self.take()
            right = self.operand()
            return lambda get: _holds(op, left(get), right(get))
        return lambda get: _truth(left(get))

    def operand(self):
        kind, value = self.take()
        if (kind, value) == ("op", "("):
            inner = self.expr()
            if self.take() != ("op", ")"):
                raise UsageError("failed to parse filter: missing )")
            return lambda get: (inner(get), False)
        if kind == "name":
            if value not in self.columns:
                raise UsageError(f"failed to parse filter: unknown column: {value}")
            self.used.add(value)
            number = self.columns[value][1]
            return lambda get: (get(value), number)
        if kind == "num":
            return lambda get: (value, True)
        if kind == "str":
            return lambda get: (value, False)
        raise UsageError("failed to parse filter: an operand is missing")


def _truth(operand) -> bool:
    value, _ = operand
    return bool(value) and value not in ("0", False)


def _holds(op: str, left, right) -> bool:
    (a, a_num), (b, b_num) = left, right
    if a is None or b is None:
        return op == "!=" and a != b
    if op in ("=~", "!~"):
        import re
        found = re.search(str(b), str(a)) is not None
        return found if op == "=~" else not found
    if a_num and b_num:
        try:
            a, b = float(a), float(b)
        except ValueError:
            pass
    a, b = (a, b) if type(a) is type(b) else (str(a), str(b))
    return {"==": a == b, "!=": a != b, "<": a < b, "<=": a <= b,
            ">": a > b, ">=": a >= b}[op]


def compile_filter(text: str, columns: dict):
    """A predicate over a row, given get(COLUMN) -> its text or None; the
    columns it reads are in the predicate's .columns."""
    parser = _Parser(_tokens(text), columns)
    test = parser.expr()
    if parser.pos != len(parser.tokens):
        raise UsageError(f"failed to parse filter: unexpected {parser.peek()[1]}")

    def keep(get) -> bool:
        return bool(test(get))
    keep.columns = parser.used  # type: ignore[attr-defined]
    return keep
