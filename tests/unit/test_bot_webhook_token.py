"""The bot's webhook token in the ops layer: made once for a server whose bot is set up, kept sealed in the state,
rendered into the server's bundle, and replaced by `bot_webhook.rotate` (what `telegram-setup` calls)."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.support.cli import seed_state

from ovpn.core.model import TelegramSettings
from ovpn.ops import bot_webhook
from ovpn.ops.app import App
from ovpn.ops.render import render_server
from ovpn.render.bundle import BundleFile
from ovpn.render.monitoring.spec import WEBHOOK_TOKEN_FILE, WEBHOOK_TOKEN_GID
from ovpn.state.db import DB_FILE


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> App:
    seed_state(tmp_path, monkeypatch, capsys)
    return App(tmp_path / "state")


def rendered(app: App, server: str) -> BundleFile:
    return render_server(app, server).bundle[WEBHOOK_TOKEN_FILE]


def stored(app: App, server: str) -> str | None:
    with app.reading() as repo:
        return repo.secret(server, bot_webhook.SECRET_NAME)


def test_no_bot_no_token(app: App) -> None:
    file = rendered(app, "vpn-nl")
    assert file.content == b""
    assert stored(app, "vpn-nl") is None


def test_a_server_with_a_bot_gets_one_token_sealed_and_rendered(app: App) -> None:
    with app.writing() as repo:
        repo.set_telegram("vpn-nl", TelegramSettings(42))
        repo.set_telegram("vpn-de", TelegramSettings(42))
    first = rendered(app, "vpn-nl")
    token = stored(app, "vpn-nl")
    assert token is not None and len(token) >= 32
    assert (first.content, first.mode, first.group) == (token.encode(), 0o640, WEBHOOK_TOKEN_GID)
    assert rendered(app, "vpn-nl") == first  # made once, then kept
    assert rendered(app, "vpn-de").content not in (b"", first.content)  # one per server
    state = b"".join(p.read_bytes() for p in app.data_dir.glob(DB_FILE + "*"))
    assert token.encode() not in state  # sealed at rest


def test_rotation_gives_a_new_token(app: App) -> None:
    with app.writing() as repo:
        repo.set_telegram("vpn-nl", TelegramSettings(42))
    before = rendered(app, "vpn-nl")
    with app.writing() as repo:
        bot_webhook.rotate(repo, "vpn-nl")
    after = rendered(app, "vpn-nl")
    assert after.content not in (b"", before.content)
    assert after.content == (stored(app, "vpn-nl") or "").encode()
