"""The bot's pure parts: configuration, service lists, webhook parsing and formatting, the webhook token check,
the outbox's eviction order, callbacks, screens."""

from __future__ import annotations

import asyncio
import html
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tests.support.exposition import sample

from ovpn.agent.metrics import Registry
from ovpn.bot.alerts import (
    MESSAGE_LIMIT,
    PayloadError,
    format_alerts,
    format_event,
    parse_event,
    parse_webhook,
)
from ovpn.bot.callbacks import (
    CONFIRM_SECONDS,
    AskRestart,
    Confirmations,
    ConfirmRestart,
    Menu,
    Screen,
    parse_callback,
)
from ovpn.bot.config import (
    ConfigError,
    Service,
    parse_config,
    parse_services,
    read_token,
    read_webhook_token,
)
from ovpn.bot.docker_api import ContainerState
from ovpn.bot.outbox import ALERT, EVENT, Outbox
from ovpn.bot.probes import Fetched
from ovpn.bot.routes import bearer_matches
from ovpn.bot.screens import (
    ServiceRow,
    doctor_checks,
    format_doctor,
    format_services,
    format_status,
    human_bytes,
)

BASE_ENV = {
    "OVPN_TELEGRAM_LISTEN": "0.0.0.0:8080",
    "OVPN_TELEGRAM_TOKEN_FILE": "/run/secrets/telegram_bot_token",
    "OVPN_TELEGRAM_WEBHOOK_TOKEN_FILE": "/run/secrets/bot_webhook_token",
    "OVPN_TELEGRAM_SERVER_NAME": "proxy-ru",
    "OVPN_TELEGRAM_SERVER_ROLE": "proxy",
    "OVPN_TELEGRAM_AGENT_URL": "http://ovpn-agent:9090",
    "OVPN_TELEGRAM_PROMETHEUS_URL": "http://prometheus:9090",
    "OVPN_TELEGRAM_HAPROXY_URL": "",
    "OVPN_TELEGRAM_SERVICES": "xray=ovpn-xray,haproxy=ovpn-haproxy",
    "OVPN_TELEGRAM_NOTIFY_CHAT_IDS": "-100123, 42",
    "OVPN_TELEGRAM_OWNER_USER_ID": "42",
    "OVPN_TELEGRAM_API_FALLBACK_IPS": "149.154.167.220",
}


