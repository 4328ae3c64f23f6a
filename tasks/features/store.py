"""Features kept per project: a featurizer fitted once, versioned, and applied unchanged to later items.

The fitted featurizer is stored under the project's workdir with a version number, and every later arrival is
transformed by that same version, so an item's vector never changes under the model that was trained on it (a
refit is a new version, on purpose). Each item's features are computed once: :func:`pool_features` keeps them,
keyed by item id and a hash of the item's text, and featurizes only items it has not seen.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import scipy.sparse as sp

from labelflow.contracts import ITEM_ID, PAYLOAD
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


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def featurizer_path(workdir: Path, version: int) -> Path:
    return workdir / FEATURES_DIR / f"text-featurizer-v{version:03d}.joblib"


def features_path(workdir: Path, version: int) -> Path:
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
    """The features of ``items`` (item_id, payload = the content) by the project's featurizer.

    The first call fits the featurizer on the items where ``fit_on`` (a boolean mask; all items without it) is
    true, the pool: held-out texts shape no vocabulary. Later calls load the stored version, reuse every stored
    row whose item and text hash match, and featurize only the rest, which are then stored too."""
    texts = items[PAYLOAD].astype(str).to_numpy(dtype=object)
    ids = items[ITEM_ID].astype(str).to_numpy(dtype=object)
    hashes = np.asarray([content_hash(text) for text in texts], dtype=object)
    version = latest_version(workdir)
    featurizer = (
        fit_featurizer(list(texts if fit_on is None else texts[fit_on]), workdir, new_featurizer)
        if version is None
        else load_featurizer(workdir, version)
    )
    stored = _stored(workdir, featurizer.version)
    keys = pd.Index(stored.ids + "\0" + stored.hashes) if stored is not None else pd.Index([])
    position = keys.get_indexer(ids + "\0" + hashes)
    new = np.flatnonzero(position < 0)
    new_matrix = sp.csr_matrix(featurizer.transform(list(texts[new]))) if len(new) else None
    new_dense = featurizer.dense_view(new_matrix) if new_matrix is not None else np.empty((0, 0))
    if stored is not None and len(new) == 0:
        matrix, dense = stored.matrix[position], stored.dense[position]
    else:
        parts = [stored] if stored is not None else []
        all_ids = np.concatenate([*(p.ids for p in parts), ids[new]])
        all_hashes = np.concatenate([*(p.hashes for p in parts), hashes[new]])
        all_matrix = sp.vstack([*(p.matrix for p in parts), new_matrix], format="csr")
        all_dense = np.vstack([*(p.dense for p in parts), new_dense])
        joblib.dump(
            {"ids": all_ids, "hashes": all_hashes, "matrix": all_matrix, "dense": all_dense},
            features_path(workdir, featurizer.version),
        )
        lookup = pd.Index(all_ids + "\0" + all_hashes).get_indexer(ids + "\0" + hashes)
        matrix, dense = all_matrix[lookup], all_dense[lookup]
    return TextFeatures(featurizer.version, ids, hashes, sp.csr_matrix(matrix), dense, computed=len(new))


def _stored(workdir: Path, version: int) -> TextFeatures | None:
    path = features_path(workdir, version)
    if not path.exists():
        return None
    saved = joblib.load(path)
    return TextFeatures(version, saved["ids"], saved["hashes"], saved["matrix"], saved["dense"], computed=0)
