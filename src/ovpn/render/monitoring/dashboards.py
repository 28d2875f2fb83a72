"""The Grafana dashboards, built from Python with the helpers in `grafana.py`.

Every query reads metrics the local services really export (node-exporter, cAdvisor, HAProxy PROMEX, the
agent, the bot). Counts that may have no series at all end in `or vector(0)` so a quiet host shows 0, not "No
data". On the `haproxy` job the exporter's `server` label is called `backend` (see prometheus.py).
"""

from __future__ import annotations

from ovpn.core.names import AGENT_CONTAINER, HAPROXY_CONTAINER, POOL_BACKEND, POOL_FRONTEND, XRAY_CONTAINER
from ovpn.render.monitoring.grafana import (
    BLUE,
    GREEN,
    RED,
    YELLOW,
    Dashboard,
    ValueText,
    Variable,
    bargauge,
    row,
    stat,
    steps,
    table,
    target,
    timeseries,
    up_stat,
)
from ovpn.render.monitoring.spec import (
    JOB_AGENT,
    JOB_BOT,
    JOB_HAPROXY,
    JOB_NODE_EXPORTER,
    MONITORING_CONTAINERS,
    MonitoringSpec,
)

HOST_CPUS = 'scalar(count(node_cpu_seconds_total{mode="idle"}))'
HOST_MEMORY = "scalar(sum(node_memory_MemTotal_bytes))"
OURS = 'name=~"ovpn-.*"'
RUNNING = (ValueText("0", "MISSING", RED), ValueText("1", "RUNNING", GREEN))
PERCENT_STEPS = steps((None, GREEN), (70, YELLOW), (90, RED))
PRESENCE_WINDOW = 120  # seconds since cAdvisor last saw a container


def _count(expr: str) -> str:
    return f"count({expr}) or vector(0)"


def _sum(expr: str) -> str:
    return f"sum({expr}) or vector(0)"


def _cpu_percent(selector: str) -> str:
    return f"sum by (name) (rate(container_cpu_usage_seconds_total{{{selector}}}[5m])) * 100 / {HOST_CPUS}"


def _present(selector: str) -> str:
    return _count(f"time() - container_last_seen{{{selector}}} < {PRESENCE_WINDOW}")


# ------------------------------------------------------------------------------------------------- host

_CPU_BUSY = '100 * (1 - avg(rate(node_cpu_seconds_total{mode="idle"}[5m])))'
_ROOT = 'mountpoint="/"'
_REAL_FS = 'fstype!~"tmpfs|overlay|squashfs|nsfs|ramfs"'


