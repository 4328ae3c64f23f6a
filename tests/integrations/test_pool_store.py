"""The pool store: partitions written once, read back as the sources gave them, and never parsed again."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from labelflow.contracts import ITEM_ID, ItemSet
from labelflow.integrations import datasets, pool_store
from labelflow.integrations.datasets import DatasetConfig, digits_table, load_dataset
from labelflow.integrations.pool_store import FeatureRows, PoolStore, load_pool
from labelflow.tasks.features import TextFeaturizer, pool_features
from labelflow.tasks.features.store import legacy_features_path

TEXTS = [
    "a warm film",
    "a dull film",
    "warm and funny",
    "dull and long",
    "funny acting",
    "long and dull plot",
]


def source(folder: Path, start: int = 0, stop: int = 150) -> DatasetConfig:
    table = digits_table(start, stop).astype({f"px{k}": np.float32 for k in range(64)})
    table.to_parquet(folder / "base.parquet")
    return DatasetConfig(source="base.parquet", id_column="id", n_gold=5)


def arrival(start: int, stop: int) -> bytes:
    return digits_table(start, stop).to_csv(index=False).encode()


def reads_of(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Names of the tables read from now on (every source and arrival goes through read_table)."""
    names: list[str] = []
    read = datasets.read_table

    def counted(source: Path | bytes, name: str | None = None, **kwargs: object) -> pd.DataFrame:
        names.append(str(name or source))
        return read(source, name, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(datasets, "read_table", counted)
    return names


def never(name: str) -> Callable[[], bytes]:
    def refuse() -> bytes:
        raise AssertionError(f"{name} was read again")

    return refuse


def test_the_pool_store_gives_what_the_files_give_and_parses_each_file_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = source(tmp_path)
    expected = load_dataset(config, [], tmp_path, [("a.csv", arrival(150, 180))])
    reads = reads_of(monkeypatch)
    first = load_pool(
        config, [], tmp_path, tmp_path / "work", [("a.csv", "c" * 64, lambda: arrival(150, 180))]
    )
    assert len(reads) == 2  # the source and the arrival, parsed once each
    pd.testing.assert_frame_equal(first.items, expected.items)
    pd.testing.assert_series_equal(first.known_labels, expected.known_labels)
    pd.testing.assert_series_equal(first.hidden_truth, expected.hidden_truth)
    assert first.items[ITEM_ID].iloc[0] == "d0000"

    again = load_pool(config, [], tmp_path, tmp_path / "work", [("a.csv", "c" * 64, never("a.csv"))])
    assert len(reads) == 2  # nothing parsed: both partitions read back
    pd.testing.assert_frame_equal(again.items, expected.items)
    assert again.label_names == expected.label_names and again.feature_columns == expected.feature_columns


def test_a_partition_is_written_once(tmp_path: Path) -> None:
    store = PoolStore(tmp_path)
    frame = pd.DataFrame(
        {ITEM_ID: ["a"], "item_set": [ItemSet.POOL.value], "x": [1.0], "payload": [None], "_label": ["0"]}
    )
    assert store.write_items("arrival-1", frame, kind="table", feature_columns=["x"], label_names=["0"])
    changed = frame.assign(x=2.0)
    assert not store.write_items("arrival-1", changed, kind="table", feature_columns=["x"], label_names=["0"])
    assert store.read_items(["arrival-1"], ["x"])["x"].tolist() == [1.0]
    assert store.partitions() == ["arrival-1"] and not list(
        store.items_dir.glob(".*")
    )  # no partial file left


def test_a_changed_source_file_is_read_again_into_a_new_partition(tmp_path: Path) -> None:
    config = source(tmp_path)
    load_pool(config, [], tmp_path, tmp_path / "work")
    store = PoolStore(tmp_path / "work")
    before = store.partitions()
    source(tmp_path, 0, 120)
    os.utime(tmp_path / "base.parquet", ns=(1, 1))  # even within the same clock tick: a different stamp
    reloaded = load_pool(config, [], tmp_path, tmp_path / "work").items
    assert len(reloaded) == 120 and reloaded["px0"].dtype == np.float32  # a float32 pool stays float32
    after = store.partitions()
    assert len(after) == 1 and after != before  # the stale source partition went


def test_a_store_made_before_the_pool_store_is_migrated_from_its_processed_files_once(tmp_path: Path) -> None:
    config = source(tmp_path)
    processed = tmp_path / "processed.csv"
    processed.write_bytes(arrival(150, 170))
    arrivals = [("processed.csv", "d" * 64, processed.read_bytes)]
    assert PoolStore(tmp_path / "work").partitions() == []  # as an older labelflow left the workdir
    assert len(load_pool(config, [], tmp_path, tmp_path / "work", arrivals).frame(ItemSet.POOL)) > 20
    processed.unlink()  # the pool no longer depends on the inbox's copy
    pool = load_pool(config, [], tmp_path, tmp_path / "work", arrivals).frame(ItemSet.POOL)
    assert {"d0150", "d0169"} <= set(pool[ITEM_ID])


def test_an_arrival_is_stored_with_the_kind_and_columns_of_the_source(tmp_path: Path) -> None:
    config = source(tmp_path)
    load_pool(config, [], tmp_path, tmp_path / "work")
    features = [f"px{k}" for k in range(64)]
    items = datasets.arrival_items(config, "n.csv", arrival(150, 160), features)
    assert pool_store.store_arrival(tmp_path / "work", "e" * 64, items)
    assert not pool_store.store_arrival(tmp_path / "work", "e" * 64, items)  # once
    dataset = load_pool(config, [], tmp_path, tmp_path / "work", [("n.csv", "e" * 64, never("n.csv"))])
    assert "d0155" in set(dataset.items[ITEM_ID]) and dataset.hidden_truth["d0155"] == "5"


def test_features_are_stored_in_partitions_and_a_changed_content_is_featurized_again(tmp_path: Path) -> None:
    def small(version: int) -> TextFeaturizer:
        return TextFeaturizer(version=version, n_components=2)

    items = pd.DataFrame({ITEM_ID: ["0", "1", "2", "3"], "payload": TEXTS[:4]})
    assert pool_features(items, tmp_path, new_featurizer=small).computed == 4
    assert pool_features(items, tmp_path).computed == 0
    edited = items.assign(payload=[TEXTS[4], *TEXTS[1:4]])
    assert pool_features(edited, tmp_path).computed == 1  # item 0's new content: a new key
    parts = PoolStore(tmp_path).feature_parts(1)
    assert [len(p.ids) for p in parts] == [4, 1]  # the first partition was not rewritten
    assert sp.issparse(parts[0].matrix) and parts[0].matrix.dtype == np.float32


def test_dense_features_round_trip(tmp_path: Path) -> None:
    store = PoolStore(tmp_path)
    values = np.arange(6, dtype=np.float32).reshape(3, 2)
    store.add_features(
        2, FeatureRows(np.asarray(["a", "b", "c"]), np.arange(3, dtype=np.uint64), values, values)
    )
    (part,) = store.feature_parts(2)
    np.testing.assert_array_equal(part.matrix, values)
    assert list(part.ids) == ["a", "b", "c"] and part.hashes.dtype == np.uint64


def test_features_kept_in_one_file_before_the_pool_store_become_its_first_partition(tmp_path: Path) -> None:
    items = pd.DataFrame({ITEM_ID: ["0", "1", "2", "3"], "payload": TEXTS[:4]})
    stored = pool_features(
        items, tmp_path, new_featurizer=lambda v: TextFeaturizer(version=v, n_components=2)
    )
    legacy = legacy_features_path(tmp_path, 1)
    hashes = [f"{int(h):016x}" for h in stored.hashes]  # the old store's hexadecimal SHA-256 prefixes
    joblib.dump({"ids": stored.ids, "hashes": hashes, "matrix": stored.matrix, "dense": stored.dense}, legacy)
    for part in (tmp_path / "pool" / "features" / "v001").glob("*.npz"):
        part.unlink()
    migrated = pool_features(items, tmp_path)
    assert migrated.computed == 0 and not legacy.exists()
    assert (migrated.matrix != stored.matrix).nnz == 0


def test_arrivals_stored_under_other_feature_columns_are_stored_again_from_their_file(tmp_path: Path) -> None:
    config = source(tmp_path)
    arrivals = [("a.csv", "a" * 64, lambda: arrival(150, 160))]
    load_pool(config, [], tmp_path, tmp_path / "work", arrivals)
    fewer = config.model_copy(update={"feature_columns": ("px1", "px2")})
    dataset = load_pool(fewer, [], tmp_path, tmp_path / "work", arrivals)
    assert dataset.feature_columns == ["px1", "px2"] and len(dataset.frame(ItemSet.POOL)) > 10
    assert list(dataset.items.columns) == [ITEM_ID, "item_set", "px1", "px2", "payload"]
