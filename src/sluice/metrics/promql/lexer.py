"""PromQL lexer: turns query text into `Token`s (kind, text, position), with keyword lookup in one table.

Kinds are the operator/punctuation text itself, or NUMBER, DURATION, STRING, IDENT, EOF. Keywords stay
IDENT tokens and are recognised by the parser (case-insensitively, as Prometheus does), because PromQL lets
most keywords double as label and metric names.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import ParseError

__all__ = ["Token", "lex", "KEYWORDS", "AGGREGATORS", "unquote", "ERROR"]

NUMBER, DURATION, STRING, IDENT, EOF = "NUMBER", "DURATION", "STRING", "IDENT", "EOF"
# A lexing error the parser meets where Prometheus's lazy lexer would hand it over: when it reads that token
# (an unclosed parenthesis is reported at the end of input only if the parse got that far). `text` is the
# message.
ERROR = "ERROR"

AGGREGATORS = frozenset({
    "sum", "avg", "count", "min", "max", "group", "stddev", "stdvar", "topk", "bottomk", "count_values",
    "quantile", "limitk", "limit_ratio",
})
KEYWORDS = AGGREGATORS | {
    "and", "or", "unless", "atan2", "offset", "by", "without", "on", "ignoring", "group_left", "group_right",
    "bool", "start", "end",
}

# Longest operators first so "==" wins over "=".
_OPERATORS = ("==", "!=", "=~", "!~", "<=", ">=", "+", "-", "*", "/", "%", "^", "<", ">", "=",
              "(", ")", "{", "}", "[", "]", ",", ":", "@")
_HEX = re.compile(r"0[xX][0-9a-fA-F](?:_?[0-9a-fA-F])*")
_DURATION = re.compile(r"(?:[0-9]+(?:ms|s|m|h|d|w|y))+")
_DECIMAL = re.compile(r"(?:[0-9](?:_?[0-9])*(?:\.(?:[0-9](?:_?[0-9])*)?)?|\.[0-9](?:_?[0-9])*)(?:[eE][+-]?[0-9]+)?")
_IDENT = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_SPACE = re.compile(r"(?:\s+|#[^\n]*)+")


@dataclass(frozen=True, slots=True)
class Token:
    kind: str
    text: str
    pos: int

    @property
    def end(self) -> int:
        return self.pos + len(self.text)

    def describe(self) -> str:
        """How Prometheus names a token in "unexpected …" errors."""
        if self.kind == EOF:
            return "end of input"
        if self.kind == IDENT:
            low = self.text.lower()
            if low in AGGREGATORS:
                return f"<aggr:{low}>"
            if low in KEYWORDS:
                return f"<{low}>"
            return f"identifier {go_repr(self.text)}"
        if self.kind == NUMBER:
            return f"number {go_repr(self.text)}"
        if self.kind == DURATION:
            return f"duration {go_repr(self.text)}"
        if self.kind == STRING:
            return f"string {go_repr(self.text)}"
        if self.kind in ("+", "-", "*", "/", "%", "^", "==", "!=", "<", "<=", ">", ">=", "=~", "!~"):
            return f"<op:{self.kind}>"
        return go_repr(self.kind)


def go_repr(s: str) -> str:
    from .format import go_quote

    return go_quote(s)


def go_rune(c: str) -> str:
    """Go's %q of a rune: 'x', with Go's escapes for quotes, backslashes and unprintable ones."""
    if c in "'\\":
        return f"'\\{c}'"
    if c.isprintable():
        return f"'{c}'"
    code = ord(c)
    esc = {"\a": "a", "\b": "b", "\f": "f", "\n": "n", "\r": "r", "\t": "t", "\v": "v"}.get(c)
    if esc:
        return f"'\\{esc}'"
    if code < 0x80:
        return f"'\\x{code:02x}'"
    return f"'\\u{code:04x}'" if code <= 0xFFFF else f"'\\U{code:08x}'"


def _alnum(c: str) -> bool:
    return c.isalnum() or c == "_"


def lex(text: str) -> list[Token]:
    toks: list[Token] = []
    i, n = 0, len(text)
    in_brackets = False  # inside [...] a ":" separates range and step; it never starts an identifier
    in_braces = False
    colon = False  # a ":" seen inside the current brackets
    depth = 0  # open parentheses
    while True:
        m = _SPACE.match(text, i)
        if m:
            i = m.end()
        if i >= n:
            # Prometheus's lexer (lex.go) checks what is still open at the end, braces first.
            if in_braces:
                toks.append(Token(ERROR, "unexpected end of input inside braces", n))
            elif depth:
                toks.append(Token(ERROR, "unclosed left parenthesis", n))
            elif in_brackets:
                toks.append(Token(ERROR, "unclosed left bracket", n))
            else:
                toks.append(Token(EOF, "", n))
            return toks
        c = text[i]
        if in_braces and not (c.isascii() and (c.isalpha() or c in "_,=!{}\"'`")):
            toks.append(Token(ERROR, f"unexpected character inside braces: {go_rune(c)}", i))
            return toks
        if c.isdigit() or (c == "." and i + 1 < n and text[i + 1].isdigit()):
            for pat, kind in ((_HEX, NUMBER), (_DURATION, DURATION), (_DECIMAL, NUMBER)):
                m = pat.match(text, i)
                if m and not (m.end() < n and _alnum(text[m.end()])):
                    toks.append(Token(kind, m.group(), i))
                    i = m.end()
                    break
            else:
                j = i
                while j < n and (_alnum(text[j]) or text[j] == "."):
                    j += 1
                raise ParseError(f"bad number or duration syntax: {go_repr(text[i:j])}", i, text)
            continue
        if c in "\"'`":
            j = i + 1
            while j < n and text[j] != c:
                if text[j] == "\\" and c != "`":
                    j += 1
                elif text[j] == "\n" and c != "`":
                    raise ParseError("unterminated quoted string", i, text)
                j += 1
            if j >= n:
                raise ParseError("unterminated quoted string" if c != "`" else "unterminated raw string", i, text)
            toks.append(Token(STRING, text[i:j + 1], i))
            i = j + 1
            continue
        m = None if in_brackets and c == ":" else _IDENT.match(text, i)
        if m:
            word = m.group()
            kind = NUMBER if word.lower() in ("inf", "nan") else IDENT
            toks.append(Token(kind, word, i))
            i = m.end()
            continue
        for op in _OPERATORS:
            if text.startswith(op, i):
                problem = _balance_error(op, depth, in_brackets, in_braces)
                if op == ":" and in_brackets:
                    if colon:
                        problem = "unexpected colon ':'"
                    colon = True
                if problem is not None:
                    # Where Prometheus reports it: after a surplus ")" (the lexer has moved past it), else at it.
                    toks.append(Token(ERROR, problem, i + 1 if op == ")" else i))
                    return toks
                if op in "[]":
                    in_brackets = op == "["
                    colon = False
                elif op in "{}":
                    in_braces = op == "{"
                elif op in "()":
                    depth += 1 if op == "(" else -1
                toks.append(Token(op, op, i))
                i += len(op)
                break
        else:
            if c == "!":
                raise ParseError("unexpected character after '!': " + go_rune(text[i + 1:i + 2] or "\ufffd"), i, text)
            raise ParseError(f"unexpected character: {go_rune(c)}", i, text)


def _balance_error(op: str, depth: int, in_brackets: bool, in_braces: bool) -> str | None:
    """Prometheus's lexer errors for unbalanced brackets (texts as in lex.go, the rune in Go's %q)."""
    if op == ")" and depth == 0 and not in_braces:
        return "unexpected right parenthesis ')'"
    if op == "[" and in_brackets:
        return "unexpected left bracket '['"
    if op == "]" and not in_brackets and not in_braces:
        return "unexpected right bracket ']'"
    if op == "{" and in_braces:
        return "unexpected left brace '{'"
    if op == "}" and not in_braces:
        return "unexpected character: '}'"
    return None


_SIMPLE_ESC = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "\\": "\\",
               "'": "'", '"': '"'}


def unquote(tok: str) -> str:
    """Go's strconv.Unquote for PromQL strings. Raw bytes (\\xNN, octal) become UTF-8 text, or
    surrogate escapes when they are not valid UTF-8 (so label-name validation can reject them)."""
    q, body = tok[0], tok[1:-1]
    if q == "`":
        return body
    out = bytearray()
    i = 0
    while i < len(body):
        c = body[i]
        if c != "\\":
            out += c.encode("utf-8", "surrogateescape")
            i += 1
            continue
        i += 1
        if i >= len(body):
            raise ValueError("invalid syntax")
        e = body[i]
        if e in _SIMPLE_ESC:
            if (e == "'" and q == '"') or (e == '"' and q == "'"):
                raise ValueError("invalid syntax")
            out += _SIMPLE_ESC[e].encode()
            i += 1
        elif e == "x":
            out.append(int(body[i + 1:i + 3], 16))
            i += 3
        elif e in "01234567":
            out.append(int(body[i:i + 3], 8))
            i += 3
        elif e in "uU":
            width = 4 if e == "u" else 8
            out += chr(int(body[i + 1:i + 1 + width], 16)).encode("utf-8", "surrogatepass")
            i += 1 + width
        else:
            raise ValueError("invalid syntax")
    return out.decode("utf-8", "surrogateescape")
