"""The pool store's item partitions read piece by piece, where they lie: this machine's disk or S3.

A *piece* is a few row groups of one item partition (:mod:`labelflow.integrations.pool_store`): the unit a Dask
worker reads and scores, small enough that a worker holds one at a time whatever the size of the partition (the
pool store writes row groups of 64,000 rows, 16 MB of float32 x 64, so a piece is four). The folder is the project's
``workdir/pool/items`` or a copy of it at ``s3://bucket/prefix``, read with pyarrow's own filesystems (S3
credentials from the usual AWS chain: environment, config files, instance role).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from labelflow.contracts import ITEM_ID, ItemSet
from labelflow.integrations.datasets import read_features
from labelflow.integrations.pool_store import POOL_DIR, partition_description

PIECE_ROWS = 256_000


class PoolLocationError(FileNotFoundError):
    """The pool's item partitions cannot be listed or read where the config says they are."""


@dataclass(frozen=True)
class PoolPiece:
    """Row groups of one item partition (``location``: a local path or an ``s3://`` URL)."""

    location: str
    row_groups: tuple[int, ...]
    rows: int
    s3_endpoint_url: str | None = None


@dataclass(frozen=True)
class PoolRows:
    """A piece's selectable items (pool rows, less those excluded), in the file's order: their features, and
    their ids as Arrow keeps them (made Python strings only for the rows asked for, see :meth:`item_ids`)."""

    features: np.ndarray
    ids: pa.Array

    def item_ids(self, rows: np.ndarray) -> np.ndarray:
        """The ids of ``rows`` (positions in ``features``), as an object array of str."""
        return np.asarray(self.ids.take(pa.array(rows, pa.int64())).to_pylist(), dtype=object)


def items_folder(workdir: Path) -> str:
    """Where the pool store keeps a project's item partitions on this machine."""
    return str(workdir / POOL_DIR / "items")


def _filesystem(location: str, s3_endpoint_url: str | None) -> tuple[pafs.FileSystem, str]:
    """pyarrow's filesystem for ``location`` and the path within it."""
    if not location.startswith("s3://"):
        return pafs.LocalFileSystem(), str(Path(location).resolve())
    if s3_endpoint_url is None:
        filesystem, path = pafs.FileSystem.from_uri(location)
        return filesystem, str(path)
    endpoint = urlsplit(s3_endpoint_url)
    s3 = pafs.S3FileSystem(endpoint_override=endpoint.netloc, scheme=endpoint.scheme or "https")
    return s3, location.removeprefix("s3://")


def pool_pieces(
    location: str, *, s3_endpoint_url: str | None = None, piece_rows: int = PIECE_ROWS
) -> list[PoolPiece]:
    """Every item partition under ``location`` (a folder, or ``s3://bucket/prefix``) cut into pieces of whole
    row groups, about ``piece_rows`` rows each (a larger row group is a piece alone); in name order."""
    filesystem, folder = _filesystem(location, s3_endpoint_url)
    try:
        found = filesystem.get_file_info(pafs.FileSelector(folder, allow_not_found=False))
    except (OSError, FileNotFoundError) as error:
        raise PoolLocationError(
            f"cannot list the pool's item partitions at {location} ({error}); point selection.pool_url at the "
            "folder holding the pool store's items/*.parquet (by default the project's workdir/pool/items)"
        ) from None
    files = sorted(info.path for info in found if info.is_file and info.path.endswith(".parquet"))
    if not files:
        raise PoolLocationError(
            f"{location} holds no item partition (*.parquet); ingest or load the pool first"
        )
    prefix = "s3://" if location.startswith("s3://") else ""
    pieces: list[PoolPiece] = []
    for path in files:
        with filesystem.open_input_file(path) as handle:
            metadata = pq.ParquetFile(handle).metadata
        groups: list[int] = []
        rows = 0
        for group in range(metadata.num_row_groups):
            size = metadata.row_group(group).num_rows
            if groups and rows + size > piece_rows:
                pieces.append(PoolPiece(prefix + path, tuple(groups), rows, s3_endpoint_url))
                groups, rows = [], 0
            groups.append(group)
            rows += size
        if groups:
            pieces.append(PoolPiece(prefix + path, tuple(groups), rows, s3_endpoint_url))
    return pieces


def piece_feature_columns(piece: PoolPiece) -> list[str]:
    """The feature columns the pool store recorded in the piece's partition."""
    filesystem, path = _filesystem(piece.location, piece.s3_endpoint_url)
    with filesystem.open_input_file(path) as handle:
        return partition_description(pq.read_schema(handle))[1]


def read_pool_rows(
    piece: PoolPiece, feature_columns: Sequence[str], *, excluded: frozenset[str] = frozenset()
) -> PoolRows:
    """The piece's pool items but those in ``excluded``, features in their own float dtype (a float32 pool stays
    float32). The rows are filtered in Arrow: no Python string is made for the piece's ids."""
    filesystem, path = _filesystem(piece.location, piece.s3_endpoint_url)
    with filesystem.open_input_file(path) as handle:
        file = pq.ParquetFile(handle)
        table = file.read_row_groups(list(piece.row_groups), columns=[ITEM_ID, "item_set"])
        features = read_features(handle, feature_columns, row_groups=piece.row_groups)
    ids = table.column(ITEM_ID)
    wanted = pc.equal(table.column("item_set").cast(pa.string()), ItemSet.POOL.value)
    if excluded:
        left_out = pc.is_in(ids, value_set=pa.array(sorted(excluded), ids.type))
        wanted = pc.and_(wanted, pc.invert(left_out))
    mask = wanted.to_numpy(zero_copy_only=False)
    return PoolRows(features if mask.all() else features[mask], ids.filter(wanted).combine_chunks())
