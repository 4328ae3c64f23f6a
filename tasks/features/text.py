"""Text as features: word 1-2-gram plus character 2-5-gram TF-IDF (sublinear tf), kept sparse (CSR).

Training and selection's scores take the sparse rows as they are, and nothing densifies a pool x vocabulary
matrix. Diversity (k-means, k-center) and the cold start need distances in a few dense dimensions: the featurizer
also fits a ``TruncatedSVD`` projection (``n_components`` dimensions) of the same matrix, the "dense view".

The n-grams are hashed (scikit-learn's ``HashingVectorizer``, 2^22 word and 2^21 character buckets), which needs
no vocabulary to build, so the texts are counted in ``n_jobs`` chunks at once; the fit then keeps the buckets the
pool uses (character n-grams in at least 2 of its texts, as ``min_df=2`` would) and learns their idf weights.
That is what brings 100,000 sentences within the 15 s target on 2 cores (benchmarks/featurize.py), where
``TfidfVectorizer``'s one-process vocabulary took ~50 s. The rows of the texts fitted on are kept from the fit,
so the store's transform of the same pool right after costs nothing, and the SVD view is fitted on at most
``svd_rows`` rows and projects the ``svd_columns`` n-grams found in the most texts: it only has to place items
for distances, and its cost grows with the columns (108,000 of them took 2 s for 64 components, 10,000 0.2 s).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp
from joblib import Parallel, delayed
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import HashingVectorizer, TfidfTransformer

DENSE_PREFIX = "text_svd_"
PARALLEL_FROM = 20_000  # texts: below this, a second process costs more than it saves
WORDS = HashingVectorizer(ngram_range=(1, 2), n_features=2**22, alternate_sign=False, norm=None)
CHARS = HashingVectorizer(
    analyzer="char_wb", ngram_range=(2, 5), n_features=2**21, alternate_sign=False, norm=None
)


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
        svd_rows: int = 5_000,
        svd_columns: int = 10_000,
    ) -> None:
        self.version = version
        self.n_components = n_components
        self.seed = seed
        self.n_jobs = n_jobs
        self.svd_rows = svd_rows
        self.svd_columns = svd_columns
        self.svd_kept: np.ndarray | None = None  # the columns the SVD view projects
        self.columns: tuple[np.ndarray, np.ndarray] | None = None  # the word and char buckets kept, in order
        self.idf: tuple[TfidfTransformer, TfidfTransformer] | None = None
        self.svd: TruncatedSVD | None = None
        # the rows of the texts fitted on, kept until pickling (see the module docstring)
        self._fitted_rows: tuple[dict[str, int], sp.csr_matrix] | None = None

    def fit(self, texts: Sequence[str]) -> TextFeaturizer:
        """Fit the kept n-grams, their idf weights and the SVD view on ``texts`` (the pool)."""
        texts = list(texts)
        words, chars = self._counts(texts)
        self.columns = (
            np.flatnonzero(np.bincount(words.indices, minlength=words.shape[1]) >= 1),
            np.flatnonzero(np.bincount(chars.indices, minlength=chars.shape[1]) >= 2),
        )
        words, chars = (_keep(m, kept) for m, kept in zip((words, chars), self.columns, strict=True))
        self.idf = (
            TfidfTransformer(sublinear_tf=True).fit(words),
            TfidfTransformer(sublinear_tf=True).fit(chars),
        )
        matrix = self._weighted(words, chars)
        frequency = np.bincount(matrix.indices, minlength=matrix.shape[1])
        self.svd_kept = np.sort(np.argsort(-frequency, kind="stable")[: self.svd_columns])
        sample = _keep(matrix, self.svd_kept)
        if matrix.shape[0] > self.svd_rows:
            rows = np.random.default_rng(self.seed).choice(matrix.shape[0], self.svd_rows, replace=False)
            sample = sample[np.sort(rows)]
        components = min(self.n_components, sample.shape[1] - 1, sample.shape[0] - 1)
        self.svd = TruncatedSVD(max(components, 1), random_state=self.seed).fit(sample)
        self._fitted_rows = ({text: row for row, text in enumerate(texts)}, matrix)
        return self

    def transform(self, texts: Sequence[str]) -> sp.csr_matrix:
        """The sparse TF-IDF rows of ``texts`` (float32 CSR), by the fitted n-grams and weights."""
        if self.columns is None:
            raise ValueError("the featurizer is not fitted; call fit on the pool first")
        texts = list(texts)
        known, matrix = self._fitted_rows or ({}, None)
        at = np.fromiter((known.get(text, -1) for text in texts), dtype=np.int64, count=len(texts))
        new = np.flatnonzero(at < 0)
        if matrix is not None and len(new) == 0:
            return sp.csr_matrix(matrix[at])
        words, chars = self._counts([texts[k] for k in new])
        rows = self._weighted(*(_keep(m, kept) for m, kept in zip((words, chars), self.columns, strict=True)))
        if matrix is None or len(new) == len(texts):
            return rows
        at[new] = matrix.shape[0] + np.arange(len(new))  # the known rows, then the new ones
        return sp.csr_matrix(sp.vstack([matrix, rows], format="csr")[at])

    def dense_view(self, matrix: sp.csr_matrix) -> np.ndarray:
        """The rows of ``matrix`` in the fitted SVD's few dimensions, for distances (diversity, cold start)."""
        if self.svd is None or self.svd_kept is None:
            raise ValueError("the featurizer is not fitted; call fit on the pool first")
        # in float64, row by row: an item's view is the same whichever batch it is computed in
        projected = _keep(sp.csr_matrix(matrix, dtype=np.float64), self.svd_kept)
        return np.asarray(self.svd.transform(projected), dtype=np.float64)

    @property
    def dense_columns(self) -> list[str]:
        return dense_column_names(self.svd.n_components if self.svd is not None else self.n_components)

    def _counts(self, texts: list[str]) -> tuple[sp.csr_matrix, sp.csr_matrix]:
        """Hashed word and char n-gram counts of ``texts``, counted in ``n_jobs`` chunks at once."""
        jobs = self.n_jobs if len(texts) >= PARALLEL_FROM else 1
        step = max(-(-len(texts) // jobs), 1)
        parts = Parallel(n_jobs=jobs)(
            delayed(_hashed_counts)(texts[start : start + step]) for start in range(0, len(texts), step)
        ) or [_hashed_counts([])]
        return (
            sp.vstack([words for words, _ in parts], format="csr"),
            sp.vstack([chars for _, chars in parts], format="csr"),
        )

    def _weighted(self, words: sp.csr_matrix, chars: sp.csr_matrix) -> sp.csr_matrix:
        assert self.idf is not None
        return sp.hstack(
            [self.idf[0].transform(words), self.idf[1].transform(chars)], format="csr", dtype=np.float32
        )

    def __getstate__(self) -> dict[str, object]:
        return {**self.__dict__, "_fitted_rows": None}

    def __setstate__(self, state: dict[str, object]) -> None:
        if "columns" not in state:
            raise ValueError(
                "this text featurizer was stored by an earlier labelflow, whose features this version cannot "
                "extend; run `labelflow features refit` to fit a new version on the pool"
            )
        self.__dict__.update(state)


def _hashed_counts(texts: list[str]) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    return WORDS.transform(texts), CHARS.transform(texts)


def _keep(matrix: sp.csr_matrix, kept: np.ndarray) -> sp.csr_matrix:
    """``matrix`` restricted to the columns ``kept`` (sorted), renumbered 0..len(kept)-1, without densifying
    (scipy's column indexing: half the time of masking and re-counting every non-zero in numpy)."""
    return sp.csr_matrix(matrix[:, kept])


def dense_column_names(n: int) -> list[str]:
    """The feature columns of an ``n``-dimensional dense view."""
    return [f"{DENSE_PREFIX}{k:03d}" for k in range(n)]
