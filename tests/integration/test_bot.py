"""ovpn-telegram-bot as a real process against a Bot API stand-in on loopback, a real ovpn-agent, and (for the
services and restarts) real containers on the fleet lab's private Docker engine."""

from __future__ import annotations

import json
import os
import subprocess
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import tool_path
from tests.support.fake_bot_api import Call, FakeBotApi
from tests.support.procs import stop_child, wait_until
from tests.support.waiting import free_port

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "123456789:AAtest-SECRET-bot-token_value"
OWNER = 4242
STRANGER = 6666
NOTIFY = (-100777, 5151)
OK_CONTAINER = "ovpn-fleetlab-bot-ok"
BAD_CONTAINER = "ovpn-fleetlab-bot-bad"
AGENT_TOKEN = "agent-test-token"
WEBHOOK_TOKEN = "webhook-test-token-0123456789abcdef"


def http(url: str, body: object | None = None, authorization: str | None = None) -> tuple[int, bytes]:
    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    if authorization is not None:
        headers["Authorization"] = authorization
    request = urllib.request.Request(url, data=data, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except OSError:
        return 0, b""


@dataclass
class BotProcess:
    process: subprocess.Popen[bytes]
    url: str
    fake: FakeBotApi
    log: Path

    def post(self, path: str, body: object, authorization: str | None = f"Bearer {WEBHOOK_TOKEN}") -> int:
        """POST to a webhook, with the bot's webhook token unless told otherwise; the status."""
        return http(f"{self.url}{path}", body, authorization)[0]

    def health(self) -> dict[str, Any]:
        status, body = http(f"{self.url}/health")
        return json.loads(body) if status == 200 else {}

    def metric(self, line_start: str, default: float | None = None) -> float:
        """A sample's value; `default` if given and the bot does not export it."""
        _, body = http(f"{self.url}/metrics")
        for line in body.decode().splitlines():
            if line.startswith(line_start + " "):
                return float(line.split()[-1])
        if default is not None:
            return default
        raise AssertionError(f"no metric {line_start}")


def launch(tmp: Path, env: dict[str, str], fake: FakeBotApi, port: int) -> BotProcess:
    log = tmp / "bot.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [str(ROOT / ".venv/bin/ovpn-telegram-bot")], env=env, stdout=sink, stderr=sink
        )
    return BotProcess(process, f"http://127.0.0.1:{port}", fake, log)


def start_bot(
    tmp: Path, role: str, services: str, docker_socket: Path, agent_url: str = "", **overrides: str
) -> BotProcess:
    """The bot with a complete configuration (OVPN_TELEGRAM_<NAME> in `overrides` replaces or, when empty,
    blanks a variable); it has polled Telegram once when this returns unless an override breaks it."""
    fake = FakeBotApi(TOKEN).start()
    token_file = tmp / "telegram_bot_token"
    token_file.write_text(TOKEN + "\n")
    webhook_token_file = tmp / "bot_webhook_token"
    webhook_token_file.write_text(WEBHOOK_TOKEN)
    port = free_port()
    env = {
        **os.environ,
        "OVPN_TELEGRAM_LISTEN": f"127.0.0.1:{port}",
        "OVPN_TELEGRAM_TOKEN_FILE": str(token_file),
        "OVPN_TELEGRAM_WEBHOOK_TOKEN_FILE": str(webhook_token_file),
        "OVPN_TELEGRAM_SERVER_NAME": f"{role}-test",
        "OVPN_TELEGRAM_SERVER_ROLE": role,
        "OVPN_TELEGRAM_AGENT_URL": agent_url,
        "OVPN_TELEGRAM_SERVICES": services,
        "OVPN_TELEGRAM_OWNER_USER_ID": str(OWNER),
        "OVPN_TELEGRAM_NOTIFY_CHAT_IDS": ",".join(map(str, NOTIFY)),
        "OVPN_TELEGRAM_API_BASE_URL": fake.base_url,
        "OVPN_TELEGRAM_DOCKER_SOCKET": str(docker_socket),
        "OVPN_TELEGRAM_POLL_TIMEOUT": "5",
        "OVPN_TELEGRAM_RESTART_TIMEOUT": "8",
    }
    env.update({f"OVPN_TELEGRAM_{name.upper()}": value for name, value in overrides.items()})
    bot = launch(tmp, env, fake, port)
    if not overrides:
        fake.wait_for(lambda c: c.method == "getUpdates", what="the first getUpdates")
    return bot


