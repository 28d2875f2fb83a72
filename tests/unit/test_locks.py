"""One operation per host: the local lock, the host lock's script, and what a refused operation says."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.support.fake_remote import Reply, ScriptedRemote

from ovpn.ops import locks
from ovpn.ops.locks import OperationLocked, Owner, hold_host, local_lock, operation_lock
from ovpn.remote.base import RemoteResult, SshTarget
from ovpn.remote.ssh import Ssh, SshSettings

HOLDER = """
import sys, time
from pathlib import Path
from ovpn.ops.locks import local_lock
with local_lock(Path(sys.argv[1]), "vpn-nl", "deploy"):
    print("held", flush=True)
    sys.stdin.read()
"""


@pytest.fixture
def other_process(tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    """Another ovpn process of the same data directory, holding vpn-nl's local lock until its stdin closes."""
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert proc.stdout is not None
    assert proc.stdout.readline() == "held\n"
    yield proc
    assert proc.stdin is not None
    proc.stdin.close()
    proc.wait(timeout=30)


def test_a_second_operation_of_the_same_data_dir_is_refused_naming_the_holder(
    tmp_path: Path, other_process: subprocess.Popen[str]
) -> None:
    with pytest.raises(OperationLocked) as refused, local_lock(tmp_path, "vpn-nl", "user add"):
        pass
    holder = Owner.me("deploy")
    first_line = refused.value.message.splitlines()[0]
    assert first_line.startswith(f"vpn-nl is busy: deploy by {holder.by} (pid {other_process.pid}) since ")
    assert first_line.endswith(" UTC")
    assert str(tmp_path / "locks" / "vpn-nl.lock") in refused.value.hint


def test_the_local_lock_frees_with_its_process_and_other_servers_are_free(
    tmp_path: Path, other_process: subprocess.Popen[str]
) -> None:
    with local_lock(tmp_path, "vpn-de", "deploy"):
        pass
    assert other_process.stdin is not None
    other_process.stdin.close()
    other_process.wait(timeout=30)
    with local_lock(tmp_path, "vpn-nl", "deploy"):
        pass


def test_the_local_lock_is_reentrant_in_one_process_and_free_afterwards(tmp_path: Path) -> None:
    with local_lock(tmp_path, "vpn-nl", "server init"), local_lock(tmp_path, "vpn-nl", "deploy"):
        record = json.loads((tmp_path / "locks" / "vpn-nl.lock").read_text())
        assert record["operation"] == "server init"
    probe = subprocess.run([sys.executable, "-c", HOLDER, str(tmp_path)], input="", capture_output=True,
                           text=True, timeout=60, check=False)  # fmt: skip
    assert probe.returncode == 0 and probe.stdout == "held\n", probe.stderr


def _host_script(lock_dir: Path, operation: str) -> subprocess.Popen[str]:
    owner = Owner(
        "deploy" if operation == "first" else operation, "alice@laptop", 4242, "2026-12-03T17:05:01Z"
    )
    argv = ["sh", "-c", locks._HOLD_SCRIPT, "sh", str(lock_dir), str(lock_dir / ".ovpn.lock"),
            str(lock_dir / "owner.json"), owner.to_json()]  # fmt: skip
    return subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def test_the_host_script_holds_until_its_input_ends_and_refuses_a_second_with_75(tmp_path: Path) -> None:
    """The script that runs on the host, run here with real flock(1): the first holds, the second gets 75."""
    lock_dir = tmp_path / "releases"
    first = _host_script(lock_dir, "first")
    assert first.stdout is not None and first.stdout.readline() == "locked\n"
    second = _host_script(lock_dir, "restore")
    assert second.wait(timeout=30) == locks.BUSY_EXIT
    owner = Owner.parse((lock_dir / "owner.json").read_text())
    assert owner == Owner("deploy", "alice@laptop", 4242, "2026-12-03T17:05:01Z")
    assert first.stdin is not None
    first.stdin.close()
    assert first.wait(timeout=30) == 0
    third = _host_script(lock_dir, "restore")
    assert third.stdout is not None and third.stdout.readline() == "locked\n"
    assert third.stdin is not None
    third.stdin.close()
    third.wait(timeout=30)


