"""The Telegram bot's webhook token: what Alertmanager and ovpn present to the bot's /alertmanager and /events.

One random token per server, sealed in the state's `server_secrets` like the agent's token, and rendered into the
bundle's `monitoring/secrets/bot_webhook_token` (mode 0640, root and Alertmanager's group). `server monitor
telegram-setup` makes a new one each time it runs (that is how to rotate it); a server whose bot was set up before
the token existed gets one the first time it is rendered.
"""

from __future__ import annotations

from ovpn.ops.app import App
from ovpn.ops.servers import new_token
from ovpn.state.repo import Repository

SECRET_NAME = "OVPN_BOT_WEBHOOK_TOKEN"  # noqa: S105 - the name of the secret in the state


def rotate(repo: Repository, server: str) -> str:
    """Give `server` a new token (inside the caller's write transaction)."""
    value = new_token()
    repo.set_secret(server, SECRET_NAME, value)
    return value


def token(app: App, server: str) -> str:
    """The server's token, made once if it has none yet."""
    with app.reading() as repo:
        existing = repo.secret(server, SECRET_NAME)
    if existing is not None:
        return existing
    with app.writing() as repo:
        return repo.secret(server, SECRET_NAME) or rotate(repo, server)