def stop_bot(bot: BotProcess) -> None:
    stop_child(bot.process, timeout=20)
    bot.fake.stop()


@pytest.fixture(scope="module")
def vpn_bot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BotProcess]:
    tmp = tmp_path_factory.mktemp("vpn-bot")
    bot = start_bot(tmp, "vpn", "xray=ovpn-xray,ovpn-agent=ovpn-agent,prometheus=ovpn-prometheus",
                    tmp / "no-docker.sock")  # fmt: skip
    yield bot
    stop_bot(bot)
    assert TOKEN not in bot.log.read_text(), "the bot token leaked into the log"


@pytest.fixture
def vpn(vpn_bot: BotProcess) -> Iterator[BotProcess]:
    vpn_bot.fake.set_down(False)
    vpn_bot.fake.clear()
    yield vpn_bot
    vpn_bot.fake.set_down(False)
    assert vpn_bot.process.poll() is None, "the bot exited"


# ---------------------------------------------------------------------------------------------- no Docker


def test_vpn_services_screen_has_no_haproxy(vpn: BotProcess) -> None:
    vpn.fake.inject_message(OWNER, "/services")
    call = vpn.fake.sent_to(OWNER, "Services on vpn-test")
    assert "xray" in call.text and "ovpn-agent" in call.text
    assert "haproxy" not in call.text
    assert "Docker engine unreachable" in call.text
    assert ("↻ xray", "r:xray") in call.buttons()


def test_stranger_gets_no_answer(vpn: BotProcess) -> None:
    ignored = vpn.metric("ovpn_bot_ignored_updates_total")
    vpn.fake.inject_message(STRANGER, "/start")
    vpn.fake.inject_callback(STRANGER, "s:status")
    vpn.fake.inject_message(OWNER, "/start")
    # Updates are handled in order: once the owner's menu is out, the stranger's updates were handled.
    vpn.fake.sent_to(OWNER, "choose a screen")
    wait_until(
        lambda: vpn.metric("ovpn_bot_ignored_updates_total") >= ignored + 2,
        timeout=10,
        what="the ignored count",
    )
    to_stranger = [c for c in vpn.fake.calls() if c.params.get("chat_id") == STRANGER]
    assert to_stranger == [], to_stranger
    assert vpn.fake.calls("answerCallbackQuery") == []
    assert vpn.fake.calls("editMessageText") == []


def _firing_and_resolved() -> dict[str, Any]:
    return {
        "version": "4", "status": "firing", "receiver": "telegram", "groupKey": "{}:{}",
        "alerts": [
            {"status": "firing", "labels": {"alertname": "OVPNForeignBackendPoolDown", "severity": "critical",
                                            "backend": "vpn-nl<script>"},
             "annotations": {"summary": "no foreign backend is UP", "description": "all backends down"}},
            {"status": "resolved", "labels": {"alertname": "OVPNAgentDown", "severity": "warning",
                                              "instance": "ovpn-agent:9090"},
             "annotations": {"summary": "the agent answers again"}},
        ],
    }  # fmt: skip


def test_alertmanager_webhook_reaches_owner_and_notify_chats(vpn: BotProcess) -> None:
    received = vpn.metric('ovpn_bot_alerts_received_total{status="firing"}')
    assert vpn.post("/alertmanager", _firing_and_resolved()) == 200
    for chat in (OWNER, *NOTIFY):
        call = vpn.fake.sent_to(chat, "OVPNForeignBackendPoolDown")
        assert "FIRING 1" in call.text and "RESOLVED 1" in call.text
        assert "🔥 <b>OVPNForeignBackendPoolDown</b> [critical]" in call.text
        assert "✅ <b>OVPNAgentDown</b>" in call.text
        assert "vpn-nl&lt;script&gt;" in call.text and "<script>" not in call.text
        assert "ovpn-agent:9090" in call.text
        assert call.params.get("parse_mode") == "HTML"
    assert vpn.metric('ovpn_bot_alerts_received_total{status="firing"}') >= received + 1
    assert (
        vpn.post("/events", {"kind": "deploy", "server": "vpn-test", "message": "release 7 is live"}) == 200
    )
    vpn.fake.sent_to(NOTIFY[0], "release 7 is live")
    assert vpn.post("/alertmanager", {"alerts": "nope"}) == 400
    assert http(f"{vpn.url}/health", {"x": 1})[0] == 405


