"""Some rows of a feature matrix, by position, read a slice at a time: how a round hands a subset of a large pool
(the unlabeled items, the selectable ones) to selection and training without copying the pool's features."""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp


class RowView:
    """The rows of ``matrix`` at ``positions``, in that order, as the selection and training functions read
    features: ``len``, ``shape`` and indexing by a slice, a boolean mask or positions, each of which copies only
    the rows it asks for. A 2M x 64 float32 pool is 512 MB; a filtered copy of it per step is what this avoids.

    Examples
    --------
    >>> import numpy as np
    >>> from labelflow.tasks.rows import RowView
    >>> view = RowView(np.arange(10.0).reshape(5, 2), np.array([4, 0]))
    >>> view.shape, view[1:].tolist()
    ((2, 2), [[0.0, 1.0]])
    """

    __slots__ = ("matrix", "positions")  # a plain class: Prefect walks a dataclass's fields as task inputs

    def __init__(self, matrix: np.ndarray | sp.csr_matrix, positions: Any) -> None:
        self.matrix = matrix
        self.positions = np.asarray(positions, dtype=np.intp)

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.positions), int(self.matrix.shape[1])

    @property
    def dtype(self) -> np.dtype[Any]:
        return self.matrix.dtype

    def __len__(self) -> int:
        return len(self.positions)

    def __getitem__(self, key: Any) -> Any:
        """The rows ``key`` selects (a slice, a boolean mask or positions of this view), copied."""
        return self.matrix[self.positions[key]]
