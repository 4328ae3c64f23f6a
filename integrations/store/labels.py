"""Labels: one per (round, item, source); rerunning a round's aggregation replaces its labels, and the latest
round's label of an item wins when labels are read across rounds."""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterator
from typing import Any

import pandas as pd
from sqlalchemy import func, select

from labelflow.contracts import LABEL_COLUMNS, require_columns
from labelflow.integrations.store.errors import StoreError
from labelflow.integrations.store.repository import Repository, label_or_none, select_columns, unique_by
from labelflow.integrations.store.schema import LABEL_SOURCES, LabelRow, Round

_KEY = ("round_id", "item_id", "source")


def _label_rows(labels: pd.DataFrame) -> Iterator[dict[str, Any]]:
    records: list[dict[Hashable, Any]] = labels.loc[:, list(LABEL_COLUMNS)].to_dict("records")
    for rec in records:
        item_id, source, round_id = str(rec["item_id"]), str(rec["source"]), int(rec["round_id"])
        if source not in LABEL_SOURCES:
            raise StoreError(
                f"label for item {item_id!r} has source {source!r}; expected one of {LABEL_SOURCES}"
            )
        label = label_or_none(rec["label"])
        if label is None:
            raise StoreError(f"label for item {item_id!r} (round {round_id}, {source}) is missing")
        confidence = float(rec["confidence"])
        if math.isnan(confidence):
            raise StoreError(f"label for item {item_id!r} (round {round_id}, {source}) has NaN confidence")
        yield {
            "round_id": round_id,
            "item_id": item_id,
            "label": label,
            "confidence": confidence,
            "method": str(rec["method"]),
            "n_answers": int(rec["n_answers"]),
            "source": source,
        }


def _labeled_twice(first: dict[str, Any], _: dict[str, Any]) -> str:
    return f"item {first['item_id']!r} is labeled twice for round {first['round_id']} and source {first['source']!r}"


class LabelTable(Repository):
    """The labels of the project's rounds."""

    def save(self, labels: pd.DataFrame) -> None:
        require_columns(labels, LABEL_COLUMNS, "labels")
        if labels.empty:
            return
        rows = list(
            unique_by(_label_rows(labels), key=lambda row: tuple(row[c] for c in _KEY), clash=_labeled_twice)
        )
        with self.db.write() as conn:
            self.require_rounds(conn, {row["round_id"] for row in rows})
            conn.execute(
                self.db.upsert(LabelRow, _KEY, replace=("label", "confidence", "method", "n_answers")), rows
            )

    def read(self, round_id: int | None = None) -> pd.DataFrame:
        if round_id is not None:
            query = self.in_project(select_columns(LabelRow, LABEL_COLUMNS), LabelRow.round_id)
            return self.read_frame(
                query.where(LabelRow.round_id == int(round_id)).order_by(LabelRow.id), LABEL_COLUMNS
            )
        ranked = self.in_project(
            select_columns(LabelRow, LABEL_COLUMNS).add_columns(
                LabelRow.id.label("row_id"),
                Round.number.label("round_number"),
                func.row_number()
                .over(partition_by=(LabelRow.item_id, LabelRow.source), order_by=Round.number.desc())
                .label("rank"),
            ),
            LabelRow.round_id,
        ).subquery()
        latest = (
            select(*(ranked.c[c] for c in LABEL_COLUMNS))
            .where(ranked.c["rank"] == 1)
            .order_by(ranked.c["round_number"], ranked.c["row_id"])
        )
        return self.read_frame(latest, LABEL_COLUMNS)
