"""Dataset sources: the bundled digits demo and a user's CSV or Parquet file.

Every source yields the same :class:`Dataset`: items with their set (pool / gold / held-out), feature columns, a
human-viewable ``payload``, the label names, the known labels of gold and held-out items, and — where the data
has labels for pool items too — the hidden truth that only the simulated crowd and the round report may see.
"""

from __future__ import annotations

import base64
import io
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict, Field
from sklearn.model_selection import train_test_split

from labelflow.contracts import ITEM_ID, PAYLOAD, ItemSet

DIGITS = "digits"


class DatasetError(ValueError):
    """The dataset cannot be used; the message names the file, row or column and what to do."""


class DatasetConfig(BaseModel):
    """Where the items come from, and how gold and held-out items are chosen among the labeled ones."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    source: str = Field(
        DIGITS, description='"digits" (the bundled demo) or the path of a .csv or .parquet file.'
    )
    id_column: str = Field("item_id", description="Column holding each item's unique id.")
    feature_columns: tuple[str, ...] = Field(
        (), description="Numeric feature columns; empty means every numeric column but the id and the label."
    )
    label_column: str | None = Field(
        "label",
        description="Column with known labels (may be empty for unlabeled rows); None if there is none.",
    )
    payload_column: str | None = Field(None, description="Column with what a human annotator sees.")
    answers_file: str | None = Field(
        None, description="Optional CSV/Parquet with columns item_id,label giving known labels separately."
    )
    n_gold: int = Field(30, ge=0, description="How many labeled items become gold questions.")
    held_out_fraction: float = Field(
        0.2, gt=0, lt=1, description="Share of all items kept as the held-out set (taken from labeled items)."
    )
    seed: int = Field(0, description="Seed of the gold / held-out split.")


@dataclass(frozen=True)
class Dataset:
    items: pd.DataFrame  # item_id, item_set, the feature columns, payload
    feature_columns: list[str]
    label_names: list[str]
    known_labels: pd.Series  # item_id -> label, gold and held-out items only
    hidden_truth: pd.Series  # item_id -> label for every item whose label the data knows, pool included

    def frame(self, item_set: ItemSet) -> pd.DataFrame:
        return self.items[self.items["item_set"] == item_set.value].reset_index(drop=True)


def load_dataset(
    config: DatasetConfig,
    label_names: list[str],
    base_dir: Path | None = None,
    arrivals: Sequence[tuple[str, bytes]] = (),
) -> Dataset:
    """Load the configured source and split it into pool, gold and held-out items (reproducibly).

    ``arrivals`` are files ingested from the inbox later, as (name, content): their rows join the pool, and a
    label they carry is hidden truth only (for the simulated crowd and the report), never a known label.
    """
    if config.source == DIGITS:
        frame, features = _digits_frame()
    else:
        path = ((base_dir or Path.cwd()) / config.source).resolve()
        raw = read_table(path)
        if (
            config.label_column is not None
            and config.label_column not in raw.columns
            and not config.answers_file
        ):
            raise DatasetError(
                f"no column {config.label_column!r} in {path} (columns: {', '.join(map(str, raw.columns))}); "
                "set dataset.label_column to the column holding the known labels"
            )
        frame, features = _file_frame(config, raw, str(path), path.parent)
    labels = frame.pop("_label")
    names = label_names or sorted(labels.dropna().unique().tolist())
    _check_labels(labels, frame, names, config.source)
    item_set = _split(labels, config)
    frame.insert(1, "item_set", item_set)
    known_mask = (item_set != ItemSet.POOL.value).to_numpy()
    known = pd.Series(
        labels.to_numpy()[known_mask], index=frame[ITEM_ID].to_numpy()[known_mask], name="label"
    )
    frames, truths = [frame], [labels]
    for name, content in arrivals:
        arrived = items_from_table(read_table(content, name), config, name, features)
        truths.append(arrived.pop("_label"))
        frames.append(arrived.assign(item_set=ItemSet.POOL.value)[frame.columns])
    items = pd.concat(frames, ignore_index=True) if arrivals else frame
    all_labels = pd.concat(truths, ignore_index=True) if arrivals else labels
    truth = pd.Series(all_labels.to_numpy(), index=items[ITEM_ID].to_numpy(), name="label").dropna()
    return Dataset(items, features, names, known, truth)


def items_from_table(
    raw: pd.DataFrame, config: DatasetConfig, name: str, features: list[str]
) -> pd.DataFrame:
    """A new file's rows as items with the dataset's own feature columns (item_id, features, payload, _label)."""
    frame, _ = _file_frame(config.model_copy(update={"feature_columns": tuple(features)}), raw, name, None)
    return frame


def _check_labels(labels: pd.Series, frame: pd.DataFrame, names: list[str], source: str) -> None:
    unknown = labels.notna() & ~labels.isin(names)
    if unknown.any():
        row = int(np.flatnonzero(unknown.to_numpy())[0])
        raise DatasetError(
            f"{source}: row {row} (item {frame[ITEM_ID].iloc[row]!r}) has label {labels.iloc[row]!r}, "
            f"which is not among the configured label names {names}; add it to `labels` or fix the row"
        )


def _split(labels: pd.Series, config: DatasetConfig) -> pd.Series:
    """Held-out first (stratified), then gold (stratified) from the labeled rows; the rest is the pool."""
    item_set = pd.Series(ItemSet.POOL.value, index=labels.index, dtype=object)
    labeled = labels.dropna()
    n_held_out = round(config.held_out_fraction * len(labels))
    if len(labeled) < n_held_out + config.n_gold:
        raise DatasetError(
            f"{config.source}: {len(labeled)} labeled rows, but {n_held_out} held-out and {config.n_gold} gold "
            "items are needed; label more rows, or lower dataset.n_gold / dataset.held_out_fraction"
        )
    rest, held_out = _stratified(labeled, n_held_out, config.seed)
    _, gold = _stratified(rest, config.n_gold, config.seed + 1)
    item_set[held_out.index] = ItemSet.HELD_OUT.value
    item_set[gold.index] = ItemSet.GOLD.value
    return item_set


def _stratified(labels: pd.Series, n: int, seed: int) -> tuple[pd.Series, pd.Series]:
    if n == 0:
        return labels, labels.iloc[:0]
    counts = labels.value_counts()
    stratify = labels if counts.min() >= 2 and n >= len(counts) else None
    rest, chosen = train_test_split(labels, test_size=n, random_state=seed, stratify=stratify)
    return rest, chosen


def _digits_frame() -> tuple[pd.DataFrame, list[str]]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    features = [f"pixel_{r}_{c}" for r in range(8) for c in range(8)]
    frame = pd.DataFrame(digits.data.astype(np.float64), columns=features)
    frame.insert(0, ITEM_ID, [f"digit-{i:04d}" for i in range(len(frame))])
    frame[PAYLOAD] = [png_data_uri(image) for image in digits.images]
    frame["_label"] = digits.target.astype(str)
    return frame, features


def digits_table(start: int, stop: int, *, labels: bool = True) -> pd.DataFrame:
    """Rows ``start:stop`` of the bundled digits as a user's own file would hold them: ``id``, ``px0``…``px63``
    and (``labels``) ``label`` — for trying the inbox, the tests and the benchmarks."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    frame = pd.DataFrame(digits.data[start:stop], columns=[f"px{k}" for k in range(64)])
    frame.insert(0, "id", [f"d{k:04d}" for k in range(start, stop)])
    if labels:
        frame["label"] = digits.target[start:stop].astype(str)
    return frame


