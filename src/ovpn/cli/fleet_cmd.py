"""Commands that touch hosts: `deploy`, `restart`, and `server init|status|logs`."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

import click

from ovpn.cli.context import Context
from ovpn.cli.output import emit_json, error_document, json_option, table, warn

if TYPE_CHECKING:
    from ovpn.ops.deploy import DeployOptions, DeployOutcome, Progress

_echo_lock = threading.Lock()
Command = TypeVar("Command", bound=Callable[..., object])


def _progress(prefix: str, quiet: bool) -> Progress:
    def report(message: str) -> None:
        if not quiet:
            with _echo_lock:
                click.echo(f"[{prefix}] {message}", err=True)

    return report


def _options(
    force: bool, pull: str, accept_new_host_key: bool, no_relay_check: bool, gate_timeout: int
) -> DeployOptions:
    from ovpn.ops.deploy import DeployOptions

    return DeployOptions(force=force, pull=pull, accept_new_host_key=accept_new_host_key,
                         check_relay=not no_relay_check, gate_timeout=gate_timeout)  # fmt: skip


pull_option = click.option(
    "--pull",
    type=click.Choice(["missing", "never", "always"]),
    default="missing",
    show_default=True,
    help="Image pull policy on the host.",
)
gate_timeout_option = click.option(
    "--gate-timeout",
    type=click.IntRange(10, 3600),
    default=90,
    show_default=True,
    metavar="SECONDS",
    help="How long the health gate waits for the services (and a proxy's backends) before rolling back.",
)
deploy_options = [
    click.option("--force", is_flag=True, help="Deploy even when the host already runs this bundle."),
    pull_option,
    gate_timeout_option,
    click.option("--accept-new-host-key", is_flag=True, help="First contact: pin the host's SSH key."),
    click.option(
        "--no-relay-check", is_flag=True, help="Proxies: skip checking the backends' live relay identity."
    ),
    json_option,
]


def with_deploy_options(f: Command) -> Command:
    for option in reversed(deploy_options):
        f = option(f)
    return f


def _report(outcome: DeployOutcome, as_json: bool, done: str = "deployed") -> None:
    if as_json:
        emit_json(outcome.__dict__)
        return
    for message in outcome.warnings:
        warn(message)
    verb = {"ok": done, "unchanged": "unchanged:"}.get(outcome.result, outcome.result)
    click.echo(f"{outcome.server}: {verb} {outcome.revision} ({outcome.message})")


@click.command()
@click.argument("name", required=False)
@click.option("--all", "all_servers", is_flag=True, help="Every server, in parallel.")
@click.option(
    "--jobs", type=click.IntRange(1, 32), default=4, show_default=True, help="Parallel hosts for --all."
)
@click.option("--plan", "plan_only", is_flag=True, help="Show what would change on the host; touch nothing.")
@click.option("--reveal-secrets", is_flag=True, help="With --plan: show keys, UUIDs and tokens in the diffs.")
@with_deploy_options
@click.pass_obj
def deploy(ctx: Context, /, name: str | None, all_servers: bool, jobs: int, plan_only: bool, reveal_secrets: bool,
           force: bool, pull: str, gate_timeout: int, accept_new_host_key: bool, no_relay_check: bool,
           as_json: bool) -> None:  # fmt: skip
    """Render, stage, validate on the host, switch, health-gate; roll back automatically on failure.

    `--plan` masks secrets in its diffs (a changed one shows a different `<secret TAG>`) unless --reveal-secrets.
    `ovpn deploy history NAME` lists the server's deploys, rollbacks and restores."""
    from ovpn.errors import OvpnError
    from ovpn.ops.deploy import deploy as do_deploy
    from ovpn.ops.fleet_deploy import deploy_all

    options = _options(force, pull, accept_new_host_key, no_relay_check, gate_timeout)
    if all_servers == (name is not None):
        raise OvpnError(
            "give one server name or --all", "for example `ovpn deploy vpn-1` or `ovpn deploy --all`"
        )
    if reveal_secrets and not plan_only:
        raise OvpnError(
            "--reveal-secrets works with --plan", "run `ovpn deploy NAME --plan --reveal-secrets`"
        )
    if plan_only:
        if name is None:
            raise OvpnError("--plan works on one server", "run `ovpn deploy NAME --plan`")
        _print_plan(
            ctx, name, as_json, accept_new_host_key=accept_new_host_key, reveal_secrets=reveal_secrets
        )
        return
    if name is not None:
        _report(do_deploy(ctx.app, name, options, _progress(name, as_json)), as_json)
        return
    fleet = deploy_all(ctx.app, options, jobs, lambda server_name: _progress(server_name, as_json))
    if as_json:
        emit_json({n: (error_document(r.message, r.hint) if isinstance(r, OvpnError) else r.__dict__)
                   for n, r in fleet.results.items()})  # fmt: skip
    else:
        rows = [(n, "FAILED", r.message) if isinstance(r, OvpnError) else (n, r.result, r.revision)
                for n, r in fleet.results.items()]  # fmt: skip
        table(["Server", "Result", "Revision / error"], rows, title=f"deploy --all in {fleet.seconds:.1f}s")
    if fleet.failed:
        click.get_current_context().exit(1)


