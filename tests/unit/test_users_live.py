"""The CLI's user policy is exactly what the agent's /users/sync accepts (the contract between the two)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from ovpn.agent.checks import parse_policies
from ovpn.core.model import DEFAULT_QUOTA_BYTES, User
from ovpn.ops.agent_client import user_policy


def test_the_cli_policy_parses_in_the_agent_field_for_field() -> None:
    users = [
        User(username="alice", uuid="3f1c2a7e-8b9d-4c1e-9f00-0123456789ab", email="alice@global"),
        User(username="bob", uuid="4f1c2a7e-8b9d-4c1e-9f00-0123456789ab", email="bob@global", enabled=False,
             expiry=date(2030, 5, 17), quota_bytes=5 * 1024**3),
    ]  # fmt: skip
    policies, default = parse_policies(user_policy(users))
    assert default == DEFAULT_QUOTA_BYTES
    assert [(p.email, p.username, p.uuid, p.enabled, p.expiry, p.quota_bytes) for p in policies] == [
        ("alice@global", "alice", users[0].uuid, True, None, None),
        ("bob@global", "bob", users[1].uuid, False, "2030-05-17", 5 * 1024**3),
    ]


def test_threads_take_turns_with_the_state_database(tmp_path: Path) -> None:
    """Live user changes and deploy --all work on several servers at once through one App."""
    from concurrent.futures import ThreadPoolExecutor

    from ovpn.ops.app import App

    app = App(tmp_path)

    def work(i: int) -> int:
        for _ in range(50):
            with app.reading() as repo:
                repo.users()
            with app.writing() as repo:
                repo.servers()
        return i

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert sorted(pool.map(work, range(8))) == list(range(8))
