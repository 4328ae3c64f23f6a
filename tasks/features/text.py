"""Text as features: word 1-2-gram plus character 2-5-gram TF-IDF (sublinear tf), kept sparse (CSR).

Training and selection's scores take the sparse rows as they are, and nothing densifies a pool x vocabulary
matrix. Diversity (k-means, k-center) and the cold start need distances in a few dense dimensions: the featurizer
also fits a ``TruncatedSVD`` projection (``n_components`` dimensions) of the same matrix, the "dense view".

Speed (benchmarks/featurize.py: 100,000 sentences in the 15 s target on 2 cores): the word and the character
vocabularies are fitted in two processes at once (``n_jobs``); the rows of the texts fitted on are kept from the
fit, so the store's transform of the same pool right after costs nothing; the SVD view is fitted on at most
``svd_rows`` rows (it only has to place items for distances), and a large batch of new texts is transformed in
``n_jobs`` chunks at once.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp
from joblib import Parallel, delayed
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import TfidfVectorizer

DENSE_PREFIX = "text_svd_"
PARALLEL_FROM = 20_000  # texts: below this, a second process costs more than it saves


class TextFeaturizer:
    """Word 1-2-gram + char 2-5-gram TF-IDF (sublinear tf) and its ``n_components``-dimensional SVD view.

    Examples
    --------
    >>> featurizer = TextFeaturizer(n_components=2).fit(["a good film", "a bad film", "good acting", "bad plot"])
    >>> matrix = featurizer.transform(["a good plot"])
    >>> matrix.shape[0], featurizer.dense_view(matrix).shape
    (1, (1, 2))
    """

    def __init__(
        self,
        *,
        version: int = 1,
        n_components: int = 64,
        seed: int = 0,
        n_jobs: int = 2,
        svd_rows: int = 20_000,
    ) -> None:
        self.version = version
        self.n_components = n_components
        self.seed = seed
        self.n_jobs = n_jobs
        self.svd_rows = svd_rows
        self.words = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, dtype=np.float32)
        self.chars = TfidfVectorizer(
            analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, min_df=2, dtype=np.float32
        )
        self.svd: TruncatedSVD | None = None
        # the rows of the texts fitted on, kept until pickling (see the module docstring)
        self._fitted_rows: tuple[dict[str, int], sp.csr_matrix] | None = None

    def fit(self, texts: Sequence[str]) -> TextFeaturizer:
        """Fit the vocabularies, idf weights and the SVD view on ``texts`` (the pool)."""
        texts = list(texts)
        jobs = self.n_jobs if len(texts) >= PARALLEL_FROM else 1
        fitted = Parallel(n_jobs=jobs)(delayed(_fit_transform)(v, texts) for v in (self.words, self.chars))
        (self.words, words), (self.chars, chars) = fitted
        matrix = sp.hstack([words, chars], format="csr")
        components = min(self.n_components, matrix.shape[1] - 1, matrix.shape[0] - 1)
        sample = matrix
        if matrix.shape[0] > self.svd_rows:
            rows = np.random.default_rng(self.seed).choice(matrix.shape[0], self.svd_rows, replace=False)
            sample = matrix[np.sort(rows)]
        self.svd = TruncatedSVD(max(components, 1), random_state=self.seed).fit(sample)
        self._fitted_rows = ({text: row for row, text in enumerate(texts)}, matrix)
        return self

    def transform(self, texts: Sequence[str]) -> sp.csr_matrix:
        """The sparse TF-IDF rows of ``texts`` (float32 CSR), by the fitted vocabularies."""
        texts = list(texts)
        known, matrix = self._fitted_rows or ({}, None)
        at = np.fromiter((known.get(text, -1) for text in texts), dtype=np.int64, count=len(texts))
        new = np.flatnonzero(at < 0)
        if matrix is not None and len(new) == 0:
            return sp.csr_matrix(matrix[at])
        new_texts = [texts[k] for k in new]
        jobs = self.n_jobs if len(new_texts) >= PARALLEL_FROM else 1
        step = -(-len(new_texts) // jobs)
        chunks = [new_texts[start : start + step] for start in range(0, len(new_texts), step)]
        parts = Parallel(n_jobs=jobs)(delayed(self._vectorize)(chunk) for chunk in chunks)
        rows = sp.vstack(parts, format="csr")
        if matrix is None or len(new) == len(texts):
            return rows
        at[new] = matrix.shape[0] + np.arange(len(new))  # the known rows, then the new ones
        return sp.csr_matrix(sp.vstack([matrix, rows], format="csr")[at])

    def _vectorize(self, texts: list[str]) -> sp.csr_matrix:
        return sp.hstack([self.words.transform(texts), self.chars.transform(texts)], format="csr")

    def dense_view(self, matrix: sp.csr_matrix) -> np.ndarray:
        """The rows of ``matrix`` in the fitted SVD's few dimensions, for distances (diversity, cold start)."""
        if self.svd is None:
            raise ValueError("the featurizer is not fitted; call fit on the pool first")
        # in float64, row by row: an item's view is the same whichever batch it is computed in
        return np.asarray(self.svd.transform(sp.csr_matrix(matrix, dtype=np.float64)), dtype=np.float64)

    @property
    def dense_columns(self) -> list[str]:
        return dense_column_names(self.svd.n_components if self.svd is not None else self.n_components)

    def __getstate__(self) -> dict[str, object]:
        return {**self.__dict__, "_fitted_rows": None}

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__dict__.update({"n_jobs": 2, "svd_rows": 20_000, **state})


def _fit_transform(vectorizer: TfidfVectorizer, texts: list[str]) -> tuple[TfidfVectorizer, sp.csr_matrix]:
    return vectorizer, vectorizer.fit_transform(texts)


def dense_column_names(n: int) -> list[str]:
    """The feature columns of an ``n``-dimensional dense view."""
    return [f"{DENSE_PREFIX}{k:03d}" for k in range(n)]
