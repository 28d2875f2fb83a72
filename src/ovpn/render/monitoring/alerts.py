"""`monitoring/prometheus/rules/ovpn-alerts.yml`: alert rules, grouped by what they watch.

Every alert has `severity` (critical: users are or will soon be cut off; warning: look at it today) and a
summary and description that name the host, because one Telegram chat receives the alerts of a whole fleet.
Metric names are the ones the services export: node-exporter, cAdvisor (`name` is the container name),
HAProxy's built-in PROMEX exporter (2.6 and later; there is no `haproxy_server_up`), the agent and the bot.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from ovpn.core.names import (
    AGENT_CONTAINER,
    HAPROXY_CONTAINER,
    HAPROXY_METRICS_PORT,
    POOL_BACKEND,
    XRAY_CONTAINER,
)
from ovpn.render.monitoring.spec import (
    JOB_AGENT,
    JOB_BOT,
    JOB_CADVISOR,
    JOB_HAPROXY,
    JOB_NODE_EXPORTER,
    MONITORING_CONTAINERS,
    MonitoringSpec,
)

Severity = Literal["critical", "warning"]

MIB = 1024 * 1024
GIB = 1024 * MIB

# Containers that must always run on every host, and every container the stack itself starts.
REQUIRED_CONTAINERS = (XRAY_CONTAINER, AGENT_CONTAINER)
WATCHED_CONTAINERS = (*REQUIRED_CONTAINERS, *MONITORING_CONTAINERS.values())


@dataclass(frozen=True)
class Alert:
    name: str
    expr: str
    for_: str
    severity: Severity
    summary: str
    description: str

    def to_rule(self) -> dict[str, Any]:
        rule: dict[str, Any] = {"alert": self.name, "expr": self.expr}
        if self.for_:
            rule["for"] = self.for_
        rule["labels"] = {"severity": self.severity}
        rule["annotations"] = {"summary": self.summary, "description": self.description}
        return rule


@dataclass(frozen=True)
class AlertGroup:
    name: str
    alerts: tuple[Alert, ...]

    def to_group(self) -> dict[str, Any]:
        return {"name": self.name, "rules": [alert.to_rule() for alert in self.alerts]}


def label(name: str) -> str:
    """A Prometheus template reference to one of the alert's labels."""
    return "{{ $labels." + name + " }}"


def value(fmt: str = "%.0f") -> str:
    """A Prometheus template reference to the alert's value, formatted."""
    return '{{ $value | printf "' + fmt + '" }}'


_BYTES = "{{ $value | humanize1024 }}B"


def _regex(names: Sequence[str]) -> str:
    return "|".join(names)


def _seen(container: str) -> str:
    return f'absent(container_last_seen{{name="{container}"}})'


# Silences "container missing" while cAdvisor itself is down (OvpnCadvisorDown says so instead).
_UNLESS_CADVISOR_DOWN = f'unless on() (up{{job="{JOB_CADVISOR}"}} == 0)'
_HOST_CPUS = 'scalar(count(node_cpu_seconds_total{mode="idle"}))'


def _restarts(selector: str) -> str:
    """How often the selected containers restarted in 15 minutes, as their CPU counters saw it.

    cAdvisor's `container_start_time_seconds` is the container's creation time, which a restart by Docker
    does not change (and a recreated container is a new series), so it cannot count restarts. A restart makes
    a new cgroup whose CPU counter starts again from zero: a counter reset.
    """
    return f"max by (name) (resets(container_cpu_usage_seconds_total{{{selector}}}[15m]))"


def _container_cpu_percent(selector: str) -> str:
    return f"sum by (name) (rate(container_cpu_usage_seconds_total{{{selector}}}[5m])) * 100 / {_HOST_CPUS}"


_CPU_BUSY = '100 * (1 - avg by (instance) (rate(node_cpu_seconds_total{mode="idle"}[5m])))'
_MEM_USED = "100 * (1 - node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes)"
_ROOT = 'mountpoint="/"'
_ROOT_FREE = f"100 * node_filesystem_avail_bytes{{{_ROOT}}} / node_filesystem_size_bytes{{{_ROOT}}}"
_INODES_FREE = f"100 * node_filesystem_files_free{{{_ROOT}}} / node_filesystem_files{{{_ROOT}}}"


