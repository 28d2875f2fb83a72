"""`ovpn server images list|copy`: what a host has against what its bundle needs, what a copy takes, and the
stream itself. Host reads run against ScriptedRemotes; the streams run through real local processes in the place
of `docker save` and `docker load` (a `head -c` for the image, a `cat` that takes it, commands that fail midway)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from tests.support.cli import run_cli
from tests.support.fake_remote import Reply, ScriptedRemote
from tests.support.topology import BACKEND_1, PROXY

from ovpn.core.model import Server
from ovpn.errors import OvpnError
from ovpn.facts.images import HostImage, host_images
from ovpn.ops import images as ops
from ovpn.ops.images import CopyPlan, Transfer, copy_one, wanted_images
from ovpn.remote.base import RemoteResult, SshTarget
from ovpn.remote.relay import relay
from ovpn.remote.ssh import PipedProcess, Ssh, SshSettings
from ovpn.render.images import resolve_images

IMAGES = resolve_images("26.7.28")
PROMETHEUS = IMAGES["prometheus"]
GRAFANA = IMAGES["grafana"]
MONITORING = ("prometheus", "alertmanager", "grafana", "node-exporter", "cadvisor")
MIB = 1 << 20
CAPTURED = Path(__file__).parent / "captured"
ID_A = "sha256:" + "a" * 64
ID_B = "sha256:" + "b" * 64
INSPECT = host_images([]).argv  # the command's words before the references


def inspect_answer(images: dict[str, tuple[str, int]]) -> Callable[[tuple[str, ...]], Reply]:
    """The host_images script's answer on a host holding `images` (ref -> id, size), as the real script prints it
    (tests/unit/captured/docker-20.10-host-images.txt)."""

    def answer(argv: tuple[str, ...]) -> Reply:
        lines = []
        for ref in argv[5:]:
            if ref in images:
                lines.append(f"present\t{ref}\t{images[ref][0]} {images[ref][1]}")
            else:
                lines.append(f"absent\t{ref}\tError: No such image: {ref}")
        return Reply("".join(f"{line}\n" for line in lines))

    return answer


def docker_host(
    name: str, images: dict[str, tuple[str, int]], *later: dict[str, tuple[str, int]]
) -> ScriptedRemote:
    """A host whose Docker holds `images`, then (from the next read on) each of `later` in turn."""
    remote = ScriptedRemote(target=SshTarget(f"{name}.test", 22, "deploy"))
    return remote.on(*INSPECT, reply=[inspect_answer(i) for i in (images, *later)])


def monitoring_images(*, but: tuple[str, ...] = ()) -> dict[str, tuple[str, int]]:
    return {IMAGES[s]: (f"sha256:{index:064x}", (index + 1) * 10 * MIB) for index, s in enumerate(MONITORING)
            if s not in but}  # fmt: skip


class Hosts:
    """The hosts the ops reach, by server name, and which ones were locked for which operation."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, **remotes: ScriptedRemote) -> None:
        self.remotes = remotes
        self.locked: list[tuple[str, str]] = []
        monkeypatch.setattr(ops, "connect", self.connect)
        monkeypatch.setattr(ops, "locked", self.lock)

    def connect(self, app: object, server: Server, **options: object) -> ScriptedRemote:
        if server.name not in self.remotes:
            raise AssertionError(f"{server.name} was contacted")
        return self.remotes[server.name]

    def lock(self, app: object, server: Server, operation: str, **options: object) -> ScriptedRemote:
        self.locked.append((server.name, operation))
        return self.connect(app, server)


def pipes(remote: ScriptedRemote) -> list[tuple[str, ...]]:
    return [c for c in remote.calls if c[:2] in (("docker", "save"), ("docker", "load"))]


# What a server's bundle needs


def test_a_bundle_needs_its_roles_runtime_the_agents_base_and_the_monitoring_images() -> None:
    wanted = wanted_images(BACKEND_1, IMAGES)
    assert [(w.service, w.part) for w in wanted] == [
        ("xray", "runtime"), ("ovpn-agent", "runtime"), ("ovpn-agent-base", "runtime"),
        *[(s, "monitoring") for s in (*MONITORING, "ovpn-telegram-bot")],
    ]  # fmt: skip
    assert {w.service for w in wanted if w.built_on_host} == {"ovpn-agent", "ovpn-telegram-bot"}
    assert "haproxy" in [w.service for w in wanted_images(PROXY, IMAGES)]
    # A bot with an image of its own is pulled like any other.
    bot = {**IMAGES, "ovpn-telegram-bot": "example/bot:1"}
    assert {w.service for w in wanted_images(BACKEND_1, bot) if w.built_on_host} == {"ovpn-agent"}


