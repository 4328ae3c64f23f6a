"""Labels: one per (round, item, source); rerunning a round's aggregation replaces its labels, and the latest
round's label of an item wins when labels are read across rounds."""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence

import numpy as np
import pandas as pd
from sqlalchemy import case, collate, func, select

from labelflow.contracts import LABEL_COLUMNS, require_columns
from labelflow.integrations.store.errors import StoreError
from labelflow.integrations.store.repository import Repository, label_or_none, select_columns
from labelflow.integrations.store.schema import LABEL_SOURCES, LabelRow, Round

_KEY = ("round_id", "item_id", "source")
# The best label's columns: the label's own, its round's number in place of the round's id
BEST_COLUMNS = (*(c for c in LABEL_COLUMNS if c != "round_id"), "round")


def _shared_texts(column: pd.Series, text: Callable[[object], str | None]) -> np.ndarray:
    """``text`` of each value of a column of few distinct values, one Python object per distinct value shared by
    its rows (1.8M pseudo-labels share one method and one source); a missing value gives ``text(None)``."""
    codes, distinct = pd.factorize(column)
    texts = np.array([*(text(value) for value in distinct), text(None)], dtype=object)
    return np.asarray(texts[codes])  # code -1, a missing value: the last


def _label_rows(labels: pd.DataFrame) -> pd.DataFrame:
    """``labels`` in the store's types, checked column by column (a round may save 2M pseudo-labels); the error
    is the one a row-by-row pass would meet first: an unknown source, a missing label, a NaN confidence, or a
    label given twice for one (round, item, source)."""
    item_ids = [str(value) for value in labels["item_id"].tolist()]
    sources = _shared_texts(labels["source"], str)
    round_ids = labels["round_id"].to_numpy(dtype=np.int64)
    # object columns: pandas would turn lists of text into its "str" dtype, and each later .tolist() would make
    # a new Python string per row again (for 1.8M pseudo-labels, ~0.5 GB)
    rows = pd.DataFrame(
        {
            "round_id": round_ids,
            "item_id": pd.Series(item_ids, dtype=object),
            "label": pd.Series(_shared_texts(labels["label"], label_or_none), dtype=object),
            "confidence": labels["confidence"].to_numpy(dtype=float),
            "method": pd.Series(_shared_texts(labels["method"], str), dtype=object),
            "n_answers": labels["n_answers"].to_numpy(dtype=np.int64),
            "source": pd.Series(sources, dtype=object),
        }
    )
    checks = {
        "source": ~rows["source"].isin(LABEL_SOURCES).to_numpy(),
        "label": rows["label"].isna().to_numpy(),
        "confidence": np.isnan(rows["confidence"].to_numpy()),
        "twice": _repeated_keys(rows),
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


def _repeated_keys(rows: pd.DataFrame) -> np.ndarray:
    """Whether each row repeats an earlier row's (round, item, source); on rows of one round and source (a
    round's 1.8M pseudo-labels), by item id alone: hashing the three columns took ~1 s more."""
    one_round_and_source = rows["round_id"].nunique() <= 1 and rows["source"].nunique() <= 1
    keys = rows["item_id"] if one_round_and_source else rows[list(_KEY)]
    return np.asarray(keys.duplicated(keep="first"))


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

    def best(self, precedence: Sequence[str]) -> pd.DataFrame:
        """One label per item (``BEST_COLUMNS``), ordered by item id as Python orders text: the first of
        ``precedence``'s sources the item has a label of (a source not in it comes last), that source's label of
        the highest round number. Ranked by the database in one pass: reading the latest label per item and source
        and ranking them again in pandas took ~2 CPU seconds more for 1.8M pseudo-labels."""
        source_rank = case(
            {source: rank for rank, source in enumerate(precedence)},
            value=LabelRow.source,
            else_=len(precedence),
        )
        # the window sorts only ids and round numbers; the winners' columns are joined on after (with them, the
        # sort took 1.2 s more for 1.8M labels on SQLite)
        ranking = self.in_project(
            select(
                LabelRow.id,
                Round.number.label("round"),
                func.row_number()
                .over(partition_by=LabelRow.item_id, order_by=(source_rank, Round.number.desc()))
                .label("rank"),
            ),
            LabelRow.round_id,
        ).subquery()
        # byte order of UTF-8 is code point order, as Python sorts; PostgreSQL's default collation is the locale's
        binary = "BINARY" if self.db.dialect == "sqlite" else "C"
        best = (
            select_columns(LabelRow, BEST_COLUMNS[:-1])
            .add_columns(ranking.c["round"])
            .join(ranking, ranking.c["id"] == LabelRow.id)
            .where(ranking.c["rank"] == 1)
            .order_by(collate(LabelRow.item_id, binary))
        )
        return self.read_frame(best, BEST_COLUMNS)

    def latest_round(self, source: str) -> int | None:
        """The highest round number with a label of ``source``; None if there is none."""
        query = self.in_project(select(func.max(Round.number)).select_from(LabelRow), LabelRow.round_id)
        with self.db.read() as conn:
            latest: int | None = conn.scalar(query.where(LabelRow.source == source))
            return latest
