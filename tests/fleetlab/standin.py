"""Lab stand-in for a monitoring service that Debian does not package (Grafana, cAdvisor): a tiny HTTP server.

It is NOT Grafana or cAdvisor. It only answers what ovpn and Prometheus ask in the fleet lab, so that the rendered
monitoring Compose file runs unchanged: Grafana's `/api/health` on 3000, cAdvisor's `/metrics` (a few
`container_*` series) and `/healthz` on 8080. Arguments after the kind (the rendered `command:` flags) are
ignored. Standard library only; it runs in the lab's runtime image.
"""

from __future__ import annotations

import json
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORTS = {"grafana": 3000, "cadvisor": 8080}
STARTED = time.time()


def grafana(path: str) -> tuple[int, str, bytes]:
    if path == "/api/health":
        doc = {"commit": "ovpn-fleetlab-standin", "database": "ok", "version": "standin"}
        return 200, "application/json", json.dumps(doc).encode()
    return 404, "text/plain", b"grafana stand-in: only /api/health\n"


def cadvisor(path: str) -> tuple[int, str, bytes]:
    if path == "/healthz":
        return 200, "text/plain", b"ok"
    if path != "/metrics":
        return 404, "text/plain", b"cadvisor stand-in: only /metrics and /healthz\n"
    lines = [
        "# HELP container_last_seen Last time a container was seen by the exporter",
        "# TYPE container_last_seen gauge",
        f'container_last_seen{{id="/",name=""}} {time.time():.3f}',
        "# HELP container_start_time_seconds Start time of the container since unix epoch in seconds.",
        "# TYPE container_start_time_seconds gauge",
        f'container_start_time_seconds{{id="/",name=""}} {STARTED:.3f}',
        "# HELP container_cpu_usage_seconds_total Cumulative cpu time consumed in seconds.",
        "# TYPE container_cpu_usage_seconds_total counter",
        f'container_cpu_usage_seconds_total{{cpu="total",id="/",name=""}} {time.process_time():.6f}',
        "# HELP container_memory_working_set_bytes Current working set in bytes.",
        "# TYPE container_memory_working_set_bytes gauge",
        'container_memory_working_set_bytes{id="/",name=""} 0',
        "",
    ]
    return 200, "text/plain; version=0.0.4", "\n".join(lines).encode()


ROUTES = {"grafana": grafana, "cadvisor": cadvisor}


def main() -> None:
    kind = sys.argv[1] if len(sys.argv) > 1 else ""
    if kind not in ROUTES:
        sys.exit(f"usage: standin.py {{{'|'.join(ROUTES)}}} [ignored flags...]")
    route = ROUTES[kind]

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status, content_type, body = route(self.path.split("?", 1)[0])
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            sys.stderr.write(f"{kind}-standin: {format % args}\n")

    print(f"ovpn fleet lab {kind} stand-in listening on :{PORTS[kind]}", file=sys.stderr, flush=True)
    ThreadingHTTPServer(("0.0.0.0", PORTS[kind]), Handler).serve_forever()


if __name__ == "__main__":
    main()