def host_dashboard() -> Dashboard:
    return Dashboard(
        uid="ovpn-host",
        title="ovpn Host Overview",
        description="CPU, memory, disk and kernel counters of this host, from node-exporter.",
        items=(
            row("Overview"),
            up_stat("Node exporter", f'up{{job="{JOB_NODE_EXPORTER}"}}', width=4),
            stat("CPU busy", _CPU_BUSY, "percent", width=4, thresholds=PERCENT_STEPS, decimals=1),
            stat(
                "Memory used",
                "100 * (1 - node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes)",
                "percent",
                width=4,
                thresholds=PERCENT_STEPS,
                decimals=1,
            ),
            stat(
                "Swap used",
                "100 * (node_memory_SwapTotal_bytes - node_memory_SwapFree_bytes)"
                " / clamp_min(node_memory_SwapTotal_bytes, 1)",
                "percent",
                width=4,
                thresholds=PERCENT_STEPS,
                decimals=1,
            ),
            stat(
                "Root disk used",
                f"100 - 100 * node_filesystem_avail_bytes{{{_ROOT}}} / node_filesystem_size_bytes{{{_ROOT}}}",
                "percent",
                width=4,
                thresholds=steps((None, GREEN), (85, YELLOW), (92, RED)),
                decimals=1,
            ),
            stat("Root disk free", f"node_filesystem_avail_bytes{{{_ROOT}}}", "bytes", width=4),
            stat("Load (1m)", "node_load1", width=4, decimals=2),
            stat("CPU cores", 'count(node_cpu_seconds_total{mode="idle"})', width=4),
            stat("Uptime", "time() - node_boot_time_seconds", "s", width=4),
            stat(
                "Memory available",
                "node_memory_MemAvailable_bytes",
                "bytes",
                width=4,
                thresholds=steps((None, RED), (64 * 1024 * 1024, YELLOW), (150 * 1024 * 1024, GREEN)),
            ),
            stat(
                "Root inodes used",
                f"100 - 100 * node_filesystem_files_free{{{_ROOT}}} / node_filesystem_files{{{_ROOT}}}",
                "percent",
                width=4,
                thresholds=steps((None, GREEN), (85, YELLOW), (92, RED)),
                decimals=1,
            ),
            stat(
                "OOM kills (24h)",
                _sum("increase(node_vmstat_oom_kill[24h])"),
                width=4,
                thresholds=steps((None, GREEN), (1, RED)),
                decimals=0,
            ),
            row("CPU"),
            timeseries(
                "CPU by mode (% of host)",
                target(
                    'sum by (mode) (rate(node_cpu_seconds_total{mode!="idle"}[5m])) * 100 / ' + HOST_CPUS,
                    "{{mode}}",
                ),
                unit="percent",
                stacked=True,
            ),
            timeseries(
                "CPU busy per core",
                target('100 * (1 - rate(node_cpu_seconds_total{mode="idle"}[5m]))', "cpu {{cpu}}"),
                unit="percent",
            ),
            timeseries(
                "Load average",
                target("node_load1", "1m"),
                target("node_load5", "5m"),
                target("node_load15", "15m"),
                target('count(node_cpu_seconds_total{mode="idle"})', "cores"),
            ),
            timeseries(
                "Context switches and interrupts",
                target("rate(node_context_switches_total[5m])", "context switches"),
                target("rate(node_intr_total[5m])", "interrupts"),
                unit="ops",
            ),
            row("Memory"),
            timeseries(
                "Memory",
                target("node_memory_MemTotal_bytes - node_memory_MemAvailable_bytes", "used"),
                target("node_memory_Buffers_bytes", "buffers"),
                target("node_memory_Cached_bytes", "cached"),
                target("node_memory_MemFree_bytes", "free"),
                unit="bytes",
            ),
            timeseries(
                "Swap",
                target("node_memory_SwapTotal_bytes - node_memory_SwapFree_bytes", "swap used"),
                target("rate(node_vmstat_pswpin[5m]) * 4096", "swapped in"),
                target("rate(node_vmstat_pswpout[5m]) * 4096", "swapped out"),
                unit="bytes",
            ),
            row("Disk"),
            timeseries(
                "Filesystem used by mount",
                target(
                    f"100 - 100 * node_filesystem_avail_bytes{{{_REAL_FS}}}"
                    f" / node_filesystem_size_bytes{{{_REAL_FS}}}",
                    "{{mountpoint}}",
                ),
                unit="percent",
                max=100,
            ),
            timeseries(
                "Root disk forecast (24h)",
                target(f"node_filesystem_avail_bytes{{{_ROOT}}}", "free now"),
                target(
                    f"predict_linear(node_filesystem_avail_bytes{{{_ROOT}}}[6h], 24 * 3600)",
                    "free in 24h at the 6h trend",
                ),
                unit="bytes",
            ),
            timeseries(
                "Disk throughput",
                target("rate(node_disk_read_bytes_total[5m])", "{{device}} read"),
                target("rate(node_disk_written_bytes_total[5m])", "{{device}} write"),
                unit="Bps",
            ),
            timeseries(
                "Disk IOPS",
                target("rate(node_disk_reads_completed_total[5m])", "{{device}} reads"),
                target("rate(node_disk_writes_completed_total[5m])", "{{device}} writes"),
                unit="iops",
            ),
            timeseries(
                "Disk busy time",
                target("rate(node_disk_io_time_seconds_total[5m])", "{{device}}"),
                unit="percentunit",
                max=1,
            ),
            timeseries(
                "Processes and file descriptors",
                target("node_procs_running", "running"),
                target("node_procs_blocked", "blocked"),
                target("node_filefd_allocated", "open file descriptors"),
            ),
        ),
    )


