"""`ovpn deploy`: stage the bundle next to the live one, validate it on the host, switch, health-gate, roll back.

Host layout: every release is a directory under /opt/ovpn-releases; /opt/ovpn is a symlink to the live one, so
switching (and switching back) is one atomic rename, and the previous release stays on disk until pruned.
Nothing on the host changes before the new release has passed validation there; a failed health gate switches
back to the previous release automatically.
"""

from __future__ import annotations

import getpass
import io
import json
import tarfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from ovpn.core.model import RELAY_EMAIL, Server
from ovpn.core.names import (
    AGENT_HEALTH_URL,
    HAPROXY_METRICS_URL,
    KEPT_ON_HOST,
    RELEASE_MARKER,
    RELEASES_DIR,
    RUNTIME_DIR,
    RUNTIME_SERVICES,
)
from ovpn.errors import Interrupted, OvpnError
from ovpn.facts import agent, xray
from ovpn.facts.base import gather
from ovpn.facts.compose import Container
from ovpn.facts.haproxy import down_servers, pool_log, pool_states
from ovpn.facts.release import LiveRelease, file_digests
from ovpn.ops.agent_client import sync_policy
from ovpn.ops.agent_deps import BUILD_SCRIPT, HOST_WHEEL_CACHE, ensure_wheels_on_host, remember_machine
from ovpn.ops.app import App
from ovpn.ops.host import Host, connect, locked
from ovpn.ops.render import RenderedServer, render_server
from ovpn.ops.waiting import Waiting
from ovpn.remote.base import Remote
from ovpn.render.bundle import Bundle, bundle_changes, bundle_digest, describe_changes

KEEP_RELEASES = 5
GATE_TIMEOUT_SECONDS = 90
SETTLE_SECONDS = 4

Progress = Callable[[str], None]


@dataclass(frozen=True)
class DeployOptions:
    force: bool = False
    pull: str = "missing"
    accept_new_host_key: bool = False
    check_relay: bool = True
    gate_timeout: int = GATE_TIMEOUT_SECONDS


DeployResult = Literal["ok", "unchanged", "rolled-back"]


@dataclass
class DeployOutcome:
    server: str
    result: DeployResult
    revision: str
    bundle_sha256: str
    message: str
    warnings: list[str] = field(default_factory=list)
    hint: str = ""  # what to do when the deploy failed, beyond "fix the cause and deploy again"


def new_revision(digest: str, now: datetime | None = None) -> str:
    moment = now or datetime.now(UTC)
    return f"{moment:%Y%m%dT%H%M%SZ}-{digest[:8]}"


