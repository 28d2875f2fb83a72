"""The object every command receives: the data directory, and the App opened on first use."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ovpn.ops.app import App


class Context:
    """What every command gets: the data directory, and the App opened on first use."""

    def __init__(self, data_dir: str | None) -> None:
        self._data_dir = data_dir
        self._app: App | None = None

    @property
    def app(self) -> App:
        if self._app is None:
            from ovpn.cli.output import warn
            from ovpn.ops.app import App, resolve_data_dir  # imported here to keep start-up fast

            self._app = App(resolve_data_dir(self._data_dir), warn=warn)
        return self._app
