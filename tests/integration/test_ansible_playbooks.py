"""The Ansible baseline applied for real: both playbooks, twice, on a fresh Debian 12 host on this machine.

The host is a container of a private Docker engine (tests/hostlab) booting systemd as PID 1, with sshd and an
inner Docker engine, built from a debootstrap root that already holds every package the roles name (the lab has
no route to any mirror, its apt has no sources, and the playbooks run with `ovpn_packages_update_cache: false`).
ansible-playbook, ssh and the probes run in a controller container's network namespace (`nsenter --net`), never
in the root namespace. The inventory is `ovpn ansible inventory` output for a state holding the host as a proxy
(plus a vpn server that `--limit` keeps out of the run), exactly as docs/ansible.md tells operators.

The test host shares this machine's kernel, so the kernel-wide parts are switched off for it: global sysctl,
kernel modules and swap activation (see SITE_OVERRIDES).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from tests.conftest import missing_tool, tool_path
from tests.hostlab import (
    Controller,
    HostLab,
    KeyPair,
    LabHost,
    build_systemd_host_image,
    client_options,
    close_masters,
    debootstrap_tarball,
    generate_keypair,
    isolated_argv,
    rootfs_key,
    ssh_argv,
    wait_for_ssh,
)
from tests.support.topology import lab_geodata

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
ANSIBLE_DIR = ROOT / "ansible"
PRODUCTION = ANSIBLE_DIR / "inventories" / "production"
SUBNET = "10.217.7.0/24"
HOST = "lab-proxy"
# The vpn server in the generated inventory: an unused address of the lab subnet, never contacted (--limit).
VPN_ADDRESS = "10.217.7.250"
LAB_USER, LAB_PASSWORD = "labuser", "hostlab-password"
# The lab host's extras: a user with a password (to prove password logins stop working) and busybox for a tiny
# image inside the host's own Docker engine (to prove the firewall's handling of published ports).
HOST_EXTRA = f"""RUN useradd --create-home --shell /bin/bash {LAB_USER} && echo '{LAB_USER}:{LAB_PASSWORD}' | chpasswd
"""
EXTRA_PACKAGES = ("busybox-static",)


def site_overrides(keys: KeyPair, compose_plugin: Path) -> dict[str, object]:
    """The test inventory's site.local.yml: the operator's key, and what a shared kernel / no mirror requires."""
    return {
        "ovpn_deploy_user_ssh_public_keys": [keys.public],
        "ovpn_packages_update_cache": False,  # no mirror is reachable: never try (every package is in the image)
        "ovpn_base_sysctl_global": {},  # kernel-wide keys would change this machine's kernel
        "ovpn_base_kernel_modules": [],  # modules are this machine's too
        "ovpn_base_swap_size_mb": 64,  # the file is made, formatted and put in fstab ...
        "ovpn_base_swap_activate": False,  # ... but swap is kernel-wide: never turned on here
        "ovpn_docker_compose_plugin_src": str(compose_plugin),  # Debian 12's docker-compose is v1
        "ovpn_fail2ban_maxretry": 50,  # the tests fail logins on purpose; a ban of the controller would end them
    }


def role_packages() -> list[str]:
    """Every package the production group_vars name, so the image has them all before the playbooks run."""
    values = yaml.safe_load((PRODUCTION / "group_vars" / "all" / "main.yml").read_text())
    found = {p for key, value in values.items() if key.endswith("_packages") for p in value}
    return sorted(found | set(EXTRA_PACKAGES))


RECAP = re.compile(
    r"^(?P<host>\S+)\s+:\s+ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+unreachable=(?P<unreachable>\d+)\s+"
    r"failed=(?P<failed>\d+)",
    re.M,
)


@dataclass
class Run:
    playbook: str
    returncode: int
    output: str
    seconds: float

    def recap(self, host: str = HOST) -> dict[str, int]:
        for match in RECAP.finditer(self.output):
            if match["host"] == host:
                return {k: int(match[k]) for k in ("ok", "changed", "unreachable", "failed")}
        raise AssertionError(f"no PLAY RECAP line for {host}:\n{self.output[-3000:]}")


@dataclass
class Baseline:
    lab: HostLab
    controller: Controller
    host: LabHost
    keys: KeyPair
    work: Path
    inventory: Path
    password_login_before: subprocess.CompletedProcess[str]
    first: dict[str, Run] = field(default_factory=dict)
    second: dict[str, Run] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def known_hosts(self) -> Path:
        return self.work / "known_hosts"

    def ssh(self, user: str, command: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        argv = ssh_argv(self.host.address, user, command, key=self.keys.private, known_hosts=self.known_hosts)
        return self.controller.run(argv, timeout=timeout)

    def deploy(self, command: str, timeout: float = 60) -> str:
        """COMMAND as the deploy user `ovpn` through passwordless sudo; its stdout (fails the test otherwise)."""
        proc = self.ssh("ovpn", f"sudo -n {command}", timeout=timeout)
        assert proc.returncode == 0, f"{command}: {proc.stderr}"
        return proc.stdout

    def playbook(self, name: str, *extra: str, inventory: Path | None = None) -> Run:
        return run_playbook(
            self.controller, inventory or self.inventory, name, self.work, "--limit", HOST, *extra
        )


def control_dir(work: Path) -> Path:
    """SSH multiplexing sockets: a short path (a socket path must stay under 108 bytes), one per work directory."""
    link = work / "cp"
    if not link.exists():
        link.symlink_to(tempfile.mkdtemp(prefix="hl-cp-"))
    return link.resolve()


def ansible_env(work: Path, multiplex: bool = True) -> dict[str, str]:
    options = client_options(work / "known_hosts", control_dir(work) if multiplex else None)
    return {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "ANSIBLE_CONFIG": "ansible.cfg",
        "ANSIBLE_SSH_ARGS": " ".join(options),
        "ANSIBLE_LOCAL_TEMP": str(work / "ansible-tmp"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_RETRY_FILES_ENABLED": "0",
    }


def run_playbook(controller: Controller, inventory: Path, name: str, work: Path, *extra: str) -> Run:
    """The seed's command (`ANSIBLE_CONFIG=ansible.cfg ansible-playbook -i ... playbooks/NAME.yml`) from ansible/."""
    argv = [
        str(Path(sys.executable).parent / "ansible-playbook"),
        "-i",
        str(inventory),
        f"playbooks/{name}.yml",
    ]
    started = time.monotonic()
    proc = controller.run([*argv, *extra], env=ansible_env(work), cwd=ANSIBLE_DIR, timeout=900)
    return Run(name, proc.returncode, proc.stdout + proc.stderr, time.monotonic() - started)