def _print_plan(
    ctx: Context, name: str, as_json: bool, *, accept_new_host_key: bool, reveal_secrets: bool
) -> None:
    from ovpn.ops.plan import plan

    result = plan(ctx.app, name, accept_new_host_key=accept_new_host_key, reveal_secrets=reveal_secrets)
    if as_json:
        emit_json({"server": name, "live_revision": result.live_revision,
                   "changes": [c.__dict__ for c in result.changes], "warnings": result.warnings})  # fmt: skip
        return
    for message in result.warnings:
        warn(message)
    click.echo(f"{name}: live release {result.live_revision or '(none)'}")
    if result.empty:
        click.echo("no changes: a deploy would leave the host as it is")
        return
    for change in result.changes:
        click.echo(f"  {change.change:8} {change.path}")
        for line in change.diff:
            click.echo(f"           {line}")


@click.command("history")
@click.argument("name")
@click.option("--limit", type=int, default=20, show_default=True, help="How many revisions, newest first.")
@json_option
@click.pass_obj
def deploy_history(ctx: Context, /, name: str, limit: int, as_json: bool) -> None:
    """A server's deploys, rollbacks and restores, newest first: when, by whom, the result and what changed."""
    from ovpn.ops.history import history

    revisions = history(ctx.app, name, limit)
    if as_json:
        emit_json({"server": name, "revisions": [r.__dict__ for r in revisions]})
        return
    rows = [(r.started_at.replace("T", " ")[:19], r.revision, r.kind, r.result, r.operator,
             r.changes if r.result in ("ok", "unchanged", "running") else r.message.splitlines()[0] if r.message
             else "") for r in revisions]  # fmt: skip
    if not rows:
        click.echo(f"{name}: nothing deployed yet")
        return
    table(
        ["Started (UTC)", "Revision", "Kind", "Result", "By", "Changed / why"], rows, title=f"{name}: history"
    )


@click.command()
@click.argument("name")
@click.option(
    "--to",
    "to",
    metavar="REVISION",
    help="A release kept on the host (default: the one before the live one).",
)
@pull_option
@gate_timeout_option
@click.option("--accept-new-host-key", is_flag=True, help="First contact: pin the host's SSH key.")
@json_option
@click.pass_obj
def rollback(
    ctx: Context,
    /,
    name: str,
    to: str | None,
    pull: str,
    gate_timeout: int,
    accept_new_host_key: bool,
    as_json: bool,
) -> None:
    """Switch back to a release kept on the host, through the deploy's health gate (switched back again when it
    fails). `ovpn deploy history NAME` shows the revisions."""
    from ovpn.ops.history import roll_back

    options = _options(False, pull, accept_new_host_key, True, gate_timeout)
    _report(roll_back(ctx.app, name, to, options, _progress(name, as_json)), as_json, "rolled back to")