def read_table(source: Path | bytes, name: str | None = None) -> pd.DataFrame:
    """A CSV or Parquet table from a path or from a file's bytes (``name`` gives the file type then)."""
    label = str(source) if isinstance(source, Path) else (name or "<bytes>")
    suffix = Path(label).suffix.lower()
    if isinstance(source, Path) and not source.exists():
        raise DatasetError(
            f"{source}: no such file; set dataset.source to a .csv or .parquet file or to 'digits'"
        )
    data: Path | io.BytesIO = source if isinstance(source, Path) else io.BytesIO(source)
    try:
        if suffix == ".csv":
            return _check_delimiter(pd.read_csv(data, dtype_backend="numpy_nullable"), label)
        if suffix in {".parquet", ".pq"}:
            return _parquet_frame(data)
    except (ValueError, OSError, UnicodeDecodeError, pa.ArrowException) as error:
        raise DatasetError(f"{label}: cannot be read as {suffix[1:]}: {error}") from None
    raise DatasetError(f"{label}: unsupported file type {suffix!r}; use .csv or .parquet")


def _check_delimiter(table: pd.DataFrame, label: str) -> pd.DataFrame:
    """A CSV file read as one column whose name holds another delimiter was written with that delimiter."""
    if len(table.columns) == 1:
        other = next((d for d in (";", "\t", "|") if d in str(table.columns[0])), None)
        if other is not None:
            raise DatasetError(
                f"{label}: one column {str(table.columns[0])[:60]!r}: the file looks delimited by {other!r}; "
                "labelflow reads CSV with the delimiter ',' (save it comma-separated)"
            )
    return table


