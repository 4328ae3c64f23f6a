"""Aggregation of crowd answers into one label per item: majority vote, Wawa and Dawid-Skene (full, one-coin,
gold-anchored, warm-started).

Answers follow one contract (``labelflow.contracts``): a long frame with columns ``item_id``,
``worker_id`` and ``label``, all strings, one row per answer; an ``answer_id`` column, when present, must be
unique; other columns are ignored. Labels are the user's names; the estimators turn them into integer codes
internally and back again on the way out. The label set is passed in (``label_names``) so that a class nobody
chose still has a column in ``probas_``.

Item and worker ids are factorized in sorted order, so results do not depend on the row order of the answers,
and random tie-breaks (drawn per item, in that order) are reproducible for a given ``random_state``.

Speed: the answers become one sparse count matrix ``S`` (items x (worker, answer) pairs), built once in linear
time. Every EM iteration is then two sparse-dense products — the E-step ``S @ log_errors`` and the M-step
``S.T @ posteriors``, each one pass over the non-zeros for all K classes at once — and no Python loop over
classes, workers or answers. EM itself converges linearly and slowly when items have few answers (on 6M answers,
46 iterations to move no posterior by 1e-3); SQUAREM extrapolation cuts that to under 20 iterations.

This module is pure: no Prefect, no I/O beyond the two shared-CSV readers.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Self

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import scipy.sparse as sp
from prefect import get_run_logger, task
from scipy.special import gammaln

from labelflow.contracts import (
    ITEM_ID,
    LABEL_COLUMNS,
    ContractError,
    LabelSource,
    empty_frame,
    require_columns,
)

__all__ = [
    "METHODS",
    "AnswersError",
    "DawidSkene",
    "MajorityVote",
    "OneCoinDawidSkene",
    "Wawa",
    "aggregate_answers_frame",
    "from_crowd_kit",
    "from_shared_csv",
    "make_aggregator",
    "read_shared_truth",
    "spammer_scores",
    "worker_quality",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]

METHODS: Final = ("majority_vote", "wawa", "dawid_skene", "one_coin_dawid_skene")
WORKER_ID: Final = "worker_id"
LABEL: Final = "label"
ANSWER_ID: Final = "answer_id"
_ANSWER_KEYS: Final = (ITEM_ID, WORKER_ID, LABEL)

# Posteriors closer than this count as tied; the tie is then broken with the seeded generator. It is far
# below any difference EM can resolve (tol is 1e-4) and far above the floating-point noise of summing the
# same answers in another order.
_TIE_ATOL: Final = 1e-12
# Floor inside log() so a zero confusion entry (possible only with smoothing=0) costs ~-708 nats, not -inf.
_LOG_FLOOR: Final = float(np.finfo(np.float64).tiny)
# How many offending rows an error message lists.
_SHOW: Final = 5


class AnswersError(ContractError):
    """The answers cannot be aggregated as given; the message names the offending rows and what to fix.

    A :class:`~labelflow.contracts.ContractError` (and so a ``ValueError``): a round that meets one stops as
    ``failed`` and keeps every answer it already stored.
    """


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
    _design: list[sp.csr_matrix] = field(default_factory=list, repr=False)

    @property
    def n_items(self) -> int:
        return len(self.items)

    @property
    def n_labels(self) -> int:
        return len(self.labels)

    @property
    def n_workers(self) -> int:
        return len(self.workers)

    def counts(self) -> npt.NDArray[np.int64]:
        """Votes per (item, label), shape (n_items, n_labels)."""
        k = self.n_labels
        flat = np.bincount(self.item * k + self.label, minlength=self.n_items * k)
        return flat.reshape(self.n_items, k).astype(np.int64)

    def n_answers(self) -> npt.NDArray[np.int64]:
        return np.bincount(self.item, minlength=self.n_items).astype(np.int64)

    def design(self) -> sp.csr_matrix:
        """Sparse counts ``S[item, worker * K + answer]`` (built once; COO -> CSR is a linear-time bucket sort)."""
        if not self._design:
            k = self.n_labels
            matrix = sp.csr_matrix(
                (np.ones(len(self.item)), (self.item, self.worker * k + self.label)),
                shape=(self.n_items, self.n_workers * k),
            )
            self._design.append(matrix)
        return self._design[0]

    def clamp(self, probas: FloatArray) -> None:
        """Overwrite the rows of gold items with their one-hot gold label, in place."""
        rows = np.flatnonzero(self.gold >= 0)
        probas[rows] = 0.0
        probas[rows, self.gold[rows]] = 1.0

    def clamp_codes(self, codes: IntArray) -> None:
        is_gold = self.gold >= 0
        codes[is_gold] = self.gold[is_gold]


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
        missing = [str(i) for i in gold.index[gold.isna()][:_SHOW]]
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
        conflicting = sorted(coded[dup].groupby(level=0).nunique().loc[lambda s: s > 1].index)[:_SHOW]
        raise ValueError(f"gold gives conflicting labels for item(s) {conflicting}")
    return coded[~coded.index.duplicated()]


def _rows(frame: pd.DataFrame, positions: IntArray) -> str:
    """Rows at ``positions`` as ``row <index>: item_id=…, worker_id=…, label=…`` for an error message."""
    shown = []
    for pos in positions[:_SHOW]:
        row = frame.iloc[int(pos)]
        values = ", ".join(f"{c}={str(row[c])!r}" for c in frame.columns)
        shown.append(f"row {frame.index[int(pos)]!r}: {values}")
    more = f" (and {len(positions) - _SHOW} more)" if len(positions) > _SHOW else ""
    return "; ".join(shown) + more


def _factorize_as_str(column: pd.Series) -> tuple[IntArray, pd.Index]:
    """Codes and sorted unique ids of ``column`` as strings — the result of
    ``factorize(column.astype(str), sort=True)`` without building a Python string per answer.

    Arrow-backed strings (what ``read_csv`` gives on pandas 3) are dictionary-encoded by Arrow; ids read as
    numbers (``42``) are factorized as numbers and only the uniques become strings. Codes are then renumbered so
    that the uniques are in string order, which makes results independent of row order.
    """
    array = column.array
    if isinstance(array, pd.arrays.ArrowStringArray):
        arrow = pa.array(array)  # zero-copy: the ChunkedArray behind the column
        chunks = arrow if isinstance(arrow, pa.ChunkedArray) else pa.chunked_array([arrow])
        encoded = chunks.dictionary_encode().combine_chunks()
        codes = np.asarray(encoded.indices.to_numpy(zero_copy_only=False), dtype=np.intp)
        # Sort the uniques in Arrow (no Python string per id); Arrow strings are unique after encoding.
        arrow_order = np.asarray(pc.sort_indices(encoded.dictionary).to_numpy(), dtype=np.intp)
        arrow_rank = np.empty(len(arrow_order), dtype=np.intp)
        arrow_rank[arrow_order] = np.arange(len(arrow_order))
        sorted_names = pd.Index(pd.array(encoded.dictionary.take(pa.array(arrow_order)), dtype="str"))
        return arrow_rank[codes], sorted_names
    else:
        raw_codes, uniques = pd.factorize(column)
        codes = np.asarray(raw_codes, dtype=np.intp)
        names = pd.Index([str(u) for u in uniques], dtype=object)
    if names.has_duplicates:  # 1 and "1" in one object column: the same id once they are strings
        merged, unique_names = pd.factorize(names, sort=True)
        return np.asarray(merged[codes], dtype=np.intp), pd.Index(unique_names, dtype=object)
    order = names.argsort()
    rank = np.empty(len(order), dtype=np.intp)
    rank[order] = np.arange(len(order))
    return rank[codes], names.take(order)


def _encode(
    answers: pd.DataFrame,
    labels: pd.Index,
    gold: pd.Series | None,
    items: Sequence[str] | pd.Index | None = None,
) -> _Coded:
    require_columns(answers, _ANSWER_KEYS, "answers")
    if answers.empty:
        raise AnswersError(
            "answers is empty: there is nothing to aggregate. Collect answers first (a wave whose answers "
            "have not arrived yet has none)."
        )
    frame = answers[list(_ANSWER_KEYS)]
    for column in _ANSWER_KEYS:
        missing = frame[column].isna().to_numpy()
        if missing.any():
            raise AnswersError(
                f"answers have no {column} in {_rows(frame, np.flatnonzero(missing))}; every answer needs "
                f"{list(_ANSWER_KEYS)}"
            )
    if ANSWER_ID in answers.columns:
        duplicated = answers[ANSWER_ID].duplicated(keep=False).to_numpy()
        if duplicated.any():
            shown = answers.loc[duplicated, [ANSWER_ID, *_ANSWER_KEYS]]
            raise AnswersError(
                f"answer_id must be unique; {int(duplicated.sum())} rows share an answer_id: "
                f"{_rows(shown, np.arange(len(shown)))}. Drop the repeated rows (the store never keeps two)."
            )
    item_codes, item_ids = _factorize_as_str(frame[ITEM_ID])
    worker_codes, workers = _factorize_as_str(frame[WORKER_ID])
    # Factorize first, then look up the few distinct labels, instead of turning every answer into a string.
    raw_codes, raw_labels = pd.factorize(frame[LABEL])
    lookup = labels.get_indexer(pd.Index([str(x) for x in raw_labels]))
    label_codes = lookup[raw_codes]
    if (label_codes < 0).any():
        unknown = sorted(str(x) for x in pd.Index(raw_labels)[lookup < 0])
        bad = np.flatnonzero(label_codes < 0)
        raise AnswersError(
            f"answer label(s) {unknown[:10]} are not among label_names {list(labels)}: "
            f"{_rows(frame, bad)}. Fix the answers or add the label to the project's labels."
        )
    items_index = pd.Index(item_ids, name=ITEM_ID)
    if items is not None:
        unknown_items = items_index.difference(pd.Index([str(i) for i in items]))
        if len(unknown_items):
            bad = np.flatnonzero(np.isin(item_codes, items_index.get_indexer(unknown_items)))
            raise AnswersError(
                f"{len(unknown_items)} answered item(s) are not known items, e.g. "
                f"{[str(i) for i in unknown_items[:_SHOW]]}: {_rows(frame, bad)}. Register the items first."
            )
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


def _n_answers_series(coded: _Coded) -> pd.Series:
    return pd.Series(coded.n_answers(), index=coded.items, name="n_answers")


# --------------------------------------------------------------------------------------------- estimators


class _FitPredict:
    """``predict`` and ``predict_proba`` as fit-then-read, for every aggregator (crowd-kit's estimator shape)."""

    labels_: pd.Series
    probas_: pd.DataFrame
    n_answers_: pd.Series

    def fit(self, answers: pd.DataFrame) -> Self:
        raise NotImplementedError

    def _set_results(self, coded: _Coded, probas: FloatArray, codes: IntArray) -> None:
        """``labels_``, ``probas_`` and ``n_answers_`` from the fitted posteriors and chosen label codes."""
        self.labels_ = _labels_series(coded, codes)
        self.probas_ = _probas_frame(coded, probas)
        self.n_answers_ = _n_answers_series(coded)

    def predict(self, answers: pd.DataFrame) -> pd.Series:
        return self.fit(answers).labels_

    def predict_proba(self, answers: pd.DataFrame) -> pd.DataFrame:
        return self.fit(answers).probas_


class MajorityVote(_FitPredict):
    """Majority vote: each item gets the label most of its workers chose.

    ``probas_`` are the vote shares. Ties are broken uniformly at random with
    ``np.random.default_rng(random_state)`` (never by label order, which would bias towards the first label).
    Items in ``gold`` (Series ``item_id -> label``) are clamped to their gold label.

    Attributes (after ``fit``): ``labels_`` (Series ``item_id -> label``), ``probas_`` (DataFrame items x
    label_names), ``n_answers_`` (Series ``item_id -> answers``).
    """

    labels_: pd.Series
    probas_: pd.DataFrame
    n_answers_: pd.Series

    def __init__(self, label_names: Sequence[str], *, random_state: int = 0) -> None:
        self.label_names = label_names
        self.random_state = random_state

    def fit(
        self,
        answers: pd.DataFrame,
        gold: pd.Series | None = None,
        *,
        items: Sequence[str] | pd.Index | None = None,
    ) -> Self:
        """``items``, when given, are the known item ids; an answer on any other item is an error."""
        coded = _encode(answers, _label_index(self.label_names), gold, items)
        counts = coded.counts().astype(np.float64)
        rng = np.random.default_rng(self.random_state)
        # Vote counts are exact integers, so only exact ties are ties.
        codes = _argmax_random_ties(counts, rng, atol=0.0)
        probas = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1.0)
        coded.clamp(probas)
        coded.clamp_codes(codes)
        self._set_results(coded, probas, codes)
        return self


