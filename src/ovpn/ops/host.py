"""One server's host as ovpn sees it over SSH: the runtime layout under /opt and the Compose project."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from ovpn.core.model import Server
from ovpn.errors import OvpnError
from ovpn.ops.app import App
from ovpn.remote.ssh import Ssh, SshTarget, default_settings

RUNTIME_DIR = "/opt/ovpn"
RELEASES_DIR = "/opt/ovpn-releases"
BACKUP_DIR = "/opt/ovpn-backups"
RELEASE_MARKER = ".ovpn-release.json"
MAIN_COMPOSE = "docker-compose.yml"
MONITORING_COMPOSE = "docker-compose.monitoring.yml"
PROJECT = "ovpn"
BOT_SERVICE = "ovpn-telegram-bot"
# Kept across deploys; the bot runs only when it is not empty and `.env` names an owner.
BOT_TOKEN_FILE = "monitoring/secrets/telegram_bot_token"  # noqa: S105 - a path, not a token
OWNER_ENV_VARIABLE = "OVPN_TELEGRAM_OWNER_USER_ID"


def connect(app: App, server: Server, *, accept_new_host_key: bool = False) -> Ssh:
    target = SshTarget(server.host, server.ssh_port, server.ssh_user, server.ssh_identity)
    return Ssh(target, default_settings(app.data_dir, accept_new_host_key=accept_new_host_key))


@dataclass(frozen=True)
class LiveRelease:
    revision: str
    bundle_sha256: str
    directory: str


class Host:
    """Commands against one host's runtime. Every path and argument is passed as a list, never as shell text."""

    def __init__(self, ssh: Ssh, server: Server) -> None:
        self.ssh = ssh
        self.server = server

    def compose(
        self, args: Sequence[str], *, directory: str = RUNTIME_DIR, monitoring: bool = False
    ) -> list[str]:
        files = [MAIN_COMPOSE, MONITORING_COMPOSE] if monitoring else [MAIN_COMPOSE]
        argv = ["docker", "compose", "--project-name", PROJECT, "--project-directory", directory]
        for name in files:
            argv += ["-f", f"{directory}/{name}"]
        return [*argv, *args]

    def live_release(self) -> LiveRelease | None:
        result = self.ssh.run(["cat", f"{RUNTIME_DIR}/{RELEASE_MARKER}"], sudo=True, check=False, timeout=30)
        if not result.ok:
            return None
        try:
            doc = json.loads(result.text)
            target = self.ssh.run(["readlink", "-f", RUNTIME_DIR], sudo=True, timeout=30).text.strip()
            return LiveRelease(str(doc["revision"]), str(doc["bundle_sha256"]), target)
        except (ValueError, KeyError) as e:
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
        """`docker compose ps` as records (Compose prints a JSON array or one object per line by version)."""
        result = self.ssh.run(self.compose(["ps", "--all", "--format", "json"], monitoring=monitoring), sudo=True,
                              timeout=60)  # fmt: skip
        text = result.text.strip()
        if not text:
            return []
        if text.startswith("["):
            return list(json.loads(text))
        return [json.loads(line) for line in text.splitlines() if line.strip()]


def bot_scale(configured: bool) -> list[str]:
    return [] if configured else ["--scale", f"{BOT_SERVICE}=0"]
