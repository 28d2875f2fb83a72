"""`ovpn server monitor telegram-setup`: give a server's bot its token and recipients, start it, prove delivery.

The token goes only to the host's secret file (mode 0600, kept by every deploy), over SSH's stdin; it is never
written to the state, a command line or the output. Each run also makes the bot a new webhook token (see
ovpn.ops.bot_webhook), which the deploy renders for Alertmanager and the bot. The owner and notify chats are desired state: they reach
the host's `.env` through a deploy. The proof is end to end: the bot on the host relays a test event and its
outbox must drain while Telegram answers, so a host that cannot reach Telegram is reported here, not later.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from ovpn.core.model import Server, TelegramSettings
from ovpn.core.names import BOT_PORT, BOT_SERVICE, BOT_TOKEN_FILE, RUNTIME_DIR
from ovpn.errors import OvpnError
from ovpn.ops import bot_webhook, monitor
from ovpn.ops.app import App
from ovpn.ops.deploy import DeployOptions, DeployResult, deploy
from ovpn.ops.host import Host, connect, locked
from ovpn.render.monitoring.spec import WEBHOOK_TOKEN_BOT_MOUNT

Progress = Callable[[str], None]
TOKEN = re.compile(r"^[0-9]{3,20}:[A-Za-z0-9_-]{30,100}\Z")
DELIVERY_TIMEOUT_SECONDS = 60
# Runs inside the bot's container (its image has Python; the host may have no HTTP client): one request to the
# bot's own HTTP API with the webhook token read from the bot's own mount (never on a command line), printing
# the JSON answer. $1 method, $2 path, $3 body ('' for none).
_REQUEST = (
    "import sys, urllib.request\n"
    "method, path, body = sys.argv[1:4]\n"
    f"token = open({WEBHOOK_TOKEN_BOT_MOUNT!r}).read().strip()\n"
    f"request = urllib.request.Request('http://127.0.0.1:{BOT_PORT}' + path, method=method,\n"
    "    data=body.encode() or None,\n"
    "    headers={'Content-Type': 'application/json', 'Authorization': 'Bearer ' + token})\n"
    "print(urllib.request.urlopen(request, timeout=10).read().decode())\n"
)


@dataclass
class SetupResult:
    server: str
    owner_user_id: int
    notify_chat_ids: tuple[int, ...]
    deploy_result: DeployResult
    delivered: bool

    def to_json(self) -> dict[str, object]:
        return {
            "server": self.server,
            "owner_user_id": self.owner_user_id,
            "notify_chat_ids": list(self.notify_chat_ids),
            "deploy": self.deploy_result,
            "test_message_delivered": self.delivered,
        }


def read_token(path: Path) -> str:
    try:
        token = path.read_text().strip()
    except OSError as e:
        raise OvpnError(
            f"cannot read the token file {path}: {e.strerror}", "give the file BotFather's token is in"
        ) from None
    if not TOKEN.match(token):
        raise OvpnError(
            f"{path} does not hold a Telegram bot token",
            "the file must contain only the token BotFather gave you (digits, a colon, then letters and digits)",
        )
    return token


def parse_chat_ids(text: str) -> tuple[int, ...]:
    chats: list[int] = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        if not re.fullmatch(r"-?[0-9]{1,20}", item) or int(item) == 0:
            raise OvpnError(
                f"invalid chat id {item!r} in --notify-chat-ids", "give numeric chat ids, comma-separated"
            )
        if int(item) not in chats:
            chats.append(int(item))
    return tuple(chats)


def check_settings(settings: TelegramSettings) -> None:
    if settings.owner_user_id <= 0:
        raise OvpnError(
            f"invalid --owner-user-id {settings.owner_user_id}",
            "your numeric Telegram user id (a positive number)",
        )
    if settings.api_base_url:
        parts = urlsplit(settings.api_base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
            raise OvpnError(
                f"invalid --api-base-url {settings.api_base_url!r}",
                "the root of a Bot API server, e.g. https://bot-api.example.net (without /bot<token>)",
            )


def _bot_request(host: Host, method: str, path: str, body: str = "") -> dict[str, object]:
    result = host.ssh.run(
        ["docker", "exec", BOT_SERVICE, "python3", "-c", _REQUEST, method, path, body], sudo=True, timeout=30,
        check=False,
    )  # fmt: skip
    if not result.ok:
        raise OvpnError(
            f"the bot on {host.server.name} did not answer {method} {path}: {result.error_text.strip()[-300:]}",
            f"see `ovpn server logs {host.server.name} --service {BOT_SERVICE}`",
        )
    answer = json.loads(result.text)
    if not isinstance(answer, dict):
        raise OvpnError(
            f"the bot on {host.server.name} answered {path} with {answer!r}", "this is a bug in ovpn"
        )
    return answer


def _await_delivery(host: Host, progress: Progress, timeout: float) -> dict[str, object]:
    """Poll the bot's /health (bounded) until its outbox is empty and Telegram answered; the last document."""
    deadline = time.monotonic() + timeout
    while True:
        health = _bot_request(host, "GET", "/health")
        if health.get("pending_messages") == 0 and health.get("telegram") == "reachable":
            return health
        if time.monotonic() > deadline:
            return health
        progress(
            f"waiting for delivery: telegram {health.get('telegram')}, {health.get('pending_messages')} pending"
        )
        time.sleep(2)