class Wawa(_FitPredict):
    """Worker Agreement With Aggregate: majority vote, then a vote weighted by each worker's agreement with it.

    Appen (CrowdFlower) "Worker Agreement With Aggregate"; the same two-pass algorithm as crowd-kit's ``Wawa``
    (Ustalov et al., "Learning from Crowds with Crowd-Kit", JOSS 2024). A worker's weight (``skills_``) is the
    share of their answers that match the majority-vote label; ``probas_`` are the weighted vote shares (the
    plain vote shares where every voter has weight 0). Ties are broken with the seeded generator, gold items
    are clamped in both passes.

    Attributes (after ``fit``): ``labels_``, ``probas_``, ``n_answers_`` as :class:`MajorityVote`, and
    ``skills_`` (Series ``worker_id -> agreement``).
    """

    labels_: pd.Series
    probas_: pd.DataFrame
    n_answers_: pd.Series
    skills_: pd.Series

    def __init__(self, label_names: Sequence[str], *, random_state: int = 0) -> None:
        self.label_names = label_names
        self.random_state = random_state

    def fit(
        self,
        answers: pd.DataFrame,
        gold: pd.Series | None = None,
        *,
        items: Sequence[str] | pd.Index | None = None,
    ) -> Self:
        coded = _encode(answers, _label_index(self.label_names), gold, items)
        k = coded.n_labels
        rng = np.random.default_rng(self.random_state)
        counts = coded.counts().astype(np.float64)
        majority = _argmax_random_ties(counts, rng, atol=0.0)
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
        codes = _argmax_random_ties(probas, rng, atol=_TIE_ATOL)
        coded.clamp_codes(codes)
        self._set_results(coded, probas, codes)
        self.skills_ = pd.Series(skills, index=coded.workers, name="skill")
        return self


