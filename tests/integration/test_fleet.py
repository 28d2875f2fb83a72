"""The seed's rollout and its faults, through the real CLI, against hosts with sshd, sudo, Docker and Compose.

Tests in this module run in order and share one lab (three hosts) and one operator state.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import json
import os
import queue
import re
import shlex
import shutil
import signal
import sqlite3
import stat
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest
from tests.conftest import tool_path
from tests.fleetlab.client import vpn_client
from tests.fleetlab.geodata import fleet_geodata
from tests.fleetlab.hosts import INTERNET, FleetLab
from tests.fleetlab.images import MONITORING_IMAGES, RUNTIME_IMAGE
from tests.fleetlab.operator import fleet_server_adds
from tests.integration.conftest import Operator, lab_operator, lab_server_options
from tests.support.fake_bot_api import read_calls
from tests.support.topology import XRAY_KEY_PAIRS

from ovpn.state.db import DB_FILE

pytestmark = pytest.mark.integration

CONTROLLER = "10.214.1.2"
BOT_API_PORT = 8081


@pytest.fixture(scope="module")
def op(fleet_lab: FleetLab, tmp_path_factory: pytest.TempPathFactory) -> Operator:
    # These tests are about deploy itself: user changes wait for the next deploy instead of applying live
    # (tests/integration/test_fleet_users_live.py covers that).
    operator = lab_operator(fleet_lab, tmp_path_factory.mktemp("operator"), fleet_geodata(),
                            OVPN_APPLY_USER_CHANGES="no")  # fmt: skip
    for add in fleet_server_adds(fleet_lab):
        operator.ok(*add)
    operator.ok("user", "add", "--username", "alice")
    return operator


def doctor(op: Operator, name: str, expect_exit: int) -> dict[str, dict[str, str]]:
    result = op.run("doctor", name, "--json")
    assert result.returncode == expect_exit, result.stdout + result.stderr
    return {c["name"]: c for c in json.loads(result.stdout)["checks"]}


def services(op: Operator, name: str) -> dict[str, str]:
    return {
        s["service"]: s["state"] for s in json.loads(op.ok("server", "status", name, "--json"))["services"]
    }


def live_revision(lab: FleetLab, host: str) -> str:
    return json.loads(lab.exec(host, "cat", "/opt/ovpn/.ovpn-release.json"))["revision"]  # type: ignore[no-any-return]


def running_image(lab: FleetLab, host: str, container: str) -> str:
    return lab.exec(host, "docker", "inspect", "-f", "{{.Config.Image}}", container).strip()


def revisions(op: Operator, name: str) -> list[tuple[str, str]]:
    with sqlite3.connect(op.data_dir / DB_FILE) as conn:
        rows = conn.execute(
            "SELECT r.revision, r.result FROM deploy_revisions r JOIN servers s ON s.id = r.server_id "
            "WHERE s.name = ? ORDER BY r.id", (name,),
        )  # fmt: skip
        return [(r[0], r[1]) for r in rows]


def test_an_existing_backend_is_initialised(op: Operator, fleet_lab: FleetLab) -> None:
    # A small file system for the releases, for the full-disk test further down.
    fleet_lab.exec("vpn-de", "mkdir", "-p", "/opt/ovpn-releases")
    fleet_lab.exec("vpn-de", "mount", "-t", "tmpfs", "-o", "size=128m", "tmpfs", "/opt/ovpn-releases")
    out = op.ok("server", "init", "vpn-de", "--accept-new-host-key", "--pull", "never")
    assert "vpn-de: deployed" in out
    assert services(op, "vpn-de") == {"xray": "running", "ovpn-agent": "running"}
    assert revisions(op, "vpn-de")[-1][1] == "ok"


def test_a_deploy_prepares_a_host_that_server_init_never_saw(op: Operator, fleet_lab: FleetLab) -> None:
    """`deploy` alone on a host with Docker but nothing of ovpn's: it creates what it needs."""
    absent = "for d in /opt/ovpn /opt/ovpn-releases; do test -e $d || echo absent; done"
    assert fleet_lab.exec("vpn-nl", "sh", "-c", absent).split() == ["absent", "absent"]
    out = op.ok("deploy", "vpn-nl", "--accept-new-host-key", "--pull", "never")
    assert "vpn-nl: deployed" in out
    assert services(op, "vpn-nl") == {"xray": "running", "ovpn-agent": "running"}
    assert [result for _, result in revisions(op, "vpn-nl")] == ["ok"]
    assert fleet_lab.exec("vpn-nl", "readlink", "/opt/ovpn").startswith("/opt/ovpn-releases/")


def test_the_proxy_initialises_before_any_backend_and_fails_closed(op: Operator) -> None:
    result = op.run("server", "init", "proxy-ru", "--accept-new-host-key", "--pull", "never")
    assert result.returncode == 0, result.stderr
    assert "no backend attached" in result.stderr
    assert services(op, "proxy-ru") == {"xray": "running", "ovpn-agent": "running", "haproxy": "running"}


def test_a_proxy_deploy_is_refused_until_the_backend_carries_the_relay_identity(op: Operator) -> None:
    op.ok("server", "backend", "attach", "--proxy", "proxy-ru", "--backend", "vpn-nl")
    before = revisions(op, "proxy-ru")
    result = op.run("deploy", "proxy-ru", "--pull", "never")
    assert result.returncode == 1
    assert "vpn-nl: its live config lacks proxy-service@cluster" in result.stderr
    assert "ovpn deploy vpn-nl" in result.stderr
    assert revisions(op, "proxy-ru") == before
    report = doctor(op, "vpn-nl", expect_exit=2)
    assert report["relay identity"]["status"] == "fail"
    assert "invalid request user id" in report["relay identity"]["message"]
    assert "ovpn deploy vpn-nl" in report["relay identity"]["hint"]


