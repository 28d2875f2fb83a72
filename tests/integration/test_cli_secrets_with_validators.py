"""No command that runs the external validators (`config validate`, `demo`) prints a secret: the rows of
tests/support/cli_secrets.py that tests/unit/test_cli_secrets_in_output.py leaves out, run with the real xray,
haproxy, promtool, amtool and docker compose, whose output is searched too."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.support.cli_secrets import assert_no_secret_printed, make_fleet, rows

pytestmark = pytest.mark.integration


def test_no_validating_command_prints_a_secret(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tools_env: dict[str, str],
    xray_binary: Path,
    agent_wheels: Path,
) -> None:
    monkeypatch.setenv("PATH", tools_env["PATH"])
    fleet = make_fleet(tmp_path, monkeypatch, capsys)
    assert_no_secret_printed(fleet, capsys, rows(validating=True))