def test_health_degraded_while_telegram_unreachable_and_alerts_wait(vpn: BotProcess) -> None:
    assert vpn.health()["status"] == "ok"
    vpn.fake.set_down(True)
    health = wait_until(
        lambda: (h := vpn.health()).get("status") == "degraded" and h, timeout=20, what="degraded health"
    )
    assert health["telegram"] == "unreachable"
    assert vpn.post("/alertmanager", _firing_and_resolved()) == 200
    wait_until(lambda: vpn.metric("ovpn_bot_messages_failed_total") > 0, timeout=20, what="a failed delivery")
    assert vpn.process.poll() is None
    assert vpn.metric("ovpn_bot_telegram_reachable") == 0
    assert vpn.fake.calls("sendMessage") == []
    vpn.fake.set_down(False)
    wait_until(lambda: vpn.health().get("status") == "ok", timeout=30, what="ok health again")
    for chat in (OWNER, *NOTIFY):
        vpn.fake.sent_to(chat, "OVPNForeignBackendPoolDown", timeout=30)
    assert vpn.metric("ovpn_bot_telegram_reachable") == 1


# ---------------------------------------------------------------------------------------- webhook tokens

FORGED_AUTHORIZATIONS = {
    "missing": None,
    "wrong": "Bearer not-the-webhook-token",
    "truncated": f"Bearer {WEBHOOK_TOKEN[:-1]}",
    "other-scheme": f"Basic {WEBHOOK_TOKEN}",
    "no-scheme": WEBHOOK_TOKEN,
}


def _alert(name: str) -> dict[str, Any]:
    return {"version": "4", "status": "firing",
            "alerts": [{"status": "firing", "labels": {"alertname": name, "severity": "critical"}}]}  # fmt: skip


@pytest.mark.parametrize("path", ["/alertmanager", "/events"])
def test_webhooks_refuse_a_missing_or_wrong_token_and_queue_nothing(vpn: BotProcess, path: str) -> None:
    forged = (
        _alert("OvpnForgedAlert") if path == "/alertmanager" else {"kind": "deploy", "message": "OvpnForged"}
    )
    wait_until(lambda: vpn.health().get("pending_messages") == 0, timeout=30, what="an empty queue")
    refused = vpn.metric(f'ovpn_bot_webhook_unauthorized_total{{path="{path}"}}', default=0)
    for name, authorization in FORGED_AUTHORIZATIONS.items():
        status, body = http(f"{vpn.url}{path}", forged, authorization)
        assert status == 401, (name, body)
        reason = json.loads(body)["error"]
        assert reason == ("missing bearer token" if authorization is None else "wrong bearer token"), name
    assert vpn.metric(f'ovpn_bot_webhook_unauthorized_total{{path="{path}"}}') == refused + len(
        FORGED_AUTHORIZATIONS
    )
    # Messages go out in order: once a message sent with the token is delivered, nothing forged was queued.
    assert vpn.post("/events", {"kind": "marker", "message": "sent with the token"}) == 200
    vpn.fake.sent_to(OWNER, "sent with the token")
    assert [c.text for c in vpn.fake.calls("sendMessage") if "OvpnForged" in c.text] == []
    assert WEBHOOK_TOKEN not in vpn.log.read_text()


