"""Files ovpn writes for the operator: a bundle only replaces a folder ovpn wrote, and a bad path is one line."""

from pathlib import Path

import pytest
from tests.support.cli import run_cli

from ovpn.ops.files import BUNDLE_MARKER


def _render(capsys: pytest.CaptureFixture[str], out: Path) -> tuple[int, str, str]:
    return run_cli(capsys, "config", "render", "--server", "vpn-nl", "--out", str(out))


def _refused(code: int, err: str) -> None:
    assert code == 1, err
    assert "Traceback" not in err
    assert err.startswith("error: ") and "\nhint: " in err
    assert len(err.strip().splitlines()) == 2


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_render_refuses_a_folder_that_merely_holds_a_compose_file(
    seeded: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = seeded / "my-project"
    project.mkdir()
    (project / "docker-compose.yml").write_text("services: {}\n")
    (project / "notes.txt").write_text("mine\n")
    before = _tree(project)
    code, _, err = _render(capsys, project)
    _refused(code, err)
    assert "was not written by ovpn" in err
    assert _tree(project) == before
    assert sorted(p.name for p in seeded.iterdir() if p.name.startswith(".my-project")) == []


def test_render_replaces_only_its_own_bundle(seeded: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = seeded / "bundle"
    out.mkdir()  # an empty folder is fine
    assert _render(capsys, out)[0] == 0
    assert (out / BUNDLE_MARKER).is_file()
    (out / "stale-file").write_text("left by hand\n")
    assert _render(capsys, out)[0] == 0
    assert not (out / "stale-file").exists()
    assert [p.name for p in seeded.iterdir() if p.name.startswith(".bundle")] == []


def test_render_refuses_a_symlinked_or_file_target(seeded: Path, capsys: pytest.CaptureFixture[str]) -> None:
    real = seeded / "real"
    assert _render(capsys, real)[0] == 0
    link = seeded / "link"
    link.symlink_to(real)
    code, _, err = _render(capsys, link)
    _refused(code, err)
    assert link.is_symlink() and (real / BUNDLE_MARKER).is_file()
    plain = seeded / "plain"
    plain.write_text("x")
    code, _, err = _render(capsys, plain)
    assert code == 2 and "is a file" in err and "Traceback" not in err  # click's own check of --out
    assert plain.read_text() == "x"


@pytest.mark.parametrize("where", ["under-a-file", "proc"])
def test_out_under_a_bad_path_is_one_line(
    seeded: Path, capsys: pytest.CaptureFixture[str], where: str
) -> None:
    if where == "under-a-file":
        (seeded / "afile").write_text("x")
        base = seeded / "afile" / "sub"
    else:
        base = Path("/proc/ovpn-no-such-dir")  # the kernel refuses every new entry here, even for root
    _refused(*_render(capsys, base / "bundle")[::2])
    _refused(*run_cli(capsys, "ansible", "inventory", "--out", str(base / "hosts.yml"))[::2])
    _refused(*run_cli(capsys, "user", "link", "--server", "vpn-nl", "--username", "alice", "--qr-file",
                      str(base / "alice.png"))[::2])  # fmt: skip
    _refused(*run_cli(capsys, "user", "link", "--server", "vpn-nl", "--tag", "pilot", "--out",
                      str(base / "links"))[::2])  # fmt: skip
