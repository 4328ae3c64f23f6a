"""Labels: one per (round, item, source); rerunning a round's aggregation replaces its labels, and the latest
round's label of an item wins when labels are read across rounds."""

from __future__ import annotations

from collections.abc import Collection

import numpy as np
import pandas as pd
from sqlalchemy import func, select

from labelflow.contracts import LABEL_COLUMNS, require_columns
from labelflow.integrations.store.errors import StoreError
from labelflow.integrations.store.repository import Repository, label_or_none, select_columns
from labelflow.integrations.store.schema import LABEL_SOURCES, LabelRow, Round

_KEY = ("round_id", "item_id", "source")


def _label_rows(labels: pd.DataFrame) -> pd.DataFrame:
    """``labels`` in the store's types, checked column by column (a round may save 2M pseudo-labels); the error
    is the one a row-by-row pass would meet first: an unknown source, a missing label, a NaN confidence, or a
    label given twice for one (round, item, source)."""
    item_ids = [str(value) for value in labels["item_id"].tolist()]
    sources = [str(value) for value in labels["source"].tolist()]
    round_ids = [int(value) for value in labels["round_id"].tolist()]
    texts = [value if type(value) is str else label_or_none(value) for value in labels["label"].tolist()]
    rows = pd.DataFrame(
        {
            "round_id": round_ids,
            "item_id": item_ids,
            "label": pd.Series(texts, dtype=object),
            "confidence": labels["confidence"].to_numpy(dtype=float),
            "method": [str(value) for value in labels["method"].tolist()],
            "n_answers": [int(value) for value in labels["n_answers"].tolist()],
            "source": sources,
        }
    )
    checks = {
        "source": ~rows["source"].isin(LABEL_SOURCES).to_numpy(),
        "label": rows["label"].isna().to_numpy(),
        "confidence": np.isnan(rows["confidence"].to_numpy()),
        "twice": rows.duplicated(list(_KEY), keep="first").to_numpy(),
    }
    problems = np.flatnonzero(np.logical_or.reduce(list(checks.values())))
    if len(problems):
        row = int(problems[0])
        item_id, round_id, source = item_ids[row], round_ids[row], sources[row]
        if checks["source"][row]:
            raise StoreError(
                f"label for item {item_id!r} has source {source!r}; expected one of {LABEL_SOURCES}"
            )
        if checks["label"][row]:
            raise StoreError(f"label for item {item_id!r} (round {round_id}, {source}) is missing")
        if checks["confidence"][row]:
            raise StoreError(f"label for item {item_id!r} (round {round_id}, {source}) has NaN confidence")
        raise StoreError(f"item {item_id!r} is labeled twice for round {round_id} and source {source!r}")
    return rows


class LabelTable(Repository):
    """The labels of the project's rounds."""

    def save(self, labels: pd.DataFrame) -> None:
        require_columns(labels, LABEL_COLUMNS, "labels")
        if labels.empty:
            return
        rows = _label_rows(labels)
        columns = list(rows.columns)
        with self.db.write() as conn:
            self.require_rounds(conn, set(rows["round_id"].tolist()))
            self.db.insert_many(
                conn,
                LabelRow,
                zip(*(rows[column].tolist() for column in columns), strict=True),
                columns,
                key=_KEY,
                replace=("label", "confidence", "method", "n_answers"),
            )

    def read(self, round_id: int | None = None, sources: Collection[str] | None = None) -> pd.DataFrame:
        if round_id is not None:
            query = self.in_project(select_columns(LabelRow, LABEL_COLUMNS), LabelRow.round_id)
            query = query.where(LabelRow.round_id == int(round_id))
            if sources is not None:
                query = query.where(LabelRow.source.in_(list(sources)))
            return self.read_frame(query.order_by(LabelRow.id), LABEL_COLUMNS)
        ranking = self.in_project(
            select_columns(LabelRow, LABEL_COLUMNS).add_columns(
                LabelRow.id.label("row_id"),
                Round.number.label("round_number"),
                func.row_number()
                .over(partition_by=(LabelRow.item_id, LabelRow.source), order_by=Round.number.desc())
                .label("rank"),
            ),
            LabelRow.round_id,
        )
        if sources is not None:  # ranked per (item, source): leaving a source out changes no other's rank
            ranking = ranking.where(LabelRow.source.in_(list(sources)))
        ranked = ranking.subquery()
        latest = (
            select(*(ranked.c[c] for c in LABEL_COLUMNS))
            .where(ranked.c["rank"] == 1)
            .order_by(ranked.c["round_number"], ranked.c["row_id"])
        )
        return self.read_frame(latest, LABEL_COLUMNS)
