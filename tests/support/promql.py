"""Metric names referenced by a PromQL expression, found by a small tokenizer.

promtool parses PromQL but has no command that prints what an expression selects, so this module reads the
expression token by token. It knows only as much of the grammar as it takes to tell a metric name from the
other identifiers: function names (an identifier followed by `(`), aggregation operators and keywords, label
names in `by`/`without`/`on`/`ignoring`/`group_left`/`group_right` lists and in `{...}` matchers, strings,
numbers, durations and `[...]` ranges and subqueries. `{__name__="x"}` names the metric `x`. Grafana template
variables (`$user`, `${user}`, `[$__rate_interval]`) are skipped.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

AGGREGATIONS = frozenset(
    {
        "sum", "avg", "count", "min", "max", "group", "stddev", "stdvar", "topk", "bottomk",
        "quantile", "count_values", "limitk", "limit_ratio",
    }
)  # fmt: skip
# Words that are never metric names in PromQL (the lexer matches them case-insensitively).
KEYWORDS = frozenset(
    {"and", "or", "unless", "atan2", "by", "without", "on", "ignoring", "group_left", "group_right", "bool",
     "offset", "inf", "nan"}
) | AGGREGATIONS  # fmt: skip
# Keywords followed by a parenthesised list of label names.
GROUPING = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right"})

_IDENT = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
_LABEL = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DURATION = re.compile(r"(?:[0-9]+(?:ms|s|m|h|d|w|y))+(?![A-Za-z0-9_])")
_NUMBER = re.compile(r"0[xX][0-9a-fA-F]+|(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_VARIABLE = re.compile(r"\$(?:\{[^}]*\}|[A-Za-z0-9_]+)")


class PromqlSyntaxError(ValueError):
    """The text is not PromQL this tokenizer understands (an unterminated string, bracket or matcher)."""


@dataclass(frozen=True)
class Token:
    kind: str  # ident, string, number, punct
    text: str
    pos: int


def _string_end(text: str, start: int) -> int:
    """The index just after the string literal that starts at `start`."""
    quote = text[start]
    i = start + 1
    while i < len(text):
        c = text[i]
        if c == "\\" and quote != "`":
            i += 2
            continue
        if c == quote:
            return i + 1
        i += 1
    raise PromqlSyntaxError(f"unterminated string at {start}: {text[start : start + 20]!r}")


def _unquote(literal: str) -> str:
    body = literal[1:-1]
    if literal[0] == "`":
        return body
    return re.sub(r"\\(.)", r"\1", body)


def tokens(text: str) -> Iterator[Token]:
    i = 0
    while i < len(text):
        c = text[i]
        if c.isspace():
            i += 1
        elif c == "#":
            end = text.find("\n", i)
            i = len(text) if end < 0 else end
        elif c in "\"'`":
            end = _string_end(text, i)
            yield Token("string", text[i:end], i)
            i = end
        elif c == "$":
            match = _VARIABLE.match(text, i)
            i = match.end() if match else i + 1
        elif c.isdigit() or (c == "." and i + 1 < len(text) and text[i + 1].isdigit()):
            match = _DURATION.match(text, i) or _NUMBER.match(text, i)
            assert match is not None
            yield Token("number", match.group(), i)
            i = match.end()
        elif match := _IDENT.match(text, i):
            yield Token("ident", match.group(), i)
            i = match.end()
        else:
            yield Token("punct", c, i)
            i += 1


def _matcher_names(toks: list[Token], i: int) -> tuple[int, set[str]]:
    """Skip the `{...}` that starts at toks[i]; return the index after it and any `__name__="x"` names."""
    names: set[str] = set()
    j = i + 1
    while j < len(toks):
        tok = toks[j]
        if tok.text == "}" and tok.kind == "punct":
            return j + 1, names
        # `__name__` `=` `"x"` (the `=` is one punct token; `=~`, `!=`, `!~` are two).
        if (
            tok.kind == "ident"
            and tok.text == "__name__"
            and j + 2 < len(toks)
            and toks[j + 1].text == "="
            and toks[j + 2].kind == "string"
        ):
            names.add(_unquote(toks[j + 2].text))
        j += 1
    raise PromqlSyntaxError(f"unterminated label matchers at {toks[i].pos}")


def _skip_balanced(toks: list[Token], i: int, open_: str, close: str) -> int:
    depth = 0
    for j in range(i, len(toks)):
        if toks[j].kind != "punct":
            continue
        if toks[j].text == open_:
            depth += 1
        elif toks[j].text == close:
            depth -= 1
            if depth == 0:
                return j + 1
    raise PromqlSyntaxError(f"unbalanced {open_!r} at {toks[i].pos}")


def metric_names(expr: str) -> set[str]:
    """Every metric name the expression selects."""
    toks = list(tokens(expr))
    names: set[str] = set()
    i = 0
    while i < len(toks):
        tok = toks[i]
        following = toks[i + 1] if i + 1 < len(toks) else None
        if tok.kind == "punct" and tok.text == "{":
            i, found = _matcher_names(toks, i)
            names |= found
            continue
        if tok.kind == "punct" and tok.text == "[":
            i = _skip_balanced(toks, i, "[", "]")
            continue
        if tok.kind != "ident":
            i += 1
            continue
        word = tok.text.lower()
        if word in GROUPING:
            i += 1
            if i < len(toks) and toks[i].text == "(":
                i = _skip_balanced(toks, i, "(", ")")
            continue
        if following is not None and following.kind == "punct" and following.text == "(":
            i += 1  # a function call (or an aggregation): its arguments are read on
            continue
        if word in KEYWORDS:
            i += 1
            continue
        names.add(tok.text)
        i += 1
    return names


_LABEL_VALUES = re.compile(r"^\s*label_values\((?P<args>.*)\)\s*$", re.DOTALL)


def grafana_variable_metric_names(query: str) -> set[str]:
    """Metric names in a Grafana Prometheus variable query: `label_values(selector, label)`,
    `label_values(label)`, `query_result(expr)` or `metrics(regex)` (a regex, not a name: nothing)."""
    match = _LABEL_VALUES.match(query)
    if match:
        args = match.group("args")
        selector, comma, label = args.rpartition(",")
        if not comma:
            return set()  # label_values(label): every series, no metric named
        if not _LABEL.fullmatch(label.strip()):
            raise PromqlSyntaxError(f"label_values with an odd label argument: {query!r}")
        return metric_names(selector)
    query_result = re.match(r"^\s*query_result\((?P<expr>.*)\)\s*$", query, re.DOTALL)
    if query_result:
        return metric_names(query_result.group("expr"))
    if re.match(r"^\s*metrics\(", query):
        return set()
    return metric_names(query)