# ------------------------------------------------------------------------------------------- containers


def containers_dashboard(spec: MonitoringSpec) -> Dashboard:
    monitoring = "|".join(MONITORING_CONTAINERS.values())
    shown = [XRAY_CONTAINER, AGENT_CONTAINER] + ([HAPROXY_CONTAINER] if spec.is_proxy else [])
    presence = [
        stat(
            name,
            _present(f'name="{name}"'),
            width=4,
            mappings=RUNNING,
            thresholds=steps((None, RED), (1, GREEN)),
            description=f"1 when cAdvisor saw {name} in the last {PRESENCE_WINDOW} seconds.",
        )
        for name in shown
    ]
    presence += [
        stat(
            "Monitoring containers running",
            _present(f'name=~"{monitoring}"'),
            width=4,
            thresholds=steps((None, RED), (len(MONITORING_CONTAINERS), GREEN)),
        ),
        stat("ovpn containers running", _present(OURS), width=4, thresholds=steps((None, BLUE))),
        stat(
            "Restarts (1h)",
            _sum(f"resets(container_cpu_usage_seconds_total{{{OURS}}}[1h])"),
            width=4,
            thresholds=steps((None, GREEN), (1, YELLOW), (3, RED)),
        ),
    ]
    return Dashboard(
        uid="ovpn-containers",
        title="ovpn Containers Overview",
        description="The ovpn containers on this host, from cAdvisor: presence, CPU, memory, network.",
        items=(
            row("Presence"),
            *presence,
            row("Resources"),
            timeseries(
                "CPU by container (% of host)", target(_cpu_percent(OURS), "{{name}}"), unit="percent"
            ),
            timeseries(
                "Memory working set",
                target(f"container_memory_working_set_bytes{{{OURS}}}", "{{name}}"),
                unit="bytes",
            ),
            timeseries(
                "Memory by container (% of host)",
                target(f"container_memory_working_set_bytes{{{OURS}}} * 100 / {HOST_MEMORY}", "{{name}}"),
                unit="percent",
            ),
            bargauge(
                "Top 5 containers by CPU (% of host)", f"topk(5, {_cpu_percent(OURS)})", "{{name}}", "percent"
            ),
            timeseries(
                "Network received",
                target(
                    f"sum by (name) (rate(container_network_receive_bytes_total{{{OURS}}}[5m]))", "{{name}}"
                ),
                unit="Bps",
            ),
            timeseries(
                "Network sent",
                target(
                    f"sum by (name) (rate(container_network_transmit_bytes_total{{{OURS}}}[5m]))", "{{name}}"
                ),
                unit="Bps",
            ),
            row("Lifecycle"),
            timeseries(
                "Restarts per hour",
                # A restart starts a fresh cgroup, so the CPU counter resets; the start-time metric is the
                # container's creation time, which a restart by Docker leaves unchanged.
                target(
                    f"max by (name) (resets(container_cpu_usage_seconds_total{{{OURS}}}[1h]))", "{{name}}"
                ),
                bars=True,
            ),
            timeseries(
                "Time since the container was created",
                target(f"time() - container_start_time_seconds{{{OURS}}}", "{{name}}"),
                unit="s",
            ),
            table(
                "Seconds since last seen",
                f"time() - max by (name) (container_last_seen{{{OURS}}})",
                unit="s",
                thresholds=steps((None, GREEN), (PRESENCE_WINDOW, RED)),
            ),
            table(
                "Out-of-memory events (24h)",
                f"sum by (name) (increase(container_oom_events_total{{{OURS}}}[24h]))",
                decimals=0,
            ),
        ),
    )


# ------------------------------------------------------------------------------------------------ agent

