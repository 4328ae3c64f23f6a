"""Answers: append-only, unique by ``answer_id`` across every project sharing the store; each new answer counts
towards its worker's ``n_answers`` in the same transaction."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import pandas as pd
from sqlalchemy import Connection, func, select

from labelflow.contracts import ANSWER_COLUMNS
from labelflow.integrations.crowd.base import CrowdAnswer
from labelflow.integrations.store.errors import StoreError
from labelflow.integrations.store.repository import (
    AnySelect,
    Repository,
    first_per_key,
    now,
    rows_in_chunks,
    select_columns,
)
from labelflow.integrations.store.schema import AnswerRow
from labelflow.integrations.store.workers import WorkerTable

UNPARSED_ANSWER_COLUMNS: Final = ("answer_id", "item_id", "worker_id", "raw", "parse_error", "round_id")


@dataclass(frozen=True)
class AnswerTable(Repository):
    """The answers to the project's requests; ``workers`` keeps the per-worker answer counts."""

    workers: WorkerTable

    def add(self, answers: Sequence[CrowdAnswer]) -> int:
        # A backend may return an answer twice in one poll: the first copy is kept.
        unique = first_per_key(answers, key=lambda answer: answer.answer_id, clash=lambda *_: None)
        if not unique:
            return 0
        collected_at = now()
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
                "collected_at": collected_at,
                "backend": a.backend,
                "is_expert": bool(a.is_expert),
            }
            for a in unique.values()
        ]
        with self.db.write() as conn:
            self.require_rounds(conn, (a.round_id for a in unique.values()))
            # RETURNING tells exactly which answers were new, also under a concurrent collector on PostgreSQL.
            inserted = conn.execute(
                self.db.insert_new(AnswerRow).returning(
                    AnswerRow.answer_id, AnswerRow.worker_id, AnswerRow.backend
                ),
                rows,
            ).all()
            if len(inserted) < len(rows):
                self._check_skipped(conn, set(unique) - {row.answer_id for row in inserted})
            self.workers.count_answers(
                conn, Counter((row.backend, row.worker_id) for row in inserted), collected_at
            )
        return len(inserted)

    def _check_skipped(self, conn: Connection, skipped: set[str]) -> None:
        ids = sorted(skipped)
        query = self.in_project(select(AnswerRow.answer_id), AnswerRow.round_id)
        ours = {row.answer_id for row in rows_in_chunks(conn, query, AnswerRow.answer_id, ids)}
        foreign = [answer_id for answer_id in ids if answer_id not in ours]
        if foreign:
            raise StoreError(
                f"answer id(s) {foreign[:5]} are already stored for another project than {self.project!r}; "
                f"answer ids must be unique across the projects sharing a store"
            )

    def _in_round(self, query: AnySelect, round_id: int | None) -> AnySelect:
        query = self.in_project(query, AnswerRow.round_id)
        return query if round_id is None else query.where(AnswerRow.round_id == int(round_id))

    def read(self, round_id: int | None = None, *, parsed: bool = True) -> pd.DataFrame:
        columns = ANSWER_COLUMNS if parsed else UNPARSED_ANSWER_COLUMNS
        query = self._in_round(select_columns(AnswerRow, columns), round_id).where(
            AnswerRow.label.is_not(None) if parsed else AnswerRow.label.is_(None)
        )
        frame = self.read_frame(query.order_by(AnswerRow.id), columns)
        if not parsed:
            return frame
        # A worker who edits an answer (Label Studio lets annotators) has each version stored; the latest counts.
        latest = ~frame.duplicated(["round_id", "item_id", "worker_id"], keep="last")
        return frame if latest.all() else frame[latest].reset_index(drop=True)

    def experts(self, *, parsed: bool = True) -> pd.DataFrame:
        """The answers of experts (``answer_id, item_id, worker_id, label, round_id``; only those with a label
        when ``parsed``), in the order they were stored."""
        columns = ("answer_id", "item_id", "worker_id", "label", "round_id")
        query = self._in_round(select_columns(AnswerRow, columns), None).where(AnswerRow.is_expert.is_(True))
        if parsed:
            query = query.where(AnswerRow.label.is_not(None))
        return self.read_frame(query.order_by(AnswerRow.id), columns)

    def count(self, round_id: int | None = None) -> int:
        query = self._in_round(select(func.count()).select_from(AnswerRow), round_id)
        with self.db.read() as conn:
            return int(conn.scalar(query) or 0)