def host_group(server: str) -> AlertGroup:
    return AlertGroup(
        "host",
        (
            Alert(
                "OvpnNodeExporterDown",
                f'up{{job="{JOB_NODE_EXPORTER}"}} == 0',
                "2m",
                "critical",
                f"{server}: node-exporter is down",
                f"Prometheus on {server} cannot scrape node-exporter; host CPU, memory and disk alerts "
                "are blind until it is back.",
            ),
            Alert(
                "OvpnHostHighCpu",
                f"{_CPU_BUSY} > 90",
                "10m",
                "warning",
                f"{server}: CPU above 90%",
                f"CPU on {server} has been {value()}% busy for 10 minutes.",
            ),
            Alert(
                "OvpnHostHighMemory",
                f"{_MEM_USED} > 92",
                "20m",
                "warning",
                f"{server}: memory above 92%",
                f"{value()}% of the memory on {server} has been in use for 20 minutes.",
            ),
            Alert(
                "OvpnHostMemoryCritical",
                f"{_MEM_USED} > 97",
                "5m",
                "critical",
                f"{server}: memory above 97%",
                f"{value()}% of the memory on {server} is in use; the kernel may start killing containers.",
            ),
            Alert(
                "OvpnHostLowMemAvailable",
                f"node_memory_MemAvailable_bytes < {150 * MIB}",
                "20m",
                "warning",
                f"{server}: less than 150 MiB of memory available",
                f"Only {_BYTES} of memory has been available on {server} for 20 minutes.",
            ),
            Alert(
                "OvpnHostMemAvailableCritical",
                f"node_memory_MemAvailable_bytes < {64 * MIB}",
                "2m",
                "critical",
                f"{server}: less than 64 MiB of memory available",
                f"Only {_BYTES} of memory is available on {server}; an OOM kill is close.",
            ),
            Alert(
                "OvpnHostOomKill",
                "increase(node_vmstat_oom_kill[15m]) > 0",
                "",
                "warning",
                f"{server}: the kernel killed a process for lack of memory",
                f"The OOM killer ran on {server} in the last 15 minutes; check which container restarted.",
            ),
            Alert(
                "OvpnHostDiskLowWarning",
                f"{_ROOT_FREE} < 15",
                "15m",
                "warning",
                f"{server}: root filesystem less than 15% free",
                f"The root filesystem of {server} has {value()}% free space left.",
            ),
            Alert(
                "OvpnHostDiskLowCritical",
                f"{_ROOT_FREE} < 8",
                "10m",
                "critical",
                f"{server}: root filesystem less than 8% free",
                f"The root filesystem of {server} has only {value()}% free space left; "
                "Docker and Prometheus fail when it is full.",
            ),
            Alert(
                "OvpnRootDiskWillFillSoon",
                f"predict_linear(node_filesystem_avail_bytes{{{_ROOT}}}[6h], 24 * 3600) < 0"
                f" and {_ROOT_FREE} < 20"
                f" and node_filesystem_avail_bytes{{{_ROOT}}} < {5 * GIB}",
                "1h",
                "warning",
                f"{server}: root filesystem will be full within 24 hours",
                f"At the rate of the last 6 hours the root filesystem of {server} fills up within a day.",
            ),
            Alert(
                "OvpnHostInodeLowWarning",
                f"{_INODES_FREE} < 15",
                "15m",
                "warning",
                f"{server}: root filesystem less than 15% inodes free",
                f"The root filesystem of {server} has {value()}% of its inodes free.",
            ),
            Alert(
                "OvpnHostInodeLowCritical",
                f"{_INODES_FREE} < 8",
                "10m",
                "critical",
                f"{server}: root filesystem less than 8% inodes free",
                f"The root filesystem of {server} has only {value()}% of its inodes free.",
            ),
        ),
    )


def containers_group(server: str) -> AlertGroup:
    required = " or ".join(_seen(name) for name in REQUIRED_CONTAINERS)
    watched = f'name=~"{_regex(WATCHED_CONTAINERS)}"'
    return AlertGroup(
        "containers",
        (
            Alert(
                "OvpnCadvisorDown",
                f'up{{job="{JOB_CADVISOR}"}} == 0',
                "2m",
                "critical",
                f"{server}: cAdvisor is down",
                f"Prometheus on {server} cannot scrape cAdvisor; container alerts are blind until it is "
                "back.",
            ),
            Alert(
                "OvpnContainerMissing",
                f"({required}) {_UNLESS_CADVISOR_DOWN}",
                "3m",
                "critical",
                f"{server}: container {label('name')} is not running",
                f"cAdvisor on {server} has not seen the container {label('name')} for 3 minutes; "
                f"run `ovpn doctor {server}`.",
            ),
            Alert(
                "OvpnContainerRestarting",
                f"{_restarts(watched)} > 2",
                "2m",
                "warning",
                f"{server}: container {label('name')} keeps restarting",
                f"The container {label('name')} on {server} restarted {value()} times in 15 minutes; "
                f"see `ovpn server logs {server}`.",
            ),
            Alert(
                "OvpnContainerHighCpu",
                f"{_container_cpu_percent(watched)} > 70",
                "15m",
                "warning",
                f"{server}: container {label('name')} uses much CPU",
                f"The container {label('name')} on {server} has used {value()}% of the host's CPU "
                "for 15 minutes.",
            ),
            Alert(
                "OvpnContainerHighMemory",
                f"container_memory_working_set_bytes{{{watched}}} * 100"
                " / scalar(sum(node_memory_MemTotal_bytes)) > 40",
                "15m",
                "warning",
                f"{server}: container {label('name')} uses much memory",
                f"The container {label('name')} on {server} has used {value()}% of the host's memory "
                "for 15 minutes.",
            ),
            Alert(
                "OvpnContainerOomKilled",
                f"increase(container_oom_events_total{{{watched}}}[15m]) > 0",
                "",
                "warning",
                f"{server}: container {label('name')} ran out of memory",
                f"The kernel killed a process in the container {label('name')} on {server} for lack of "
                "memory in the last 15 minutes.",
            ),
        ),
    )


