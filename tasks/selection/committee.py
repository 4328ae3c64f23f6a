"""The committee of query-by-committee strategies: bootstrap clones of one estimator (query-by-bagging)."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import clone


class BootstrapCommittee:
    """Query-by-bagging (Abe & Mamitsuka 1998): clones of one estimator, each fitted on a stratified bootstrap
    of the labeled rows, so every member sees every class and all share one ``classes_`` order.

    The estimator passed in is cloned, never fitted or changed.

    Parameters
    ----------
    estimator : scikit-learn classifier
        The model every member is a clone of.
    n_members : int, default 5
        Members of the committee (at least 2).
    random_state : int, default 0
        Seed of the bootstraps.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.linear_model import LogisticRegression
    >>> from labelflow import BootstrapCommittee, vote_entropy_scores
    >>> X = np.array([[0.0], [0.1], [0.2], [0.8], [0.9], [1.0]])
    >>> y = np.array(["a", "a", "a", "b", "b", "b"])
    >>> committee = BootstrapCommittee(LogisticRegression(), n_members=3).fit(X, y)
    >>> committee.member_probas(np.array([[0.05], [0.5]])).shape  # members x rows x classes
    (3, 2, 2)
    >>> committee.classes_.tolist()
    ['a', 'b']
    """

    def __init__(self, estimator: Any, n_members: int = 5, *, random_state: int = 0) -> None:
        self.estimator = estimator
        self.n_members = n_members
        self.random_state = random_state

    def fit(
        self, X: np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None = None
    ) -> BootstrapCommittee:
        if self.n_members < 2:
            raise ValueError(f"a committee needs at least 2 members, got n_members={self.n_members}")
        classes, codes = np.unique(np.asarray(y), return_inverse=True)
        if len(classes) < 2:
            raise ValueError(f"a committee needs labels of at least 2 classes, got {classes.tolist()}")
        rng = np.random.default_rng(self.random_state)
        by_class = [np.flatnonzero(codes == c) for c in range(len(classes))]
        self.members_: list[Any] = []
        for _ in range(self.n_members):
            rows = np.concatenate([rng.choice(idx, size=len(idx), replace=True) for idx in by_class])
            member = clone(self.estimator)
            if sample_weight is None:
                member.fit(X[rows], np.asarray(y)[rows])
            else:
                member.fit(X[rows], np.asarray(y)[rows], **_weight_kwargs(member, sample_weight[rows]))
            self.members_.append(member)
        self.classes_ = classes
        return self

    def member_probas(self, X: np.ndarray) -> np.ndarray:
        return np.stack([member.predict_proba(X) for member in self.members_])

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(self.member_probas(X).mean(axis=0))


def _weight_kwargs(estimator: Any, weights: np.ndarray) -> dict[str, np.ndarray]:
    """``sample_weight`` routed to a pipeline's last step (a Pipeline takes it only as ``<step>__sample_weight``)."""
    steps = getattr(estimator, "steps", None)
    return {f"{steps[-1][0]}__sample_weight": weights} if steps else {"sample_weight": weights}
