"""The label store: the one place a project's state lives, and where idempotency is enforced.

A server, a collector and a CLI may open the same store at once (docs/architecture.md, "The label store"), so every
write is a short transaction, inserts use ON CONFLICT DO NOTHING on natural keys, and a rerun of a round reads
what is already stored instead of buying it again. One store (one database) can hold several projects; every
query is filtered on ``project``.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Final, TypeVar

import pandas as pd
from alembic import command
from alembic.config import Config
from sqlalchemy import (
    Connection,
    Engine,
    Select,
    bindparam,
    create_engine,
    delete,
    event,
    func,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError

from labelflow.contracts import ANSWER_COLUMNS, LABEL_COLUMNS, empty_frame, require_columns
from labelflow.integrations.crowd.base import CrowdAnswer, Handle, LabelRequest
from labelflow.integrations.store.schema import (
    ITEM_SETS,
    LABEL_SOURCES,
    WORKER_STATUSES,
    AnswerRow,
    Base,
    IngestedFile,
    Item,
    LabelRequestRow,
    LabelRow,
    ModelVersion,
    Round,
    RoundLease,
    ServeLease,
    Worker,
)

MIGRATIONS_DIR: Final = Path(__file__).resolve().parent / "migrations"

ITEM_COLUMNS: Final = ("item_id", "item_set", "known_label")
ROUND_COLUMNS: Final = ("id", "number", "status", "started_at", "finished_at", "summary", "error")
REQUEST_COLUMNS: Final = (
    "request_key",
    "round_id",
    "item_id",
    "wave",
    "n_answers",
    "answers_before",
    "is_gold",
    "external_id",
    "published_at",
)
UNPARSED_ANSWER_COLUMNS: Final = ("answer_id", "item_id", "worker_id", "raw", "parse_error", "round_id")
WORKER_COLUMNS: Final = (
    "worker_id",
    "backend",
    "status",
    "n_answers",
    "accuracy",
    "n_gold",
    "updated_at",
    "spammer_score",
    "confusion",
)
MODEL_VERSION_COLUMNS: Final = (
    "id",
    "round_id",
    "round_number",
    "path",
    "accuracy",
    "metrics",
    "promoted",
    "created_at",
)
FINISHED_STATUSES: Final = ("completed", "failed")
SUPPORTED_DIALECTS: Final = ("sqlite", "postgresql")

# Bound on IN-list length: SQLite builds before 3.32 allow only 999 bound variables per statement.
_CHUNK: Final = 500
# Connection execution option asking the SQLite begin hook for a write (IMMEDIATE) transaction.
_WRITE_OPTION: Final = "labelflow_write"
# Arbitrary constant key for the PostgreSQL advisory lock that serialises concurrent migrations.
_PG_MIGRATION_LOCK: Final = 0x6C61_6265_6C66

_T = TypeVar("_T")


class StoreError(RuntimeError):
    """The store refused an operation; the message names the item, round or key involved."""


class RoundInProgressError(StoreError):
    """A round is already running for the project (for callers that may only start, never resume, a round)."""


@dataclass(frozen=True)
class RoundRecord:
    """A round as :meth:`LabelStore.open_round` returned it; ``resumed`` says it was already running."""

    id: int
    number: int
    status: str
    started_at: datetime
    resumed: bool


@dataclass(frozen=True)
class ModelVersionRecord:
    """A recorded model version; the champion is the latest one with ``promoted`` set."""

    id: int
    round_id: int
    path: str
    accuracy: float
    metrics: dict[str, float]
    promoted: bool


def _now() -> datetime:
    return datetime.now(UTC)


def _chunks(values: Sequence[_T], size: int = _CHUNK) -> Iterator[Sequence[_T]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _is_missing(value: object) -> bool:
    if value is None:
        return True
    try:
        checked: Any = value  # pd.isna's overloads do not cover plain object
        return bool(pd.isna(checked))
    except (TypeError, ValueError):
        return False


def _label_or_none(value: object) -> str | None:
    """Labels are strings; a float column (a label column with gaps) must still give "7", not "7.0"."""
    if _is_missing(value):
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


def _dumps(value: object) -> str:
    return json.dumps(value, default=_json_default)


def _frame(rows: Iterable[Iterable[Any]], columns: tuple[str, ...]) -> pd.DataFrame:
    records = [tuple(row) for row in rows]
    if not records:
        return empty_frame(columns)
    return pd.DataFrame.from_records(records, columns=list(columns))


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


class LabelStore:
    """A project's items, rounds, label requests, answers, labels, workers and model versions.

    ``url`` is any SQLAlchemy URL for SQLite or PostgreSQL (``sqlite:///path/to/labels.db`` by default; the
    parent directory is created). Opening the store applies any pending schema migrations.
    """

    def __init__(self, url: str, project: str) -> None:
        if not project:
            raise StoreError("a label store needs a non-empty project name")
        self.url = url
        self.project = project
        parsed = make_url(url)
        self._dialect = parsed.get_backend_name()
        if self._dialect not in SUPPORTED_DIALECTS:
            raise StoreError(
                f"unsupported database {self._dialect!r} in {parsed.render_as_string(hide_password=True)}; "
                f"the label store runs on {' or '.join(SUPPORTED_DIALECTS)}"
            )
        if self._dialect == "sqlite":
            _ensure_sqlite_parent_dir(parsed.database)
        self.engine: Engine = create_engine(url)
        if self._dialect == "sqlite":
            _configure_sqlite(self.engine)
        try:
            self._migrate()
        except BaseException:
            self.engine.dispose()
            raise

    def close(self) -> None:
        """Release the store's connections."""
        self.engine.dispose()

    def __enter__(self) -> LabelStore:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        url = make_url(self.url).render_as_string(hide_password=True)
        return f"LabelStore({url!r}, project={self.project!r})"

    # ------------------------------------------------------------------ plumbing

    def _migrate(self) -> None:
        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
        cfg.set_main_option("path_separator", "os")
        with self._write() as conn:
            if self._dialect == "postgresql":
                # Two processes opening a fresh database must not both create the tables.
                conn.execute(select(func.pg_advisory_xact_lock(_PG_MIGRATION_LOCK)))
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            conn.execution_options(**{_WRITE_OPTION: True})
            with conn.begin():
                yield conn

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            yield conn

    def _insert(self, entity: type[Base]) -> sqlite.Insert | postgresql.Insert:
        # ON CONFLICT is dialect-specific syntax with the same API in both dialects.
        if self._dialect == "postgresql":
            return postgresql.insert(entity)
        return sqlite.insert(entity)

    def _require_rounds(self, conn: Connection, round_ids: Iterable[int]) -> None:
        wanted = set(round_ids)
        if not wanted:
            return
        known = set(conn.scalars(select(Round.id).where(Round.project == self.project)))
        unknown = sorted(wanted - known)
        if unknown:
            raise StoreError(f"round id(s) {unknown} do not exist in project {self.project!r}")

    # ------------------------------------------------------------------ items

    def add_items(self, items: pd.DataFrame) -> int:
        """Insert the items not stored yet and return how many were added (idempotent).

        ``items`` has ``item_id`` and ``item_set`` and optionally ``known_label``. An item keeps the set it
        was first stored with: giving a stored item a different set raises :class:`StoreError`, since pool,
        gold and held-out must stay disjoint. A stored item's known label is not changed.
        """
        require_columns(items, ("item_id", "item_set"), "items")
        labels: Iterable[object] = (
            items["known_label"].tolist() if "known_label" in items.columns else [None] * len(items)
        )
        wanted: dict[str, tuple[str, str | None]] = {}
        for raw_id, raw_set, raw_label in zip(
            items["item_id"].tolist(), items["item_set"].tolist(), labels, strict=True
        ):
            item_id, item_set = str(raw_id), str(raw_set)
            if item_set not in ITEM_SETS:
                raise StoreError(f"item {item_id!r} has item_set {item_set!r}; expected one of {ITEM_SETS}")
            previous = wanted.get(item_id)
            if previous is None:
                wanted[item_id] = (item_set, _label_or_none(raw_label))
            elif previous[0] != item_set:
                raise StoreError(
                    f"item {item_id!r} is given in both {previous[0]!r} and {item_set!r}; "
                    "the sets must be disjoint"
                )
        if not wanted:
            return 0
        with self._write() as conn:
            existing: dict[str, str] = {
                item_id: item_set
                for item_id, item_set in conn.execute(
                    select(Item.item_id, Item.item_set).where(Item.project == self.project)
                )
            }
            conflicts = [
                (item_id, existing[item_id], item_set)
                for item_id, (item_set, _) in wanted.items()
                if item_id in existing and existing[item_id] != item_set
            ]
            if conflicts:
                item_id, stored_set, new_set = conflicts[0]
                more = f" (and {len(conflicts) - 1} more item(s))" if len(conflicts) > 1 else ""
                raise StoreError(
                    f"item {item_id!r} is already stored in {stored_set!r} and cannot be added to {new_set!r}"
                    f"{more}; the pool, gold and held-out sets must be disjoint"
                )
            now = _now()
            rows = [
                {
                    "project": self.project,
                    "item_id": item_id,
                    "item_set": item_set,
                    "known_label": known_label,
                    "added_at": now,
                }
                for item_id, (item_set, known_label) in wanted.items()
                if item_id not in existing
            ]
            if not rows:
                return 0
            # DO NOTHING covers a concurrent writer on PostgreSQL; on SQLite the IMMEDIATE lock excludes one.
            conn.execute(self._insert(Item).on_conflict_do_nothing(), rows)
        return len(rows)

    def items(self, item_set: str | None = None) -> pd.DataFrame:
        """The project's items (``item_id``, ``item_set``, ``known_label``), in insertion order."""
        query = select(Item.item_id, Item.item_set, Item.known_label).where(Item.project == self.project)
        if item_set is not None:
            query = query.where(Item.item_set == str(item_set))
        with self._read() as conn:
            return _frame(conn.execute(query.order_by(Item.id)), ITEM_COLUMNS)

    # ------------------------------------------------------------------ rounds

    def open_round(self) -> RoundRecord:
        """The project's running round (``resumed=True``) if there is one, else a new running round numbered
        one past the highest (``resumed=False``). An interrupted round is resumed, never duplicated."""
        for attempt in range(2):
            try:
                return self._open_round_once()
            except IntegrityError as exc:
                # Another process started a round between our read and our insert (possible on PostgreSQL,
                # where there is no up-front write lock); the next attempt finds and resumes it.
                if attempt:
                    raise StoreError(f"could not open a round for project {self.project!r}: {exc}") from exc
        raise AssertionError("unreachable")

    def _open_round_once(self) -> RoundRecord:
        with self._write() as conn:
            running = conn.execute(
                select(Round.id, Round.number, Round.status, Round.started_at).where(
                    Round.project == self.project, Round.status == "running"
                )
            ).first()
            if running is not None:
                return RoundRecord(running.id, running.number, running.status, running.started_at, True)
            number = (
                conn.scalar(
                    select(func.coalesce(func.max(Round.number), 0)).where(Round.project == self.project)
                )
                or 0
            ) + 1
            started_at = _now()
            round_id = conn.execute(
                self._insert(Round)
                .values(project=self.project, number=number, status="running", started_at=started_at)
                .returning(Round.id)
            ).scalar_one()
            return RoundRecord(round_id, number, "running", started_at, False)

    def finish_round(
        self, round_id: int, status: str, summary: dict[str, Any] | None = None, error: str | None = None
    ) -> None:
        """Mark the round ``completed`` or ``failed`` with its finish time, summary (stored as JSON) and
        error. Calling it again overwrites the previous outcome."""
        if status not in FINISHED_STATUSES:
            raise StoreError(f"a round finishes as one of {FINISHED_STATUSES}, not {status!r}")
        values = {
            "status": status,
            "finished_at": _now(),
            "summary": None if summary is None else _dumps(summary),
            "error": error,
        }
        with self._write() as conn:
            result = conn.execute(
                update(Round).where(Round.id == int(round_id), Round.project == self.project).values(**values)
            )
            if result.rowcount == 0:
                raise StoreError(f"round id {round_id} does not exist in project {self.project!r}")

    def rounds(self) -> pd.DataFrame:
        """All the project's rounds by number: id, number, status, started_at, finished_at, summary (a dict
        or None), error."""
        with self._read() as conn:
            rows = conn.execute(
                select(
                    Round.id,
                    Round.number,
                    Round.status,
                    Round.started_at,
                    Round.finished_at,
                    Round.summary,
                    Round.error,
                )
                .where(Round.project == self.project)
                .order_by(Round.number)
            ).all()
        frame = _frame(rows, ROUND_COLUMNS)
        frame["summary"] = pd.Series(
            [None if s is None else json.loads(s) for s in (row.summary for row in rows)],
            index=frame.index,
            dtype="object",
        )
        return frame

    def round_number(self, round_id: int) -> int:
        """The per-project number (1, 2, 3…) of a round id; :class:`StoreError` if the project has no such
        round."""
        with self._read() as conn:
            number = conn.scalar(
                select(Round.number).where(Round.id == int(round_id), Round.project == self.project)
            )
        if number is None:
            raise StoreError(f"round id {round_id} does not exist in project {self.project!r}")
        return int(number)

    # ------------------------------------------------------------------ label requests

    def _request_query(self) -> Select[*tuple[Any, ...]]:
        return select(
            LabelRequestRow.request_key,
            LabelRequestRow.round_id,
            LabelRequestRow.item_id,
            LabelRequestRow.wave,
            LabelRequestRow.n_answers,
            LabelRequestRow.answers_before,
            LabelRequestRow.is_gold,
            LabelRequestRow.external_id,
            LabelRequestRow.published_at,
        ).join(Round, Round.id == LabelRequestRow.round_id)

    def add_requests(self, requests: Sequence[LabelRequest]) -> pd.DataFrame:
        """Store the requests whose key is new and return the stored rows for all given keys, in the given
        order (REQUEST_COLUMNS).

        A key already stored keeps its stored values, so rerunning a round returns what was requested the
        first time, including ``external_id``/``published_at`` if it was published. :class:`StoreError` if
        (round, item, wave) is already stored under a different key; then none of the batch is stored.
        """
        unique: dict[str, LabelRequest] = {}
        for request in requests:
            previous = unique.setdefault(request.key, request)
            if (previous.round_id, previous.item_id, previous.wave) != (
                request.round_id,
                request.item_id,
                request.wave,
            ):
                raise StoreError(f"request key {request.key!r} is given for two different requests")
        if not unique:
            return empty_frame(REQUEST_COLUMNS)
        rows = [
            {
                "request_key": r.key,
                "round_id": int(r.round_id),
                "item_id": r.item_id,
                "wave": int(r.wave),
                "n_answers": int(r.n_answers),
                "answers_before": int(r.answers_before),
                "is_gold": bool(r.is_gold),
            }
            for r in unique.values()
        ]
        keys = list(unique)
        with self._write() as conn:
            self._require_rounds(conn, (r.round_id for r in unique.values()))
            conn.execute(self._insert(LabelRequestRow).on_conflict_do_nothing(), rows)
            stored: dict[str, Any] = {}
            for chunk in _chunks(keys):
                for row in conn.execute(
                    self._request_query().where(
                        Round.project == self.project, LabelRequestRow.request_key.in_(chunk)
                    )
                ):
                    stored[row.request_key] = row
            # Checked inside the transaction so that a refused batch stores none of its requests.
            missing = [key for key in keys if key not in stored]
            if missing:
                r = unique[missing[0]]
                raise StoreError(
                    f"request {r.key!r} (round {r.round_id}, item {r.item_id!r}, wave {r.wave}) was not "
                    "stored: that round, item and wave already have a request under another key, or the key "
                    f"belongs to another project ({len(missing)} request(s) affected)"
                )
            for key in keys:
                row, r = stored[key], unique[key]
                if (row.round_id, row.item_id, row.wave) != (r.round_id, r.item_id, r.wave):
                    raise StoreError(
                        f"request key {key!r} is already stored for round {row.round_id}, item "
                        f"{row.item_id!r}, wave {row.wave}, not round {r.round_id}, item {r.item_id!r}, "
                        f"wave {r.wave}"
                    )
        return _frame((stored[key] for key in keys), REQUEST_COLUMNS)

    def mark_published(self, handles: Sequence[Handle]) -> None:
        """Record each handle's ``external_id`` and ``published_at`` on its request (by key).

        Marking a request again with the same external id changes nothing; :class:`StoreError` for an unknown
        key or for a request already published under a different external id (that would mean paying twice).
        """
        by_key: dict[str, Handle] = {}
        for handle in handles:
            previous = by_key.setdefault(handle.key, handle)
            if previous.external_id != handle.external_id:
                raise StoreError(
                    f"request {handle.key!r} is given two external ids: {previous.external_id!r} and "
                    f"{handle.external_id!r}"
                )
        if not by_key:
            return
        keys = list(by_key)
        with self._write() as conn:
            stored: dict[str, str | None] = {}
            for chunk in _chunks(keys):
                for key, external_id in conn.execute(
                    select(LabelRequestRow.request_key, LabelRequestRow.external_id)
                    .join(Round, Round.id == LabelRequestRow.round_id)
                    .where(Round.project == self.project, LabelRequestRow.request_key.in_(chunk))
                ):
                    stored[key] = external_id
            unknown = [key for key in keys if key not in stored]
            if unknown:
                raise StoreError(
                    f"cannot mark {len(unknown)} request(s) published, they are not stored in project "
                    f"{self.project!r}: {unknown[:5]}"
                )
            for key in keys:
                if stored[key] is not None and stored[key] != by_key[key].external_id:
                    raise StoreError(
                        f"request {key!r} is already published as {stored[key]!r}; refusing to record it "
                        f"again as {by_key[key].external_id!r}"
                    )
            params = [
                {"k": key, "e": by_key[key].external_id, "p": by_key[key].published_at}
                for key in keys
                if stored[key] is None
            ]
            if params:
                conn.execute(
                    update(LabelRequestRow)
                    .where(LabelRequestRow.request_key == bindparam("k"))
                    .values(external_id=bindparam("e"), published_at=bindparam("p")),
                    params,
                )

    def requests(self, round_id: int, wave: int | None = None) -> pd.DataFrame:
        """The round's requests (REQUEST_COLUMNS), optionally one wave's, in insertion order."""
        query = self._request_query().where(
            Round.project == self.project, LabelRequestRow.round_id == int(round_id)
        )
        if wave is not None:
            query = query.where(LabelRequestRow.wave == int(wave))
        with self._read() as conn:
            return _frame(conn.execute(query.order_by(LabelRequestRow.id)), REQUEST_COLUMNS)

    def handles(self, round_id: int, wave: int | None = None) -> list[Handle]:
        """The round's published requests (optionally one wave's) as handles, enough to poll from another
        process."""
        query = self._request_query().where(
            Round.project == self.project,
            LabelRequestRow.round_id == int(round_id),
            LabelRequestRow.external_id.is_not(None),
        )
        if wave is not None:
            query = query.where(LabelRequestRow.wave == int(wave))
        with self._read() as conn:
            rows = conn.execute(query.order_by(LabelRequestRow.id)).all()
        return [
            Handle(
                key=row.request_key,
                external_id=row.external_id,
                item_id=row.item_id,
                round_id=row.round_id,
                wave=row.wave,
                n_answers=row.n_answers,
                is_gold=row.is_gold,
                published_at=row.published_at,
                answers_before=row.answers_before,
            )
            for row in rows
        ]

    def requested_answers(self) -> int:
        """Answers asked for by every published request of the project, gold included: what has been spent."""
        query = (
            select(func.coalesce(func.sum(LabelRequestRow.n_answers), 0))
            .join(Round, Round.id == LabelRequestRow.round_id)
            .where(Round.project == self.project, LabelRequestRow.external_id.is_not(None))
        )
        with self._read() as conn:
            return int(conn.scalar(query) or 0)

    def requested_items(self, *, before_round: int | None = None) -> set[str]:
        """Items any request of the project asked about (only in rounds older than ``before_round`` if given)."""
        query = (
            select(LabelRequestRow.item_id)
            .distinct()
            .join(Round, Round.id == LabelRequestRow.round_id)
            .where(Round.project == self.project)
        )
        if before_round is not None:
            query = query.where(
                Round.number < select(Round.number).where(Round.id == int(before_round)).scalar_subquery()
            )
        with self._read() as conn:
            return set(conn.scalars(query))

    # ------------------------------------------------------------------ answers

    def add_answers(self, answers: Sequence[CrowdAnswer]) -> int:
        """Append the answers whose ``answer_id`` is new, stamped with ``collected_at`` = now, and return
        how many were inserted. Each inserted answer adds one to its worker's ``n_answers`` (a new worker is
        created ``active``). Stored answers are never changed.

        :class:`StoreError` if an ``answer_id`` is already stored for another project: silently dropping it
        would lose an answer.
        """
        unique: dict[str, CrowdAnswer] = {}
        for answer in answers:
            unique.setdefault(answer.answer_id, answer)
        if not unique:
            return 0
        now = _now()
        rows = [
            {
                "answer_id": a.answer_id,
                "request_key": a.request_key,
                "round_id": int(a.round_id),
                "item_id": a.item_id,
                "worker_id": a.worker_id,
                "wave": int(a.wave),
                "is_gold": bool(a.is_gold),
                "raw": a.raw,
                "label": a.label,
                "parse_error": a.parse_error,
                "submitted_at": a.submitted_at,
                "collected_at": now,
                "backend": a.backend,
            }
            for a in unique.values()
        ]
        with self._write() as conn:
            self._require_rounds(conn, (a.round_id for a in unique.values()))
            # RETURNING tells exactly which answers were new, also under a concurrent collector on PostgreSQL.
            inserted = conn.execute(
                self._insert(AnswerRow)
                .on_conflict_do_nothing()
                .returning(AnswerRow.answer_id, AnswerRow.worker_id, AnswerRow.backend),
                rows,
            ).all()
            if len(inserted) < len(rows):
                self._check_skipped_answers(conn, set(unique) - {row.answer_id for row in inserted})
            counts = Counter((row.backend, row.worker_id) for row in inserted)
            if counts:
                insert = self._insert(Worker)
                conn.execute(
                    insert.on_conflict_do_update(
                        index_elements=["project", "backend", "worker_id"],
                        set_={
                            "n_answers": Worker.n_answers + insert.excluded.n_answers,
                            "updated_at": insert.excluded.updated_at,
                        },
                    ),
                    [
                        {
                            "project": self.project,
                            "worker_id": worker_id,
                            "backend": backend,
                            "status": "active",
                            "n_answers": n,
                            "accuracy": None,
                            "n_gold": 0,
                            "updated_at": now,
                        }
                        for (backend, worker_id), n in counts.items()
                    ],
                )
        return len(inserted)

    def _check_skipped_answers(self, conn: Connection, skipped: set[str]) -> None:
        ids = sorted(skipped)
        ours: set[str] = set()
        for chunk in _chunks(ids):
            ours.update(
                conn.scalars(
                    select(AnswerRow.answer_id)
                    .join(Round, Round.id == AnswerRow.round_id)
                    .where(Round.project == self.project, AnswerRow.answer_id.in_(chunk))
                )
            )
        foreign = [answer_id for answer_id in ids if answer_id not in ours]
        if foreign:
            raise StoreError(
                f"answer id(s) {foreign[:5]} are already stored for another project than {self.project!r}; "
                f"answer ids must be unique across the projects sharing a store"
            )

    def answers(self, round_id: int | None = None, *, parsed: bool = True) -> pd.DataFrame:
        """Stored answers in arrival order, for one round or (``None``) all the project's rounds.

        ``parsed=True``: answers with a label, columns exactly ``ANSWER_COLUMNS``. ``parsed=False``: the
        answers whose raw text did not parse, with ``answer_id, item_id, worker_id, raw, parse_error,
        round_id``.
        """
        columns = ANSWER_COLUMNS if parsed else UNPARSED_ANSWER_COLUMNS
        query = (
            select(*(getattr(AnswerRow, c) for c in columns))
            .join(Round, Round.id == AnswerRow.round_id)
            .where(Round.project == self.project)
            .where(AnswerRow.label.is_not(None) if parsed else AnswerRow.label.is_(None))
        )
        if round_id is not None:
            query = query.where(AnswerRow.round_id == int(round_id))
        with self._read() as conn:
            return _frame(conn.execute(query.order_by(AnswerRow.id)), columns)

    def count_answers(self, round_id: int | None = None) -> int:
        """How many answers are stored (parsed or not), for one round or all the project's rounds."""
        query = (
            select(func.count())
            .select_from(AnswerRow)
            .join(Round, Round.id == AnswerRow.round_id)
            .where(Round.project == self.project)
        )
        if round_id is not None:
            query = query.where(AnswerRow.round_id == int(round_id))
        with self._read() as conn:
            return int(conn.scalar(query) or 0)

    # ------------------------------------------------------------------ labels

    def save_labels(self, labels: pd.DataFrame) -> None:
        """Store labels (``LABEL_COLUMNS``), replacing any stored label with the same (round_id, item_id,
        source): rerunning a round's aggregation replaces its labels, never duplicates them."""
        require_columns(labels, LABEL_COLUMNS, "labels")
        if labels.empty:
            return
        rows: list[dict[str, Any]] = []
        seen: set[tuple[int, str, str]] = set()
        for rec in labels.loc[:, list(LABEL_COLUMNS)].to_dict("records"):
            item_id, source, round_id = str(rec["item_id"]), str(rec["source"]), int(rec["round_id"])
            if source not in LABEL_SOURCES:
                raise StoreError(
                    f"label for item {item_id!r} has source {source!r}; expected one of {LABEL_SOURCES}"
                )
            label = _label_or_none(rec["label"])
            if label is None:
                raise StoreError(f"label for item {item_id!r} (round {round_id}, {source}) is missing")
            confidence = float(rec["confidence"])
            if math.isnan(confidence):
                raise StoreError(
                    f"label for item {item_id!r} (round {round_id}, {source}) has NaN confidence"
                )
            key = (round_id, item_id, source)
            if key in seen:
                raise StoreError(
                    f"item {item_id!r} is labeled twice for round {round_id} and source {source!r}"
                )
            seen.add(key)
            rows.append(
                {
                    "round_id": round_id,
                    "item_id": item_id,
                    "label": label,
                    "confidence": confidence,
                    "method": str(rec["method"]),
                    "n_answers": int(rec["n_answers"]),
                    "source": source,
                }
            )
        with self._write() as conn:
            self._require_rounds(conn, {row["round_id"] for row in rows})
            insert = self._insert(LabelRow)
            conn.execute(
                insert.on_conflict_do_update(
                    index_elements=["round_id", "item_id", "source"],
                    set_={c: insert.excluded[c] for c in ("label", "confidence", "method", "n_answers")},
                ),
                rows,
            )

    def labels(self, round_id: int | None = None) -> pd.DataFrame:
        """Labels (``LABEL_COLUMNS``): one round's, or (``None``) the latest per (item_id, source) across the
        project's rounds, the highest round number winning."""
        columns = [getattr(LabelRow, c) for c in LABEL_COLUMNS]
        with self._read() as conn:
            if round_id is not None:
                query = (
                    select(*columns)
                    .join(Round, Round.id == LabelRow.round_id)
                    .where(Round.project == self.project, LabelRow.round_id == int(round_id))
                    .order_by(LabelRow.id)
                )
                return _frame(conn.execute(query), LABEL_COLUMNS)
            ranked = (
                select(
                    *columns,
                    LabelRow.id.label("row_id"),
                    Round.number.label("round_number"),
                    func.row_number()
                    .over(partition_by=(LabelRow.item_id, LabelRow.source), order_by=Round.number.desc())
                    .label("rank"),
                )
                .join(Round, Round.id == LabelRow.round_id)
                .where(Round.project == self.project)
                .subquery()
            )
            query = (
                select(*(ranked.c[c] for c in LABEL_COLUMNS))
                .where(ranked.c["rank"] == 1)
                .order_by(ranked.c["round_number"], ranked.c["row_id"])
            )
            return _frame(conn.execute(query), LABEL_COLUMNS)

    # ------------------------------------------------------------------ workers

    def update_workers(self, workers: pd.DataFrame) -> None:
        """Set ``status``, ``n_answers``, ``accuracy``, ``n_gold``, ``spammer_score`` and/or ``confusion`` (a JSON
        string; whichever columns the frame has) for workers keyed by (worker_id, backend), creating unknown
        workers (``active``, no answers yet)."""
        require_columns(workers, ("worker_id", "backend"), "workers")
        updatable = ("status", "n_answers", "accuracy", "n_gold", "spammer_score", "confusion")
        fields = [c for c in updatable if c in workers.columns]
        if workers.empty:
            return
        now = _now()
        rows: list[dict[str, Any]] = []
        seen: set[tuple[str, str]] = set()
        for rec in workers.to_dict("records"):
            worker_id, backend = str(rec["worker_id"]), str(rec["backend"])
            if (backend, worker_id) in seen:
                raise StoreError(f"worker {worker_id!r} ({backend}) appears twice in the update")
            seen.add((backend, worker_id))
            row: dict[str, Any] = {
                "project": self.project,
                "worker_id": worker_id,
                "backend": backend,
                "status": "active",
                "n_answers": 0,
                "accuracy": None,
                "n_gold": 0,
                "updated_at": now,
                "spammer_score": None,
                "confusion": None,
            }
            if "status" in fields:
                status = str(rec["status"])
                if status not in WORKER_STATUSES:
                    raise StoreError(
                        f"worker {worker_id!r} given status {status!r}; expected {WORKER_STATUSES}"
                    )
                row["status"] = status
            if "accuracy" in fields:
                row["accuracy"] = None if _is_missing(rec["accuracy"]) else float(rec["accuracy"])
            if "n_gold" in fields:
                row["n_gold"] = 0 if _is_missing(rec["n_gold"]) else int(rec["n_gold"])
            if "n_answers" in fields:
                row["n_answers"] = 0 if _is_missing(rec["n_answers"]) else int(rec["n_answers"])
            if "spammer_score" in fields:
                row["spammer_score"] = (
                    None if _is_missing(rec["spammer_score"]) else float(rec["spammer_score"])
                )
            if "confusion" in fields:
                row["confusion"] = None if _is_missing(rec["confusion"]) else str(rec["confusion"])
            rows.append(row)
        with self._write() as conn:
            insert = self._insert(Worker)
            conn.execute(
                insert.on_conflict_do_update(
                    index_elements=["project", "backend", "worker_id"],
                    set_={c: insert.excluded[c] for c in [*fields, "updated_at"]},
                ),
                rows,
            )

    def workers(self) -> pd.DataFrame:
        """The project's workers (WORKER_COLUMNS), in the order they were first seen."""
        query = (
            select(*(getattr(Worker, c) for c in WORKER_COLUMNS))
            .where(Worker.project == self.project)
            .order_by(Worker.id)
        )
        with self._read() as conn:
            return _frame(conn.execute(query), WORKER_COLUMNS)

    def blocked_workers(self, backend: str) -> set[str]:
        """Worker ids blocked on ``backend`` in this project."""
        with self._read() as conn:
            return set(
                conn.scalars(
                    select(Worker.worker_id).where(
                        Worker.project == self.project, Worker.backend == backend, Worker.status == "blocked"
                    )
                )
            )

    # ------------------------------------------------------------------ model versions

    def add_model_version(
        self, round_id: int, path: str, accuracy: float, metrics: dict[str, float], promoted: bool
    ) -> ModelVersionRecord:
        """Record a trained model (its file ``path``, held-out ``accuracy`` and ``metrics``) for a round."""
        clean_metrics = {str(k): float(v) for k, v in metrics.items()}
        with self._write() as conn:
            self._require_rounds(conn, [int(round_id)])
            version_id = conn.execute(
                self._insert(ModelVersion)
                .values(
                    project=self.project,
                    round_id=int(round_id),
                    path=str(path),
                    accuracy=float(accuracy),
                    metrics=_dumps(clean_metrics),
                    promoted=bool(promoted),
                    created_at=_now(),
                )
                .returning(ModelVersion.id)
            ).scalar_one()
        return ModelVersionRecord(
            version_id, int(round_id), str(path), float(accuracy), clean_metrics, bool(promoted)
        )

    def champion(self) -> ModelVersionRecord | None:
        """The most recently recorded promoted model version, or None if none was ever promoted."""
        with self._read() as conn:
            row = conn.execute(
                select(
                    ModelVersion.id,
                    ModelVersion.round_id,
                    ModelVersion.path,
                    ModelVersion.accuracy,
                    ModelVersion.metrics,
                    ModelVersion.promoted,
                )
                .where(ModelVersion.project == self.project, ModelVersion.promoted.is_(True))
                .order_by(ModelVersion.id.desc())
                .limit(1)
            ).first()
        if row is None:
            return None
        return ModelVersionRecord(
            row.id, row.round_id, row.path, row.accuracy, json.loads(row.metrics), row.promoted
        )

    def model_versions(self) -> pd.DataFrame:
        """All the project's model versions in the order recorded (MODEL_VERSION_COLUMNS; metrics as
        dicts)."""
        with self._read() as conn:
            rows = conn.execute(
                select(
                    ModelVersion.id,
                    ModelVersion.round_id,
                    Round.number,
                    ModelVersion.path,
                    ModelVersion.accuracy,
                    ModelVersion.metrics,
                    ModelVersion.promoted,
                    ModelVersion.created_at,
                )
                .join(Round, Round.id == ModelVersion.round_id)
                .where(ModelVersion.project == self.project)
                .order_by(ModelVersion.id)
            ).all()
        frame = _frame(rows, MODEL_VERSION_COLUMNS)
        frame["metrics"] = pd.Series(
            [json.loads(row.metrics) for row in rows], index=frame.index, dtype="object"
        )
        return frame

    # ------------------------------------------------------------------ ingestion

    def ingestion(self, checksum: str) -> dict[str, Any] | None:
        """What became of the file with this content checksum, or None if it never arrived."""
        files = self.ingested_files()
        match = files[files["checksum"] == checksum]
        return None if match.empty else dict(match.iloc[0])

    def record_ingestion(
        self,
        *,
        checksum: str,
        filename: str,
        stored_at: str,
        status: str,
        n_rows: int,
        n_added: int,
        report: str | None = None,
    ) -> bool:
        """Remember a file by its checksum; False (and nothing written) if that content arrived before."""
        with self._write() as conn:
            result = conn.execute(
                self._insert(IngestedFile)
                .values(
                    project=self.project,
                    checksum=checksum,
                    filename=filename,
                    stored_at=stored_at,
                    status=status,
                    n_rows=int(n_rows),
                    n_added=int(n_added),
                    report=report,
                    ingested_at=_now(),
                )
                .on_conflict_do_nothing()
            )
            return bool(result.rowcount)

    def ingested_files(self, status: str | None = None) -> pd.DataFrame:
        """The files ingested so far, oldest first: checksum, filename, stored_at, status, n_rows, n_added,
        report, ingested_at."""
        columns = (
            "checksum",
            "filename",
            "stored_at",
            "status",
            "n_rows",
            "n_added",
            "report",
            "ingested_at",
        )
        query = select(*(getattr(IngestedFile, c) for c in columns)).where(
            IngestedFile.project == self.project
        )
        if status is not None:
            query = query.where(IngestedFile.status == status)
        with self._read() as conn:
            return _frame(conn.execute(query.order_by(IngestedFile.id)), columns)

    def pool_items_added_since_last_round(self) -> int:
        """Pool items stored after the latest round started (all pool items if there is no round yet)."""
        latest = select(func.max(Round.started_at)).where(Round.project == self.project).scalar_subquery()
        query = (
            select(func.count())
            .select_from(Item)
            .where(Item.project == self.project, Item.item_set == "pool")
        )
        with self._read() as conn:
            started = conn.scalar(select(latest))
            if started is not None:
                query = query.where(Item.added_at > started)
            return int(conn.scalar(query) or 0)

    # ------------------------------------------------------------------ one round, one serve process at a time

    def acquire_round_lease(self, holder: str, is_stale: Callable[[str], bool]) -> str | None:
        """Take the project's round lease for ``holder``; None on success, else the holder who has it.

        A lease whose holder ``is_stale`` (e.g. a process that died without releasing it) is taken over, so a
        crash never blocks the project for good.
        """
        return self._acquire_lease(RoundLease, holder, is_stale)

    def release_round_lease(self, holder: str) -> None:
        """Give the lease back (only if ``holder`` still has it)."""
        self._release_lease(RoundLease, holder)

    def round_lease_holder(self) -> str | None:
        """Who holds the round lease, if anyone (it may be a dead process that never released it)."""
        return self._lease_holder(RoundLease)

    def acquire_serve_lease(self, holder: str, is_stale: Callable[[str], bool]) -> str | None:
        """Take the project's serve lease, as :meth:`acquire_round_lease` does the round lease."""
        return self._acquire_lease(ServeLease, holder, is_stale)

    def release_serve_lease(self, holder: str) -> None:
        self._release_lease(ServeLease, holder)

    def serve_lease_holder(self) -> str | None:
        return self._lease_holder(ServeLease)

    def _lease_holder(self, lease: type[RoundLease | ServeLease]) -> str | None:
        with self._read() as conn:
            return conn.scalar(select(lease.holder).where(lease.project == self.project))

    def _acquire_lease(
        self, lease: type[RoundLease | ServeLease], holder: str, is_stale: Callable[[str], bool]
    ) -> str | None:
        with self._write() as conn:
            current = conn.scalar(select(lease.holder).where(lease.project == self.project))
            if current is None:
                conn.execute(
                    self._insert(lease).values(project=self.project, holder=holder, acquired_at=_now())
                )
                return None
            if current == holder or is_stale(current):
                conn.execute(
                    update(lease)
                    .where(lease.project == self.project)
                    .values(holder=holder, acquired_at=_now())
                )
                return None
            return str(current)

    def _release_lease(self, lease: type[RoundLease | ServeLease], holder: str) -> None:
        with self._write() as conn:
            conn.execute(delete(lease).where(lease.project == self.project, lease.holder == holder))
