"""The HA topology in network namespaces, built from what `ovpn` renders.

Hosts (all on one bridge, one test range, link routes only):

* `client`   - real Xray clients with the configs `ovpn user link --format xray-json` prints;
* `proxy`    - real Xray with the proxy bundle's `xray/config.json` and real HAProxy with its `haproxy.cfg`;
               `haproxy` resolves to 127.0.0.1 there, as the compose service name does in production;
* `vpn-1`, `vpn-2` - real Xray with the backend bundles (priority 100 and 200: active and backup);
* `internet` - HTTP and HTTPS on several addresses and names (tests/lab/internet_server.py), recording the
               source address of every request, and the TLS 1.3 site that every REALITY server uses as target.

All state goes through the real CLI (`server add`, `server backend attach`, `user add`, `config render`,
`user link`, `route explain`): only addresses, ports and the REALITY target differ from production.
Each backend is rendered twice: before the attach (`pre`, no relay identity: what a not-yet-redeployed backend
runs) and after it (`post`).

The lab's geodata is written by ovpn's own writer. The whole lab sits in one private range, so its `private`
category is one /24 of that range and its `ru` category another: every other lab address counts as foreign.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ovpn.geodata.dat import DomainRule, DomainType, write_geoip, write_geosite
from tests.lab.net import Host, LabNetwork
from tests.lab.procs import netns_argv, run
from tests.support.procs import LabError, Proc, Processes, wait_until
from tests.support.tools import agent_wheel_cache, tools_bin_dir

LAB_DIR = Path(__file__).resolve().parent
REPO = LAB_DIR.parent.parent

# Host offsets inside the lab range (a /16 by default: 1*256+10 is x.y.1.10).
CLIENT, PROXY, VPN_1, VPN_2 = 256 + 10, 256 + 20, 256 + 31, 256 + 32
WEB_FOREIGN, WEB_RU, TLS_TARGET, WEB_FOREIGN_IP = 512 + 10, 512 + 20, 512 + 50, 768 + 60
WEB_GEOIP_RU, WEB_PRIVATE = 8 * 256 + 30, 9 * 256 + 40
GEOIP_RU_NET, GEOIP_PRIVATE_NET = 8 * 256, 9 * 256

REALITY_NAME = "tls-target.lab.test"
POOL_SHORT_ID = "0123456789abcdef"
INSIDE_ONLY_DOMAIN = "inside-only.test"  # listed in the lab's geosite:ru-available-only-inside
NAMES = {  # name -> internet address offset
    REALITY_NAME: TLS_TARGET,
    "www.foreign-news.test": WEB_FOREIGN,
    f"portal.{INSIDE_ONLY_DOMAIN}": WEB_RU,
    "shop.lab-market.ru": WEB_RU,
    "forum.lab-old.su": WEB_RU,
    "xn--80aswg.xn--p1ai": WEB_RU,
}
SERVER_NAMES = {"proxy-ru": PROXY, "vpn-1": VPN_1, "vpn-2": VPN_2}
HOST_SERVICE_PORT = 9090  # the agent's port: each server namespace runs a stand-in listening there
LOOPBACK_NAMES = ("agent.lab-market.ru", "agent.foreign-news.test")
"""Public-looking names that every server's resolver answers with 127.0.0.1 (a hostile or broken DNS record)."""
LAN_NAME = "agent-lan.lab-market.ru"
"""A name every server resolves to its own lab address, as a name could point at the compose network."""
PRIORITIES = {"vpn-1": 100, "vpn-2": 200}
SOCKS_PORTS = {"alice@proxy-ru": 10808, "bob@vpn-2": 10809, "alice@vpn-1": 10810, "carol@vpn-1": 10811}
"""The lab's clients: `carol` is removed after her link was printed, so vpn-1's post-attach bundle lacks her."""
XRAY_PORT = 443


class LabUnavailable(Exception):
    """This machine cannot run the lab (not root, no `ip netns`, a tool missing)."""


