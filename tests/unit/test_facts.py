"""The host facts' parsers on output captured from the real tools (tests/unit/captured/), and each fact's command."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from tests.support.fake_remote import Reply, ScriptedRemote
from tests.support.topology import BACKEND_1, RELAY_UUID

from ovpn.core.names import AGENT_HEALTH_URL, RELEASE_MARKER, RUNTIME_DIR
from ovpn.facts import agent, docker, haproxy, images, xray
from ovpn.facts.base import gather
from ovpn.facts.compose import Container, containers_of, logs_tail, parse_ps, services
from ovpn.facts.haproxy import pool_states
from ovpn.facts.host import DiskUsage, disk_usage, parse_disk_usage
from ovpn.facts.release import LiveRelease, UnreadableMarker, live_release, parse_live_release
from ovpn.remote.base import RemoteResult

CAPTURED = Path(__file__).parent / "captured"


def result(stdout: str = "", stderr: str = "", code: int = 0) -> RemoteResult:
    return RemoteResult(("true",), code, stdout.encode(), stderr.encode())


def test_haproxy_pool_states_from_real_metrics() -> None:
    metrics = (CAPTURED / "haproxy-3.0-metrics-one-up-one-down.txt").read_text()
    assert pool_states(metrics) == {"vpn-nl": "UP", "vpn-de": "DOWN"}
    # Only the pool's servers count, and only the state a server is in (value 1), whatever the line ending.
    other = metrics.replace('proxy="foreign_backends"', 'proxy="stats"')
    assert pool_states(other) == {}
    assert pool_states(metrics.replace("\n", "\r\n")) == {"vpn-nl": "UP", "vpn-de": "DOWN"}
    assert pool_states("") == {}


def test_xray_config_test_verdicts_from_real_output() -> None:
    ok = xray.parse_config_test(result((CAPTURED / "xray-26.3.27-test-ok.txt").read_text()))
    assert ok == xray.ConfigTest(True, "Configuration OK.")
    bad = xray.parse_config_test(
        result(stderr=(CAPTURED / "xray-26.3.27-test-bad-reality.txt").read_text(), code=23)
    )
    assert not bad.ok
    assert bad.last_line.startswith("Failed to start: main: failed to load config files")
    assert bad.last_line.endswith('empty "password"')
    assert xray.parse_config_test(result(code=125)) == xray.ConfigTest(False, "")


def test_one_xray_config_test_command_for_deploy_and_doctor() -> None:
    fact = xray.config_test(
        "ghcr.io/xtls/xray-core:26.7.28", "/opt/ovpn-releases/r1", geodata=True, pull="never"
    )
    assert fact.argv == (
        "docker", "run", "--rm", "--pull=never", "--network", "none",
        "-v", "/opt/ovpn-releases/r1/xray/config.json:/etc/xray/config.json:ro",
        "-v", "/opt/ovpn-releases/r1/geodata:/usr/local/share/xray:ro",
        "ghcr.io/xtls/xray-core:26.7.28", "run", "-test", "-config", "/etc/xray/config.json",
    )  # fmt: skip
    plain = xray.config_test("img", RUNTIME_DIR, geodata=False, pull="missing")
    assert "/usr/local/share/xray" not in " ".join(plain.argv) and "--pull=missing" in plain.argv


def relay_config(email: str, uuid: str | None, short_ids: list[str]) -> str:
    return json.dumps({
        "inbounds": [{
            "settings": {"clients": [{"id": "u-1", "email": "alice@global"}, {"id": uuid, "email": email}]},
            "streamSettings": {"realitySettings": {"shortIds": short_ids}},
        }]
    })  # fmt: skip


def test_the_relay_identity_needs_the_pool_uuid_and_the_backends_own_short_id() -> None:
    sid = BACKEND_1.reality_short_id
    assert xray.has_relay_identity(relay_config("proxy-service@cluster", RELAY_UUID, ["", sid]), BACKEND_1)
    assert not xray.has_relay_identity(relay_config("proxy-service@cluster", "another", [sid]), BACKEND_1)
    assert not xray.has_relay_identity(relay_config("someone@global", RELAY_UUID, [sid]), BACKEND_1)
    assert not xray.has_relay_identity(relay_config("proxy-service@cluster", RELAY_UUID, ["ffff"]), BACKEND_1)
    for broken in ("", "{", "[]", '{"inbounds": []}', '{"inbounds": [{"settings": {}}]}'):
        assert not xray.has_relay_identity(broken, BACKEND_1)


def test_live_release_marker_and_directory() -> None:
    marker = json.dumps({"revision": "20261203T120000Z-1a2b3c4d", "bundle_sha256": "ab" * 32}, indent=2)
    found = parse_live_release(result(f"{marker}\n/opt/ovpn-releases/20261203T120000Z-1a2b3c4d\n"))
    assert found == LiveRelease(
        "20261203T120000Z-1a2b3c4d", "ab" * 32, "/opt/ovpn-releases/20261203T120000Z-1a2b3c4d"
    )
    no_marker = f"cat: {RUNTIME_DIR}/{RELEASE_MARKER}: No such file or directory"
    assert parse_live_release(result(stderr=no_marker, code=1)) is None
    for edited in ('{"revision": "r"}\n/opt/x\n', "not json\n/opt/x\n"):
        with pytest.raises(UnreadableMarker):
            parse_live_release(result(edited))
    assert live_release().argv[-2:] == (RUNTIME_DIR, RELEASE_MARKER)


def test_disk_usage_rows() -> None:
    assert parse_disk_usage("Use% Mounted on\n 24% /\n 91% /opt/ovpn-releases\n") == [
        DiskUsage(24, "/"), DiskUsage(91, "/opt/ovpn-releases"),
    ]  # fmt: skip
    assert parse_disk_usage("Use% Mounted on\n  7% /mnt/with space\n") == [DiskUsage(7, "/mnt/with space")]
    remote = ScriptedRemote().on(
        "df", reply=Reply("Use% Mounted on\n 24% /\n 24% /\n", "df: /x: No such file\n", 1)
    )
    assert gather(remote, disk_usage(["/", "/x"])) == [DiskUsage(24, "/"), DiskUsage(24, "/")]


# Compose v2 prints one JSON object per line (2.21 and later) or one array (earlier); fields as Compose names them.
PS_LINE = {"ID": "3f2a", "Name": "ovpn-xray", "Service": "xray", "State": "running", "Health": "",
           "Status": "Up 2 minutes", "Project": "ovpn", "ExitCode": 0}  # fmt: skip
PS_AGENT = {**PS_LINE, "ID": "9c1d", "Name": "ovpn-agent", "Service": "ovpn-agent", "Health": "starting"}


def test_compose_ps_in_both_shapes() -> None:
    lines = "\n".join(json.dumps(r) for r in (PS_LINE, PS_AGENT)) + "\n"
    array = json.dumps([PS_LINE, PS_AGENT])
    assert parse_ps(lines) == parse_ps(array) == [PS_LINE, PS_AGENT]
    assert parse_ps("") == parse_ps("\n") == []
    by = containers_of(parse_ps(lines))
    assert by["xray"] == Container("xray", "ovpn-xray", "running", "", "Up 2 minutes", "3f2a")
    assert by["xray"].healthy and not by["ovpn-agent"].healthy
    assert by["ovpn-agent"].describe() == "running (starting)"
    assert Container("haproxy").describe() == "missing"


def test_compose_commands_name_the_project_and_files() -> None:
    assert services(monitoring=True).argv == (
        "docker", "compose", "--project-name", "ovpn", "--project-directory", RUNTIME_DIR,
        "-f", f"{RUNTIME_DIR}/docker-compose.yml", "-f", f"{RUNTIME_DIR}/docker-compose.monitoring.yml",
        "ps", "--all", "--format", "json",
    )  # fmt: skip
    assert services().check and logs_tail("xray", 15).argv[-5:] == (
        "logs",
        "--no-color",
        "--tail",
        "15",
        "xray",
    )
    remote = ScriptedRemote().on("logs", reply=Reply("out line\n", "err line\n"))
    assert gather(remote, logs_tail("xray", 15)) == "out line\nerr line"


def test_agent_health_status() -> None:
    assert agent.agent_status('{"status": "ok", "xray_api": true}') == "ok"
    assert agent.agent_status('{"status": "degraded"}') == "degraded"
    for silent in (None, "", "<html>", "[]", "{}"):
        assert agent.agent_status(silent) is None
    remote = ScriptedRemote().on(
        "docker", "exec", reply=Reply(stderr="Error: No such container: ovpn-agent", code=1)
    )
    assert gather(remote, agent.fetch_in_agent(AGENT_HEALTH_URL)) is None


def test_haproxy_pool_events_from_a_real_log_each_once_without_scrape_lines() -> None:
    log = (CAPTURED / "haproxy-3.0-log-pool-down-then-up.txt").read_text()
    events = haproxy.pool_events(log)
    assert [e.split(", reason")[0] for e in events] == [
        "Server foreign_backends/vpn-nl is DOWN",
        "Backup Server foreign_backends/vpn-de is DOWN",
        "backend 'foreign_backends' has no server available!",
        "Backup Server foreign_backends/vpn-de is UP",
        "Backup Server foreign_backends/vpn-de is DOWN",
        "backend 'foreign_backends' has no server available!",
    ]
    assert events[0].endswith("0 active and 1 backup servers left. Running on backup. 0 sessions active, "
                              "0 requeued, 0 remaining in queue.")  # fmt: skip
    # Through `docker compose logs` every line carries the service's prefix.
    prefixed = "\n".join(f"ovpn-haproxy  | {line}" for line in log.splitlines())
    assert haproxy.pool_events(prefixed) == events
    assert haproxy.pool_events(log, limit=2) == events[-2:]
    assert haproxy.pool_events("Connect from 127.0.0.1:46842 to 127.0.0.1:46623 (metrics/HTTP)\n") == []


def test_haproxy_down_servers_and_the_pool_log_command() -> None:
    assert haproxy.down_servers({"vpn-nl": "UP", "vpn-de": "DOWN", "vpn-at": "DOWN", "vpn-fi": "MAINT"}) == [
        "vpn-at", "vpn-de",
    ]  # fmt: skip
    assert haproxy.pool_log().argv[-5:] == ("logs", "--no-color", "--tail", "2000", "haproxy")


# docker's own output when it cannot run an image, as Docker reports it (moby/moby#34793, moby/moby#36915,
# docker/compose#5483, balena-io/balena-cli#2159 and the `docker run --pull` reference): stderr, exit 125.
GHCR_UNKNOWN_TAG = """Unable to find image 'ghcr.io/xtls/xray-core:99.9.9' locally
docker: Error response from daemon: manifest unknown.
See 'docker run --help'.
"""
HUB_UNKNOWN_TAG = """Unable to find image 'teddysun/xray:99.9.9' locally
docker: Error response from daemon: manifest for teddysun/xray:99.9.9 not found: manifest unknown: manifest unknown.
See 'docker run --help'.
"""
PULL_DENIED = """Unable to find image 'xtls/xray-core:26.7.28' locally
docker: Error response from daemon: pull access denied for xtls/xray-core, repository does not exist or may require 'docker login': denied: requested access to the resource is denied.
See 'docker run --help'.
"""
NOT_ON_HOST = """docker: Error response from daemon: No such image: ghcr.io/xtls/xray-core:99.9.9.
Run 'docker run --help' for more information
"""


def test_docker_run_failures_name_docker_s_first_meaningful_line() -> None:
    assert docker.parse_run_failure(GHCR_UNKNOWN_TAG) == docker.RunFailure(
        "Error response from daemon: manifest unknown.", image_missing=True
    )
    hub = docker.parse_run_failure(HUB_UNKNOWN_TAG)
    assert hub is not None and hub.image_missing
    assert hub.line.startswith("Error response from daemon: manifest for teddysun/xray:99.9.9 not found")
    denied = docker.parse_run_failure(PULL_DENIED)
    assert denied is not None and denied.image_missing
    assert denied.line.startswith("Error response from daemon: pull access denied for xtls/xray-core,")
    assert docker.parse_run_failure(NOT_ON_HOST) == docker.RunFailure(
        "Error response from daemon: No such image: ghcr.io/xtls/xray-core:99.9.9.", image_missing=True
    )
    # A failure that is not the image's: its own line, not flagged; help noise alone says nothing.
    assert docker.parse_run_failure("unknown flag: --pul\nSee 'docker run --help'.\n") == docker.RunFailure(
        "unknown flag: --pul", image_missing=False
    )
    assert docker.parse_run_failure("See 'docker run --help'.\n") is None


def test_xray_config_test_reports_docker_s_error_when_the_image_cannot_run() -> None:
    tested = xray.parse_config_test(result(stderr=GHCR_UNKNOWN_TAG, code=125))
    assert tested == xray.ConfigTest(
        False, "Error response from daemon: manifest unknown.", image_missing=True
    )
    # Xray's own failure (its exit code, not docker's) keeps Xray's last line.
    xray_said = xray.parse_config_test(result(stderr="Failed to start: no such image in config\n", code=23))
    assert xray_said == xray.ConfigTest(False, "Failed to start: no such image in config")


def test_host_images_from_real_docker_output() -> None:
    found = images.parse_host_images((CAPTURED / "docker-20.10-host-images.txt").read_text())
    prometheus = images.HostImage(
        "ovpn-fleetlab/prometheus:bookworm-2",
        "sha256:3ef547d24d8054333b9fbe17b8cdf77e269c9904cd0265afcdaa12effe6857f3",
        182053370,
    )
    assert found == {
        "ovpn-fleetlab/prometheus:bookworm-2": prometheus,
        "grafana/grafana:12.4.3": None,
        "ovpn-fleetlab/grafana-standin:2": images.HostImage(
            "ovpn-fleetlab/grafana-standin:2",
            "sha256:c03a318348bab141f810d46394bbf3b491dce60b8685dc4d0760ca508f190d59",
            290592971,
        ),
        "prom/prometheus@sha256:" + "0" * 64: None,
    }
    assert prometheus.short_id == "3ef547d24d80"


def test_host_images_that_docker_cannot_answer_for_are_unreadable_not_missing() -> None:
    down = (CAPTURED / "docker-20.10-host-images-daemon-down.txt").read_text()
    with pytest.raises(images.UnreadableImages, match=r"^Cannot connect to the Docker daemon at unix://"):
        images.parse_host_images(down)
    for garbled in (
        "present\tx:1\tnot-an-id 12\n",
        "present\tx:1\tsha256:ab\n",
        "hello\n",
        "absent\tx:1\t\n",
    ):
        with pytest.raises(images.UnreadableImages):
            images.parse_host_images(garbled)
    fact = images.host_images(["a:1", "b:2"])
    with pytest.raises(images.UnreadableImages, match="sudo: a password is required"):
        fact.parse(result(stderr="sudo: a password is required", code=1))


def test_the_host_images_script_reads_each_reference_as_one_word(tmp_path: Path) -> None:
    """The script run by a real sh against a stand-in `docker` that knows one image: a reference with shell
    syntax stays one argument and is answered for, in order."""
    docker = tmp_path / "docker"
    docker.write_text(
        '#!/bin/sh\nref=$5\nif [ "$ref" = "known:1" ]; then echo "sha256:$(printf %064d 7) 42"; exit 0; fi\n'
        'echo "Error: No such image: $ref" >&2\nexit 1\n'
    )
    docker.chmod(0o755)
    fact = images.host_images(["known:1", "x; $(id)"])
    env = {"PATH": f"{tmp_path}:/usr/bin:/bin"}
    out = subprocess.run(list(fact.argv), capture_output=True, text=True, env=env, check=True).stdout
    assert images.parse_host_images(out) == {
        "known:1": images.HostImage("known:1", f"sha256:{0:063d}7", 42),
        "x; $(id)": None,
    }
