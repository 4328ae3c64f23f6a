"""Dataset sources: the bundled digits demo and a user's CSV, Parquet or JSON Lines file, of a table or of text.

Every source yields the same :class:`Dataset`: items with their set (pool / gold / held-out), feature columns, a
human-viewable ``payload``, the label names, the known labels of gold and held-out items, and — where the data
has labels for pool items too — the hidden truth that only the simulated crowd and the round report may see.

A ``text`` dataset has no feature columns of its own: its ``payload`` is the text, and the project's featurizer
(:mod:`labelflow.tasks.features`) turns it into features. Ids are read as text by every reader (``007`` stays
``007``).
"""

from __future__ import annotations

import base64
import io
import struct
import zlib
from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import BinaryIO, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image, UnidentifiedImageError
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sklearn.model_selection import train_test_split

from labelflow.contracts import ITEM_ID, PAYLOAD, ItemSet
from labelflow.integrations.answers_file import AnswersFileError, read_gold

DIGITS = "digits"
DatasetKind = Literal["table", "text", "image"]
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp", ".tif", ".tiff")


class DatasetError(ValueError):
    """The dataset cannot be used; the message names the file, row or column and what to do."""


class DatasetConfig(BaseModel):
    """Where the items come from, and how gold and held-out items are chosen among the labeled ones."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    source: str = Field(
        DIGITS,
        description='"digits" (the bundled demo), the path of a .csv, .parquet or .jsonl file, or a folder of '
        "images (optionally one sub-folder per label).",
    )
    kind: DatasetKind | None = Field(
        None,
        description='"table" (numeric feature columns), "text" (one text column) or "image" (one column of '
        "image paths or URLs, or a folder of images), the last two featurized by the project; None infers it: "
        "image for a folder or a column whose every value names an image file, text when the file has one "
        "text column besides the id and label and no numeric one.",
    )
    text_column: str | None = Field(
        None, description="The column holding each item's text (text datasets; inferred when there is one)."
    )
    image_column: str | None = Field(
        None,
        description="The column holding each item's image: a path relative to the data file's folder, an "
        "absolute path, or an http(s) URL (image datasets; inferred when there is one).",
    )
    id_column: str = Field("item_id", description="Column holding each item's unique id.")
    feature_columns: tuple[str, ...] = Field(
        (), description="Numeric feature columns; empty means every numeric column but the id and the label."
    )
    label_column: str | None = Field(
        "label",
        description="Column with known labels (may be empty for unlabeled rows); None if there is none.",
    )
    payload_column: str | None = Field(
        None,
        description="Column with what a human annotator sees (tables); for text, an alias of text_column.",
    )
    answers_file: str | None = Field(
        None, description="Optional CSV/Parquet with columns item_id,label giving known labels separately."
    )
    held_out_source: str | None = Field(
        None,
        description="A separate labeled file (same columns as the source) used only as the held-out set, never "
        "sent to anyone; with it, no held-out items are taken from the source.",
    )
    gold_source: str | None = Field(
        None,
        description="A file item_id,label (or question,truth) naming the gold items of the source and their "
        "labels; with it, no gold items are drawn.",
    )
    n_gold: int = Field(30, ge=0, description="How many labeled items become gold questions.")
    n_held_out: int | None = Field(
        None,
        ge=1,
        description="How many labeled items make the held-out set; unset, held_out_fraction of the labeled "
        "rows. Data with too few labels for n_gold and n_held_out starts cold: the project's owner labels "
        "that many items in Label Studio first (`labelflow bootstrap`).",
    )
    held_out_fraction: float = Field(
        0.2,
        gt=0,
        lt=1,
        description="Share of the LABELED rows (those with a known label, given gold items aside) kept as the "
        "held-out set; unlabeled rows do not count. Ignored when n_held_out is set.",
    )
    seed: int = Field(0, description="Seed of the gold / held-out split (and of a cold start's sample).")

    @model_validator(mode="after")
    def _one_text_column(self) -> DatasetConfig:
        if self.kind in ("text", "image") and self.feature_columns:
            raise ValueError(
                f"dataset.feature_columns is for tables; a {self.kind} dataset is featurized from its "
                f"{self.kind}_column"
            )
        if self.text_column and self.image_column:
            raise ValueError("dataset.text_column and image_column: an item is a text or an image; set one")
        if self.image_column and self.payload_column not in (None, self.image_column):
            raise ValueError(
                f"dataset.payload_column = {self.payload_column!r} and image_column = {self.image_column!r}: "
                "for images, payload_column is an old name of image_column; set image_column only"
            )
        if self.kind != "table" and self.text_column and self.payload_column not in (None, self.text_column):
            raise ValueError(
                f"dataset.payload_column = {self.payload_column!r} and text_column = {self.text_column!r}: for "
                "text, payload_column is an old name of text_column; set text_column only"
            )
        return self


@dataclass(frozen=True)
class Dataset:
    items: pd.DataFrame  # item_id, item_set, the feature columns, payload
    feature_columns: list[str]
    label_names: list[str]
    known_labels: pd.Series  # item_id -> label, gold and held-out items only
    hidden_truth: pd.Series  # item_id -> label for every item whose label the data knows, pool included
    kind: DatasetKind = "table"  # a text dataset's features come from its payload, through the featurizer
    # (pool-store partition, rows) in the items' order, when read from the project's pool store
    parts: tuple[tuple[str, int], ...] = ()

    def frame(self, item_set: ItemSet) -> pd.DataFrame:
        return self.items.iloc[self._rows(item_set)].reset_index(drop=True)

    def positions(self, item_set: ItemSet) -> pd.DataFrame:
        """``item_id`` and ``row`` (the position in :attr:`items` and :meth:`feature_matrix`) of the items of
        ``item_set``: a frame to filter and hand on in place of :meth:`frame`'s copy of their features (for a
        2M x 64 float32 pool, 32 MB instead of 512 MB)."""
        rows = self._rows(item_set)
        ids = pd.Series(
            self.items[ITEM_ID].to_numpy()[rows], dtype=object
        )  # the items' own strings, not copies
        return pd.DataFrame({ITEM_ID: ids, "row": rows})

    def _rows(self, item_set: ItemSet) -> np.ndarray:
        return self._rows_by_set.get(item_set.value, np.empty(0, dtype=np.intp))

    @cached_property
    def _rows_by_set(self) -> dict[str, np.ndarray]:
        """Each item set's rows, by position, found once: a round asks for its gold, held-out and pool items a
        dozen times, and comparing 2M item_set texts took ~0.2 s each time."""
        codes, names = pd.factorize(self.items["item_set"])
        return {str(name): np.flatnonzero(codes == code) for code, name in enumerate(names)}

    def feature_matrix(self) -> np.ndarray:
        """Every item's feature columns as one (read-only) array, rows in the items' order: the frame's own
        block when the columns are one (a pool read from the pool store), a copy only when they are not."""
        values = self.items[self.feature_columns].to_numpy()
        return values if np.issubdtype(values.dtype, np.floating) else values.astype(np.float64)


@dataclass(frozen=True)
class LoadedSource:
    """Items as the files give them, before the known labels are set apart: item_id, item_set, the feature
    columns, payload and ``_label`` (the label the data knows, if any), with what describes them."""

    items: pd.DataFrame
    feature_columns: list[str]
    label_names: list[str]
    kind: DatasetKind


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
    source = load_source(config, label_names, base_dir or Path.cwd())
    if not arrivals:
        return assemble_dataset(source)
    typed = config.model_copy(update={"kind": source.kind})
    base = base_dir or Path.cwd()
    frames = [
        arrival_items(typed, name, content, source.feature_columns, image_dir=base)
        for name, content in arrivals
    ]
    items = pd.concat([source.items, *(f[source.items.columns] for f in frames)], ignore_index=True)
    return assemble_dataset(LoadedSource(items, source.feature_columns, source.label_names, source.kind))


def load_source(config: DatasetConfig, label_names: list[str], base: Path) -> LoadedSource:
    """The configured source (and held-out source) split into pool, gold and held-out items, each row with the
    label the data knows in ``_label``."""
    if config.source == DIGITS:
        frame, features = _digits_frame()
        kind: DatasetKind = "table"
    else:
        path = (base / config.source).resolve()
        if path.is_dir() and config.kind not in (None, "image"):
            raise DatasetError(
                f"{path} is a folder, which holds images, but dataset.kind = {config.kind!r}; set kind = "
                '"image" (or leave it out), or set dataset.source to a file'
            )
        raw = (
            image_folder_table(path, config)
            if path.is_dir()
            else read_table(path, text_columns=(config.id_column,))
        )
        if (
            config.label_column is not None
            and config.label_column not in raw.columns
            and not (config.answers_file or config.gold_source or config.held_out_source)
            and config.n_held_out is None  # sized for a cold start: data without labels is expected
        ):
            raise DatasetError(
                f"no column {config.label_column!r} in {path} (columns: {', '.join(map(str, raw.columns))}); "
                "set dataset.label_column to the column holding the known labels, or, for data without "
                "labels, set dataset.n_held_out and start cold (`labelflow bootstrap`)"
            )
        kind = "image" if path.is_dir() else dataset_kind(config, raw)
        config = config.model_copy(update={"kind": kind})
        folder = path if path.is_dir() else path.parent
        frame, features = _file_frame(config, raw, str(path), folder, image_dir=folder)
    labels = frame.pop("_label")
    names = label_names or sorted(labels.dropna().unique().tolist())
    check_labels(labels, frame, names, config.source)
    gold = _gold_labels(config, base, frame, names)
    item_set = _split(labels, frame[ITEM_ID], config, gold)
    frame["_label"] = labels.where(~frame[ITEM_ID].isin(gold.index), frame[ITEM_ID].map(gold))
    frame.insert(1, "item_set", item_set)
    if config.held_out_source:
        held_out = _held_out_frame(config, base, features, names)
        frame = pd.concat([frame, held_out[frame.columns]], ignore_index=True)
    return LoadedSource(frame, features, names, kind)


def arrival_items(
    config: DatasetConfig, name: str, content: bytes, features: list[str], *, image_dir: Path | None = None
) -> pd.DataFrame:
    """An inbox file's rows as pool items (item_id, item_set, features, payload, _label); a label they carry is
    hidden truth only. Relative image paths are relative to ``image_dir`` (the project folder)."""
    raw = read_table(content, name, text_columns=(config.id_column,))
    arrived = items_from_table(raw, config, name, features, image_dir=image_dir)
    arrived.insert(1, "item_set", ItemSet.POOL.value)
    return arrived


def assemble_dataset(source: LoadedSource) -> Dataset:
    """The :class:`Dataset` of ``source``'s items: ``_label`` becomes the known labels (gold and held-out
    items) and the hidden truth (every labeled item); the items keep item_id, item_set, features, payload."""
    items = source.items
    labels = items["_label"].to_numpy()
    ids = items[ITEM_ID].to_numpy()
    known_mask = (items["item_set"] != ItemSet.POOL.value).to_numpy()
    known = pd.Series(labels[known_mask], index=ids[known_mask], name="label", dtype=object)
    truth = pd.Series(labels, index=ids, name="label", dtype=object).dropna()
    columns = [ITEM_ID, "item_set", *source.feature_columns, PAYLOAD]
    return Dataset(items[columns], source.feature_columns, source.label_names, known, truth, source.kind)


def dataset_kind(config: DatasetConfig, raw: pd.DataFrame) -> DatasetKind:
    """The configured kind, or the obvious one: image when an image column is named, text when a text column
    is named; else, for a file with no numeric column and exactly one other column besides the id and the label,
    image when that column names an image file in every row, text otherwise."""
    if config.kind is not None:
        return config.kind
    if config.image_column is not None:
        return "image"
    if config.text_column is not None or config.feature_columns:
        return "text" if config.text_column is not None else "table"
    others = [c for c in raw.columns if c not in {config.id_column, config.label_column}]
    numeric = [c for c in others if pd.api.types.is_numeric_dtype(raw[c])]
    texts = [c for c in others if not pd.api.types.is_numeric_dtype(raw[c])]
    if numeric or len(texts) != 1:
        return "table"  # numeric features (a column of image links beside them is what a worker sees)
    return "image" if names_images(raw[texts[0]]) else "text"


def names_images(column: pd.Series) -> bool:
    """Whether every value of ``column`` is a file name (or URL) with an image suffix."""
    values = column.dropna().astype(str).str.lower().str.split("?").str[0]
    return bool(len(values)) and bool(values.str.endswith(IMAGE_SUFFIXES).all())


def _content_column(config: DatasetConfig, raw: pd.DataFrame, path: str, kind: str) -> str:
    """The column holding a text or image item's content: the one named, or the only non-numeric one."""
    setting = f"{kind}_column"
    named = getattr(config, setting) or config.payload_column
    if named is None:
        texts = [
            c
            for c in raw.columns
            if c not in {config.id_column, config.label_column} and not pd.api.types.is_numeric_dtype(raw[c])
        ]
        if len(texts) != 1:
            raise DatasetError(
                f"{path}: cannot tell which column holds the {kind} among {texts}; set dataset.{setting}"
            )
        named = texts[0]
    if named not in raw.columns:
        raise DatasetError(
            f"{path}: no {kind} column {named!r}; columns are {list(raw.columns)}; set dataset.{setting}"
        )
    return named