def test_seed_rollout_backend_first_then_proxy(op: Operator, fleet_lab: FleetLab) -> None:
    op.ok("config", "validate", "--server", "vpn-nl")
    assert "vpn-nl: deployed" in op.ok("deploy", "vpn-nl", "--pull", "never")
    config = json.loads(fleet_lab.exec("vpn-nl", "cat", "/opt/ovpn/xray/config.json"))
    assert "proxy-service@cluster" in [c["email"] for c in config["inbounds"][0]["settings"]["clients"]]
    op.ok("config", "validate", "--server", "proxy-ru")
    # The proxy's health gate requires HAProxy to see the backend UP across the lab network.
    assert "proxy-ru: deployed" in op.ok("deploy", "proxy-ru", "--pull", "never")
    op.ok("server", "backend", "attach", "--proxy", "proxy-ru", "--backend", "vpn-de")
    op.ok("deploy", "vpn-de", "--pull", "never")
    op.ok("deploy", "proxy-ru", "--pull", "never")
    haproxy = fleet_lab.exec("proxy-ru", "cat", "/opt/ovpn/haproxy/haproxy.cfg")
    assert f"server vpn-de {fleet_lab.hosts['vpn-de'].address}:443 check" in haproxy
    logs = op.ok("server", "logs", "proxy-ru", "--service", "haproxy", "--tail", "200")
    assert "haproxy" in logs


def test_doctor_passes_on_the_deployed_topology(op: Operator) -> None:
    for name in ("vpn-nl", "vpn-de", "proxy-ru"):
        report = doctor(op, name, expect_exit=0)
        # Monitoring is optional and not started yet: a skip that names the command, not a warning.
        assert report.pop("monitoring") == {
            "name": "monitoring", "status": "skip", "message": "not started: this host raises no alerts",
            "hint": f"ovpn server monitor up {name}",
        }  # fmt: skip
        assert {c["status"] for c in report.values()} == {"pass"}, report
    assert doctor(op, "vpn-nl", expect_exit=0)["relay identity"]["status"] == "pass"
    assert "vpn-nl UP" in doctor(op, "proxy-ru", expect_exit=0)["backend pool"]["message"]


def _pump(stream: IO[str] | None, lines: queue.Queue[str]) -> None:
    for line in stream or ():
        lines.put(line)


def test_client_traffic_leaves_by_destination_and_haproxy_logs_follow(
    op: Operator, fleet_lab: FleetLab, tmp_path: Path
) -> None:
    """A user of the proxy link: preset destinations leave from the proxy, the rest from a backend."""
    hosts = fleet_lab.hosts
    config = json.loads(op.ok("user", "link", "--server", "proxy-ru", "--username", "alice", "--format",
                              "xray-json", "--no-qr"))  # fmt: skip
    follow = subprocess.Popen(
        op.argv("server", "logs", "proxy-ru", "--service", "haproxy", "--tail", "1", "--follow"),
        stdout=subprocess.PIPE, text=True, env=op.env,
    )  # fmt: skip
    try:
        with vpn_client(fleet_lab, config, hosts["proxy-ru"].address, tmp_path, tool_path("xray")) as client:
            assert client.fetch(f"http://{INTERNET['ru-site']}/")["src"] == hosts["proxy-ru"].address
            sources = {client.fetch(f"http://{INTERNET['world-site']}/")["src"] for _ in range(4)}
        assert sources and sources <= {hosts["vpn-nl"].address, hosts["vpn-de"].address}, sources
        # HAProxy logs each relayed connection with the backend server it chose; --follow streams it.
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=_pump, args=(follow.stdout, lines), daemon=True).start()
        deadline = time.monotonic() + 30
        relayed = ""
        while not relayed and time.monotonic() < deadline:
            with contextlib.suppress(queue.Empty):
                line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
                relayed = line if ("/vpn-nl " in line or "/vpn-de " in line) else ""
        assert relayed, "no relayed connection appeared in `server logs --follow`"
        assert follow.poll() is None
    finally:
        follow.terminate()
        follow.wait(timeout=30)


