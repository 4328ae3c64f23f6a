"""Aggregation by method name, as the pipeline calls it: one labels frame per call, and worker accuracy on gold."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final

import numpy as np
import numpy.typing as npt
import pandas as pd

from labelflow.contracts import ITEM_ID, require_columns
from labelflow.tasks.aggregation._encoding import (
    ANSWER_KEYS,
    LABEL,
    WORKER_ID,
    answer_columns,
    gold_labels,
)
from labelflow.tasks.aggregation.dawid_skene import DawidSkene, OneCoinDawidSkene
from labelflow.tasks.aggregation.glad import GLAD
from labelflow.tasks.aggregation.majority_vote import MajorityVote, Wawa

METHODS: Final = ("majority_vote", "wawa", "dawid_skene", "one_coin_dawid_skene", "full_dawid_skene", "glad")
Aggregator = MajorityVote | Wawa | DawidSkene | GLAD
# "full_dawid_skene": every worker's own confusion rows, each smoothed by one pseudo-answer spread as the worker's
# one-coin matrix (so that no cell is zero and an unseen confusion is not impossible).
FULL_SHRINKAGE: Final = 1.0


def make_aggregator(method: str, label_names: Sequence[str] | None, *, random_state: int = 0) -> Aggregator:
    """The estimator behind a method name of :data:`METHODS`, at its default hyperparameters.

    Examples
    --------
    >>> make_aggregator("wawa", ["cat", "dog"])  # doctest: +ELLIPSIS
    <labelflow.tasks.aggregation.majority_vote.Wawa object at ...>
    """
    if method == "majority_vote":
        return MajorityVote(label_names, random_state=random_state)
    if method == "wawa":
        return Wawa(label_names, random_state=random_state)
    if method == "dawid_skene":
        return DawidSkene(label_names, random_state=random_state)
    if method == "one_coin_dawid_skene":
        return OneCoinDawidSkene(label_names, random_state=random_state)
    if method == "full_dawid_skene":
        return DawidSkene(label_names, shrinkage=FULL_SHRINKAGE, random_state=random_state)
    if method == "glad":
        return GLAD(label_names, random_state=random_state)
    raise ValueError(f"unknown aggregation method {method!r}; choose one of {list(METHODS)}")


def aggregate_answers_frame(
    answers: pd.DataFrame,
    label_names: Sequence[str] | None,
    *,
    method: str = "dawid_skene",
    gold: pd.Series | None = None,
    items: Sequence[str] | pd.Index | None = None,
    warm_start: Mapping[str, npt.ArrayLike] | None = None,
    random_state: int = 0,
) -> pd.DataFrame:
    """One label per answered, non-gold item.

    Returns columns ``item_id, label, confidence, method, n_answers``, sorted by ``item_id``; ``confidence``
    is the item's largest posterior (vote share for majority vote). Gold items are used (clamped) but not
    returned. ``method`` is one of :data:`METHODS`; ``items`` and ``warm_start`` as in
    :meth:`DawidSkene.fit` (``warm_start`` is ignored by the voting methods).

    Examples
    --------
    >>> import pandas as pd
    >>> answers = pd.DataFrame({"item_id": ["i1", "i1", "i2", "i2"], "worker_id": ["a", "b", "a", "b"],
    ...                         "label": ["cat", "cat", "dog", "cat"]})
    >>> aggregate_answers_frame(answers, ["cat", "dog"], method="majority_vote", gold=pd.Series({"i2": "dog"}))
      item_id label  confidence         method  n_answers
    0      i1   cat         1.0  majority_vote          2
    """
    model = make_aggregator(method, label_names, random_state=random_state)
    if isinstance(model, DawidSkene):
        model.fit(answers, gold, items=items, warm_start=warm_start)
    else:
        model.fit(answers, gold, items=items)
    labels = model.labels_
    frame = pd.DataFrame(
        {
            ITEM_ID: labels.index.to_numpy(),
            LABEL: labels.to_numpy(),
            "confidence": model.probas_.to_numpy().max(axis=1),
            "method": method,
            "n_answers": model.n_answers_.to_numpy(dtype=np.int64),
        }
    )
    if gold is not None:
        frame = frame[~frame[ITEM_ID].isin([str(i) for i in gold.index])]
    return frame.reset_index(drop=True)


def worker_quality(answers: pd.DataFrame, gold: pd.Series) -> pd.DataFrame:
    """Per worker: ``worker_id, n_answers, n_gold`` (answers on gold items) and ``gold_accuracy``.

    ``gold_accuracy`` is the share of the worker's gold answers that match the gold label, NaN for a worker
    who answered no gold item. Sorted by ``worker_id``.

    Examples
    --------
    >>> import pandas as pd
    >>> answers = pd.DataFrame({"item_id": ["g1", "g1", "i1"], "worker_id": ["a", "b", "a"],
    ...                         "label": ["cat", "dog", "dog"]})
    >>> worker_quality(answers, pd.Series({"g1": "cat"}))
      worker_id  n_answers  n_gold  gold_accuracy
    0         a          2       1            1.0
    1         b          1       1            0.0
    """
    answers = answer_columns(answers)
    require_columns(answers, ANSWER_KEYS, "answers")
    truth = gold_labels(gold)
    item_ids = answers[ITEM_ID].astype(str)
    expected = item_ids.map(truth)
    on_gold = expected.notna().to_numpy()
    correct = on_gold & (answers[LABEL].astype(str).to_numpy() == expected.fillna("").to_numpy())
    tally = (
        pd.DataFrame(
            {
                WORKER_ID: answers[WORKER_ID].astype(str).to_numpy(),
                "n_answers": np.ones(len(answers), dtype=np.int64),
                "n_gold": on_gold.astype(np.int64),
                "n_correct": correct.astype(np.int64),
            }
        )
        .groupby(WORKER_ID, sort=True)
        .sum()
    )
    n_gold = tally["n_gold"].to_numpy()
    accuracy = np.full(len(tally), np.nan)
    np.divide(tally["n_correct"].to_numpy(), n_gold, out=accuracy, where=n_gold > 0)
    return pd.DataFrame(
        {
            WORKER_ID: tally.index.to_numpy(),
            "n_answers": tally["n_answers"].to_numpy(dtype=np.int64),
            "n_gold": n_gold.astype(np.int64),
            "gold_accuracy": accuracy,
        }
    )