def bundle_tarball(bundle: Bundle, marker: dict[str, str]) -> bytes:
    """A gzip tar of the bundle plus the release marker, with the modes and groups the host needs."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz", format=tarfile.PAX_FORMAT) as tar:
        files = {**bundle}
        for path, f in sorted(files.items()):
            info = tarfile.TarInfo(path)
            info.size = len(f.content)
            info.mode = f.mode
            info.gid = f.group or 0
            info.mtime = 0
            tar.addfile(info, io.BytesIO(f.content))
        body = (json.dumps(marker, indent=2) + "\n").encode()
        info = tarfile.TarInfo(RELEASE_MARKER)
        info.size = len(body)
        info.mode = 0o644
        tar.addfile(info, io.BytesIO(body))
    return out.getvalue()


def _disk_full(text: str) -> bool:
    return "No space left on device" in text


def stage(host: Host, bundle: Bundle, revision: str, digest: str, progress: Progress) -> str:
    """Upload and unpack the release next to the live one; a cut connection leaves only a `.partial` dir."""
    ssh = host.ssh
    release = f"{RELEASES_DIR}/{revision}"
    partial = f"{release}.partial"
    marker = {"revision": revision, "bundle_sha256": digest, "server": host.server.name}
    payload = bundle_tarball(bundle, marker)
    progress(f"uploading {len(payload) // 1024} KiB to {release}")
    # A host that `server init` never prepared gets the releases directory here; leftovers of interrupted
    # uploads go first (they are never live).
    ssh.run(["mkdir", "-p", RELEASES_DIR], sudo=True, timeout=30)
    ssh.run(["find", RELEASES_DIR, "-maxdepth", "1", "-name", "*.partial", "-exec", "rm", "-rf", "{}", "+"],
            sudo=True, timeout=120)  # fmt: skip
    ssh.run(["mkdir", "-p", partial], sudo=True, timeout=30)
    result = ssh.run(
        ["tar", "-xzf", "-", "-C", partial, "--numeric-owner", "--same-owner", "--same-permissions"],
        sudo=True, input=payload, timeout=900, check=False,
    )  # fmt: skip
    if not result.ok:
        ssh.run(["rm", "-rf", partial], sudo=True, timeout=60, check=False)
        if _disk_full(result.error_text):
            raise OvpnError(
                f"the disk on {host.server.name} is full: the new release could not be unpacked",
                f"free space under {RELEASES_DIR} (old releases, docker images: `docker image prune`) and deploy again",
            )
        raise OvpnError(
            f"unpacking the release on {host.server.name} failed: {result.error_text}", "deploy again"
        )
    for path in KEPT_ON_HOST:
        _carry_over(ssh, path, partial)
    ssh.run(["mv", "-T", partial, release], sudo=True, timeout=30)
    return release


def _carry_over(ssh: Remote, path: str, release: str) -> None:
    """Keep a secret the operator set on the host (e.g. the bot token) when the bundle ships it empty."""
    script = 'if [ -s "$1/$3" ] && [ ! -s "$2/$3" ]; then cp -p "$1/$3" "$2/$3"; fi'
    ssh.run(["sh", "-c", script, "sh", RUNTIME_DIR, release, path], sudo=True, timeout=30)


def validate_on_host(host: Host, release: str, images: dict[str, str], pull: str, progress: Progress) -> None:
    """Check the staged release with the pinned images on the host itself before anything switches."""
    ssh = host.ssh
    progress("validating on the host: docker compose config")
    result = ssh.run(
        host.compose(["config", "--quiet"], directory=release), sudo=True, timeout=60, check=False
    )
    if not result.ok:
        raise OvpnError(
            f"docker compose rejected the new release on {host.server.name}: {result.error_text}",
            "this is a bug in the rendered bundle or a host Compose too old; see `ovpn doctor`",
        )
    progress(f"validating on the host: xray run -test ({images['xray']})")
    tested = gather(ssh, xray.config_test(images["xray"], release, geodata=host.server.is_proxy, pull=pull))
    if tested.image_missing:
        raise OvpnError(
            f"the Xray image {images['xray']} cannot be run on {host.server.name}: {tested.last_line}",
            f"nothing was switched; check the Xray version ({host.server.xray_version} is not a published "
            f"image?) and set one that is: ovpn server set {host.server.name} --xray-version V",
        )
    if not tested.ok:
        raise OvpnError(
            f"xray run -test failed on {host.server.name}: {tested.last_line or 'no output'}",
            "nothing was switched; fix the cause (image, geodata, config) and deploy again",
        )
    if host.server.is_proxy:
        progress(f"validating on the host: haproxy -c ({images['haproxy']})")
        result = ssh.run(
            ["docker", "run", "--rm", f"--pull={pull}", "--network", "none",
             "-v", f"{release}/haproxy:/usr/local/etc/haproxy:ro", images["haproxy"],
             "haproxy", "-c", "-f", "/usr/local/etc/haproxy/haproxy.cfg"],
            sudo=True, timeout=120, check=False,
        )  # fmt: skip
        if not result.ok:
            raise OvpnError(
                f"haproxy -c failed on {host.server.name}: {result.error_text}",
                "nothing was switched; deploy again after fixing the cause",
            )


def build_agent_image(
    host: Host,
    release: str,
    images: dict[str, str],
    progress: Progress,
    wheels: Sequence[tuple[str, bytes]] = (),
) -> None:
    uploaded = ensure_wheels_on_host(host.ssh, wheels)
    if uploaded:
        progress(f"uploaded the agent's wheels to {HOST_WHEEL_CACHE}: {', '.join(uploaded)}")
    progress(f"building {images['ovpn-agent']} on the host from {images['ovpn-agent-base']}")
    result = host.ssh.run(
        ["sh", "-c", BUILD_SCRIPT, "sh", release, HOST_WHEEL_CACHE, images["ovpn-agent"], images["ovpn-agent-base"]],
        sudo=True, timeout=900, check=False,
    )  # fmt: skip
    if not result.ok:
        raise OvpnError(
            f"building the agent image on {host.server.name} failed: {result.error_text[-300:]}",
            f"the base image {images['ovpn-agent-base']} must be on the host or pullable; override it with "
            "`ovpn server set NAME --image ovpn-agent-base=REF`",
        )


def switch(host: Host, release: str) -> None:
    """Point /opt/ovpn at `release` in one atomic rename."""
    host.ssh.run(["ln", "-sfn", release, f"{RUNTIME_DIR}.next"], sudo=True, timeout=30)
    host.ssh.run(["mv", "-T", f"{RUNTIME_DIR}.next", RUNTIME_DIR], sudo=True, timeout=30)


def start(host: Host, pull: str, monitoring: bool) -> None:
    """Recreate every service on the live release (Xray reads its config only at start); a running monitoring
    stack is included so that `--remove-orphans` keeps it, with the bot at scale 0 while its token is empty."""
    args = ["up", "--detach", "--remove-orphans", "--force-recreate", f"--pull={pull}",
            *host.monitoring_up_args(monitoring=monitoring)]  # fmt: skip
    result = host.ssh.run(host.compose(args, monitoring=monitoring), sudo=True, timeout=600, check=False)
    if not result.ok:
        raise OvpnError(
            f"docker compose up failed on {host.server.name}: {result.error_text}", "see `ovpn doctor`"
        )


@dataclass(frozen=True)
class GateCheck:
    name: str
    ok: bool
    detail: str
    waiting: str = ""  # what a wait on this check awaits, when `name: detail` does not say it well

    @property
    def awaited(self) -> str:
        return self.waiting or f"{self.name}: {self.detail}"


BACKEND_UP_CHECK = "haproxy backend UP"


@dataclass(frozen=True)
class GateResult:
    ok: bool
    checks: list[GateCheck]
    # A proxy's backends and their states in HAProxy, when the gate read them.
    pool: dict[str, str] = field(default_factory=dict)

    def failures(self) -> str:
        return "; ".join(f"{c.name}: {c.detail}" for c in self.checks if not c.ok)


def required_services(server: Server) -> list[str]:
    return list(RUNTIME_SERVICES[server.role])


def failing_service(gate: GateResult, server: Server) -> str | None:
    """The first required service that a failed check names: its logs go into the failure message."""
    failing = [c.name for c in gate.checks if not c.ok]
    return next((s for s in required_services(server) if any(s in name for name in failing)), None)


def health_gate(
    host: Host,
    expect_backend_up: bool,
    timeout: int,
    progress: Progress,
    *,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> GateResult:
    """Wait (bounded) until every required service runs stably, Xray listens, the agent is healthy, and on a
    proxy with backends HAProxy sees one UP; every few seconds say what is still awaited."""
    server = host.server
    required = required_services(server)
    deadline = clock() + timeout
    waiting = Waiting(progress, timeout, clock=clock)
    checks: list[GateCheck] = []
    pool: dict[str, str] = {}
    while True:
        snapshot = host.containers()
        running = [snapshot.get(s, Container(s)) for s in required]
        checks = [GateCheck(f"service {c.service}", c.healthy, c.describe(), f"{c.service}: {c.describe()}")
                  for c in running]  # fmt: skip
        if all(c.ok for c in checks):
            sleep(SETTLE_SECONDS)
            again = host.containers()
            for c in running:
                later = again.get(c.service, Container(c.service))
                stable = later.same_run(c)
                checks.append(GateCheck(f"{c.service} stays up", stable, "running" if stable else
                                        f"restarted: {(later.state, later.health, later.id)}"))  # fmt: skip
            listening = host.ssh.run(
                ["timeout", "3", "bash", "-c", f"</dev/tcp/127.0.0.1/{server.port}"], sudo=True, check=False,
                timeout=15,
            ).ok  # fmt: skip
            checks.append(GateCheck(f"xray listens on {server.port}", listening,
                                    "accepting" if listening else "no listener",
                                    f"xray to listen on {server.port}"))  # fmt: skip
            health_doc = gather(host.ssh, agent.fetch_in_agent(AGENT_HEALTH_URL))
            api_up = agent.agent_status(health_doc) == "ok"
            checks.append(GateCheck("agent healthy", api_up, "Xray API answers" if api_up else
                                    f"agent says {health_doc}"))  # fmt: skip
            if server.is_proxy and expect_backend_up:
                metrics = gather(host.ssh, agent.fetch_in_agent(HAPROXY_METRICS_URL)) or ""
                pool = pool_states(metrics)
                up = sum(state == "UP" for state in pool.values())
                checks.append(GateCheck(BACKEND_UP_CHECK, up > 0, "at least one backend UP" if up else
                                        "no backend UP", f"haproxy: {up}/{len(pool)} backends UP"))  # fmt: skip
            if all(c.ok for c in checks):
                return GateResult(True, checks, pool)
        if clock() > deadline:
            return GateResult(False, checks, pool)
        waiting.tick(", ".join(c.awaited for c in checks if not c.ok))
        sleep(2)


def rollback(host: Host, previous: LiveRelease | None, pull: str, monitoring: bool) -> str:
    if previous is None:
        host.ssh.run(host.compose(["down", "--remove-orphans"]), sudo=True, timeout=300, check=False)
        host.ssh.run(["rm", "-f", RUNTIME_DIR], sudo=True, timeout=30, check=False)
        return "there was no previous release: the services were stopped"
    switch(host, previous.directory)
    start(host, "never" if pull == "never" else "missing", monitoring)
    return f"switched back to {previous.revision}"


def prune(host: Host, keep: int = KEEP_RELEASES) -> None:
    script = (
        'cd "$1" || exit 0; live=$(basename "$(readlink -f "$2")"); '
        'ls -1d */ 2>/dev/null | sed "s#/##" | grep -v "\\.partial$" | sort -r | tail -n +$(( $3 + 1 )) | '
        'while read -r r; do [ "$r" = "$live" ] || rm -rf -- "$r"; done'
    )
    host.ssh.run(["sh", "-c", script, "sh", RELEASES_DIR, RUNTIME_DIR, str(keep)], sudo=True, timeout=120,
                 check=False)  # fmt: skip


@dataclass
class BackendReport:
    """What the backends' live configs say before a proxy deploy: `problems` refuse it, `warnings` do not."""

    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def check_backends(app: App, proxy: Server, backends: list[Server], accept_new: bool) -> BackendReport:
    """Read each backend's LIVE config: one without the pool's relay client (the seed's `invalid request user
    id` case) is a problem; one that listens on another port than the proxy will target stays DOWN in the pool
    until it is deployed, which is a warning."""
    report = BackendReport()
    for backend in backends:
        try:
            with connect(app, backend, accept_new_host_key=accept_new) as ssh:
                config = gather(ssh, xray.live_config())
        except OvpnError as e:
            report.problems.append(f"{backend.name}: cannot read its live config ({e.message})")
            continue
        if config is None:
            report.problems.append(f"{backend.name}: has no live config (never deployed)")
            continue
        if not xray.has_relay_identity(config, backend):
            report.problems.append(
                f"{backend.name}: its live config lacks {RELAY_EMAIL} with the pool's relay identity"
            )
        port = xray.live_port(config)
        if port is not None and port != backend.port:
            report.warnings.append(
                f"backend {backend.name} listens on {port}, but {proxy.name} will target {backend.port}: it stays "
                f"DOWN in the pool until `ovpn deploy {backend.name}`"
            )
    return report