def ovpn(state: Path, *argv: str) -> str:
    """The ovpn CLI on the test's own state (no network involved)."""
    proc = subprocess.run(
        [sys.executable, "-m", "ovpn", "--data-dir", str(state), *argv],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def write_inventory_dir(directory: Path, site: dict[str, object]) -> Path:
    """An inventory directory like inventories/production (its group_vars, plus SITE as site.local.yml).

    Returns the path of its hosts.yml, which the caller writes.
    """
    for group in ("all", "vpn_servers", "proxy_servers"):
        (directory / "group_vars" / group).mkdir(parents=True, exist_ok=True)
        link = directory / "group_vars" / group / "main.yml"
        if not link.exists():
            link.symlink_to(PRODUCTION / "group_vars" / group / "main.yml")
    (directory / "group_vars" / "all" / "site.local.yml").write_text(yaml.safe_dump(site, sort_keys=False))
    return directory / "hosts.yml"


def password_login(address: str, work: Path) -> list[str]:
    """A real password login attempt of the lab user; the password comes from SSH_ASKPASS, no terminal needed."""
    askpass = work / "askpass"
    if not askpass.exists():
        askpass.write_text(f"#!/bin/sh\necho '{LAB_PASSWORD}'\n")
        askpass.chmod(0o700)
    return [
        "env", f"SSH_ASKPASS={askpass}", "SSH_ASKPASS_REQUIRE=force", "DISPLAY=:0",
        "ssh", "-F", "/dev/null",
        "-o", f"UserKnownHostsFile={work / 'known_hosts'}", "-o", "StrictHostKeyChecking=accept-new",
        "-o", "ConnectTimeout=5", "-o", "PubkeyAuthentication=no",
        "-o", "PreferredAuthentications=password", "-o", "NumberOfPasswordPrompts=1",
        f"{LAB_USER}@{address}", "echo password-login-ok",
    ]  # fmt: skip


def prerequisites() -> Path:
    """Skip (locally) or fail (CI) unless everything the lab needs is here; returns the Compose v2 binary."""
    if os.geteuid() != 0:
        missing_tool("the Ansible lab needs root (dockerd, network namespaces, debootstrap)")
    for tool in (
        "dockerd",
        "containerd",
        "docker",
        "debootstrap",
        "nsenter",
        "unshare",
        "ssh",
        "ssh-keyscan",
    ):
        if shutil.which(tool) is None:
            missing_tool(f"{tool} not found; run .ci/install-tools to enable the Ansible lab")
    if not (Path(sys.executable).parent / "ansible-playbook").exists():
        missing_tool("ansible-playbook not found in the virtualenv; install the test extra")
    plugin = Path.home() / ".docker" / "cli-plugins" / "docker-compose"
    if not plugin.exists():
        missing_tool(f"no Compose v2 CLI plugin at {plugin}; run .ci/install-tools")
    return plugin.resolve()


@pytest.fixture(scope="session")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Baseline]:
    compose_plugin = prerequisites()
    work = tmp_path_factory.mktemp("ansible-lab")
    timings: dict[str, float] = {}
    started = time.monotonic()
    packages = role_packages()
    tarball = debootstrap_tarball(packages)
    timings["rootfs"] = time.monotonic() - started
    lab = HostLab("ansible", SUBNET)
    lab.start()
    controller: Controller | None = None
    try:
        mark = time.monotonic()
        key = rootfs_key("bookworm", packages)
        base = lab.engine.import_rootfs(tarball, f"hostlab/debian12:{key}")
        image = build_systemd_host_image(lab.engine, base, f"hostlab/ansible-host:{key}", HOST_EXTRA)
        timings["images"] = time.monotonic() - mark
        mark = time.monotonic()
        controller = lab.start_controller(base)
        host = lab.start_systemd_host(HOST, image)
        keys = generate_keypair(work / "keys")
        host.authorize_key("root", keys.public)
        wait_for_ssh(controller, host.address)
        timings["boot"] = time.monotonic() - mark

        state = work / "state"
        ovpn(state, "server", "add", "--name", HOST, "--role", "proxy", "--host", host.address,
             "--domain", "proxy.lab.test", "--ssh-user", "root", "--ssh-port", "22",
             "--ssh-identity", str(keys.private))  # fmt: skip
        ovpn(state, "server", "add", "--name", "lab-vpn", "--role", "vpn", "--host", VPN_ADDRESS)
        inventory_dir = work / "inventory"
        inventory_dir.mkdir()
        ovpn(state, "ansible", "inventory", "--out", str(inventory_dir / "hosts.yml"))
        inventory = write_inventory_dir(inventory_dir, site_overrides(keys, compose_plugin))

        before = controller.run(password_login(host.address, work), timeout=30)
        found = Baseline(lab, controller, host, keys, work, inventory, before, timings=timings)
        for name in ("bootstrap", "security"):
            found.first[name] = found.playbook(name)
            timings[f"{name} (1st)"] = found.first[name].seconds
        for name in ("bootstrap", "security"):
            found.second[name] = found.playbook(name)
            timings[f"{name} (2nd)"] = found.second[name].seconds
        yield found
    finally:
        if controller is not None:
            close_masters(controller, control_dir(work))
        shutil.rmtree(control_dir(work), ignore_errors=True)
        lab.stop()
        timings["total"] = time.monotonic() - started
        print("\nansible lab timings (s): " + ", ".join(f"{k} {v:.1f}" for k, v in timings.items()))


