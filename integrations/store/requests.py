"""Label requests: one per (round, item, wave), keyed by a request key so that a rerun finds what it asked
for, and published at most once (a second external id for a request would mean paying twice)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import pandas as pd
from sqlalchemy import bindparam, delete, func, select, update

from labelflow.contracts import empty_frame
from labelflow.integrations.crowd.base import Handle, LabelRequest
from labelflow.integrations.store.errors import StoreError
from labelflow.integrations.store.repository import (
    AnySelect,
    Repository,
    first_per_key,
    frame,
    rows_in_chunks,
)
from labelflow.integrations.store.schema import LabelRequestRow, Round

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
    "is_expert",
)


def _slot(request: LabelRequest) -> tuple[int, str, int]:
    return request.round_id, request.item_id, request.wave


def _request_clash(first: LabelRequest, later: LabelRequest) -> str | None:
    if _slot(first) == _slot(later):
        return None
    return f"request key {first.key!r} is given for two different requests"


def _external_id_clash(first: Handle, later: Handle) -> str | None:
    if first.external_id == later.external_id:
        return None
    return f"request {first.key!r} is given two external ids: {first.external_id!r} and {later.external_id!r}"


class RequestTable(Repository):
    """The label requests of the project's rounds."""

    def _query(self, *columns: Any) -> AnySelect:
        selected = columns or tuple(getattr(LabelRequestRow, c) for c in REQUEST_COLUMNS)
        return self.in_project(select(*selected), LabelRequestRow.round_id)

    def add(self, requests: Sequence[LabelRequest]) -> pd.DataFrame:
        unique = first_per_key(requests, key=lambda request: request.key, clash=_request_clash)
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
                "is_expert": bool(r.is_expert),
            }
            for r in unique.values()
        ]
        keys = list(unique)
        with self.db.write() as conn:
            self.require_rounds(conn, (r.round_id for r in unique.values()))
            conn.execute(self.db.insert_new(LabelRequestRow), rows)
            stored = {
                row.request_key: row
                for row in rows_in_chunks(conn, self._query(), LabelRequestRow.request_key, keys)
            }
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
                if (row.round_id, row.item_id, row.wave) != _slot(r):
                    raise StoreError(
                        f"request key {key!r} is already stored for round {row.round_id}, item "
                        f"{row.item_id!r}, wave {row.wave}, not round {r.round_id}, item {r.item_id!r}, "
                        f"wave {r.wave}"
                    )
        return frame((stored[key] for key in keys), REQUEST_COLUMNS)

    def mark_published(self, handles: Sequence[Handle]) -> None:
        """Record each request's external id and its ``n_answers`` as published: a backend may publish fewer
        answers than were asked (a recorded crowd whose answers for the item are used up), and what it published
        is what is paid and waited for."""
        by_key = first_per_key(handles, key=lambda handle: handle.key, clash=_external_id_clash)
        if not by_key:
            return
        keys = list(by_key)
        with self.db.write() as conn:
            # Lock the rows checked below until commit: a second publisher of the same request (another
            # process, on PostgreSQL) waits, then sees the first one's external id and is refused.
            query = self._query(LabelRequestRow.request_key, LabelRequestRow.external_id).with_for_update(
                of=LabelRequestRow
            )
            stored: dict[str, str | None] = {
                key: external_id
                for key, external_id in rows_in_chunks(conn, query, LabelRequestRow.request_key, keys)
            }
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
                {
                    "k": key,
                    "e": by_key[key].external_id,
                    "p": by_key[key].published_at,
                    "n": by_key[key].n_answers,
                }
                for key in keys
                if stored[key] is None
            ]
            if params:
                conn.execute(
                    update(LabelRequestRow)
                    .where(LabelRequestRow.request_key == bindparam("k"))
                    .values(
                        external_id=bindparam("e"), published_at=bindparam("p"), n_answers=bindparam("n")
                    ),
                    params,
                )

    def _of_round(self, round_id: int, wave: int | None, expert: bool | None = None) -> AnySelect:
        query = self._query().where(LabelRequestRow.round_id == int(round_id))
        if wave is not None:
            query = query.where(LabelRequestRow.wave == int(wave))
        if expert is not None:
            query = query.where(LabelRequestRow.is_expert == expert)
        return query.order_by(LabelRequestRow.id)

    def read(self, round_id: int, wave: int | None = None) -> pd.DataFrame:
        return self.read_frame(self._of_round(round_id, wave), REQUEST_COLUMNS)

    def handles(self, round_id: int, wave: int | None = None, *, expert: bool | None = None) -> list[Handle]:
        query = self._of_round(round_id, wave, expert).where(LabelRequestRow.external_id.is_not(None))
        with self.db.read() as conn:
            rows = conn.execute(query).all()
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
                is_expert=row.is_expert,
            )
            for row in rows
        ]

    def cancel_unpublished(self, round_id: int) -> int:
        with self.db.write() as conn:
            self.require_rounds(conn, [int(round_id)])
            result = conn.execute(
                delete(LabelRequestRow).where(
                    LabelRequestRow.round_id == int(round_id), LabelRequestRow.external_id.is_(None)
                )
            )
        return int(result.rowcount)

    def requested_answers(self, *, expert: bool | None = None) -> int:
        query = self._query(func.coalesce(func.sum(LabelRequestRow.n_answers), 0)).where(
            LabelRequestRow.external_id.is_not(None)
        )
        if expert is not None:
            query = query.where(LabelRequestRow.is_expert == expert)
        with self.db.read() as conn:
            return int(conn.scalar(query) or 0)

    def requested_items(self, before_round: int | None = None, *, expert: bool | None = None) -> set[str]:
        query = self._query(LabelRequestRow.item_id).distinct()
        if expert is not None:
            query = query.where(LabelRequestRow.is_expert == expert)
        if before_round is not None:
            query = query.where(
                Round.number < select(Round.number).where(Round.id == int(before_round)).scalar_subquery()
            )
        with self.db.read() as conn:
            return set(conn.scalars(query))
