"""What every featurizer offers: the contract the store, selection and training rely on, and the base of the
featurizers whose features are dense descriptors (images, plug-in embeddings)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, Self

import numpy as np
import scipy.sparse as sp
from sklearn.decomposition import PCA
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler


class Featurizer(Protocol):
    """Content (one string per item: a text, an image's path or URL) to features, and a few dense dimensions of
    them for distances (diversity, cold start)."""

    version: int

    def fit(self, contents: Sequence[str]) -> Self: ...

    def transform(self, contents: Sequence[str]) -> sp.csr_matrix | np.ndarray: ...

    def dense_view(self, matrix: sp.csr_matrix | np.ndarray) -> np.ndarray: ...


class DenseFeaturizer:
    """A featurizer whose features are a dense descriptor per item (:meth:`describe`), and whose dense view is
    their first ``n_components`` principal components after standardizing (the descriptor itself when it has
    no more dimensions than that). Subclasses implement :meth:`describe`."""

    def __init__(self, *, version: int = 1, n_components: int = 64, seed: int = 0) -> None:
        self.version = version
        self.n_components = n_components
        self.seed = seed
        self.projection: Pipeline | None = None
        # the descriptors of the contents fitted on, kept until pickling: the store transforms the same pool
        # right after fitting, and describing 10,000 photos twice would double the first round's cost
        self._fitted_rows: dict[str, np.ndarray] = {}

    def describe(self, contents: Sequence[str]) -> np.ndarray:
        raise NotImplementedError

    def fit(self, contents: Sequence[str]) -> Self:
        """Fit the dense view on the pool's descriptors."""
        descriptors = self.describe(contents)
        self._fitted_rows = dict(zip(contents, descriptors, strict=True))
        return self.fit_descriptors(descriptors)

    def fit_descriptors(self, descriptors: np.ndarray) -> Self:
        """Fit the dense view on descriptors already computed (the same as :meth:`fit` on their contents)."""
        components = min(self.n_components, descriptors.shape[1], descriptors.shape[0])
        steps = (
            [StandardScaler()] if components == descriptors.shape[1] else [StandardScaler(), PCA(components)]
        )
        if len(steps) == 2:
            steps[1].set_params(random_state=self.seed)
        self.projection = make_pipeline(*steps).fit(descriptors)
        return self

    def transform(self, contents: Sequence[str]) -> np.ndarray:
        """The descriptors of ``contents``, one row each (float32)."""
        known = self._fitted_rows
        todo = [content for content in dict.fromkeys(contents) if content not in known]
        described = dict(zip(todo, self.describe(todo), strict=True)) if todo else {}
        rows = [known[c] if c in known else described[c] for c in contents]
        width = self.projection.n_features_in_ if self.projection is not None else 0
        return np.asarray(rows, dtype=np.float32).reshape(len(contents), -1 if rows else width)

    def __getstate__(self) -> dict[str, object]:
        return {**self.__dict__, "_fitted_rows": {}}

    def dense_view(self, matrix: sp.csr_matrix | np.ndarray) -> np.ndarray:
        if self.projection is None:
            raise ValueError("the featurizer is not fitted; call fit on the pool first")
        dense = matrix if isinstance(matrix, np.ndarray) else matrix.toarray()
        return np.asarray(self.projection.transform(dense), dtype=np.float64)
