"""Items: the pool, gold and held-out sets, which must stay disjoint."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Final

import pandas as pd
from sqlalchemy import func, select, update

from labelflow.contracts import require_columns
from labelflow.integrations.store.errors import StoreError
from labelflow.integrations.store.repository import Repository, first_per_key, label_or_none, now
from labelflow.integrations.store.schema import ITEM_SETS, Item, Round

ITEM_COLUMNS: Final = ("item_id", "item_set", "known_label")


def _given_items(items: pd.DataFrame) -> Iterator[tuple[str, str, str | None]]:
    labels: Iterable[object] = (
        items["known_label"].tolist() if "known_label" in items.columns else [None] * len(items)
    )
    for raw_id, raw_set, raw_label in zip(
        items["item_id"].tolist(), items["item_set"].tolist(), labels, strict=True
    ):
        item_id, item_set = str(raw_id), str(raw_set)
        if item_set not in ITEM_SETS:
            raise StoreError(f"item {item_id!r} has item_set {item_set!r}; expected one of {ITEM_SETS}")
        yield item_id, item_set, label_or_none(raw_label)


def _set_clash(first: tuple[str, str, str | None], later: tuple[str, str, str | None]) -> str | None:
    if first[1] == later[1]:
        return None
    return f"item {first[0]!r} is given in both {first[1]!r} and {later[1]!r}; the sets must be disjoint"


class ItemTable(Repository):
    """The project's items."""

    def add(self, items: pd.DataFrame) -> int:
        require_columns(items, ("item_id", "item_set"), "items")
        wanted = first_per_key(_given_items(items), key=lambda item: item[0], clash=_set_clash)
        if not wanted:
            return 0
        # Serialised per project: the set check below must see every item a concurrent writer adds.
        with self.db.write(serialize=f"items:{self.project}") as conn:
            existing: dict[str, str] = {
                item_id: item_set
                for item_id, item_set in conn.execute(
                    select(Item.item_id, Item.item_set).where(Item.project == self.project)
                )
            }
            conflicts = [
                (item_id, existing[item_id], item_set)
                for item_id, item_set, _ in wanted.values()
                if item_id in existing and existing[item_id] != item_set
            ]
            if conflicts:
                item_id, stored_set, new_set = conflicts[0]
                more = f" (and {len(conflicts) - 1} more item(s))" if len(conflicts) > 1 else ""
                raise StoreError(
                    f"item {item_id!r} is already stored in {stored_set!r} and cannot be added to {new_set!r}"
                    f"{more}; the pool, gold and held-out sets must be disjoint"
                )
            added_at = now()
            rows = [
                {
                    "project": self.project,
                    "item_id": item_id,
                    "item_set": item_set,
                    "known_label": known_label,
                    "added_at": added_at,
                }
                for item_id, item_set, known_label in wanted.values()
                if item_id not in existing
            ]
            if not rows:
                return 0
            # DO NOTHING: a writer of another version may not take the project's items lock.
            conn.execute(self.db.insert_new(Item), rows)
        return len(rows)

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
