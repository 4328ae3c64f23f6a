"""Rounds: at most one running round per project (a unique partial index enforces it), numbered 1, 2, 3… per
project."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import pandas as pd
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from labelflow.integrations.store.errors import StoreError
from labelflow.integrations.store.repository import Repository, dumps, frame, now, select_columns
from labelflow.integrations.store.schema import Round

ROUND_COLUMNS: Final = ("id", "number", "status", "started_at", "finished_at", "summary", "error")
FINISHED_STATUSES: Final = ("completed", "failed")


@dataclass(frozen=True)
class RoundRecord:
    """A round as :meth:`LabelStore.open_round` returned it; ``resumed`` says it was already running."""

    id: int
    number: int
    status: str
    started_at: datetime
    resumed: bool


class RoundTable(Repository):
    """The project's rounds."""

    def open(self) -> RoundRecord:
        for attempt in range(2):
            try:
                return self._open_once()
            except IntegrityError as exc:
                # Another process started a round between our read and our insert without taking the
                # project's round lock (a writer of another version); the next attempt finds and resumes it.
                if attempt:
                    raise StoreError(f"could not open a round for project {self.project!r}: {exc}") from exc
        raise AssertionError("unreachable")

    def _open_once(self) -> RoundRecord:
        # Serialised per project, so that a second opener waits and then resumes the round the first started.
        with self.db.write(serialize=f"rounds:{self.project}") as conn:
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
            started_at = now()
            round_id = conn.execute(
                self.db.insert(Round)
                .values(project=self.project, number=number, status="running", started_at=started_at)
                .returning(Round.id)
            ).scalar_one()
            return RoundRecord(round_id, number, "running", started_at, False)

    def finish(
        self, round_id: int, status: str, summary: dict[str, Any] | None = None, error: str | None = None
    ) -> None:
        if status not in FINISHED_STATUSES:
            raise StoreError(f"a round finishes as one of {FINISHED_STATUSES}, not {status!r}")
        values = {
            "status": status,
            "finished_at": now(),
            "summary": None if summary is None else dumps(summary),
            "error": error,
        }
        with self.db.write() as conn:
            result = conn.execute(
                update(Round).where(Round.id == int(round_id), Round.project == self.project).values(**values)
            )
            if result.rowcount == 0:
                raise StoreError(f"round id {round_id} does not exist in project {self.project!r}")

    def read(self) -> pd.DataFrame:
        with self.db.read() as conn:
            rows = conn.execute(
                select_columns(Round, ROUND_COLUMNS)
                .where(Round.project == self.project)
                .order_by(Round.number)
            ).all()
        rounds = frame(rows, ROUND_COLUMNS)
        rounds["summary"] = pd.Series(
            [None if row.summary is None else json.loads(row.summary) for row in rows],
            index=rounds.index,
            dtype="object",
        )
        return rounds

    def number(self, round_id: int) -> int:
        with self.db.read() as conn:
            number = conn.scalar(
                select(Round.number).where(Round.id == int(round_id), Round.project == self.project)
            )
        if number is None:
            raise StoreError(f"round id {round_id} does not exist in project {self.project!r}")
        return int(number)