def test_config_from_compose_environment() -> None:
    config = parse_config(BASE_ENV)
    assert config.listen == ("0.0.0.0", 8080)
    assert config.services == (Service("xray", "ovpn-xray"), Service("haproxy", "ovpn-haproxy"))
    assert config.recipients == (42, -100123)
    assert config.api_base_url == ""
    assert config.fallback_ips == ("149.154.167.220",)
    assert config.docker_socket == Path("/var/run/docker.sock")
    assert ("prometheus", "http://prometheus:9090/-/healthy") in config.probes
    assert all(name != "haproxy" for name, _ in config.probes)


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("OVPN_TELEGRAM_OWNER_USER_ID", "", "OWNER_USER_ID is not set"),
        ("OVPN_TELEGRAM_OWNER_USER_ID", "alice", "must be a number"),
        ("OVPN_TELEGRAM_OWNER_USER_ID", "-5", "positive"),
        ("OVPN_TELEGRAM_LISTEN", "8080", "HOST:PORT"),
        ("OVPN_TELEGRAM_SERVER_ROLE", "edge", "vpn or proxy"),
        ("OVPN_TELEGRAM_SERVICES", "xray", "service=container"),
        ("OVPN_TELEGRAM_NOTIFY_CHAT_IDS", "1,x", "must be a number"),
        ("OVPN_TELEGRAM_API_FALLBACK_IPS", "api.example", "not an IP"),
        ("OVPN_TELEGRAM_AGENT_URL", "ovpn-agent:9090", "http(s) URL"),
        ("OVPN_TELEGRAM_RESTART_TIMEOUT", "0", "positive"),
        ("OVPN_TELEGRAM_WEBHOOK_TOKEN_FILE", " ", "WEBHOOK_TOKEN_FILE is not set"),
    ],
)
def test_bad_config_is_one_clear_error(variable: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_config({**BASE_ENV, variable: value})


def test_token_file(tmp_path: Path) -> None:
    path = tmp_path / "token"
    with pytest.raises(ConfigError, match="cannot read"):
        read_token(path)
    path.write_text("\n")
    with pytest.raises(ConfigError, match="is empty"):
        read_token(path)
    path.write_text("123:abc\n")
    assert read_token(path) == "123:abc"


def test_webhook_token_file(tmp_path: Path) -> None:
    path = tmp_path / "bot_webhook_token"
    with pytest.raises(ConfigError, match="cannot read the webhook token file"):
        read_webhook_token(path)
    for content, message in (
        ("\n", "is empty"),
        ("short", "does not hold"),
        ("two words here, long", "does not"),
    ):
        path.write_text(content)
        with pytest.raises(ConfigError, match=message) as refused:
            read_webhook_token(path)
        assert content.strip() not in str(refused.value) or not content.strip()
    path.write_text("A" * 43 + "\n")
    assert read_webhook_token(path) == "A" * 43


@pytest.mark.parametrize(
    ("header", "ok"),
    [
        ("Bearer s3cret-webhook-token", True),
        ("bearer s3cret-webhook-token", True),
        ("Bearer  s3cret-webhook-token ", True),
        ("", False),
        ("Bearer", False),
        ("Bearer s3cret-webhook-toke", False),
        ("Bearer s3cret-webhook-token2", False),
        ("Basic s3cret-webhook-token", False),
        ("s3cret-webhook-token", False),
        ("Bearer s3cret-webhook-tokén", False),
    ],
)
def test_bearer_token_check(header: str, ok: bool) -> None:
    assert bearer_matches(header, "s3cret-webhook-token") is ok


def _outbox(limit: int) -> tuple[Outbox, list[str], Registry]:
    """An outbox whose Telegram takes everything, recording the texts in sending order; nothing is sent before
    `_drain` runs it, as during an outage."""
    sent: list[str] = []
    metrics = Registry()

    async def send(chat_id: int, text: str) -> object:
        sent.append(text)
        return None

    return Outbox(send, metrics, limit=limit), sent, metrics


def _drain(outbox: Outbox) -> None:
    async def until_empty() -> None:
        task = asyncio.create_task(outbox.run())
        while len(outbox):
            await asyncio.sleep(0)
        task.cancel()

    asyncio.run(asyncio.wait_for(until_empty(), timeout=5))


def test_events_never_push_out_alerts() -> None:
    outbox, sent, _ = _outbox(limit=5)
    outbox.put([1], "alert 1", ALERT)
    for i in range(10):
        outbox.put([1, 2], f"event {i}", EVENT)
    outbox.put([1], "alert 2", ALERT)
    # The events made room among themselves, the second alert took an event's place: the newest events stay.
    _drain(outbox)
    assert sent == ["alert 1", "event 8", "event 9", "event 9", "alert 2"]


def test_a_full_queue_of_alerts_refuses_events_and_drops_its_oldest_alert() -> None:
    outbox, sent, metrics = _outbox(limit=3)
    for i in range(3):
        outbox.put([1], f"alert {i}", ALERT)
    outbox.put([1, 2], "event", EVENT)
    outbox.put([1], "alert 3", ALERT)
    _drain(outbox)
    assert sent == ["alert 1", "alert 2", "alert 3"]
    assert sample(metrics.render(), "ovpn_bot_messages_dropped_total") == 3


names = st.from_regex(r"[a-z0-9][a-z0-9_.-]{0,20}", fullmatch=True)


@given(st.lists(st.tuples(names, names), unique_by=lambda pair: pair[0], max_size=8))
def test_service_list_round_trips(pairs: list[tuple[str, str]]) -> None:
    text = " , ".join(f"{name}={container}" for name, container in pairs)
    assert parse_services(text) == tuple(Service(n, c) for n, c in pairs)


@given(st.text(max_size=40))
def test_service_list_never_crashes(text: str) -> None:
    try:
        services = parse_services(text)
    except ConfigError:
        return
    assert all(s.name and s.container and "," not in s.container for s in services)


def _webhook(labels: dict[str, str], status: str = "firing") -> dict[str, object]:
    return {"version": "4", "status": status, "alerts": [{"status": status, "labels": labels,
                                                           "annotations": {"summary": labels.get("summary", "")}}]}  # fmt: skip


@given(st.text(min_size=1, max_size=200), st.text(min_size=1, max_size=200))
def test_label_values_are_html_escaped(instance: str, summary: str) -> None:
    labels = {"alertname": "X", "instance": instance, "summary": summary}
    text = format_alerts(parse_webhook(_webhook(labels)), "s")
    if instance.strip():
        assert html.escape(instance.strip()) in text
    # Every "<" left is one of the bot's own tags: nothing from a label can open a tag.
    for tag in ("<b>", "</b>", "<i>", "</i>", "<code>", "</code>"):
        text = text.replace(tag, "")
    assert "<" not in text


def test_firing_and_resolved_in_one_message() -> None:
    body = {
        "status": "firing",
        "alerts": [
            {"status": "resolved", "labels": {"alertname": "B"}, "annotations": {}},
            {"status": "firing", "labels": {"alertname": "A", "severity": "critical", "backend": "vpn-nl"},
             "annotations": {"summary": "pool down", "description": "no backend UP"}},
        ],
    }  # fmt: skip
    text = format_alerts(parse_webhook(body), "proxy-ru")
    assert text.startswith("<b>[FIRING 1 · RESOLVED 1]</b> on <b>proxy-ru</b>")
    assert text.index("🔥 <b>A</b> [critical]") < text.index("✅ <b>B</b>")
    assert "pool down" in text and "<i>no backend UP</i>" in text and "backend: <code>vpn-nl</code>" in text


def test_long_webhooks_are_cut_to_telegrams_limit() -> None:
    alerts = [{"status": "firing", "labels": {"alertname": f"A{i}"}, "annotations": {"summary": "x" * 500}}
              for i in range(40)]  # fmt: skip
    text = format_alerts(parse_webhook({"alerts": alerts}), "s")
    assert len(text) <= MESSAGE_LIMIT and text.endswith("more")


@pytest.mark.parametrize("body", [None, [], {"alerts": {}}, {"alerts": [{"status": "odd"}]}, {"alerts": [1]}])
def test_bad_webhooks_are_refused(body: object) -> None:
    with pytest.raises(PayloadError):
        parse_webhook(body)


def test_events() -> None:
    event = parse_event({"kind": "deploy", "message": "release <7>"})
    assert format_event(event, "vpn-nl") == "📣 <b>deploy</b> on <b>vpn-nl</b>\nrelease &lt;7&gt;"
    with pytest.raises(PayloadError):
        parse_event({"kind": "deploy"})


def test_callbacks_are_validated() -> None:
    services = ["xray", "haproxy"]
    assert parse_callback("s:status", services) == Screen("status")
    assert parse_callback("m", services) == Menu()
    assert parse_callback("r:haproxy", services) == AskRestart("haproxy")
    assert parse_callback("y:0a1b2c3d", services) == ConfirmRestart("0a1b2c3d")
    for data in ("r:grafana", "s:secret", "y:../x", "r:", "", "y:0A1B2C3D", "m:x"):
        assert parse_callback(data, services) is None


def test_confirmations_are_single_use_and_expire() -> None:
    now = [100.0]
    confirmations = Confirmations(clock=lambda: now[0])
    nonce = confirmations.ask("xray")
    assert confirmations.take(nonce) == "xray"
    assert confirmations.take(nonce) is None
    late = confirmations.ask("xray")
    now[0] += CONFIRM_SECONDS + 1
    assert confirmations.take(late) is None


def test_screens() -> None:
    rows = [
        ServiceRow("xray", "ovpn-xray", ContainerState("running", "healthy")),
        ServiceRow("haproxy", "ovpn-haproxy", ContainerState("exited", None)),
        ServiceRow("grafana", "ovpn-grafana", None, "Docker engine unreachable: ConnectError"),
    ]
    agent = Fetched({"status": "degraded", "xray_api": {"up": False, "error": "connection refused"}})
    status = format_status("proxy-ru", "proxy", rows, agent)
    assert "services: 1/3 up, down: haproxy, grafana" in status
    assert "agent: ⚠️ degraded (Xray API: connection refused)" in status
    services = format_services("proxy-ru", rows)
    assert "✅ xray: running, healthy" in services and "❌ haproxy: exited" in services
    checks = doctor_checks(rows, Fetched(error="unreachable"), Fetched([{"labels": {"alertname": "Z"}}]),
                           [("grafana", None), ("cadvisor", "HTTP 500")])  # fmt: skip
    doctor = format_doctor("proxy-ru", checks)
    assert doctor.startswith("<b>Doctor proxy-ru: FAIL</b>")
    assert "❌ agent health: unreachable" in doctor and "❌ cadvisor probe: HTTP 500" in doctor
    assert "⚠️ firing alerts: Z" in doctor
    assert human_bytes(0) == "0 B" and human_bytes(3 * 2**30) == "3.0 GiB"
