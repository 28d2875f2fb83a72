"""The agent's certificate check: reads the watched PEM file at start and then at most every ten minutes (not on
each scrape) and publishes the result for /metrics and /health.

`ovpn_agent_cert_expiry_timestamp_seconds` is notAfter as Unix time, or 0 when no certificate is configured or
it cannot be read: the rendered expiry alerts and the Agent dashboard treat 0 as "not configured" and stay quiet.
An empty file is "not configured" too, so that Compose can mount /dev/null when the operator names no certificate.
A file that is named but cannot be read or parsed sets `ovpn_agent_cert_check_failing` to 1 instead, which has its
own alert.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal

from ovpn.agent.cert import CertError, pem_validity
from ovpn.agent.metrics import Registry

CHECK_INTERVAL_SECONDS = 600.0
MAX_FILE_BYTES = 1024 * 1024  # a fullchain is a few KiB
EXPIRY_METRIC = "ovpn_agent_cert_expiry_timestamp_seconds"
CHECKS_METRIC = "ovpn_agent_cert_checks_total"
FAILING_METRIC = "ovpn_agent_cert_check_failing"
CertResult = Literal["ok", "error", "not_configured"]
RESULTS: tuple[CertResult, ...] = ("ok", "error", "not_configured")

log = logging.getLogger("ovpn-agent")


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class CertStatus:
    path: str | None
    result: CertResult
    not_before: datetime | None = None
    not_after: datetime | None = None
    error: str | None = None

    @property
    def expiry_timestamp(self) -> float:
        return self.not_after.timestamp() if self.not_after is not None else 0.0

    def as_json(self) -> dict[str, object]:
        return {
            "path": self.path,
            "result": self.result,
            "not_before": _iso(self.not_before),
            "not_after": _iso(self.not_after),
            "error": self.error,
        }


def read_status(path: str) -> CertStatus:
    """What the file at `path` says now; never raises."""
    if not path:
        return CertStatus(None, "not_configured")
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)
    except OSError as e:
        return CertStatus(path, "error", error=f"cannot read {path}: {e.strerror or e}")
    if len(data) > MAX_FILE_BYTES:
        return CertStatus(
            path, "error", error=f"{path} is larger than {MAX_FILE_BYTES} bytes: not a certificate"
        )
    if not data.strip():
        return CertStatus(path, "not_configured")
    try:
        validity = pem_validity(data)
    except CertError as e:
        return CertStatus(path, "error", error=f"{path}: {e}")
    return CertStatus(path, "ok", validity.not_before, validity.not_after)


def log_status(status: CertStatus) -> None:
    if status.result == "error":
        log.warning("certificate check failed: %s", status.error)
    elif status.result == "ok":
        log.info("certificate %s is valid until %s", status.path, _iso(status.not_after))
    else:
        log.info("no certificate configured (--cert-file empty or an empty file): the expiry check is off")


class CertCheck:
    def __init__(
        self,
        path: str | Path | None,
        metrics: Registry,
        *,
        interval: float = CHECK_INTERVAL_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = str(path) if path else ""
        self.metrics = metrics
        self.interval = interval
        self.monotonic = monotonic
        self._lock = threading.Lock()
        self._checked_at: float | None = None
        self.status = CertStatus(self.path or None, "not_configured")
        for result in RESULTS:
            metrics.declare_counter(CHECKS_METRIC, "Certificate checks by result.", {"result": result})
        self._publish()

    def _publish(self) -> None:
        self.metrics.gauge(
            EXPIRY_METRIC,
            "notAfter of the watched TLS certificate as Unix time; 0 = not configured or unreadable.",
            self.status.expiry_timestamp,
        )
        self.metrics.gauge(
            FAILING_METRIC,
            "1 while the last check of the watched certificate file failed (the expiry alerts are blind then).",
            int(self.status.result == "error"),
        )

    def check(self) -> CertStatus:
        """Read the file now."""
        with self._lock:
            previous, self.status = self.status, read_status(self.path)
            if self.status != previous or self._checked_at is None:
                log_status(self.status)
            self._checked_at = self.monotonic()
            self.metrics.counter(
                CHECKS_METRIC, "Certificate checks by result.", {"result": self.status.result}
            )
            self._publish()
            return self.status

    def check_if_due(self) -> bool:
        """Check when never checked or `interval` has passed since the last check; True when it checked."""
        with self._lock:
            due = self._checked_at is None or self.monotonic() - self._checked_at >= self.interval
        if due:
            self.check()
        return due
