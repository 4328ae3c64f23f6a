"""What the per-table modules share: the :class:`Repository` base (one database, one project), frame reading,
chunked key look-ups, per-key de-duplication of a batch and value clean-up.

One store (one database) can hold several projects, so every repository filters every query on its project;
tables keyed by round (requests, answers, labels) reach the project through the round, see
:meth:`Repository.in_project`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, TypeAlias, TypeVar

import pandas as pd
from sqlalchemy import Connection, Executable, Row, Select, select
from sqlalchemy.orm import QueryableAttribute

from labelflow.contracts import empty_frame
from labelflow.integrations.store.engine import Database
from labelflow.integrations.store.errors import StoreError
from labelflow.integrations.store.schema import Base, Round

# Bound on IN-list length: SQLite builds before 3.32 allow only 999 bound variables per statement.
_CHUNK: Final = 500

# A SELECT or a row of any number of columns of any type.
AnySelect: TypeAlias = Select[*tuple[Any, ...]]
AnyRow: TypeAlias = Row[*tuple[Any, ...]]

_Entry = TypeVar("_Entry")
_Key = TypeVar("_Key", bound=Hashable)


def now() -> datetime:
    """The current time, timezone-aware (the store refuses naive timestamps)."""
    return datetime.now(UTC)


def is_missing(value: object) -> bool:
    """Whether ``value`` is None or a pandas/numpy missing value (NaN, NaT, NA)."""
    if value is None:
        return True
    try:
        checked: Any = value  # pd.isna's overloads do not cover plain object
        return bool(pd.isna(checked))
    except (TypeError, ValueError):
        return False


def label_or_none(value: object) -> str | None:
    """Labels are strings; a float column (a label column with gaps) must still give "7", not "7.0"."""
    if is_missing(value):
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _json_default(value: object) -> Any:
    item = getattr(value, "item", None)  # numpy scalars
    if callable(item):
        return item()
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def dumps(value: object) -> str:
    """``value`` as JSON, numpy scalars and datetimes included."""
    return json.dumps(value, default=_json_default)


def frame(rows: Iterable[Iterable[Any]], columns: Sequence[str]) -> pd.DataFrame:
    """``rows`` as a frame with ``columns``; an empty frame still has them."""
    records = [tuple(row) for row in rows]
    if not records:
        return empty_frame(tuple(columns))
    return pd.DataFrame.from_records(records, columns=list(columns))


def select_columns(entity: type[Base], columns: Iterable[str]) -> AnySelect:
    """SELECT the named columns of ``entity``, in that order."""
    return select(*(getattr(entity, column) for column in columns))


def unique_by(
    entries: Iterable[_Entry], key: Callable[[_Entry], _Key], clash: Callable[[_Entry, _Entry], str | None]
) -> Iterator[_Entry]:
    """The first entry of each key, lazily and in order; :class:`StoreError` with ``clash(first, later)``'s
    message when it returns one for a later entry with the same key (None: the later one is dropped).

    Lazy both ways, so errors come in batch order: an entry is checked against the earlier ones before the
    next is drawn from ``entries`` (which may validate as it goes) and before the caller handles it.
    """
    first: dict[_Key, _Entry] = {}
    for entry in entries:
        entry_key = key(entry)
        if entry_key not in first:
            first[entry_key] = entry
            yield entry
        elif (message := clash(first[entry_key], entry)) is not None:
            raise StoreError(message)


def first_per_key(
    entries: Iterable[_Entry], key: Callable[[_Entry], _Key], clash: Callable[[_Entry, _Entry], str | None]
) -> dict[_Key, _Entry]:
    """:func:`unique_by` as a mapping from each key to its first entry."""
    return {key(entry): entry for entry in unique_by(entries, key, clash)}


def rows_in_chunks(
    conn: Connection, query: AnySelect, column: QueryableAttribute[Any], values: Sequence[Any]
) -> Iterator[AnyRow]:
    """The rows of ``query`` whose ``column`` is one of ``values``, looked up a bounded IN-list at a time."""
    for start in range(0, len(values), _CHUNK):
        yield from conn.execute(query.where(column.in_(values[start : start + _CHUNK])))


@dataclass(frozen=True)
class Repository:
    """The rows of one table (or a few tightly bound ones) that belong to ``project`` in ``db``."""

    db: Database
    project: str

    def read_frame(self, query: Executable, columns: Sequence[str]) -> pd.DataFrame:
        """The rows of ``query`` as a frame with ``columns``."""
        with self.db.read() as conn:
            return frame(conn.execute(query), columns)

    def in_project(self, query: AnySelect, round_id: QueryableAttribute[int]) -> AnySelect:
        """``query`` limited to the project through the round its ``round_id`` column points to."""
        return query.join(Round, Round.id == round_id).where(Round.project == self.project)

    def require_rounds(self, conn: Connection, round_ids: Iterable[int]) -> None:
        """:class:`StoreError` unless every round id is one of the project's rounds."""
        wanted = set(round_ids)
        if not wanted:
            return
        known = set(conn.scalars(select(Round.id).where(Round.project == self.project)))
        unknown = sorted(wanted - known)
        if unknown:
            raise StoreError(f"round id(s) {unknown} do not exist in project {self.project!r}")
