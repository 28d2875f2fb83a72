"""The Ansible inventory that ovpn's state implies: one host per server, grouped by role.

Ansible prepares the hosts (ansible/, docs/ansible.md) and ovpn runs them; both must agree on which host is a
proxy. Generating the inventory from the state makes that agreement structural: a server's role picks its group,
and the host carries its role so the playbooks' inventory check can refuse a hand-edited group that disagrees.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ovpn.core.model import Role, Server

# Inventory group of each ovpn role (the names the playbooks and the seed use).
GROUP_OF_ROLE: dict[Role, str] = {"vpn": "vpn_servers", "proxy": "proxy_servers"}
GROUPS: tuple[str, ...] = tuple(GROUP_OF_ROLE.values())


def host_vars(server: Server) -> dict[str, Any]:
    """Connection variables and the facts the baseline checks, for one server."""
    found: dict[str, Any] = {
        "ansible_host": server.host,
        "ansible_port": server.ssh_port,
        "ansible_user": server.ssh_user,
    }
    if server.ssh_identity:
        found["ansible_ssh_private_key_file"] = server.ssh_identity
    found["ovpn_server_role"] = server.role
    found["ovpn_server_public_port"] = server.port
    return found


def build_inventory(servers: Iterable[Server]) -> dict[str, Any]:
    """The YAML inventory document: `all.children.<group>.hosts.<name>` with host variables, names sorted.

    Both groups are always present (possibly empty), so `--limit` and `groups['proxy_servers']` work either way.
    """
    children: dict[str, dict[str, Any]] = {group: {"hosts": {}} for group in GROUPS}
    for server in sorted(servers, key=lambda s: s.name):
        children[GROUP_OF_ROLE[server.role]]["hosts"][server.name] = host_vars(server)
    return {"all": {"children": children}}
