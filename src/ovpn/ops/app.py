"""The operator-side application context: where the state lives and how commands open it."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path

from ovpn.errors import OvpnError
from ovpn.state.db import Database, lock_timeout_from
from ovpn.state.repo import Repository, holds_sealed_values, sealed_sample
from ovpn.state.secrets import ENV_KEY, KEY_FILE, KeyMismatch, SecretBox, create_key, load_key, missing_key

DATA_DIR_ENV = "OVPN_DATA_DIR"
# The migration from which the database itself refuses users that differ only in case (0007).
IDENTITY_GUARD_VERSION = 7


def resolve_data_dir(option: str | None, env: Mapping[str, str] = os.environ) -> Path:
    chosen = option or env.get(DATA_DIR_ENV) or "~/.ovpn"
    return Path(chosen).expanduser().absolute()


class App:
    def __init__(
        self,
        data_dir: Path,
        env: Mapping[str, str] = os.environ,
        warn: Callable[[str], None] | None = None,
        note: Callable[[str], None] | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.env = env
        self.warn = warn or (lambda line: None)
        self.note = note or (lambda line: None)  # a line the operator should see, even beside --json output
        self._key_settled = False

    @cached_property
    def db(self) -> Database:
        db = Database(self.data_dir, lock_timeout_from(self.env))
        if db.migrated_from is not None and 0 < db.migrated_from < IDENTITY_GUARD_VERSION:
            # State written before ovpn refused identities Xray cannot tell apart: report them, never rewrite them.
            from ovpn.core.users import clash_warnings

            with db.read() as conn:
                users = Repository(conn, self.box).users()
            for line in clash_warnings(users):
                self.warn(line)
        return db

    @cached_property
    def box(self) -> SecretBox:
        """Seals and opens secrets. The key is read on first use; only `writing` may create one."""
        return SecretBox(self._existing_key)

    def _existing_key(self) -> bytes:
        key = load_key(self.data_dir, self.env)
        if key is None:
            raise missing_key(self.data_dir)
        return key

    def _settle_key(self, repo: Repository) -> None:
        """Before the first write: make sure the key is the one the state's secrets were sealed with.

        A new key is made only while the state holds no encrypted value; otherwise a lost `secret.key` would be
        replaced silently and the state would end up sealed under two keys.
        """
        if self._key_settled:
            return
        sample = sealed_sample(repo.conn)
        if load_key(self.data_dir, self.env) is None:
            if sample is not None or holds_sealed_values(repo.conn):
                raise missing_key(self.data_dir)
            create_key(self.data_dir)
        elif sample is not None:
            stored, context = sample
            try:
                self.box.open(stored, context)
            except KeyMismatch:
                origin = ENV_KEY if self.env.get(ENV_KEY) else str(self.data_dir / KEY_FILE)
                raise OvpnError(
                    f"the secret key from {origin} does not decrypt the secrets already in the state; "
                    "nothing was written",
                    f"restore the original {KEY_FILE} into the data directory or set {ENV_KEY} to the original key",
                ) from None
        self._key_settled = True

    def close(self) -> None:
        if "db" in self.__dict__:
            self.db.close()

    @contextmanager
    def writing(self) -> Iterator[Repository]:
        with self.db.write() as conn:
            repo = Repository(conn, self.box)
            self._settle_key(repo)
            yield repo

    @contextmanager
    def reading(self) -> Iterator[Repository]:
        with self.db.read() as conn:
            yield Repository(conn, self.box)
