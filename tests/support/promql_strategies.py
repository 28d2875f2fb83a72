"""Hypothesis strategies for PromQL instant-vector expressions, each with the metric names it selects.

The grammar covers what the tokenizer in `promql.py` must get right: functions, aggregations with and without
grouping, vector matching (`on`, `ignoring`, `group_left`), set operators, `bool`, `offset`, ranges and
subqueries, `__name__` matchers, label names that are PromQL keywords, strings full of brackets and quotes,
numbers and durations. Metric names are never keywords (PromQL would read `sum` as the operator).
The unit tests compare the tokenizer with the names drawn; an integration test has promtool parse samples, so
the generator itself cannot drift into text that is not PromQL.
"""

from __future__ import annotations

import json

from hypothesis import strategies as st

from tests.support.promql import KEYWORDS

Expr = tuple[str, frozenset[str]]

_ident = st.from_regex(r"\A[a-zA-Z_][a-zA-Z0-9_]{0,12}\Z", fullmatch=True)
metric_name = st.one_of(
    _ident,
    st.from_regex(r"\A[a-z_]{1,6}:[a-z_:]{1,8}\Z", fullmatch=True),  # recording-rule style
).filter(lambda s: s.lower() not in KEYWORDS)
label_name = st.one_of(
    _ident.filter(lambda s: not s.startswith("__")),
    st.sampled_from(["by", "on", "sum", "offset", "bool", "group_left", "email", "le"]),
)
label_value = st.text(alphabet=st.sampled_from(list("abc019 {}[]()\"'`#,=~!$\\.:-_")), max_size=12).map(
    json.dumps
)  # a double-quoted PromQL string (JSON escapes are PromQL escapes)
# Regex matchers need valid (RE2) regexes; these are full of PromQL's own punctuation.
regex_value = st.sampled_from(
    ['""', '"ovpn-.*"', '"MAINT|DRAIN"', '"a{1,2}[}{]"', r'"\\(x\\)"', "'by|on'", r"`sum\(.*\)`"]
)
duration = st.sampled_from(["5m", "30s", "1h", "1h30m", "15m", "24h", "100ms", "2d", "1w"])
number = st.sampled_from(["0", "1", "0.95", "1e3", "2.5e-3", "0x1F", "24 * 3600", "Inf", "NaN", ".5"])
_space = st.sampled_from(["", " ", "  ", "\n  "])


@st.composite
def _matchers(draw: st.DrawFn) -> str:
    equality = st.tuples(label_name, st.sampled_from(["=", "!="]), label_value)
    regex = st.tuples(label_name, st.sampled_from(["=~", "!~"]), regex_value)
    items = draw(st.lists(st.one_of(equality, regex), min_size=0, max_size=3))
    return "{" + ",".join(f"{k}{op}{v}" for k, op, v in items) + "}"


@st.composite
def selector(draw: st.DrawFn, offset: bool = True) -> Expr:
    name = draw(metric_name)
    if draw(st.booleans()):
        matchers = draw(_matchers())
        text = f"{{__name__={json.dumps(name)}{',' if matchers != '{}' else ''}{matchers[1:]}"
    else:
        text = name + draw(st.one_of(st.just(""), _matchers()))
    if offset and draw(st.booleans()):
        text += f" offset {draw(duration)}"
    return text, frozenset({name})


@st.composite
def _range(draw: st.DrawFn, inner: st.SearchStrategy[Expr]) -> Expr:
    """A range vector inside a range function: a selector's range, or a subquery of any expression."""
    if draw(st.booleans()):
        text, names = draw(selector(offset=False))  # `offset` goes after the range
        offset = draw(st.sampled_from(["", " offset 1h"]))
        return f"{text}[{draw(duration)}]{offset}", names
    text, names = draw(inner)
    return f"({text})[{draw(duration)}:{draw(duration)}]", names


def _grouping(keyword: str, labels: st.SearchStrategy[str] = label_name) -> st.SearchStrategy[str]:
    return st.lists(labels, max_size=3).map(lambda names: f"{keyword} ({', '.join(names)})")


