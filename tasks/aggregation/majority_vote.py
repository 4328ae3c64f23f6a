"""Voting aggregators: majority vote and Wawa (majority vote re-weighted by each worker's agreement with it)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Self

import numpy as np
import pandas as pd

from labelflow.tasks.aggregation._encoding import TIE_ATOL, argmax_random_ties, encode
from labelflow.tasks.aggregation.base import BaseAggregator


class MajorityVote(BaseAggregator):
    """Majority vote: each item gets the label most of its workers chose.

    ``probas_`` are the vote shares. Ties are broken uniformly at random with
    ``np.random.default_rng(random_state)`` (never by label order, which would bias towards the first label).
    Items in ``gold`` (Series ``item_id -> label``) are clamped to their gold label.

    Parameters
    ----------
    label_names : sequence of str, optional
        Every label a worker may answer, in the order of ``probas_``'s columns; by default every label answered
        (or given as gold), sorted as strings.
    random_state : int, default 0
        Seed of the tie-breaks.

    Attributes
    ----------
    labels_ : pandas.Series
        ``item_id -> label`` after ``fit``.
    probas_ : pandas.DataFrame
        Items x labels, the vote shares.
    n_answers_ : pandas.Series
        ``item_id -> answers``.

    Examples
    --------
    >>> import pandas as pd
    >>> from labelflow import MajorityVote
    >>> answers = pd.DataFrame({"item_id": ["i1", "i1", "i1", "i2", "i2"],
    ...                         "worker_id": ["a", "b", "c", "a", "b"],
    ...                         "label": ["cat", "cat", "dog", "dog", "dog"]})
    >>> MajorityVote().fit(answers).labels_.to_dict()
    {'i1': 'cat', 'i2': 'dog'}
    """

    def fit(
        self,
        answers: pd.DataFrame,
        gold: pd.Series | None = None,
        *,
        items: Sequence[str] | pd.Index | None = None,
    ) -> Self:
        """Fit on ``answers``; the parameters are those of :meth:`BaseAggregator.fit_predict`."""
        coded = encode(answers, self.label_names, gold, items)
        counts = coded.counts().astype(np.float64)
        rng = np.random.default_rng(self.random_state)
        # Vote counts are exact integers, so only exact ties are ties.
        codes = argmax_random_ties(counts, rng, atol=0.0)
        probas = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1.0)
        coded.clamp(probas)
        coded.clamp_codes(codes)
        self._set_results(coded, probas, codes)
        return self


class Wawa(BaseAggregator):
    """Worker Agreement With Aggregate: majority vote, then a vote weighted by each worker's agreement with it.

    Appen (CrowdFlower) "Worker Agreement With Aggregate"; the same two-pass algorithm as crowd-kit's ``Wawa``
    (Ustalov et al., "Learning from Crowds with Crowd-Kit", JOSS 2024). A worker's weight (``skills_``) is the
    share of their answers that match the majority-vote label; ``probas_`` are the weighted vote shares (the
    plain vote shares where every voter has weight 0). Ties are broken with the seeded generator, gold items
    are clamped in both passes.

    Parameters
    ----------
    label_names : sequence of str, optional
        As :class:`MajorityVote`.
    random_state : int, default 0
        Seed of the tie-breaks.

    Attributes
    ----------
    labels_, probas_, n_answers_
        As :class:`MajorityVote` (``probas_`` are the weighted vote shares).
    skills_ : pandas.Series
        ``worker_id -> agreement`` with the majority vote.

    Examples
    --------
    >>> import pandas as pd
    >>> from labelflow import Wawa
    >>> answers = pd.DataFrame({"item_id": ["i1", "i1", "i1", "i2", "i2", "i2"],
    ...                         "worker_id": ["a", "b", "c", "a", "b", "c"],
    ...                         "label": ["cat", "cat", "dog", "dog", "dog", "dog"]})
    >>> wawa = Wawa().fit(answers)
    >>> wawa.labels_.to_dict()
    {'i1': 'cat', 'i2': 'dog'}
    >>> wawa.skills_.to_dict()
    {'a': 1.0, 'b': 1.0, 'c': 0.5}
    """

    skills_: pd.Series

    def fit(
        self,
        answers: pd.DataFrame,
        gold: pd.Series | None = None,
        *,
        items: Sequence[str] | pd.Index | None = None,
    ) -> Self:
        """Fit on ``answers``; the parameters are those of :meth:`BaseAggregator.fit_predict`."""
        coded = encode(answers, self.label_names, gold, items)
        k = coded.n_labels
        rng = np.random.default_rng(self.random_state)
        counts = coded.counts().astype(np.float64)
        majority = argmax_random_ties(counts, rng, atol=0.0)
        coded.clamp_codes(majority)
        agrees = (coded.label == majority[coded.item]).astype(np.float64)
        n_per_worker = np.bincount(coded.worker, minlength=coded.n_workers)
        skills = np.bincount(coded.worker, weights=agrees, minlength=coded.n_workers) / n_per_worker
        scores = np.bincount(
            coded.item * k + coded.label, weights=skills[coded.worker], minlength=coded.n_items * k
        ).reshape(coded.n_items, k)
        totals = scores.sum(axis=1, keepdims=True)
        shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1.0)
        probas = np.divide(scores, totals, out=shares.copy(), where=totals > 0)
        coded.clamp(probas)
        codes = argmax_random_ties(probas, rng, atol=TIE_ATOL)
        coded.clamp_codes(codes)
        self._set_results(coded, probas, codes)
        self.skills_ = pd.Series(skills, index=coded.workers, name="skill")
        return self
