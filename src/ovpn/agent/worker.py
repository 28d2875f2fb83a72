"""What the collector and the enforcer share: the agent's store, its Xray API client, the inbound users live in,
the lock that makes every state change single-flight, the metrics and the clock."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass

from ovpn.agent.metrics import Registry
from ovpn.agent.store import Store
from ovpn.agent.xray_api import XrayApi

Clock = Callable[[], float]


@dataclass(eq=False)
class XrayWorker:
    store: Store
    api: XrayApi
    _: KW_ONLY
    inbound_tag: str
    lock: threading.RLock
    metrics: Registry
    clock: Clock = time.time