def deploy(app: App, name: str, options: DeployOptions, progress: Progress) -> DeployOutcome:
    progress(f"rendering {name}")
    rendered = render_server(app, name)
    server = rendered.server
    digest = bundle_digest(rendered.bundle)
    revision = new_revision(digest)
    with app.reading() as repo:
        pool = [m.server for m in repo.pool(name)] if server.is_proxy else []
    backend_warnings: list[str] = []
    if server.is_proxy and pool and options.check_relay:
        progress("checking every attached backend's live config (relay identity, port)")
        report = check_backends(app, server, pool, options.accept_new_host_key)
        if report.problems:
            raise OvpnError(
                f"refusing to deploy proxy {name}: " + "; ".join(report.problems),
                "deploy the backend first (`ovpn deploy " + pool[0].name + "`), then the proxy",
            )
        backend_warnings = report.warnings
        for warning in backend_warnings:
            progress(f"warning: {warning}")
    with locked(app, server, "deploy", accept_new_host_key=options.accept_new_host_key) as ssh:
        host = Host(ssh, server)
        if remember_machine(app.data_dir, name, ssh.run(["uname", "-m"], timeout=30).text):
            # The bundle carries the agent's binary wheels for the host's CPU architecture.
            progress("the host's CPU architecture differs from what was assumed: rendering again for it")
            rendered = render_server(app, name)
            digest = bundle_digest(rendered.bundle)
            revision = new_revision(digest)
        previous = host.live_release()
        if previous and previous.bundle_sha256 == digest and not options.force:
            return DeployOutcome(name, "unchanged", previous.revision, digest, "the host already runs this bundle",
                                 rendered.warnings)  # fmt: skip
        changes = live_changes(host, rendered.bundle) if previous else "first release"
        backends = [s.name for s in pool]
        attempt = Attempt("deploy", revision, digest, previous, changes)
        outcome = recorded(app, host, attempt, lambda: _apply(host, rendered, attempt, backends, options, progress),
                           progress)  # fmt: skip
        outcome.warnings = [*rendered.warnings, *backend_warnings, *outcome.warnings]
        return outcome


