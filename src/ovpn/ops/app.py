"""The operator-side application context: where the state lives and how commands open it."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path

from ovpn.state.db import Database
from ovpn.state.repo import Repository
from ovpn.state.secrets import SecretBox, load_or_create_key

DATA_DIR_ENV = "OVPN_DATA_DIR"


def resolve_data_dir(option: str | None, env: Mapping[str, str] = os.environ) -> Path:
    chosen = option or env.get(DATA_DIR_ENV) or "~/.ovpn"
    return Path(chosen).expanduser().absolute()


class App:
    def __init__(self, data_dir: Path, env: Mapping[str, str] = os.environ) -> None:
        self.data_dir = data_dir
        self.env = env

    @cached_property
    def db(self) -> Database:
        return Database(self.data_dir)

    @cached_property
    def box(self) -> SecretBox:
        return SecretBox(load_or_create_key(self.data_dir, self.env))

    @contextmanager
    def writing(self) -> Iterator[Repository]:
        with self.db.write() as conn:
            yield Repository(conn, self.box)

    @contextmanager
    def reading(self) -> Iterator[Repository]:
        with self.db.read() as conn:
            yield Repository(conn, self.box)
