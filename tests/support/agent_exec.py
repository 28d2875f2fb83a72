"""A stand-in for the SSH connection to a host, for the one command `ovpn.ops.agent_client` sends: `docker exec -i
ovpn-agent python3 -c SCRIPT METHOD PATH`. It runs that same script here, against a real agent on loopback, so
a CLI command that talks to an agent runs end to end without SSH or Docker."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence

from ovpn.core.names import AGENT_CONTAINER, AGENT_PORT
from ovpn.remote.base import RemoteResult

EXEC_PREFIX = ("docker", "exec", "-i", AGENT_CONTAINER, "python3", "-c")


class LocalAgentExec:
    def __init__(self, agent_port: int, token: str) -> None:
        self.agent_port = agent_port
        self.token = token
        self.calls: list[tuple[str, ...]] = []

    def __enter__(self) -> LocalAgentExec:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def run(
        self,
        argv: Sequence[str],
        *,
        sudo: bool = False,
        input: bytes | None = None,
        timeout: float | None = None,
        check: bool = True,
    ) -> RemoteResult:
        if tuple(argv[: len(EXEC_PREFIX)]) != EXEC_PREFIX:
            raise AssertionError(f"not an agent call: {argv}")
        script, *args = argv[len(EXEC_PREFIX) :]
        here = script.replace(f"127.0.0.1:{AGENT_PORT}", f"127.0.0.1:{self.agent_port}")
        self.calls.append(tuple(args))
        proc = subprocess.run(
            [sys.executable, "-c", here, *args], input=input or b"", capture_output=True, timeout=timeout or 60,
            env={**os.environ, "OVPN_AGENT_TOKEN": self.token}, check=False,
        )  # fmt: skip
        return RemoteResult(tuple(argv), proc.returncode, proc.stdout, proc.stderr)