# --- the runs ------------------------------------------------------------------------------------------------
def test_both_playbooks_apply_cleanly_to_a_fresh_host(baseline: Baseline) -> None:
    for name, run in baseline.first.items():
        assert run.returncode == 0, f"{name}.yml failed:\n{run.output[-5000:]}"
        recap = run.recap()
        assert recap["failed"] == 0 and recap["unreachable"] == 0
        assert recap["changed"] > 0, f"{name}.yml changed nothing on a fresh host"
        assert "lab-vpn" not in run.output, "--limit must keep the other host out of the run"


def test_a_second_run_changes_nothing(baseline: Baseline) -> None:
    for name, run in baseline.second.items():
        assert run.returncode == 0, f"{name}.yml failed on the second run:\n{run.output[-5000:]}"
        assert run.recap()["changed"] == 0, f"{name}.yml is not idempotent:\n{changed_tasks(run.output)}"


def changed_tasks(output: str) -> str:
    blocks = output.split("\nTASK ")
    return "\n".join(b.splitlines()[0] for b in blocks if "\nchanged:" in b or b.startswith("changed:"))


# --- sshd ----------------------------------------------------------------------------------------------------
def test_sshd_refuses_password_logins_afterwards(baseline: Baseline) -> None:
    before = baseline.password_login_before
    assert before.returncode == 0 and "password-login-ok" in before.stdout, (
        f"the lab user's password login should work before security.yml: {before.stderr}"
    )
    after = baseline.controller.run(password_login(baseline.host.address, baseline.work), timeout=30)
    assert after.returncode != 0 and "password-login-ok" not in after.stdout
    assert "Permission denied (publickey)" in after.stderr
    batch = baseline.controller.run(
        ["ssh", "-F", "/dev/null", "-o", f"UserKnownHostsFile={baseline.known_hosts}",
         "-o", "PreferredAuthentications=password", "-o", "BatchMode=yes", "-o", "ConnectTimeout=5",
         f"root@{baseline.host.address}", "true"],
        timeout=30,
    )  # fmt: skip
    assert batch.returncode == 255 and "Permission denied (publickey)" in batch.stderr
    effective = baseline.deploy("/usr/sbin/sshd -T").splitlines()
    for line in (
        "passwordauthentication no",
        "kbdinteractiveauthentication no",
        "authenticationmethods publickey",
    ):
        assert line in effective
    assert "allowtcpforwarding local" in effective  # group_vars/proxy_servers: Grafana tunnels on proxies


