"""The label store's tables (SQLAlchemy 2 declarative).

These classes describe the schema; they never create it. The schema is created and changed only by the Alembic
migrations in ``integrations/store/migrations/versions`` (a test checks that the migrated schema matches this
metadata), so any change here needs a new migration.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

ITEM_SETS = ("pool", "gold", "held_out")
ROUND_STATUSES = ("running", "completed", "failed")
LABEL_SOURCES = ("crowd", "model", "functions")
WORKER_STATUSES = ("active", "blocked")

# Identifiers come from users (item ids may be file paths or URLs); bounded lengths keep them indexable on
# databases that need a length for an indexed VARCHAR.
ID_LEN = 512
NAME_LEN = 200
ENUM_LEN = 16


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on every backend.

    SQLite has no time zone type: it stores the UTC wall time and returns naive values, so results are tagged
    as UTC on the way out. Naive values on the way in are refused rather than guessed.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: the store only accepts timezone-aware timestamps")
        return value.astimezone(UTC)

    def process_result_value(self, value: Any | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime from the database, got {value!r}")
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def one_of(column: str, values: tuple[str, ...]) -> str:
    """A CHECK that ``column`` holds one of ``values``, as equalities: SQLite evaluates ``column IN (...)`` by
    building a temporary index for every row inserted, which doubled the time to store 1.8M pseudo-labels
    (~8 s more CPU)."""
    return " OR ".join(f"{column} = {value!r}" for value in values)


class Base(DeclarativeBase):
    # Deterministic constraint names, so later migrations can drop or alter them by name on every backend.
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(table_name)s_%(column_0_N_name)s",
            "uq": "uq_%(table_name)s_%(column_0_N_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime()}


class Item(Base):
    __tablename__ = "items"
    __table_args__ = (
        UniqueConstraint("project", "item_id"),
        CheckConstraint(one_of("item_set", ITEM_SETS), name="item_set"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project: Mapped[str] = mapped_column(String(NAME_LEN))
    item_id: Mapped[str] = mapped_column(String(ID_LEN))
    item_set: Mapped[str] = mapped_column(String(ENUM_LEN))
    known_label: Mapped[str | None] = mapped_column(String(NAME_LEN))
    added_at: Mapped[datetime]


class RegisteredPartition(Base):
    """A partition of the project's pool store (its source, or an ingested file) whose items are all in
    ``items``: a round registers only the partitions not listed here, not every item of a 2M pool again."""

    __tablename__ = "registered_partitions"

    project: Mapped[str] = mapped_column(String(NAME_LEN), primary_key=True)
    partition: Mapped[str] = mapped_column(String(NAME_LEN), primary_key=True)
    n_items: Mapped[int] = mapped_column(Integer)
    registered_at: Mapped[datetime]


class Round(Base):
    __tablename__ = "rounds"
    __table_args__ = (
        UniqueConstraint("project", "number"),
        # IN, as migration 0001 made it: SQLite cannot rebuild a table that others' foreign keys point at while
        # they are enforced, and a project inserts few rounds
        CheckConstraint(f"status IN {ROUND_STATUSES!r}", name="status"),
        # One round at a time per project, enforced by the database so two processes cannot both start one.
        Index(
            "uq_rounds_one_running",
            "project",
            unique=True,
            sqlite_where=text("status = 'running'"),
            postgresql_where=text("status = 'running'"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project: Mapped[str] = mapped_column(String(NAME_LEN))
    number: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(ENUM_LEN))
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    summary: Mapped[str | None] = mapped_column(Text)  # JSON
    error: Mapped[str | None] = mapped_column(Text)


class LabelRequestRow(Base):
    __tablename__ = "label_requests"
    __table_args__ = (UniqueConstraint("round_id", "item_id", "wave"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    request_key: Mapped[str] = mapped_column(String(ID_LEN), unique=True)
    round_id: Mapped[int] = mapped_column(ForeignKey("rounds.id"))
    item_id: Mapped[str] = mapped_column(String(ID_LEN))
    wave: Mapped[int] = mapped_column(Integer)
    n_answers: Mapped[int] = mapped_column(Integer)
    answers_before: Mapped[int] = mapped_column(Integer)
    is_gold: Mapped[bool] = mapped_column(Boolean)
    external_id: Mapped[str | None] = mapped_column(String(ID_LEN))
    published_at: Mapped[datetime | None]
    # An expert's request (escalated or reviewed item); migration 0006
    is_expert: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))


class AnswerRow(Base):
    """Append-only: the store's API inserts answers and never updates or deletes them."""

    __tablename__ = "answers"
    __table_args__ = (Index("ix_answers_round_id_item_id", "round_id", "item_id"),)

    # A surrogate integer key keeps insertion order cheap to read back; answer_id is the natural key.
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    answer_id: Mapped[str] = mapped_column(String(ID_LEN), unique=True)
    request_key: Mapped[str] = mapped_column(String(ID_LEN))
    round_id: Mapped[int] = mapped_column(ForeignKey("rounds.id"))
    item_id: Mapped[str] = mapped_column(String(ID_LEN))
    worker_id: Mapped[str] = mapped_column(String(ID_LEN))
    wave: Mapped[int] = mapped_column(Integer)
    is_gold: Mapped[bool] = mapped_column(Boolean)
    raw: Mapped[str] = mapped_column(Text)
    label: Mapped[str | None] = mapped_column(String(NAME_LEN))
    parse_error: Mapped[str | None] = mapped_column(Text)
    submitted_at: Mapped[datetime]
    collected_at: Mapped[datetime]
    backend: Mapped[str] = mapped_column(String(NAME_LEN))
    # An expert's answer: it wins in aggregation; migration 0006
    is_expert: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))


