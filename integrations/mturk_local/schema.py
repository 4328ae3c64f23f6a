"""The local MTurk endpoint's SQLite file: its tables, transactions, counters, key-value meta and clock offset.

Everything lives in one file, so a restarted endpoint loses nothing.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

DEFAULT_BALANCE: Final = 10_000.0

SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, n INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS tokens (token TEXT PRIMARY KEY, ref TEXT NOT NULL, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS qualification_types (
    id TEXT PRIMARY KEY, name TEXT UNIQUE NOT NULL, description TEXT NOT NULL, status TEXT NOT NULL,
    created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS worker_qualifications (
    qualification_id TEXT NOT NULL, worker_id TEXT NOT NULL, value INTEGER NOT NULL,
    PRIMARY KEY (qualification_id, worker_id));
CREATE TABLE IF NOT EXISTS hit_types (id TEXT PRIMARY KEY, params TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS hits (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE NOT NULL, hit_type_id TEXT NOT NULL,
    max_assignments INTEGER NOT NULL, created REAL NOT NULL, expiration REAL NOT NULL, question TEXT NOT NULL,
    annotation TEXT, labels TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS assignments (
    id TEXT PRIMARY KEY, hit_id TEXT NOT NULL, worker_id TEXT NOT NULL, slot INTEGER NOT NULL,
    accept_time REAL NOT NULL, submit_time REAL NOT NULL, answer TEXT NOT NULL, status TEXT NOT NULL,
    decided_at REAL, feedback TEXT);
CREATE INDEX IF NOT EXISTS ix_assignments_hit ON assignments (hit_id);
CREATE TABLE IF NOT EXISTS bonuses (
    worker_id TEXT NOT NULL, assignment_id TEXT NOT NULL, amount REAL NOT NULL, reason TEXT NOT NULL,
    created REAL NOT NULL);
"""


def new_id(prefix: str = "3") -> str:
    """A 30-character upper-case id, like MTurk's HIT and assignment ids."""
    return (prefix + secrets.token_hex(15).upper())[:30]


class EndpointDatabase:
    """The endpoint's SQLite file (created with :data:`SCHEMA` if new), in autocommit mode with explicit
    transactions. Not thread-safe on its own: the endpoint serialises calls with its lock."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        self._conn.row_factory = sqlite3.Row
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.executescript(SCHEMA)

    def execute(self, sql: str, parameters: tuple[Any, ...] = ()) -> sqlite3.Cursor:
        return self._conn.execute(sql, parameters)

    def close(self) -> None:
        self._conn.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    def meta(self, key: str, default: str) -> str:
        row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return str(row["value"]) if row else default

    def set_meta(self, key: str, value: str) -> None:
        self._conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    def count(self, name: str, n: int = 1) -> None:
        self._conn.execute(
            "INSERT INTO counters (name, n) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET n = n + ?",
            (name, n, n),
        )

    def balance(self) -> float:
        """The requester account's available balance in dollars."""
        return float(self.meta("balance", repr(DEFAULT_BALANCE)))

    def set_balance(self, dollars: float) -> None:
        self.set_meta("balance", repr(float(dollars)))

    def hit_type(self, hit_type_id: str) -> dict[str, Any]:
        """A HIT type's parameters, as CreateHITType stored them."""
        row = self._conn.execute("SELECT params FROM hit_types WHERE id = ?", (hit_type_id,)).fetchone()
        params: dict[str, Any] = json.loads(row["params"])
        return params

    def counters(self) -> dict[str, int]:
        return {row["name"]: int(row["n"]) for row in self._conn.execute("SELECT name, n FROM counters")}

    def now(self) -> float:
        """The endpoint's time (epoch seconds): wall-clock time plus the fast-forward offset."""
        return time.time() + self.offset()

    def offset(self) -> float:
        return float(self.meta("offset", "0"))

    def shift(self, seconds: float) -> None:
        """Move the endpoint's clock forward by ``seconds``."""
        self.set_meta("offset", repr(self.offset() + seconds))
