"""Moving a label store to another database (``labelflow store migrate --to ...``): every table and project,
row for row with the same ids, in one transaction.

Both databases are first brought to the latest schema (opening a :class:`Database` does that). The target then
becomes a copy of the source: rows go over in the tables' foreign-key order, a chunk at a time, inserted or (for
a row copied before and changed since: a round that finished, a request published, a worker's tally) updated;
rows the store deletes (a released lease, a cancelled unpublished request) are deleted from the target too. So
the command can run again while the old store is still in use, and a run with nothing new changes nothing.

What it refuses, writing nothing: in a table the store never deletes from (all but the requests and the leases),
a target row whose id matches a source row's but whose identity differs (its natural key: another project's
item, another round number), or a target row the source lacks; and a row that would take another row's natural
key. The target then holds another store, or was written to after it became the store. On PostgreSQL the id
sequences are finally moved past the copied ids, or the next insert there would collide with a copied row.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import Connection, Table, UniqueConstraint, delete, func, select, text, tuple_
from sqlalchemy.exc import IntegrityError

from labelflow.integrations.store.engine import Database
from labelflow.integrations.store.errors import StoreError
from labelflow.integrations.store.schema import Base, LabelRequestRow, RoundLease, ServeLease

_CHUNK: Final = 5_000
# The tables whose rows the store deletes; every other table only ever grows.
_DELETING: Final = frozenset(entity.__tablename__ for entity in (LabelRequestRow, RoundLease, ServeLease))

Key = tuple[Any, ...]


@dataclass(frozen=True)
class TableCopy:
    """What moving one table did: rows in the source; rows added to, updated in and deleted from the target."""

    table: str
    rows: int
    added: int
    updated: int
    deleted: int

    @property
    def changes(self) -> int:
        return self.added + self.updated + self.deleted


def _identity_columns(table: Table) -> list[str]:
    """The columns that say which row this is: the primary key and every unique key."""
    names = [column.name for column in table.primary_key.columns]
    for constraint in table.constraints:
        if isinstance(constraint, UniqueConstraint):
            names.extend(column.name for column in constraint.columns if column.name not in names)
    return names


def _chunks(conn: Connection, table: Table) -> Iterator[list[dict[str, Any]]]:
    key = list(table.primary_key.columns)
    result = conn.execution_options(yield_per=_CHUNK).execute(select(table).order_by(*key))
    for partition in result.mappings().partitions():
        yield [dict(row) for row in partition]


def _key(table: Table, row: dict[str, Any]) -> Key:
    return tuple(row[column.name] for column in table.primary_key.columns)


def _stored(conn: Connection, table: Table, keys: list[Key]) -> dict[Key, dict[str, Any]]:
    pk = tuple_(*table.primary_key.columns)
    rows = conn.execute(select(table).where(pk.in_(keys))).mappings()
    return {_key(table, dict(row)): dict(row) for row in rows}


def _other_data(table: Table, detail: str) -> StoreError:
    return StoreError(
        f"the target already holds other data: table {table.name!r}: {detail}; nothing was written. Migrate "
        "to an empty database, or to the one earlier migrates of this same store wrote, before it became the "
        "store"
    )


def _copy_table(source: Connection, target: Database, writing: Connection, table: Table) -> TableCopy:
    identity = _identity_columns(table)
    key_names = [column.name for column in table.primary_key.columns]
    upsert = target.insert(table)
    upsert = upsert.on_conflict_do_update(
        index_elements=key_names,
        set_={
            column.name: upsert.excluded[column.name]
            for column in table.columns
            if column.name not in key_names
        },
    )
    rows = added = updated = 0
    seen: set[Key] = set()
    for chunk in _chunks(source, table):
        stored = _stored(writing, table, [_key(table, row) for row in chunk])
        for row in chunk:
            before = stored.get(_key(table, row))
            if before is None:
                added += 1
                continue
            # SQLite gives a deleted row's id to the next row, so in a table the store deletes from, a row
            # with a copied row's id may be another row: it replaces the deleted one.
            if table.name not in _DELETING and any(before[name] != row[name] for name in identity):
                raise _other_data(table, f"{before} has the id of {row}")
            updated += before != row
        try:
            writing.execute(upsert, chunk)
        except IntegrityError as error:
            raise _other_data(table, str(error.orig).strip().splitlines()[0]) from None
        rows += len(chunk)
        seen.update(_key(table, row) for row in chunk)
    in_target = (tuple(row) for row in writing.execute(select(*table.primary_key.columns)))
    extra = [key for key in in_target if key not in seen]
    if extra and table.name not in _DELETING:
        raise _other_data(
            table,
            f"{len(extra)} row(s) the source does not have, e.g. {dict(zip(key_names, extra[0], strict=True))}",
        )
    for start in range(0, len(extra), _CHUNK):
        writing.execute(
            delete(table).where(tuple_(*table.primary_key.columns).in_(extra[start : start + _CHUNK]))
        )
    return TableCopy(table.name, rows, added, updated, len(extra))


def _advance_sequences(conn: Connection, table: Table) -> None:
    """Move an integer id's sequence past the copied ids (PostgreSQL only; SQLite takes max(id) + 1 itself)."""
    for column in table.primary_key.columns:
        sequence = conn.scalar(select(func.pg_get_serial_sequence(table.name, column.name)))
        highest = conn.scalar(select(func.max(column)).select_from(table))
        if sequence is not None and highest is not None:
            conn.execute(
                text("SELECT setval(:sequence, :highest)"), {"sequence": sequence, "highest": highest}
            )


def copy_store(
    source_url: str, target_url: str, progress: Callable[[TableCopy], None] | None = None
) -> list[TableCopy]:
    """Make the store at ``target_url`` a copy of the store at ``source_url``, and return what changed per table.

    Raises
    ------
    StoreError
        If the two URLs name one database, a database cannot be opened, or the target holds other data (see the
        module's docstring); then nothing is written.
    """
    source = Database(source_url)
    try:
        target = Database(target_url)
    except BaseException:
        source.close()
        raise
    try:
        if source.engine.url == target.engine.url:
            raise StoreError(f"the source and the target are the same database ({source.display_url()})")
        done: list[TableCopy] = []
        with source.read() as reading, target.write() as writing:
            for table in Base.metadata.sorted_tables:
                done.append(_copy_table(reading, target, writing, table))
                if target.dialect == "postgresql":
                    _advance_sequences(writing, table)
                if progress is not None:
                    progress(done[-1])
        return done
    finally:
        source.close()
        target.close()