def test_an_event_flood_during_an_outage_never_pushes_out_an_alert(vpn: BotProcess) -> None:
    """More events than the queue holds (600, to three chats each, for a 500-message queue) arrive while Telegram
    is down, between two alerts: both alerts reach every chat once Telegram answers again."""
    wait_until(lambda: vpn.health().get("pending_messages") == 0, timeout=30, what="an empty queue")
    vpn.fake.clear()
    dropped = vpn.metric("ovpn_bot_messages_dropped_total")
    vpn.fake.set_down(True)
    assert vpn.post("/alertmanager", _alert("OvpnBeforeTheFlood")) == 200
    for i in range(600):
        assert vpn.post("/events", {"kind": "flood", "message": f"flood event {i}"}) == 200
    assert vpn.post("/alertmanager", _alert("OvpnAfterTheFlood")) == 200
    assert vpn.health()["pending_messages"] == 500
    assert vpn.fake.calls("sendMessage") == []
    vpn.fake.set_down(False)
    for name in ("OvpnBeforeTheFlood", "OvpnAfterTheFlood"):
        for chat in (OWNER, *NOTIFY):
            vpn.fake.sent_to(chat, name, timeout=60)
    wait_until(lambda: vpn.health().get("pending_messages") == 0, timeout=60, what="the queue to drain")
    # Only events were dropped: 1800 event messages and 6 alert messages for 500 places.
    assert vpn.metric("ovpn_bot_messages_dropped_total") == dropped + 600 * 3 + 2 * 3 - 500
    delivered = [c.text for c in vpn.fake.calls("sendMessage")]
    assert sum("flood event" in text for text in delivered) == 500 - 2 * 3
    assert any("flood event 599" in text for text in delivered)  # the newest events are the ones kept


# ------------------------------------------------------------------------------------------------ standby


def _standby_health(bot: BotProcess) -> dict[str, Any]:
    def misconfigured() -> dict[str, Any] | None:
        assert bot.process.poll() is None, f"the bot exited: {bot.log.read_text()}"
        status, body = http(f"{bot.url}/health")
        return json.loads(body) if status == 503 else None

    return dict(wait_until(misconfigured, timeout=20, what="the bot's standby health"))


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"owner_user_id": ""}, "OVPN_TELEGRAM_OWNER_USER_ID is not set"),
        ({"notify_chat_ids": "12,abc"}, "OVPN_TELEGRAM_NOTIFY_CHAT_IDS must be a number"),
        ({"token_file": "/nonexistent/telegram_bot_token"}, "cannot read the bot token file"),
        ({"token_file": "{tmp}/empty"}, "is empty: run `ovpn server monitor telegram-setup`"),
        ({"api_base_url": "{rejecting}"}, "Telegram rejected the bot token"),
        ({"webhook_token_file": ""}, "OVPN_TELEGRAM_WEBHOOK_TOKEN_FILE is not set"),
        ({"webhook_token_file": "{tmp}/empty"}, "the webhook token file {tmp}/empty is empty"),
    ],
    ids=[
        "no-owner",
        "bad-chat-id",
        "no-token-file",
        "empty-token-file",
        "token-rejected",
        "no-webhook-token",
        "empty-webhook-token",
    ],
)
def test_unusable_configuration_waits_in_standby(
    tmp_path: Path, overrides: dict[str, str], reason: str
) -> None:
    """No exit (Compose would restart it in a loop): /health says why with 503, the metric feeds the alert,
    webhooks are refused so Alertmanager retries (and told nothing), and SIGTERM still stops it at once."""
    rejecting = FakeBotApi("987654321:AAanother-token").start()
    (tmp_path / "empty").write_text("\n")
    overrides = {k: v.format(tmp=tmp_path, rejecting=rejecting.base_url) for k, v in overrides.items()}
    reason = reason.format(tmp=tmp_path)
    bot = start_bot(tmp_path, "vpn", "xray=ovpn-xray", tmp_path / "no-docker.sock", **overrides)
    try:
        health = _standby_health(bot)
        assert health["status"] == "misconfigured" and reason in health["reason"], health
        assert bot.metric("ovpn_bot_configured") == 0 and bot.metric("ovpn_bot_up") == 1
        status, _ = http(f"{bot.url}/metrics")
        assert status == 200
        # Refused so that Alertmanager retries, without a word about the configuration, token or not.
        for authorization in (None, f"Bearer {WEBHOOK_TOKEN}"):
            for path in ("/alertmanager", "/events"):
                status, body = http(f"{bot.url}{path}", _firing_and_resolved(), authorization)
                assert (status, json.loads(body)) == (503, {"error": "the bot is not ready"})
        assert bot.fake.calls("sendMessage") == [] and rejecting.calls("sendMessage") == []
        bot.process.terminate()
        assert bot.process.wait(timeout=10) == 0
        log = bot.log.read_text()
        assert reason in log and "standby" in log
        assert TOKEN not in log, "the bot token leaked into the log"
    finally:
        stop_bot(bot)
        rejecting.stop()