@click.command()
@click.argument("name")
@click.option("--service", help="One service (default: xray, ovpn-agent and haproxy).")
@click.pass_obj
def restart(ctx: Context, /, name: str, service: str | None) -> None:
    """Restart a server's services."""
    from ovpn.ops.fleet import restart as do_restart

    restarted = do_restart(ctx.app, name, service, _progress(name, False))
    click.echo(f"{name}: restarted {', '.join(restarted)}; running again")


@click.command("init")
@click.argument("name")
@with_deploy_options
@click.pass_obj
def init(ctx: Context, /, name: str, force: bool, pull: str, gate_timeout: int, accept_new_host_key: bool,
         no_relay_check: bool, as_json: bool) -> None:  # fmt: skip
    """Prepare a host (checks, Docker, /opt/ovpn-releases) and deploy it."""
    from ovpn.ops.fleet import init as do_init

    options = _options(force, pull, accept_new_host_key, no_relay_check, gate_timeout)
    _report(do_init(ctx.app, name, options, _progress(name, as_json)), as_json)


@click.command("status")
@click.argument("name")
@json_option
@click.pass_obj
def status(ctx: Context, /, name: str, as_json: bool) -> None:
    """Show the state of the server's services: its role's runtime services (`missing` without a container), then
    any other container of the project (see docs/operations.md for the --json shape)."""
    from ovpn.ops.fleet import status as do_status

    services = do_status(ctx.app, name)
    if as_json:
        emit_json({"server": name, "services": [
            {"service": c.service, "container": c.name, "state": c.state, "health": c.health, "status": c.status}
            for c in services
        ]})  # fmt: skip
        return
    table(
        ["Service", "Container", "State", "Health", "Status"],
        [(c.service, c.name, c.state, c.health, c.status) for c in services],
    )


@click.command("logs")
@click.argument("name")
@click.option("--service", help="One service (default: all).")
@click.option("--tail", type=int, default=200, show_default=True)
@click.option("--follow", is_flag=True, help="Keep streaming.")
@click.pass_obj
def logs(ctx: Context, /, name: str, service: str | None, tail: int, follow: bool) -> None:
    """Show a server's service logs."""
    from ovpn.ops.fleet import logs as do_logs

    for line in do_logs(ctx.app, name, service, tail, follow):
        click.echo(line)


_MARKS = {"pass": "ok  ", "warn": "WARN", "fail": "FAIL", "skip": "skip"}


@click.command()
@click.argument("name")
@json_option
@click.option("--include-logs", is_flag=True, help="Append the last log lines of the runtime services.")
@click.option(
    "--tail", type=int, default=100, show_default=True, help="Log lines per service with --include-logs."
)
@click.option("--accept-new-host-key", is_flag=True, help="First contact: pin the host's SSH key.")
@click.pass_obj
def doctor(
    ctx: Context, /, name: str, as_json: bool, include_logs: bool, tail: int, accept_new_host_key: bool
) -> None:
    """Check a server end to end; exit 0 when healthy, 1 with warnings, 2 with failures."""
    from ovpn.ops.doctor import doctor as do_doctor
    from ovpn.ops.doctor import worst
    from ovpn.ops.fleet import recent_logs

    checks = do_doctor(ctx.app, name, _progress(name, as_json), accept_new_host_key=accept_new_host_key)
    ssh_ok = any(c.name == "ssh" and c.status == "pass" for c in checks)
    logs = recent_logs(ctx.app, name, tail) if include_logs and ssh_ok else {}
    if as_json:
        emit_json(
            {"server": name, "exit_code": worst(checks), "checks": [c.__dict__ for c in checks], "logs": logs}
        )
    else:
        for c in checks:
            click.echo(f"[{_MARKS[c.status]}] {c.name:18} {c.message}")
            if c.hint and c.status in ("warn", "fail"):
                click.echo(f"       hint: {c.hint}")
        for service, lines in logs.items():
            click.echo(f"\n--- {service} (last {tail} lines)")
            for line in lines:
                click.echo(line)
    click.get_current_context().exit(worst(checks))
