"""The per-project pool store: every item's content and features, written once and read by every later run.

Layout, under the project's workdir::

    pool/items/source-<fingerprint>.parquet   the configured source, split into pool / gold / held-out
    pool/items/arrival-<checksum>.parquet     one inbox file's rows, written when it is ingested
    pool/features/v<NNN>/part-<NNNNN>.npz     features of featurizer version NNN, rows of the items new to it

An item partition holds ``item_id`` (text), ``item_set``, the table's numeric feature columns (in their own
float dtype), ``payload`` (what a worker sees: a text, an image), ``_label`` (the label the data knows: known
for gold and held-out items, hidden truth for pool items) and ``content_hash`` (64 bits of the item's content),
and in its Parquet metadata the dataset's kind, feature columns and label names. The source partition's name is
a fingerprint of the dataset config and of the size and modification time of every file it reads: a changed
config or file makes a new partition (and the old one is removed), an unchanged one is never parsed again. An
arrival partition is named by the file's checksum, which the label store's ingestion record holds too. Every
file is written under a temporary name and renamed, so a crash leaves a partition whole or absent, never half.

A feature partition is keyed by item id and content hash: an item is featurized once per featurizer version, and
an item whose content changed is featurized again (its new key is absent).
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import cast

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import scipy.sparse as sp

from labelflow.contracts import ITEM_ID, PAYLOAD, ItemSet
from labelflow.integrations.datasets import (
    Dataset,
    DatasetConfig,
    DatasetKind,
    LoadedSource,
    arrival_items,
    assemble_dataset,
    load_source,
    read_features,
)

POOL_DIR = "pool"
LABEL = "_label"
CONTENT_HASH = "content_hash"
SOURCE_PREFIX = "source-"
ARRIVAL_PREFIX = "arrival-"
_META_KEY = b"labelflow"
_ROW_GROUP = 64_000  # rows of an item partition's Parquet row group (each one written apart)


_MIX = np.uint64(0x9E3779B97F4A7C15)  # 2^64 / golden ratio: multiplying by it spreads every input bit


def content_hashes(frame: pd.DataFrame, columns: Sequence[str]) -> np.ndarray:
    """64 bits of each row's ``columns`` (uint64): equal content, equal hash, in any process or run.

    Numeric columns are mixed in by their bits (no per-row Python, no copy of the frame: pandas' own
    ``hash_pandas_object`` took 7 s for 2M x 64), other columns by pandas' hash of their values."""
    hashes = np.zeros(len(frame), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for name in columns:
            values = frame[name].to_numpy()
            if values.dtype.kind == "f" and values.dtype.itemsize in (4, 8):
                bits = values.view(np.uint32 if values.dtype.itemsize == 4 else np.uint64).astype(np.uint64)
            else:
                bits = pd.util.hash_array(np.asarray(values, dtype=object))
            hashes = (hashes ^ bits) * _MIX
            hashes ^= hashes >> np.uint64(29)
    return hashes


def text_hash(text: str) -> int:
    """64 bits of a text's (or an image path's) SHA-256: the content hash of items whose content is one string,
    the key of their features."""
    return int(hashlib.sha256(text.encode("utf-8")).hexdigest()[:16], 16)


def _shared_texts(column: pa.ChunkedArray) -> np.ndarray:
    """A column of few distinct texts (an item's set, its label) as an object array with one Python string per
    distinct value, shared by its rows: a string per row is ~130 MB for 2M rows."""
    encoded = pc.dictionary_encode(column.combine_chunks())
    distinct = np.array([*encoded.dictionary.to_pylist(), None], dtype=object)
    return np.asarray(distinct[encoded.indices.fill_null(-1).to_numpy()])  # -1, a missing value: None


def _write_atomically(path: Path, write: Callable[[Path], None]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.partial")
    try:
        write(temporary)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


@dataclass(frozen=True)
class FeatureRows:
    """One feature partition: the rows of ``ids`` (with their content ``hashes``), sparse or dense, and their
    dense view (a few dimensions for distances)."""

    ids: np.ndarray
    hashes: np.ndarray
    matrix: sp.csr_matrix | np.ndarray
    dense: np.ndarray


class PoolStore:
    """A project's item and feature partitions under ``workdir/pool`` (see the module's docstring)."""

    def __init__(self, workdir: Path) -> None:
        self.root = workdir / POOL_DIR
        self.items_dir = self.root / "items"

    # -- items ---------------------------------------------------------------------------------------------

    def partitions(self, prefix: str = "") -> list[str]:
        """Names of the item partitions (without ``.parquet``) starting with ``prefix``, sorted."""
        if not self.items_dir.exists():
            return []
        return sorted(p.stem for p in self.items_dir.glob(f"{prefix}*.parquet"))

    def has(self, partition: str) -> bool:
        return (self.items_dir / f"{partition}.parquet").exists()

    def write_items(
        self,
        partition: str,
        frame: pd.DataFrame,
        *,
        kind: DatasetKind,
        feature_columns: Sequence[str],
        label_names: Sequence[str],
    ) -> bool:
        """Store ``frame`` (item_id, item_set, features, payload, _label) as ``partition``, once: False (and
        nothing written) if it is there already."""
        path = self.items_dir / f"{partition}.parquet"
        if path.exists():
            return False
        hashes = (
            content_hashes(frame, [*feature_columns, PAYLOAD])
            if kind == "table"
            else np.fromiter((text_hash(str(text)) for text in frame[PAYLOAD]), np.uint64, len(frame))
        )
        frame = frame.assign(**{CONTENT_HASH: hashes})
        schema = pa.Schema.from_pandas(frame, preserve_index=False)
        meta = {"kind": kind, "feature_columns": list(feature_columns), "label_names": list(label_names)}
        schema = schema.with_metadata({**(schema.metadata or {}), _META_KEY: json.dumps(meta)})

        def write(target: Path) -> None:
            # dictionary encoding only where values repeat: tried on 64 float columns it took 12x the whole write
            with pq.ParquetWriter(target, schema, use_dictionary=["item_set", LABEL]) as writer:
                # a row group at a time: the whole frame as one Arrow table was another 0.5 GB beside it
                for start in range(0, max(len(frame), 1), _ROW_GROUP):
                    rows = frame.iloc[start : start + _ROW_GROUP]
                    writer.write_table(pa.Table.from_pandas(rows, schema=schema, preserve_index=False))

        _write_atomically(path, write)
        return True

    def remove(self, partition: str) -> None:
        (self.items_dir / f"{partition}.parquet").unlink(missing_ok=True)

    def meta(self, partition: str) -> dict[str, object]:
        schema = pq.read_schema(self.items_dir / f"{partition}.parquet")
        found: dict[str, object] = json.loads(schema.metadata[_META_KEY])
        return found

    def n_rows(self, partition: str) -> int:
        return int(pq.ParquetFile(self.items_dir / f"{partition}.parquet").metadata.num_rows)

    def read_items(self, partitions: Sequence[str], feature_columns: Sequence[str]) -> pd.DataFrame:
        """The partitions' rows as one frame (item_id, item_set, features, payload, _label, content_hash).

        The feature columns of every partition go straight into one preallocated array (in the partitions'
        common float dtype), which the frame keeps without a copy: no per-partition frame is concatenated."""
        paths = [self.items_dir / f"{name}.parquet" for name in partitions]
        files = [pq.ParquetFile(path) for path in paths]
        sizes = [f.metadata.num_rows for f in files]
        dtypes = [f.schema_arrow.field(c).type.to_pandas_dtype() for f in files for c in feature_columns]
        dtype = np.result_type(*dtypes) if dtypes else np.float64
        features = np.empty((sum(sizes), len(feature_columns)), dtype=dtype, order="F")
        others = []
        start = 0
        for path, file, size in zip(paths, files, sizes, strict=True):
            read_features(path, feature_columns, out=features[start : start + size])
            names = [n for n in file.schema_arrow.names if n not in set(feature_columns)]
            table = pq.read_table(path, columns=names)
            # object columns, as every reader gives them (pandas would make text columns its "str" dtype)
            arrays = [
                _shared_texts(column)
                if name in ("item_set", LABEL)
                else column.to_numpy(zero_copy_only=False)
                for name, column in zip(names, table.columns, strict=True)
            ]
            others.append(
                pd.DataFrame({n: pd.Series(a, dtype=a.dtype) for n, a in zip(names, arrays, strict=True)})
            )
            start += size
        rest = pd.concat(others, ignore_index=True) if len(others) != 1 else others[0]
        block = pd.DataFrame(features, columns=list(feature_columns), copy=False)
        columns = [ITEM_ID, "item_set", *feature_columns, PAYLOAD, LABEL, CONTENT_HASH]
        frame: pd.DataFrame = pd.concat([rest, block], axis=1)[columns]
        return frame

    # -- features ------------------------------------------------------------------------------------------

    def _features_dir(self, version: int) -> Path:
        return self.root / "features" / f"v{version:03d}"

    def feature_parts(self, version: int) -> list[FeatureRows]:
        """Every stored feature partition of featurizer ``version``, oldest first."""
        folder = self._features_dir(version)
        return [_read_features(path) for path in sorted(folder.glob("part-*.npz"))] if folder.exists() else []

    def add_features(self, version: int, rows: FeatureRows) -> None:
        """Store ``rows`` as the next feature partition of ``version``."""
        folder = self._features_dir(version)
        number = len(list(folder.glob("part-*.npz"))) if folder.exists() else 0
        matrix = rows.matrix
        arrays: dict[str, np.ndarray] = {
            "ids": np.asarray(rows.ids, dtype=str),
            "hashes": np.asarray(rows.hashes, dtype=np.uint64),
            "dense": np.asarray(rows.dense),
        }
        if sp.issparse(matrix):
            csr = sp.csr_matrix(matrix)
            arrays |= {
                "data": csr.data,
                "indices": csr.indices,
                "indptr": csr.indptr,
                "shape": np.asarray(csr.shape),
            }
        else:
            arrays["values"] = np.asarray(matrix)
        path = folder / f"part-{number:05d}.npz"
        _write_atomically(path, partial(_save_npz, arrays=arrays))


def _save_npz(path: Path, *, arrays: dict[str, np.ndarray]) -> None:
    with path.open("wb") as file:
        np.savez(file, **arrays)  # type: ignore[arg-type]  # numpy's stub wants positional arrays too


def _read_features(path: Path) -> FeatureRows:
    with np.load(path, allow_pickle=False) as saved:
        if "values" in saved:
            matrix: sp.csr_matrix | np.ndarray = saved["values"]
        else:
            matrix = sp.csr_matrix(
                (saved["data"], saved["indices"], saved["indptr"]), shape=tuple(saved["shape"])
            )
        return FeatureRows(saved["ids"].astype(object), saved["hashes"], matrix, saved["dense"])


def source_fingerprint(config: DatasetConfig, label_names: Sequence[str], base_dir: Path) -> str:
    """What the source partition depends on: the dataset config, the label names, and the size and modification
    time of every file the source reads (a file replaced in place is read again)."""
    files = [config.source, config.held_out_source, config.gold_source, config.answers_file]
    stats = []
    for name in files:
        path = (base_dir / name).resolve() if name else None
        if path is not None and path.exists():
            stat = path.stat()
            stats.append([str(path), stat.st_size, stat.st_mtime_ns])
    key = json.dumps([config.model_dump(mode="json"), list(label_names), stats], sort_keys=True)
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]


def arrival_partition(checksum: str) -> str:
    return f"{ARRIVAL_PREFIX}{checksum[:16]}"


def store_arrival(workdir: Path, checksum: str, items: pd.DataFrame) -> bool:
    """Store an ingested file's rows (item_id, features, payload, _label) as a pool partition, once, with the
    kind, feature columns and label names of the project's source partition (loaded before any ingestion)."""
    store = PoolStore(workdir)
    source = store.partitions(SOURCE_PREFIX)
    if not source:
        raise FileNotFoundError(f"{store.items_dir} holds no source partition; load the project first")
    kind, features, names = _described(store.meta(source[-1]))
    return store.write_items(
        arrival_partition(checksum),
        items.assign(item_set=ItemSet.POOL.value)[[ITEM_ID, "item_set", *features, PAYLOAD, LABEL]],
        kind=kind,
        feature_columns=features,
        label_names=names,
    )


def partition_description(schema: pa.Schema) -> tuple[DatasetKind, list[str], list[str]]:
    """An item partition's kind, feature columns and label names, from its Parquet schema (read wherever the
    file lies: this machine or S3)."""
    return _described(json.loads(schema.metadata[_META_KEY]))


def _described(meta: dict[str, object]) -> tuple[DatasetKind, list[str], list[str]]:
    """A partition's kind, feature columns and label names, from its metadata."""
    kind = cast(DatasetKind, meta["kind"])  # written by write_items from a DatasetKind
    features = [str(c) for c in meta["feature_columns"]]  # type: ignore[attr-defined]
    names = [str(n) for n in meta["label_names"]]  # type: ignore[attr-defined]
    return kind, features, names


def load_pool(
    config: DatasetConfig,
    label_names: list[str],
    base_dir: Path,
    workdir: Path,
    arrivals: Iterable[tuple[str, str, Callable[[], bytes]]] = (),
) -> Dataset:
    """The project's dataset from its pool store, each file parsed only the first time it is seen.

    ``arrivals`` are the processed inbox files as (name, checksum, a function reading the file): one whose
    partition is missing (a store made before the pool store, or a crash between ingestion and storing) is read
    once, through that function, and stored; the others are never read."""
    store = PoolStore(workdir)
    source = f"{SOURCE_PREFIX}{source_fingerprint(config, label_names, base_dir)}"
    if not store.has(source):
        loaded = load_source(config, label_names, base_dir)
        store.write_items(
            source,
            loaded.items,
            kind=loaded.kind,
            feature_columns=loaded.feature_columns,
            label_names=loaded.label_names,
        )
        for stale in store.partitions(SOURCE_PREFIX):
            if stale != source:
                store.remove(stale)
    kind, features, names = _described(store.meta(source))
    partitions = [source]
    for name, checksum, read in arrivals:
        partition = arrival_partition(checksum)
        if store.has(partition) and _described(store.meta(partition))[:2] != (kind, features):
            store.remove(partition)  # stored under another config's feature columns: parse the file once more
        if not store.has(partition):
            source_config = config.model_copy(update={"kind": kind})
            arrived = arrival_items(source_config, name, read(), features, image_dir=base_dir)
            store.write_items(partition, arrived, kind=kind, feature_columns=features, label_names=names)
        partitions.append(partition)
    items = store.read_items(partitions, features)
    dataset = assemble_dataset(LoadedSource(items, features, names, kind))
    return replace(dataset, parts=tuple((name, store.n_rows(name)) for name in partitions))