@contextlib.contextmanager
def bot_api_in_controller(lab: FleetLab, workdir: Path, token: str) -> Iterator[Path]:
    """The Bot API stand-in as a process in the controller's namespace, where the hosts reach it; yields the file
    it records every call in."""
    record, ready = workdir / "bot-api-calls.jsonl", workdir / "bot-api-ready"
    process = subprocess.Popen(
        ["nsenter", f"--net=/proc/{lab.controller_pid}/ns/net", "--", sys.executable, "-m",
         "tests.support.fake_bot_api", "--token", token, "--listen", f"{CONTROLLER}:{BOT_API_PORT}",
         "--record", str(record), "--ready", str(ready)],
        cwd=Path(__file__).resolve().parents[2], stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not ready.exists():
            assert process.poll() is None and time.monotonic() < deadline, (
                "the Bot API stand-in did not start"
            )
            time.sleep(0.1)
        yield record
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_monitoring_and_the_telegram_bot_on_the_proxy(
    op: Operator, fleet_lab: FleetLab, tmp_path: Path
) -> None:
    out = op.ok("server", "monitor", "up", "proxy-ru", "--pull", "never")
    assert "ovpn-telegram-bot: not configured" in out
    status = json.loads(op.ok("server", "monitor", "status", "proxy-ru", "--json"))
    assert status["ok"], status
    token = "7000001:" + "Q" * 35
    token_file = tmp_path / "token"
    token_file.write_text(token + "\n")
    with bot_api_in_controller(fleet_lab, tmp_path, token) as record:
        result = op.run("server", "monitor", "telegram-setup", "proxy-ru", "--token-file", str(token_file),
                        "--owner-user-id", "4242", "--notify-chat-ids", "-100500",
                        "--api-base-url", f"http://{CONTROLLER}:{BOT_API_PORT}", "--pull", "never")  # fmt: skip
        assert result.returncode == 0, result.stdout + result.stderr
        assert "test message delivered" in result.stdout and token not in result.stdout + result.stderr
        sent = {c.params["chat_id"]: c.text for c in read_calls(record) if c.method == "sendMessage"}
        assert "telegram-setup" in sent.get(4242, "") and "telegram-setup" in sent.get(-100500, ""), sent
        # A later deploy keeps the token (never in the bundle) and the running bot.
        assert "proxy-ru: deployed" in op.ok("deploy", "proxy-ru", "--pull", "never", "--force")
        assert (
            fleet_lab.exec("proxy-ru", "cat", "/opt/ovpn/monitoring/secrets/telegram_bot_token").strip()
            == token
        )
        assert (
            fleet_lab.exec(
                "proxy-ru", "stat", "-c", "%a", "/opt/ovpn/monitoring/secrets/telegram_bot_token"
            ).strip()
            == "600"
        )
        assert "OVPN_TELEGRAM_OWNER_USER_ID=4242" in fleet_lab.exec("proxy-ru", "cat", "/opt/ovpn/.env")
        bot = services(op, "proxy-ru")
        assert bot.get("ovpn-telegram-bot") == "running" and bot.get("prometheus") == "running", bot
    # Later modules take this host over with operators of their own that set up no bot: leave it without one.
    fleet_lab.exec("proxy-ru", "truncate", "-s", "0", "/opt/ovpn/monitoring/secrets/telegram_bot_token")
    fleet_lab.exec("proxy-ru", "docker", "rm", "-f", "ovpn-telegram-bot")


def test_doctor_without_ssh_skips_the_remote_checks(op: Operator) -> None:
    op.ok(
        "server", "add", "--name", "vpn-gone", "--role", "vpn", "--host", "10.214.1.99", "--ssh-user", "ovpn"
    )
    report = doctor(op, "vpn-gone", expect_exit=2)
    assert report["local config"]["status"] == "pass"
    assert report["ssh"]["status"] == "fail" and report["ssh"]["hint"]
    assert report["docker"]["status"] == "skip" and report["agent health"]["status"] == "skip"
    op.ok("server", "remove", "vpn-gone")


def test_restart_waits_until_the_service_runs_again(op: Operator, fleet_lab: FleetLab) -> None:
    def started(host: str, container: str) -> str:
        return fleet_lab.exec(host, "docker", "inspect", "-f", "{{.State.StartedAt}}", container).strip()

    before = started("proxy-ru", "ovpn-haproxy")
    assert "proxy-ru: restarted haproxy; running again" in op.ok(
        "restart", "proxy-ru", "--service", "haproxy"
    )
    assert started("proxy-ru", "ovpn-haproxy") != before
    result = op.run("restart", "vpn-nl", "--service", "haproxy")
    assert result.returncode == 1 and "vpn-nl is a vpn server and runs no haproxy" in result.stderr


def test_a_no_change_redeploy_touches_nothing(op: Operator, fleet_lab: FleetLab) -> None:
    live = live_revision(fleet_lab, "vpn-nl")
    assert "unchanged" in op.ok("deploy", "vpn-nl", "--pull", "never")
    assert live_revision(fleet_lab, "vpn-nl") == live


def test_deploy_all_reports_every_server(op: Operator) -> None:
    report = json.loads(op.ok("deploy", "--all", "--jobs", "3", "--pull", "never", "--json"))
    assert {name: r["result"] for name, r in report.items()} == {
        "vpn-nl": "unchanged", "vpn-de": "unchanged", "proxy-ru": "unchanged",
    }  # fmt: skip


def test_plan_shows_file_changes_and_touches_nothing(op: Operator, fleet_lab: FleetLab) -> None:
    assert "no changes" in op.ok("deploy", "vpn-nl", "--plan")
    live = live_revision(fleet_lab, "vpn-nl")
    carol = json.loads(op.ok("user", "add", "--username", "carol", "--json"))["uuid"]
    op.ok("server", "set", "vpn-nl", "--image", "grafana=grafana/grafana:12.4.4")
    out = op.ok("deploy", "vpn-nl", "--plan")
    op.ok("user", "rm", "--username", "carol")
    op.ok("server", "set", "vpn-nl", "--image", f"grafana={MONITORING_IMAGES['grafana']}")
    assert "changed  xray/config.json" in out and '+            "email": "carol@global",' in out
    # The new user's UUID is a credential: the plan shows that an id was added, not the id.
    assert '+            "id": "<secret ' in out and carol not in out
    assert "changed  .env" in out and "+GRAFANA_IMAGE=grafana/grafana:12.4.4" in out
    live_env = fleet_lab.exec("vpn-nl", "cat", "/opt/ovpn/.env")
    secrets = [
        line.split("=", 1)[1] for line in live_env.splitlines() if "TOKEN=" in line or "PASSWORD=" in line
    ]
    assert secrets and not any(value in out for value in secrets)
    assert live_revision(fleet_lab, "vpn-nl") == live
    assert "no changes" in op.ok("deploy", "vpn-nl", "--plan")


def test_plan_masks_the_live_secrets_and_pins_a_new_host_only_when_asked(
    fleet_lab: FleetLab, tmp_path: Path
) -> None:
    """Another operator, who never reached vpn-nl, holds another REALITY key for it and no users: the plan diffs
    its bundle against the live one without printing either key or a live UUID, unless asked to."""
    runtime = Path(tempfile.mkdtemp(prefix="ovpn-rt-", dir="/tmp"))
    other = lab_operator(fleet_lab, tmp_path, XDG_RUNTIME_DIR=str(runtime))
    other.ok("server", "add", "--name", "vpn-nl", "--role", "vpn", "--host", fleet_lab.hosts["vpn-nl"].address,
             "--reality-private-key", XRAY_KEY_PAIRS["other"][0], *lab_server_options(fleet_lab))  # fmt: skip
    refused = other.run("deploy", "vpn-nl", "--plan")
    assert refused.returncode == 1 and "is not known" in refused.stderr, refused.stderr
    old_umask = os.umask(0o022)  # ssh would create a new known_hosts by it
    try:
        out = other.ok("deploy", "vpn-nl", "--plan", "--accept-new-host-key")
    finally:
        os.umask(old_umask)
    known_hosts = other.data_dir / "known_hosts"
    assert known_hosts.read_text().strip() and stat.S_IMODE(known_hosts.stat().st_mode) == 0o600
    live = json.loads(fleet_lab.exec("vpn-nl", "cat", "/opt/ovpn/xray/config.json"))
    inbound = live["inbounds"][0]
    live_key = inbound["streamSettings"]["realitySettings"]["privateKey"]
    live_uuids = [c["id"] for c in inbound["settings"]["clients"]]  # alice, and the relay once attached
    assert live_key == XRAY_KEY_PAIRS["pool"][0] and live_uuids
    as_json = other.ok("deploy", "vpn-nl", "--plan", "--json")
    assert "changed  xray/config.json" in out and '-          "privateKey": "<secret ' in out
    assert json.loads(as_json)["changes"]
    for secret in [live_key, XRAY_KEY_PAIRS["other"][0], *live_uuids]:
        assert secret not in out and secret not in as_json
    revealed = other.ok("deploy", "vpn-nl", "--plan", "--reveal-secrets")
    assert f'-          "privateKey": "{live_key}",' in revealed and all(u in revealed for u in live_uuids)
    shutil.rmtree(runtime, ignore_errors=True)


LOCK_OWNER = "/opt/ovpn-releases/.ovpn.lock-owner.json"
BUSY = r"error: {server} is busy: {operation} by [^ ]+@[^ ]+ \(pid {pid}\) since \d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d UTC"


def error_line(stderr: str) -> str:
    """The `error:` line of a failed command (after its progress lines)."""
    return next((line for line in stderr.splitlines() if line.startswith("error: ")), "")


def wait_for_lock(lab: FleetLab, host: str, holder: subprocess.Popen[str]) -> None:
    """Until the host's lock names `holder` (bounded)."""
    deadline = time.monotonic() + 120
    while f'"pid": {holder.pid}' not in lab.exec(host, "cat", LOCK_OWNER, check=False):
        assert holder.poll() is None, f"the operation ended before it held the lock: {holder.communicate()}"
        assert time.monotonic() < deadline, "the operation never took the lock"
        time.sleep(0.1)


def test_a_second_operation_on_a_host_is_refused_and_a_proxy_deploy_warns_of_a_backend_left_down(
    op: Operator, fleet_lab: FleetLab, tmp_path: Path
) -> None:
    """vpn-de's port changes in the state but vpn-de is not deployed: the proxy's plan and deploy say that vpn-de
    will stay DOWN, before and after. While that deploy runs, another operator's deploy and this operator's user
    change are refused with who holds the host."""
    op.ok("server", "set", "vpn-de", "--port", "8443")
    left_down = ("backend vpn-de listens on 443, but proxy-ru will target 8443: it stays DOWN in the pool until "
                 "`ovpn deploy vpn-de`")  # fmt: skip
    plan = op.run("deploy", "proxy-ru", "--plan")
    assert plan.returncode == 0 and f"warning: {left_down}" in plan.stderr.splitlines(), plan.stderr
    shutil.copytree(op.data_dir, tmp_path / "state")
    runtime = Path(tempfile.mkdtemp(prefix="ovpn-rt-", dir="/tmp"))
    other = Operator(op.lab, tmp_path / "state", {**op.env, "OVPN_DATA_DIR": str(tmp_path / "state"),
                                                  "XDG_RUNTIME_DIR": str(runtime)})  # fmt: skip
    deploy = subprocess.Popen(op.argv("deploy", "proxy-ru", "--pull", "never"), env=op.env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    try:
        wait_for_lock(fleet_lab, "proxy-ru", deploy)
        second = other.run("deploy", "proxy-ru", "--force", "--pull", "never")
        assert second.returncode == 1
        assert re.fullmatch(BUSY.format(server="proxy-ru", operation="deploy", pid=deploy.pid),
                            error_line(second.stderr)), second.stderr  # fmt: skip
        live_changes = {**op.env, "OVPN_APPLY_USER_CHANGES": "yes"}
        user_add = subprocess.run(op.argv("user", "add", "--username", "dave"), env=live_changes, text=True,
                                  capture_output=True, timeout=300, check=False)  # fmt: skip
        assert user_add.returncode == 1
        assert re.fullmatch(BUSY.format(server="proxy-ru", operation="deploy", pid=deploy.pid),
                            error_line(user_add.stderr)), user_add.stderr  # fmt: skip
        assert "dave" not in op.ok("user", "list")
        out, err = deploy.communicate(timeout=600)
    finally:
        if deploy.poll() is None:
            deploy.kill()
        shutil.rmtree(runtime, ignore_errors=True)
    assert deploy.returncode == 0, err
    assert f"[proxy-ru] warning: {left_down}" in err.splitlines()
    assert ("warning: backend vpn-de is DOWN in proxy-ru's pool: foreign traffic avoids it; fix it with "
            "`ovpn deploy vpn-de` (see `ovpn doctor vpn-de`)") in err.splitlines()  # fmt: skip
    assert "proxy-ru: deployed" in out


def test_history_lists_the_proxy_deploy_and_rollback_brings_back_the_release_before_it(
    op: Operator, fleet_lab: FleetLab
) -> None:
    op.ok("server", "set", "vpn-de", "--port", "443")
    history = json.loads(op.ok("deploy", "history", "proxy-ru", "--json"))["revisions"]
    newest, before = history[0], next(r for r in history[1:] if r["result"] == "ok")
    assert (newest["kind"], newest["result"]) == ("deploy", "ok")
    assert newest["revision"] == live_revision(fleet_lab, "proxy-ru")
    assert newest["changes"].startswith("changed ") and "haproxy/haproxy.cfg" in newest["changes"]
    refused = op.run("rollback", "proxy-ru", "--to", "20200101T000000Z-00000000")
    assert refused.returncode == 1
    assert refused.stderr.splitlines()[0] == "error: 20200101T000000Z-00000000 is not kept on proxy-ru"
    out = op.ok("rollback", "proxy-ru", "--pull", "never")
    assert f"proxy-ru: rolled back to {before['revision']}" in out
    assert live_revision(fleet_lab, "proxy-ru") == before["revision"]
    runtime = {"xray", "ovpn-agent", "haproxy"}  # (the monitoring stack an earlier test started runs on too)
    assert {s: state for s, state in services(op, "proxy-ru").items() if s in runtime} == dict.fromkeys(
        runtime, "running"
    )
    back = json.loads(op.ok("deploy", "history", "proxy-ru", "--json"))["revisions"][0]
    assert (back["revision"], back["kind"], back["result"]) == (before["revision"], "rollback", "ok")
    assert back["changes"] == f"from {newest['revision']}"
    table = op.ok("deploy", "history", "proxy-ru")
    assert "rollback" in table and newest["revision"] in table


def test_ctrl_c_during_a_deploy_records_what_the_host_runs(op: Operator, fleet_lab: FleetLab) -> None:
    live = live_revision(fleet_lab, "vpn-nl")
    deploy = subprocess.Popen(op.argv("deploy", "vpn-nl", "--force", "--pull", "never"), env=op.env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    lines: queue.Queue[str] = queue.Queue()
    pump = threading.Thread(target=_pump, args=(deploy.stderr, lines), daemon=True)
    pump.start()
    said: list[str] = []
    deadline = time.monotonic() + 300
    while "[vpn-nl] health gate\n" not in said:
        assert deploy.poll() is None and time.monotonic() < deadline, said
        with contextlib.suppress(queue.Empty):
            said.append(lines.get(timeout=1))
    deploy.send_signal(signal.SIGINT)
    assert deploy.wait(timeout=120) == 130
    pump.join(timeout=30)  # it ends with the process's stderr
    while not lines.empty():
        said.append(lines.get())
    new = live_revision(fleet_lab, "vpn-nl")
    assert new != live
    error = [line.rstrip("\n") for line in said if line.startswith(("error:", "hint:"))]
    assert error == [
        f"error: deploy of vpn-nl interrupted after the switch: {new} is live but was not health-gated",
        f"hint: check it with `ovpn doctor vpn-nl`; `ovpn rollback vpn-nl --to {live}` returns to it",
    ]
    assert revisions(op, "vpn-nl")[-1] == (new, "interrupted")
    # The lock went with the process: the rollback it suggests goes through at once.
    assert f"vpn-nl: rolled back to {live}" in op.ok("rollback", "vpn-nl", "--to", live, "--pull", "never")
    assert live_revision(fleet_lab, "vpn-nl") == live
    assert services(op, "vpn-nl") == {"xray": "running", "ovpn-agent": "running"}


def test_a_proxy_with_no_backend_up_says_what_it_waits_for_then_shows_haproxys_view(
    op: Operator, fleet_lab: FleetLab
) -> None:
    live = live_revision(fleet_lab, "proxy-ru")
    for backend in ("vpn-nl", "vpn-de"):
        fleet_lab.exec(backend, "docker", "stop", "ovpn-xray")
    try:
        result = op.run("deploy", "proxy-ru", "--force", "--pull", "never", "--gate-timeout", "20")
    finally:
        for backend in ("vpn-nl", "vpn-de"):
            fleet_lab.exec(backend, "docker", "start", "ovpn-xray")
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    # What it waits for, every few seconds: the agent may still be starting at first, then the pool.
    waits = [line for line in lines if line.startswith("[proxy-ru] waiting for ")]
    assert all(re.fullmatch(r"\[proxy-ru\] waiting for .+ \(\d+/20 s\)", w) for w in waits), waits
    assert any(re.fullmatch(r"\[proxy-ru\] waiting for haproxy: 0/2 backends UP \(\d+/20 s\)", w)
               for w in waits), waits  # fmt: skip
    errors = [line for line in lines if line.startswith("error: ")]
    assert errors == [f"error: deploy of proxy-ru failed: health gate failed: haproxy backend UP: no backend UP; "
                      f"switched back to {live}"]  # fmt: skip
    assert "HAProxy's checks of the pool:" in lines
    # The backends in the pool's order (priorities an earlier test may have changed).
    doctors = re.fullmatch(
        r"hint: the previous release is serving again; no backend of the pool answers HAProxy's checks: see "
        r"`ovpn doctor (vpn-\w\w)`, `ovpn doctor (vpn-\w\w)`, then deploy proxy-ru again",
        lines[-1],
    )
    assert doctors and {doctors[1], doctors[2]} == {"vpn-nl", "vpn-de"}, lines[-1]
    assert live_revision(fleet_lab, "proxy-ru") == live


def live_emails(lab: FleetLab, host: str) -> list[str]:
    config = json.loads(lab.exec(host, "cat", "/opt/ovpn/xray/config.json"))
    return [c["email"] for c in config["inbounds"][0]["settings"]["clients"]]


def test_backup_and_restore_bring_back_the_release_and_the_agent_data(
    op: Operator, fleet_lab: FleetLab, tmp_path: Path
) -> None:
    marker = ["docker", "exec", "ovpn-agent", "sh", "-c"]
    fleet_lab.exec("vpn-nl", *marker, "echo before-backup > /var/lib/ovpn-agent/marker")
    taken = json.loads(op.ok("server", "backup", "vpn-nl", "--download", str(tmp_path), "--json"))
    archive = taken["remote_path"]
    name = archive.rsplit("/", 1)[1]
    assert fleet_lab.exec("vpn-nl", "sha256sum", archive).split()[0] == taken["sha256"]
    copy = tmp_path / name
    assert taken["local_copy"] == str(copy) and copy.read_bytes() == host_bytes(fleet_lab, "vpn-nl", archive)
    assert (tmp_path / f"{name}.sha256").read_text() == f"{taken['sha256']}  {name}\n"
    listed = json.loads(op.ok("server", "backup", "list", "vpn-nl", "--json"))["archives"]
    assert (listed[0]["name"], listed[0]["sha256"], listed[0]["record"]) == (name, taken["sha256"], "matches")
    fleet_lab.exec("vpn-nl", *marker, "rm /var/lib/ovpn-agent/marker")
    op.ok("user", "add", "--username", "dora")
    op.ok("deploy", "vpn-nl", "--pull", "never")
    assert "dora@global" in live_emails(fleet_lab, "vpn-nl")

    missing = op.run("server", "restore", "vpn-nl", "--from", "vpn-nl-20000101T000000Z.tar.gz")
    assert missing.returncode == 1
    assert (
        missing.stderr.splitlines()[-2] == "error: backup vpn-nl-20000101T000000Z.tar.gz not found on vpn-nl"
    )
    op.ok("server", "restore", "vpn-nl", "--from", name)
    assert "dora@global" not in live_emails(fleet_lab, "vpn-nl")
    assert fleet_lab.exec("vpn-nl", *marker, "cat /var/lib/ovpn-agent/marker").strip() == "before-backup"
    assert services(op, "vpn-nl") == {"xray": "running", "ovpn-agent": "running"}
    restored = revisions(op, "vpn-nl")[-1]
    assert restored[1] == "ok" and live_revision(fleet_lab, "vpn-nl") == restored[0]
    assert fleet_lab.exec("vpn-nl", "readlink", "/opt/ovpn").strip() == f"/opt/ovpn-releases/{restored[0]}"

    fleet_lab.exec("vpn-nl", "sh", "-c", f"echo 0000  x > {archive}.sha256")
    refused = op.run("server", "restore", "vpn-nl", "--from", name, "--trust-host-digest")
    assert refused.returncode == 1 and f"does not match {archive}.sha256" in refused.stderr

    # The operator's copy, with the host's archive gone: uploaded, checked again there, restored.
    fleet_lab.exec("vpn-nl", "rm", archive, f"{archive}.sha256")
    fleet_lab.exec("vpn-nl", *marker, "rm /var/lib/ovpn-agent/marker")
    out = op.ok("server", "restore", "vpn-nl", "--from", str(copy))
    again = revisions(op, "vpn-nl")[-1]
    assert out.strip() == f"vpn-nl: restored {copy} as {again[0]}" and again[0] != restored[0]
    assert again[1] == "ok" and live_revision(fleet_lab, "vpn-nl") == again[0]
    assert fleet_lab.exec("vpn-nl", "readlink", "/opt/ovpn").strip() == f"/opt/ovpn-releases/{again[0]}"
    assert fleet_lab.exec("vpn-nl", *marker, "cat /var/lib/ovpn-agent/marker").strip() == "before-backup"
    assert fleet_lab.exec("vpn-nl", "sha256sum", archive).split()[0] == taken["sha256"]
    assert services(op, "vpn-nl") == {"xray": "running", "ovpn-agent": "running"}

    op.ok("user", "rm", "--username", "dora")
    op.ok("deploy", "vpn-nl", "--pull", "never")
    assert "dora@global" not in live_emails(fleet_lab, "vpn-nl")


def host_bytes(lab: FleetLab, host: str, path: str) -> bytes:
    return base64.b64decode(lab.exec(host, "base64", "-w0", path))


def put_archive(lab: FleetLab, host: str, path: str, data: bytes) -> str:
    """Place an archive on the host with a matching `.sha256` beside it, as an attacker would; its digest."""
    digest = hashlib.sha256(data).hexdigest()
    lab.exec(host, "sh", "-c", 'cat > "$1"', "sh", path, input=data)
    lab.exec(host, "sh", "-c", 'echo "$2  ${1##*/}" > "$1.sha256"', "sh", path, digest)
    return digest


def with_entry(archive: bytes, entry: tarfile.TarInfo) -> bytes:
    """The archive's members plus one more, as a new .tar.gz."""
    out = io.BytesIO()
    with tarfile.open(fileobj=io.BytesIO(archive)) as source, tarfile.open(fileobj=out, mode="w:gz") as tar:
        for member in source.getmembers():
            tar.addfile(member, source.extractfile(member) if member.isfile() else None)
        tar.addfile(entry, io.BytesIO(b""))
    return out.getvalue()


def host_releases(lab: FleetLab, host: str) -> tuple[str, str]:
    return lab.exec(host, "readlink", "/opt/ovpn"), lab.exec(host, "ls", "-A", "/opt/ovpn-releases")


def test_restore_refuses_what_the_local_state_does_not_vouch_for(op: Operator, fleet_lab: FleetLab) -> None:
    """Issue 12, finding 13: a replaced archive, another server's archive and archives with setuid files,
    device files, links out of the tree or `..` are refused, and the host keeps its live release."""
    ours = json.loads(op.ok("server", "backup", "vpn-nl", "--json"))["remote_path"]
    theirs = json.loads(op.ok("server", "backup", "vpn-de", "--json"))
    # A backup of a host someone tampered with: it is recorded, so only the listing check stands in the way.
    planted = ["/opt/ovpn/ovpn-suid", "/opt/ovpn/ovpn-passwd", "/opt/ovpn/ovpn-null"]
    fleet_lab.exec("vpn-nl", "sh", "-c", "cp /bin/true $1 && chmod 4755 $1 && ln -s /etc/passwd $2 && "
                   "mknod $3 c 1 3", "sh", *planted)  # fmt: skip
    try:
        tampered = json.loads(op.ok("server", "backup", "vpn-nl", "--json"))["remote_path"]
    finally:
        fleet_lab.exec("vpn-nl", "rm", "-f", *planted)
    before, history = host_releases(fleet_lab, "vpn-nl"), revisions(op, "vpn-nl")

    def refused(source: str, *flags: str) -> str:
        result = op.run("server", "restore", "vpn-nl", "--from", source, *flags)
        assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
        return result.stderr

    err = refused(tampered.rsplit("/", 1)[1])
    assert '"runtime/ovpn-suid" is setuid' in err
    assert '"runtime/ovpn-passwd" is a symlink to "/etc/passwd"' in err
    assert '"runtime/ovpn-null" is a character device' in err

    # The archive swapped for another one of the same server, with a matching .sha256 beside it.
    genuine = host_bytes(fleet_lab, "vpn-nl", ours)
    put_archive(fleet_lab, "vpn-nl", ours, host_bytes(fleet_lab, "vpn-nl", tampered))
    assert "does not match the digest recorded when it was taken" in refused(ours.rsplit("/", 1)[1])

    # Another server's archive, copied over with its true digest.
    foreign = host_bytes(fleet_lab, "vpn-de", theirs["remote_path"])
    digest = put_archive(fleet_lab, "vpn-nl", theirs["remote_path"], foreign)
    foreign_name = theirs["remote_path"].rsplit("/", 1)[1]
    assert "this state has no record of" in refused(foreign_name)
    err = refused(foreign_name, "--digest", digest)
    assert "taken from vpn-de (vpn), not from vpn-nl (vpn)" in err

    # A crafted archive that climbs out with `..`, vouched for by the operator's own --digest.
    climbing = tarfile.TarInfo("runtime/../../../etc/cron.d/ovpn-test")
    crafted = with_entry(genuine, climbing)
    path = "/opt/ovpn-backups/vpn-nl-20200101T000000Z.tar.gz"
    err = refused(path, "--digest", put_archive(fleet_lab, "vpn-nl", path, crafted))
    assert "\"runtime/../../../etc/cron.d/ovpn-test\" goes up with '..'" in err

    assert host_releases(fleet_lab, "vpn-nl") == before and revisions(op, "vpn-nl") == history
    assert fleet_lab.exec("vpn-nl", "sh", "-c", "test -e /etc/cron.d/ovpn-test && echo present; true") == ""
    assert services(op, "vpn-nl") == {"xray": "running", "ovpn-agent": "running"}


def test_a_bundle_that_fails_xray_test_on_the_host_is_not_switched_to(
    op: Operator, fleet_lab: FleetLab
) -> None:
    live = live_revision(fleet_lab, "vpn-nl")
    op.ok("server", "set", "vpn-nl", "--image", f"xray={RUNTIME_IMAGE}")
    result = op.run("deploy", "vpn-nl", "--pull", "never")
    op.ok("server", "set", "vpn-nl", "--image", "xray=")
    assert result.returncode == 1 and "xray run -test failed on vpn-nl" in result.stderr
    assert "nothing was switched" in result.stderr
    assert live_revision(fleet_lab, "vpn-nl") == live
    assert services(op, "vpn-nl") == {"xray": "running", "ovpn-agent": "running"}
    assert revisions(op, "vpn-nl")[-1][1] == "failed"


def test_a_service_that_crashes_after_start_is_rolled_back(op: Operator, fleet_lab: FleetLab) -> None:
    live = live_revision(fleet_lab, "vpn-de")
    live_agent = running_image(fleet_lab, "vpn-de", "ovpn-agent")
    # Port 10085 is Xray's own API port inside the container: the inbound cannot bind it, so Xray exits at start
    # although `xray run -test` (which binds nothing) accepts the config. The release also builds its agent from
    # another base image, so it carries an agent image of its own.
    fleet_lab.exec("vpn-de", "docker", "tag", RUNTIME_IMAGE, "ovpn-fleetlab/runtime:other-base")
    op.ok(
        "server",
        "set",
        "vpn-de",
        "--port",
        "10085",
        "--image",
        "ovpn-agent-base=ovpn-fleetlab/runtime:other-base",
    )
    # Xray restarts again and again: the gate waits to its deadline, which 20 s make short.
    result = op.run("deploy", "vpn-de", "--pull", "never", "--no-relay-check", "--gate-timeout", "20")
    op.ok("server", "set", "vpn-de", "--port", "443", "--image", f"ovpn-agent-base={RUNTIME_IMAGE}")
    assert result.returncode == 1, result.stdout
    assert "health gate failed" in result.stderr and "switched back to" in result.stderr
    assert live_revision(fleet_lab, "vpn-de") == live
    assert revisions(op, "vpn-de")[-1][1] == "rolled-back"
    assert services(op, "vpn-de") == {"xray": "running", "ovpn-agent": "running"}
    # The rolled-back release runs the agent it was built with, not the failed release's newer build.
    assert running_image(fleet_lab, "vpn-de", "ovpn-agent") == live_agent
    assert live_agent.startswith("ovpn-agent:") and f"OVPN_AGENT_IMAGE={live_agent}" in fleet_lab.exec(
        "vpn-de", "cat", "/opt/ovpn/.env"
    )


def test_a_full_disk_is_reported_and_the_live_release_keeps_serving(
    op: Operator, fleet_lab: FleetLab
) -> None:
    live = live_revision(fleet_lab, "vpn-de")
    fleet_lab.exec("vpn-de", "sh", "-c", "cat /dev/zero > /opt/ovpn-releases/filler 2>/dev/null; true")
    op.ok("user", "add", "--username", "bob")
    try:
        result = op.run("deploy", "vpn-de", "--pull", "never")
    finally:
        fleet_lab.exec("vpn-de", "rm", "-f", "/opt/ovpn-releases/filler")
    assert result.returncode == 1 and "disk on vpn-de is full" in result.stderr
    assert live_revision(fleet_lab, "vpn-de") == live
    assert services(op, "vpn-de") == {"xray": "running", "ovpn-agent": "running"}
    assert "vpn-de: deployed" in op.ok("deploy", "vpn-de", "--pull", "never")


def test_a_connection_cut_during_upload_leaves_the_live_release(op: Operator, fleet_lab: FleetLab) -> None:
    live = live_revision(fleet_lab, "vpn-de")
    op.ok("user", "add", "--username", "erin")
    # Slow the operator's side of the link (the upload is the controller's egress; the bundle is small, the
    # agent's wheels live in the host's cache) so that the upload is still running when the connection is cut.
    tc = ["nsenter", f"--net=/proc/{fleet_lab.controller_pid}/ns/net", "--", "tc", "qdisc"]
    subprocess.run([*tc, "add", "dev", "eth0", "root", "tbf", "rate", "64kbit", "burst", "16kb", "latency", "500ms"],
                   check=True, capture_output=True)  # fmt: skip
    try:
        deploy = subprocess.Popen(op.argv("deploy", "vpn-de", "--pull", "never"), env=op.env, text=True,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
        deadline = time.monotonic() + 60
        while not fleet_lab.exec(
            "vpn-de", "sh", "-c", "ls -d /opt/ovpn-releases/*.partial 2>/dev/null; true"
        ):
            assert deploy.poll() is None and time.monotonic() < deadline, "the upload never started"
            time.sleep(0.05)
        killed = subprocess.run(["pkill", "-KILL", "-f", "tar -xzf - -C /opt/ovpn-releases/"], check=False)
        assert killed.returncode == 0, "no upload to cut"
        _, err = deploy.communicate(timeout=120)
    finally:
        subprocess.run([*tc, "del", "dev", "eth0", "root"], check=False, capture_output=True)
    assert deploy.returncode == 1 and "unpacking the release on vpn-de failed" in err
    assert live_revision(fleet_lab, "vpn-de") == live
    assert services(op, "vpn-de") == {"xray": "running", "ovpn-agent": "running"}
    assert revisions(op, "vpn-de")[-1][1] == "failed"
    assert "vpn-de: deployed" in op.ok("deploy", "vpn-de", "--pull", "never")
    assert fleet_lab.exec("vpn-de", "sh", "-c", "ls -d /opt/ovpn-releases/*.partial 2>/dev/null; true") == ""
    op.ok("user", "rm", "--username", "erin")


def test_a_changed_host_key_is_refused(op: Operator, fleet_lab: FleetLab) -> None:
    fleet_lab.exec("vpn-de", "sh", "-c", "rm -f /etc/ssh/ssh_host_* && ssh-keygen -A >/dev/null")
    result = op.run("server", "status", "vpn-de")
    assert result.returncode == 1
    address = fleet_lab.hosts["vpn-de"].address
    error, hint = result.stderr.splitlines()[:2]
    assert error.startswith(
        f"error: the host key of vpn-de ({address}:22) changed: the host now offers ED25519 "
    )
    assert f"`ssh-keygen -f {shlex.quote(str(op.data_dir / 'known_hosts'))} -R {address}`" in hint


def test_state_has_a_revision_per_attempt(op: Operator) -> None:
    results = [r for _, r in revisions(op, "vpn-de")]
    assert results[:2] == ["ok", "ok"] and "rolled-back" in results and "failed" in results
    assert all(r in {"ok", "failed", "rolled-back"} for r in results)
    pinned = [line for line in Path(op.data_dir / "known_hosts").read_text().splitlines() if line.strip()]
    assert len(pinned) >= 3  # one key per host, pinned on first contact (host names hashed by ssh)