def test_the_deploy_user_logs_in_with_its_key_and_has_passwordless_sudo(baseline: Baseline) -> None:
    assert baseline.ssh("ovpn", "id -un").stdout.strip() == "ovpn"
    assert baseline.deploy("id -un").strip() == "root"
    shadow = baseline.deploy("getent shadow ovpn")
    assert shadow.split(":")[1].startswith("!"), "the deploy user's password must be locked"


# --- firewall ------------------------------------------------------------------------------------------------
def test_the_firewall_rules_are_in_place(baseline: Baseline) -> None:
    table = baseline.deploy("nft list table inet ovpn_firewall")
    assert re.search(r"set inbound_tcp \{[^}]*elements = \{ 22, 443 \}", table)
    assert re.search(r"set published_tcp \{[^}]*elements = \{ 443 \}", table)
    assert re.search(r"hook input priority filter; policy drop;", table)
    assert re.search(r"hook forward priority filter; policy drop;", table)
    assert "tcp dport @inbound_tcp accept" in table
    assert "ct original proto-dst @published_tcp accept" in table
    assert baseline.deploy("systemctl is-enabled nftables").strip() == "enabled"
    # Docker's own tables are still there next to ours (the file never flushes the ruleset).
    assert "table ip nat" in baseline.deploy("nft list tables")


def test_only_ssh_and_published_443_are_reachable_from_outside(baseline: Baseline) -> None:
    """Real connections from the controller: host ports and Docker-published ports, allowed and dropped."""
    baseline.deploy(
        "sh -c 'set -e; mkdir -p /tmp/bb; cp /bin/busybox /tmp/bb/busybox;"
        " docker image inspect hostlab/busybox:1 >/dev/null 2>&1"
        " || tar -C /tmp/bb -c . | docker import - hostlab/busybox:1 >/dev/null;"
        " docker rm -f web >/dev/null 2>&1 || true;"
        " docker run -d --pull never --name web -p 443:8080 -p 9443:8080 hostlab/busybox:1"
        " /busybox httpd -f -p 8080 -h / >/dev/null;"
        " systemctl is-active --quiet hostlab-probe || systemd-run --unit hostlab-probe"
        " python3 -m http.server --bind 0.0.0.0 9090 >/dev/null 2>&1'",
        timeout=120,
    )
    local = (  # any HTTP answer (busybox httpd answers 404 for /) proves the listener works on the host itself
        "import time,urllib.request,urllib.error\n"
        "for port in (9090, 9443):\n"
        "    for _ in range(50):\n"
        "        try: urllib.request.urlopen(f'http://127.0.0.1:{port}/', timeout=2)\n"
        "        except urllib.error.HTTPError: pass\n"
        "        except OSError: time.sleep(0.2); continue\n"
        "        print(port, 'ok'); break\n"
    )
    served = baseline.host.exec("python3", "-c", local, timeout=60)
    assert "9090 ok" in served and "9443 ok" in served, (
        f"the listeners must work on the host itself: {served}"
    )
    probe = baseline.controller.tcp_probe
    address = baseline.host.address
    try:
        assert probe(address, 22) == "open"
        assert probe(address, 443) == "open", "a container published on 443 must be reachable (Docker's DNAT)"
        assert probe(address, 9090) == "timeout", "a host port outside the public list must be dropped"
        assert probe(address, 9443) == "timeout", "a container published on a non-public port must be dropped"
    finally:
        stop_probe_listeners(baseline)


