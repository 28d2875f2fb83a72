"""A proxy's rendered monitoring stack run for real on 127.0.0.1: HAProxy, Prometheus, Alertmanager,
node-exporter, ovpn-agent, with a webhook receiver at the end of the alert chain.

The rendered files are used as they are, except for what running them on one loopback interface instead of a
Compose network forces, and for the durations that would make a test wait minutes. Each rewrite lives in one
`loopback_*` function whose docstring lists exactly what it changes. Every process is started in its own
session, tracked by its PID and stopped by that PID (its process group), never by name.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from ovpn.core.names import HAPROXY_METRICS_PORT, RELAY_PORT
from tests.support.waiting import LOOPBACK

# The rendered `for:` durations are divided by this, with the scrape and evaluation interval (30 s -> 1 s).
TIME_SCALE = 30
LOOPBACK_INTERVAL = "1s"
# Alertmanager's group_wait and group_interval on loopback (rendered: 10 s-30 s and 2-5 min).
LOOPBACK_GROUP_TIMING = "1s"


def http_get(url: str, timeout: float = 5) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return str(response.read().decode())


def http_json(url: str, timeout: float = 5) -> Any:
    return json.loads(http_get(url, timeout))


def http_ok(url: str) -> bool:
    try:
        http_get(url, timeout=1)
        return True
    except (OSError, urllib.error.URLError):
        return False


# ------------------------------------------------------------------------------------------ rewrites


def _duration_seconds(text: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
    parts = re.findall(r"([0-9]+)(ms|s|m|h|d|w|y)", text)
    assert parts and "".join(n + u for n, u in parts) == text, f"not a Prometheus duration: {text!r}"
    return sum(int(n) * units[u] for n, u in parts)


def _scaled(duration: str) -> str:
    return f"{max(1, round(_duration_seconds(duration) / TIME_SCALE))}s"


def _replace_once(text: str, old: str, new: str) -> str:
    """Replace `old`, which must occur exactly once: a render that changed shape fails here, loudly."""
    count = text.count(old)
    assert count == 1, f"expected exactly one {old!r} in the rendered file, found {count}"
    return text.replace(old, new)


def loopback_haproxy_config(
    rendered: str, *, relay_port: int, metrics_port: int, backends: Mapping[str, int], dns_port: int
) -> str:
    """The rendered haproxy.cfg with only addresses and ports changed:

    * the relay frontend's `bind :15443` and the metrics frontend's `bind :8404` -> `bind 127.0.0.1:<port>`;
    * each `server NAME HOST:PORT` -> `server NAME 127.0.0.1:<that backend's loopback port>` (names, order,
      `backup` and every check setting stay);
    * the resolvers section reads the host's resolv.conf (`parse-resolv-conf`); here it names one loopback
      port nobody answers on, so HAProxy can never send a DNS query off the machine.
    """
    text = _replace_once(rendered, f"bind :{RELAY_PORT}\n", f"bind {LOOPBACK}:{relay_port}\n")
    text = _replace_once(text, f"bind :{HAPROXY_METRICS_PORT}\n", f"bind {LOOPBACK}:{metrics_port}\n")
    text = _replace_once(text, "parse-resolv-conf\n", f"nameserver loopback {LOOPBACK}:{dns_port}\n")
    for name, port in backends.items():
        pattern = re.compile(rf"^(    server {re.escape(name)} )\S+( .*)$", re.MULTILINE)
        text, count = pattern.subn(rf"\g<1>{LOOPBACK}:{port}\g<2>", text)
        assert count == 1, f"server {name} is not in the rendered haproxy.cfg"
    addresses = set(re.findall(r"\b\d{1,3}(?:\.\d{1,3}){3}\b", text))
    assert addresses <= {LOOPBACK}, f"non-loopback addresses left in the HAProxy config: {addresses}"
    servers = [line for line in text.splitlines() if line.strip().startswith("server ")]
    assert all(f" {LOOPBACK}:" in line for line in servers), servers
    return text


def loopback_prometheus_config(
    rendered: Mapping[str, Any], *, targets: Mapping[str, int], alertmanager_port: int, rules_glob: str
) -> dict[str, Any]:
    """The rendered prometheus.yml with:

    * every job's static target `<service>:<port>` -> `127.0.0.1:<port>` (`targets` maps job name -> loopback
      port; a job whose exporter cannot run here points at a port that refuses connections, so its `up` is 0
      as it would be on a host where that container is dead);
    * the Alertmanager target -> `127.0.0.1:<port>`;
    * `rule_files` -> where the test wrote the rendered rules (rendered: /etc/prometheus/rules/*.yml);
    * `scrape_interval`, `evaluation_interval` and `scrape_timeout` -> 1 s (rendered 30 s / 30 s / 10 s), so
      a state change reaches the rules within about a second.

    Everything else (external labels, metrics paths, the haproxy job's `server` -> `backend` relabelling) is
    kept as rendered."""
    config: dict[str, Any] = json.loads(json.dumps(rendered))
    for key in ("scrape_interval", "evaluation_interval", "scrape_timeout"):
        assert key in config["global"], key
        config["global"][key] = LOOPBACK_INTERVAL
    (managers,) = config["alerting"]["alertmanagers"]
    (static,) = managers["static_configs"]
    assert len(static["targets"]) == 1
    static["targets"] = [f"{LOOPBACK}:{alertmanager_port}"]
    assert len(config["rule_files"]) == 1
    config["rule_files"] = [rules_glob]
    jobs = {job["job_name"] for job in config["scrape_configs"]}
    assert jobs == set(targets), f"rendered jobs {sorted(jobs)} != loopback targets {sorted(targets)}"
    for job in config["scrape_configs"]:
        (static,) = job["static_configs"]
        assert len(static["targets"]) == 1
        static["targets"] = [f"{LOOPBACK}:{targets[job['job_name']]}"]
    return config


def loopback_rules(rendered: Mapping[str, Any]) -> dict[str, Any]:
    """The rendered alert rules with every `for:` divided by TIME_SCALE (30, as 30 s scrapes became 1 s):
    1m -> 2s, 2m -> 4s, 15m -> 30s. Expressions, range windows, labels and annotations stay as rendered."""
    rules: dict[str, Any] = json.loads(json.dumps(rendered))
    for group in rules["groups"]:
        for rule in group["rules"]:
            if "for" in rule:
                rule["for"] = _scaled(rule["for"])
    return rules


def loopback_alertmanager_config(
    rendered: Mapping[str, Any], *, webhook_url: str, credentials_file: Path
) -> dict[str, Any]:
    """The rendered alertmanager.yml with:

    * every webhook URL (rendered: http://ovpn-telegram-bot:8080/alertmanager) -> `webhook_url` on loopback;
    * every webhook's bearer `credentials_file` (rendered: where the Compose file mounts the bundle's
      monitoring/secrets/bot_webhook_token) -> `credentials_file`, where the test wrote that rendered file;
    * `group_wait` and `group_interval` of the root route and every sub-route -> 1 s (rendered 10-30 s and
      2-5 min), so a firing or resolved alert is sent within seconds.

    Routes, grouping, matchers, inhibitions, `send_resolved`, the authorization type and repeat intervals stay
    as rendered."""
    config: dict[str, Any] = json.loads(json.dumps(rendered))
    urls = 0
    for receiver in config["receivers"]:
        for hook in receiver.get("webhook_configs", []):
            hook["url"] = webhook_url
            authorization = hook["http_config"]["authorization"]
            assert set(authorization) == {"type", "credentials_file"}, authorization
            authorization["credentials_file"] = str(credentials_file)
            urls += 1
    assert urls, "no webhook receiver in the rendered alertmanager.yml"

    def shorten(route: dict[str, Any]) -> None:
        for key in ("group_wait", "group_interval"):
            if key in route:
                route[key] = LOOPBACK_GROUP_TIMING
        for child in route.get("routes", []):
            shorten(child)

    shorten(config["route"])
    return config


# ------------------------------------------------------------------------------------------ webhook


@dataclass
class Notification:
    received: float
    body: dict[str, Any]
    authorization: str  # the Authorization header Alertmanager sent ("" for none)

    @property
    def status(self) -> str:
        return str(self.body["status"])

    def alertnames(self) -> set[str]:
        return {a["labels"]["alertname"] for a in self.body["alerts"]}


class WebhookReceiver:
    """Alertmanager's webhook target on loopback: keeps every POSTed notification. With `forward_to`, it is a
    recording tee in front of the real receiver (the bot): the body and the Authorization header are passed on
    unchanged and the receiver's status is Alertmanager's answer, so Alertmanager's retries work as they would
    without the tee."""

    def __init__(self, forward_to: str | None = None) -> None:
        self.notifications: list[Notification] = []
        self.forward_to = forward_to
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                authorization = self.headers.get("Authorization", "")
                with receiver._lock:
                    receiver.notifications.append(Notification(time.time(), json.loads(body), authorization))
                status = 200
                if receiver.forward_to is not None:
                    headers = {"Content-Type": "application/json"}
                    if authorization:
                        headers["Authorization"] = authorization
                    request = urllib.request.Request(receiver.forward_to, data=body, headers=headers)
                    try:
                        with urllib.request.urlopen(request, timeout=10) as response:
                            status = response.status
                    except urllib.error.HTTPError as e:
                        status = e.code
                    except OSError:
                        status = 502
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer((LOOPBACK, 0), Handler)
        self.port = int(self.server.server_address[1])
        self.url = f"http://{LOOPBACK}:{self.port}/alertmanager"
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    def since(self, index: int) -> list[Notification]:
        with self._lock:
            return list(self.notifications[index:])

    def mark(self) -> int:
        with self._lock:
            return len(self.notifications)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class RefusingPort:
    """A loopback port bound but not listening: connections to it are refused, and no one else can take it."""

    def __init__(self) -> None:
        self.socket = socket.socket()
        self.socket.bind((LOOPBACK, 0))
        self.port = int(self.socket.getsockname()[1])

    def close(self) -> None:
        self.socket.close()


@contextlib.contextmanager
def refusing_ports(count: int) -> Iterator[list[RefusingPort]]:
    ports = [RefusingPort() for _ in range(count)]
    try:
        yield ports
    finally:
        for port in ports:
            port.close()


# ------------------------------------------------------------------------------------------ /metrics


_SAMPLE = re.compile(r"^([A-Za-z_:][A-Za-z0-9_:]*)(?:\{|\s)")


def sample_names(exposition: str) -> set[str]:
    """The metric names of the samples in a Prometheus text exposition (HELP/TYPE lines are not samples)."""
    names = set()
    for line in exposition.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        match = _SAMPLE.match(line)
        assert match, f"not a sample line: {line!r}"
        names.add(match.group(1))
    return names