_LAST_COLLECT = "time() - ovpn_agent_collector_last_success_timestamp_seconds"
_CERT = "ovpn_agent_cert_expiry_timestamp_seconds"
_RATIO = "ovpn_agent_user_quota_usage_ratio"
_TRAFFIC = "ovpn_agent_user_traffic_bytes_total"


def agent_dashboard() -> Dashboard:
    return Dashboard(
        uid="ovpn-agent",
        title="ovpn Agent Overview",
        description="ovpn-agent and the Telegram bot: health, traffic collection, quota, certificate.",
        items=(
            row("Health"),
            up_stat("Agent scrape", f'up{{job="{JOB_AGENT}"}}', width=4),
            up_stat("Xray API", "ovpn_agent_xray_api_up", width=4),
            stat(
                "Last traffic collection",
                _LAST_COLLECT,
                "s",
                width=4,
                thresholds=steps((None, GREEN), (120, YELLOW), (300, RED)),
                description="Seconds since the collector last read the Xray stats successfully.",
            ),
            stat(
                "TLS certificate days left",
                f"(({_CERT} - time()) / 86400 and {_CERT} > 0) or vector(-1)",
                "d",
                width=4,
                decimals=1,
                mappings=(ValueText("-1", "not configured", "text"),),
                thresholds=steps((None, RED), (0, YELLOW), (14, GREEN)),
            ),
            up_stat("Telegram bot scrape", f'up{{job="{JOB_BOT}"}}', width=4),
            up_stat("Telegram API", "ovpn_bot_telegram_reachable", width=4),
            row("Users"),
            stat("Users counted", _count(f"count by (email) ({_TRAFFIC})")),
            stat("Active users (5m)", _count(f"sum by (email) (rate({_TRAFFIC}[5m])) > 0")),
            stat(
                "Users at 80% of quota or more",
                _count(f"{_RATIO} >= 0.8"),
                thresholds=steps((None, GREEN), (1, YELLOW)),
            ),
            stat("Users over quota", _count(f"{_RATIO} >= 1"), thresholds=steps((None, GREEN), (1, RED))),
            row("Trends"),
            timeseries(
                "Agent and Xray API health",
                target(f'up{{job="{JOB_AGENT}"}}', "agent scrape"),
                target("ovpn_agent_xray_api_up", "Xray API"),
                min=0,
                max=1,
            ),
            timeseries("Seconds since last collection", target(_LAST_COLLECT, "collector"), unit="s"),
            timeseries(
                "Traffic counted by the agent",
                target(f"sum by (direction) (rate({_TRAFFIC}[5m]))", "{{direction}}"),
                unit="Bps",
            ),
            timeseries(
                "Quota pressure",
                target(_count(f"{_RATIO} >= 0.8"), ">= 80%"),
                target(_count(f"{_RATIO} >= 0.95"), ">= 95%"),
                target(_count(f"{_RATIO} >= 1"), "over quota"),
            ),
            timeseries(
                "Agent container CPU (% of host)",
                target(_cpu_percent(f'name="{AGENT_CONTAINER}"'), "{{name}}"),
                unit="percent",
            ),
            timeseries(
                "Agent container memory",
                target(f'container_memory_working_set_bytes{{name="{AGENT_CONTAINER}"}}', "{{name}}"),
                unit="bytes",
            ),
        ),
    )


# ------------------------------------------------------------------------------------------------ users

_USER = 'email=~"$user"'