class LabelRow(Base):
    __tablename__ = "labels"
    __table_args__ = (
        UniqueConstraint("round_id", "item_id", "source"),
        CheckConstraint(one_of("source", LABEL_SOURCES), name="source"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    round_id: Mapped[int] = mapped_column(ForeignKey("rounds.id"))
    item_id: Mapped[str] = mapped_column(String(ID_LEN))
    label: Mapped[str] = mapped_column(String(NAME_LEN))
    confidence: Mapped[float] = mapped_column(Float)
    method: Mapped[str] = mapped_column(String(NAME_LEN))
    n_answers: Mapped[int] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(String(ENUM_LEN))


class Worker(Base):
    __tablename__ = "workers"
    __table_args__ = (
        UniqueConstraint("project", "backend", "worker_id"),
        CheckConstraint(one_of("status", WORKER_STATUSES), name="status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project: Mapped[str] = mapped_column(String(NAME_LEN))
    worker_id: Mapped[str] = mapped_column(String(ID_LEN))
    backend: Mapped[str] = mapped_column(String(NAME_LEN))
    status: Mapped[str] = mapped_column(String(ENUM_LEN))
    n_answers: Mapped[int] = mapped_column(Integer)
    accuracy: Mapped[float | None] = mapped_column(Float)
    n_gold: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime]
    spammer_score: Mapped[float | None] = mapped_column(Float)  # migration 0002
    confusion: Mapped[str | None] = mapped_column(Text)  # JSON {"labels", "matrix"}; migration 0002


class ModelVersion(Base):
    __tablename__ = "model_versions"
    __table_args__ = (
        Index("ix_model_versions_project", "project"),
        # One model per round: a rerun after a kill finds the round's model instead of adding a second one.
        UniqueConstraint("project", "round_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project: Mapped[str] = mapped_column(String(NAME_LEN))
    round_id: Mapped[int] = mapped_column(ForeignKey("rounds.id"))
    path: Mapped[str] = mapped_column(Text)
    accuracy: Mapped[float] = mapped_column(Float)
    metrics: Mapped[str] = mapped_column(Text)  # JSON
    promoted: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime]


INGESTION_STATUSES = ("processed", "quarantined")


class IngestedFile(Base):
    """A file that arrived in the project's inbox, identified by its content's checksum."""

    __tablename__ = "ingested_files"
    __table_args__ = (
        UniqueConstraint("project", "checksum"),
        CheckConstraint(one_of("status", INGESTION_STATUSES), name="status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project: Mapped[str] = mapped_column(String(NAME_LEN))
    checksum: Mapped[str] = mapped_column(String(64))
    filename: Mapped[str] = mapped_column(Text)
    stored_at: Mapped[str] = mapped_column(Text)  # where the file now lives (processed/ or quarantine/)
    status: Mapped[str] = mapped_column(String(ENUM_LEN))
    n_rows: Mapped[int] = mapped_column(Integer)
    n_added: Mapped[int] = mapped_column(Integer)
    report: Mapped[str | None] = mapped_column(Text)
    ingested_at: Mapped[datetime]


class _Lease:
    """One holder per project, taken over when its holder is seen dead: by its heartbeat's age from any host, by
    its process id from its own."""

    project: Mapped[str] = mapped_column(String(NAME_LEN), primary_key=True)
    holder: Mapped[str] = mapped_column(String(NAME_LEN))
    host: Mapped[str] = mapped_column(String(NAME_LEN))
    pid: Mapped[int] = mapped_column(Integer)
    flow_run_id: Mapped[str | None] = mapped_column(String(NAME_LEN))
    acquired_at: Mapped[datetime]
    heartbeat_at: Mapped[datetime]  # by the database's clock


class RoundLease(_Lease, Base):
    """Who is running a round of the project right now."""

    __tablename__ = "round_leases"


class ServeLease(_Lease, Base):
    """Which ``labelflow serve`` process runs the project's deployments."""

    __tablename__ = "serve_leases"