def telegram_setup(
    app: App,
    name: str,
    token: str,
    settings: TelegramSettings,
    pull: str,
    progress: Progress,
    *,
    accept_new_host_key: bool = False,
    delivery_timeout: float = DELIVERY_TIMEOUT_SECONDS,
) -> SetupResult:
    check_settings(settings)
    with app.reading() as repo:
        server = repo.server(name)
    # One lock over the whole setup: the deploy and `monitor up` it runs take the same lock again.
    with locked(app, server, "telegram setup", accept_new_host_key=accept_new_host_key):
        return _setup(app, server, token, settings, pull, progress, accept_new_host_key, delivery_timeout)


def _setup(
    app: App,
    server: Server,
    token: str,
    settings: TelegramSettings,
    pull: str,
    progress: Progress,
    accept_new_host_key: bool,
    delivery_timeout: float,
) -> SetupResult:
    name = server.name
    with connect(app, server, accept_new_host_key=accept_new_host_key) as ssh:
        host = Host(ssh, server)
        if host.live_release() is None:
            raise OvpnError(f"{name} has no live release yet", f"ovpn server init {name}")
        progress(f"writing the bot token to {RUNTIME_DIR}/{BOT_TOKEN_FILE} (mode 0600)")
        ssh.write_file(f"{RUNTIME_DIR}/{BOT_TOKEN_FILE}", token.encode() + b"\n", mode=0o600)
    with app.writing() as repo:
        repo.set_telegram(name, settings)
        # A new webhook token every time: the deploy below gives it to Alertmanager and the bot together.
        bot_webhook.rotate(repo, name)
    outcome = deploy(app, name, DeployOptions(pull=pull, accept_new_host_key=accept_new_host_key), progress)
    with connect(app, server) as ssh:
        # A bot from an earlier token must not linger: monitor up creates it afresh with the new one.
        argv = Host(ssh, server).compose(["rm", "--stop", "--force", BOT_SERVICE], monitoring=True)
        ssh.run(argv, sudo=True, timeout=120, check=False)
    monitor.up(app, name, pull, progress)
    with connect(app, server) as ssh:
        host = Host(ssh, server)
        progress("asking the bot to send a test message")
        event = {"kind": "test", "server": name, "message": "telegram-setup: this server's bot can reach you"}
        _bot_request(host, "POST", "/events", json.dumps(event))
        health = _await_delivery(host, progress, delivery_timeout)
    if health.get("pending_messages") != 0 or health.get("telegram") != "reachable":
        raise OvpnError(
            f"the bot on {name} runs but could not deliver the test message "
            f"(telegram {health.get('telegram')}: {json.dumps(health.get('telegram_detail'))})",
            "check that the host reaches the Bot API (firewall, DNS; OVPN_TELEGRAM_API_FALLBACK_IPS) and that the "
            "owner has sent /start to the bot; the bot keeps retrying",
        )
    return SetupResult(name, settings.owner_user_id, settings.notify_chat_ids, outcome.result, True)
