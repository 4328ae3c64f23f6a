"""Aggregation of crowd answers into one label per item: majority vote and Dawid-Skene.

Answers follow one contract (DESIGN.md, ``tasks.contracts``): a long frame with columns ``item_id``,
``worker_id`` and ``label``, all strings, one row per answer; extra columns are ignored. Labels are the user's
names; the estimators turn them into integer codes internally and back again on the way out. The label set is
passed in (``label_names``) so that a class nobody chose still has a column in ``probas_``.

Item and worker ids are factorized in sorted order, so results do not depend on the row order of the answers,
and random tie-breaks (drawn per item, in that order) are reproducible for a given ``random_state``.

This module is pure: no Prefect, no I/O beyond the two shared-CSV readers.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Self

import numpy as np
import numpy.typing as npt
import pandas as pd
from prefect import get_run_logger, task

from tasks.contracts import ITEM_ID, LABEL_COLUMNS, LabelSource, require_columns

__all__ = [
    "METHODS",
    "DawidSkene",
    "MajorityVote",
    "aggregate_answers_frame",
    "from_crowd_kit",
    "from_shared_csv",
    "read_shared_truth",
    "worker_quality",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]

METHODS: Final = ("majority_vote", "dawid_skene")
WORKER_ID: Final = "worker_id"
LABEL: Final = "label"
_ANSWER_KEYS: Final = (ITEM_ID, WORKER_ID, LABEL)

# Posteriors closer than this count as tied; the tie is then broken with the seeded generator. It is far
# below any difference EM can resolve (tol is 1e-4) and far above the floating-point noise of summing the
# same answers in another order.
_TIE_ATOL: Final = 1e-12
# Floor inside log() so a zero confusion entry (possible only with smoothing=0) costs ~-708 nats, not -inf.
_LOG_FLOOR: Final = float(np.finfo(np.float64).tiny)


# --------------------------------------------------------------------------------------------- encoding


@dataclass(frozen=True)
class _Coded:
    """Answers as integer codes: one entry per answer, plus the sorted ids the codes point into."""

    labels: pd.Index  # label_names, position = code
    items: pd.Index  # sorted item ids that have at least one answer
    workers: pd.Index  # sorted worker ids
    item: IntArray  # per answer: code of its item
    worker: IntArray  # per answer: code of its worker
    label: IntArray  # per answer: code of its label
    gold: IntArray  # per item: code of its gold label, -1 if not gold

    @property
    def n_items(self) -> int:
        return len(self.items)

    @property
    def n_labels(self) -> int:
        return len(self.labels)

    def counts(self) -> npt.NDArray[np.int64]:
        """Votes per (item, label), shape (n_items, n_labels)."""
        k = self.n_labels
        flat = np.bincount(self.item * k + self.label, minlength=self.n_items * k)
        return flat.reshape(self.n_items, k).astype(np.int64)

    def clamp(self, probas: FloatArray) -> None:
        """Overwrite the rows of gold items with their one-hot gold label, in place."""
        rows = np.flatnonzero(self.gold >= 0)
        probas[rows] = 0.0
        probas[rows, self.gold[rows]] = 1.0


def _label_index(label_names: Sequence[str]) -> pd.Index:
    if isinstance(label_names, str):
        raise ValueError(f"label_names must be a sequence of labels, not the single string {label_names!r}")
    names = [str(name) for name in label_names]
    if not names:
        raise ValueError("label_names is empty; pass every label a worker may answer")
    duplicated = sorted(name for name, count in Counter(names).items() if count > 1)
    if duplicated:
        raise ValueError(f"label_names must be unique; {duplicated} appear more than once")
    return pd.Index(names, name=LABEL)


def _gold_codes(gold: pd.Series, labels: pd.Index) -> pd.Series:
    """Gold as ``item_id (str) -> label code``, validated against the label set."""
    if not isinstance(gold, pd.Series):
        raise TypeError(f"gold must be a pandas Series item_id -> label, not {type(gold).__name__}")
    if gold.isna().any():
        missing = [str(i) for i in gold.index[gold.isna()][:5]]
        raise ValueError(f"gold has no label for item(s) {missing}; drop them or give their label")
    values = gold.astype(str)
    values.index = pd.Index([str(i) for i in gold.index], name=ITEM_ID)
    codes = labels.get_indexer(pd.Index(values))
    if (codes < 0).any():
        first = int(np.flatnonzero(codes < 0)[0])
        raise ValueError(
            f"gold label {values.iloc[first]!r} (item_id {values.index[first]!r}) is not one of "
            f"label_names {list(labels)}"
        )
    coded = pd.Series(codes, index=values.index)
    dup = coded.index.duplicated(keep=False)
    if dup.any() and coded[dup].groupby(level=0).nunique().gt(1).any():
        conflicting = sorted(coded[dup].groupby(level=0).nunique().loc[lambda s: s > 1].index)[:5]
        raise ValueError(f"gold gives conflicting labels for item(s) {conflicting}")
    return coded[~coded.index.duplicated()]


def _encode(answers: pd.DataFrame, labels: pd.Index, gold: pd.Series | None) -> _Coded:
    require_columns(answers, _ANSWER_KEYS, "answers")
    frame = answers.loc[:, list(_ANSWER_KEYS)]
    missing = frame.isna().to_numpy()
    if missing.any():
        row, col = (int(x[0]) for x in np.nonzero(missing))
        raise ValueError(
            f"answers row {frame.index[row]!r} has no {_ANSWER_KEYS[col]}; every answer needs "
            f"{list(_ANSWER_KEYS)}"
        )
    item_codes, items = pd.factorize(frame[ITEM_ID].astype(str), sort=True)
    worker_codes, workers = pd.factorize(frame[WORKER_ID].astype(str), sort=True)
    # Factorize first, then look up the few distinct labels, instead of hashing every answer twice.
    raw_codes, raw_labels = pd.factorize(frame[LABEL].astype(str))
    lookup = labels.get_indexer(pd.Index(raw_labels))
    label_codes = lookup[raw_codes] if len(raw_codes) else raw_codes
    if (label_codes < 0).any():
        unknown = [str(x) for x in pd.Index(raw_labels)[lookup < 0]]
        first = int(np.flatnonzero(label_codes < 0)[0])
        raise ValueError(
            f"answer with label {str(frame[LABEL].iloc[first])!r} (row {frame.index[first]!r}: "
            f"item_id={str(frame[ITEM_ID].iloc[first])!r}, worker_id={str(frame[WORKER_ID].iloc[first])!r}) "
            f"is not one of label_names {list(labels)}; unknown label(s): {sorted(unknown)[:10]}"
        )
    items_index = pd.Index(items, name=ITEM_ID)
    gold_per_item = np.full(len(items_index), -1, dtype=np.intp)
    if gold is not None:
        coded_gold = _gold_codes(gold, labels)
        position = items_index.get_indexer(coded_gold.index)
        known = position >= 0  # gold items nobody answered cannot inform anything; they are ignored
        gold_per_item[position[known]] = coded_gold.to_numpy()[known]
    return _Coded(
        labels=labels,
        items=items_index,
        workers=pd.Index(workers, name=WORKER_ID),
        item=np.asarray(item_codes, dtype=np.intp),
        worker=np.asarray(worker_codes, dtype=np.intp),
        label=np.asarray(label_codes, dtype=np.intp),
        gold=gold_per_item,
    )


def _argmax_random_ties(scores: FloatArray, rng: np.random.Generator, atol: float) -> IntArray:
    """Row-wise argmax; among entries within ``atol`` of the row maximum, pick one uniformly at random."""
    if scores.shape[0] == 0:
        return np.zeros(0, dtype=np.intp)
    tied = scores >= scores.max(axis=1, keepdims=True) - atol
    noise = rng.random(scores.shape)
    return np.asarray(np.where(tied, noise, -1.0).argmax(axis=1), dtype=np.intp)


def _labels_series(coded: _Coded, codes: IntArray) -> pd.Series:
    return pd.Series(coded.labels.take(codes).to_numpy(), index=coded.items, name=LABEL)


def _probas_frame(coded: _Coded, probas: FloatArray) -> pd.DataFrame:
    return pd.DataFrame(probas, index=coded.items, columns=coded.labels)


# --------------------------------------------------------------------------------------------- estimators


class MajorityVote:
    """Majority vote: each item gets the label most of its workers chose.

    ``probas_`` are the vote shares. Ties are broken uniformly at random with
    ``np.random.default_rng(random_state)`` (never by label order, which would bias towards the first label).
    Items in ``gold`` (Series ``item_id -> label``) are clamped to their gold label.

    Attributes (after ``fit``): ``labels_`` (Series ``item_id -> label``), ``probas_`` (DataFrame items x
    label_names).
    """

    labels_: pd.Series
    probas_: pd.DataFrame

    def __init__(self, label_names: Sequence[str], *, random_state: int = 0) -> None:
        self.label_names = label_names
        self.random_state = random_state

    def fit(self, answers: pd.DataFrame, gold: pd.Series | None = None) -> Self:
        coded = _encode(answers, _label_index(self.label_names), gold)
        counts = coded.counts().astype(np.float64)
        rng = np.random.default_rng(self.random_state)
        # Vote counts are exact integers, so only exact ties are ties.
        codes = _argmax_random_ties(counts, rng, atol=0.0)
        probas = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1.0)
        coded.clamp(probas)
        is_gold = coded.gold >= 0
        codes[is_gold] = coded.gold[is_gold]
        self.labels_ = _labels_series(coded, codes)
        self.probas_ = _probas_frame(coded, probas)
        return self

    def predict(self, answers: pd.DataFrame) -> pd.Series:
        return self.fit(answers).labels_

    def predict_proba(self, answers: pd.DataFrame) -> pd.DataFrame:
        return self.fit(answers).probas_


class DawidSkene:
    """Dawid-Skene: each worker has a confusion matrix, fitted jointly with the true labels by EM.

    Dawid, A. P., & Skene, A. M. (1979). Maximum likelihood estimation of observer error-rates using the EM
    algorithm. Journal of the Royal Statistical Society, Series C (Applied Statistics), 28(1), 20-28.

    EM starts from the majority-vote shares and alternates an M-step (class priors and per-worker confusion
    matrices from the current posteriors) and an E-step (posteriors from priors and confusion matrices, in log
    space). It stops when no posterior moves by more than ``tol`` between iterations, or after ``max_iter``.

    Smoothing is MAP rather than pure maximum likelihood: every row of every worker's confusion matrix gets
    ``smoothing`` Dirichlet pseudo-answers spread as a one-coin worker who is right with probability
    ``prior_accuracy`` and otherwise errs uniformly; class priors get one pseudo-count per class (Laplace),
    which also keeps a class nobody chose alive. Items in ``gold`` (Series ``item_id -> label``) have their
    posteriors clamped to one-hot in every E-step, so they inform the confusion matrices and the priors.

    Attributes (after ``fit``): ``labels_`` (Series ``item_id -> label``; ties within 1e-12 broken with the
    seeded generator), ``probas_`` (DataFrame items x label_names, rows sum to 1), ``priors_`` (Series over
    label_names), ``errors_`` (array workers x K x K; ``errors_[w, t, a]`` is the probability that worker
    ``w`` answers ``a`` when the truth is ``t``; rows sum to 1), ``workers_`` (Index aligned with
    ``errors_``), ``n_iter_`` (E-steps run).
    """

    labels_: pd.Series
    probas_: pd.DataFrame
    priors_: pd.Series
    errors_: FloatArray
    workers_: pd.Index
    n_iter_: int

    def __init__(
        self,
        label_names: Sequence[str],
        *,
        max_iter: int = 100,
        tol: float = 1e-4,
        # Two pseudo-answers per confusion row: the prior weighs as much as two real answers on items of that
        # class. A worker with 3 agreements on a class is credited (3 + 1.4) / 5 = 0.88 on it, with 10
        # agreements 0.95, with 50 0.99 -- trust grows with evidence instead of jumping to 1.0 after one
        # answer, while anyone with a few dozen answers is judged by their answers, not by the prior. The
        # pseudo-counts are centred on a one-coin worker (below) rather than on a uniform row, because
        # uniform pseudo-counts would pull every worker towards a spammer. Chosen from these arithmetic
        # considerations, not tuned on any dataset.
        smoothing: float = 2.0,
        # The centre of the prior: a worker clearly better than chance (0.7 > 1/K for every K >= 2), so the
        # prior never makes an unknown worker look like a spammer, yet far from perfect, so it never makes
        # one look like an expert. Errors are spread evenly over the other labels (a one-coin worker).
        prior_accuracy: float = 0.7,
        random_state: int = 0,
    ) -> None:
        self.label_names = label_names
        self.max_iter = max_iter
        self.tol = tol
        self.smoothing = smoothing
        self.prior_accuracy = prior_accuracy
        self.random_state = random_state

    def _check_params(self) -> None:
        if self.max_iter < 0:
            raise ValueError(f"max_iter must be >= 0, got {self.max_iter}")
        if not self.tol >= 0:
            raise ValueError(f"tol must be >= 0, got {self.tol}")
        if not self.smoothing >= 0:
            raise ValueError(f"smoothing must be >= 0 (0 is plain maximum likelihood), got {self.smoothing}")
        if not 0.0 <= self.prior_accuracy <= 1.0:
            raise ValueError(f"prior_accuracy must be in [0, 1], got {self.prior_accuracy}")

    def _pseudo_counts(self, k: int) -> FloatArray:
        """Dirichlet pseudo-counts for each confusion matrix: a one-coin worker, ``smoothing`` per row."""
        if k == 1:
            return np.full((1, 1), self.smoothing)
        off = (1.0 - self.prior_accuracy) / (k - 1)
        shape = np.full((k, k), off) + np.eye(k) * (self.prior_accuracy - off)
        return np.asarray(self.smoothing * shape, dtype=np.float64)

    def fit(self, answers: pd.DataFrame, gold: pd.Series | None = None) -> Self:
        self._check_params()
        coded = _encode(answers, _label_index(self.label_names), gold)
        k = coded.n_labels
        n_workers = len(coded.workers)
        # worker * K + answer: each answer's flat position in a (workers, K) slice of the confusion array.
        worker_answer = coded.worker * k + coded.label
        pseudo = self._pseudo_counts(k)

        def m_step(probas: FloatArray) -> tuple[FloatArray, FloatArray]:
            priors = (probas.sum(axis=0) + 1.0) / (coded.n_items + k)
            errors = np.empty((n_workers, k, k))
            for true in range(k):  # a loop over classes; the answers are summed by bincount
                weights = probas[:, true][coded.item]
                errors[:, true, :] = np.bincount(
                    worker_answer, weights=weights, minlength=n_workers * k
                ).reshape(n_workers, k)
            errors += pseudo
            totals = errors.sum(axis=2, keepdims=True)
            # A row with no evidence and no pseudo-counts (smoothing=0) knows nothing: uniform.
            errors = np.divide(errors, totals, out=np.full_like(errors, 1.0 / k), where=totals > 0)
            return priors, errors

        def e_step(priors: FloatArray, errors: FloatArray) -> FloatArray:
            log_errors = np.log(np.maximum(errors, _LOG_FLOOR))
            log_post = np.tile(np.log(np.maximum(priors, _LOG_FLOOR)), (coded.n_items, 1))
            for true in range(k):
                per_answer = log_errors[:, true, :].ravel()[worker_answer]
                log_post[:, true] += np.bincount(coded.item, weights=per_answer, minlength=coded.n_items)
            log_post -= log_post.max(axis=1, keepdims=True)
            post: FloatArray = np.exp(log_post)
            post /= post.sum(axis=1, keepdims=True)
            coded.clamp(post)
            return post

        counts = coded.counts().astype(np.float64)
        probas = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1.0)
        coded.clamp(probas)
        priors, errors = m_step(probas)
        n_iter = 0
        while n_iter < self.max_iter:
            new = e_step(priors, errors)
            n_iter += 1
            change = float(np.abs(new - probas).max()) if new.size else 0.0
            probas = new
            priors, errors = m_step(probas)
            if change < self.tol:
                break

        rng = np.random.default_rng(self.random_state)
        codes = _argmax_random_ties(probas, rng, atol=_TIE_ATOL)
        self.labels_ = _labels_series(coded, codes)
        self.probas_ = _probas_frame(coded, probas)
        self.priors_ = pd.Series(priors, index=coded.labels, name="prior")
        self.errors_ = errors
        self.workers_ = coded.workers
        self.n_iter_ = n_iter
        return self

    def predict(self, answers: pd.DataFrame) -> pd.Series:
        return self.fit(answers).labels_

    def predict_proba(self, answers: pd.DataFrame) -> pd.DataFrame:
        return self.fit(answers).probas_


# --------------------------------------------------------------------------------------------- functions


def aggregate_answers_frame(
    answers: pd.DataFrame,
    label_names: Sequence[str],
    *,
    method: str = "dawid_skene",
    gold: pd.Series | None = None,
    random_state: int = 0,
) -> pd.DataFrame:
    """One label per answered, non-gold item.

    Returns columns ``item_id, label, confidence, method, n_answers``, sorted by ``item_id``; ``confidence``
    is the item's largest posterior (vote share for majority vote). Gold items are used (clamped) but not
    returned. ``method`` is one of :data:`METHODS`.
    """
    model: MajorityVote | DawidSkene
    if method == "majority_vote":
        model = MajorityVote(label_names, random_state=random_state)
    elif method == "dawid_skene":
        model = DawidSkene(label_names, random_state=random_state)
    else:
        raise ValueError(f"unknown aggregation method {method!r}; choose one of {list(METHODS)}")
    model.fit(answers, gold)
    items = model.labels_.index
    n_answers = answers[ITEM_ID].astype(str).value_counts().reindex(items).to_numpy(dtype=np.int64)
    frame = pd.DataFrame(
        {
            ITEM_ID: items.to_numpy(),
            LABEL: model.labels_.to_numpy(),
            "confidence": model.probas_.to_numpy().max(axis=1) if len(items) else np.zeros(0),
            "method": method,
            "n_answers": n_answers,
        }
    )
    if gold is not None:
        frame = frame[~frame[ITEM_ID].isin([str(i) for i in gold.index])]
    return frame.reset_index(drop=True)


def worker_quality(answers: pd.DataFrame, gold: pd.Series) -> pd.DataFrame:
    """Per worker: ``worker_id, n_answers, n_gold`` (answers on gold items) and ``gold_accuracy``.

    ``gold_accuracy`` is the share of the worker's gold answers that match the gold label, NaN for a worker
    who answered no gold item. Sorted by ``worker_id``.
    """
    require_columns(answers, _ANSWER_KEYS, "answers")
    truth = pd.Series(gold.astype(str).to_numpy(), index=[str(i) for i in gold.index])
    truth = truth[~truth.index.duplicated()]
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


def from_crowd_kit(frame: pd.DataFrame) -> pd.DataFrame:
    """crowd-kit's ``task, worker, label`` frame as our ``item_id, worker_id, label`` contract (strings)."""
    require_columns(frame, ("task", "worker", "label"), "crowd-kit answers")
    return pd.DataFrame(
        {
            ITEM_ID: frame["task"].astype(str).to_numpy(),
            WORKER_ID: frame["worker"].astype(str).to_numpy(),
            LABEL: frame["label"].astype(str).to_numpy(),
        }
    )