def read_features(
    source: Path | io.BytesIO, columns: Sequence[str], *, values_per_read: int = 2_000_000
) -> np.ndarray:
    """A Parquet file's ``columns`` as one (rows, columns) array in their own float dtype (float32 stays float32).

    Read a row group and at most ``values_per_read`` values at a time (those columns decoded in parallel), so
    that the Arrow data in flight stays ~10 MB, whatever row groups the writer chose: reading whole row groups
    of 100k x 64 held ~150 MB besides the array. The array is Fortran-ordered: each column is then one
    contiguous write, where filling a row-major array writes every value to its own cache line (1M x 64
    float32: 1.8 s instead of 0.2 s). Rows are still sliced as rows; scikit-learn and BLAS take either layout."""
    file = pq.ParquetFile(source)
    types = [file.schema_arrow.field(name).type.to_pandas_dtype() for name in columns]
    dtype = (
        np.result_type(*types) if types and all(np.issubdtype(t, np.floating) for t in types) else np.float64
    )
    features = np.empty((file.metadata.num_rows, len(columns)), dtype=dtype, order="F")
    start = 0
    for group in range(file.num_row_groups):
        stop = start + file.metadata.row_group(group).num_rows
        width = max(1, values_per_read // max(stop - start, 1))
        for first in range(0, len(columns), width):
            table = file.read_row_group(group, columns=list(columns[first : first + width]))
            for c, column in enumerate(table.columns, start=first):
                features[start:stop, c] = column.to_numpy()
        start = stop
    return features


def _parquet_frame(source: Path | io.BytesIO) -> pd.DataFrame:
    """A Parquet table whose float columns arrive as one block from :func:`read_features`, which pandas keeps
    without a copy (``to_pandas`` would copy them into a block of its own); the other columns through pandas."""
    schema = pq.read_schema(source)
    floats = [field.name for field in schema if pa.types.is_floating(field.type)]
    others: pd.DataFrame = pq.read_table(
        source, columns=[n for n in schema.names if n not in floats]
    ).to_pandas()
    block = pd.DataFrame(read_features(source, floats), columns=floats, copy=False)
    names: list[str] = schema.names
    return pd.concat([others, block], axis=1)[names]


def _file_frame(
    config: DatasetConfig, raw: pd.DataFrame, path: str, answers_dir: Path | None
) -> tuple[pd.DataFrame, list[str]]:
    if config.id_column not in raw.columns:
        raise DatasetError(f"{path}: no id column {config.id_column!r}; columns are {list(raw.columns)}")
    reserved = {config.id_column, config.label_column, config.payload_column}
    features = list(config.feature_columns) or [
        c for c in raw.columns if c not in reserved and pd.api.types.is_numeric_dtype(raw[c])
    ]
    missing = [c for c in features if c not in raw.columns]
    if missing:
        raise DatasetError(f"{path}: feature column(s) {missing} not found; columns are {list(raw.columns)}")
    if not features:
        raise DatasetError(f"{path}: no numeric feature columns; list them in dataset.feature_columns")
    frame = pd.DataFrame({ITEM_ID: raw[config.id_column].astype("string").astype(object)})
    for column in features:
        values = pd.to_numeric(raw[column], errors="coerce")
        bad = values.isna() & raw[column].notna()
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise DatasetError(
                f"{path}: row {row}, column {column!r}: {raw[column].iloc[row]!r} is not a number"
            )
        # a float32 pool stays float32: half the memory, and selection scores it in its own dtype
        dtype = np.float32 if values.dtype in (np.float32, pd.Float32Dtype()) else np.float64
        frame[column] = values.to_numpy(dtype=dtype, na_value=np.nan)
    frame[PAYLOAD] = raw[config.payload_column].astype(str) if config.payload_column else None
    frame["_label"] = _known_labels(raw, config, answers_dir)
    return frame, features


def _known_labels(raw: pd.DataFrame, config: DatasetConfig, answers_dir: Path | None) -> pd.Series:
    labels = pd.Series(None, index=raw.index, dtype=object)
    if config.label_column is not None and config.label_column in raw.columns:
        present = raw[config.label_column].notna()
        labels[present] = raw.loc[present, config.label_column].astype(str)
    if config.answers_file and answers_dir is not None:
        answers = read_table((answers_dir / config.answers_file).resolve())
        for column in (ITEM_ID, "label"):
            if column not in answers.columns:
                raise DatasetError(
                    f"{config.answers_file}: needs columns item_id,label; has {list(answers.columns)}"
                )
        by_id = dict(zip(answers[ITEM_ID].astype(str), answers["label"].astype(str), strict=True))
        from_file = raw[config.id_column].astype(str).map(by_id)
        labels = labels.where(labels.notna(), from_file)
    return labels


def png_data_uri(image: np.ndarray, scale: int = 4) -> str:
    """An 8-bit grayscale PNG of ``image`` (dark ink on white), as a data URI an annotator's browser can show."""
    pixels = np.asarray(image, dtype=np.float64)
    span = float(pixels.max() - pixels.min()) or 1.0
    gray = (255 - (pixels - pixels.min()) * 255 / span).astype(np.uint8)
    gray = np.kron(gray, np.ones((scale, scale), dtype=np.uint8))
    height, width = gray.shape
    rows = b"".join(b"\x00" + gray[r].tobytes() for r in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    png = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(rows, 9))
        + chunk(b"IEND", b"")
    )
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")
