"""What every aggregator shares: the fitted attributes and crowd-kit's ``fit_predict`` / ``fit_predict_proba``.

There is no ``predict(answers)``: an aggregator has nothing to apply to new answers (the labels *are* the fit),
and a ``predict`` that silently re-fitted hid the cost. After :meth:`~BaseAggregator.fit` the results are the
attributes ``labels_``, ``probas_`` and ``n_answers_``, as in crowd-kit.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Self

import pandas as pd

from labelflow.tasks.aggregation._encoding import (
    Coded,
    FloatArray,
    IntArray,
    labels_series,
    n_answers_series,
    probas_frame,
)


class BaseAggregator:
    """The estimator shape of every aggregator (crowd-kit's): ``fit`` returns ``self``, results are attributes.

    Attributes (after ``fit``): ``labels_`` (Series ``item_id -> label``), ``probas_`` (DataFrame items x labels,
    rows sum to 1), ``n_answers_`` (Series ``item_id -> answers``).
    """

    label_names: Sequence[str] | None
    random_state: int
    labels_: pd.Series
    probas_: pd.DataFrame
    n_answers_: pd.Series

    def __init__(self, label_names: Sequence[str] | None = None, *, random_state: int = 0) -> None:
        self.label_names = label_names
        self.random_state = random_state

    def fit(
        self,
        answers: pd.DataFrame,
        gold: pd.Series | None = None,
        *,
        items: Sequence[str] | pd.Index | None = None,
    ) -> Self:
        raise NotImplementedError

    def fit_predict(
        self,
        answers: pd.DataFrame,
        gold: pd.Series | None = None,
        *,
        items: Sequence[str] | pd.Index | None = None,
    ) -> pd.Series:
        """Fit on ``answers`` and return ``labels_``: one label per answered item.

        Parameters
        ----------
        answers : pandas.DataFrame
            One row per answer, columns ``item_id, worker_id, label`` (or crowd-kit's ``task, worker, label``).
        gold : pandas.Series, optional
            Known labels, ``item_id -> label``; those items are clamped to them.
        items : sequence of str, optional
            The known item ids; an answer on any other item is an error.

        Returns
        -------
        pandas.Series
            ``item_id -> label``, sorted by ``item_id``.

        Examples
        --------
        >>> import pandas as pd
        >>> from labelflow import MajorityVote
        >>> answers = pd.DataFrame({"task": ["t1", "t1", "t1", "t2"], "worker": ["a", "b", "c", "a"],
        ...                         "label": ["cat", "cat", "dog", "dog"]})
        >>> MajorityVote().fit_predict(answers).to_dict()
        {'t1': 'cat', 't2': 'dog'}
        """
        return self.fit(answers, gold, items=items).labels_

    def fit_predict_proba(
        self,
        answers: pd.DataFrame,
        gold: pd.Series | None = None,
        *,
        items: Sequence[str] | pd.Index | None = None,
    ) -> pd.DataFrame:
        """Fit on ``answers`` and return ``probas_``: per answered item, a probability per label.

        Parameters are those of :meth:`fit_predict`.

        Returns
        -------
        pandas.DataFrame
            Items (sorted) x labels (``label_names``, or every label seen sorted as strings); rows sum to 1.

        Examples
        --------
        >>> import pandas as pd
        >>> from labelflow import MajorityVote
        >>> answers = pd.DataFrame({"item_id": ["i1", "i1", "i1"], "worker_id": ["a", "b", "c"],
        ...                         "label": ["cat", "cat", "dog"]})
        >>> MajorityVote().fit_predict_proba(answers).round(3).to_dict("index")
        {'i1': {'cat': 0.667, 'dog': 0.333}}
        """
        return self.fit(answers, gold, items=items).probas_

    def _set_results(self, coded: Coded, probas: FloatArray, codes: IntArray) -> None:
        """``labels_``, ``probas_`` and ``n_answers_`` from the fitted posteriors and chosen label codes."""
        self.labels_ = labels_series(coded, codes)
        self.probas_ = probas_frame(coded, probas)
        self.n_answers_ = n_answers_series(coded)