def test_images_list_reports_present_missing_and_built_images_and_exits_0(
    seeded: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    Hosts(monkeypatch, **{"vpn-nl": docker_host("vpn-nl", monitoring_images(but=("grafana",)))})
    code, out, err = run_cli(capsys, "server", "images", "list", "vpn-nl", "--json")
    assert code == 0, err
    rows = {row["service"]: row for row in json.loads(out)["images"]}
    assert rows["prometheus"] == {"service": "prometheus", "part": "monitoring", "ref": PROMETHEUS,
                                  "built_on_host": False, "present": True, "id": f"sha256:{0:064x}",
                                  "size": 10 * MIB}  # fmt: skip
    assert rows["grafana"]["present"] is False and rows["grafana"]["id"] is None
    assert rows["ovpn-agent"]["built_on_host"] is True and rows["ovpn-agent"]["present"] is False
    code, out, err = run_cli(capsys, "server", "images", "list", "vpn-nl")
    assert code == 0, err
    table = {line.split("│")[1].strip(): line for line in out.splitlines() if line.count("│") > 2}
    assert "present 000000000000" in table["prometheus"] and "10" in table["prometheus"]
    assert "missing" in table["grafana"]
    assert "not built yet" in table["ovpn-agent"] and "built on the host at deploy" in table["ovpn-agent"]


# What a copy takes


def test_plan_lists_what_the_target_lacks_and_the_source_has_and_touches_nothing(
    seeded: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    source = docker_host("vpn-nl", monitoring_images())
    target = docker_host("vpn-de", monitoring_images(but=("prometheus", "grafana")))
    hosts = Hosts(monkeypatch, **{"vpn-nl": source, "vpn-de": target})
    code, out, err = run_cli(
        capsys, "server", "images", "copy", "--from", "vpn-nl", "--to", "vpn-de", "--plan"
    )
    assert code == 0, err
    assert out.splitlines() == [
        "would copy 2 images (40 MiB) from vpn-nl to vpn-de:",
        f"  prometheus: {PROMETHEUS} (10 MiB)",
        f"  grafana: {GRAFANA} (30 MiB)",
        "already on vpn-de: alertmanager, node-exporter, cadvisor",
    ]
    assert hosts.locked == [] and pipes(source) == pipes(target) == []
    # The source is asked only about what the target lacks.
    assert source.ran(*INSPECT)[0][5:] == (PROMETHEUS, GRAFANA)
    code, out, _ = run_cli(capsys, "server", "images", "copy", "--from", "vpn-nl", "--to", "vpn-de", "--plan",
                           "--service", "grafana", "--json")  # fmt: skip
    doc = json.loads(out)
    assert (code, doc["plan"], doc["size"], doc["copied"], doc["present"]) == (0, True, 30 * MIB, [], [])
    assert doc["images"] == [
        {"ref": GRAFANA, "services": ["grafana"], "size": 30 * MIB, "id": f"sha256:{2:064x}"}
    ]


def test_a_target_that_has_everything_needs_no_source(
    seeded: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    Hosts(monkeypatch, **{"vpn-de": docker_host("vpn-de", monitoring_images())})
    code, out, err = run_cli(capsys, "server", "images", "copy", "--from", "vpn-nl", "--to", "vpn-de")
    assert code == 0, err
    assert out.splitlines() == [
        "nothing to copy: vpn-de has every image asked for (prometheus, alertmanager, grafana, node-exporter, "
        "cadvisor)"
    ]


def test_an_image_the_source_lacks_too_is_refused_before_anything_is_copied(
    seeded: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    source = docker_host("vpn-nl", monitoring_images(but=("grafana",)))
    target = docker_host("vpn-de", monitoring_images(but=("prometheus", "grafana")))
    hosts = Hosts(monkeypatch, **{"vpn-nl": source, "vpn-de": target})
    code, out, err = run_cli(capsys, "server", "images", "copy", "--from", "vpn-nl", "--to", "vpn-de")
    assert (code, out) == (1, "")
    assert (
        err.splitlines()[0] == f"error: vpn-nl does not have {GRAFANA} (grafana) either: nothing was copied"
    )
    assert err.splitlines()[1] == "hint: copy from a host that has it (--from), or load it on vpn-nl first"
    assert pipes(source) == pipes(target) == []
    assert hosts.locked == [("vpn-de", "images copy")]


@pytest.mark.parametrize(
    ("argv", "lines"),
    [
        (["--service", "grafna"],
         ["error: unknown service 'grafna'", "hint: did you mean grafana? see `ovpn server images list vpn-de`"]),
        (["--service", "Prometheus"],
         ["error: unknown service 'Prometheus'",
          "hint: did you mean prometheus? see `ovpn server images list vpn-de`"]),
        (["--service", "haproxy"],
         ["error: vpn-de is a vpn server and needs no haproxy image", "hint: see `ovpn server images list vpn-de`"]),
        (["--service", "ovpn-agent"],
         ["error: the ovpn-agent image of vpn-de is built on the host at deploy, not copied",
          "hint: copy the image it is built from: --service ovpn-agent-base"]),
        (["--service", "ovpn-telegram-bot"],
         ["error: the ovpn-telegram-bot image of vpn-de is built on the host at deploy, not copied",
          "hint: copy the image it is built from: --service ovpn-agent-base"]),
    ],
)  # fmt: skip
def test_a_service_the_copy_cannot_take_is_refused_before_any_host(
    seeded: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    lines: list[str],
) -> None:
    Hosts(monkeypatch)
    code, out, err = run_cli(capsys, "server", "images", "copy", "--from", "vpn-nl", "--to", "vpn-de", *argv)
    assert (code, out, err.splitlines()) == (1, "", lines)


def test_the_same_host_on_both_sides_is_refused(
    seeded: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    Hosts(monkeypatch)
    code, _, err = run_cli(capsys, "server", "images", "copy", "--from", "vpn-nl", "--to", "vpn-nl")
    assert code == 1
    assert err.splitlines()[0] == "error: --from and --to name the same server (vpn-nl)"


# The stream


def save_and_load(source: ScriptedRemote, target: ScriptedRemote, save: list[str], load: list[str]) -> None:
    source.on_pipe("docker", "save", local=save)
    target.on_pipe("docker", "load", local=load)


LOAD_ALL = ["sh", "-c", 'cat > /dev/null && echo "Loaded image: $0"', PROMETHEUS]


def test_a_copy_streams_each_image_under_the_targets_lock_and_checks_its_id(
    seeded: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    size = 3 * MIB + 5
    source = docker_host("vpn-nl", {PROMETHEUS: (ID_A, size)})
    target = docker_host("vpn-de", monitoring_images(but=("prometheus",)),
                         {PROMETHEUS: (ID_A, size)})  # fmt: skip
    save_and_load(source, target, ["head", "-c", str(size), "/dev/zero"], LOAD_ALL)
    hosts = Hosts(monkeypatch, **{"vpn-nl": source, "vpn-de": target})
    monkeypatch.setattr(ops, "PROGRESS_SECONDS", 0.0)
    code, out, err = run_cli(
        capsys, "server", "images", "copy", "--from", "vpn-nl", "--to", "vpn-de", "--json"
    )
    assert code == 0, err
    doc = json.loads(out)
    assert doc["plan"] is False
    assert [(c["ref"], c["bytes"], c["id"]) for c in doc["copied"]] == [(PROMETHEUS, size, ID_A)]
    assert hosts.locked == [("vpn-de", "images copy")]
    assert pipes(source) == [("docker", "save", PROMETHEUS)] and pipes(target) == [("docker", "load")]
    # The target's image is read again after the load: its id is the source's.
    assert len(target.ran(*INSPECT)) == 2
    code, out, err = run_cli(capsys, "server", "images", "copy", "--from", "vpn-nl", "--to", "vpn-de",
                             "--service", "prometheus")  # fmt: skip
    assert code == 0, err
    assert out.startswith("nothing to copy: vpn-de has every image asked for (prometheus)")


def test_progress_lines_name_the_image_and_the_mib_so_far(monkeypatch: pytest.MonkeyPatch) -> None:
    size = 3 * MIB
    source = docker_host("vpn-nl", {})
    target = docker_host("vpn-de", {PROMETHEUS: (ID_A, size)})
    save_and_load(source, target, ["head", "-c", str(size), "/dev/zero"], LOAD_ALL)
    monkeypatch.setattr(ops, "PROGRESS_SECONDS", 0.0)
    lines: list[str] = []
    copied = copy_one(
        source, target, plan(size), Transfer(PROMETHEUS, ("prometheus",), image(size)), lines.append
    )
    assert copied.bytes == size and copied.id == ID_A
    assert lines[0] == f"copying {PROMETHEUS} (3.0 MiB) from vpn-nl"
    steps = lines[1:-1]
    assert steps and all(line.startswith(f"copying {PROMETHEUS}: ") for line in steps)
    assert steps[-1] == f"copying {PROMETHEUS}: 3.0/3.0 MiB"
    assert lines[-1].startswith(f"copied {PROMETHEUS}: 3.0 MiB in ")
    assert lines[-1].endswith(" s, image id aaaaaaaaaaaa on both hosts")


def image(size: int, image_id: str = ID_A) -> HostImage:
    return HostImage(PROMETHEUS, image_id, size)


def plan(size: int) -> CopyPlan:
    return CopyPlan("vpn-nl", "vpn-de", [Transfer(PROMETHEUS, ("prometheus",), image(size))], [])


def copy_failure(source: ScriptedRemote, target: ScriptedRemote, size: int) -> str:
    with pytest.raises(OvpnError) as failed:
        copy_one(
            source, target, plan(size), Transfer(PROMETHEUS, ("prometheus",), image(size)), lambda _: None
        )
    return failed.value.message


def test_an_image_id_that_differs_after_the_load_fails_with_both_ids() -> None:
    size = MIB
    source = docker_host("vpn-nl", {})
    target = docker_host("vpn-de", {PROMETHEUS: (ID_B, size)})
    save_and_load(source, target, ["head", "-c", str(size), "/dev/zero"], LOAD_ALL)
    assert copy_failure(source, target, size).splitlines()[0] == (
        f"after the copy vpn-de has {PROMETHEUS} as bbbbbbbbbbbb, but vpn-nl has it as aaaaaaaaaaaa"
    )


def test_a_save_that_fails_midway_is_reported_on_the_sources_side_and_the_load_is_cut() -> None:
    failing_save = [
        "sh",
        "-c",
        'head -c 2097152 /dev/zero; echo "Error response from daemon: disk I/O" >&2; exit 1',
    ]
    # A load that would succeed on a clean end of input: it must be cut instead.
    patient_load = ["sh", "-c", "cat > /dev/null; sleep 2; echo loaded"]
    source = docker_host("vpn-nl", {})
    target = docker_host("vpn-de", {})
    save_and_load(source, target, failing_save, patient_load)
    result = relay(
        source.pipe(["docker", "save", PROMETHEUS]), target.pipe(["docker", "load"]), lambda _: None
    )
    assert (result.failed, result.source.returncode) == ("source", 1)
    assert result.target.returncode < 0 and "loaded" not in result.target.text
    source = docker_host("vpn-nl", {})
    target = docker_host("vpn-de", {})
    save_and_load(source, target, failing_save, patient_load)
    assert copy_failure(source, target, 3 * MIB).splitlines()[0] == (
        f"copying {PROMETHEUS} failed on vpn-nl's side (docker save, after 2.0 MiB): "
        "Error response from daemon: disk I/O (exit 1)"
    )
    # The target is not read again: nothing was loaded.
    assert target.ran(*INSPECT) == []


def test_a_load_that_fails_midway_is_reported_on_the_targets_side_and_the_save_is_stopped() -> None:
    source = docker_host("vpn-nl", {})
    target = docker_host("vpn-de", {})
    # What docker load says of a cut stream (tests/unit/captured/docker-20.10-load-cut-stream.txt), after 1 MiB.
    said = (CAPTURED / "docker-20.10-load-cut-stream.txt").read_text().strip()
    failing_load = ["sh", "-c", 'head -c 1048576 > /dev/null; echo "$0" >&2; exit 1', said]
    save_and_load(source, target, ["head", "-c", str(500 * MIB), "/dev/zero"], failing_load)
    result = relay(
        source.pipe(["docker", "save", PROMETHEUS]), target.pipe(["docker", "load"]), lambda _: None
    )
    assert result.failed == "target" and result.sent < 500 * MIB
    assert result.source.returncode < 0, "the save is killed, not left streaming"
    source = docker_host("vpn-nl", {})
    target = docker_host("vpn-de", {})
    save_and_load(source, target, ["head", "-c", str(500 * MIB), "/dev/zero"], failing_load)
    first = copy_failure(source, target, 500 * MIB).splitlines()[0]
    assert first.startswith(f"copying {PROMETHEUS} failed on vpn-de's side (docker load, after ")
    assert first.endswith(" MiB): Error processing tar file(exit status 1): unexpected EOF (exit 1)")


def test_a_load_that_rejects_the_whole_stream_and_an_ssh_failure_say_so() -> None:
    source = docker_host("vpn-nl", {})
    target = docker_host("vpn-de", {})
    reject = ["sh", "-c", 'cat > /dev/null; echo "invalid tar header" >&2; exit 1']
    save_and_load(source, target, ["head", "-c", str(MIB), "/dev/zero"], reject)
    assert copy_failure(source, target, MIB).splitlines()[0] == (
        f"copying {PROMETHEUS} failed on vpn-de's side (docker load, after 1.0 MiB): invalid tar header (exit 1)"
    )
    source = docker_host("vpn-nl", {})
    target = docker_host("vpn-de", {})
    refused = [
        "sh",
        "-c",
        'echo "ssh: connect to host vpn-de.test port 22: Connection refused" >&2; exit 255',
    ]
    # The save starts late, so the load has failed before the first byte.
    save_and_load(source, target, ["sh", "-c", "sleep 1; head -c 1048576 /dev/zero"], refused)
    assert copy_failure(source, target, MIB).splitlines()[0] == (
        f"copying {PROMETHEUS} failed on vpn-de's side (docker load, after 0.0 MiB): cannot reach "
        "deploy@vpn-de.test:22: ssh: connect to host vpn-de.test port 22: Connection refused"
    )


def test_a_side_that_stops_moving_data_ends_the_stream() -> None:
    silent = PipedProcess.start(["sleep", "30"], ["docker", "save", PROMETHEUS])
    sink = PipedProcess.start(["cat"], ["docker", "load"])
    result = relay(silent, sink, lambda _: None, idle_timeout=0.5)
    assert (result.failed, result.stalled, result.sent) == ("source", True, 0)
    assert result.source.returncode < 0 and result.target.returncode < 0
    # A target that takes nothing (its pipe full) stalls on the target's side.
    stuck = PipedProcess.start(["sleep", "30"], ["docker", "load"])
    flood = PipedProcess.start(["head", "-c", str(64 * MIB), "/dev/zero"], ["docker", "save", PROMETHEUS])
    result = relay(flood, stuck, lambda _: None, idle_timeout=0.5)
    assert (result.failed, result.stalled) == ("target", True)


def test_ssh_pipe_runs_the_quoted_command_on_a_connection_of_its_own(tmp_path: Path) -> None:
    """`Ssh.pipe` through an `ssh` that runs the remote command locally: the bytes go through, the argument
    stays one word, and the connection is not the shared master's."""
    fake = tmp_path / "ssh"
    log = tmp_path / "ssh-args"
    fake.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" >> {log}\nfor last; do :; done\nexec sh -c "$last"\n')
    fake.chmod(0o755)
    control = tmp_path / "control"
    settings = SshSettings(known_hosts=tmp_path / "known_hosts", control_dir=control, ssh_binary=str(fake))
    with Ssh(SshTarget("vpn-nl.test"), settings) as a, Ssh(SshTarget("vpn-de.test"), settings) as b:
        save = a.pipe(["head", "-c", str(2 * MIB + 1), "/dev/zero"])
        load = b.pipe(["sh", "-c", 'wc -c; echo "$1" >&2', "sh", "a b; $(id)"])
        result = relay(save, load, lambda _: None)
    assert result.failed is None and result.sent == 2 * MIB + 1
    assert isinstance(result.target, RemoteResult)
    assert result.target.text.strip() == str(2 * MIB + 1) and result.target.error_text == "a b; $(id)"
    assert "ControlPath=none" in log.read_text().splitlines()