def image_folder_table(folder: Path, config: DatasetConfig) -> pd.DataFrame:
    """A folder of images as a table: id (the path inside the folder, without its suffix), the image's path
    and, for images in a sub-folder, the sub-folder's name as their label."""
    files = sorted(
        p
        for p in folder.rglob("*")
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and len(p.relative_to(folder).parts) <= 2
    )
    if not files:
        raise DatasetError(
            f"{folder}: no images ({', '.join(IMAGE_SUFFIXES)}) in the folder or its sub-folders; set "
            "dataset.source to a folder of images (one sub-folder per label for labeled ones) or to a file"
        )
    relative = [p.relative_to(folder) for p in files]
    label_column = config.label_column or "label"
    return pd.DataFrame(
        {
            config.id_column: [r.with_suffix("").as_posix() for r in relative],
            "image": [r.as_posix() for r in relative],
            label_column: [r.parts[0] if len(r.parts) == 2 else None for r in relative],
        }
    )


def _gold_labels(config: DatasetConfig, base: Path, frame: pd.DataFrame, names: list[str]) -> pd.Series:
    """The gold items named by ``gold_source`` and their labels (empty without one)."""
    if not config.gold_source:
        return pd.Series(dtype=object)
    path = (base / config.gold_source).resolve()
    try:
        gold = read_gold(path)
    except AnswersFileError as error:
        raise DatasetError(str(error)) from None
    unknown = sorted(set(gold.index) - set(frame[ITEM_ID]))
    if unknown:
        raise DatasetError(
            f"{path}: {len(unknown)} gold item(s) not in {config.source}, e.g. {unknown[:5]}; gold items must "
            "be items of the source"
        )
    outside = gold[~gold.isin(names)]
    if len(outside):
        raise DatasetError(
            f"{path}: item {outside.index[0]!r} has gold label {outside.iloc[0]!r}, which is not among the "
            f"configured label names {names}"
        )
    return gold