def stop_probe_listeners(baseline: Baseline) -> None:
    """Free 443 and 9090 again (ovpn's own Xray publishes 443 later)."""
    baseline.deploy(
        "sh -c 'docker rm -f web >/dev/null 2>&1; systemctl stop hostlab-probe 2>/dev/null; true'"
    )


# --- Docker --------------------------------------------------------------------------------------------------
def test_docker_answers_the_deploy_user_through_sudo(baseline: Baseline) -> None:
    assert re.fullmatch(
        r"\d+\.\d+\.\d+\S*", baseline.deploy("docker version --format '{{.Server.Version}}'").strip()
    )
    assert "Docker Compose version v2" in baseline.deploy("docker compose version")
    assert baseline.deploy("docker info --format '{{.LoggingDriver}}'").strip() == "json-file"
    daemon = yaml.safe_load(baseline.deploy("cat /etc/docker/daemon.json"))
    assert daemon == {
        "live-restore": True,
        "log-driver": "json-file",
        "log-opts": {"max-file": "5", "max-size": "10m"},
    }


# --- fail2ban ------------------------------------------------------------------------------------------------
def test_fail2ban_watches_sshd_through_the_journal_and_bans_with_nftables(baseline: Baseline) -> None:
    status = baseline.deploy("fail2ban-client status sshd")
    assert "Status for the jail: sshd" in status
    assert "Journal matches:\t_SYSTEMD_UNIT=ssh.service + _COMM=sshd" in status
    failed_before = total_failed(status)
    invalid = baseline.ssh("nosuchuser", "true", timeout=30)
    assert invalid.returncode == 255
    deadline = time.monotonic() + 20
    while (
        time.monotonic() < deadline
        and total_failed(baseline.deploy("fail2ban-client status sshd")) <= failed_before
    ):
        time.sleep(0.5)
    assert total_failed(baseline.deploy("fail2ban-client status sshd")) > failed_before, (
        "the failure was not seen"
    )
    # A ban lands in fail2ban's own nftables table (an unused lab address, unbanned right away).
    baseline.deploy(f"fail2ban-client set sshd banip {VPN_ADDRESS}")
    try:
        assert VPN_ADDRESS in baseline.deploy("nft list table inet f2b-table")
    finally:
        baseline.deploy(f"fail2ban-client set sshd unbanip {VPN_ADDRESS}")


def total_failed(status: str) -> int:
    match = re.search(r"Total failed:\s+(\d+)", status)
    assert match, status
    return int(match[1])


# --- base OS -------------------------------------------------------------------------------------------------
def test_base_settings_are_applied(baseline: Baseline) -> None:
    # sysctl for long-lived connections, in the host's own network namespace.
    assert baseline.deploy("sysctl -n net.ipv4.tcp_keepalive_time").strip() == "600"
    assert baseline.deploy("sysctl -n net.core.somaxconn").strip() == "4096"
    assert "SystemMaxUse=200M" in baseline.deploy("cat /etc/systemd/journald.conf.d/60-ovpn.conf")
    swap = baseline.deploy(
        "sh -c 'stat -c %a:%U:%s /swapfile; blkid -p -o value -s TYPE /swapfile || file -b /swapfile'"
    )
    assert swap.startswith(f"600:root:{64 * 1024 * 1024}\n") and "swap" in swap
    assert "/swapfile none swap sw 0 0" in baseline.deploy("cat /etc/fstab")
    assert baseline.deploy("readlink /etc/localtime").strip().endswith("Etc/UTC")
    assert baseline.deploy("systemctl is-enabled systemd-timesyncd").strip() == "enabled"


