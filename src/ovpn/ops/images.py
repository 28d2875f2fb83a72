"""`ovpn server images list|copy`: the images a server's bundle pins, whether its host has them, and copying the
missing ones from another host of the fleet when the registry will not serve them (pull limits, no route).

A copy streams `docker save` on the source host into `docker load` on the target through this process's two SSH
connections (`ovpn.remote.relay`): the hosts need no trust in, nor a route to, each other. The target is locked for
the copy; the source is only read. Each image is checked afterwards: the target's image id must be the source's.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ovpn.core.model import Server
from ovpn.core.names import RUNTIME_SERVICES
from ovpn.errors import InvalidInput, OvpnError
from ovpn.facts.base import gather
from ovpn.facts.images import HostImage, UnreadableImages, host_images
from ovpn.ops.app import App
from ovpn.ops.deploy import Progress
from ovpn.ops.host import connect, locked
from ovpn.ops.render import render_server
from ovpn.remote.base import Remote, RemoteResult
from ovpn.remote.relay import IDLE_TIMEOUT_SECONDS, Relayed, relay
from ovpn.remote.ssh import SSH_FAILED, Ssh, classify_ssh_failure
from ovpn.render.images import SERVICES
from ovpn.render.monitoring.spec import MONITORING_SERVICES
from ovpn.state.repo import did_you_mean

AGENT = "ovpn-agent"
AGENT_BASE = "ovpn-agent-base"
MIB = 1 << 20
PROGRESS_SECONDS = 5.0


def mib(size: int) -> str:
    value = size / MIB
    return f"{value:.1f}" if value < 10 else f"{value:.0f}"


@dataclass(frozen=True)
class Wanted:
    """An image a server's bundle needs: which service, its reference, whether it belongs to the runtime or the
    monitoring stack, and whether a deploy builds it on the host (the agent's, and the bot's while it runs from
    the agent's) rather than the host getting it from a registry."""

    service: str
    ref: str
    part: str
    built_on_host: bool

    @property
    def note(self) -> str:
        if self.built_on_host:
            return "built on the host at deploy"
        return "the agent image's base" if self.service == AGENT_BASE else ""


def wanted_images(server: Server, images: Mapping[str, str]) -> list[Wanted]:
    """The images `server`'s bundle needs: its role's runtime services and the agent's base image, then the
    monitoring stack's."""
    runtime = (*RUNTIME_SERVICES[server.role], AGENT_BASE)
    return [
        Wanted(service, images[service], part, images[service] == images[AGENT])
        for part, services in (("runtime", runtime), ("monitoring", MONITORING_SERVICES))
        for service in services
    ]


@dataclass(frozen=True)
class ImageRow:
    wanted: Wanted
    found: HostImage | None

    def to_json(self) -> dict[str, object]:
        w, found = self.wanted, self.found
        return {"service": w.service, "part": w.part, "ref": w.ref, "built_on_host": w.built_on_host,
                "present": found is not None, "id": found.id if found else None,
                "size": found.size if found else None}  # fmt: skip


def read_images(remote: Remote, name: str, refs: Sequence[str]) -> dict[str, HostImage | None]:
    """Each reference's image on the server's host, or None when the host has none."""
    unique = list(dict.fromkeys(refs))
    try:
        found = gather(remote, host_images(unique)) if unique else {}
        missing_lines = [ref for ref in unique if ref not in found]
        if missing_lines:
            raise UnreadableImages(f"no answer for {', '.join(missing_lines)}")
    except UnreadableImages as e:
        raise OvpnError(
            f"cannot read the images on {name}: {e}", f"Docker must run there; see `ovpn doctor {name}`"
        ) from None
    return found


def list_images(app: App, name: str, *, accept_new_host_key: bool = False) -> list[ImageRow]:
    rendered = render_server(app, name)
    wanted = wanted_images(rendered.server, rendered.images)
    with connect(app, rendered.server, accept_new_host_key=accept_new_host_key) as ssh:
        found = read_images(ssh, name, [w.ref for w in wanted])
    return [ImageRow(w, found[w.ref]) for w in wanted]


def check_services(names: Sequence[str], target: str) -> None:
    """Refuse, before anything is read, a service ovpn does not know."""
    for name in names:
        if name not in SERVICES:
            raise InvalidInput(
                f"unknown service {name!r}", did_you_mean(name, SERVICES, f"ovpn server images list {target}")
            )


def chosen(server: Server, wanted: Sequence[Wanted], services: Sequence[str]) -> list[Wanted]:
    """The images to copy: those of `services`, by default the monitoring stack's, except the ones a deploy
    builds on the host."""
    by_service = {w.service: w for w in wanted}
    if not services:
        return [w for w in wanted if w.part == "monitoring" and not w.built_on_host]
    picked = []
    for service in dict.fromkeys(services):
        found = by_service.get(service)
        if found is None:
            raise InvalidInput(
                f"{server.name} is a {server.role} server and needs no {service} image",
                f"see `ovpn server images list {server.name}`",
            )
        if found.built_on_host:
            raise InvalidInput(
                f"the {service} image of {server.name} is built on the host at deploy, not copied",
                f"copy the image it is built from: --service {AGENT_BASE}",
            )
        picked.append(found)
    return picked


@dataclass(frozen=True)
class Transfer:
    ref: str
    services: tuple[str, ...]
    source: HostImage


@dataclass(frozen=True)
class CopyPlan:
    source: str
    target: str
    transfers: list[Transfer]
    present: list[Wanted]  # asked for, and already on the target

    @property
    def size(self) -> int:
        return sum(t.source.size for t in self.transfers)

    def lines(self) -> list[str]:
        present = ", ".join(w.service for w in self.present)
        if not self.transfers:
            return [f"nothing to copy: {self.target} has every image asked for ({present})"]
        count = len(self.transfers)
        lines = [f"would copy {count} image{'s' if count > 1 else ''} ({mib(self.size)} MiB) from {self.source} "
                 f"to {self.target}:"]  # fmt: skip
        lines += [f"  {', '.join(t.services)}: {t.ref} ({mib(t.source.size)} MiB)" for t in self.transfers]
        return lines + ([f"already on {self.target}: {present}"] if present else [])

    def to_json(self) -> dict[str, object]:
        return {
            "from": self.source,
            "to": self.target,
            "size": self.size,
            "images": [_transfer_json(t) for t in self.transfers],
            "present": [{"service": w.service, "ref": w.ref} for w in self.present],
        }


def _transfer_json(transfer: Transfer) -> dict[str, object]:
    source = transfer.source
    return {"ref": transfer.ref, "services": list(transfer.services), "size": source.size, "id": source.id}


def plan_copy(
    source: str,
    target: str,
    wanted: Sequence[Wanted],
    on_target: Mapping[str, HostImage | None],
    on_source: Mapping[str, HostImage | None],
) -> CopyPlan:
    """What the target lacks, each with the source's image; refused as a whole when the source lacks one too."""
    lacking: dict[str, list[str]] = {}
    for w in wanted:
        if on_target[w.ref] is None:
            lacking.setdefault(w.ref, []).append(w.service)
    neither = [ref for ref in lacking if on_source.get(ref) is None]
    if neither:
        named = ", ".join(f"{ref} ({', '.join(lacking[ref])})" for ref in neither)
        raise OvpnError(
            f"{source} does not have {named} either: nothing was copied",
            f"copy from a host that has {'it' if len(neither) == 1 else 'them'} (--from), or load "
            f"{'it' if len(neither) == 1 else 'them'} on {source} first",
        )
    transfers = []
    for ref, services in lacking.items():
        found = on_source[ref]
        assert found is not None
        transfers.append(Transfer(ref, tuple(services), found))
    return CopyPlan(source, target, transfers, [w for w in wanted if on_target[w.ref] is not None])


@dataclass(frozen=True)
class Copied:
    ref: str
    bytes: int
    seconds: float
    id: str

    def to_json(self) -> dict[str, object]:
        return {"ref": self.ref, "bytes": self.bytes, "seconds": round(self.seconds, 1), "id": self.id}


def copy_one(
    source: Remote, target: Remote, plan: CopyPlan, transfer: Transfer, progress: Progress
) -> Copied:
    """Stream one image from the source's `docker save` into the target's `docker load`, then compare ids."""
    ref, expected = transfer.ref, transfer.source
    progress(f"copying {ref} ({mib(expected.size)} MiB) from {plan.source}")
    started = time.monotonic()
    load = target.pipe(["docker", "load"], sudo=True)
    save = source.pipe(["docker", "save", ref], sudo=True)
    relayed = relay(save, load, lambda sent: progress(f"copying {ref}: {mib(sent)}/{mib(expected.size)} MiB"),
                    report_every=PROGRESS_SECONDS)  # fmt: skip
    if relayed.failed is not None:
        raise _cut(plan, ref, relayed, source if relayed.failed == "source" else target)
    after = read_images(target, plan.target, [ref])[ref]
    if after is None:
        raise OvpnError(
            f"docker load on {plan.target} succeeded, but {plan.target} has no {ref} afterwards",
            "docker save and load keep tags, not digest pins: give the image by tag "
            f"(`ovpn server set {plan.target} --image SERVICE=REF`)",
        )
    if after.id != expected.id:
        raise OvpnError(
            f"after the copy {plan.target} has {ref} as {after.short_id}, but {plan.source} has it as "
            f"{expected.short_id}",
            f"the image changed on a host during the copy; run the copy again and compare with "
            f"`ovpn server images list {plan.target}`",
        )
    seconds = time.monotonic() - started
    progress(
        f"copied {ref}: {mib(relayed.sent)} MiB in {seconds:.1f} s, image id {after.short_id} on both hosts"
    )
    return Copied(ref, relayed.sent, seconds, after.id)


def _cut(plan: CopyPlan, ref: str, relayed: Relayed, side: Remote) -> OvpnError:
    """One line for a stream that broke: which host's side, which command, how far it got and why."""
    on_source = relayed.failed == "source"
    host = plan.source if on_source else plan.target
    result = relayed.source if on_source else relayed.target
    if relayed.stalled:
        why = f"no data moved for {IDLE_TIMEOUT_SECONDS} s"
    elif result.returncode == SSH_FAILED:
        why = classify_ssh_failure(side.target, result.error_text).message
    else:
        why = _last_line(result)
    return OvpnError(
        f"copying {ref} failed on {host}'s side ({'docker save' if on_source else 'docker load'}, after "
        f"{mib(relayed.sent)} MiB): {why}",
        f"{plan.target} has no part of {ref} (docker load takes an image whole or not at all), and the images "
        f"copied before it stay; fix {host}, then run the copy again",
    )


def _last_line(result: RemoteResult) -> str:
    lines = (result.error_text or result.text.strip()).splitlines()
    return f"{lines[-1]} (exit {result.returncode})" if lines else f"exit {result.returncode}"


@dataclass(frozen=True)
class CopyOutcome:
    plan: CopyPlan
    copied: list[Copied]
    planned_only: bool

    def to_json(self) -> dict[str, object]:
        return {
            **self.plan.to_json(),
            "plan": self.planned_only,
            "copied": [c.to_json() for c in self.copied],
        }


def copy_images(
    app: App,
    source_name: str,
    target_name: str,
    services: Sequence[str] = (),
    *,
    plan_only: bool = False,
    progress: Progress,
    accept_new_host_key: bool = False,
) -> CopyOutcome:
    check_services(services, target_name)
    if source_name == target_name:
        raise InvalidInput(
            f"--from and --to name the same server ({source_name})", "copy from another host of the fleet"
        )
    with app.reading() as repo:
        source = repo.server(source_name)
        target = repo.server(target_name)
    rendered = render_server(app, target_name)
    wanted = chosen(target, wanted_images(target, rendered.images), services)
    with _target_host(app, target, plan_only, accept_new_host_key) as on_target:
        target_images = read_images(on_target, target_name, [w.ref for w in wanted])
        lacking = [w.ref for w in wanted if target_images[w.ref] is None]
        if not lacking:
            return CopyOutcome(plan_copy(source_name, target_name, wanted, target_images, {}), [], plan_only)
        with connect(app, source, accept_new_host_key=accept_new_host_key) as on_source:
            plan = plan_copy(source_name, target_name, wanted, target_images,
                             read_images(on_source, source_name, lacking))  # fmt: skip
            if plan_only:
                return CopyOutcome(plan, [], True)
            copied = [copy_one(on_source, on_target, plan, t, progress) for t in plan.transfers]
    return CopyOutcome(plan, copied, False)


def _target_host(
    app: App, server: Server, plan_only: bool, accept_new_host_key: bool
) -> contextlib.AbstractContextManager[Ssh]:
    """The target's connection: a plan only reads it; a copy holds its lock throughout."""
    if plan_only:
        return connect(app, server, accept_new_host_key=accept_new_host_key)
    return locked(app, server, "images copy", accept_new_host_key=accept_new_host_key)