def one_coin_matrices(accuracy: FloatArray, k: int) -> FloatArray:
    """Confusion matrices (len(accuracy) x k x k) of one-coin workers: right with probability ``accuracy``,
    otherwise any other label uniformly."""
    if k == 1:
        return np.ones((len(accuracy), 1, 1))
    off = (1.0 - accuracy) / (k - 1)
    return np.asarray(
        off[:, None, None] + np.eye(k)[None] * (accuracy - off)[:, None, None], dtype=np.float64
    )


def spammer_scores(errors: FloatArray) -> FloatArray:
    """Raykar & Yu's spammer score per worker from confusion matrices ``errors[w, t, a]``.

    Raykar, V. C., & Yu, S. (2012). Eliminating spammers and ranking annotators for crowdsourced labeling
    tasks. JMLR 13, 491-518 (Section 5, categorical annotations): ``S = 1/(K(K-1)) Σ_{c<c'} Σ_k (a_ck -
    a_c'k)²``. A spammer's answers do not depend on the truth (all rows equal) and score 0, whatever label they
    favour; a perfect worker scores 1.
    """
    k = errors.shape[1]
    if k < 2:
        return np.zeros(errors.shape[0])
    diff = errors[:, :, None, :] - errors[:, None, :, :]  # w, c, c', answer
    return np.asarray((diff**2).sum(axis=(1, 2, 3)) / 2.0 / (k * (k - 1)), dtype=np.float64)


