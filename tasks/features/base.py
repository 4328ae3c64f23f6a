"""What every featurizer offers: the contract the store, selection and training rely on."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, Self

import numpy as np
import scipy.sparse as sp


class Featurizer(Protocol):
    """Content (one string per item: a text, an image's path or URL) to features, and a few dense dimensions of
    them for distances (diversity, cold start)."""

    version: int

    def fit(self, contents: Sequence[str]) -> Self: ...

    def transform(self, contents: Sequence[str]) -> sp.csr_matrix | np.ndarray: ...

    def dense_view(self, matrix: sp.csr_matrix | np.ndarray) -> np.ndarray: ...
