"""Items: the pool, gold and held-out sets, which must stay disjoint."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

import numpy as np
import pandas as pd
from sqlalchemy import Connection, func, select, update

from labelflow.contracts import require_columns
from labelflow.integrations.store.errors import StoreError
from labelflow.integrations.store.repository import Repository, label_or_none, now
from labelflow.integrations.store.schema import ITEM_SETS, Item, RegisteredPartition, Round

ITEM_COLUMNS: Final = ("item_id", "item_set", "known_label")
# Up to this many items are looked up by id (in chunks of bound ids) when added, rather than reading every stored
# item: registering a 5,000-item source beside 2M ingested items read all 2M (~5 s).
_LOOKED_UP: Final = 50_000
_IN_CHUNK: Final = 900


def _given_items(items: pd.DataFrame) -> pd.DataFrame:
    """``items`` as text (``item_id``, ``item_set``, ``known_label``), the first row of each item id only.

    Column-wise, without a Python object per row beyond the values (2M items at ingest); the errors are the ones
    a row-by-row pass would meet first: a missing id, an unknown set, or an item given in two sets."""
    missing = np.flatnonzero(pd.isna(items["item_id"]).to_numpy())
    if len(missing):
        raise StoreError(f"item at row {int(missing[0])} has no item_id")
    id_texts = [str(value) for value in items["item_id"].tolist()]
    ids = pd.Series(id_texts, dtype=object)
    sets = pd.Series(_shared_texts(items["item_set"]), dtype=object)
    labels = np.full(len(ids), None, dtype=object)
    if "known_label" in items.columns:
        known = items["known_label"].to_numpy(dtype=object)
        present = ~pd.isna(known)
        labels[present] = [label_or_none(value) for value in known[present]]
    # a set tells that no id repeats in a third of the time of pandas' duplicated on 2M Python strings (~0.8 s
    # in a one-off timing): the repeats' sets are compared only when there are repeats
    unique = len(set(id_texts)) == len(id_texts)
    repeated = np.zeros(len(ids), dtype=bool) if unique else ids.duplicated(keep="first").to_numpy()
    clash = repeated.copy()
    if not unique:
        first_set = sets[~repeated].set_axis(ids[~repeated])
        clash[repeated] = (ids[repeated].map(first_set) != sets[repeated]).to_numpy()
    unknown = ~sets.isin(ITEM_SETS).to_numpy()
    problems = np.flatnonzero(clash | unknown)
    if len(problems):
        row = int(problems[0])
        item_id, item_set = ids[row], sets[row]
        if unknown[row]:
            raise StoreError(f"item {item_id!r} has item_set {item_set!r}; expected one of {ITEM_SETS}")
        first = sets[(ids == item_id).to_numpy()].iloc[0]
        raise StoreError(
            f"item {item_id!r} is given in both {first!r} and {item_set!r}; the sets must be disjoint"
        )
    known_labels = pd.Series(labels, dtype=object)  # object: pandas' text dtype would make None NaN
    given = pd.DataFrame({"item_id": ids, "item_set": sets, "known_label": known_labels})
    return given if unique else given[~repeated]


def _shared_texts(column: pd.Series) -> np.ndarray:
    """``column``'s values as text, one Python string per distinct value (a set or a label column repeats a few
    values: as many strings as rows would take ~100 MB for 2M rows)."""
    codes, distinct = pd.factorize(column, use_na_sentinel=False)
    return np.array([str(value) for value in distinct] or [""], dtype=object)[codes]


class ItemTable(Repository):
    """The project's items."""

    def add(self, items: pd.DataFrame) -> int:
        require_columns(items, ("item_id", "item_set"), "items")
        wanted = _given_items(items)
        if wanted.empty:
            return 0
        # Serialised per project: the set check below must see every item a concurrent writer adds.
        with self.db.write(serialize=f"items:{self.project}") as conn:
            stored = self._stored_sets(conn, wanted["item_id"] if len(wanted) <= _LOOKED_UP else None)
            # no frame-long mapped column: pandas makes one of 2M mostly missing values its text dtype (~90 MB)
            is_stored = wanted["item_id"].isin(stored.index).to_numpy()
            moved = is_stored.copy()
            moved[is_stored] = (
                stored.loc[wanted["item_id"].to_numpy()[is_stored]].to_numpy()
                != wanted["item_set"].to_numpy()[is_stored]
            )
            conflicts = wanted[moved]
            if not conflicts.empty:
                item_id, new_set = conflicts["item_id"].iloc[0], conflicts["item_set"].iloc[0]
                more = f" (and {len(conflicts) - 1} more item(s))" if len(conflicts) > 1 else ""
                raise StoreError(
                    f"item {item_id!r} is already stored in {stored[item_id]!r} and cannot be added to {new_set!r}"
                    f"{more}; the pool, gold and held-out sets must be disjoint"
                )
            new = wanted[~is_stored]
            if new.empty:
                return 0
            # DO NOTHING: a writer of another version may not take the project's items lock.
            self.db.insert_many(
                conn,
                Item,
                zip(
                    new["item_id"].tolist(),
                    new["item_set"].tolist(),
                    new["known_label"].tolist(),
                    strict=True,
                ),
                ("item_id", "item_set", "known_label"),
                same={"project": self.project, "added_at": now()},
            )
        return len(new)

    def _stored_sets(self, conn: Connection, item_ids: pd.Series | None = None) -> pd.Series:
        """The set of each stored item of the project (of those of ``item_ids`` only, if given), by item id."""
        query = select(Item.item_id, Item.item_set).where(Item.project == self.project)
        chunks = (
            [query]
            if item_ids is None
            else [
                query.where(Item.item_id.in_(item_ids.iloc[start : start + _IN_CHUNK].tolist()))
                for start in range(0, len(item_ids), _IN_CHUNK)
            ]
        )
        ids: list[str] = []
        sets: list[str] = []
        for chunk in chunks:
            for item_id, item_set in conn.execute(chunk):
                ids.append(item_id)
                sets.append(item_set)
        return pd.Series(sets, index=pd.Index(ids, dtype=object), dtype=object)

    def set_known_labels(self, labels: Mapping[str, str]) -> int:
        """Give stored gold and held-out items these known labels; the number of items whose label changed."""
        changed = 0
        with self.db.write(serialize=f"items:{self.project}") as conn:
            query = select(Item.item_id, Item.known_label).where(
                Item.project == self.project,
                Item.item_set.in_(("gold", "held_out")),
                Item.item_id.in_([str(item) for item in labels]),
            )
            stored = {item_id: label for item_id, label in conn.execute(query)}
            for item_id, label in labels.items():
                if str(item_id) in stored and stored[str(item_id)] != str(label):
                    conn.execute(
                        update(Item)
                        .where(Item.project == self.project, Item.item_id == str(item_id))
                        .values(known_label=str(label))
                    )
                    changed += 1
        return changed

    def read(self, item_set: str | None = None) -> pd.DataFrame:
        query = select(Item.item_id, Item.item_set, Item.known_label).where(Item.project == self.project)
        if item_set is not None:
            query = query.where(Item.item_set == str(item_set))
        return self.read_frame(query.order_by(Item.id), ITEM_COLUMNS)

    def registered_partitions(self) -> set[str]:
        query = select(RegisteredPartition.partition).where(RegisteredPartition.project == self.project)
        with self.db.read() as conn:
            return set(conn.scalars(query))

    def mark_registered(self, partition: str, n_items: int) -> None:
        with self.db.write() as conn:
            conn.execute(
                self.db.insert(RegisteredPartition)
                .values(project=self.project, partition=partition, n_items=n_items, registered_at=now())
                .on_conflict_do_nothing()
            )

    def pool_added_since_last_round(self) -> int:
        latest = select(func.max(Round.started_at)).where(Round.project == self.project).scalar_subquery()
        query = (
            select(func.count())
            .select_from(Item)
            .where(Item.project == self.project, Item.item_set == "pool")
        )
        with self.db.read() as conn:
            started = conn.scalar(select(latest))
            if started is not None:
                query = query.where(Item.added_at > started)
            return int(conn.scalar(query) or 0)