def users_dashboard() -> Dashboard:
    traffic = f"{_TRAFFIC}{{{_USER}}}"
    ratio = f"{_RATIO}{{{_USER}}}"
    quota_steps = steps((None, GREEN), (0.8, YELLOW), (0.95, RED))
    return Dashboard(
        uid="ovpn-users",
        title="ovpn User Statistics",
        description="Per-user traffic and quota use on this server, as counted by ovpn-agent.",
        time_from="now-24h",
        variables=(Variable("user", "User", f"label_values({_TRAFFIC}, email)"),),
        items=(
            row("Summary"),
            stat("Users", _count(f"count by (email) ({traffic})"), width=4),
            stat("Active now (5m)", _count(f"sum by (email) (rate({traffic}[5m])) > 0"), width=4),
            stat("Traffic (24h)", _sum(f"increase({traffic}[24h])"), "bytes", width=4),
            stat(
                "Highest quota use",
                f"max({ratio}) or vector(0)",
                "percentunit",
                width=4,
                thresholds=quota_steps,
                decimals=1,
            ),
            stat(
                "Users at 80% of quota or more",
                _count(f"{ratio} >= 0.8"),
                width=4,
                thresholds=steps((None, GREEN), (1, YELLOW)),
            ),
            stat(
                "Users over quota",
                _count(f"{ratio} >= 1"),
                width=4,
                thresholds=steps((None, GREEN), (1, RED)),
            ),
            row("Traffic"),
            timeseries(
                "Traffic rate by user",
                target(f"sum by (email) (rate({traffic}[5m]))", "{{email}}"),
                unit="Bps",
                legend_calcs=("mean", "max"),
            ),
            timeseries(
                "Traffic rate by direction",
                target(f"sum by (direction) (rate({traffic}[5m]))", "{{direction}}"),
                unit="Bps",
            ),
            bargauge(
                "Top 20 users by traffic (24h)",
                f"topk(20, sum by (email) (increase({traffic}[24h])))",
                "{{email}}",
                "bytes",
            ),
            table("Traffic counters", f"sum by (email, direction) ({traffic})", unit="bytes"),
            row("Quota"),
            bargauge(
                "Quota use (rolling window)",
                f"sort_desc({ratio})",
                "{{email}}",
                "percentunit",
                thresholds=quota_steps,
                min=0,
                max=1,
            ),
            timeseries("Quota use over time", target(ratio, "{{email}}"), unit="percentunit"),
            table("Quota use by user", ratio, unit="percentunit", thresholds=quota_steps, decimals=1),
        ),
    )


# ------------------------------------------------------------------------------------------------ proxy

_POOL = f'proxy="{POOL_BACKEND}"'