def _held_out_frame(config: DatasetConfig, base: Path, features: list[str], names: list[str]) -> pd.DataFrame:
    """The ``held_out_source`` file's rows as held-out items, each with its (required) known label in
    ``_label``."""
    assert config.held_out_source is not None
    path = (base / config.held_out_source).resolve()
    raw = read_table(path, text_columns=(config.id_column,))
    frame = items_from_table(raw, config, str(path), features)
    labels = frame["_label"]
    missing = labels.isna().to_numpy()
    if missing.any():
        row = int(np.flatnonzero(missing)[0])
        raise DatasetError(
            f"{path}: row {row} (item {frame[ITEM_ID].iloc[row]!r}) has no {config.label_column!r}; every "
            "held-out item needs its label"
        )
    check_labels(labels, frame, names, str(path))
    frame.insert(1, "item_set", ItemSet.HELD_OUT.value)
    return frame


def items_from_table(
    raw: pd.DataFrame,
    config: DatasetConfig,
    name: str,
    features: list[str],
    *,
    image_dir: Path | None = None,
) -> pd.DataFrame:
    """A new file's rows as items with the dataset's own feature columns (item_id, features, payload, _label);
    a text or image file's rows as item_id, payload (the text, or the image's absolute path or URL), _label
    (its features are the featurizer's business). Relative image paths are relative to ``image_dir``."""
    kind = dataset_kind(config, raw)
    update = {"kind": kind} if kind != "table" else {"kind": kind, "feature_columns": tuple(features)}
    frame, _ = _file_frame(config.model_copy(update=update), raw, name, None, image_dir=image_dir)
    return frame


