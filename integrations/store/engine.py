"""The label store's database: the engine, SQLite tuning, schema migrations and transactions.

A server, a collector and a CLI may open the same database at once, so every write is a short transaction. On
SQLite each connection runs in WAL mode with a busy timeout and foreign keys on, and a write transaction takes
the write lock when it begins (``BEGIN IMMEDIATE``). Opening a :class:`Database` applies any pending Alembic
migration; two processes opening a fresh PostgreSQL database serialise on an advisory lock.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, event, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url

from labelflow.integrations.store.errors import StoreError
from labelflow.integrations.store.schema import Base

MIGRATIONS_DIR: Final = Path(__file__).resolve().parent / "migrations"
SUPPORTED_DIALECTS: Final = ("sqlite", "postgresql")

# Connection execution option asking the SQLite begin hook for a write (IMMEDIATE) transaction.
_WRITE_OPTION: Final = "labelflow_write"
# Arbitrary constant key for the PostgreSQL advisory lock that serialises concurrent migrations.
_PG_MIGRATION_LOCK: Final = 0x6C61_6265_6C66

# An INSERT that can take an ON CONFLICT clause, on either dialect.
ConflictInsert = sqlite.Insert | postgresql.Insert


def _ensure_sqlite_parent_dir(database: str | None) -> None:
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    Path(database).expanduser().resolve().parent.mkdir(parents=True, exist_ok=True)


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take BEGIN away from the sqlite3 driver (in legacy mode it skips BEGIN before SELECT and DDL, so a
        # read-then-write would not be one transaction); the "begin" hook below emits it instead.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            # busy_timeout first: switching to WAL takes a lock another process may hold for a moment.
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # A write transaction takes the write lock up front. A deferred one that reads and then writes fails
        # at once with SQLITE_BUSY (busy_timeout does not help) if another process wrote in between.
        if conn.get_execution_options().get(_WRITE_OPTION):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")


class Database:
    """One SQLite or PostgreSQL database holding label stores, migrated to the latest schema when opened.

    Parameters
    ----------
    url : str
        A SQLAlchemy URL; for SQLite the parent directory of the file is created.

    Raises
    ------
    StoreError
        If the URL names a database other than SQLite or PostgreSQL.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        parsed = make_url(url)
        self.dialect = parsed.get_backend_name()
        if self.dialect not in SUPPORTED_DIALECTS:
            raise StoreError(
                f"unsupported database {self.dialect!r} in {parsed.render_as_string(hide_password=True)}; "
                f"the label store runs on {' or '.join(SUPPORTED_DIALECTS)}"
            )
        if self.dialect == "sqlite":
            _ensure_sqlite_parent_dir(parsed.database)
        self.engine: Engine = create_engine(url)
        if self.dialect == "sqlite":
            _configure_sqlite(self.engine)
        try:
            self._migrate()
        except BaseException:
            self.engine.dispose()
            raise

    def close(self) -> None:
        """Release the database's connections."""
        self.engine.dispose()

    def display_url(self) -> str:
        """The URL with any password hidden."""
        return make_url(self.url).render_as_string(hide_password=True)

    def _migrate(self) -> None:
        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
        cfg.set_main_option("path_separator", "os")
        with self.write() as conn:
            if self.dialect == "postgresql":
                # Two processes opening a fresh database must not both create the tables.
                conn.execute(select(func.pg_advisory_xact_lock(_PG_MIGRATION_LOCK)))
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A connection in a write transaction, committed when the block ends without an exception."""
        with self.engine.connect() as conn:
            conn.execution_options(**{_WRITE_OPTION: True})
            with conn.begin():
                yield conn

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A connection for reading."""
        with self.engine.connect() as conn:
            yield conn

    def insert(self, entity: type[Base]) -> ConflictInsert:
        """An INSERT into ``entity``'s table that supports ``ON CONFLICT`` (dialect-specific syntax with the
        same API in both dialects)."""
        if self.dialect == "postgresql":
            return postgresql.insert(entity)
        return sqlite.insert(entity)

    def insert_new(self, entity: type[Base]) -> ConflictInsert:
        """An INSERT that skips rows whose natural key is already stored (``ON CONFLICT DO NOTHING``)."""
        return self.insert(entity).on_conflict_do_nothing()

    def upsert(
        self, entity: type[Base], key: Sequence[str], replace: Iterable[str], add: Iterable[str] = ()
    ) -> ConflictInsert:
        """An INSERT that, for a row whose ``key`` is already stored, overwrites the ``replace`` columns and
        adds the new value to the ``add`` columns instead."""
        insert = self.insert(entity)
        changes: dict[str, Any] = {column: insert.excluded[column] for column in replace}
        changes.update({column: getattr(entity, column) + insert.excluded[column] for column in add})
        return insert.on_conflict_do_update(index_elements=list(key), set_=changes)
