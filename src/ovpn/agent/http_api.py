"""The agent's HTTP API: one table of endpoints (path, method, whether it needs the bearer token, what answers),
and the request handler that reads bodies within bounds and turns ApiError into JSON errors."""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from typing import Any, NamedTuple
from urllib.parse import parse_qs, urlsplit

from ovpn import __version__
from ovpn.agent.checks import ApiError, iso_date
from ovpn.agent.http_limits import MAX_WORKERS, REQUEST_SECONDS, BoundedHTTPServer, DeadlineHandler
from ovpn.agent.service import Agent
from ovpn.agent.store import day_of

log = logging.getLogger("ovpn-agent")
MAX_BODY_BYTES = 16 * 1024 * 1024
METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

AgentServer = BoundedHTTPServer


@dataclass(frozen=True)
class Request:
    query: dict[str, list[str]]
    read_body: Callable[[bool], dict[str, Any]]

    def param(self, name: str, default: str | None = None) -> str | None:
        return self.query.get(name, [default])[0]

    def body(self, *, optional: bool = False) -> dict[str, Any]:
        """The JSON object sent; with `optional`, {} for no body or an empty one."""
        return self.read_body(optional)


@dataclass(frozen=True)
class PlainText:
    text: str


class Route(NamedTuple):
    method: str
    needs_token: bool
    answer: Callable[[Request], object]


def routes(agent: Agent) -> dict[str, Route]:
    """Every endpoint. Reads are open; every change, and the policy with its UUIDs, needs the bearer token."""

    def stats_daily(request: Request) -> object:
        day = iso_date(request.param("date", day_of(agent.clock())))
        if day is None:
            raise ApiError(HTTPStatus.BAD_REQUEST, "date must be YYYY-MM-DD")
        return agent.stats_daily(day)

    def collect(request: Request) -> object:
        request.body(optional=True)
        return agent.collect_now()

    return {
        "/health": Route("GET", False, lambda _: agent.health()),
        "/metrics": Route("GET", False, lambda _: PlainText(agent.metrics_text())),
        "/stats/total": Route("GET", False, lambda _: agent.stats_total()),
        "/stats/daily": Route("GET", False, stats_daily),
        "/quota/status": Route("GET", False, lambda r: agent.quota_status(r.param("email"))),
        "/users/status": Route("GET", False, lambda r: agent.users_status(r.param("email"))),
        "/quota/policies": Route("GET", True, lambda _: agent.policies()),
        "/collect": Route("POST", True, collect),
        "/users/sync": Route("POST", True, lambda r: agent.sync_users(r.body())),
        "/quota/sync": Route("POST", True, lambda r: agent.sync_quota(r.body())),
        "/quota/reset": Route("POST", True, lambda r: agent.quota_reset(r.body())),
        "/runtime/user/add": Route("POST", True, lambda r: agent.runtime_add(r.body())),
        "/runtime/user/remove": Route("POST", True, lambda r: agent.runtime_remove(r.body())),
    }


