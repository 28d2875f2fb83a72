"""The proxy's alert pipeline for real, on 127.0.0.1: rendered haproxy.cfg, prometheus.yml, alert rules and
alertmanager.yml run in real HAProxy 2.6, Prometheus and Alertmanager; the pool's backends are real Xray
processes that the tests kill and restart by PID; Alertmanager's webhook goes, with the bearer token from the
rendered credentials file, through a recording tee, to the real ovpn-telegram-bot process, which takes only that
token and sends its messages to a Bot API stand-in on loopback.

The rendered files change only where loopback forces it and where minutes would become seconds: see the
`loopback_*` functions in tests/support/monitoring_stack.py, whose docstrings list every change.

The second half checks the dashboards and alert rules against /metrics captured at run time from the real
exporters here (Prometheus, Alertmanager, HAProxy 2.6 and 3.x, node-exporter, cAdvisor with the flags ovpn renders,
ovpn-agent with real Xray, the bot).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import shutil
import subprocess
import sys
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.conftest import missing_tool, tool_path
from tests.support.exposition import sample
from tests.support.fake_bot_api import FakeBotApi
from tests.support.monitoring_stack import (
    WebhookReceiver,
    http_get,
    http_json,
    http_ok,
    loopback_alertmanager_config,
    loopback_haproxy_config,
    loopback_prometheus_config,
    loopback_rules,
    refusing_ports,
    sample_names,
)
from tests.support.procs import Proc, Processes, wait_until
from tests.support.promql import grafana_variable_metric_names, metric_names
from tests.support.promql_strategies import expression
from tests.support.topology import PROXY, SOLO, request
from tests.support.waiting import LOOPBACK, free_port, port_open
from tests.support.xray_loopback import LabUser, XrayLoopback, xray_loopback

from ovpn.core.model import TelegramSettings
from ovpn.core.names import POOL_BACKEND
from ovpn.render.monitoring.grafana import panel_exprs
from ovpn.render.monitoring.render import (
    ALERT_RULES,
    ALERTMANAGER_CONFIG,
    COMPOSE_FILE,
    DASHBOARD_DIR,
    PROMETHEUS_CONFIG,
)
from ovpn.render.monitoring.spec import (
    JOB_AGENT,
    JOB_ALERTMANAGER,
    JOB_BOT,
    JOB_CADVISOR,
    JOB_HAPROXY,
    JOB_NODE_EXPORTER,
    JOB_PROMETHEUS,
    WEBHOOK_TOKEN_FILE,
)
from ovpn.render.server_bundle import RenderRequest, render_server_bundle

pytestmark = pytest.mark.integration

SERVER = PROXY.name  # proxy-ru
PRIMARY, BACKUP = "vpn-nl", "vpn-de"  # priorities 100 and 200 in the topology: vpn-de is the backup
POOL_DOWN = "OvpnProxyPoolDown"
BACKEND_DOWN = "OvpnProxyBackendDown"
AGENT_TOKEN = "pipeline-agent-token-0123456789"
BOT_TOKEN = "123456789:AApipeline-bot-token"
WEBHOOK_TOKEN = "pipeline-webhook-token-0123456789"
OWNER = 4242
NOTIFY_CHAT = -100777


def with_bot(req: RenderRequest) -> RenderRequest:
    """The server as `server monitor telegram-setup` leaves it: its bot is scraped and alerted on, and its
    webhooks take the server's webhook token."""
    return dataclasses.replace(req, telegram=TelegramSettings(OWNER), bot_webhook_token=WEBHOOK_TOKEN)


def need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        missing_tool(f"{tool} is not installed (Debian packages; see .ci/install-tools)")
    assert path is not None
    return path