# Candidate prior strengths (pseudo-answers per confusion row, in units of K) for the evidence-chosen
# shrinkage, from strongest to weakest so that a tie keeps the simpler model; inf is one-coin. Factors of 4 apart:
# the marginal likelihood is flat at that scale, and a finer grid changed no synthetic-crowd figure.
_SHRINKAGE_GRID: Final = (float("inf"), 256.0, 64.0, 16.0, 4.0, 1.0, 0.25)


def one_coin_accuracy(counts: FloatArray, smoothing: float, prior_accuracy: float) -> FloatArray:
    """Each worker's one-coin accuracy from expected counts ``counts[w, t, a]``: the MAP estimate under a Beta
    prior of ``smoothing`` pseudo-answers centred on ``prior_accuracy``; 1/K for a worker with no evidence."""
    n_workers, k, _ = counts.shape
    denominator = counts.sum(axis=(1, 2)) + smoothing
    accuracy = np.divide(
        np.trace(counts, axis1=1, axis2=2) + smoothing * prior_accuracy,
        denominator,
        out=np.full(n_workers, 1.0 / k),
        where=denominator > 0,
    )
    return np.asarray(np.clip(accuracy, 0.0, 1.0), dtype=np.float64)


def evidence_shrinkage(counts: FloatArray, accuracy: FloatArray) -> FloatArray:
    """Per worker, the Dirichlet prior strength (pseudo-answers per row) around their one-coin matrix that best
    explains their expected counts: type-II maximum likelihood (empirical Bayes) over :data:`_SHRINKAGE_GRID`.

    Row ``t`` of worker ``w`` has Dirichlet-multinomial evidence ``Γ(α)/Γ(α+n_t) Π_a Γ(c_ta + α m_ta)/Γ(α m_ta)``
    with ``m`` the one-coin matrix; ``α = inf`` is the multinomial ``Π_a m_ta^c_ta``. A worker whose rows
    differ from one-coin by no more than sampling noise gets ``inf`` (one parameter instead of K(K-1)); a
    worker who favours a label or mixes up a pair gets a weak prior and their own confusion.
    """
    n_workers, k, _ = counts.shape
    if k < 2:
        return np.full(n_workers, np.inf)
    # Floors keep Γ finite where the one-coin matrix has a zero (accuracy 0 or 1, possible without smoothing).
    correct = np.maximum(accuracy, _LOG_FLOOR)
    wrong = np.maximum((1.0 - accuracy) / (k - 1), _LOG_FLOOR)
    base = wrong[:, None, None] + np.eye(k)[None] * (correct - wrong)[:, None, None]
    rows = counts.sum(axis=2)
    grid = np.asarray(_SHRINKAGE_GRID) * k
    evidence = np.empty((n_workers, len(grid)))
    evidence[:, 0] = (counts * np.log(base)).sum(axis=(1, 2))
    for j, alpha in enumerate(grid[1:], start=1):
        # Σ_t Σ_a Γ(α m_ta) in closed form: each row has one diagonal and K - 1 off-diagonal cells.
        prior_norm = k * (gammaln(alpha * correct) + (k - 1) * gammaln(alpha * wrong) - gammaln(alpha))
        evidence[:, j] = (
            gammaln(counts + alpha * base).sum(axis=(1, 2)) - gammaln(rows + alpha).sum(axis=1) - prior_norm
        )
    return np.asarray(grid[evidence.argmax(axis=1)], dtype=np.float64)


