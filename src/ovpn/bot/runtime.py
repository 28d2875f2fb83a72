"""What the bot's parts share at run time, and the data gathering behind the screens."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from ovpn.agent.metrics import Registry
from ovpn.bot.callbacks import Confirmations
from ovpn.bot.config import BotConfig, Service
from ovpn.bot.docker_api import Docker, DockerError
from ovpn.bot.outbox import Kind, Outbox
from ovpn.bot.probes import Probes
from ovpn.bot.screens import ServiceRow
from ovpn.bot.telegram_api import TelegramHealth


@dataclass
class Runtime:
    config: BotConfig
    metrics: Registry
    health: TelegramHealth
    outbox: Outbox
    docker: Docker
    probes: Probes
    confirmations: Confirmations = field(default_factory=Confirmations)
    started: float = field(default_factory=time.time)

    def notify(self, text: str, kind: Kind) -> None:
        """Queue `text` for the owner and every notify chat."""
        self.outbox.put(self.config.recipients, text, kind)

    async def _row(self, service: Service) -> ServiceRow:
        try:
            return ServiceRow(service.name, service.container, await self.docker.state(service.container))
        except DockerError as e:
            return ServiceRow(service.name, service.container, None, str(e))

    async def service_rows(self) -> list[ServiceRow]:
        return list(await asyncio.gather(*(self._row(s) for s in self.config.services)))
