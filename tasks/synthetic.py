"""Synthetic crowds with known truth and known worker confusion matrices, for tests and benchmarks.

Two crowds share one shape: ``n_labels`` labels, ``answers_per_item`` answers per
item from distinct workers, about ``answers_per_worker`` answers per worker, and a worker mix of 70% good
workers, 20% uniform spammers and 10% workers biased toward one label. They differ in how good workers err:

- ``"one_coin"``: a good worker is right with probability ``accuracy`` (uniform in 0.6–0.9) and otherwise picks
  one of the other labels uniformly (Dawid-Skene's one-coin special case);
- ``"class_confusion"``: each good worker has one pair of labels they mix up. On an item of either label of the
  pair they are right with probability ``accuracy`` and otherwise give the other label of the pair; on any other
  label they are right with probability 0.95 and otherwise err uniformly. This checks that a default is not
  tuned to one-coin workers.

A *biased* worker gives their favourite label with probability 0.5 whatever the truth, and the true label
otherwise; a *spammer* answers uniformly at random. Ids are strings (``"t123"``, ``"w45"``) as read from a CSV.
Everything is drawn from ``np.random.default_rng(seed)``; nothing global is touched.

The true confusion matrices are returned, so :func:`oracle_posteriors` can compute the Bayes-optimal posterior
that no aggregator can beat on average.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

CrowdKind = Literal["one_coin", "class_confusion"]
FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]


@dataclass(frozen=True)
class SyntheticCrowd:
    """Answers (``item_id, worker_id, label``, strings) with everything an oracle needs."""

    answers: pd.DataFrame
    truth: pd.Series  # item_id -> true label
    label_names: list[str]
    errors: FloatArray  # workers x K x K, errors[w, t, a] = P(answer a | truth t)
    worker_kinds: pd.Series  # worker_id -> good / spammer / biased
    item_codes: IntArray  # per answer
    worker_codes: IntArray  # per answer
    label_codes: IntArray  # per answer
    true_codes: IntArray  # per item


def synthetic_crowd(
    n_answers: int,
    *,
    kind: CrowdKind = "one_coin",
    n_labels: int = 3,
    answers_per_item: int = 5,
    answers_per_worker: int = 500,
    seed: int = 0,
    with_frame: bool = True,
) -> SyntheticCrowd:
    """A crowd of about ``n_answers`` answers (rounded down to whole items); see the module docstring.

    ``with_frame=False`` skips building the string frame (the codes are enough for the oracle), which saves
    seconds at 6M answers.
    """
    if n_labels < 2:
        raise ValueError(f"n_labels must be at least 2, got {n_labels}")
    n_items = n_answers // answers_per_item
    n_workers = max(answers_per_item, n_answers // answers_per_worker)
    if n_items < 1:
        raise ValueError(
            f"n_answers ({n_answers}) gives no whole item at {answers_per_item} answers per item"
        )
    rng = np.random.default_rng(seed)
    k = n_labels
    kinds = np.array(["good", "spammer", "biased"])[
        rng.choice(3, size=n_workers, p=[0.7, 0.2, 0.1]).astype(np.intp)
    ]
    accuracy = rng.uniform(0.6, 0.9, n_workers)
    favourite = rng.integers(0, k, n_workers)
    pair = np.stack([rng.choice(k, size=2, replace=False) for _ in range(n_workers)])

    errors = np.empty((n_workers, k, k))
    eye = np.eye(k)
    for w in range(n_workers):
        if kinds[w] == "spammer":
            errors[w] = 1.0 / k
        elif kinds[w] == "biased":
            errors[w] = 0.5 * eye + 0.5 * eye[favourite[w]][None, :]
        elif kind == "one_coin":
            errors[w] = np.full((k, k), (1 - accuracy[w]) / (k - 1)) + eye * (
                accuracy[w] - (1 - accuracy[w]) / (k - 1)
            )
        else:
            errors[w] = np.full((k, k), 0.05 / (k - 1)) + eye * (0.95 - 0.05 / (k - 1))
            a, b = pair[w]
            for t, other in ((a, b), (b, a)):
                errors[w, t] = 0.0
                errors[w, t, t] = accuracy[w]
                errors[w, t, other] = 1 - accuracy[w]

    true_codes = rng.integers(0, k, n_items).astype(np.intp)
    # Distinct workers per item: consecutive workers from a random offset, under a random relabeling of workers.
    offset = rng.integers(0, n_workers, n_items)
    slots = np.arange(answers_per_item)
    worker_order = rng.permutation(n_workers)
    worker_codes = worker_order[(offset[:, None] + slots[None, :]) % n_workers].ravel().astype(np.intp)
    item_codes = np.repeat(np.arange(n_items, dtype=np.intp), answers_per_item)
    # Inverse-CDF sampling of every answer from its worker's row for the item's true label.
    cdf = np.cumsum(errors[worker_codes, true_codes[item_codes]], axis=1)
    draws = rng.random(len(worker_codes))[:, None]
    label_codes = np.minimum((draws >= cdf).sum(axis=1), k - 1).astype(np.intp)

    label_names = [str(j) for j in range(k)]
    item_ids = pd.Index(np.arange(n_items).astype(str)).map(lambda s: "t" + s)
    worker_ids = pd.Index(np.arange(n_workers).astype(str)).map(lambda s: "w" + s)
    answers = (
        pd.DataFrame(
            {
                "item_id": item_ids.take(item_codes),
                "worker_id": worker_ids.take(worker_codes),
                "label": pd.Index(label_names).take(label_codes),
            }
        )
        if with_frame
        else pd.DataFrame(columns=["item_id", "worker_id", "label"])
    )
    return SyntheticCrowd(
        answers=answers,
        truth=pd.Series(pd.Index(label_names).take(true_codes), index=item_ids, name="label"),
        label_names=label_names,
        errors=errors,
        worker_kinds=pd.Series(kinds, index=worker_ids, name="kind"),
        item_codes=item_codes,
        worker_codes=worker_codes,
        label_codes=label_codes,
        true_codes=true_codes,
    )


def oracle_posteriors(crowd: SyntheticCrowd) -> FloatArray:
    """The Bayes-optimal posterior per item (rows in item-code order): uniform class prior times the true
    likelihood of every answer, ``P(t | answers) ∝ Π_answers errors[w, t, a]``."""
    k = len(crowd.label_names)
    n_items = len(crowd.true_codes)
    log_errors = np.log(np.maximum(crowd.errors, 1e-300))
    log_post = np.zeros((n_items, k))
    for t in range(k):
        per_answer = log_errors[crowd.worker_codes, t, crowd.label_codes]
        log_post[:, t] = np.bincount(crowd.item_codes, weights=per_answer, minlength=n_items)
    log_post -= log_post.max(axis=1, keepdims=True)
    post = np.exp(log_post)
    return np.asarray(post / post.sum(axis=1, keepdims=True), dtype=np.float64)