def agent_group(server: str) -> AlertGroup:
    return AlertGroup(
        "agent",
        (
            Alert(
                "OvpnAgentDown",
                f'up{{job="{JOB_AGENT}"}} == 0',
                "2m",
                "critical",
                f"{server}: ovpn-agent is down",
                f"Prometheus on {server} cannot scrape ovpn-agent: traffic accounting, quota and expiry "
                "enforcement and live user changes are stopped.",
            ),
            Alert(
                "OvpnXrayApiDown",
                "ovpn_agent_xray_api_up == 0",
                "2m",
                "critical",
                f"{server}: the agent cannot reach the Xray API",
                f"ovpn-agent on {server} cannot reach the Xray API: Xray is down or its API is off; "
                "user traffic is not counted and user changes do not apply.",
            ),
            Alert(
                "OvpnAgentCollectorStale",
                "time() - ovpn_agent_collector_last_success_timestamp_seconds > 300",
                "5m",
                "warning",
                f"{server}: traffic collection is stale",
                f"ovpn-agent on {server} last collected traffic {{{{ $value | humanizeDuration }}}} ago; "
                "quotas are not enforced meanwhile.",
            ),
        ),
    )


def certificate_group(server: str) -> AlertGroup:
    expiry = "ovpn_agent_cert_expiry_timestamp_seconds"
    return AlertGroup(
        "certificate",
        (
            Alert(
                "OvpnCertExpirySoon",
                f"({expiry} - time()) / 86400 < 14 and {expiry} > time()",
                "30m",
                "warning",
                f"{server}: TLS certificate expires in less than 14 days",
                f"The TLS certificate watched by ovpn-agent on {server} expires in {value('%.1f')} days.",
            ),
            Alert(
                "OvpnCertExpired",
                f"{expiry} <= time() and {expiry} > 0",
                "10m",
                "critical",
                f"{server}: TLS certificate has expired",
                f"The TLS certificate watched by ovpn-agent on {server} has expired; renew it and redeploy.",
            ),
            Alert(
                "OvpnCertUnreadable",
                "ovpn_agent_cert_check_failing == 1",
                "15m",
                "warning",
                f"{server}: the watched TLS certificate cannot be read",
                f"ovpn-agent on {server} cannot read or parse the certificate file it watches, so the expiry "
                "alerts are blind; the agent's /health says why (fix the file or `ovpn server set --agent-cert-file`).",
            ),
        ),
    )


def bot_group(server: str) -> AlertGroup:
    return AlertGroup(
        "bot",
        (
            Alert(
                "OvpnTelegramBotDown",
                f'up{{job="{JOB_BOT}"}} == 0',
                "2m",
                "critical",
                f"{server}: the Telegram bot is down",
                f"Prometheus on {server} cannot scrape ovpn-telegram-bot; alerts from {server} are not "
                "delivered until it is back.",
            ),
            Alert(
                "OvpnTelegramApiUnreachable",
                "ovpn_bot_telegram_reachable == 0",
                "5m",
                "warning",
                f"{server}: the Telegram bot cannot reach Telegram",
                f"ovpn-telegram-bot on {server} has not reached the Telegram API for 5 minutes; "
                "check DNS, routing and the API fallback addresses.",
            ),
            Alert(
                "OvpnTelegramBotMisconfigured",
                "ovpn_bot_configured == 0",
                "2m",
                "critical",
                f"{server}: the Telegram bot is misconfigured",
                f"ovpn-telegram-bot on {server} has no usable configuration and delivers nothing (its /health "
                f"says why); run `ovpn server monitor telegram-setup {server}`.",
            ),
        ),
    )