def proxy_dashboard() -> Dashboard:
    up_steps = steps((None, RED), (1, GREEN))
    return Dashboard(
        uid="ovpn-proxy",
        title="ovpn Proxy HA Overview",
        description=(
            f"HAProxy failover from frontend {POOL_FRONTEND} to the foreign backend pool {POOL_BACKEND}: "
            "backend health, failovers, sessions, and the HAProxy container."
        ),
        items=(
            row("Pool"),
            up_stat("HAProxy scrape target", f'up{{job="{JOB_HAPROXY}"}}', width=4),
            stat(
                "Healthy backends",
                _sum(f'haproxy_server_status{{{_POOL},state="UP"}}'),
                width=4,
                thresholds=up_steps,
            ),
            stat(
                "Down backends",
                _sum(f'haproxy_server_status{{{_POOL},state="DOWN"}}'),
                width=4,
                thresholds=steps((None, GREEN), (1, RED)),
            ),
            stat(
                "Backends in maintenance",
                _sum(f'haproxy_server_status{{{_POOL},state=~"MAINT|DRAIN"}}'),
                width=4,
                thresholds=steps((None, GREEN), (1, YELLOW)),
            ),
            stat(
                "State changes (15m)",
                _sum(f"increase(haproxy_server_check_up_down_total{{{_POOL}}}[15m])"),
                width=4,
                decimals=0,
                thresholds=steps((None, GREEN), (1, YELLOW), (3, RED)),
            ),
            stat("Live relay connections", _sum(f"haproxy_backend_current_sessions{{{_POOL}}}"), width=4),
            row("Backends"),
            timeseries(
                "Backend UP (1) or not (0)",
                target(f'haproxy_server_status{{{_POOL},state="UP"}}', "{{backend}}"),
                min=0,
                max=1,
            ),
            timeseries(
                "Pool servers by state",
                target(f"sum by (state) (haproxy_server_status{{{_POOL}}})", "{{state}}"),
                stacked=True,
            ),
            timeseries(
                "Live servers: active and backup",
                target(f"haproxy_backend_active_servers{{{_POOL}}}", "active"),
                target(f"haproxy_backend_backup_servers{{{_POOL}}}", "backup"),
                stacked=True,
            ),
            table(
                "Last health check result",
                f"haproxy_server_check_status{{{_POOL}}} == 1",
                hidden_columns=("proxy",),
            ),
            row("Sessions"),
            timeseries(
                "Sessions per second: frontend and pool",
                target(
                    f'rate(haproxy_frontend_sessions_total{{proxy="{POOL_FRONTEND}"}}[5m])', POOL_FRONTEND
                ),
                target(f"rate(haproxy_backend_sessions_total{{{_POOL}}}[5m])", POOL_BACKEND),
                unit="ops",
            ),
            timeseries(
                "Sessions per second by backend",
                target(
                    f"sum by (backend) (rate(haproxy_server_sessions_total{{{_POOL}}}[5m]))", "{{backend}}"
                ),
                unit="ops",
            ),
            timeseries(
                "Live connections by backend",
                target(f"haproxy_server_current_sessions{{{_POOL}}}", "{{backend}}"),
            ),
            timeseries(
                "Connection errors per second",
                target(f"rate(haproxy_server_connection_errors_total{{{_POOL}}}[5m])", "{{backend}}"),
                target(f"rate(haproxy_backend_connection_errors_total{{{_POOL}}}[5m])", "pool"),
                unit="ops",
            ),
            timeseries(
                "Traffic by backend",
                target(f"rate(haproxy_server_bytes_in_total{{{_POOL}}}[5m])", "{{backend}} from clients"),
                target(f"rate(haproxy_server_bytes_out_total{{{_POOL}}}[5m])", "{{backend}} to clients"),
                unit="Bps",
                width=24,
            ),
            row("Failover"),
            timeseries(
                "Failover events per hour",
                target(f"increase(haproxy_server_check_up_down_total{{{_POOL}}}[1h])", "{{backend}}"),
                bars=True,
                description="Backend transitions from UP to DOWN (haproxy_server_check_up_down_total).",
            ),
            bargauge(
                "Failover events (24h)",
                f"increase(haproxy_server_check_up_down_total{{{_POOL}}}[24h])",
                "{{backend}}",
                decimals=0,
            ),
            timeseries(
                "Failed health checks (5m)",
                target(f"increase(haproxy_server_check_failures_total{{{_POOL}}}[5m])", "{{backend}}"),
            ),
            timeseries(
                "Retries and redispatches per second",
                target(f"rate(haproxy_backend_retry_warnings_total{{{_POOL}}}[5m])", "retries"),
                target(f"rate(haproxy_backend_redispatch_warnings_total{{{_POOL}}}[5m])", "redispatches"),
                unit="ops",
            ),
            timeseries(
                "Downtime by backend (24h)",
                target(f"increase(haproxy_server_downtime_seconds_total{{{_POOL}}}[24h])", "{{backend}}"),
                unit="s",
                width=24,
            ),
            row("HAProxy container"),
            timeseries(
                "HAProxy CPU (% of host)",
                target(_cpu_percent(f'name="{HAPROXY_CONTAINER}"'), "{{name}}"),
                unit="percent",
            ),
            timeseries(
                "HAProxy memory",
                target(f'container_memory_working_set_bytes{{name="{HAPROXY_CONTAINER}"}}', "{{name}}"),
                unit="bytes",
            ),
        ),
    )


def dashboards(spec: MonitoringSpec) -> dict[str, Dashboard]:
    """File name (under monitoring/grafana/dashboards/) -> dashboard."""
    result = {
        "ovpn-host.json": host_dashboard(),
        "ovpn-containers.json": containers_dashboard(spec),
        "ovpn-agent.json": agent_dashboard(),
        "ovpn-users.json": users_dashboard(),
    }
    if spec.is_proxy:
        result["ovpn-proxy.json"] = proxy_dashboard()
    return result