def check_labels(labels: pd.Series, frame: pd.DataFrame, names: list[str], source: str) -> None:
    """Refuse a file whose known labels are not all among ``names``, naming the row, the item and the label."""
    unknown = labels.notna() & ~labels.isin(names)
    if unknown.any():
        row = int(np.flatnonzero(unknown.to_numpy())[0])
        raise DatasetError(
            f"{source}: row {row} (item {frame[ITEM_ID].iloc[row]!r}) has label {labels.iloc[row]!r}, "
            f"which is not among the configured label names {names}; add it to `labels` or fix the row"
        )


def _held_out_size(config: DatasetConfig, n_labeled: int) -> int:
    """How many held-out items to draw: none beside a ``held_out_source``, else ``n_held_out``, else the share of
    the labeled rows (a share of all rows would ask for more than are labeled when most of the pool is not)."""
    if config.held_out_source:
        return 0
    return config.n_held_out if config.n_held_out is not None else round(config.held_out_fraction * n_labeled)


def _split(labels: pd.Series, ids: pd.Series, config: DatasetConfig, gold_labels: pd.Series) -> pd.Series:
    """Held-out first (stratified), then gold (stratified) from the labeled rows; the rest is the pool.

    A ``held_out_source`` replaces the held-out draw and a ``gold_source`` (``gold_labels``) the gold draw. With
    too few labeled rows for both draws, neither is made: the project starts cold (:func:`cold_start_of`)."""
    item_set = pd.Series(ItemSet.POOL.value, index=labels.index, dtype=object)
    given_gold = ids.isin(gold_labels.index).to_numpy()
    item_set[given_gold] = ItemSet.GOLD.value
    labeled = labels[~given_gold].dropna()
    n_held_out = _held_out_size(config, len(labeled))
    n_gold = 0 if config.gold_source else config.n_gold
    if len(labeled) < n_held_out + n_gold:
        return item_set
    rest, held_out = _stratified(labeled, n_held_out, config.seed)
    _, gold = _stratified(rest, n_gold, config.seed + 1)
    item_set[held_out.index] = ItemSet.HELD_OUT.value
    item_set[gold.index] = ItemSet.GOLD.value
    return item_set


