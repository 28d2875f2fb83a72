"""Deploy history and rollback: the record, which kept release a rollback picks, what a stopped deploy says, and
the files a deploy changed."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tests.support.cli import run_cli
from tests.support.fake_remote import Reply, ScriptedRemote
from tests.support.topology import BACKEND_1

from ovpn.core.names import RELEASE_MARKER
from ovpn.errors import InvalidInput
from ovpn.facts.release import _KEPT_SCRIPT, LiveRelease, parse_kept_releases
from ovpn.ops.app import App
from ovpn.ops.deploy import Attempt, interrupted
from ovpn.ops.history import rollback_target
from ovpn.ops.host import Host
from ovpn.remote.base import RemoteResult
from ovpn.render.bundle import BundleFile, bundle_changes, describe_changes
from ovpn.state.db import DB_FILE
from ovpn.state.repo import Revision

D = "/opt/ovpn-releases"


def release(stamp: str) -> LiveRelease:
    return LiveRelease(f"2026120{stamp}-aaaaaaaa", "ab" * 32, f"{D}/2026120{stamp}-aaaaaaaa")


R1, R2, R3, R4 = (release(s) for s in ("1T000000Z", "2T000000Z", "3T000000Z", "4T000000Z"))


def record(r: LiveRelease, result: str) -> Revision:
    return Revision(r.revision, r.bundle_sha256, "op", "2026-12-01T00:00:00+00:00", None, result, "")


def test_a_rollback_goes_to_the_newest_older_release_the_history_calls_good() -> None:
    records = [record(R1, "ok"), record(R2, "ok"), record(R3, "rolled-back"), record(R4, "ok")]
    assert rollback_target("vpn-nl", [R1, R2, R3, R4], R4, records, None) == R2


def test_without_records_the_release_before_the_live_one_is_taken() -> None:
    assert rollback_target("vpn-nl", [R1, R2, R3], R3, [], None) == R2


def test_to_names_a_kept_release_by_revision_or_directory_even_a_newer_one() -> None:
    assert rollback_target("vpn-nl", [R1, R2, R3], R1, [], R3.revision) == R3
    assert rollback_target("vpn-nl", [R1, R2, R3], R3, [], Path(R1.directory).name) == R1


@pytest.mark.parametrize(
    ("kept", "live", "to", "message", "hint"),
    [
        ([R1, R2], R2, "20261130T000000Z-ffffffff", "20261130T000000Z-ffffffff is not kept on vpn-nl",
         f"releases kept there, newest first: {R2.revision}, {R1.revision}"),
        ([R1, R2], R2, R2.revision, f"{R2.revision} is already live on vpn-nl", "see `ovpn deploy history vpn-nl`"),
        ([R1], R1, None, f"no release older than {R1.revision} is kept on vpn-nl",
         "see `ovpn deploy history vpn-nl`; `--to REVISION` names a newer kept one"),
    ],
)  # fmt: skip
def test_a_rollback_that_cannot_be_done_says_why(
    kept: list[LiveRelease], live: LiveRelease, to: str | None, message: str, hint: str
) -> None:
    with pytest.raises(InvalidInput) as refused:
        rollback_target("vpn-nl", kept, live, [], to)
    assert (refused.value.message, refused.value.hint) == (message, hint)


def test_kept_releases_are_read_by_the_real_script(tmp_path: Path) -> None:
    """The listing script run by sh here, over a directory like the host's: markers, a .partial upload, a
    directory with a marker edited by hand, and one without a marker."""
    for name, marker in [
        ("20261202T000000Z-bbbbbbbb", {"revision": "20261202T000000Z-bbbbbbbb", "bundle_sha256": "cd" * 32}),
        ("20261201T000000Z-aaaaaaaa", {"revision": "20261201T000000Z-aaaaaaaa", "bundle_sha256": "ab" * 32}),
        ("20261203T000000Z-cccccccc.partial", {"revision": "x", "bundle_sha256": "y"}),
    ]:
        (tmp_path / name).mkdir()
        (tmp_path / name / ".ovpn-release.json").write_text(json.dumps(marker, indent=2) + "\n")
    (tmp_path / "20261204T000000Z-dddddddd").mkdir()
    (tmp_path / "20261204T000000Z-dddddddd" / ".ovpn-release.json").write_text("{not json")
    (tmp_path / "lost+found").mkdir()
    done = subprocess.run(["sh", "-c", _KEPT_SCRIPT, "sh", str(tmp_path), ".ovpn-release.json"],
                          capture_output=True, check=True)  # fmt: skip
    kept = parse_kept_releases(RemoteResult(("sh",), 0, done.stdout, b""))
    assert kept == [
        LiveRelease("20261201T000000Z-aaaaaaaa", "ab" * 32, f"{D}/20261201T000000Z-aaaaaaaa"),
        LiveRelease("20261202T000000Z-bbbbbbbb", "cd" * 32, f"{D}/20261202T000000Z-bbbbbbbb"),
    ]


def marker(r: LiveRelease) -> Reply:
    return Reply(
        json.dumps({"revision": r.revision, "bundle_sha256": r.bundle_sha256}) + "\n" + r.directory + "\n"
    )


@pytest.mark.parametrize(
    ("live", "message", "hint"),
    [
        (R2, "deploy of vpn-nl interrupted after the switch: "
             f"{R2.revision} is live but was not health-gated",
         f"check it with `ovpn doctor vpn-nl`; `ovpn rollback vpn-nl --to {R1.revision}` returns to it"),
        (R1, f"deploy of vpn-nl interrupted before the switch: {R1.revision} is still live; the host was not changed",
         "run the deploy again"),
    ],
)  # fmt: skip
def test_a_stopped_deploy_says_what_the_host_runs(live: LiveRelease, message: str, hint: str) -> None:
    remote = ScriptedRemote().on(RELEASE_MARKER, reply=marker(live))
    stopped = interrupted(Host(remote, BACKEND_1), Attempt("deploy", R2.revision, R2.bundle_sha256, R1, ""))
    assert (stopped.message, stopped.hint) == (message, hint)


def test_a_stopped_deploy_on_an_unreachable_host_says_it_does_not_know() -> None:
    refused = Reply(stderr="ssh: connect to host: Connection refused", code=255)
    remote = ScriptedRemote().on(RELEASE_MARKER, reply=refused)
    stopped = interrupted(Host(remote, BACKEND_1), Attempt("deploy", R2.revision, R2.bundle_sha256, R1, ""))
    assert stopped.message == "deploy of vpn-nl interrupted: what runs on the host now is unknown"


def f(content: bytes) -> BundleFile:
    return BundleFile(content, 0o644)


def test_bundle_changes_name_changed_added_and_removed_files_and_keep_a_host_secret() -> None:
    live = {
        "xray/config.json": _sha(b"old"),
        ".env": _sha(b"A=1"),
        "old.txt": _sha(b"x"),
        "secrets/bot": _sha(b"t"),
    }
    bundle = {"xray/config.json": f(b"new"), ".env": f(b"A=1"), "haproxy/haproxy.cfg": f(b"cfg"),
              "secrets/bot": f(b"")}  # fmt: skip
    changes = bundle_changes(live, bundle, kept={"secrets/bot"})
    assert changes == [
        ("haproxy/haproxy.cfg", "added"),
        ("old.txt", "removed"),
        ("xray/config.json", "changed"),
    ]
    assert describe_changes(changes) == "changed xray/config.json; added haproxy/haproxy.cfg; removed old.txt"
    assert describe_changes([]) == "no file changed"
    many = [(f"f{i}", "changed") for i in range(9)]
    assert describe_changes(many, limit=3) == "changed f0, f1, f2 and 6 more"  # type: ignore[arg-type]


def _sha(content: bytes) -> str:
    import hashlib

    return hashlib.sha256(content).hexdigest()


files = st.dictionaries(st.sampled_from(["a", "b", "c", "d/e", ".env"]), st.binary(min_size=1, max_size=4))


@given(files, files)
def test_bundle_changes_are_exactly_the_paths_whose_content_differs(
    old: dict[str, bytes], new: dict[str, bytes]
) -> None:
    changes = dict(bundle_changes({p: _sha(c) for p, c in old.items()}, {p: f(c) for p, c in new.items()}))
    for path in old.keys() | new.keys():
        expected = (None if old.get(path) == new.get(path) else "added" if path not in old else
                    "removed" if path not in new else "changed")  # fmt: skip
        assert changes.get(path) == expected


def test_history_lists_deploys_rollbacks_and_restores_newest_first(
    seeded: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = seeded / "state"
    with App(state).writing() as repo:
        first = repo.start_revision("vpn-nl", R1.revision, R1.bundle_sha256, "alice", changes="first release")
        repo.finish_revision(first, "ok", f"{R1.revision} is live")
        second = repo.start_revision("vpn-nl", R2.revision, R2.bundle_sha256, "bob",
                                     changes="changed xray/config.json")  # fmt: skip
        repo.finish_revision(second, "interrupted", "deploy of vpn-nl interrupted after the switch: ...")
        back = repo.start_revision("vpn-nl", R1.revision, R1.bundle_sha256, "alice", kind="rollback",
                                   changes=f"from {R2.revision}")  # fmt: skip
        repo.finish_revision(back, "ok", f"{R1.revision} is live")
    code, out, err = run_cli(capsys, "deploy", "history", "vpn-nl", "--json")
    assert code == 0, err
    rows = [
        (r["revision"], r["kind"], r["result"], r["operator"], r["changes"])
        for r in json.loads(out)["revisions"]
    ]
    assert rows == [
        (R1.revision, "rollback", "ok", "alice", f"from {R2.revision}"),
        (R2.revision, "deploy", "interrupted", "bob", "changed xray/config.json"),
        (R1.revision, "deploy", "ok", "alice", "first release"),
    ]
    code, out, _ = run_cli(capsys, "deploy", "history", "vpn-nl")
    assert code == 0 and "interrupted after the switch" in out and "changed xray/config.json" not in out
    code, out, err = run_cli(capsys, "deploy", "history", "vpn-nx")
    assert code == 1 and err.splitlines() == [
        "error: no server named 'vpn-nx'",
        "hint: did you mean vpn-nl? see `ovpn server list`",
    ]


def test_the_history_migration_keeps_every_revision_and_marks_restores(seeded: Path) -> None:
    """A state of schema 7 with a deploy and a restore on record: after 0008 both are there, with their kind."""
    db = seeded / "state" / DB_FILE
    with sqlite3.connect(db) as conn:
        conn.execute("DROP TABLE deploy_revisions")
        conn.executescript(
            "CREATE TABLE deploy_revisions (id INTEGER PRIMARY KEY, server_id INTEGER NOT NULL REFERENCES servers "
            "(id) ON DELETE CASCADE, revision TEXT NOT NULL, bundle_sha256 TEXT NOT NULL, operator TEXT NOT NULL, "
            "started_at TEXT NOT NULL, finished_at TEXT, result TEXT NOT NULL CHECK (result IN ('running', 'ok', "
            "'unchanged', 'rolled-back', 'failed')), message TEXT NOT NULL DEFAULT '');"
            "CREATE INDEX deploy_revisions_by_server ON deploy_revisions (server_id, id);"
        )
        server_id = conn.execute("SELECT id FROM servers WHERE name = 'vpn-nl'").fetchone()[0]
        for revision, message in [
            (R1.revision, "x is live"),
            ("20261202T000000Z-restored", "restored from a"),
        ]:
            conn.execute("INSERT INTO deploy_revisions (server_id, revision, bundle_sha256, operator, started_at, "
                         "result, message) VALUES (?, ?, 'ab', 'op', 't', 'ok', ?)",
                         (server_id, revision, message))  # fmt: skip
        conn.execute("PRAGMA user_version = 7")
    with App(seeded / "state").reading() as repo:
        kinds = [(r.revision, r.kind, r.result) for r in repo.revisions("vpn-nl")]
    assert kinds == [("20261202T000000Z-restored", "restore", "ok"), (R1.revision, "deploy", "ok")]