_POOL = f'proxy="{POOL_BACKEND}"'


def haproxy_pool_group(server: str) -> AlertGroup:
    backend = label("backend")
    return AlertGroup(
        "haproxy-pool",
        (
            Alert(
                "OvpnHaproxyScrapeDown",
                f'up{{job="{JOB_HAPROXY}"}} == 0',
                "1m",
                "critical",
                f"{server}: HAProxy metrics are unreachable",
                f"Prometheus on {server} cannot scrape haproxy:{HAPROXY_METRICS_PORT}/metrics: HAProxy is "
                "down or its exporter is off, and the backend pool alerts are blind.",
            ),
            Alert(
                "OvpnProxyPoolDown",
                f"haproxy_backend_active_servers{{{_POOL}}} + haproxy_backend_backup_servers{{{_POOL}}} == 0",
                "1m",
                "critical",
                f"{server}: no foreign backend is UP",
                f"HAProxy on {server} has no live server in {POOL_BACKEND}: foreign traffic of proxy users "
                "fails closed until a backend recovers. Direct users of the backends are not affected.",
            ),
            Alert(
                "OvpnProxyBackendDown",
                f'(max without (state) (haproxy_server_status{{{_POOL},state="UP"}}) == 0)'
                " unless on(instance, proxy, backend)"
                f' (haproxy_server_status{{{_POOL},state=~"MAINT|DRAIN"}} == 1)',
                "1m",
                "warning",
                f"{server}: backend {backend} is DOWN",
                f"HAProxy on {server} marks backend {backend} of {POOL_BACKEND} DOWN (not in maintenance); "
                "new connections go to the remaining backends.",
            ),
            Alert(
                "OvpnProxyBackendFlapping",
                # increase() extrapolates to the edges of the window: two transitions read as about 2.07, so
                # "more than twice" is ">= 3".
                f"increase(haproxy_server_check_up_down_total{{{_POOL}}}[15m]) >= 3",
                "2m",
                "warning",
                f"{server}: backend {backend} is flapping",
                f"HAProxy on {server} saw backend {backend} go DOWN {value()} times in 15 minutes; "
                "its link or host is unstable.",
            ),
            Alert(
                "OvpnProxyFailoverActive",
                f"haproxy_backend_active_servers{{{_POOL}}} == 0"
                f" and haproxy_backend_backup_servers{{{_POOL}}} > 0",
                "2m",
                "warning",
                f"{server}: traffic runs on backup backends",
                f"Every primary backend of {POOL_BACKEND} on {server} is down; proxy users are served by "
                "backup backends.",
            ),
        ),
    )


def haproxy_container_group(server: str) -> AlertGroup:
    selector = f'name="{HAPROXY_CONTAINER}"'
    return AlertGroup(
        "haproxy-container",
        (
            Alert(
                "OvpnHaproxyContainerMissing",
                f"{_seen(HAPROXY_CONTAINER)} {_UNLESS_CADVISOR_DOWN}",
                "2m",
                "critical",
                f"{server}: HAProxy container is not running",
                f"cAdvisor on {server} has not seen {HAPROXY_CONTAINER} for 2 minutes: every foreign "
                "connection of proxy users fails.",
            ),
            Alert(
                "OvpnHaproxyContainerRestarting",
                f"{_restarts(selector)} > 2",
                "2m",
                "warning",
                f"{server}: HAProxy container keeps restarting",
                f"{HAPROXY_CONTAINER} on {server} restarted {value()} times in 15 minutes; "
                f"see `ovpn server logs {server} --service haproxy`.",
            ),
            Alert(
                "OvpnHaproxyHighCpu",
                f"{_container_cpu_percent(selector)} > 70",
                "15m",
                "warning",
                f"{server}: HAProxy uses much CPU",
                f"{HAPROXY_CONTAINER} on {server} has used {value()}% of the host's CPU for 15 minutes.",
            ),
        ),
    )


def alert_groups(spec: MonitoringSpec) -> list[AlertGroup]:
    server = spec.server_name
    groups = [
        host_group(server),
        containers_group(server),
        agent_group(server),
        certificate_group(server),
    ]
    if spec.bot_enabled:
        groups.append(bot_group(server))
    if spec.is_proxy:
        groups += [haproxy_pool_group(server), haproxy_container_group(server)]
    return groups


def rules_document(spec: MonitoringSpec) -> dict[str, Any]:
    return {"groups": [group.to_group() for group in alert_groups(spec)]}