# group_left/group_right labels must not repeat a label of the on(...) list: draw them from their own names.
_group_label = _ident.map(lambda s: "g_" + s)


def _extend(inner: st.SearchStrategy[Expr]) -> st.SearchStrategy[Expr]:
    @st.composite
    def range_function(draw: st.DrawFn) -> Expr:
        fn = draw(st.sampled_from(["rate", "increase", "changes", "max_over_time", "deriv"]))
        text, names = draw(_range(inner))
        if draw(st.booleans()):
            return f"predict_linear({text}, {draw(number)})", names
        return f"{fn}{draw(_space)}({text})", names

    @st.composite
    def function(draw: st.DrawFn) -> Expr:
        text, names = draw(inner)
        form = draw(st.sampled_from(["abs({})", "clamp_min({}, {n})", "absent({})", "sort_desc({})",
                                     'label_replace({}, "dst", "$1", "src", "(.*)")', "histogram_quantile({n}, {})"]))  # fmt: skip
        return form.format(text, n=draw(number)), names

    @st.composite
    def aggregation(draw: st.DrawFn) -> Expr:
        text, names = draw(inner)
        op = draw(st.sampled_from(["sum", "avg", "max", "min", "count", "stddev", "group"]))
        grouping = draw(st.one_of(st.just(""), _grouping("by"), _grouping("without")))
        if grouping and draw(st.booleans()):
            return f"{op}({text}) {grouping}", names
        return f"{op} {grouping} ({text})", names

    @st.composite
    def parameter_aggregation(draw: st.DrawFn) -> Expr:
        text, names = draw(inner)
        form = draw(st.sampled_from(["topk({n}, {})", "bottomk({n}, {})", "quantile({n}, {})",
                                     'count_values("value", {})']))  # fmt: skip
        return form.format(text, n=draw(st.sampled_from(["1", "5", "0.9"]))), names

    @st.composite
    def binary(draw: st.DrawFn) -> Expr:
        (left, ln), (right, rn) = draw(inner), draw(inner)
        kind = draw(st.sampled_from(["arith", "set", "cmp"]))
        if kind == "set":
            op = draw(st.sampled_from(["and", "or", "unless", "AND"]))
            matching = draw(st.one_of(st.just(""), _grouping("on"), _grouping("ignoring")))
            return f"({left}) {op} {matching} ({right})", ln | rn
        op = draw(st.sampled_from(["+", "-", "*", "/", "%", "^", "atan2"] if kind == "arith" else
                                  ["==", "!=", ">", "<", ">=", "<="]))  # fmt: skip
        if kind == "cmp" and draw(st.booleans()):
            op += " bool"
        matching = draw(st.one_of(st.just(""), _grouping("on"), _grouping("ignoring")))
        if matching and draw(st.booleans()):
            # A bare `group_left` before `(` would read the operand as its label list: always give a list.
            matching += " " + draw(
                st.one_of(_grouping("group_left", _group_label), _grouping("group_right", _group_label))
            )
        return f"({left}) {op} {matching} ({right})", ln | rn

    @st.composite
    def with_scalar(draw: st.DrawFn) -> Expr:
        text, names = draw(inner)
        op = draw(st.sampled_from(["*", "/", "+", ">", "< bool", "-"]))
        scalar = draw(st.one_of(number, st.just("time()")))
        if draw(st.booleans()):
            return f"({text}) {op} {scalar}", names
        return f"{scalar} {op} ({text})", names

    @st.composite
    def scalar_of(draw: st.DrawFn) -> Expr:
        (text, names), (other, other_names) = draw(inner), draw(inner)
        return f"({text}) * 100 / scalar({other})", names | other_names

    return st.one_of(
        range_function(), function(), aggregation(), parameter_aggregation(), binary(),
        with_scalar(), scalar_of(),
        inner.map(lambda e: (f"({e[0]})", e[1])),
    )  # fmt: skip


_leaf: st.SearchStrategy[Expr] = st.one_of(
    selector(), number.map(lambda n: (f"vector({n})", frozenset())), st.just(("vector(time())", frozenset()))
)
expression: st.SearchStrategy[Expr] = st.recursive(_leaf, _extend, max_leaves=8)
