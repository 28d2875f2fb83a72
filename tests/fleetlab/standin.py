"""Lab stand-in for Grafana, which is neither packaged for Debian 12 nor built here: a tiny HTTP server.

It is NOT Grafana. It only answers what ovpn asks in the fleet lab, so that the rendered monitoring Compose file
runs unchanged: `/api/health` on 3000. Arguments (the rendered `command:`, if any) are ignored. Standard library
only; it runs in the lab's runtime image.
"""

from __future__ import annotations

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT = 3000


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path.split("?", 1)[0] == "/api/health":
            status, content_type = 200, "application/json"
            body = json.dumps(
                {"commit": "ovpn-fleetlab-standin", "database": "ok", "version": "standin"}
            ).encode()
        else:
            status, content_type, body = 404, "text/plain", b"grafana stand-in: only /api/health\n"
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        sys.stderr.write(f"grafana-standin: {format % args}\n")


def main() -> None:
    print(f"ovpn fleet lab grafana stand-in listening on :{PORT}", file=sys.stderr, flush=True)
    ThreadingHTTPServer(("0.0.0.0", PORT), Handler).serve_forever()


if __name__ == "__main__":
    main()