@dataclass(frozen=True)
class Attempt:
    """One change of a host's live release, as the history records it."""

    kind: Literal["deploy", "rollback", "restore"]
    revision: str
    digest: str
    previous: LiveRelease | None
    changes: str


def recorded(
    app: App, host: Host, attempt: Attempt, run: Callable[[], DeployOutcome], progress: Progress
) -> DeployOutcome:
    """Run a change of the live release with its record in the history: `running` first, then the result;
    `interrupted` (with what the host runs now) on Ctrl-C. A successful one hands the agent the users' policy."""
    name = host.server.name
    with app.writing() as repo:
        revision_id = repo.start_revision(name, attempt.revision, attempt.digest, getpass.getuser(),
                                          kind=attempt.kind, changes=attempt.changes)  # fmt: skip
    try:
        outcome = run()
    except KeyboardInterrupt:
        stopped = interrupted(host, attempt)
        with app.writing() as repo:
            repo.finish_revision(revision_id, "interrupted", stopped.message)
        raise stopped from None
    except BaseException as e:
        message = e.message if isinstance(e, OvpnError) else f"failed: {e!r}"
        with app.writing() as repo:
            repo.finish_revision(revision_id, "failed", message)
        raise
    with app.writing() as repo:
        repo.finish_revision(revision_id, outcome.result, outcome.message)
    if outcome.result != "ok":
        raise deploy_failed(outcome, attempt.previous, attempt.kind)
    _sync_agent(app, host, outcome, progress)
    return outcome


