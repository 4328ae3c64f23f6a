"""Features kept per project: a featurizer fitted once, versioned, and applied unchanged to later items.

The fitted featurizer is stored under the project's workdir with a version number, and every later arrival is
transformed by that same version, so an item's vector never changes under the model that was trained on it (a
refit is a new version, on purpose). Each item's features are computed once: :func:`pool_features` keeps them
in the project's pool store (:mod:`labelflow.integrations.pool_store`), one partition per call that met new
items, keyed by item id and a hash of the item's content, and featurizes only items it has not seen.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import scipy.sparse as sp

from labelflow.contracts import ITEM_ID, PAYLOAD
from labelflow.integrations.pool_store import CONTENT_HASH, FeatureRows, PoolStore, text_hash
from labelflow.tasks.features.base import Featurizer
from labelflow.tasks.features.text import TextFeaturizer, dense_column_names

FEATURES_DIR = "features"


@dataclass(frozen=True)
class TextFeatures:
    """Every known item's features by one featurizer version: sparse rows and their dense view, in ``ids``
    order; ``computed`` says how many items this call featurized (the others were stored already)."""

    version: int
    ids: np.ndarray
    hashes: np.ndarray
    matrix: sp.csr_matrix
    dense: np.ndarray
    computed: int

    def rows(self, item_ids: Sequence[str]) -> sp.csr_matrix:
        """The sparse rows of ``item_ids``, in that order."""
        position = pd.Series(np.arange(len(self.ids)), index=self.ids)
        return self.matrix[position.loc[list(item_ids)].to_numpy()]

    @property
    def dense_columns(self) -> list[str]:
        return dense_column_names(self.dense.shape[1])

    def dense_frame(self) -> pd.DataFrame:
        """item_id and the dense view, one column each (:attr:`dense_columns`), to join onto the items."""
        frame = pd.DataFrame(self.dense, columns=self.dense_columns)
        frame.insert(0, ITEM_ID, self.ids)
        return frame


def featurizer_path(workdir: Path, version: int) -> Path:
    return workdir / FEATURES_DIR / f"text-featurizer-v{version:03d}.joblib"


def legacy_features_path(workdir: Path, version: int) -> Path:
    """Where features were kept before the pool store: one file per version, rewritten whole."""
    return workdir / FEATURES_DIR / f"text-features-v{version:03d}.joblib"


def latest_version(workdir: Path) -> int | None:
    """The highest stored featurizer version, or None before the first fit."""
    found = sorted((workdir / FEATURES_DIR).glob("text-featurizer-v*.joblib"))
    return int(found[-1].stem.rsplit("-v", 1)[1]) if found else None


def load_featurizer(workdir: Path, version: int) -> Featurizer:
    featurizer: Featurizer = joblib.load(featurizer_path(workdir, version))
    if not all(hasattr(featurizer, name) for name in ("version", "transform", "dense_view")):
        raise TypeError(f"{featurizer_path(workdir, version)} does not hold a labelflow featurizer")
    return featurizer


def text_featurizer(version: int) -> Featurizer:
    """The text kind's default featurizer, unfitted."""
    return TextFeaturizer(version=version)


def fit_featurizer(
    contents: Sequence[str], workdir: Path, new_featurizer: Callable[[int], Featurizer] = text_featurizer
) -> Featurizer:
    """Fit a new featurizer version, made by ``new_featurizer(version)``, on ``contents`` and store it (a refit
    on purpose makes the next version)."""
    version = (latest_version(workdir) or 0) + 1
    featurizer = new_featurizer(version).fit(contents)
    path = featurizer_path(workdir, version)
    path.parent.mkdir(parents=True, exist_ok=True)
    joblib.dump(featurizer, path)
    return featurizer


def pool_features(
    items: pd.DataFrame,
    workdir: Path,
    *,
    fit_on: np.ndarray | None = None,
    new_featurizer: Callable[[int], Featurizer] = text_featurizer,
) -> TextFeatures:
    """The features of ``items`` (item_id, payload = the content, and optionally its ``content_hash``) by the
    project's featurizer.

    The first call fits the featurizer on the items where ``fit_on`` (a boolean mask; all items without it) is
    true, the pool: held-out texts shape no vocabulary. Later calls load the stored version, reuse every stored
    row whose item and content hash match, and featurize only the rest, stored as a new partition of the pool
    store (nothing stored is rewritten)."""
    texts = items[PAYLOAD].astype(str).to_numpy(dtype=object)
    ids = items[ITEM_ID].astype(str).to_numpy(dtype=object)
    hashes = (
        items[CONTENT_HASH].to_numpy(dtype=np.uint64)
        if CONTENT_HASH in items.columns
        else np.fromiter((text_hash(text) for text in texts), np.uint64, len(texts))
    )
    version = latest_version(workdir)
    featurizer = (
        fit_featurizer(list(texts if fit_on is None else texts[fit_on]), workdir, new_featurizer)
        if version is None
        else load_featurizer(workdir, version)
    )
    store = PoolStore(workdir)
    _migrate_legacy_features(workdir, store, featurizer.version)
    parts = store.feature_parts(featurizer.version)
    wanted = _keys(ids, hashes)
    new = np.flatnonzero(_keys_of(parts).get_indexer(wanted) < 0) if parts else np.arange(len(ids))
    if len(new):
        matrix = featurizer.transform(list(texts[new]))
        part = FeatureRows(ids[new], hashes[new], matrix, featurizer.dense_view(matrix))
        store.add_features(featurizer.version, part)
        parts.append(part)
    lookup = _keys_of(parts).get_indexer(wanted)
    all_matrix = (
        sp.vstack([sp.csr_matrix(p.matrix) for p in parts], format="csr")
        if len(parts) != 1
        else sp.csr_matrix(parts[0].matrix)
    )
    dense = np.vstack([p.dense for p in parts]) if len(parts) != 1 else parts[0].dense
    return TextFeatures(featurizer.version, ids, hashes, all_matrix[lookup], dense[lookup], computed=len(new))


def _keys(ids: np.ndarray, hashes: np.ndarray) -> pd.Index:
    return pd.Index(pd.Series(ids, dtype=object) + "\0" + pd.Series(hashes, dtype=np.uint64).astype(str))


def _keys_of(parts: list[FeatureRows]) -> pd.Index:
    return _keys(np.concatenate([p.ids for p in parts]), np.concatenate([p.hashes for p in parts]))


def _migrate_legacy_features(workdir: Path, store: PoolStore, version: int) -> None:
    """A project made before the pool store kept each version's features in one file: it becomes the first
    partition of that version (its hashes were the same SHA-256 prefix, in hexadecimal), then goes."""
    path = legacy_features_path(workdir, version)
    if not path.exists():
        return
    if not store.feature_parts(version):
        saved = joblib.load(path)
        hashes = np.fromiter((int(h, 16) for h in saved["hashes"]), np.uint64, len(saved["hashes"]))
        store.add_features(version, FeatureRows(saved["ids"], hashes, saved["matrix"], saved["dense"]))
    path.unlink()
