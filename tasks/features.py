"""Features as a stage: a text featurizer fitted once per project, versioned, and applied unchanged to later items.

Text becomes word 1-2-gram plus character 2-5-gram TF-IDF (sublinear tf), kept sparse (CSR): training and
selection's scores take it as it is, and nothing densifies a pool x vocabulary matrix. Diversity (k-means,
k-center) and the cold start need distances in a few dense dimensions: the featurizer also fits a
``TruncatedSVD`` projection (``n_components`` dimensions) of the same matrix, the "dense view".

The fitted featurizer is stored under the project's workdir with a version number, and every later arrival is
transformed by that same version, so an item's vector never changes under the model that was trained on it (a
refit is a new version, on purpose). Each item's features are computed once: :func:`pool_features` keeps them,
keyed by item id and a hash of the item's text, and featurizes only items it has not seen.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import TfidfVectorizer

from labelflow.contracts import ITEM_ID, PAYLOAD

FEATURES_DIR = "features"
DENSE_PREFIX = "text_svd_"


class TextFeaturizer:
    """Word 1-2-gram + char 2-5-gram TF-IDF (sublinear tf) and its ``n_components``-dimensional SVD view.

    Examples
    --------
    >>> featurizer = TextFeaturizer(n_components=2).fit(["a good film", "a bad film", "good acting", "bad plot"])
    >>> matrix = featurizer.transform(["a good plot"])
    >>> matrix.shape[0], featurizer.dense_view(matrix).shape
    (1, (1, 2))
    """

    def __init__(self, *, version: int = 1, n_components: int = 64, seed: int = 0) -> None:
        self.version = version
        self.n_components = n_components
        self.seed = seed
        self.words = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, dtype=np.float32)
        self.chars = TfidfVectorizer(
            analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, min_df=2, dtype=np.float32
        )
        self.svd: TruncatedSVD | None = None

    def fit(self, texts: Sequence[str]) -> TextFeaturizer:
        """Fit the vocabularies, idf weights and the SVD view on ``texts`` (the pool)."""
        words = self.words.fit_transform(texts)
        chars = self.chars.fit_transform(texts)
        matrix = sp.hstack([words, chars], format="csr")
        components = min(self.n_components, matrix.shape[1] - 1, matrix.shape[0] - 1)
        self.svd = TruncatedSVD(max(components, 1), random_state=self.seed).fit(matrix)
        return self

    def transform(self, texts: Sequence[str]) -> sp.csr_matrix:
        """The sparse TF-IDF rows of ``texts`` (float32 CSR), by the fitted vocabularies."""
        return sp.hstack([self.words.transform(texts), self.chars.transform(texts)], format="csr")

    def dense_view(self, matrix: sp.csr_matrix) -> np.ndarray:
        """The rows of ``matrix`` in the fitted SVD's few dimensions, for distances (diversity, cold start)."""
        if self.svd is None:
            raise ValueError("the featurizer is not fitted; call fit on the pool first")
        return np.asarray(self.svd.transform(matrix), dtype=np.float64)

    @property
    def dense_columns(self) -> list[str]:
        return dense_column_names(self.svd.n_components if self.svd is not None else self.n_components)


def dense_column_names(n: int) -> list[str]:
    """The feature columns of an ``n``-dimensional dense view."""
    return [f"{DENSE_PREFIX}{k:03d}" for k in range(n)]


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


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def featurizer_path(workdir: Path, version: int) -> Path:
    return workdir / FEATURES_DIR / f"text-featurizer-v{version:03d}.joblib"


def features_path(workdir: Path, version: int) -> Path:
    return workdir / FEATURES_DIR / f"text-features-v{version:03d}.joblib"


def latest_version(workdir: Path) -> int | None:
    """The highest stored featurizer version, or None before the first fit."""
    found = sorted((workdir / FEATURES_DIR).glob("text-featurizer-v*.joblib"))
    return int(found[-1].stem.rsplit("-v", 1)[1]) if found else None


def load_featurizer(workdir: Path, version: int) -> TextFeaturizer:
    featurizer = joblib.load(featurizer_path(workdir, version))
    if not isinstance(featurizer, TextFeaturizer):
        raise TypeError(f"{featurizer_path(workdir, version)} does not hold a labelflow text featurizer")
    return featurizer


def fit_featurizer(
    texts: Sequence[str], workdir: Path, *, n_components: int = 64, seed: int = 0
) -> TextFeaturizer:
    """Fit a new featurizer version on ``texts`` and store it (a refit on purpose makes the next version)."""
    version = (latest_version(workdir) or 0) + 1
    featurizer = TextFeaturizer(version=version, n_components=n_components, seed=seed).fit(texts)
    path = featurizer_path(workdir, version)
    path.parent.mkdir(parents=True, exist_ok=True)
    joblib.dump(featurizer, path)
    return featurizer


def pool_features(
    items: pd.DataFrame,
    workdir: Path,
    *,
    fit_on: np.ndarray | None = None,
    n_components: int = 64,
    seed: int = 0,
) -> TextFeatures:
    """The features of ``items`` (item_id, payload = the text) by the project's featurizer.

    The first call fits the featurizer on the items where ``fit_on`` (a boolean mask; all items without it) is
    true, the pool: held-out texts shape no vocabulary. Later calls load the stored version, reuse every stored
    row whose item and text hash match, and featurize only the rest, which are then stored too."""
    texts = items[PAYLOAD].astype(str).to_numpy(dtype=object)
    ids = items[ITEM_ID].astype(str).to_numpy(dtype=object)
    hashes = np.asarray([text_hash(text) for text in texts], dtype=object)
    version = latest_version(workdir)
    featurizer = (
        fit_featurizer(
            list(texts if fit_on is None else texts[fit_on]), workdir, n_components=n_components, seed=seed
        )
        if version is None
        else load_featurizer(workdir, version)
    )
    stored = _stored(workdir, featurizer.version)
    keys = pd.Index(stored.ids + "\0" + stored.hashes) if stored is not None else pd.Index([])
    position = keys.get_indexer(ids + "\0" + hashes)
    new = np.flatnonzero(position < 0)
    new_matrix = featurizer.transform(list(texts[new])) if len(new) else None
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
