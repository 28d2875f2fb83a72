"""ovpn's SSH files are its own: the ControlMaster folder (whose sockets carry every command and the secrets sent
on stdin) and the data dir's known_hosts, whatever another local user or the umask did first."""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from ovpn.errors import OvpnError
from ovpn.remote.base import SshTarget
from ovpn.remote.ssh import (
    CONTROL_NAME_LENGTH,
    MAX_SOCKET_PATH,
    Ssh,
    SshSettings,
    control_dir,
    default_settings,
)

TARGET = SshTarget("vpn-1.example.net")


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def settings(tmp_path: Path, control: Path) -> SshSettings:
    return SshSettings(known_hosts=tmp_path / "data" / "known_hosts", control_dir=control)


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_a_new_control_folder_is_created_private(tmp_path: Path, umask_022: None) -> None:
    control = tmp_path / "ovpn-ssh"
    Ssh(TARGET, settings(tmp_path, control))
    assert mode(control) == 0o700 and os.lstat(control).st_uid == os.geteuid()
    Ssh(TARGET, settings(tmp_path, control))  # and accepted the next time


def test_a_control_folder_open_to_others_is_refused(tmp_path: Path) -> None:
    control = tmp_path / "ovpn-ssh"
    control.mkdir()
    control.chmod(0o777)
    with pytest.raises(OvpnError, match="open to other users") as refused:
        Ssh(TARGET, settings(tmp_path, control))
    assert "\n" not in refused.value.message and refused.value.hint
    assert mode(control) == 0o777  # refused, not repaired: someone else may already sit in it


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a folder to another user needs root")
def test_a_control_folder_of_another_user_is_refused(tmp_path: Path) -> None:
    control = tmp_path / "ovpn-ssh"
    control.mkdir(mode=0o700)
    os.chown(control, 65534, 65534)
    with pytest.raises(OvpnError, match="belongs to another user"):
        Ssh(TARGET, settings(tmp_path, control))


@pytest.mark.parametrize("kind", ["symlink", "file"])
def test_a_control_path_that_is_not_a_real_folder_is_refused(tmp_path: Path, kind: str) -> None:
    """A symlink to a private folder of ours is refused too: its owner could point it elsewhere later."""
    control = tmp_path / "ovpn-ssh"
    if kind == "symlink":
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir(mode=0o700)
        control.symlink_to(elsewhere)
    else:
        control.write_text("")
    with pytest.raises(OvpnError, match="is not a folder"):
        Ssh(TARGET, settings(tmp_path, control))


def test_known_hosts_is_created_0600_before_ssh_writes_to_it(tmp_path: Path, umask_022: None) -> None:
    """With accept-new, ssh appends a new host's key to the first UserKnownHostsFile and would create it 0644."""
    ssh = Ssh(TARGET, settings(tmp_path, tmp_path / "ovpn-ssh"))
    assert ssh.settings.known_hosts.read_bytes() == b""
    assert mode(ssh.settings.known_hosts) == 0o600


def test_an_existing_readable_known_hosts_is_tightened_and_kept(tmp_path: Path, umask_022: None) -> None:
    known_hosts = tmp_path / "data" / "known_hosts"
    known_hosts.parent.mkdir()
    known_hosts.write_text("vpn-1.example.net ssh-ed25519 AAAA\n")
    known_hosts.chmod(0o644)
    Ssh(TARGET, settings(tmp_path, tmp_path / "ovpn-ssh"))
    assert mode(known_hosts) == 0o600
    assert known_hosts.read_text() == "vpn-1.example.net ssh-ed25519 AAAA\n"


def test_the_control_folder_leaves_room_for_the_socket_name(tmp_path: Path) -> None:
    with tempfile.TemporaryDirectory(dir="/tmp", prefix="run") as runtime:
        assert control_dir({"XDG_RUNTIME_DIR": runtime}) == Path(runtime) / "ovpn-ssh"
    too_long = tmp_path / ("x" * 60)
    too_long.mkdir()
    chosen = control_dir({"XDG_RUNTIME_DIR": str(too_long)})
    assert chosen.name == f"ovpn-ssh-{os.geteuid()}"
    assert len(os.fsencode(chosen)) + CONTROL_NAME_LENGTH <= MAX_SOCKET_PATH
    assert default_settings(tmp_path).known_hosts == tmp_path / "known_hosts"
