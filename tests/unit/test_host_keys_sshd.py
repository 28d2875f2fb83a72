"""Host keys through the real CLI, ssh and a real sshd on 127.0.0.1 (on another port than 22, so ssh files the key
as `[127.0.0.1]:PORT`): first contact prints the pinned fingerprint, a replaced key is refused with the exact
`ssh-keygen -R` command, and once that command ran, the new key is pinned like a first contact."""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.conftest import missing_tool
from tests.support.cli import run_cli
from tests.support.procs import Processes
from tests.support.sshd import SSHD, LoopbackSshd, fingerprint


@pytest.fixture
def sshd(tmp_path: Path) -> Iterator[LoopbackSshd]:
    if not SSHD.is_file():
        missing_tool(f"{SSHD} not found: install openssh-server (.ci/install-tools does)")
    procs = Processes(tmp_path)
    try:
        yield LoopbackSshd(tmp_path / "sshd", procs)
    finally:
        procs.stop_all()


@pytest.fixture
def data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], sshd: LoopbackSshd
) -> Iterator[Path]:
    """A state with server vpn-nl at the loopback sshd; ssh reads no user config and multiplexes in a folder of
    the test's own (a short path: the socket's must fit)."""
    runtime = Path(tempfile.mkdtemp(prefix="ovpn-hk-", dir="/tmp"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    monkeypatch.setenv("OVPN_SSH_CONFIG", "/dev/null")
    monkeypatch.setenv("OVPN_DATA_DIR", str(tmp_path / "state"))
    code, _, err = run_cli(capsys, "server", "add", "--name", "vpn-nl", "--role", "vpn", "--host", "127.0.0.1",
                           "--ssh-port", str(sshd.port), "--ssh-user", sshd.user,
                           "--ssh-identity", str(sshd.client_key))  # fmt: skip
    assert code == 0, err
    try:
        yield tmp_path / "state"
    finally:
        shutil.rmtree(runtime, ignore_errors=True)


def pin(capsys: pytest.CaptureFixture[str]) -> list[str]:
    """`ovpn doctor vpn-nl --accept-new-host-key --json`: its stderr lines, once its stdout proved to be only JSON
    and its SSH check passed."""
    _, out, err = run_cli(capsys, "doctor", "vpn-nl", "--accept-new-host-key", "--json")
    checks = {c["name"]: c for c in json.loads(out)["checks"]}
    assert checks["ssh"]["status"] == "pass", checks["ssh"]
    return err.splitlines()


def test_a_first_contact_pins_and_a_replaced_key_is_refused_with_the_command_that_clears_it(
    sshd: LoopbackSshd, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    known_hosts = data_dir / "known_hosts"
    where = f"vpn-nl (127.0.0.1:{sshd.port})"
    first, second = sshd.host_key("first"), sshd.host_key("second")
    sshd.start(first)

    code, _, err = run_cli(capsys, "server", "status", "vpn-nl")
    assert code == 1
    assert err.splitlines()[0] == f"error: the host key of {where} is not known: refusing to connect"
    assert "pin it with `ovpn doctor vpn-nl --accept-new-host-key` and run again" in err.splitlines()[1]

    new_key = f"vpn-nl: new host key 127.0.0.1:{sshd.port} {{}} recorded in {known_hosts}"
    assert new_key.format(fingerprint(first)) in pin(capsys)
    assert not [line for line in pin(capsys) if "new host key" in line]  # pinned once

    sshd.start(second)
    code, _, err = run_cli(capsys, "deploy", "vpn-nl", "--plan", "--accept-new-host-key")
    assert code == 1
    removal = f"ssh-keygen -f {shlex.quote(str(known_hosts))} -R '[127.0.0.1]:{sshd.port}'"
    assert err.splitlines()[:2] == [
        f"error: the host key of {where} changed: the host now offers {fingerprint(second)}; refusing to connect",
        f"hint: if the server was reinstalled, verify its new key out of band, remove the old one with "
        f"`{removal}`, then run again with --accept-new-host-key",
    ]
    code, _, err = run_cli(capsys, "server", "status", "vpn-nl")
    assert err.splitlines()[1].endswith(
        f"`{removal}`, then pin it with `ovpn doctor vpn-nl --accept-new-host-key` and run again"
    )

    subprocess.run(shlex.split(removal), check=True, capture_output=True)
    assert new_key.format(fingerprint(second)) in pin(capsys)