def shrunk_confusion(counts: FloatArray, one_coin: FloatArray, shrinkage: FloatArray) -> FloatArray:
    """Confusion rows ``(counts + s * one_coin) / (n + s)`` per worker (posterior means under the Dirichlet
    prior); ``s = inf`` is the one-coin matrix itself."""
    k = counts.shape[1]
    finite = np.isfinite(shrinkage)
    errors = one_coin.copy()
    rows = counts[finite] + shrinkage[finite, None, None] * one_coin[finite]
    totals = rows.sum(axis=2, keepdims=True)
    # A row with no evidence and no pseudo-counts (shrinkage=0) knows nothing: uniform.
    errors[finite] = np.divide(rows, totals, out=np.full_like(rows, 1.0 / k), where=totals > 0)
    return errors


def _squarem_jump(history: list[tuple[FloatArray, FloatArray]]) -> tuple[FloatArray, FloatArray]:
    """Varadhan & Roland (2008) SQUAREM step from three successive EM parameters, on log-probabilities (so
    no cell can turn negative), renormalized to distributions."""
    logs = [
        np.concatenate([np.log(np.maximum(p, _LOG_FLOOR)), np.log(np.maximum(e, _LOG_FLOOR)).ravel()])
        for p, e in history
    ]
    r = logs[1] - logs[0]
    v = logs[2] - 2.0 * logs[1] + logs[0]
    vv = float(v @ v)
    if vv == 0.0:
        return history[2]
    step = min(-np.sqrt(float(r @ r) / vv), -1.0)
    jumped = logs[0] - 2.0 * step * r + step * step * v
    k = len(history[0][0])
    log_priors, log_errors = jumped[:k], jumped[k:].reshape(history[0][1].shape)
    priors = np.exp(log_priors - log_priors.max())
    errors = np.exp(log_errors - log_errors.max(axis=2, keepdims=True))
    return priors / priors.sum(), errors / errors.sum(axis=2, keepdims=True)


