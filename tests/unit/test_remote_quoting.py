"""No value can inject shell syntax into a remote command: a real POSIX shell sees exactly the arguments given."""

import shlex
import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ovpn.remote.base import SshTarget
from ovpn.remote.ssh import classify_ssh_failure, remote_command

argument = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\x00"), max_size=40)


def words_seen_by_sh(command: str) -> list[str]:
    """What /bin/sh (dash here, like on Debian hosts) passes to a program for this command line."""
    out = subprocess.run(["sh", "-c", f"printf '%s\\0' {command}"], capture_output=True, check=True).stdout
    return out.decode().split("\0")[:-1]


@settings(max_examples=60, deadline=None)
@given(st.lists(argument, min_size=1, max_size=5))
def test_the_remote_shell_sees_exactly_the_given_arguments(argv: list[str]) -> None:
    assert words_seen_by_sh(shlex.join(argv)) == argv
    assert shlex.split(remote_command(argv)) == argv


@pytest.mark.parametrize(
    "hostile", ["$(reboot)", "`id`", "a; rm -rf /", "x' || 'y", "--help", "*", "a\nb", "~root"]
)
def test_hostile_values_stay_single_arguments(hostile: str) -> None:
    assert words_seen_by_sh(shlex.join(["cat", hostile])) == ["cat", hostile]


def test_sudo_and_timeout_wrap_the_command() -> None:
    assert shlex.split(remote_command(["docker", "ps"], sudo=True, timeout=30)) == [
        "sudo", "-n", "--", "timeout", "--kill-after=5", "30", "docker", "ps",
    ]  # fmt: skip


TARGET = SshTarget("203.0.113.10", 22, "deploy")


@pytest.mark.parametrize(
    ("stderr", "expected"),
    [
        ("@@@@@@@\n@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\n", "changed:"),
        (
            "No ED25519 host key is known for 203.0.113.10 and you have requested strict checking.\n"
            "Host key verification failed.",
            "is not known",
        ),
        ("deploy@203.0.113.10: Permission denied (publickey).", "authentication"),
        ("ssh: connect to host 203.0.113.10 port 22: Connection timed out", "cannot reach"),
        ("ssh: connect to host 203.0.113.10 port 22: Connection refused", "cannot reach"),
        ("ssh: Could not resolve hostname nowhere: Name or service not known", "cannot resolve"),
    ],
)
def test_ssh_failures_become_one_line_with_a_hint(stderr: str, expected: str) -> None:
    error = classify_ssh_failure(TARGET, stderr)
    assert expected in error.message and error.hint and "\n" not in error.message
