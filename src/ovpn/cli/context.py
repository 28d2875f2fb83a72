"""The object every command receives: the data directory, the output mode, and the App opened on first use."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ovpn.ops.app import App


class Context:
    """What every command gets: the data directory, whether it prints JSON, and the App opened on first use.

    `ovpn.cli.main.main` makes it before the command line is parsed, so that an error raised by any command can
    still be printed in the mode that command was asked for."""

    def __init__(self, data_dir: str | None = None) -> None:
        self.data_dir = data_dir
        self.json_output = False  # set by the `--json` option as soon as it is parsed (see cli/output.py)
        self._app: App | None = None

    @property
    def app(self) -> App:
        if self._app is None:
            from ovpn.cli.output import note, warn
            from ovpn.ops.app import App, resolve_data_dir  # imported here to keep start-up fast

            self._app = App(resolve_data_dir(self.data_dir), warn=warn, note=note)
        return self._app

    def close(self) -> None:
        """Close the state store, if a command opened it (not left to the garbage collector)."""
        if self._app is not None:
            self._app.close()