def from_shared_csv(answers_csv: Path) -> pd.DataFrame:
    """A shared-data ``answers.csv`` (``question, worker, answer``) as ``item_id, worker_id, label`` (str)."""
    raw = pd.read_csv(answers_csv, dtype=str, keep_default_na=False)
    require_columns(raw, ("question", "worker", "answer"), str(answers_csv))
    return pd.DataFrame(
        {
            ITEM_ID: raw["question"].to_numpy(),
            WORKER_ID: raw["worker"].to_numpy(),
            LABEL: raw["answer"].to_numpy(),
        }
    ).astype(str)


def read_shared_truth(truth_csv: Path) -> pd.Series:
    """A shared-data ``truth.csv`` (``question, truth``) as a Series ``item_id -> label`` (strings)."""
    raw = pd.read_csv(truth_csv, dtype=str, keep_default_na=False)
    require_columns(raw, ("question", "truth"), str(truth_csv))
    return pd.Series(
        raw["truth"].astype(str).to_numpy(),
        index=pd.Index(raw["question"].astype(str).to_numpy(), name=ITEM_ID),
        name=LABEL,
    )


@task(name="aggregate-answers", task_run_name="aggregate-answers-round-{round_id}")
def aggregate_answers(
    answers: pd.DataFrame,
    label_names: Sequence[str],
    *,
    method: str,
    gold: pd.Series,
    round_id: int,
) -> pd.DataFrame:
    """Labels (the label contract, ``source = crowd``) for every answered non-gold item, from all answers so far:
    worker confusion is estimated from the whole project, not one round's handful of answers per worker."""
    labels = aggregate_answers_frame(answers, label_names, method=method, gold=gold).assign(
        round_id=round_id, source=LabelSource.CROWD.value
    )
    get_run_logger().info(
        "aggregated %d answers into %d labels (%s), mean confidence %.3f",
        len(answers),
        len(labels),
        method,
        labels["confidence"].mean() if len(labels) else float("nan"),
    )
    return labels[list(LABEL_COLUMNS)]
