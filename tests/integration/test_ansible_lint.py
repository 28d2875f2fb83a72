"""The Ansible baseline's static checks: ansible-lint (production profile), --syntax-check, defaults, docs, inventory.

No host is contacted here: ansible-lint and `--syntax-check` read files, `ansible-inventory` parses a file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.conftest import missing_tool

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
ANSIBLE_DIR = ROOT / "ansible"
GROUP_VARS_ALL = ANSIBLE_DIR / "inventories" / "production" / "group_vars" / "all" / "main.yml"
PLAYBOOKS = ("bootstrap.yml", "security.yml")
# Required with no default (the inventory check asserts it), documented as a comment in group_vars/all/main.yml.
REQUIRED = ("ovpn_deploy_user_ssh_public_keys",)


def ansible_tool(name: str) -> Path:
    """ansible-core's and ansible-lint's commands from this virtualenv (the `test` extra installs them)."""
    path = Path(sys.executable).parent / name
    if not path.exists():
        missing_tool(
            f"{name} not found next to {sys.executable}; install the test extra: pip install -e '.[test]'"
        )
    return path


def run_in_ansible_dir(argv: list[str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": "ansible.cfg",
        "ANSIBLE_NOCOLOR": "1",
        "NO_COLOR": "1",
        "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '/usr/bin:/bin')}",
    }
    return subprocess.run(
        argv, cwd=ANSIBLE_DIR, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def role_defaults() -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for path in sorted((ANSIBLE_DIR / "roles").glob("*/defaults/main.yml")):
        merged.update(yaml.safe_load(path.read_text()) or {})
    return merged


def test_ansible_lint_passes_the_production_profile() -> None:
    proc = run_in_ansible_dir([str(ansible_tool("ansible-lint")), "--profile", "production", "--offline"])
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert "Profile 'production' was required, and it passed" in proc.stdout + proc.stderr


@pytest.mark.parametrize("playbook", PLAYBOOKS)
def test_playbooks_pass_the_syntax_check(playbook: str) -> None:
    proc = run_in_ansible_dir(
        [
            str(ansible_tool("ansible-playbook")),
            "-i",
            "inventories/production/hosts.yml",
            f"playbooks/{playbook}",
            "--syntax-check",
        ]
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_group_vars_name_every_role_default_with_the_same_value() -> None:
    """group_vars/all/main.yml is where operators read the tunables: it must match the roles' own defaults."""
    documented = yaml.safe_load(GROUP_VARS_ALL.read_text())
    defaults = role_defaults()
    defaults.pop("ovpn_packages_names")  # set by the including role, not a tunable
    assert sorted(documented) == sorted(defaults)
    assert {k: v for k, v in documented.items() if documented[k] != defaults[k]} == {}
    for name in REQUIRED:
        assert name not in defaults and f"# {name}:" in GROUP_VARS_ALL.read_text()


def test_docs_describe_every_tunable() -> None:
    docs = (ROOT / "docs" / "ansible.md").read_text()
    names = [*yaml.safe_load(GROUP_VARS_ALL.read_text()), *REQUIRED]
    assert [name for name in names if f"`{name}`" not in docs] == []


def test_the_example_inventory_parses_into_the_two_groups() -> None:
    proc = run_in_ansible_dir(
        [str(ansible_tool("ansible-inventory")), "-i", "inventories/production/hosts.yml", "--list"]
    )
    assert proc.returncode == 0, proc.stderr
    listed = json.loads(proc.stdout)
    assert sorted(listed["vpn_servers"]["hosts"]) == ["vpn-1", "vpn-2"]
    assert listed["proxy_servers"]["hosts"] == ["proxy-ru"]


def test_ansible_reads_the_inventory_that_ovpn_prints(tmp_path: Path) -> None:
    """`ovpn ansible inventory` output, YAML and JSON, is an inventory ansible-inventory accepts as is."""
    ovpn = [sys.executable, "-m", "ovpn", "--data-dir", str(tmp_path / "state")]
    for command in (
        [
            "server",
            "add",
            "--name",
            "proxy-ru",
            "--role",
            "proxy",
            "--host",
            "198.51.100.7",
            "--ssh-port",
            "2222",
        ],
        [
            "server",
            "add",
            "--name",
            "vpn-nl",
            "--role",
            "vpn",
            "--host",
            "203.0.113.10",
            "--ssh-user",
            "ovpn",
        ],
    ):
        subprocess.run([*ovpn, *command], check=True, capture_output=True, timeout=60)
    for suffix, extra in ((".yml", []), (".json", ["--json"])):
        out = tmp_path / f"hosts{suffix}"
        subprocess.run([*ovpn, "ansible", "inventory", *extra, "--out", str(out)], check=True, timeout=60)
        proc = run_in_ansible_dir([str(ansible_tool("ansible-inventory")), "-i", str(out), "--list"])
        assert proc.returncode == 0, proc.stderr
        listed = json.loads(proc.stdout)
        assert listed["proxy_servers"]["hosts"] == ["proxy-ru"]
        assert listed["vpn_servers"]["hosts"] == ["vpn-nl"]
        hostvars = listed["_meta"]["hostvars"]
        assert hostvars["proxy-ru"]["ansible_port"] == 2222
        assert hostvars["proxy-ru"]["ovpn_server_role"] == "proxy"
        assert hostvars["vpn-nl"]["ansible_user"] == "ovpn"