def live_changes(host: Host, bundle: Bundle) -> str:
    """Which files the bundle changes on the live release, for the history."""
    live = gather(host.ssh, file_digests())
    return describe_changes(bundle_changes(live, bundle, KEPT_ON_HOST)) if live is not None else ""


def interrupted(host: Host, attempt: Attempt) -> Interrupted:
    """What a change stopped part-way (Ctrl-C) left live, read from the host, so that the record says the same."""
    name, what, previous = host.server.name, attempt.kind, attempt.previous
    try:
        live = host.live_release()
    except (OvpnError, KeyboardInterrupt):
        return Interrupted(f"{what} of {name} interrupted: what runs on the host now is unknown",
                           f"see `ovpn doctor {name}`, then deploy again")  # fmt: skip
    if live is not None and live.revision != (previous.revision if previous else None):
        back = (
            f"`ovpn rollback {name} --to {previous.revision}` returns to it" if previous else "deploy again"
        )
        return Interrupted(
            f"{what} of {name} interrupted after the switch: {live.revision} is live but was not health-gated",
            f"check it with `ovpn doctor {name}`; {back}",
        )
    serving = f"{live.revision} is still live" if live else "nothing is live"
    return Interrupted(f"{what} of {name} interrupted before the switch: {serving}; the host was not changed",
                       f"run the {what} again")  # fmt: skip


