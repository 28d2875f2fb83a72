"""Links of users who cannot connect are refused unless forced, and a past expiry is saved with a warning."""

from pathlib import Path

import pytest
from tests.support.cli import run_cli


def ok(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[str, str]:
    code, out, err = run_cli(capsys, *argv)
    assert code == 0, err
    return out, err


@pytest.mark.parametrize(
    ("make_inactive", "reason"),
    [
        (("user", "disable", "--username", "alice"), "alice is disabled"),
        (
            ("user", "expiry-set", "--username", "alice", "--date", "2020-01-31"),
            "alice is expired on 2020-01-31",
        ),
    ],
)
def test_a_link_that_would_not_connect_needs_force(
    seeded: Path, capsys: pytest.CaptureFixture[str], make_inactive: tuple[str, ...], reason: str
) -> None:
    ok(capsys, *make_inactive)
    link = ("user", "link", "--server", "vpn-nl", "--username", "alice", "--no-qr")
    code, out, err = run_cli(capsys, *link)
    assert code == 1 and "vless://" not in out
    assert err.splitlines() == [
        f"error: {reason}: the link would not connect",
        "hint: `ovpn user enable` or `ovpn user expiry-set` first, or pass --force to print it anyway",
    ]
    out, err = ok(capsys, *link, "--force")
    assert out.startswith("vless://") and f"warning: {reason}" in err


def test_links_by_tag_skip_users_that_cannot_connect_and_say_so(
    seeded: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ok(capsys, "user", "add", "--username", "bob", "--tags", "pilot")
    ok(capsys, "user", "add", "--username", "carol", "--tags", "pilot", "--expiry", "2020-01-31")
    ok(capsys, "user", "disable", "--username", "alice")
    out_dir = seeded / "pilot"
    argv = ("user", "link", "--server", "proxy-ru", "--tag", "pilot", "--out", str(out_dir))
    code, out, err = run_cli(capsys, *argv)
    assert code == 1 and out == f"wrote 1 links for tag pilot to {out_dir}\n"
    assert sorted(p.name for p in out_dir.iterdir()) == ["proxy-ru-bob.png", "proxy-ru-bob.txt"]
    assert err.splitlines() == [
        "warning: alice is disabled: skipped",
        "warning: carol is expired on 2020-01-31: skipped",
        "error: skipped 2 disabled or expired users: alice, carol",
        "hint: their links would not connect; enable them first, or pass --force to write them anyway",
    ]
    out, err = ok(capsys, *argv, "--force")
    assert len(list(out_dir.iterdir())) == 6 and "warning: carol is expired on 2020-01-31" in err


def test_a_past_expiry_is_saved_with_a_warning(seeded: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, err = ok(capsys, "user", "add", "--username", "bob", "--expiry", "2020-01-31")
    assert "warning: bob's expiry 2020-01-31 is already past" in err
    _, err = ok(capsys, "user", "expiry-set", "--username", "alice", "--date", "2020-02-01")
    assert "warning: alice's expiry 2020-02-01 is already past" in err
    _, err = ok(capsys, "user", "expiry-set", "--username", "alice", "--date", "2999-01-01")
    assert "warning" not in err
