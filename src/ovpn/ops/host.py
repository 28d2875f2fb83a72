"""One server's host as ovpn sees it: the runtime layout under /opt and the Compose project, over a `Remote`."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

from ovpn.core.model import Server
from ovpn.core.names import (
    BOT_SERVICE,
    BOT_TOKEN_FILE,
    OWNER_ENV_VARIABLE,
    PROJECT,
    RELEASE_MARKER,
    RUNTIME_DIR,
)
from ovpn.errors import OvpnError
from ovpn.facts import release
from ovpn.facts.base import gather
from ovpn.facts.compose import Container, compose_argv, containers_of, logs_tail, services
from ovpn.facts.release import LiveRelease, UnreadableMarker
from ovpn.ops.app import App
from ovpn.ops.locks import operation_lock
from ovpn.remote.base import Remote, SshTarget
from ovpn.remote.host_keys import RERUN_WITH_OPTION, pin_with_doctor
from ovpn.remote.ssh import Ssh, default_settings


def connect(app: App, server: Server, *, accept_new_host_key: bool | None = None) -> Ssh:
    """The server's SSH connection. `accept_new_host_key` is what the operator gave to a command that takes
    --accept-new-host-key, and None for a command that does not: its host-key hints name doctor's instead."""
    target = SshTarget(server.host, server.ssh_port, server.ssh_user, server.ssh_identity, server.name)
    settings = default_settings(
        app.data_dir,
        accept_new_host_key=bool(accept_new_host_key),
        pin_advice=RERUN_WITH_OPTION if accept_new_host_key is not None else pin_with_doctor(server.name),
        announce=app.note,
    )
    return Ssh(target, settings)


@contextlib.contextmanager
def locked(
    app: App, server: Server, operation: str, *, accept_new_host_key: bool | None = None
) -> Iterator[Ssh]:
    """A connection to a host that this operation alone changes: the server's lock, locally and on the host,
    is held until the block ends (`ovpn.ops.locks`)."""
    with (
        connect(app, server, accept_new_host_key=accept_new_host_key) as ssh,
        operation_lock(app.data_dir, ssh, server.name, operation),
    ):
        yield ssh


class Host:
    """Commands against one host's runtime. Every path and argument is passed as a list, never as shell text."""

    def __init__(self, ssh: Remote, server: Server) -> None:
        self.ssh = ssh
        self.server = server

    def compose(
        self, args: Sequence[str], *, directory: str = RUNTIME_DIR, monitoring: bool = False
    ) -> list[str]:
        return compose_argv(args, directory=directory, monitoring=monitoring)

    def live_release(self) -> LiveRelease | None:
        try:
            return gather(self.ssh, release.live_release())
        except UnreadableMarker as e:
            raise OvpnError(
                f"{RUNTIME_DIR}/{RELEASE_MARKER} on {self.server.name} is unreadable ({e})",
                "the runtime was changed by hand; redeploy with `ovpn deploy --force`",
            ) from None

    def monitoring_running(self) -> bool:
        result = self.ssh.run(
            ["docker", "ps", "--filter", f"label=com.docker.compose.project={PROJECT}",
             "--filter", "label=com.docker.compose.service=prometheus", "--format", "{{.ID}}"],
            sudo=True, check=False, timeout=30,
        )  # fmt: skip
        return result.ok and bool(result.text.strip())

    def bot_configured(self) -> bool:
        """Whether the live release has a Telegram bot token and an owner id (the bot runs only then: a token
        left behind on a host whose bot is no longer set up does not start a bot without an owner)."""
        has_token = self.ssh.run(
            ["test", "-s", f"{RUNTIME_DIR}/{BOT_TOKEN_FILE}"], sudo=True, check=False, timeout=30
        ).ok
        return has_token and self.ssh.run(
            ["grep", "-qE", f"^{OWNER_ENV_VARIABLE}=[1-9][0-9]*$", f"{RUNTIME_DIR}/.env"],
            sudo=True, check=False, timeout=30,
        ).ok  # fmt: skip

    def monitoring_up_args(self, *, monitoring: bool) -> list[str]:
        """Extra `docker compose up` arguments wherever the monitoring file is included: the bot at scale 0
        while its token is empty (deploy, rollback and restore; `monitor up` names its services and leaves the
        bot out instead)."""
        return bot_scale(self.bot_configured()) if monitoring else []

    def compose_services(self, *, monitoring: bool = False) -> list[dict[str, object]]:
        """`docker compose ps` as records."""
        return gather(self.ssh, services(monitoring=monitoring))

    def containers(self, *, monitoring: bool = False) -> dict[str, Container]:
        """service -> its container."""
        return containers_of(self.compose_services(monitoring=monitoring))

    def logs_tail(self, service: str, lines: int, *, monitoring: bool = False) -> str:
        return gather(self.ssh, logs_tail(service, lines, monitoring=monitoring))


def bot_scale(configured: bool) -> list[str]:
    return [] if configured else ["--scale", f"{BOT_SERVICE}=0"]
