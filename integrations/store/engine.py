"""The label store's database: the engine, SQLite tuning, schema migrations and transactions.

A server, a collector and a CLI may open the same database at once, so every write is a short transaction. On
SQLite each connection runs in WAL mode with a busy timeout and foreign keys on, and a write transaction takes
the write lock when it begins (``BEGIN IMMEDIATE``). Opening a :class:`Database` applies any pending Alembic
migration.

On PostgreSQL there is no file-wide write lock: transactions run at READ COMMITTED side by side. The few writes
that read, decide and then write (taking a lease, opening a round, migrating) name what they serialise on with
``write(serialize=...)``, which takes a transaction-level advisory lock on that name: another writer with the same
name waits until the first commits, and then reads what it wrote. Marking requests published locks the request
rows it checks (``SELECT ... FOR UPDATE``; SQLite ignores the clause, its write lock already covers it). A unique
index or constraint backs every rule besides (one running round per project, one model per round), so a writer
that bypasses the locks still cannot break it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from itertools import chain
from pathlib import Path
from typing import Any, Final

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, Table, create_engine, event, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.types import TypeEngine

from labelflow.integrations.store.errors import StoreError
from labelflow.integrations.store.schema import Base

MIGRATIONS_DIR: Final = Path(__file__).resolve().parent / "migrations"
SUPPORTED_DIALECTS: Final = ("sqlite", "postgresql")

# Connection execution option asking the SQLite begin hook for a write (IMMEDIATE) transaction.
_WRITE_OPTION: Final = "labelflow_write"
# What concurrent migrations of a fresh PostgreSQL database serialise on.
_MIGRATION_LOCK: Final = "labelflow:migrations"
# bound values per statement: SQLite's lowest default limit (PostgreSQL's is 65,535)
_MAX_PARAMETERS: Final = 999

# An INSERT that can take an ON CONFLICT clause, on either dialect.
ConflictInsert = sqlite.Insert | postgresql.Insert


def _ensure_sqlite_parent_dir(database: str | None) -> None:
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    Path(database).expanduser().resolve().parent.mkdir(parents=True, exist_ok=True)


def advisory_lock_key(name: str) -> int:
    """A stable signed 64-bit key for ``name`` (PostgreSQL's advisory locks take a bigint)."""
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big", signed=True)


# Where a label store's database password comes from: never a URL in a file that is committed or shared.
PASSWORD_SOURCES: Final = (
    "set PGPASSWORD in the environment (or keep it in a ~/.pgpass file), or save it in a Prefect Secret block "
    "and name the block in store_password_secret"
)


def password_refusal(url: str) -> str | None:
    """Why ``url`` may not be written down as it is (it holds a password), or None if it holds none."""
    if make_url(url).password is None:
        return None
    return (
        "holds a password, which does not belong in a config file or on a command line: remove it and "
        f"{PASSWORD_SOURCES}"
    )


def with_password(url: str, password: str) -> str:
    """``url`` with ``password`` set (for the engine only: never print or store the result)."""
    return make_url(url).set(password=password).render_as_string(hide_password=False)


def _connection_error(display_url: str, error: OperationalError) -> StoreError:
    reason = str(error.orig or error).strip().splitlines()[0]
    hint = ""
    if "password" in reason:
        hint = f"; the store's password never comes from labelflow.toml: {PASSWORD_SOURCES}"
    return StoreError(f"cannot open the label store at {display_url}: {reason}{hint}")


def _literal(column_type: TypeEngine[Any], value: Any, dialect: Dialect) -> str:
    """``value`` as an SQL literal of ``column_type`` in ``dialect``, quoted and escaped by SQLAlchemy's literal
    processor (which also doubles ``%`` for drivers whose parameter markers are ``%s``)."""
    process = column_type.dialect_impl(dialect).literal_processor(dialect)
    if process is None:
        raise TypeError(
            f"{column_type} has no literal form in {dialect.name}; bind it with every row instead"
        )
    return str(process(value))


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
        try:
            # pre-ping: a serve process keeps its pool for days, and a PostgreSQL server may close idle
            # connections (a restart, a failover) in the meantime.
            self.engine: Engine = create_engine(url, pool_pre_ping=self.dialect == "postgresql")
        except ImportError as error:
            raise StoreError(
                f"{self.display_url()}: its database driver ({error.name or error}) is not installed; for "
                "PostgreSQL install labelflow's postgres extra: pip install 'labelflow[postgres]'"
            ) from None
        if self.dialect == "sqlite":
            _configure_sqlite(self.engine)
        try:
            self._migrate()
        except OperationalError as error:
            self.engine.dispose()
            raise _connection_error(self.display_url(), error) from None
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
        # Two processes opening a fresh database must not both create the tables.
        with self.write(serialize=_MIGRATION_LOCK) as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")

    @contextmanager
    def write(self, serialize: str | None = None) -> Iterator[Connection]:
        """A connection in a write transaction, committed when the block ends without an exception.

        ``serialize``: write transactions given the same name run one after the other, the later one seeing
        what the earlier committed (on PostgreSQL a transaction-level advisory lock; on SQLite every write
        transaction already runs alone).
        """
        with self.engine.connect() as conn:
            conn.execution_options(**{_WRITE_OPTION: True})
            with conn.begin():
                if serialize is not None and self.dialect == "postgresql":
                    conn.execute(select(func.pg_advisory_xact_lock(advisory_lock_key(serialize))))
                yield conn

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A connection for reading."""
        with self.engine.connect() as conn:
            yield conn

    def insert(self, entity: type[Base] | Table) -> ConflictInsert:
        """An INSERT into ``entity``'s table that supports ``ON CONFLICT`` (dialect-specific syntax with the
        same API in both dialects)."""
        if self.dialect == "postgresql":
            return postgresql.insert(entity)
        return sqlite.insert(entity)

    def insert_new(self, entity: type[Base]) -> ConflictInsert:
        """An INSERT that skips rows whose natural key is already stored (``ON CONFLICT DO NOTHING``)."""
        return self.insert(entity).on_conflict_do_nothing()

    def insert_many(
        self,
        conn: Connection,
        entity: type[Base],
        rows: Iterable[Sequence[Any]],
        columns: Sequence[str],
        *,
        same: Mapping[str, Any] | None = None,
        key: Sequence[str] = (),
        replace: Sequence[str] = (),
        chunk_rows: int = 20_000,
    ) -> None:
        """INSERT ``rows`` (tuples of ``columns``' values) into ``entity``'s table, ``chunk_rows`` at a time
        through the driver's ``executemany``: no dict and no SQLAlchemy processing per row, which for 2M items
        took ~20 s and ~1.5 GB. ``same`` holds the columns every row shares, written into the statement as
        literals of their column type (a quoted text, a timestamp): bound with every row, they were 2 of the 5
        values of an item, and 2M items took 1.3-1.6 s more CPU in a one-off raw sqlite3 test. A row whose unique
        ``key`` is stored already overwrites the ``replace`` columns (``ON CONFLICT (key) DO UPDATE``; then no two
        rows may share a key, as PostgreSQL refuses that within one statement) or, without ``replace``, is
        skipped (``ON CONFLICT DO NOTHING``).

        Each statement inserts as many rows as ``_MAX_PARAMETERS`` allows: SQLite runs a statement of many rows
        faster than as many one-row statements (2M items: 6.5 s against 11.3 s of CPU in a one-off
        raw sqlite3 test).
        The values of ``columns`` go to the driver as they are: plain Python str, int, float or None."""
        table = Base.metadata.tables[entity.__tablename__]
        marker = "?" if conn.dialect.paramstyle == "qmark" else "%s"
        shared = {
            name: _literal(table.c[name].type, value, conn.dialect) for name, value in (same or {}).items()
        }
        names = [*columns, *shared]
        conflict = (
            f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET "
            + ", ".join(f"{column} = excluded.{column}" for column in replace)
            if replace
            else "ON CONFLICT DO NOTHING"
        )
        one_row = f"({', '.join([*[marker] * len(columns), *shared.values()])})"
        per_statement = max(1, _MAX_PARAMETERS // len(columns))

        def statement(n_rows: int) -> str:
            values = ", ".join([one_row] * n_rows)
            return f"INSERT INTO {table.name} ({', '.join(names)}) VALUES {values} {conflict}"

        many_rows, single_row = statement(per_statement), statement(1)

        def insert(chunk: list[tuple[Any, ...]]) -> None:
            whole = len(chunk) - len(chunk) % per_statement
            if whole:
                conn.exec_driver_sql(
                    many_rows,
                    [
                        tuple(chain.from_iterable(chunk[at : at + per_statement]))
                        for at in range(0, whole, per_statement)
                    ],
                )
            if whole < len(chunk):
                conn.exec_driver_sql(single_row, chunk[whole:])

        chunk: list[tuple[Any, ...]] = []
        for row in rows:
            chunk.append(tuple(row))
            if len(chunk) == chunk_rows:
                insert(chunk)
                chunk = []
        if chunk:
            insert(chunk)

    def upsert(
        self, entity: type[Base], key: Sequence[str], replace: Iterable[str], add: Iterable[str] = ()
    ) -> ConflictInsert:
        """An INSERT that, for a row whose ``key`` is already stored, overwrites the ``replace`` columns and
        adds the new value to the ``add`` columns instead."""
        insert = self.insert(entity)
        changes: dict[str, Any] = {column: insert.excluded[column] for column in replace}
        changes.update({column: getattr(entity, column) + insert.excluded[column] for column in add})
        return insert.on_conflict_do_update(index_elements=list(key), set_=changes)