def write_yaml(path: Path, document: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


# ------------------------------------------------------------------------------------------ the stack


@dataclass
class Stack:
    work: Path
    procs: Processes
    webhook: WebhookReceiver
    xray: Path
    haproxy_config: str
    backend_ports: dict[str, int]
    ports: dict[str, int]
    bot_api: FakeBotApi
    backends: dict[str, Proc] = field(default_factory=dict)

    # ---- backends: real Xray, a VLESS inbound on loopback and nothing but a blackhole behind it

    def start_backend(self, name: str) -> None:
        port = self.backend_ports[name]
        config = {
            "log": {"loglevel": "warning"},
            "inbounds": [
                {"listen": LOOPBACK, "port": port, "protocol": "vless",
                 "settings": {"clients": [{"id": str(uuid.uuid4())}], "decryption": "none"}}
            ],
            "outbounds": [{"protocol": "blackhole"}],
        }  # fmt: skip
        path = self.work / f"backend-{name}.json"
        path.write_text(json.dumps(config))
        self.backends[name] = self.procs.start(f"backend-{name}", [self.xray, "run", "-config", path])
        wait_until(lambda: port_open(port), timeout=10, what=f"backend {name} to listen")

    def kill_backend(self, name: str) -> None:
        self.procs.stop(self.backends.pop(name))
        wait_until(
            lambda: not port_open(self.backend_ports[name]), timeout=10, what=f"backend {name} to close"
        )

    # ---- Prometheus and Alertmanager APIs

    def url(self, service: str, path: str) -> str:
        return f"http://{LOOPBACK}:{self.ports[service]}{path}"

    def query(self, promql: str) -> list[dict[str, Any]]:
        doc = http_json(self.url("prometheus", "/api/v1/query?" + urllib.parse.urlencode({"query": promql})))
        assert doc["status"] == "success", doc
        return list(doc["data"]["result"])

    def prometheus_alerts(self, name: str, state: str | None = None) -> list[dict[str, Any]]:
        alerts = http_json(self.url("prometheus", "/api/v1/alerts"))["data"]["alerts"]
        return [
            a for a in alerts if a["labels"]["alertname"] == name and (state is None or a["state"] == state)
        ]

    def alertmanager_alerts(self, name: str) -> list[dict[str, Any]]:
        alerts = http_json(self.url("alertmanager", "/api/v2/alerts"))
        return [a for a in alerts if a["labels"]["alertname"] == name]

    def bot_messages(self, *contains: str) -> list[str]:
        """Texts the bot sent to the owner's chat that contain every one of `contains`."""
        return [c.text for c in self.bot_api.calls("sendMessage")
                if c.params.get("chat_id") in (OWNER, str(OWNER)) and all(s in c.text for s in contains)]  # fmt: skip

    def backend_states(self) -> dict[str, float]:
        """backend -> haproxy_server_status{state="UP"} as Prometheus last scraped it."""
        rows = self.query(f'haproxy_server_status{{proxy="{POOL_BACKEND}",state="UP"}}')
        return {row["metric"]["backend"]: float(row["value"][1]) for row in rows}

    def wait_pool_healthy(self) -> None:
        """Both backends UP in Prometheus and no pool alert pending or firing: the state each test starts from."""
        for name in self.backend_ports:
            if name not in self.backends:
                self.start_backend(name)
        wait_until(lambda: self.backend_states() == {PRIMARY: 1.0, BACKUP: 1.0}, timeout=30,
                 what="both backends UP in Prometheus")  # fmt: skip
        wait_until(lambda: not self.prometheus_alerts(POOL_DOWN) and not self.prometheus_alerts(BACKEND_DOWN),
                 timeout=30, what="no pool alert active in Prometheus")  # fmt: skip


def _start_agent(stack: Stack, lab: XrayLoopback) -> None:
    """The real ovpn-agent process against the real Xray of `lab`, with users synced and traffic counted, so
    that its per-user metrics exist."""
    agent = Path(sys.executable).parent / "ovpn-agent"
    port = stack.ports["ovpn-agent"]
    env = {"PATH": "/usr/bin:/bin", "OVPN_AGENT_TOKEN": AGENT_TOKEN}
    stack.procs.start("ovpn-agent", [agent, "--listen", f"{LOOPBACK}:{port}", "--xray-api", lab.api_address,
                                     "--db-path", stack.work / "agent", "--poll-interval", "1"], env=env)  # fmt: skip
    wait_until(lambda: http_ok(f"http://{LOOPBACK}:{port}/health"), timeout=20, what="ovpn-agent /health")
    users = [{"email": u.email, "uuid": u.uuid, "username": u.name, "enabled": True, "quota_bytes": 10**9}
             for u in lab.users]  # fmt: skip
    sync = urllib.request.Request(
        f"http://{LOOPBACK}:{port}/users/sync", data=json.dumps({"users": users}).encode(), method="POST",
        headers={"Authorization": f"Bearer {AGENT_TOKEN}", "Content-Type": "application/json"},
    )  # fmt: skip
    with urllib.request.urlopen(sync, timeout=30) as response:
        assert response.status == 200
    assert lab.download("alice", 200_000) == 200_000
    alice_down = 'ovpn_agent_user_traffic_bytes_total{email="alice@global",direction="downlink"}'
    wait_until(
        lambda: sample(http_get(f"http://{LOOPBACK}:{port}/metrics"), alice_down) is not None,
        timeout=30,
        what="the agent to count alice's traffic",
    )


def _start_cadvisor(stack: Stack, cadvisor: Path, bundle: dict[str, Any]) -> None:
    """cAdvisor (tests/tools/cadvisor: the cAdvisor library's manager and collector) with the rendered flags, on
    loopback. There is no Docker engine here, so with the rendered --docker_only it reports the root cgroup:
    the same metric names as for containers."""
    service = yaml.safe_load(bundle[COMPOSE_FILE].content)["services"]["cadvisor"]
    port = stack.ports["cadvisor"]
    stack.procs.start("cadvisor", [cadvisor, *service["command"], f"--listen_ip={LOOPBACK}", f"--port={port}",
                                   f"--docker=unix://{stack.work / 'no-docker.sock'}"])  # fmt: skip
    url = f"http://{LOOPBACK}:{port}/metrics"
    wait_until(lambda: http_ok(url), timeout=30, what="cAdvisor's /metrics")
    wait_until(lambda: "container_cpu_usage_seconds_total{" in http_get(url), timeout=60,
             what="cAdvisor's first container stats")  # fmt: skip


def _start_bot(stack: Stack, webhook_token_file: Path) -> None:
    """The real ovpn-telegram-bot process, configured as on a proxy (environment only), its Bot API on loopback,
    its webhook token the rendered file. Its Docker socket does not exist here (no restarts), and the environment
    carries no proxy settings."""
    bot = Path(sys.executable).parent / "ovpn-telegram-bot"
    token_file = stack.work / "telegram_bot_token"
    token_file.write_text(BOT_TOKEN + "\n")
    env = {
        "PATH": "/usr/bin:/bin", "HOME": str(stack.work),
        "OVPN_TELEGRAM_LISTEN": f"{LOOPBACK}:{stack.ports['bot']}", "OVPN_TELEGRAM_TOKEN_FILE": str(token_file),
        "OVPN_TELEGRAM_WEBHOOK_TOKEN_FILE": str(webhook_token_file),
        "OVPN_TELEGRAM_SERVER_NAME": SERVER, "OVPN_TELEGRAM_SERVER_ROLE": "proxy",
        "OVPN_TELEGRAM_AGENT_URL": stack.url("ovpn-agent", ""), "OVPN_TELEGRAM_PROMETHEUS_URL": stack.url("prometheus", ""),
        "OVPN_TELEGRAM_OWNER_USER_ID": str(OWNER), "OVPN_TELEGRAM_NOTIFY_CHAT_IDS": str(NOTIFY_CHAT),
        "OVPN_TELEGRAM_API_BASE_URL": stack.bot_api.base_url,
        "OVPN_TELEGRAM_DOCKER_SOCKET": str(stack.work / "no-docker.sock"), "OVPN_TELEGRAM_POLL_TIMEOUT": "5",
    }  # fmt: skip
    stack.procs.start("ovpn-telegram-bot", [bot], env=env)
    wait_until(lambda: stack.bot_api.calls("getUpdates"), timeout=30, what="the bot's first getUpdates")
    wait_until(lambda: http_ok(stack.url("bot", "/health")), timeout=30, what="the bot's /health")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    haproxy, prometheus = need("haproxy"), need("prometheus")
    alertmanager, node_exporter = need("prometheus-alertmanager"), need("prometheus-node-exporter")
    xray, cadvisor = tool_path("xray"), tool_path("cadvisor-lab")
    work = tmp_path_factory.mktemp("alert-pipeline")
    bundle = render_server_bundle(with_bot(request(PROXY)))
    procs = Processes(work)
    bot_api = FakeBotApi(BOT_TOKEN).start()
    ports = {name: free_port() for name in ("relay", "haproxy", "prometheus", "alertmanager",
                                            "node-exporter", "cadvisor", "ovpn-agent", "bot")}  # fmt: skip
    webhook = WebhookReceiver(forward_to=f"http://{LOOPBACK}:{ports['bot']}/alertmanager")
    users = [LabUser(name, str(uuid.uuid4())) for name in ("alice", "bob")]
    (work / "xray").mkdir()
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(bot_api.stop)
        cleanup.callback(webhook.close)
        [dns] = cleanup.enter_context(refusing_ports(1))
        lab = cleanup.enter_context(xray_loopback(xray, work / "xray", users))
        backend_ports = {PRIMARY: free_port(), BACKUP: free_port()}
        haproxy_config = loopback_haproxy_config(
            bundle["haproxy/haproxy.cfg"].content.decode(), relay_port=ports["relay"],
            metrics_port=ports["haproxy"], backends=backend_ports, dns_port=dns.port,
        )  # fmt: skip
        stack = Stack(work, procs, webhook, xray, haproxy_config, backend_ports, ports, bot_api)
        try:
            for name in backend_ports:
                stack.start_backend(name)
            (work / "haproxy.cfg").write_text(haproxy_config)
            procs.start("haproxy", [haproxy, "-f", work / "haproxy.cfg", "-db"])
            procs.start(
                "node-exporter", [node_exporter, f"--web.listen-address={LOOPBACK}:{ports['node-exporter']}"]
            )
            _start_cadvisor(stack, cadvisor, bundle)
            _start_agent(stack, lab)
            # The rendered webhook token file, as both the bot and Alertmanager read it on a host.
            webhook_token_file = work / "bot_webhook_token"
            webhook_token_file.write_bytes(bundle[WEBHOOK_TOKEN_FILE].content)
            webhook_token_file.chmod(0o600)
            _start_bot(stack, webhook_token_file)

            am_config = loopback_alertmanager_config(yaml.safe_load(bundle[ALERTMANAGER_CONFIG].content),
                                                     webhook_url=webhook.url,
                                                     credentials_file=webhook_token_file)  # fmt: skip
            write_yaml(work / "alertmanager.yml", am_config)
            procs.start("alertmanager", [
                alertmanager, f"--config.file={work / 'alertmanager.yml'}", f"--storage.path={work / 'am-data'}",
                f"--web.listen-address={LOOPBACK}:{ports['alertmanager']}", "--cluster.listen-address=",
            ])  # fmt: skip

            write_yaml(
                work / "rules" / "ovpn-alerts.yml",
                loopback_rules(yaml.safe_load(bundle[ALERT_RULES].content)),
            )
            targets = {
                JOB_PROMETHEUS: ports["prometheus"], JOB_ALERTMANAGER: ports["alertmanager"],
                JOB_NODE_EXPORTER: ports["node-exporter"], JOB_AGENT: ports["ovpn-agent"],
                JOB_HAPROXY: ports["haproxy"], JOB_BOT: ports["bot"], JOB_CADVISOR: ports["cadvisor"],
            }  # fmt: skip
            prom_config = loopback_prometheus_config(
                yaml.safe_load(bundle[PROMETHEUS_CONFIG].content), targets=targets,
                alertmanager_port=ports["alertmanager"], rules_glob=str(work / "rules" / "*.yml"),
            )  # fmt: skip
            write_yaml(work / "prometheus.yml", prom_config)
            procs.start("prometheus", [
                prometheus, f"--config.file={work / 'prometheus.yml'}", f"--storage.tsdb.path={work / 'tsdb'}",
                f"--web.listen-address={LOOPBACK}:{ports['prometheus']}",
            ])  # fmt: skip
            for service in ("alertmanager", "prometheus"):
                ready = stack.url(service, "/-/ready")
                wait_until(functools.partial(http_ok, ready), timeout=30, what=f"{service} ready")
            yield stack
        finally:
            procs.stop_all()


def _log_tail(stack: Stack, name: str) -> str:
    path = stack.work / f"{name}.log"
    return path.read_text(errors="replace")[-3000:] if path.exists() else ""


# ------------------------------------------------------------------------------------------ the chain


def test_prometheus_scrapes_every_exporter(stack: Stack) -> None:
    def health() -> dict[str, str]:
        targets = http_json(stack.url("prometheus", "/api/v1/targets"))["data"]["activeTargets"]
        return {t["labels"]["job"]: t["health"] for t in targets}

    expected = {job: "up" for job in (JOB_PROMETHEUS, JOB_ALERTMANAGER, JOB_NODE_EXPORTER, JOB_CADVISOR, JOB_AGENT,
                                      JOB_HAPROXY, JOB_BOT)}  # fmt: skip
    wait_until(lambda: health() == expected, timeout=30, what=f"scrape health {expected}")
    # The haproxy job renames HAProxy's `server` label to `backend`, so `server` stays the proxy host's name.
    rows = stack.query(f'haproxy_server_status{{proxy="{POOL_BACKEND}",state="UP"}}')
    assert {row["metric"]["backend"] for row in rows} == {PRIMARY, BACKUP}
    assert all("server" not in row["metric"] for row in rows)


def test_one_dead_backend_raises_the_backend_alert_and_not_the_pool_alert(stack: Stack) -> None:
    stack.wait_pool_healthy()
    mark = stack.webhook.mark()
    stack.kill_backend(BACKUP)
    try:
        (alert,) = wait_until(lambda: stack.prometheus_alerts(BACKEND_DOWN, "firing"), timeout=30,
                            what=f"{BACKEND_DOWN} firing in Prometheus")  # fmt: skip
        assert alert["labels"]["backend"] == BACKUP and alert["labels"]["severity"] == "warning"
        assert stack.backend_states() == {PRIMARY: 1.0, BACKUP: 0.0}

        def delivered() -> list[dict[str, Any]]:
            return [a for n in stack.webhook.since(mark) if n.status == "firing" for a in n.body["alerts"]
                    if a["labels"]["alertname"] == BACKEND_DOWN]  # fmt: skip

        (sent,) = wait_until(delivered, timeout=30, what=f"{BACKEND_DOWN} at the webhook")
        # Prometheus adds the external labels: the alert names the proxy host and the dead backend apart.
        assert sent["labels"]["server"] == SERVER and sent["labels"]["backend"] == BACKUP
        assert sent["labels"]["role"] == "proxy"
        assert sent["annotations"]["summary"] == f"{SERVER}: backend {BACKUP} is DOWN"
        wait_until(lambda: stack.bot_messages(BACKEND_DOWN, "FIRING", f"<code>{BACKUP}</code>"), timeout=30,
                 what=f"the bot's message about {BACKEND_DOWN}")  # fmt: skip
        # The pool still has its primary: the pool alert is not even pending, anywhere along the chain.
        assert stack.prometheus_alerts(POOL_DOWN) == []
        assert stack.alertmanager_alerts(POOL_DOWN) == []
        assert all(POOL_DOWN not in n.alertnames() for n in stack.webhook.since(mark))
    finally:
        stack.start_backend(BACKUP)

    def resolved() -> bool:
        return any(
            n.status == "resolved" and BACKEND_DOWN in n.alertnames() for n in stack.webhook.since(mark)
        )

    wait_until(resolved, timeout=30, what=f"{BACKEND_DOWN} resolved at the webhook")
    assert all(POOL_DOWN not in n.alertnames() for n in stack.webhook.since(mark))


def test_a_dead_pool_fires_through_to_the_webhook_and_resolves(stack: Stack) -> None:
    stack.wait_pool_healthy()
    mark = stack.webhook.mark()
    for name in (PRIMARY, BACKUP):
        stack.kill_backend(name)
    try:
        (alert,) = wait_until(lambda: stack.prometheus_alerts(POOL_DOWN, "firing"), timeout=30,
                            what=f"{POOL_DOWN} firing in Prometheus")  # fmt: skip
        assert alert["labels"]["proxy"] == POOL_BACKEND and alert["labels"]["severity"] == "critical"

        (active,) = wait_until(lambda: stack.alertmanager_alerts(POOL_DOWN), timeout=30,
                             what=f"{POOL_DOWN} in Alertmanager")  # fmt: skip
        assert active["status"]["state"] == "active" and active["labels"]["server"] == SERVER

        # The dead pool inhibits its dead backends on the same host (alertmanager.yml's inhibit_rules).
        def backends_inhibited() -> bool:
            backends = stack.alertmanager_alerts(BACKEND_DOWN)
            return len(backends) == 2 and all(a["status"]["inhibitedBy"] for a in backends)

        wait_until(backends_inhibited, timeout=30, what=f"{BACKEND_DOWN} x2 inhibited by {POOL_DOWN}")

        def fired() -> list[dict[str, Any]]:
            return [
                n.body
                for n in stack.webhook.since(mark)
                if n.status == "firing" and POOL_DOWN in n.alertnames()
            ]

        notification = wait_until(fired, timeout=30, what=f"{POOL_DOWN} firing at the webhook")[0]
        (sent,) = notification["alerts"]
        assert sent["labels"]["server"] == SERVER and sent["status"] == "firing"
        assert sent["annotations"]["summary"] == f"{SERVER}: no foreign backend is UP"
        assert notification["receiver"] == "ovpn-telegram-bot"
        # Alertmanager presented the token from the rendered credentials file, and the bot took it.
        assert {n.authorization for n in stack.webhook.since(mark)} == {f"Bearer {WEBHOOK_TOKEN}"}
        (text,) = wait_until(lambda: stack.bot_messages(POOL_DOWN, "FIRING"), timeout=30,
                           what=f"the bot's message about {POOL_DOWN}")  # fmt: skip
        assert f"{SERVER}: no foreign backend is UP" in text and "[critical]" in text
        # The notify chat gets it too.
        wait_until(lambda: [c for c in stack.bot_api.calls("sendMessage") if POOL_DOWN in c.text
                          and c.params.get("chat_id") in (NOTIFY_CHAT, str(NOTIFY_CHAT))],
                 timeout=30, what="the message in the notify chat")  # fmt: skip
        # The owner's Doctor screen reads the same alert from Prometheus (OVPN_TELEGRAM_PROMETHEUS_URL).
        stack.bot_api.inject_message(OWNER, "/doctor")
        doctor = stack.bot_api.sent_to(OWNER, f"Doctor {SERVER}", timeout=30)
        firing_line = [line for line in doctor.text.splitlines() if "firing alerts: " in line]
        assert len(firing_line) == 1 and POOL_DOWN in firing_line[0], doctor.text
    finally:
        for name in (PRIMARY, BACKUP):
            stack.start_backend(name)

    def resolved() -> list[dict[str, Any]]:
        return [
            n.body
            for n in stack.webhook.since(mark)
            if n.status == "resolved" and POOL_DOWN in n.alertnames()
        ]

    (sent,) = wait_until(resolved, timeout=40, what=f"{POOL_DOWN} resolved at the webhook")[0]["alerts"]
    assert sent["status"] == "resolved" and sent["endsAt"] > sent["startsAt"]
    wait_until(lambda: stack.bot_messages(POOL_DOWN, "RESOLVED"), timeout=30,
             what=f"the bot's message that {POOL_DOWN} is resolved")  # fmt: skip
    wait_until(lambda: not stack.prometheus_alerts(POOL_DOWN), timeout=30, what=f"{POOL_DOWN} to clear")


# ------------------------------------------------------------------------------------------ metric names


def _capture_haproxy3(stack: Stack) -> str:
    """/metrics of HAProxy 3.x running the same loopback config (ports of its own)."""
    haproxy3 = tool_path("haproxy3")
    work = stack.work / "haproxy3"
    work.mkdir(exist_ok=True)
    relay, metrics = free_port(), free_port()
    text = stack.haproxy_config.replace(f":{stack.ports['relay']}\n", f":{relay}\n")
    text = text.replace(f":{stack.ports['haproxy']}\n", f":{metrics}\n")
    (work / "haproxy.cfg").write_text(text)
    # The wrapper shows HAProxy its current directory only: the config goes by a relative path.
    proc = stack.procs.start("haproxy3", [haproxy3, "-f", "haproxy.cfg", "-db"], cwd=work)
    try:
        url = f"http://{LOOPBACK}:{metrics}/metrics"
        wait_until(lambda: http_ok(url), timeout=20, what="HAProxy 3 /metrics")
        return http_get(url)
    finally:
        stack.procs.stop(proc)


def _capture(stack: Stack) -> dict[str, set[str]]:
    """exporter -> the metric names of the samples it exported, fetched now; and Prometheus' own series
    names (`up` and the other series Prometheus makes itself exist only there)."""
    sources = {
        "prometheus": stack.url("prometheus", "/metrics"),
        "alertmanager": stack.url("alertmanager", "/metrics"),
        "haproxy-2.6": stack.url("haproxy", "/metrics"),
        "node-exporter": stack.url("node-exporter", "/metrics"),
        "cadvisor": stack.url("cadvisor", "/metrics"),
        "ovpn-agent": stack.url("ovpn-agent", "/metrics"),
        "ovpn-telegram-bot": stack.url("bot", "/metrics"),
    }
    texts = {name: http_get(url) for name, url in sources.items()}
    texts["haproxy-3"] = _capture_haproxy3(stack)
    stored = http_json(stack.url("prometheus", "/api/v1/label/__name__/values"))["data"]
    captured = {name: sample_names(text) for name, text in texts.items()}
    captured["prometheus-tsdb"] = set(stored)
    # Kept with the test's other files for a reader; produced by this run, never committed.
    for name, names in captured.items():
        (stack.work / f"metrics-{name}.txt").write_text("".join(f"{n}\n" for n in sorted(names)))
    return captured


def _referenced(bundle: dict[str, Any]) -> dict[str, set[str]]:
    """metric name -> where it is used ("rule X", "dashboard Y: panel Z"), for every rule and dashboard query."""
    used: dict[str, set[str]] = {}
    rules = yaml.safe_load(bundle[ALERT_RULES].content)
    for group in rules["groups"]:
        for rule in group["rules"]:
            for name in metric_names(rule["expr"]):
                used.setdefault(name, set()).add(f"rule {rule['alert']}")
    for path, file in bundle.items():
        if not path.startswith(DASHBOARD_DIR + "/"):
            continue
        model = json.loads(file.content)
        for panel in model["panels"]:
            for tgt in panel.get("targets", []):
                for name in metric_names(tgt["expr"]):
                    used.setdefault(name, set()).add(f"{model['title']}: {panel['title']}")
        for variable in model.get("templating", {}).get("list", []):
            query = variable.get("definition") or variable.get("query", {}).get("query", "")
            for name in grafana_variable_metric_names(query):
                used.setdefault(name, set()).add(f"{model['title']}: variable {variable['name']}")
        assert panel_exprs(model), path
    return used


def test_dashboards_and_rules_read_metrics_the_real_exporters_export(stack: Stack) -> None:
    wait_until(
        lambda: stack.query(f'up{{job="{JOB_HAPROXY}"}} == 1'), timeout=30, what="a first haproxy scrape"
    )
    captured = _capture(stack)
    union = set().union(*captured.values())
    haproxy_both = captured["haproxy-2.6"] & captured["haproxy-3"]
    used: dict[str, set[str]] = {}
    for server in (PROXY, SOLO):
        for name, places in _referenced(render_server_bundle(with_bot(request(server)))).items():
            used.setdefault(name, set()).update(places)
    assert len(used) > 50, sorted(used)

    missing = {}
    for name, places in sorted(used.items()):
        # HAProxy's exporter differs between versions; hosts run 3.x, this machine 2.6: both must have it.
        if name not in (haproxy_both if name.startswith("haproxy_") else union):
            missing[name] = places
    assert not missing, "metrics no real exporter here exports:\n" + "\n".join(
        f"  {n}: {sorted(p)}" for n, p in missing.items()
    )
    # Every exporter the dashboards read from was captured, cAdvisor's container_* included.
    assert any(name.startswith("container_") for name in used)


def test_the_capture_would_notice_a_wrong_name(stack: Stack) -> None:
    """The check above can fail: a HAProxy name from another exporter generation is not in the captures."""
    captured = {
        name: sample_names(http_get(stack.url(name, "/metrics"))) for name in ("haproxy", "node-exporter")
    }
    assert "haproxy_server_status" in captured["haproxy"]
    assert "haproxy_server_up" not in captured["haproxy"]  # what some third-party exporters call it
    assert "haproxy_backend_up" not in captured["haproxy"]
    assert "node_memory_MemAvailable_bytes" in captured["node-exporter"]
    assert "node_memory_MemAvailable" not in captured["node-exporter"]  # node-exporter before 0.16


@settings(max_examples=5, deadline=None)
@given(st.lists(expression, min_size=100, max_size=100))
def test_the_promql_generator_writes_promql_that_promtool_parses(
    exprs: list[tuple[str, frozenset[str]]],
) -> None:
    """The tokenizer's property tests draw from tests/support/promql_strategies.py; promtool parses every
    expression that strategy writes, so those tests are about real PromQL."""
    promtool = need("promtool")
    rules = {
        "groups": [
            {
                "name": "generated",
                "rules": [{"record": f"r_{i}", "expr": e} for i, (e, _) in enumerate(exprs)],
            }
        ]
    }
    done = subprocess.run([promtool, "check", "rules", "/dev/stdin"], input=yaml.safe_dump(rules), text=True,
                          capture_output=True, check=False)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