def test_configured_bot_exports_configured(vpn: BotProcess) -> None:
    assert vpn.metric("ovpn_bot_configured") == 1


# ---------------------------------------------------------------------------------------------- real engine


def _state(engine: Any, name: str) -> dict[str, Any]:
    return dict(json.loads(engine.docker("inspect", "--format", "{{json .State}}", name)))


def _health(engine: Any, name: str) -> str | None:
    return (_state(engine, name).get("Health") or {}).get("Status")


def _run_container(engine: Any, image: str, name: str, health: str, script: str) -> None:
    engine.docker("rm", "-f", name, check=False)
    engine.docker(
        "run", "-d", "--pull", "never", "--network", "none", "--name", name,
        "--health-cmd", health, "--health-interval", "1s", "--health-retries", "1", "--health-timeout", "2s",
        image, "sh", "-c", f'trap "exit 0" TERM; {script} sleep infinity & wait',
    )  # fmt: skip


@pytest.fixture(scope="module")
def agent_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real ovpn-agent on loopback (its Xray API address has nothing behind it: it says degraded) with one user."""
    tmp = tmp_path_factory.mktemp("bot-agent")
    port = free_port()
    env = {**os.environ, "OVPN_AGENT_TOKEN": AGENT_TOKEN}
    argv = [str(ROOT / ".venv/bin/ovpn-agent"), "--listen", f"127.0.0.1:{port}", "--xray-api",
            f"127.0.0.1:{free_port()}", "--db-path", str(tmp), "--poll-interval", "3600"]  # fmt: skip
    with (tmp / "agent.log").open("wb") as sink:
        agent = subprocess.Popen(argv, env=env, stdout=sink, stderr=sink)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: http(f"{url}/health")[0] == 200, timeout=30, what="the agent")
        users = {"users": [{"email": "alice@ovpn", "uuid": str(uuid.uuid4()), "enabled": True,
                            "expiry": None, "quota_bytes": 10 * 2**30}]}  # fmt: skip
        request = urllib.request.Request(f"{url}/users/sync", data=json.dumps(users).encode(), method="POST",
                                         headers={"Authorization": f"Bearer {AGENT_TOKEN}",
                                                  "Content-Type": "application/json"})  # fmt: skip
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200
        yield url
    finally:
        agent.terminate()
        agent.wait(timeout=30)


@pytest.fixture(scope="module")
def proxy_bot(
    lab_engine: Any, agent_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[BotProcess]:
    from tests.fleetlab.images import RUNTIME_IMAGE, ensure_images

    ensure_images(lab_engine, tool_path("xray"))
    bot = None
    try:
        _run_container(lab_engine, RUNTIME_IMAGE, OK_CONTAINER, "true", "")
        # Healthy at its first start only: a restart removes the file its healthcheck looks for.
        _run_container(lab_engine, RUNTIME_IMAGE, BAD_CONTAINER, "test -f /tmp/ok",
                       "if [ -e /tmp/started ]; then rm -f /tmp/ok; else touch /tmp/started /tmp/ok; fi;")  # fmt: skip
        for name in (OK_CONTAINER, BAD_CONTAINER):
            wait_until(lambda: _health(lab_engine, name) == "healthy", timeout=30, what=f"{name} healthy")  # noqa: B023
        tmp = tmp_path_factory.mktemp("proxy-bot")
        bot = start_bot(
            tmp, "proxy", f"xray={OK_CONTAINER},haproxy={BAD_CONTAINER}", lab_engine.socket, agent_url
        )
        yield bot
    finally:
        if bot is not None:
            stop_bot(bot)
            assert TOKEN not in bot.log.read_text(), "the bot token leaked into the log"
        for name in (OK_CONTAINER, BAD_CONTAINER):
            lab_engine.docker("rm", "-f", name, check=False)


@pytest.fixture
def proxy(proxy_bot: BotProcess) -> BotProcess:
    proxy_bot.fake.clear()
    return proxy_bot


def _edit(bot: BotProcess, contains: str) -> Call:
    return bot.fake.wait_for(lambda c: c.method == "editMessageText" and contains in c.text,
                             what=f"editMessageText with {contains!r}")  # fmt: skip


def test_owner_gets_status_and_services_on_proxy(proxy: BotProcess) -> None:
    proxy.fake.inject_message(OWNER, "/start")
    menu = proxy.fake.sent_to(OWNER, "choose a screen")
    assert ("Status", "s:status") in menu.buttons() and ("Services", "s:services") in menu.buttons()
    proxy.fake.inject_callback(OWNER, "s:status")
    status = _edit(proxy, "proxy-test")
    assert "(proxy)" in status.text and "services: 2/2 up" in status.text
    assert "agent: ⚠️ degraded" in status.text
    proxy.fake.inject_callback(OWNER, "s:services")
    services = _edit(proxy, "Services on proxy-test")
    assert "✅ xray: running, healthy" in services.text
    assert "✅ haproxy: running, healthy" in services.text
    assert ("↻ haproxy", "r:haproxy") in services.buttons()
    assert proxy.fake.calls("answerCallbackQuery")


def test_agent_screens(proxy: BotProcess) -> None:
    proxy.fake.inject_callback(OWNER, "s:users")
    assert "alice@ovpn: ok, until never" in _edit(proxy, "<b>Users</b>").text
    proxy.fake.inject_callback(OWNER, "s:quota")
    assert "alice@ovpn: 0 B / 10.0 GiB (0%)" in _edit(proxy, "<b>Quota</b>").text
    proxy.fake.inject_callback(OWNER, "s:doctor")
    doctor = _edit(proxy, "Doctor proxy-test")
    assert "✅ container xray" in doctor.text and "agent health" in doctor.text


def _ask_restart(bot: BotProcess, service: str) -> tuple[str, str]:
    bot.fake.inject_callback(OWNER, f"r:{service}")
    prompt = _edit(bot, f"Restart <b>{service}</b>?")
    buttons = dict(prompt.buttons())
    return buttons["Confirm"], buttons["Cancel"]


def test_cancel_does_nothing(proxy: BotProcess, lab_engine: Any) -> None:
    started = _state(lab_engine, OK_CONTAINER)["StartedAt"]
    confirm, cancel = _ask_restart(proxy, "xray")
    proxy.fake.inject_callback(OWNER, cancel)
    _edit(proxy, "Restart cancelled")
    # The cancelled prompt's Confirm button is dead now.
    proxy.fake.inject_callback(OWNER, confirm)
    _edit(proxy, "expired: nothing was restarted")
    assert _state(lab_engine, OK_CONTAINER)["StartedAt"] == started
    assert not [c for c in proxy.fake.calls("sendMessage") if "restart" in c.text]


def test_confirmed_restart_reports_healthy(proxy: BotProcess, lab_engine: Any) -> None:
    started = _state(lab_engine, OK_CONTAINER)["StartedAt"]
    confirm, _ = _ask_restart(proxy, "xray")
    proxy.fake.inject_callback(OWNER, confirm)
    proxy.fake.sent_to(OWNER, "<b>xray</b>: restarted, healthy", timeout=30)
    assert _state(lab_engine, OK_CONTAINER)["StartedAt"] != started
    assert proxy.metric('ovpn_bot_restarts_total{result="ok",service="xray"}') == 1


def test_restart_that_stays_unhealthy_is_reported_failed(proxy: BotProcess, lab_engine: Any) -> None:
    confirm, _ = _ask_restart(proxy, "haproxy")
    proxy.fake.inject_callback(OWNER, confirm)
    failed = proxy.fake.sent_to(OWNER, "<b>haproxy</b>: restart FAILED", timeout=40)
    assert "unhealthy" in failed.text
    assert proxy.metric('ovpn_bot_restarts_total{result="failed",service="haproxy"}') == 1


def test_callback_data_is_validated(proxy: BotProcess, lab_engine: Any) -> None:
    started = _state(lab_engine, OK_CONTAINER)["StartedAt"]
    for data in ("r:ovpn-telegram-bot", "y:zzzz", "r:xray;rm", "x"):
        proxy.fake.inject_callback(OWNER, data)
    proxy.fake.wait_for(lambda c: len([a for a in proxy.fake.calls("answerCallbackQuery")
                                       if a.params.get("text") == "Unknown button"]) == 4,
                        what="four 'Unknown button' answers")  # fmt: skip
    assert proxy.fake.calls("editMessageText") == []
    assert _state(lab_engine, OK_CONTAINER)["StartedAt"] == started