@dataclass(frozen=True)
class ColdStart:
    """The gold and held-out items a project's owner labels before its first round, because the data's own
    labels are too few (``n_labeled`` rows) to draw them from."""

    gold: int
    held_out: int
    n_labeled: int

    @property
    def size(self) -> int:
        return self.gold + self.held_out


def cold_start_of(config: DatasetConfig, dataset: Dataset) -> ColdStart | None:
    """What ``dataset`` (as its sources split it) lacks for its gold and held-out sets, or None when its own
    labels gave them. A cold start needs ``n_held_out``: a share of labeled rows means nothing without any."""
    sets = dataset.items["item_set"].value_counts()
    gold_needed = 0 if config.gold_source else config.n_gold
    short_of_gold = gold_needed > 0 and int(sets.get(ItemSet.GOLD.value, 0)) == 0
    short_of_held_out = not config.held_out_source and int(sets.get(ItemSet.HELD_OUT.value, 0)) == 0
    if not (short_of_gold or short_of_held_out):
        return None
    n_labeled = len(dataset.hidden_truth)
    if not config.held_out_source and config.n_held_out is None:
        raise DatasetError(
            f"{config.source}: {n_labeled} labeled row(s), too few for {gold_needed} gold items and a held-out "
            "set. Set dataset.n_held_out (an absolute count, e.g. 100; held_out_fraction is a share of the "
            "labeled rows) and the project's owner labels the gold and held-out items in Label Studio first "
            "(`labelflow bootstrap`); or label more rows, lower dataset.n_gold, or give dataset.gold_source / "
            "held_out_source"
        )
    return ColdStart(gold_needed, 0 if config.held_out_source else config.n_held_out or 0, n_labeled)


