"""A Bot API stand-in on 127.0.0.1 for the bot's tests (Telegram itself cannot be reached from here).

It speaks the Bot API's wire protocol (`/bot<token>/<method>`, form or JSON parameters, `{"ok": ..., "result":
...}` answers, getUpdates with offset/timeout long polling), so the real python-telegram-bot client is exercised.
A test injects updates, waits for recorded calls with a condition and a deadline, and can make the API
unreachable (every request answers 502 Bad Gateway, waiting long polls included) and bring it back.

Run as a process (`python -m tests.support.fake_bot_api --token T --listen ADDR:PORT --record FILE --ready FILE`)
it serves inside a lab namespace, where the lab's hosts reach it, and appends every call to FILE as a JSON line
(the test reads the file; nothing in the root namespace connects to the lab).
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

BOT_ID = 7000001
JSON_PARAMS = {"chat_id", "message_id", "reply_markup", "offset", "timeout", "limit", "allowed_updates"}


@dataclass(frozen=True)
class Call:
    method: str
    params: dict[str, Any]

    @property
    def text(self) -> str:
        return str(self.params.get("text", ""))

    def buttons(self) -> list[tuple[str, str]]:
        """(text, callback_data) of every inline button."""
        markup = self.params.get("reply_markup") or {}
        return [
            (b["text"], b.get("callback_data", "")) for row in markup.get("inline_keyboard", []) for b in row
        ]


def _user(user_id: int) -> dict[str, Any]:
    return {"id": user_id, "is_bot": False, "first_name": f"user{user_id}"}


def _chat(chat_id: int) -> dict[str, Any]:
    return {"id": chat_id, "type": "private" if chat_id > 0 else "supergroup", "title": None}


class FakeBotApi:
    def __init__(
        self, token: str, address: tuple[str, int] = ("127.0.0.1", 0), record: Path | None = None
    ) -> None:
        self.token = token
        self._record = record
        self._cond = threading.Condition()
        self._updates: list[dict[str, Any]] = []
        self._calls: list[Call] = []
        self._down = False
        self._stopped = False
        self._update_ids = itertools.count(1)
        self._message_ids = itertools.count(1000)
        self._server = ThreadingHTTPServer(address, self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="fake-bot-api",
            daemon=True,
        )

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> FakeBotApi:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving (a second call does nothing)."""
        if self._stopped:
            return
        self._stopped = True
        with self._cond:
            self._down = True
            self._cond.notify_all()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    # ------------------------------------------------------------------ test controls

    def set_down(self, down: bool) -> None:
        with self._cond:
            self._down = down
            self._cond.notify_all()

    def inject_message(self, user_id: int, text: str) -> int:
        message: dict[str, Any] = {
            "message_id": next(self._message_ids), "date": int(time.time()), "chat": _chat(user_id),
            "from": _user(user_id), "text": text,
        }  # fmt: skip
        if text.startswith("/"):
            message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}]
        return self._inject({"message": message})

    def inject_callback(self, user_id: int, data: str, message_id: int = 1) -> int:
        message = {"message_id": message_id, "date": int(time.time()), "chat": _chat(user_id),
                   "from": self._bot(), "text": "screen"}  # fmt: skip
        query = {"id": f"cq{next(self._update_ids)}", "from": _user(user_id), "chat_instance": "ci",
                 "message": message, "data": data}  # fmt: skip
        return self._inject({"callback_query": query})

    def _inject(self, update: dict[str, Any]) -> int:
        with self._cond:
            update_id = next(self._update_ids)
            self._updates.append({"update_id": update_id, **update})
            self._cond.notify_all()
            return update_id

    def calls(self, method: str | None = None) -> list[Call]:
        with self._cond:
            return [c for c in self._calls if method is None or c.method == method]

    def clear(self) -> None:
        with self._cond:
            self._calls.clear()

    def wait_for(self, predicate: Callable[[Call], bool], timeout: float = 15, what: str = "a call") -> Call:
        """The first recorded call that matches, waiting for it until `timeout`."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                match = next((c for c in self._calls if predicate(c)), None)
                if match is not None:
                    return match
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    seen = "\n".join(f"  {c.method} {c.params}" for c in self._calls[-20:])
                    raise AssertionError(f"no {what} within {timeout} s; last calls:\n{seen}")
                self._cond.wait(remaining)

    def sent_to(self, chat_id: int, contains: str, timeout: float = 15) -> Call:
        return self.wait_for(lambda c: c.method == "sendMessage" and c.params.get("chat_id") == chat_id
                             and contains in c.text, timeout, f"sendMessage to {chat_id} with {contains!r}")  # fmt: skip

    # ------------------------------------------------------------------ the API

    def _bot(self) -> dict[str, Any]:
        return {"id": BOT_ID, "is_bot": True, "first_name": "ovpn", "username": "ovpn_test_bot"}

    def _message(self, params: dict[str, Any]) -> dict[str, Any]:
        chat_id = int(params.get("chat_id", 0))
        message_id = int(params["message_id"]) if "message_id" in params else next(self._message_ids)
        return {"message_id": message_id, "date": int(time.time()), "chat": _chat(chat_id), "from": self._bot(),
                "text": str(params.get("text", ""))}  # fmt: skip

    def _get_updates(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        offset = int(params.get("offset") or 0)
        deadline = time.monotonic() + float(params.get("timeout") or 0)
        with self._cond:
            while True:
                if self._down:
                    return 502, {"ok": False, "error_code": 502, "description": "Bad Gateway"}
                if offset:
                    self._updates = [u for u in self._updates if u["update_id"] >= offset]
                if self._updates or time.monotonic() >= deadline:
                    limit = int(params.get("limit") or 100)
                    return 200, {"ok": True, "result": self._updates[:limit]}
                self._cond.wait(deadline - time.monotonic())

    def _answer(self, method: str, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        with self._cond:
            if self._down:
                return 502, {"ok": False, "error_code": 502, "description": "Bad Gateway"}
            self._calls.append(Call(method, params))
            if self._record is not None:
                with self._record.open("a") as record:
                    record.write(json.dumps({"method": method, "params": params}) + "\n")
            self._cond.notify_all()
        if method == "getUpdates":
            return self._get_updates(params)
        results: dict[str, Any] = {
            "getMe": self._bot(),
            "sendMessage": self._message(params) if method == "sendMessage" else None,
            "editMessageText": self._message(params) if method == "editMessageText" else None,
            "sendPhoto": self._message(params) if method == "sendPhoto" else None,
        }
        return 200, {"ok": True, "result": results.get(method, True)}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                self._serve()

            def do_GET(self) -> None:
                self._serve()

            def _params(self) -> dict[str, Any]:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                if not body:
                    return {}
                if self.headers.get("Content-Type", "").startswith("application/json"):
                    return dict(json.loads(body))
                params: dict[str, Any] = {k: v[0] for k, v in parse_qs(body.decode()).items()}
                for key in JSON_PARAMS & params.keys():
                    params[key] = json.loads(params[key])
                return params

            def _serve(self) -> None:
                params = self._params()
                prefix, _, method = self.path.lstrip("/").partition("/")
                if prefix != f"bot{api.token}":
                    status, document = 401, {"ok": False, "error_code": 401, "description": "Unauthorized"}
                else:
                    status, document = api._answer(method, params)
                body = json.dumps(document).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except ConnectionError:
                    self.close_connection = True  # the client gave up on a long poll

            def log_message(self, format: str, *args: object) -> None:
                pass

        return Handler


def read_calls(record: Path) -> list[Call]:
    """The calls a fake run as a process has recorded so far."""
    if not record.exists():
        return []
    return [Call(d["method"], d["params"]) for d in map(json.loads, record.read_text().splitlines())]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description="A Bot API stand-in for lab namespaces.")
    parser.add_argument("--token", required=True)
    parser.add_argument("--listen", required=True, help="ADDRESS:PORT")
    parser.add_argument("--record", required=True, type=Path)
    parser.add_argument("--ready", required=True, type=Path)
    args = parser.parse_args(argv)
    host, _, port = args.listen.rpartition(":")
    api = FakeBotApi(args.token, (host, int(port)), args.record).start()
    args.ready.write_text(api.base_url)
    threading.Event().wait()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