def test_unattended_upgrades_take_security_updates_only(baseline: Baseline) -> None:
    dump = baseline.deploy("apt-config dump Unattended-Upgrade::Origins-Pattern")
    origins = re.findall(r'Origins-Pattern:: "([^"]+)"', dump)
    assert origins and all("label=Debian-Security" in origin for origin in origins), dump
    periodic = baseline.deploy("apt-config dump APT::Periodic")
    assert 'APT::Periodic::Unattended-Upgrade "1";' in periodic
    assert baseline.deploy("systemctl is-enabled apt-daily-upgrade.timer").strip() == "enabled"


# --- bad input -----------------------------------------------------------------------------------------------
def test_a_missing_package_is_reported_when_installs_are_off(baseline: Baseline) -> None:
    """`ovpn_packages_install: false` only checks, and names what is missing (nothing is downloaded)."""
    run = baseline.playbook(
        "bootstrap",
        "-e",
        "ovpn_packages_install=false",
        "-e",
        '{"ovpn_base_packages": ["sudo", "no-such-package"]}',
    )
    assert run.returncode != 0
    assert "lab-proxy lacks no-such-package and ovpn_packages_install is false" in run.output


@dataclass(frozen=True)
class BadInventory:
    groups: dict[str, list[str]]
    message: str
    site: dict[str, object] = field(default_factory=dict)
    drop: str = ""
    limit: str = HOST
    host_vars: dict[str, object] = field(default_factory=dict)


BAD_INVENTORIES = {
    "host in both groups": BadInventory(
        {"vpn_servers": [HOST, "vpn-1"], "proxy_servers": [HOST]},
        f"{HOST} is in both vpn_servers and proxy_servers",
        limit="vpn-1",  # the whole inventory is checked, not only the limited hosts
    ),
    "missing ssh key variable": BadInventory(
        {"vpn_servers": ["vpn-1"], "proxy_servers": [HOST]},
        f"ovpn_deploy_user_ssh_public_keys is missing or invalid for {HOST}",
        drop="ovpn_deploy_user_ssh_public_keys",
    ),
    "not a public key": BadInventory(
        {"vpn_servers": ["vpn-1"], "proxy_servers": [HOST]},
        f"ovpn_deploy_user_ssh_public_keys is missing or invalid for {HOST}",
        site={"ovpn_deploy_user_ssh_public_keys": ["-----BEGIN OPENSSH PRIVATE KEY-----"]},
    ),
    "role disagrees with group": BadInventory(
        {"vpn_servers": ["vpn-1", HOST], "proxy_servers": []},
        f"{HOST} has ovpn_server_role=proxy but is in vpn_servers",
    ),
    "private key file missing": BadInventory(
        {"vpn_servers": ["vpn-1"], "proxy_servers": [HOST]},
        f"ansible_ssh_private_key_file for {HOST} is ~/no-such-key, which is not a file on this machine",
        host_vars={"ansible_ssh_private_key_file": "~/no-such-key"},
    ),
    "monitoring port opened": BadInventory(
        {"vpn_servers": ["vpn-1"], "proxy_servers": [HOST]},
        "would open 9090 to everyone",
        site={"ovpn_firewall_public_tcp_ports": [443, 9090]},
    ),
}


