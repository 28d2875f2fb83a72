"""Run every real validator that is installed on a rendered bundle and report each one."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ovpn.ops.app import App
from ovpn.ops.files import write_bundle
from ovpn.ops.render import render_server

Status = Literal["passed", "failed", "skipped", "warning"]
TIMEOUT_SECONDS = 120


@dataclass(frozen=True)
class CheckResult:
    name: str
    status: Status
    message: str


def find_tool(name: str, env: Mapping[str, str]) -> str | None:
    override = env.get(f"OVPN_{name.upper()}_BIN")
    if override:
        return override if os.access(override, os.X_OK) else None
    return shutil.which(name, path=env.get("PATH"))


def _compose_command(env: Mapping[str, str]) -> list[str] | None:
    docker = find_tool("docker", env)
    if docker:
        probe = subprocess.run(
            [docker, "compose", "version"], capture_output=True, env=dict(env), timeout=30, check=False
        )
        if probe.returncode == 0:
            return [docker, "compose"]
    legacy = find_tool("docker-compose", env)
    return [legacy] if legacy else None


def _run(name: str, argv: Sequence[str], env: Mapping[str, str], cwd: Path) -> CheckResult:
    try:
        proc = subprocess.run(
            list(argv),
            capture_output=True,
            text=True,
            env=dict(env),
            cwd=cwd,
            timeout=TIMEOUT_SECONDS,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return CheckResult(name, "failed", f"timed out after {TIMEOUT_SECONDS}s: {' '.join(argv)}")
    output = (proc.stdout + proc.stderr).strip()
    if proc.returncode != 0:
        return CheckResult(name, "failed", output or f"exit code {proc.returncode}")
    lines = output.splitlines()
    verdicts = [ln for ln in lines if any(w in ln for w in ("OK", "valid", "SUCCESS"))]
    return CheckResult(name, "passed", (verdicts or lines or ["ok"])[-1].strip())


def validate_bundle(bundle_dir: Path, env: Mapping[str, str] = os.environ) -> list[CheckResult]:
    """Validate a bundle written by `write_bundle`; each validator is passed, failed or skipped."""
    results: list[CheckResult] = []
    files = {p.relative_to(bundle_dir).as_posix() for p in bundle_dir.rglob("*") if p.is_file()}

    def tool_or_skip(name: str, tool: str) -> str | None:
        found = find_tool(tool, env)
        if found is None:
            results.append(CheckResult(name, "skipped", f"{tool} is not installed"))
        return found

    xray = tool_or_skip("xray", "xray")
    if xray:
        with tempfile.TemporaryDirectory() as empty_assets:
            assets = bundle_dir / "geodata" if "geodata/geosite.dat" in files else Path(empty_assets)
            xray_env = {**env, "XRAY_LOCATION_ASSET": str(assets)}
            results.append(
                _run("xray", [xray, "run", "-test", "-c", "xray/config.json"], xray_env, bundle_dir)
            )

    if "haproxy/haproxy.cfg" in files:
        haproxy = tool_or_skip("haproxy", "haproxy")
        if haproxy:
            results.append(_run("haproxy", [haproxy, "-c", "-f", "haproxy/haproxy.cfg"], env, bundle_dir))

    promtool = tool_or_skip("promtool", "promtool")
    if promtool:
        results.append(
            _run(
                "promtool config",
                [promtool, "check", "config", "--syntax-only", "monitoring/prometheus/prometheus.yml"],
                env,
                bundle_dir,
            )
        )
        rules = sorted(f for f in files if f.startswith("monitoring/prometheus/rules/"))
        results.append(_run("promtool rules", [promtool, "check", "rules", *rules], env, bundle_dir))

    amtool = tool_or_skip("amtool", "amtool")
    if amtool:
        results.append(
            _run(
                "amtool",
                [amtool, "check-config", "monitoring/alertmanager/alertmanager.yml"],
                env,
                bundle_dir,
            )
        )

    compose = _compose_command(env)
    if compose is None:
        results.append(
            CheckResult("compose", "skipped", "neither `docker compose` nor docker-compose is installed")
        )
    else:
        compose_files = [a for f in sorted(files) if f.startswith("docker-compose") for a in ("-f", f)]
        argv = [*compose, "--project-directory", ".", "--env-file", ".env", *compose_files, "config", "-q"]
        results.append(_run("compose", argv, env, bundle_dir))
    return results


@dataclass(frozen=True)
class ServerValidation:
    """A server's bundle as written to `bundle_dir`, its render warnings and each validator's verdict."""

    bundle_dir: Path
    warnings: list[str]
    results: list[CheckResult]

    @property
    def failed(self) -> list[CheckResult]:
        return [r for r in self.results if r.status == "failed"]


def render_and_validate(app: App, server_name: str, bundle_dir: Path) -> ServerValidation:
    """Render the server's bundle, write it to `bundle_dir` and run every installed validator on it."""
    rendered = render_server(app, server_name)
    write_bundle(rendered.bundle, bundle_dir)
    return ServerValidation(bundle_dir, rendered.warnings, validate_bundle(bundle_dir))


def validate_server(app: App, server_name: str) -> ServerValidation:
    """`render_and_validate` in a temporary directory, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="ovpn-validate-") as tmp:
        return render_and_validate(app, server_name, Path(tmp) / "bundle")