def make_handler(agent: Agent) -> type[BaseHTTPRequestHandler]:
    table = routes(agent)

    class Handler(DeadlineHandler):
        server_version = f"ovpn-agent/{__version__}"
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            self._dispatch("GET")

        def do_POST(self) -> None:
            self._dispatch("POST")

        def do_PUT(self) -> None:
            self._dispatch("PUT")

        def do_DELETE(self) -> None:
            self._dispatch("DELETE")

        def _dispatch(self, method: str) -> None:
            url = urlsplit(self.path)
            path = url.path
            try:
                if self.headers.get("Content-Length") and method == "GET":
                    self._drain()
                route = table.get(path)
                if route is None:
                    raise ApiError(HTTPStatus.NOT_FOUND, f"no such endpoint: {path}")
                if method != route.method:
                    self._drain()
                    raise ApiError(HTTPStatus.METHOD_NOT_ALLOWED, f"{path} takes {route.method}",
                                   allow=route.method)  # fmt: skip
                if route.needs_token:
                    self._authorize()
                answer = route.answer(Request(parse_qs(url.query), self._body))
                if isinstance(answer, PlainText):
                    self._send(200, METRICS_CONTENT_TYPE, answer.text.encode())
                else:
                    self._json(200, answer)
            except TimeoutError as e:  # the body did not arrive in time (DeadlineHandler)
                self.close_connection = True
                self._json(HTTPStatus.REQUEST_TIMEOUT, {"error": str(e)})
            except ApiError as e:
                allow = str(e.extra.get("allow", "")) if e.status == HTTPStatus.METHOD_NOT_ALLOWED else ""
                self._json(e.status, {"error": e.message, **e.extra}, allow=allow)
            except Exception as e:
                log.exception("%s %s failed", method, path)
                self._json(500, {"error": f"internal error: {type(e).__name__}"})

        def _authorize(self) -> None:
            if not agent.token:
                self._drain()
                raise ApiError(HTTPStatus.UNAUTHORIZED, "this agent has no token configured: changes are refused",
                               hint="set OVPN_AGENT_TOKEN and restart the agent")  # fmt: skip
            header = self.headers.get("Authorization", "")
            scheme, _, presented = header.partition(" ")
            if scheme.lower() != "bearer" or not presented:
                self._drain()
                raise ApiError(
                    HTTPStatus.UNAUTHORIZED, "missing bearer token", hint="send Authorization: Bearer TOKEN"
                )
            if not hmac.compare_digest(presented.strip().encode(), agent.token.encode()):
                self._drain()
                raise ApiError(HTTPStatus.UNAUTHORIZED, "wrong token",
                               hint="the CLI and the agent disagree: redeploy, or check OVPN_AGENT_TOKEN in .env")  # fmt: skip

        def _drain(self) -> None:
            length = self.headers.get("Content-Length")
            if length and length.isdigit() and int(length) <= MAX_BODY_BYTES:
                self.rfile.read(int(length))
            elif length:
                self.close_connection = True

        def _body(self, optional: bool = False) -> dict[str, Any]:
            length = self.headers.get("Content-Length")
            if length is None or not length.isdigit():
                if optional:
                    return {}
                raise ApiError(HTTPStatus.LENGTH_REQUIRED, "a JSON body with Content-Length is required")
            if int(length) > MAX_BODY_BYTES:
                self.close_connection = True
                raise ApiError(
                    HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"body larger than {MAX_BODY_BYTES} bytes"
                )
            raw = self.rfile.read(int(length))
            if optional and not raw.strip():
                return {}
            try:
                body = json.loads(raw)
            except RecursionError:
                raise ApiError(HTTPStatus.BAD_REQUEST, "malformed JSON: nested too deeply") from None
            except ValueError as e:  # also UnicodeDecodeError, and an integer of more than 4300 digits
                raise ApiError(HTTPStatus.BAD_REQUEST, f"malformed JSON: {str(e).split(';')[0]}") from None
            if not isinstance(body, dict):
                raise ApiError(HTTPStatus.BAD_REQUEST, "the body must be a JSON object")
            return body

        def _json(self, status: int, document: object, **headers: str) -> None:
            self._send(status, "application/json", json.dumps(document, indent=1).encode() + b"\n", **headers)

        def _send(self, status: int, content_type: str, body: bytes, **headers: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for name, value in headers.items():
                if value:
                    self.send_header(name.capitalize(), value)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            log.debug("%s %s", self.address_string(), format % args)

    return Handler


def serve(
    agent: Agent,
    listen: tuple[str, int],
    *,
    workers: int = MAX_WORKERS,
    request_seconds: float = REQUEST_SECONDS,
) -> AgentServer:
    """The agent's HTTP server: at most `workers` connections at once, each request read within
    `request_seconds` (see ovpn.agent.http_limits for why these bounds)."""
    return AgentServer(listen, make_handler(agent), workers=workers, request_seconds=request_seconds)