@pytest.mark.parametrize("playbook", ["bootstrap", "security"])
@pytest.mark.parametrize("case", sorted(BAD_INVENTORIES))
def test_bad_inventory_fails_before_touching_any_host(tmp_path: Path, case: str, playbook: str) -> None:
    """Run in an empty network namespace: whatever the playbook did, it could reach nothing."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        missing_tool(
            "the bad-inventory tests run ansible-playbook in an empty network namespace (root, unshare)"
        )
    if not (Path(sys.executable).parent / "ansible-playbook").exists():
        missing_tool("ansible-playbook not found in the virtualenv; install the test extra")
    bad = BAD_INVENTORIES[case]
    roles = {HOST: "proxy", "vpn-1": "vpn"}
    addresses = {HOST: "10.217.7.2", "vpn-1": VPN_ADDRESS}
    hosts = {
        "all": {
            "children": {
                group: {
                    "hosts": {
                        name: {
                            "ansible_host": addresses[name],
                            "ansible_user": "root",
                            "ovpn_server_role": roles[name],
                            **bad.host_vars,
                        }
                        for name in members
                    }
                }
                for group, members in bad.groups.items()
            }
        }
    }
    site: dict[str, object] = {
        "ovpn_deploy_user_ssh_public_keys": ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBad lab"]
    }
    site.update(bad.site)
    site.pop(bad.drop, None)
    hosts_yml = write_inventory_dir(tmp_path / "inventory", site)
    hosts_yml.write_text(yaml.safe_dump(hosts))
    argv = [
        str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(hosts_yml), f"playbooks/{playbook}.yml",
        "--limit", bad.limit,
    ]  # fmt: skip
    proc = subprocess.run(
        isolated_argv(argv),
        cwd=ANSIBLE_DIR,
        env=ansible_env(tmp_path, multiplex=False),
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output
    assert bad.message in " ".join(output.split()), output[-3000:]
    assert "Gathering Facts" not in output, "the check must stop the run before any host is contacted"


# --- ovpn on the prepared host (fleet operations) ------------------------------------------------------------
def test_ovpn_initialises_and_deploys_the_prepared_host(
    baseline: Baseline, tmp_path: Path, agent_wheels: Path
) -> None:
    """The baseline is all ovpn needs: `server init` and `deploy` as the deploy user, through the firewall.

    The runtime's images come from the fleet lab's local builds (no registry), loaded into the host's engine.
    """
    try:
        from tests.fleetlab.engine import Engine as FleetEngine
        from tests.fleetlab.images import HAPROXY_IMAGE, RUNTIME_IMAGE, XRAY_VERSION, ensure_images
    except ImportError as error:  # the fleet operations issue provides them
        pytest.skip(f"fleet operations' lab images are not available: {error}")
    stop_probe_listeners(baseline)
    images = ensure_images(FleetEngine(baseline.lab.engine.socket), tool_path("xray"))
    baseline.host.exec("docker", "load", "-q", input_file=images, timeout=600)
    geodata = lab_geodata()
    (tmp_path / "geosite.dat").write_bytes(geodata.geosite)
    (tmp_path / "geoip.dat").write_bytes(geodata.geoip)
    state = baseline.work / "state"
    ovpn(state, "server", "set", HOST, "--ssh-user", "ovpn", "--xray-version", XRAY_VERSION,
         "--image", f"ovpn-agent-base={RUNTIME_IMAGE}", "--image", f"haproxy={HAPROXY_IMAGE}")  # fmt: skip
    (tmp_path / "home").mkdir()
    env = {
        **os.environ,
        "HOME": str(tmp_path / "home"),  # ssh must not read the operator's own ~/.ssh (config, known_hosts)
        "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "OVPN_DATA_DIR": str(state),
        "OVPN_PROXY_GEOSITE_PATH": str(tmp_path / "geosite.dat"),
        "OVPN_PROXY_GEOIP_PATH": str(tmp_path / "geoip.dat"),
    }
    operator = [str(Path(sys.executable).parent / "ovpn")]

    init = baseline.controller.run(
        [*operator, "server", "init", HOST, "--accept-new-host-key", "--pull", "never"], env=env, timeout=900
    )
    assert init.returncode == 0, init.stdout + init.stderr
    assert f"{HOST}: deployed" in init.stdout
    status = baseline.controller.run([*operator, "server", "status", HOST, "--json"], env=env, timeout=120)
    assert status.returncode == 0, status.stderr
    running = {s["service"]: s["state"] for s in json.loads(status.stdout)["services"]}
    assert running == {"xray": "running", "ovpn-agent": "running", "haproxy": "running"}
    # Clients reach Xray on 443 through the firewall; the agent's port stays on loopback.
    assert baseline.controller.tcp_probe(baseline.host.address, 443) == "open"
    assert baseline.controller.tcp_probe(baseline.host.address, 19000) == "timeout"

    deploy = baseline.controller.run([*operator, "deploy", HOST, "--pull", "never"], env=env, timeout=900)
    assert deploy.returncode == 0, deploy.stdout + deploy.stderr
