"""The PromQL metric-name tokenizer (tests/support/promql.py) that checks dashboards and alerts against real
/metrics captures."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.support.promql import PromqlSyntaxError, grafana_variable_metric_names, metric_names, tokens
from tests.support.promql_strategies import expression, metric_name

from ovpn.render.images import resolve_images
from ovpn.render.monitoring import MonitoringSpec
from ovpn.render.monitoring.alerts import alert_groups
from ovpn.render.monitoring.dashboards import dashboards
from ovpn.render.monitoring.grafana import panel_exprs
from ovpn.render.monitoring.spec import MONITORING_SERVICES


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ("up", {"up"}),
        ('up{job="haproxy"} == 0', {"up"}),
        ("node_load1", {"node_load1"}),
        ("rate(node_cpu_seconds_total[5m])", {"node_cpu_seconds_total"}),
        ("sum by (name) (rate(a_total[5m]))", {"a_total"}),
        ("sum(rate(a_total[5m])) by (name)", {"a_total"}),
        ("max without (state) (haproxy_server_status)", {"haproxy_server_status"}),
        ("a and on(instance, proxy) b", {"a", "b"}),
        ("a * on(x) group_left(y, z) b", {"a", "b"}),
        ("a * ignoring(x) group_left b", {"a", "b"}),
        ("a > bool 3", {"a"}),
        ("a unless on() (up == 0)", {"a", "up"}),
        ("count(x) or vector(0)", {"x"}),
        ('{__name__="weird_name", job="x"}', {"weird_name"}),
        ('{__name__=~"node_.*"}', set()),  # a regex names no one metric
        ('x{a="}{[", b=~"\\"sum(y)"}', {"x"}),
        ("x{a='single \\' quote'}", {"x"}),
        ("x{a=`raw \\ string`}", {"x"}),
        ("x offset 5m", {"x"}),
        ("x @ 1609746000", {"x"}),
        ("x @ start()", {"x"}),
        ("max_over_time((rate(y[5m]))[1h:30s])", {"y"}),
        ("predict_linear(x[6h], 24 * 3600) < 0", {"x"}),
        ("1e3 * x - 0x1F + .5 / Inf", {"x"}),
        ("x > NaN", {"x"}),
        ("topk(5, x)", {"x"}),
        ('count_values("v", x)', {"x"}),
        ('label_replace(x, "dst", "$1", "src", "(.*)")', {"x"}),
        ("job:request_rate:5m", {"job:request_rate:5m"}),
        ("SUM BY (a) (x)", {"x"}),
        ("x # a comment naming not_a_metric\n + y", {"x", "y"}),
        ('rate(x{email=~"$user"}[$__rate_interval])', {"x"}),
        ("sum by (${group}) (x)", {"x"}),
        ("time() - x", {"x"}),
        ("vector(1)", set()),
        ('scalar(count(x{mode="idle"}))', {"x"}),
        ("histogram_quantile(0.95, sum by (le) (rate(d_bucket[5m])))", {"d_bucket"}),
        ('by_label_metric{on="x", by="y"}', {"by_label_metric"}),
    ],
)
def test_metric_names(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


@pytest.mark.parametrize("expr", ['x{a="open', "x{a='b'", "sum by (a (x)", "rate(x[5m)"])
def test_broken_expressions_are_refused_not_guessed(expr: str) -> None:
    with pytest.raises(PromqlSyntaxError):
        metric_names(expr)


def test_numbers_and_durations_are_single_tokens() -> None:
    kinds = [(t.kind, t.text) for t in tokens("x[1h30m] offset 100ms > 2.5e-3")]
    assert kinds == [
        ("ident", "x"), ("punct", "["), ("number", "1h30m"), ("punct", "]"), ("ident", "offset"),
        ("number", "100ms"), ("punct", ">"), ("number", "2.5e-3"),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("query", "names"),
    [
        ("label_values(ovpn_agent_user_traffic_bytes_total, email)", {"ovpn_agent_user_traffic_bytes_total"}),
        ('label_values(x{job="a"}, instance)', {"x"}),
        ("label_values(email)", set()),
        ("query_result(topk(5, y))", {"y"}),
        ("metrics(node_.*)", set()),
    ],
)
def test_grafana_variable_queries(query: str, names: set[str]) -> None:
    assert grafana_variable_metric_names(query) == names


# 200 expressions of the recursive grammar in promql_strategies (selectors, ranges, functions, aggregations,
# binary operators, nested) reach every construct many times over; the hand-picked cases above pin the edge ones.
@settings(max_examples=200)
@given(expression)
def test_generated_expressions(drawn: tuple[str, frozenset[str]]) -> None:
    text, names = drawn
    assert metric_names(text) == names, text


@given(metric_name, st.sampled_from(["(", " [", "{", " offset"]))
def test_a_name_followed_by_a_bracket(name: str, after: str) -> None:
    """An identifier right before `(` is a function; before `[`, `{` or `offset` it is a metric."""
    text = {
        "(": f"{name}(x)",
        " [": f"rate({name} [5m])",
        "{": f'{name}{{a="b"}}',
        " offset": f"{name} offset 1m",
    }
    assert metric_names(text[after]) == ({"x"} if after == "(" else {name})


def test_every_rendered_query_tokenizes() -> None:
    """Every rule and panel of both roles is read without error and names at least one metric, except the
    few panels that are pure arithmetic on time (none today)."""
    images = {k: v for k, v in resolve_images("26.7.28").items() if k in MONITORING_SERVICES}
    spec = MonitoringSpec("proxy-ru", "proxy", images)
    for group in alert_groups(spec):
        for alert in group.alerts:
            assert metric_names(alert.expr), alert.name
    for name, dashboard in dashboards(spec).items():
        model = dashboard.to_json()
        for expr in panel_exprs(model):
            assert metric_names(expr), (name, expr)
