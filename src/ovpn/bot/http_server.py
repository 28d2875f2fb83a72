"""A small asyncio HTTP/1.1 server (one request per connection) for /health, /metrics and the webhooks."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus

log = logging.getLogger("ovpn-telegram-bot.http")
MAX_BODY_BYTES = 1024 * 1024
MAX_HEADER_LINES = 100
READ_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()

    @classmethod
    def json(cls, status: int, document: object, headers: tuple[tuple[str, str], ...] = ()) -> Response:
        return cls(status, json.dumps(document).encode() + b"\n", headers=headers)


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    body: bytes
    authorization: str = field(default="", repr=False)  # the Authorization header, as sent


Handler = Callable[[Request], Awaitable[Response]]


class BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


async def _read_request(reader: asyncio.StreamReader) -> Request:
    request_line = (await reader.readline()).decode("latin-1").strip()
    parts = request_line.split()
    if len(parts) != 3 or not parts[2].startswith("HTTP/"):
        raise BadRequest(400, "malformed request line")
    length = 0
    authorization = ""
    for _ in range(MAX_HEADER_LINES):
        line = (await reader.readline()).decode("latin-1").strip()
        if not line:
            break
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            if not value.strip().isdigit():
                raise BadRequest(400, "bad Content-Length")
            length = int(value)
        elif name.strip().lower() == "authorization":
            authorization = value.strip()
        elif name.strip().lower() == "transfer-encoding":
            raise BadRequest(411, "send a Content-Length")
    else:
        raise BadRequest(400, "too many headers")
    if length > MAX_BODY_BYTES:
        raise BadRequest(413, "body too large")
    body = await reader.readexactly(length) if length else b""
    return Request(parts[0].upper(), parts[1].split("?", 1)[0], body, authorization)


async def _serve_one(handler: Handler, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        try:
            request = await asyncio.wait_for(_read_request(reader), READ_TIMEOUT_SECONDS)
            response = await handler(request)
        except BadRequest as e:
            response = Response.json(e.status, {"error": str(e)})
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
            return
        except Exception:
            log.exception("request failed")
            response = Response.json(500, {"error": "internal error"})
        head = (
            f"HTTP/1.1 {response.status} {HTTPStatus(response.status).phrase}\r\n"
            f"Content-Type: {response.content_type}\r\n"
            f"Content-Length: {len(response.body)}\r\n"
            + "".join(f"{name}: {value}\r\n" for name, value in response.headers)
            + "Connection: close\r\n\r\n"
        )
        writer.write(head.encode("latin-1") + response.body)
        await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


async def serve(handler: Handler, host: str, port: int) -> asyncio.Server:
    return await asyncio.start_server(lambda r, w: _serve_one(handler, r, w), host, port)
