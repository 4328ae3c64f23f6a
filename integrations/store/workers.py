"""Workers, keyed by (backend, worker_id) within a project: answer counts, gold accuracy, status (blocked or
active), spammer score and confusion matrix."""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable
from datetime import datetime
from typing import Any, Final

import pandas as pd
from sqlalchemy import Connection, select

from labelflow.contracts import require_columns
from labelflow.integrations.store.errors import StoreError
from labelflow.integrations.store.repository import Repository, is_missing, now, select_columns, unique_by
from labelflow.integrations.store.schema import WORKER_STATUSES, Worker

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
_KEY: Final = ("project", "backend", "worker_id")
_UPDATABLE: Final = ("status", "n_answers", "accuracy", "n_gold", "spammer_score", "confusion")


def _float_or_none(value: Any) -> float | None:
    return None if is_missing(value) else float(value)


def _int_or_zero(value: Any) -> int:
    return 0 if is_missing(value) else int(value)


def _str_or_none(value: Any) -> str | None:
    return None if is_missing(value) else str(value)


_CONVERTERS: Final = {
    "n_answers": _int_or_zero,
    "accuracy": _float_or_none,
    "n_gold": _int_or_zero,
    "spammer_score": _float_or_none,
    "confusion": _str_or_none,
}


def _worker_key(record: dict[Hashable, Any]) -> tuple[str, str]:
    return str(record["backend"]), str(record["worker_id"])


def _twice(backend: str, worker_id: str) -> str:
    return f"worker {worker_id!r} ({backend}) appears twice in the update"


class WorkerTable(Repository):
    """The project's workers."""

    def _new_row(self, worker_id: str, backend: str, updated_at: datetime, **values: Any) -> dict[str, Any]:
        """A worker row: an ``active`` worker with no answers and no quality yet, unless ``values`` says
        otherwise."""
        return {
            "project": self.project,
            "worker_id": worker_id,
            "backend": backend,
            "status": "active",
            "n_answers": 0,
            "accuracy": None,
            "n_gold": 0,
            "updated_at": updated_at,
            **values,
        }

    def count_answers(self, conn: Connection, counts: Counter[tuple[str, str]], counted_at: datetime) -> None:
        """Add ``counts`` (new answers per (backend, worker_id)) to the workers' ``n_answers``, creating unknown
        workers ``active``; inside the caller's transaction, so the answers and their counts commit together."""
        if not counts:
            return
        conn.execute(
            self.db.upsert(Worker, _KEY, replace=["updated_at"], add=["n_answers"]),
            [
                self._new_row(worker_id, backend, counted_at, n_answers=n)
                for (backend, worker_id), n in counts.items()
            ],
        )

    def update(self, workers: pd.DataFrame) -> None:
        require_columns(workers, ("worker_id", "backend"), "workers")
        fields = [c for c in _UPDATABLE if c in workers.columns]
        if workers.empty:
            return
        updated_at = now()
        records = unique_by(
            workers.to_dict("records"), key=_worker_key, clash=lambda first, _: _twice(*_worker_key(first))
        )
        rows = [self._updated_row(record, fields, updated_at) for record in records]
        with self.db.write() as conn:
            conn.execute(self.db.upsert(Worker, _KEY, replace=[*fields, "updated_at"]), rows)

    def _updated_row(
        self, record: dict[Hashable, Any], fields: list[str], updated_at: datetime
    ) -> dict[str, Any]:
        backend, worker_id = _worker_key(record)
        row = self._new_row(worker_id, backend, updated_at, spammer_score=None, confusion=None)
        if "status" in fields:
            status = str(record["status"])
            if status not in WORKER_STATUSES:
                raise StoreError(f"worker {worker_id!r} given status {status!r}; expected {WORKER_STATUSES}")
            row["status"] = status
        row.update({c: convert(record[c]) for c, convert in _CONVERTERS.items() if c in fields})
        return row

    def read(self) -> pd.DataFrame:
        query = (
            select_columns(Worker, WORKER_COLUMNS).where(Worker.project == self.project).order_by(Worker.id)
        )
        return self.read_frame(query, WORKER_COLUMNS)

    def blocked(self, backend: str) -> set[str]:
        with self.db.read() as conn:
            return set(
                conn.scalars(
                    select(Worker.worker_id).where(
                        Worker.project == self.project, Worker.backend == backend, Worker.status == "blocked"
                    )
                )
            )