@dataclass(frozen=True)
class Tools:
    xray: Path
    haproxy: Path


def find_tools() -> Tools:
    if os.geteuid() != 0:
        raise LabUnavailable("the namespace lab needs root (ip netns, veth, bridge)")
    if shutil.which("ip") is None:
        raise LabUnavailable("iproute2 (`ip`) is not installed")
    tools_bin = tools_bin_dir()
    xray = tools_bin / "xray"
    if not os.access(xray, os.X_OK):
        raise LabUnavailable(f"xray not found at {xray}; run .ci/install-tools")
    haproxy = shutil.which("haproxy") or "/usr/sbin/haproxy"
    if not os.access(haproxy, os.X_OK):
        raise LabUnavailable("haproxy not found; run .ci/install-tools")
    probe = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        raise LabUnavailable(f"`ip netns list` failed: {probe.stderr.strip()}")
    return Tools(xray, Path(haproxy))


def listening(pid: int, port: int) -> bool:
    """Whether a TCP socket listens on `port` in the network namespace of process `pid` (read from /proc)."""
    for table in ("tcp", "tcp6"):
        try:
            lines = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        except OSError:
            return False
        for line in lines:
            fields = line.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                return True
    return False


def write_certificate(
    directory: Path, names: Sequence[str], addresses: Sequence[str]
) -> tuple[Path, Path, Path]:
    """A lab CA and one leaf certificate for every lab name and address (EC P-256: cheap handshakes)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ovpn lab CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = [x509.DNSName(n) for n in names]
    sans += [x509.IPAddress(ipaddress.ip_address(a)) for a in addresses]
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    ca_path, cert_path, key_path = directory / "ca.pem", directory / "cert.pem", directory / "key.pem"
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(
        leaf.public_bytes(serialization.Encoding.PEM) + ca.public_bytes(serialization.Encoding.PEM)
    )
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return ca_path, cert_path, key_path


def haproxy_fd_override(config: Path) -> list[str]:
    """`-n N` when this machine cannot give HAProxy the file descriptors the file's global `maxconn` needs.

    HAProxy needs about two descriptors per connection and raises its own limit when it can; without
    CAP_SYS_RESOURCE (withheld here: the hard RLIMIT_NOFILE is 20000) it refuses to start. `-n` takes precedence
    over the file's `maxconn`, so the file stays exactly as rendered; a lab never gets near either limit.
    """
    match = re.search(r"^global\n(?:[ \t]+.*\n)*?[ \t]+maxconn[ \t]+(\d+)", config.read_text(), re.MULTILINE)
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if match is None or hard == resource.RLIM_INFINITY or hard >= 2 * int(match.group(1)) + 100:
        return []
    return ["-n", str((hard - 100) // 2)]


class Lab:
    """A running lab. Build it with `lab_session()`; it tears itself down when the session ends."""

    def __init__(self, work: Path, tools: Tools) -> None:
        self.work = work
        self.tools = tools
        self.net = LabNetwork()
        self.procs = Processes(work / "logs")
        self.data_dir = work / "state"
        self.bundles = work / "bundles"
        self.clients_dir = work / "clients"
        self.requests_log = work / "internet" / "requests.jsonl"
        self.target_log = work / "internet" / "tls-target.jsonl"
        self.servers: dict[str, Proc] = {}
        self.server_phase: dict[str, str] = {}
        self.clients: dict[str, Proc] = {}
        self.haproxy: Proc | None = None
        self.internet: Proc | None = None
        self.ca = work / "tls" / "ca.pem"
        self.links: dict[str, str] = {}

    # --- addresses and names ----------------------------------------------------------------------------------

    def ip(self, offset: int) -> str:
        return str(self.net.address(offset))

    def host(self, role: str) -> Host:
        return self.net.hosts[role]

    def address_of(self, server: str) -> str:
        return self.ip(SERVER_NAMES[server])

    def url(self, scheme: str, destination: str, path: str = "/") -> str:
        return f"{scheme}://{destination}{path}"

    # --- the real CLI -----------------------------------------------------------------------------------------

    def ovpn(self, *argv: str) -> str:
        env = {
            # Rendering needs the agent's wheels: take them from the cache the test suite shares (fetched once).
            "OVPN_AGENT_WHEEL_CACHE": str(agent_wheel_cache()),
            **os.environ,
            "OVPN_PROXY_GEOSITE_PATH": str(self.work / "geodata" / "geosite.dat"),
            "OVPN_PROXY_GEOIP_PATH": str(self.work / "geodata" / "geoip.dat"),
        }
        return run(
            [sys.executable, "-m", "ovpn", "--data-dir", str(self.data_dir), *argv], env=env, timeout=60
        )

    def ovpn_json(self, *argv: str) -> Any:
        return json.loads(self.ovpn(*argv, "--json"))

    def explain(self, destination: str, sni: str | None = None) -> dict[str, Any]:
        options = [] if sni is None else ["--sni", sni]
        result: dict[str, Any] = self.ovpn_json(
            "route", "explain", "--server", "proxy-ru", destination, *options
        )
        return result

    # --- building ---------------------------------------------------------------------------------------------

    def build(self) -> None:
        for sub in ("logs", "geodata", "tls", "internet", "bundles", "clients"):
            (self.work / sub).mkdir(parents=True, exist_ok=True)
        self.net.up()
        self.net.add_host("client", [CLIENT])
        self.net.add_host("proxy", [PROXY])
        self.net.add_host("vpn-1", [VPN_1])
        self.net.add_host("vpn-2", [VPN_2])
        self.net.add_host(
            "internet", [WEB_FOREIGN, WEB_RU, TLS_TARGET, WEB_FOREIGN_IP, WEB_GEOIP_RU, WEB_PRIVATE]
        )
        names = {name: self.ip(offset) for name, offset in NAMES.items()}
        names |= {f"{server}.lab.test": self.ip(offset) for server, offset in SERVER_NAMES.items()}
        self.net.write_names(names, self._own_names())
        self.net.check_isolation()
        self._write_geodata()
        write_certificate(
            self.work / "tls",
            list(NAMES),
            [self.ip(o) for o in (WEB_FOREIGN, WEB_RU, WEB_FOREIGN_IP, WEB_GEOIP_RU, WEB_PRIVATE)],
        )
        self._make_state()
        self.start_internet()
        for server in SERVER_NAMES:
            self.start_host_service(server)
        for server in ("vpn-1", "vpn-2"):
            self.start_server(server, "post")
        self.start_server("proxy-ru", "post")
        self.start_haproxy()
        for client in SOCKS_PORTS:
            self.start_client(client)
        self.wait_pool({"vpn-1": "UP", "vpn-2": "UP"})

    def _own_names(self) -> dict[str, dict[str, str]]:
        """Per server: `haproxy` on the proxy, and names that lead back to the server itself (see LOOPBACK_NAMES)."""
        own: dict[str, dict[str, str]] = {}
        for server, offset in SERVER_NAMES.items():
            role = "proxy" if server == "proxy-ru" else server
            own[role] = {name: "127.0.0.1" for name in LOOPBACK_NAMES} | {LAN_NAME: self.ip(offset)}
        own["proxy"]["haproxy"] = "127.0.0.1"
        return own

    def _write_geodata(self) -> None:
        geosite = write_geosite(
            {"RU-AVAILABLE-ONLY-INSIDE": [DomainRule(DomainType.DOMAIN, INSIDE_ONLY_DOMAIN)]}
        )
        geoip = write_geoip(
            {
                "RU": [f"{self.net.address(GEOIP_RU_NET)}/24"],
                "PRIVATE": [f"{self.net.address(GEOIP_PRIVATE_NET)}/24"],
            }
        )
        (self.work / "geodata" / "geosite.dat").write_bytes(geosite)
        (self.work / "geodata" / "geoip.dat").write_bytes(geoip)

    def _make_state(self) -> None:
        keys = run([str(self.tools.xray), "x25519"])
        pool_key = next(
            line.split(":", 1)[1].strip() for line in keys.splitlines() if line.startswith("PrivateKey")
        )
        target = f"{REALITY_NAME}:443"
        # A pool shares its key pair and short id: the relay authenticates with them on every backend.
        common = ["--port", str(XRAY_PORT), "--reality-server-name", REALITY_NAME, "--reality-target", target]
        self.ovpn("server", "add", "--name", "proxy-ru", "--role", "proxy", "--proxy-preset", "ru",
                  "--host", self.address_of("proxy-ru"), "--domain", "proxy-ru.lab.test", *common)  # fmt: skip
        for server in ("vpn-1", "vpn-2"):
            self.ovpn("server", "add", "--name", server, "--role", "vpn", "--host", self.address_of(server),
                      "--domain", f"{server}.lab.test", "--reality-private-key", pool_key,
                      "--reality-short-id", POOL_SHORT_ID, *common)  # fmt: skip
        self.ovpn("user", "add", "--username", "alice")
        self.ovpn("user", "add", "--username", "bob")
        self.ovpn("user", "add", "--username", "carol")
        # Before the attach: what the backends run until they are redeployed, and bob's direct link.
        for server in ("vpn-1", "vpn-2"):
            self.ovpn("config", "render", "--server", server, "--out", str(self.bundles / f"{server}-pre"))
        self.links["bob@vpn-2 before attach"] = self._link("bob", "vpn-2")
        self._client_config("carol@vpn-1")
        self.ovpn(
            "user", "rm", "--username", "carol"
        )  # her link stays in the client: a removed user's old link
        for server, priority in PRIORITIES.items():
            self.ovpn("server", "backend", "attach", "--proxy", "proxy-ru", "--backend", server,
                      "--priority", str(priority))  # fmt: skip
        for server in ("vpn-1", "vpn-2", "proxy-ru"):
            self.ovpn("config", "render", "--server", server, "--out", str(self.bundles / f"{server}-post"))
        self.links["bob@vpn-2"] = self._link("bob", "vpn-2")
        for client in SOCKS_PORTS:
            if not (self.clients_dir / f"{client}.json").exists():
                self._client_config(client)

    def _client_config(self, client: str) -> None:
        user, server = client.split("@")
        config = self.ovpn("user", "link", "--server", server, "--username", user, "--format", "xray-json",
                           "--no-qr", "--socks-port", str(SOCKS_PORTS[client]))  # fmt: skip
        (self.clients_dir / f"{client}.json").write_text(config)

    def _link(self, user: str, server: str) -> str:
        return self.ovpn(
            "user", "link", "--server", server, "--username", user, "--format", "uri", "--no-qr"
        ).strip()

    # --- processes --------------------------------------------------------------------------------------------

    def start_internet(self) -> None:
        ready = self.work / "internet" / "ready"
        ready.unlink(missing_ok=True)
        tls = self.work / "tls"
        argv = [sys.executable, str(LAB_DIR / "internet_server.py"), "--log", str(self.requests_log),
                "--ready", str(ready), "--cert", str(tls / "cert.pem"), "--key", str(tls / "key.pem"),
                "--tls-target", f"{self.ip(TLS_TARGET)}:443", "--target-log", str(self.target_log)]  # fmt: skip
        for offset in (WEB_FOREIGN, WEB_RU, WEB_FOREIGN_IP, WEB_GEOIP_RU, WEB_PRIVATE):
            argv += ["--http", f"{self.ip(offset)}:80", "--https", f"{self.ip(offset)}:443"]
        self.internet = self.procs.start("internet", netns_argv(self.host("internet").namespace, argv))
        self._wait_started(self.internet, lambda: ready.exists(), "the internet host's servers")

    def host_service_log(self, server: str) -> Path:
        return self.work / "host-services" / f"{server}.jsonl"

    def start_host_service(self, server: str) -> None:
        """A stand-in for the host's own services: HTTP on loopback and the server's address, :HOST_SERVICE_PORT.

        It records every request it gets (the same recorder as the internet host), so a test can tell that a
        client reached the server itself.
        """
        ready = self.work / "host-services" / f"{server}.ready"
        ready.parent.mkdir(exist_ok=True)
        tls = self.work / "tls"
        argv = [sys.executable, str(LAB_DIR / "internet_server.py"), "--log", str(self.host_service_log(server)),
                "--ready", str(ready), "--cert", str(tls / "cert.pem"), "--key", str(tls / "key.pem"),
                "--http", f"127.0.0.1:{HOST_SERVICE_PORT}",
                "--http", f"{self.address_of(server)}:{HOST_SERVICE_PORT}"]  # fmt: skip
        role = "proxy" if server == "proxy-ru" else server
        proc = self.procs.start(f"host-service-{server}", netns_argv(self.host(role).namespace, argv))
        self._wait_started(proc, lambda: ready.exists(), f"{server}'s host service")

    def host_service_requests(self, server: str) -> list[dict[str, Any]]:
        """What `server`'s own stand-in service recorded."""
        log = self.host_service_log(server)
        if not log.exists():
            return []
        return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]

    def _wait_started(self, proc: Proc, condition: Any, what: str, timeout: float = 15) -> None:
        def check() -> bool:
            if not proc.alive():
                raise LabError(f"{proc.name} exited during start-up:\n{proc.log_text()[-3000:]}")
            return bool(condition())

        wait_until(check, timeout=timeout, what=what, interval=0.05)

    def bundle(self, server: str, phase: str) -> Path:
        return self.bundles / f"{server}-{phase}"

    def start_server(self, server: str, phase: str = "post") -> Proc:
        """Run a server's rendered Xray config in its namespace; geodata from its own bundle, as in production."""
        self.stop_server(server)
        bundle = self.bundle(server, phase)
        role = "proxy" if server == "proxy-ru" else server
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "XRAY_LOCATION_ASSET": str(bundle / "geodata"),
        }
        argv = [str(self.tools.xray), "run", "-c", str(bundle / "xray" / "config.json")]
        proc = self.procs.start(f"xray-{server}", netns_argv(self.host(role).namespace, argv), env=env)
        self._wait_started(proc, lambda: listening(proc.pid, XRAY_PORT), f"{server}'s Xray on :{XRAY_PORT}")
        self.servers[server] = proc
        self.server_phase[server] = phase
        return proc

    def stop_server(self, server: str, *, kill: bool = False) -> None:
        proc = self.servers.pop(server, None)
        if proc is not None:
            proc.kill() if kill else proc.stop()

    def ensure_server(self, server: str, phase: str = "post") -> None:
        proc = self.servers.get(server)
        if proc is None or not proc.alive() or self.server_phase.get(server) != phase:
            self.start_server(server, phase)

    def start_haproxy(self, config: Path | None = None) -> None:
        """Run the proxy bundle's haproxy.cfg (or `config`, for experiments) in the proxy's namespace."""
        if self.haproxy is not None:
            self.haproxy.stop()
        config = config or self.bundle("proxy-ru", "post") / "haproxy" / "haproxy.cfg"
        self.in_namespace(
            "proxy", [str(self.tools.haproxy), "-c", "-q", *haproxy_fd_override(config), "-f", str(config)]
        )
        argv = [str(self.tools.haproxy), "-W", "-db", *haproxy_fd_override(config), "-f", str(config)]
        proc = self.procs.start("haproxy", netns_argv(self.host("proxy").namespace, argv))
        self._wait_started(proc, lambda: listening(proc.pid, 15443) and listening(proc.pid, 8404), "HAProxy")
        self.haproxy = proc

    def set_priority(self, backend: str, priority: int) -> Path:
        """Change a backend's priority through the CLI, re-render the proxy and restart HAProxy with it."""
        self.ovpn("server", "backend", "attach", "--proxy", "proxy-ru", "--backend", backend,
                  "--priority", str(priority))  # fmt: skip
        out = self.bundles / f"proxy-ru-{backend}-{priority}"
        self.ovpn("config", "render", "--server", "proxy-ru", "--out", str(out))
        config = out / "haproxy" / "haproxy.cfg"
        self.start_haproxy(config)
        return config

    def start_client(self, client: str) -> None:
        config = self.clients_dir / f"{client}.json"
        argv = [str(self.tools.xray), "run", "-c", str(config)]
        proc = self.procs.start(f"client-{client}", netns_argv(self.host("client").namespace, argv))
        port = SOCKS_PORTS[client]
        self._wait_started(proc, lambda: listening(proc.pid, port), f"client {client} on :{port}")
        self.clients[client] = proc

    # --- faults -----------------------------------------------------------------------------------------------

    def kill_server(self, server: str) -> float:
        """SIGKILL a server's Xray; returns the wall-clock time of the kill."""
        proc = self.servers.pop(server)
        at = time.time()
        proc.kill()
        return at

    def cut_off(self, server: str) -> float:
        at = time.time()
        self.net.cut_off(server)
        return at

    def reconnect(self, server: str) -> None:
        self.net.reconnect(server)

    def restore(self) -> None:
        """Every backend back on the network with its post-attach config, and HAProxy seeing both up."""
        for server in ("vpn-1", "vpn-2"):
            self.net.reconnect(server)
            self.ensure_server(server, "post")
        self.ensure_server("proxy-ru", "post")
        self.wait_pool({"vpn-1": "UP", "vpn-2": "UP"})

    # --- observing --------------------------------------------------------------------------------------------

    def in_namespace(self, role: str, argv: Sequence[str], timeout: float = 60) -> str:
        return run(netns_argv(self.host(role).namespace, argv), timeout=timeout)

    def haproxy_metrics(self) -> str:
        code = (
            "import sys, urllib.request\n"
            "opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))\n"
            "sys.stdout.write(opener.open('http://127.0.0.1:8404/metrics', timeout=3).read().decode())\n"
        )
        return self.in_namespace("proxy", [sys.executable, "-c", code])

    def pool_states(self) -> dict[str, str]:
        states: dict[str, str] = {}
        for line in self.haproxy_metrics().splitlines():
            if line.startswith("haproxy_server_status{") and line.endswith(" 1"):
                labels = dict(
                    part.split("=", 1) for part in line[line.index("{") + 1 : line.index("}")].split(",")
                )
                states[labels["server"].strip('"')] = labels["state"].strip('"')
        return states

    def haproxy_sessions(self, server: str) -> int:
        """`haproxy_server_sessions_total` of one backend, from the exporter."""
        for line in self.haproxy_metrics().splitlines():
            if line.startswith("haproxy_server_sessions_total{") and f'server="{server}"' in line:
                return int(float(line.rsplit(" ", 1)[1]))
        raise LabError(f"HAProxy exports no session counter for {server}")

    def wait_pool(self, wanted: dict[str, str], timeout: float = 20) -> None:
        wait_until(
            lambda: all(self.pool_states().get(k) == v for k, v in wanted.items()),
            timeout=timeout,
            interval=0.2,
            what=f"HAProxy to report {wanted}",
        )

    def stats(self, role: str) -> dict[str, int]:
        """`xray api statsquery` against the host's own API, run inside that host's namespace."""
        out = self.in_namespace(
            role, [str(self.tools.xray), "api", "statsquery", "--server", "127.0.0.1:10085"]
        )
        return {s["name"]: int(s.get("value", 0)) for s in json.loads(out).get("stat", [])}

    def requests(self) -> list[dict[str, Any]]:
        """What the internet host recorded, read from its own log."""
        if not self.requests_log.exists():
            return []
        return [json.loads(line) for line in self.requests_log.read_text().splitlines() if line.strip()]

    def requests_by_probe(self) -> dict[str, dict[str, Any]]:
        found = {}
        for record in self.requests():
            for part in record["path"].partition("?")[2].split("&"):
                if part.startswith("probe="):
                    found[part[6:]] = record
        return found

    # --- the client program -----------------------------------------------------------------------------------

    def probe_argv(self, client: str, mode: str, *args: str) -> list[str]:
        return [sys.executable, str(LAB_DIR / "probe.py"), mode, "--socks", f"127.0.0.1:{SOCKS_PORTS[client]}",
                "--cafile", str(self.ca), *args]  # fmt: skip

    def get(
        self, client: str, urls: Sequence[str], *, timeout: float = 5.0, **options: Any
    ) -> list[dict[str, Any]]:
        """Run requests from the client namespace through `client`'s SOCKS port; one record per attempt."""
        args = ["--timeout", str(timeout)]
        for key, value in options.items():
            args += [f"--{key.replace('_', '-')}", str(value)]
        out = self.in_namespace("client", self.probe_argv(client, "get", *args, *urls), timeout=600)
        records = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
        return sorted(records, key=lambda r: r["index"])

    def start_loop(self, name: str, client: str, urls: Sequence[str], *, count: int, interval: float,
                   timeout: float = 5.0) -> Loop:  # fmt: skip
        """A bounded background run of new connections (`count` attempts, one every `interval` seconds)."""
        out = self.work / "logs" / f"loop-{name}-{time.time_ns()}.jsonl"
        argv = self.probe_argv(client, "get", "--timeout", str(timeout), "--count", str(count),
                               "--interval", str(interval), "--run-id", name, *urls)  # fmt: skip
        handle = out.open("wb")
        popen = subprocess.Popen(
            netns_argv(self.host("client").namespace, argv), stdout=handle, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        handle.close()
        loop = Loop(out, popen, count * interval + timeout + 10)
        self.procs.started.append(Proc(f"loop-{name}", popen, out))
        return loop

    def bulk(self, client: str, url: str, timeout: float = 120) -> dict[str, Any]:
        out = self.in_namespace(
            "client", self.probe_argv(client, "bulk", "--timeout", str(timeout), url), timeout=timeout + 30
        )
        record: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
        return record

    # --- teardown ---------------------------------------------------------------------------------------------

    def close(self) -> None:
        self.procs.stop_all()
        self.net.down()


@dataclass
class Loop:
    output: Path
    popen: subprocess.Popen[bytes]
    deadline_s: float

    def records(self) -> list[dict[str, Any]]:
        text = self.output.read_text(errors="replace") if self.output.exists() else ""
        return [json.loads(line) for line in text.splitlines() if line.startswith("{")]

    def wait_for_successes(self, count: int, timeout: float = 20) -> None:
        wait_until(
            lambda: sum(1 for r in self.records() if r["ok"]) >= count,
            timeout=timeout,
            interval=0.05,
            what=f"{count} successful attempts",
        )

    def finish(self) -> list[dict[str, Any]]:
        try:
            self.popen.wait(timeout=self.deadline_s)
        except subprocess.TimeoutExpired as exc:
            os.killpg(self.popen.pid, 9)
            raise LabError(f"probe loop {self.output.name} overran its bound") from exc
        return sorted(self.records(), key=lambda r: r["index"])


@contextlib.contextmanager
def lab_session(work: Path) -> Iterator[Lab]:
    """Build the lab in `work` and always tear it down (processes by PID, then namespaces and routes by name)."""
    tools = find_tools()
    lab = Lab(work, tools)
    try:
        lab.build()
        yield lab
    finally:
        lab.close()