class DawidSkene(_FitPredict):
    """Dawid-Skene: each worker has a confusion matrix, fitted jointly with the true labels by EM.

    Dawid, A. P., & Skene, A. M. (1979). Maximum likelihood estimation of observer error-rates using the EM
    algorithm. Journal of the Royal Statistical Society, Series C (Applied Statistics), 28(1), 20-28.

    EM starts from the majority-vote shares (or, with ``warm_start``, from earlier rounds' confusion matrices)
    and alternates an M-step (class priors and per-worker confusion matrices from the current posteriors) and an
    E-step (posteriors from priors and confusion matrices, in log space). It stops when no posterior moves by
    more than ``tol`` in one EM step, or after ``max_iter`` E-steps. After every two EM steps the parameters jump
    along a SQUAREM extrapolation (Varadhan & Roland, "Simple and globally convergent methods for accelerating
    the convergence of any EM algorithm", Scand. J. Statist. 35, 2008; on log-probabilities, without the
    paper's objective check), which takes two to three times fewer steps. The stopping rule is only applied to
    plain EM steps, so wherever the jumps lead, the result is where EM itself stops.

    **Hierarchical shrinkage** makes the posteriors calibrated on one-coin and class-confusion crowds alike. A
    full K x K matrix per worker, fitted from a few dozen answers, overfits: a worker seen five times on a class
    looks certain about it, and items with three different answers end at posteriors ≥ 0.99. So every worker's
    row for true class ``t`` is a posterior mean under a Dirichlet prior centred on *that worker's own one-coin
    matrix* with ``s_w`` pseudo-answers:

        errors[w, t, :] = (counts[w, t, :] + s_w * one_coin(acc_w)[t, :]) / (n[w, t] + s_w)

    and the one-coin accuracy ``acc_w`` is itself a MAP estimate over all of the worker's answers under a
    Beta prior with ``smoothing`` pseudo-answers centred on ``prior_accuracy``. Class priors get one
    pseudo-count per class (Laplace).

    How strong ``s_w`` should be depends on the worker, not on the crowd: a one-coin worker's K(K-1) free cells
    only add noise (with 500 answers on 3 labels, enough to cost 0.4 points of accuracy against the oracle), while
    a worker who favours one label or mixes up a pair needs their own rows. So by default (``shrinkage=None``)
    ``s_w`` is chosen per worker, at every M-step, by the evidence of the worker's expected counts
    (:func:`evidence_shrinkage`, empirical Bayes): one-coin unless the rows depart from it by more than their
    sampling noise. A worker with few answers per class cannot show such a departure and stays one-coin, which
    is what keeps a 10-label crowd with ~50 answers per worker calibrated. A number fixes ``s_w`` for every
    worker: ``shrinkage=inf`` is one-coin Dawid-Skene (:class:`OneCoinDawidSkene`), ``shrinkage=0`` plain
    per-row estimates.

    Defaults: the evidence-chosen ``s_w`` replaced a fixed ``2 K`` after measuring the synthetic and simulated
    crowds only (the real crowds were run once afterwards, not used to choose). ``smoothing = 2`` and
    ``prior_accuracy = 0.7``, from first principles: an unknown worker starts clearly better than chance (0.7 >
    1/K for every K ≥ 2) but far from expert, and two answers of evidence already move them.

    Gold items (Series ``item_id -> label``) have their posteriors clamped to one-hot in every E-step, so they
    inform the confusion matrices and the priors (gold-anchored Dawid-Skene).

    Attributes (after ``fit``): ``labels_`` (Series ``item_id -> label``; ties within 1e-12 broken with the
    seeded generator), ``probas_`` (DataFrame items x label_names, rows sum to 1), ``priors_`` (Series over
    label_names), ``errors_`` (array workers x K x K; ``errors_[w, t, a]`` is the probability that worker
    ``w`` answers ``a`` when the truth is ``t``; rows sum to 1), ``workers_`` (Index aligned with
    ``errors_``), ``shrinkage_`` (array of each worker's ``s_w``), ``n_answers_`` (Series ``item_id ->
    answers``), ``n_iter_`` (E-steps run).
    """

    labels_: pd.Series
    probas_: pd.DataFrame
    priors_: pd.Series
    errors_: FloatArray
    shrinkage_: FloatArray
    workers_: pd.Index
    n_answers_: pd.Series
    n_iter_: int

    def __init__(
        self,
        label_names: Sequence[str],
        *,
        max_iter: int = 100,
        tol: float = 1e-3,
        shrinkage: float | None = None,
        smoothing: float = 2.0,
        prior_accuracy: float = 0.7,
        random_state: int = 0,
    ) -> None:
        self.label_names = label_names
        self.max_iter = max_iter
        self.tol = tol
        self.shrinkage = shrinkage
        self.smoothing = smoothing
        self.prior_accuracy = prior_accuracy
        self.random_state = random_state

    def _check_params(self) -> None:
        if self.max_iter < 0:
            raise ValueError(f"max_iter must be >= 0, got {self.max_iter}")
        if not self.tol >= 0:
            raise ValueError(f"tol must be >= 0, got {self.tol}")
        if self.shrinkage is not None and not self.shrinkage >= 0:
            raise ValueError(f"shrinkage must be >= 0 or None (chosen per worker), got {self.shrinkage}")
        if not self.smoothing >= 0:
            raise ValueError(f"smoothing must be >= 0 (0 is plain maximum likelihood), got {self.smoothing}")
        if not 0.0 <= self.prior_accuracy <= 1.0:
            raise ValueError(f"prior_accuracy must be in [0, 1], got {self.prior_accuracy}")

    def fit(
        self,
        answers: pd.DataFrame,
        gold: pd.Series | None = None,
        *,
        items: Sequence[str] | pd.Index | None = None,
        warm_start: Mapping[str, npt.ArrayLike] | None = None,
    ) -> Self:
        """Fit on ``answers``; ``gold`` clamps items to known labels; ``items``, when given, are the known item
        ids (an answer on any other item is an error); ``warm_start`` maps worker ids to K x K confusion
        matrices from earlier rounds, used for those workers in the first E-step instead of majority vote."""
        self._check_params()
        coded = _encode(answers, _label_index(self.label_names), gold, items)
        k, n_workers = coded.n_labels, coded.n_workers
        design = coded.design()
        design_t = design.T  # a CSC view: S.T @ x walks S row by row and accumulates into a small matrix
        gold_rows = np.flatnonzero(coded.gold >= 0)
        gold_onehot = np.eye(k)[:, coded.gold[gold_rows]]
        # Posteriors live as (K, items) inside the loop: reductions over K then run across long contiguous rows,
        # which is several times faster than reducing each 3- or 10-wide row of an (items, K) array. The sparse
        # products take and give (items, K) and (columns, K) instead, so that one pass over S serves all K
        # classes (about twice as fast as K passes); the transposed copies between the two cost less than that.

        def m_step(post_t: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
            priors = (post_t.sum(axis=1) + 1.0) / (coded.n_items + k)
            # (S.T @ posteriors)[worker * K + answer, true] -> counts[worker, true, answer]
            by_column = design_t @ np.ascontiguousarray(post_t.T)
            counts = np.ascontiguousarray(by_column.reshape(n_workers, k, k).transpose(0, 2, 1))
            accuracy = one_coin_accuracy(counts, self.smoothing, self.prior_accuracy)
            if self.shrinkage is None:
                shrinkage = evidence_shrinkage(counts, accuracy)
            else:
                shrinkage = np.full(n_workers, float(self.shrinkage))
            return priors, shrunk_confusion(counts, one_coin_matrices(accuracy, k), shrinkage), shrinkage

        def e_step(priors: FloatArray, errors: FloatArray) -> FloatArray:
            # log errors[worker, true, answer] as rows matching S's columns (worker * K + answer), one column per
            # true class
            weights = np.log(np.maximum(errors, _LOG_FLOOR)).transpose(0, 2, 1).reshape(n_workers * k, k)
            log_post = np.ascontiguousarray((design @ weights).T)
            log_post += np.log(np.maximum(priors, _LOG_FLOOR))[:, None]
            log_post -= log_post.max(axis=0)
            post: FloatArray = np.exp(log_post, out=log_post)
            post /= post.sum(axis=0)
            post[:, gold_rows] = gold_onehot
            return post

        counts = coded.counts().astype(np.float64)
        probas_t = np.ascontiguousarray((counts / np.maximum(counts.sum(axis=1, keepdims=True), 1.0)).T)
        probas_t[:, gold_rows] = gold_onehot
        priors, errors, shrinkage = m_step(probas_t)
        if warm_start:
            errors = self._warm_errors(errors, coded.workers, warm_start)
        n_iter = 0
        # SQUAREM: after every two EM steps, jump along their squared extrapolation; the next EM step starts
        # from there. Convergence is only judged on a plain EM step: across a jump a small change would not mean
        # a fixed point.
        history = [(priors, errors)]
        jumped = False
        while n_iter < self.max_iter:
            new = e_step(priors, errors)
            n_iter += 1
            # The previous posteriors are not needed again: their buffer takes the change, saving a temporary.
            change = np.abs(np.subtract(new, probas_t, out=probas_t), out=probas_t)
            converged = not jumped and float(change.max()) < self.tol
            probas_t = new
            priors, errors, shrinkage = m_step(probas_t)
            if converged:
                break
            history.append((priors, errors))
            jumped = len(history) == 3
            if jumped:
                priors, errors = _squarem_jump(history)
                history = [(priors, errors)]
        probas = np.ascontiguousarray(probas_t.T)

        rng = np.random.default_rng(self.random_state)
        codes = _argmax_random_ties(probas, rng, atol=_TIE_ATOL)
        self._set_results(coded, probas, codes)
        self.priors_ = pd.Series(priors, index=coded.labels, name="prior")
        self.errors_ = errors
        self.shrinkage_ = shrinkage
        self.workers_ = coded.workers
        self.n_iter_ = n_iter
        return self

    def _warm_errors(
        self, errors: FloatArray, workers: pd.Index, warm_start: Mapping[str, npt.ArrayLike]
    ) -> FloatArray:
        k = errors.shape[1]
        warmed = errors.copy()
        for worker_id, matrix in warm_start.items():
            position = workers.get_indexer(pd.Index([str(worker_id)]))[0]
            if position < 0:
                continue  # a worker of earlier rounds with no answers in this fit
            values = np.asarray(matrix, dtype=np.float64)
            if values.shape != (k, k) or not np.all(np.isfinite(values)) or (values < 0).any():
                raise ValueError(
                    f"warm_start[{worker_id!r}] must be a {k} x {k} matrix of non-negative numbers (rows: true "
                    f"label, columns: answer, in label_names order), got shape {values.shape}"
                )
            sums = values.sum(axis=1, keepdims=True)
            warmed[position] = np.divide(values, sums, out=np.full((k, k), 1.0 / k), where=sums > 0)
        return warmed


class OneCoinDawidSkene(DawidSkene):
    """One-coin Dawid-Skene: each worker is right with one probability whatever the class, and otherwise
    answers any other label uniformly — one parameter per worker instead of K(K-1).

    The one-coin special case of Dawid & Skene (1979), as in Karger, Oh & Shah (2011) and crowd-kit's
    ``OneCoinDawidSkene``. It is :class:`DawidSkene` with ``shrinkage = inf``: the same EM, priors, gold
    clamping, warm start and attributes. Calibrated on one-coin crowds, blind to class-specific confusion.
    """

    def __init__(
        self,
        label_names: Sequence[str],
        *,
        max_iter: int = 100,
        tol: float = 1e-3,
        smoothing: float = 2.0,
        prior_accuracy: float = 0.7,
        random_state: int = 0,
    ) -> None:
        super().__init__(
            label_names,
            max_iter=max_iter,
            tol=tol,
            shrinkage=float("inf"),
            smoothing=smoothing,
            prior_accuracy=prior_accuracy,
            random_state=random_state,
        )


Aggregator = MajorityVote | Wawa | DawidSkene


def make_aggregator(method: str, label_names: Sequence[str], *, random_state: int = 0) -> Aggregator:
    """The estimator behind a method name of :data:`METHODS`, at its default hyperparameters."""
    if method == "majority_vote":
        return MajorityVote(label_names, random_state=random_state)
    if method == "wawa":
        return Wawa(label_names, random_state=random_state)
    if method == "dawid_skene":
        return DawidSkene(label_names, random_state=random_state)
    if method == "one_coin_dawid_skene":
        return OneCoinDawidSkene(label_names, random_state=random_state)
    raise ValueError(f"unknown aggregation method {method!r}; choose one of {list(METHODS)}")


# --------------------------------------------------------------------------------------------- functions


def aggregate_answers_frame(
    answers: pd.DataFrame,
    label_names: Sequence[str],
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
    warm_start: Mapping[str, npt.ArrayLike] | None = None,
) -> pd.DataFrame:
    """Labels (the label contract, ``source = crowd``) for every answered non-gold item, from all answers so far:
    worker confusion is estimated from the whole project, not one round's handful of answers per worker;
    ``warm_start`` holds earlier rounds' confusion matrices. No answers yet (every assignment abandoned) gives
    no labels rather than an error, so the wave loop can go on."""
    if answers.empty:
        return empty_frame(LABEL_COLUMNS)
    labels = aggregate_answers_frame(
        answers, label_names, method=method, gold=gold, warm_start=warm_start
    ).assign(round_id=round_id, source=LabelSource.CROWD.value)
    get_run_logger().info(
        "aggregated %d answers into %d labels (%s), mean confidence %.3f",
        len(answers),
        len(labels),
        method,
        labels["confidence"].mean() if len(labels) else float("nan"),
    )
    return labels[list(LABEL_COLUMNS)]
