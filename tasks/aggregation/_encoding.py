"""Answers as integer codes: the one encoding every aggregator fits on.

Answers follow one contract (``labelflow.contracts``): a long frame with columns ``item_id``, ``worker_id`` and
``label``, one row per answer (crowd-kit's ``task, worker, label`` are accepted too); an ``answer_id`` column,
when present, must be unique; other columns are ignored. Labels are the user's names; the estimators turn them
into integer codes internally and back again on the way out. The label set is either passed in (``label_names``,
so that a class nobody chose still has a column in ``probas_``) or inferred: every label answered or given as
gold, sorted as strings.

Item and worker ids are factorized in sorted order, so results do not depend on the row order of the answers,
and random tie-breaks (drawn per item, in that order) are reproducible for a given ``random_state``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import scipy.sparse as sp

from labelflow.contracts import ITEM_ID, ContractError, require_columns

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]

WORKER_ID: Final = "worker_id"
LABEL: Final = "label"
ANSWER_ID: Final = "answer_id"
ANSWER_KEYS: Final = (ITEM_ID, WORKER_ID, LABEL)
# crowd-kit's names for the same three columns
_CROWD_KIT_KEYS: Final = {"task": ITEM_ID, "worker": WORKER_ID}

# Posteriors closer than this count as tied; the tie is then broken with the seeded generator. It is far
# below any difference EM can resolve (tol is 1e-4) and far above the floating-point noise of summing the
# same answers in another order.
TIE_ATOL: Final = 1e-12
# Floor inside log() so a zero confusion entry (possible only with smoothing=0) costs ~-708 nats, not -inf.
LOG_FLOOR: Final = float(np.finfo(np.float64).tiny)
# How many offending rows an error message lists.
_SHOW: Final = 5


class AnswersError(ContractError):
    """The answers cannot be aggregated as given; the message names the offending rows and what to fix.

    A :class:`~labelflow.contracts.ContractError` (and so a ``ValueError``): a round that meets one stops as
    ``failed`` and keeps every answer it already stored.
    """


# --------------------------------------------------------------------------------------------- encoding


@dataclass(frozen=True)
class Coded:
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


def answer_columns(answers: pd.DataFrame) -> pd.DataFrame:
    """``answers`` with crowd-kit's ``task`` and ``worker`` columns named ``item_id`` and ``worker_id``; a frame
    that already has our names is returned as it is."""
    renames = {
        theirs: ours
        for theirs, ours in _CROWD_KIT_KEYS.items()
        if theirs in answers.columns and ours not in answers.columns
    }
    return answers.rename(columns=renames) if renames else answers


def gold_labels(gold: pd.Series) -> pd.Series:
    """Gold as strings ``item_id -> label``, the first label of an item given twice kept.

    Examples
    --------
    >>> import pandas as pd
    >>> gold_labels(pd.Series([1, 2], index=[10, 10])).to_dict()
    {'10': '1'}
    """
    labels = pd.Series(
        gold.astype(str).to_numpy(), index=pd.Index([str(i) for i in gold.index], name=ITEM_ID)
    )
    return labels[~labels.index.duplicated()]


def _inferred_labels(label: pd.Series, gold: pd.Series | None) -> list[str]:
    """Every label answered (or given as gold), sorted as strings."""
    names = {str(x) for x in pd.unique(label)}
    if gold is not None:
        names.update(str(x) for x in pd.unique(gold.dropna()))
    return sorted(names)


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


def encode(
    answers: pd.DataFrame,
    label_names: Sequence[str] | None,
    gold: pd.Series | None,
    items: Sequence[str] | pd.Index | None = None,
) -> Coded:
    """Validate ``answers`` (our columns or crowd-kit's) and code them against ``label_names`` (inferred when
    None); the error messages name the offending rows and what to fix."""
    answers = answer_columns(answers)
    require_columns(answers, ANSWER_KEYS, "answers")
    if answers.empty:
        raise AnswersError(
            "answers is empty: there is nothing to aggregate. Collect answers first (a wave whose answers "
            "have not arrived yet has none)."
        )
    frame = answers[list(ANSWER_KEYS)]
    for column in ANSWER_KEYS:
        missing = frame[column].isna().to_numpy()
        if missing.any():
            raise AnswersError(
                f"answers have no {column} in {_rows(frame, np.flatnonzero(missing))}; every answer needs "
                f"{list(ANSWER_KEYS)}"
            )
    if ANSWER_ID in answers.columns:
        duplicated = answers[ANSWER_ID].duplicated(keep=False).to_numpy()
        if duplicated.any():
            shown = answers.loc[duplicated, [ANSWER_ID, *ANSWER_KEYS]]
            raise AnswersError(
                f"answer_id must be unique; {int(duplicated.sum())} rows share an answer_id: "
                f"{_rows(shown, np.arange(len(shown)))}. Drop the repeated rows (the store never keeps two)."
            )
    labels = _label_index(_inferred_labels(frame[LABEL], gold) if label_names is None else label_names)
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
    return Coded(
        labels=labels,
        items=items_index,
        workers=pd.Index(workers, name=WORKER_ID),
        item=np.asarray(item_codes, dtype=np.intp),
        worker=np.asarray(worker_codes, dtype=np.intp),
        label=np.asarray(label_codes, dtype=np.intp),
        gold=gold_per_item,
    )


def argmax_random_ties(scores: FloatArray, rng: np.random.Generator, atol: float) -> IntArray:
    """Row-wise argmax; among entries within ``atol`` of the row maximum, pick one uniformly at random."""
    if scores.shape[0] == 0:
        return np.zeros(0, dtype=np.intp)
    tied = scores >= scores.max(axis=1, keepdims=True) - atol
    noise = rng.random(scores.shape)
    return np.asarray(np.where(tied, noise, -1.0).argmax(axis=1), dtype=np.intp)


def labels_series(coded: Coded, codes: IntArray) -> pd.Series:
    return pd.Series(coded.labels.take(codes).to_numpy(), index=coded.items, name=LABEL)


def probas_frame(coded: Coded, probas: FloatArray) -> pd.DataFrame:
    return pd.DataFrame(probas, index=coded.items, columns=coded.labels)


def n_answers_series(coded: Coded) -> pd.Series:
    return pd.Series(coded.n_answers(), index=coded.items, name="n_answers")


# Leaving one answer out moves what its item's other answers say (closed-form leave-one-out, choice.py); on items
# with more answers than this, one answer among so many barely moves the item and the fit's values are kept,
# which bounds the pairs visited at this many per answer.
PAIRED_ANSWERS: Final = 32


def answer_pairs(
    item: IntArray, n_items: int, max_per_item: int = PAIRED_ANSWERS
) -> tuple[IntArray, IntArray]:
    """Every ordered pair ``(a, b)``, ``a != b``, of answers (positions in ``item``) on the same item, for items
    with at most ``max_per_item`` answers (so at most ``max_per_item`` pairs per answer)."""
    per_item = np.bincount(item, minlength=n_items)
    order = np.argsort(item, kind="stable")
    start = np.concatenate([[0], np.cumsum(per_item)[:-1]])
    first = np.flatnonzero(per_item[item] <= max_per_item)
    repeats = per_item[item[first]]
    left = np.repeat(first, repeats)
    within = np.arange(len(left)) - np.repeat(np.cumsum(repeats) - repeats, repeats)
    right = order[start[item[left]] + within]
    other = right != left
    return np.asarray(left[other], dtype=np.intp), np.asarray(right[other], dtype=np.intp)