OWNER = '{"by": "alice@laptop", "operation": "restore", "pid": 4242, "since": "2026-12-03T17:05:01Z"}\n'


def test_a_host_held_by_another_operator_is_refused_with_who_what_and_since() -> None:
    remote = ScriptedRemote().on(locks.HOST_LOCK, reply=Reply(code=75)).on("cat", locks.HOST_LOCK_OWNER,
                                                                   reply=Reply(OWNER))  # fmt: skip
    with pytest.raises(OperationLocked) as refused:
        hold_host(remote, "vpn-nl", "deploy")
    assert (
        refused.value.message
        == "vpn-nl is busy: restore by alice@laptop (pid 4242) since 2026-12-03 17:05:01 UTC"
    )
    assert f"{locks.HOST_LOCK} on the host" in refused.value.hint


def test_an_unreadable_owner_record_still_refuses() -> None:
    remote = ScriptedRemote().on(locks.HOST_LOCK, reply=Reply(code=75)).on("cat", reply=Reply(code=1))
    with pytest.raises(OperationLocked) as refused:
        hold_host(remote, "vpn-nl", "deploy")
    assert refused.value.message == "vpn-nl is busy: another operation (its owner record is unreadable)"


def test_a_nested_operation_takes_the_host_once_and_releases_it_at_the_end(tmp_path: Path) -> None:
    remote = ScriptedRemote().on(locks.HOST_LOCK, reply=Reply("locked\n"))
    with operation_lock(tmp_path, remote, "vpn-nl", "server init"):
        with operation_lock(tmp_path, remote, "vpn-nl", "deploy"):
            assert len(remote.ran(locks.HOST_LOCK)) == 1
        assert remote.released == []
    assert len(remote.released) == 1
    owner = Owner.parse(remote.ran(locks.HOST_LOCK)[0][-1])
    assert owner is not None and owner.operation == "server init"


def test_a_failing_lock_command_is_an_error_not_a_hold(tmp_path: Path) -> None:
    remote = ScriptedRemote().on(locks.HOST_LOCK, reply=Reply(stderr="sudo: a password is required", code=1))
    with (
        pytest.raises(Exception, match="sudo: a password is required"),
        operation_lock(tmp_path, remote, "vpn-nl", "deploy"),
    ):
        pass
    with local_lock(tmp_path, "vpn-nl", "deploy"):  # the local lock was given back
        pass


def test_ssh_hold_keeps_a_command_until_released_and_a_quick_refusal_is_never_a_timeout(
    tmp_path: Path,
) -> None:
    """`Ssh.hold` through an `ssh` that runs the remote command here: a command that says it is ready stays
    running until released; one that exits at once (a busy lock, 75) comes back as its result every time, even
    when its output ends before the process is reaped."""
    fake = tmp_path / "ssh"
    fake.write_text('#!/bin/sh\nfor last; do :; done\nexec sh -c "$last"\n')
    fake.chmod(0o755)
    settings = SshSettings(known_hosts=tmp_path / "known_hosts", control_dir=tmp_path / "control",
                           ssh_binary=str(fake))  # fmt: skip
    with Ssh(SshTarget("vpn-nl.test"), settings) as ssh:
        marker = tmp_path / "released"
        held = ssh.hold(["sh", "-c", f"echo locked; cat > /dev/null; touch {marker}"], ready="locked")
        assert not isinstance(held, RemoteResult)
        assert not marker.exists()
        held.release()
        assert marker.exists()
        for _ in range(30):
            refused = ssh.hold(["sh", "-c", "exit 75"], ready="locked", timeout=30)
            assert isinstance(refused, RemoteResult) and refused.returncode == locks.BUSY_EXIT
