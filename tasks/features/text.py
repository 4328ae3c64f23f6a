"""Text as features: word 1-2-gram plus character 2-5-gram TF-IDF (sublinear tf), kept sparse (CSR).

Training and selection's scores take the sparse rows as they are, and nothing densifies a pool x vocabulary
matrix. Diversity (k-means, k-center) and the cold start need distances in a few dense dimensions: the featurizer
also fits a ``TruncatedSVD`` projection (``n_components`` dimensions) of the same matrix, the "dense view".
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import TfidfVectorizer

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
