"""Host-key messages: exact lines for ssh's captured refusals (an unknown key, a changed key on port 22 and on
another port), the removal command as ssh files the key, and the line that reports a key pinned on first contact."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from tests.support.sshd import fingerprint, generate_key

from ovpn.errors import HostUnreachable
from ovpn.remote.base import SshTarget
from ovpn.remote.host_keys import RERUN_WITH_OPTION, host_key_failure, pin_with_doctor, pinned_keys
from ovpn.remote.ssh import Ssh, SshSettings

CAPTURED = Path(__file__).parent / "captured"
KNOWN_HOSTS = Path("/tmp/ovpn-data/known_hosts")
OFFERED = "ED25519 SHA256:47kMOhbocS9aQM/a6Irq1ffI2zAoMeyUPN4JFmwTVH8"


def captured(name: str) -> str:
    return (CAPTURED / f"openssh-9.2-host-key-{name}.txt").read_text()


def refusal(port: int, stderr: str, pin_advice: str = RERUN_WITH_OPTION) -> HostUnreachable:
    error = host_key_failure(
        SshTarget("127.0.0.1", port, "deploy", name="vpn-nl"), stderr, KNOWN_HOSTS, pin_advice
    )
    assert error is not None
    return error


def test_an_unknown_key_names_the_host_and_the_option_that_pins_it() -> None:
    error = refusal(2222, captured("unknown-port-2222"))
    assert error.message == "the host key of vpn-nl (127.0.0.1:2222) is not known: refusing to connect"
    assert error.hint == (
        "on first contact, run again with --accept-new-host-key; ovpn prints the fingerprint it pins, to compare "
        "with `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` on the server"
    )


@pytest.mark.parametrize(
    ("port", "filed_as"), [(22, "127.0.0.1"), (2222, "'[127.0.0.1]:2222'")], ids=["port-22", "other-port"]
)
def test_a_changed_key_names_the_offered_key_and_the_exact_removal(port: int, filed_as: str) -> None:
    """ssh files a key for another port than 22 under `[host]:port`: `ssh-keygen -R host` would miss it."""
    error = refusal(port, captured(f"changed-port-{port}"))
    assert error.message == (
        f"the host key of vpn-nl (127.0.0.1:{port}) changed: the host now offers {OFFERED}; refusing to connect"
    )
    assert error.hint == (
        "if the server was reinstalled, verify its new key out of band, remove the old one with "
        f"`ssh-keygen -f /tmp/ovpn-data/known_hosts -R {filed_as}`, then run again with --accept-new-host-key"
    )


def test_a_command_without_the_option_points_at_doctor() -> None:
    for name in ("unknown-port-2222", "changed-port-2222"):
        hint = refusal(2222, captured(name), pin_with_doctor("vpn-nl")).hint
        assert "pin it with `ovpn doctor vpn-nl --accept-new-host-key` and run again" in hint
        assert "run again with --accept-new-host-key" not in hint


def test_a_stale_key_in_the_operators_own_known_hosts_is_removed_from_there() -> None:
    stderr = captured("changed-port-22").replace(
        "Offending ED25519 key in /tmp/ovpn-data/known_hosts:1", "Offending ED25519 key in /home/op/my keys:7"
    )
    assert "`ssh-keygen -f '/home/op/my keys' -R 127.0.0.1`" in refusal(22, stderr).hint


def test_without_the_offered_fingerprint_the_message_still_says_changed() -> None:
    stderr = "Host key for 127.0.0.1 has changed and you have requested strict checking.\nHost key verification failed."
    error = refusal(22, stderr)
    assert (
        error.message
        == "the host key of vpn-nl (127.0.0.1:22) changed: it is not the key on file; refusing to connect"
    )
    assert "`ssh-keygen -f /tmp/ovpn-data/known_hosts -R 127.0.0.1`" in error.hint


def test_an_ipv6_host_is_named_in_brackets() -> None:
    target = SshTarget("2001:db8::5", 22, name="vpn-v6")
    error = host_key_failure(target, captured("unknown-port-2222"), KNOWN_HOSTS, RERUN_WITH_OPTION)
    assert error is not None and error.message.startswith(
        "the host key of vpn-v6 ([2001:db8::5]:22) is not known"
    )


def test_other_ssh_failures_are_not_about_host_keys() -> None:
    refused = "ssh: connect to host 127.0.0.1 port 22: Connection refused"
    assert host_key_failure(SshTarget("127.0.0.1"), refused, KNOWN_HOSTS, RERUN_WITH_OPTION) is None


def test_pinned_keys_are_found_in_a_hashed_file_under_the_port_form(tmp_path: Path) -> None:
    key = generate_key(tmp_path / "host")
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(
        "[127.0.0.1]:2222 " + " ".join(key.with_suffix(".pub").read_text().split()[:2]) + "\n"
    )
    subprocess.run(["ssh-keygen", "-H", "-f", str(known_hosts)], check=True, capture_output=True)
    assert "127.0.0.1" not in known_hosts.read_text()
    assert pinned_keys(known_hosts, SshTarget("127.0.0.1", 2222)) == {fingerprint(key)}
    assert pinned_keys(known_hosts, SshTarget("127.0.0.1", 22)) == frozenset()


# Stands in for ssh: adds the host's key to ovpn's known_hosts like accept-new does, then exits with $CODE.
FAKE_SSH = """#!/bin/sh
grep -qxF "$KEY_LINE" "$KNOWN_HOSTS" || echo "$KEY_LINE" >> "$KNOWN_HOSTS"
exit "$CODE"
"""


def test_a_key_pinned_on_first_contact_is_announced_once_even_when_the_login_then_fails(
    tmp_path: Path,
) -> None:
    key = generate_key(tmp_path / "host")
    fake_ssh = tmp_path / "fake-ssh"
    fake_ssh.write_text(FAKE_SSH)
    fake_ssh.chmod(0o755)
    known_hosts = tmp_path / "data" / "known_hosts"
    env = {"KEY_LINE": "[127.0.0.1]:2222 " + " ".join(key.with_suffix(".pub").read_text().split()[:2]),
           "KNOWN_HOSTS": str(known_hosts), "CODE": "255", "PATH": "/usr/bin:/bin"}  # fmt: skip
    lines: list[str] = []
    settings = SshSettings(known_hosts, tmp_path / "control", accept_new_host_key=True, announce=lines.append,
                           ssh_binary=str(fake_ssh), env=env)  # fmt: skip
    ssh = Ssh(SshTarget("127.0.0.1", 2222, name="vpn-nl"), settings)
    with pytest.raises(HostUnreachable):
        ssh.run(["true"])
    assert lines == [f"vpn-nl: new host key 127.0.0.1:2222 {fingerprint(key)} recorded in {known_hosts}"]
    env["CODE"] = "0"
    ssh.run(["true"])
    ssh.run(["true"])
    assert len(lines) == 1
