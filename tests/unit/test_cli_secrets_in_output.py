"""No command prints a secret unless asked (`--reveal-secrets`): every command of the tree runs on a seeded fleet
and its output (stdout and stderr) is searched for every secret the fleet holds.

The secrets: each server's REALITY private key, each relay UUID, each value sealed in `server_secrets` (the agent's
and the bot's webhook tokens), `secret.key`, and a Telegram bot token handed to `telegram-setup`. A user's UUID is
that user's credential: commands of the `user` group show it for the user they are asked about (it is in the
user's link anyway); every other command must not print it.

The command tree is walked from the real click group: a new command without a row in RUNS (tests/support/
cli_secrets.py) fails the test. The commands that run the external validators are searched in tests/integration.
Commands that need a host run against a server on a closed loopback port, with the real `ssh`: they fail to
connect, and what they print on the way is searched too.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.support.cli_secrets import RUNS, assert_no_secret_printed, leaf_commands, make_fleet, rows


@pytest.fixture
def fleet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Path:
    return make_fleet(tmp_path, monkeypatch, capsys)


def test_every_command_has_a_row() -> None:
    covered = {path[:-1] for path in RUNS}
    assert leaf_commands() - covered == set(), "add a row to RUNS for each new command"
    assert covered - leaf_commands() == set(), "RUNS names a command that no longer exists"


def test_no_command_prints_a_secret(fleet: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Every command but those that run the external validators (tests/integration runs those)."""
    assert_no_secret_printed(fleet, capsys, rows(validating=False))