def with_owner_labels(dataset: Dataset, sample: pd.DataFrame) -> Dataset:
    """``dataset`` with a cold start's ``sample`` (item_id, item_set, known_label) taken out of the pool into the
    gold and held-out sets; the owner's labels given so far become the known labels (and the truth) of their
    items, and an item not labeled yet has none."""
    sample = sample[sample[ITEM_ID].isin(dataset.items[ITEM_ID])]
    sets = dict(zip(sample[ITEM_ID], sample["item_set"], strict=True))
    items = dataset.items.assign(item_set=dataset.items[ITEM_ID].map(sets).fillna(dataset.items["item_set"]))
    labeled = sample.dropna(subset=["known_label"])
    owner = pd.Series(labeled["known_label"].to_numpy(), index=labeled[ITEM_ID].to_numpy(), dtype=object)
    known = pd.concat([dataset.known_labels.drop(owner.index, errors="ignore"), owner]).rename("label")
    truth = pd.concat([dataset.hidden_truth.drop(owner.index, errors="ignore"), owner]).rename("label")
    return replace(dataset, items=items, known_labels=known, hidden_truth=truth)


def _stratified(labels: pd.Series, n: int, seed: int) -> tuple[pd.Series, pd.Series]:
    if n == 0:
        return labels, labels.iloc[:0]
    if n >= len(labels):  # every labeled row is needed (train_test_split refuses to take them all)
        return labels.iloc[:0], labels
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


def read_table(
    source: Path | bytes | BinaryIO, name: str | None = None, *, text_columns: Collection[str] = (ITEM_ID,)
) -> pd.DataFrame:
    """A CSV, Parquet or JSON Lines table from a path, a file's bytes or an open (seekable) file (``name`` gives
    the file type for the last two).

    ``text_columns`` (the id column) are read as text in every format: ``007`` stays ``007``, not 7."""
    label = str(source) if isinstance(source, Path) else (name or "<bytes>")
    suffix = Path(label).suffix.lower()
    if isinstance(source, Path) and not source.exists():
        raise DatasetError(
            f"{source}: no such file; set dataset.source to a .csv, .parquet or .jsonl file or to 'digits'"
        )
    data: Path | BinaryIO = io.BytesIO(source) if isinstance(source, bytes) else source
    as_text = dict.fromkeys(text_columns, "string")
    try:
        if suffix == ".csv":
            return _ids_as_text(
                _check_delimiter(pd.read_csv(data, dtype=as_text, dtype_backend="numpy_nullable"), label),
                text_columns,
            )
        if suffix == ".jsonl":
            return _ids_as_text(pd.read_json(data, lines=True, dtype=as_text), text_columns)
        if suffix in {".parquet", ".pq"}:
            return _ids_as_text(_parquet_frame(data), text_columns)
    except (ValueError, OSError, UnicodeDecodeError, pa.ArrowException) as error:
        raise DatasetError(f"{label}: cannot be read as {suffix[1:]}: {error}") from None
    raise DatasetError(f"{label}: unsupported file type {suffix!r}; use .csv, .parquet or .jsonl")