def deploy_failed(outcome: DeployOutcome, previous: LiveRelease | None, what: str = "deploy") -> OvpnError:
    """The error for a change that was rolled back: what failed, once, and what serves now."""
    serving = "the previous release is serving again" if previous else "nothing was running before"
    return OvpnError(
        f"{what} of {outcome.server} failed: {outcome.message}",
        f"{serving}; {outcome.hint or 'fix the cause and deploy again'}",
    )


def _sync_agent(app: App, host: Host, outcome: DeployOutcome, progress: Progress) -> None:
    """Hand the fresh agent the users' policy (quota, expiry, enabled) so that it enforces from now on."""
    with app.reading() as repo:
        users = repo.users()
    progress("syncing the users' policy to the agent")
    try:
        sync_policy(host, users)
    except OvpnError as e:
        outcome.warnings = [*outcome.warnings, f"the agent did not take the users' policy: {e.message}; "
                            "quota and expiry apply after the next user change or deploy"]  # fmt: skip


def _apply(
    host: Host,
    rendered: RenderedServer,
    attempt: Attempt,
    backends: list[str],
    options: DeployOptions,
    progress: Progress,
) -> DeployOutcome:
    release = stage(host, rendered.bundle, attempt.revision, attempt.digest, progress)
    build_agent_image(host, release, rendered.images, progress, rendered.agent_wheels)
    validate_on_host(host, release, rendered.images, options.pull, progress)
    return go_live(host, release, attempt, backends, options, progress)


def go_live(
    host: Host,
    release: str,
    attempt: Attempt,
    backends: list[str],
    options: DeployOptions,
    progress: Progress,
    *,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> DeployOutcome:
    """Switch to the validated release (the directory `release`), start it and health-gate it; switch back to
    the attempt's previous release when it fails to start or the gate fails, with the lines that show why."""
    server = host.server
    revision, digest, previous = attempt.revision, attempt.digest, attempt.previous
    monitoring = host.monitoring_running()
    progress(f"switching {RUNTIME_DIR} to {revision}")
    switch(host, release)
    progress("starting services (docker compose up)")
    try:
        start(host, options.pull, monitoring)
    except OvpnError as e:
        progress("start failed; rolling back")
        how = rollback(host, previous, options.pull, monitoring)
        return DeployOutcome(
            server.name, "rolled-back", revision, digest, f"start failed: {e.message}; {how}"
        )
    progress("health gate")
    gate = health_gate(host, bool(backends), options.gate_timeout, progress, sleep=sleep, clock=clock)
    if gate.ok:
        prune(host)
        return DeployOutcome(server.name, "ok", revision, digest, f"{revision} is live",
                             [down_backend_warning(server.name, b) for b in down_servers(gate.pool)])  # fmt: skip
    pool_down = any(c.name == BACKEND_UP_CHECK and not c.ok for c in gate.checks)
    events = gather(host.ssh, pool_log()) if pool_down else []
    culprit = failing_service(gate, server)
    logs = host.logs_tail(culprit, 15) if culprit and not events else ""
    progress(f"health gate failed ({gate.failures()}); rolling back")
    how = rollback(host, previous, options.pull, monitoring)
    message = f"health gate failed: {gate.failures()}; {how}"
    hint = ""
    if events:
        message += "\nHAProxy's checks of the pool:\n" + "\n".join(events)
    elif logs:
        message += f"\nlast log lines:\n{logs}"
    if pool_down:
        doctors = ", ".join(f"`ovpn doctor {b}`" for b in backends)
        hint = (
            f"no backend of the pool answers HAProxy's checks: see {doctors}, then deploy {server.name} again"
        )
    return DeployOutcome(server.name, "rolled-back", revision, digest, message, hint=hint)


def down_backend_warning(proxy: str, backend: str) -> str:
    """The warning for a backend that HAProxy marks DOWN while the proxy is otherwise fine."""
    return (
        f"backend {backend} is DOWN in {proxy}'s pool: foreign traffic avoids it; "
        f"fix it with `ovpn deploy {backend}` (see `ovpn doctor {backend}`)"
    )