def _ids_as_text(frame: pd.DataFrame, text_columns: Collection[str]) -> pd.DataFrame:
    """The ``text_columns`` as strings (a Parquet or JSON integer id becomes its digits; missing stays missing)."""
    for column in text_columns:
        if column in frame.columns:
            frame[column] = frame[column].astype("string").astype(object).where(frame[column].notna(), None)
    return frame


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
    source: Path | BinaryIO,
    columns: Sequence[str],
    *,
    values_per_read: int = 2_000_000,
    out: np.ndarray | None = None,
    row_groups: Sequence[int] | None = None,
) -> np.ndarray:
    """A Parquet file's ``columns`` as one (rows, columns) array in their own float dtype (float32 stays float32).

    Read a row group and at most ``values_per_read`` values at a time (those columns decoded in parallel), so
    that the Arrow data in flight stays ~10 MB, whatever row groups the writer chose: reading whole row groups
    of 100k x 64 held ~150 MB besides the array. The array is Fortran-ordered: each column is then one
    contiguous write, where filling a row-major array writes every value to its own cache line (1M x 64
    float32: 1.8 s instead of 0.2 s). Rows are still sliced as rows; scikit-learn and BLAS take either layout.

    ``out``: fill this (rows, columns) array instead, e.g. a slice of one array that several files fill.
    ``row_groups``: read only these row groups, in this order (a piece of a file too large to read at once)."""
    file = pq.ParquetFile(source)
    types = [file.schema_arrow.field(name).type.to_pandas_dtype() for name in columns]
    dtype = (
        np.result_type(*types) if types and all(np.issubdtype(t, np.floating) for t in types) else np.float64
    )
    groups = range(file.num_row_groups) if row_groups is None else row_groups
    sizes = [file.metadata.row_group(group).num_rows for group in groups]
    features = np.empty((sum(sizes), len(columns)), dtype=dtype, order="F") if out is None else out
    start = 0
    for group, size in zip(groups, sizes, strict=True):
        stop = start + size
        width = max(1, values_per_read // max(stop - start, 1))
        for first in range(0, len(columns), width):
            table = file.read_row_group(group, columns=list(columns[first : first + width]))
            for c, column in enumerate(table.columns, start=first):
                features[start:stop, c] = column.to_numpy()
        start = stop
    return features


def _parquet_frame(source: Path | BinaryIO) -> pd.DataFrame:
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


def _id_texts(ids: pd.Series) -> pd.Series:
    """The ids as Python strings; a column of strings already (as :func:`read_table` gives it) is kept as it
    is, not copied string by string (2M ids: ~130 MB)."""
    if ids.dtype == object and pd.api.types.infer_dtype(ids, skipna=False) == "string":
        return ids
    return ids.astype("string").astype(object)


def _file_frame(
    config: DatasetConfig,
    raw: pd.DataFrame,
    path: str,
    answers_dir: Path | None,
    *,
    image_dir: Path | None = None,
) -> tuple[pd.DataFrame, list[str]]:
    if config.id_column not in raw.columns:
        raise DatasetError(f"{path}: no id column {config.id_column!r}; columns are {list(raw.columns)}")
    if config.kind in ("text", "image"):
        return _content_frame(config, raw, path, answers_dir, image_dir), []
    reserved = {config.id_column, config.label_column, config.payload_column}
    features = list(config.feature_columns) or [
        c for c in raw.columns if c not in reserved and pd.api.types.is_numeric_dtype(raw[c])
    ]
    missing = [c for c in features if c not in raw.columns]
    if missing:
        raise DatasetError(f"{path}: feature column(s) {missing} not found; columns are {list(raw.columns)}")
    if not features:
        raise DatasetError(f"{path}: no numeric feature columns; list them in dataset.feature_columns")
    columns: dict[str, object] = {ITEM_ID: _id_texts(raw[config.id_column])}
    for column in features:
        values = raw[column]
        if values.dtype not in (np.float32, np.float64):
            values = pd.to_numeric(values, errors="coerce")
            bad = values.isna() & raw[column].notna()
            if bad.any():
                row = int(np.flatnonzero(bad.to_numpy())[0])
                raise DatasetError(
                    f"{path}: row {row}, column {column!r}: {raw[column].iloc[row]!r} is not a number"
                )
        # a float32 pool stays float32: half the memory, and selection scores it in its own dtype
        dtype = np.float32 if values.dtype in (np.float32, pd.Float32Dtype()) else np.float64
        # a column read as numpy floats is kept, not copied (2M x 64 float32: 512 MB while the file's frame is
        # still held)
        columns[column] = (
            values.to_numpy() if values.dtype == dtype else values.to_numpy(dtype=dtype, na_value=np.nan)
        )
    frame = pd.DataFrame(columns, copy=False)
    frame[PAYLOAD] = raw[config.payload_column].astype(str) if config.payload_column else None
    frame["_label"] = _known_labels(raw, config, answers_dir)
    return frame, features


def _content_frame(
    config: DatasetConfig, raw: pd.DataFrame, path: str, answers_dir: Path | None, image_dir: Path | None
) -> pd.DataFrame:
    """A text or image file's rows as item_id, payload (the text, or the image's absolute path or URL)."""
    kind = config.kind or "text"
    column = _content_column(config, raw, path, kind)
    texts = raw[column].astype("string")
    empty = (texts.isna() | (texts.str.strip() == "")).to_numpy(dtype=bool)
    if empty.all() and len(texts):
        raise DatasetError(f"{path}: {kind} column {column!r} is empty in every row; is it the right column?")
    if empty.any():
        row = int(np.flatnonzero(empty)[0])
        raise DatasetError(
            f"{path}: row {row} (item {raw[config.id_column].iloc[row]!r}), column {column!r}: the {kind} is "
            f"empty ({int(empty.sum())} row(s) are); give every item its {kind} or drop the row"
        )
    frame = pd.DataFrame({ITEM_ID: _id_texts(raw[config.id_column])})
    contents = texts.astype(object)
    if kind == "image":
        contents = pd.Series(
            image_locations(contents.tolist(), raw[config.id_column].tolist(), column, path, image_dir),
            index=raw.index,
            dtype=object,
        )
    frame[PAYLOAD] = contents
    frame["_label"] = _known_labels(raw, config, answers_dir)
    return frame


def _known_labels(raw: pd.DataFrame, config: DatasetConfig, answers_dir: Path | None) -> pd.Series:
    labels = pd.Series(None, index=raw.index, dtype=object)
    if config.label_column is not None and config.label_column in raw.columns:
        # one string per distinct label, shared by its rows: a string per row is ~100 MB for 2M rows
        codes, distinct = pd.factorize(raw[config.label_column])
        names = np.array([*pd.Index(distinct).astype(str), None], dtype=object)  # code -1 (missing): None
        labels = pd.Series(names[codes], index=raw.index, dtype=object)
    if config.answers_file and answers_dir is not None:
        answers = read_table((answers_dir / config.answers_file).resolve(), text_columns=(ITEM_ID, "label"))
        for column in (ITEM_ID, "label"):
            if column not in answers.columns:
                raise DatasetError(
                    f"{config.answers_file}: needs columns item_id,label; has {list(answers.columns)}"
                )
        by_id = dict(zip(answers[ITEM_ID].astype(str), answers["label"].astype(str), strict=True))
        from_file = raw[config.id_column].astype(str).map(by_id)
        labels = labels.where(labels.notna(), from_file)
    return labels


def image_locations(
    values: Sequence[str], ids: Sequence[object], column: str, path: str, image_dir: Path | None
) -> list[str]:
    """Each image's absolute path (relative ones resolved against ``image_dir``) or its http(s) URL, checked:
    a local file must exist and open as an image; an error names the file, row, item and column."""
    located = []
    for row, (value, item) in enumerate(zip(values, ids, strict=True)):
        where = f"{path}: row {row} (item {item!r}), column {column!r}"
        if value.startswith(("http://", "https://")):
            located.append(value)
            continue
        if "://" in value or value.startswith("data:"):
            raise DatasetError(f"{where}: {value[:60]!r} is neither a file path nor an http(s) URL")
        image = Path(value)
        if not image.is_absolute():
            if image_dir is None:
                raise DatasetError(
                    f"{where}: {value!r} is a relative path; give absolute paths or URLs in this file"
                )
            image = image_dir / image
        image = image.resolve()
        if not image.is_file():
            raise DatasetError(
                f"{where}: {image} does not exist (relative paths are relative to {image_dir})"
            )
        try:
            Image.open(image).close()  # reads the header only: is it an image at all
        except (UnidentifiedImageError, OSError) as error:
            raise DatasetError(f"{where}: {image} is not an image Pillow can read ({error})") from None
        located.append(str(image))
    return located


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
