"""The four suites (pool, batch, answers, labels): each built once per structure and cached (bounded), never
registered in the GX context, and run on a frame into a :class:`ValidationReport`."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from functools import lru_cache
from typing import Any, Final

import pandas as pd

from labelflow.contracts import ANSWER_COLUMNS, BATCH_COLUMNS, ITEM_ID, LABEL_COLUMNS
from labelflow.tasks.validation.outcomes import outcome
from labelflow.tasks.validation.report import ValidationReport
from labelflow.tasks.validation.runtime import gx_runtime, new_suite, validate

SUITES: Final = ("pool", "batch", "answers", "labels")

MIN_ROWS_FOR_DISTRIBUTION: Final = 20
"""The labels suite checks the class distribution only on frames with at least this many rows."""

MAX_LABEL_SHARE: Final = 0.9
"""No single label may account for more than this share of the rows (labels suite)."""

_SUITE_CACHE_SIZE: Final = 64


@lru_cache(maxsize=_SUITE_CACHE_SIZE)
def _pool_suite(feature_columns: tuple[str, ...], present: tuple[str, ...]) -> Any:
    g = gx_runtime()
    e = g.gxe
    expectations: list[Any] = [
        e.ExpectColumnToExist(column=ITEM_ID),
        e.ExpectColumnValuesToNotBeNull(column=ITEM_ID),
        e.ExpectColumnValuesToBeUnique(column=ITEM_ID),
    ]
    expectations += [e.ExpectColumnToExist(column=c) for c in feature_columns]
    if present:  # the present features only, so a missing column does not hide bad values in the others
        expectations.append(g.finite(present))
    return new_suite("pool", expectations)


@lru_cache(maxsize=_SUITE_CACHE_SIZE)
def _batch_suite() -> Any:
    e = gx_runtime().gxe
    expectations: list[Any] = [e.ExpectColumnToExist(column=c) for c in BATCH_COLUMNS]
    expectations += [
        e.ExpectTableRowCountToBeBetween(min_value=1, max_value={"$PARAMETER": "max_size"}),
        e.ExpectColumnValuesToNotBeNull(column=ITEM_ID),
        e.ExpectColumnValuesToBeUnique(column=ITEM_ID),
        e.ExpectColumnValuesToBeInSet(column=ITEM_ID, value_set={"$PARAMETER": "allowed_ids"}),
    ]
    return new_suite("batch", expectations)


@lru_cache(maxsize=_SUITE_CACHE_SIZE)
def _answers_suite(label_names: tuple[str, ...]) -> Any:
    e = gx_runtime().gxe
    expectations: list[Any] = [e.ExpectColumnToExist(column=c) for c in ANSWER_COLUMNS]
    expectations += [
        e.ExpectColumnValuesToNotBeNull(column="label"),
        e.ExpectColumnValuesToBeInSet(column="label", value_set=list(label_names)),
        e.ExpectColumnValuesToNotBeNull(column="worker_id"),
        e.ExpectColumnValuesToNotBeNull(column="answer_id"),
        e.ExpectColumnValuesToBeUnique(column="answer_id"),
    ]
    return new_suite("answers", expectations)


@lru_cache(maxsize=_SUITE_CACHE_SIZE)
def _labels_suite(label_names: tuple[str, ...], check_distribution: bool) -> Any:
    e = gx_runtime().gxe
    expectations: list[Any] = [e.ExpectColumnToExist(column=c) for c in LABEL_COLUMNS]
    expectations += [
        e.ExpectColumnValuesToNotBeNull(column="label"),
        e.ExpectColumnValuesToBeInSet(column="label", value_set=list(label_names)),
        e.ExpectColumnValuesToNotBeNull(column="confidence"),
        e.ExpectColumnValuesToBeBetween(column="confidence", min_value=0.0, max_value=1.0),
        e.ExpectCompoundColumnsToBeUnique(column_list=[ITEM_ID, "source"]),
    ]
    if check_distribution:
        expectations.append(e.ExpectColumnUniqueValueCountToBeBetween(column="label", min_value=2))
        # Share of one label <= 90%  <=>  at least 10% of the (non-null) rows are NOT that label.
        expectations += [
            e.ExpectColumnValuesToNotBeInSet(column="label", value_set=[name], mostly=1.0 - MAX_LABEL_SHARE)
            for name in label_names
        ]
    return new_suite("labels", expectations)


def validate_pool(pool: pd.DataFrame, feature_columns: Sequence[str]) -> ValidationReport:
    """The unlabeled pool: ``item_id`` exists, is not null and unique; every feature column exists
    (``expect_column_to_exist`` per column); every value of the present feature columns is a finite number
    (one ``expect_multicolumn_values_to_be_finite``, or ``expect_column_values_to_be_finite`` for a single
    feature: NaN/None/NA, +inf, -inf and non-numeric values are all caught; on failure its ``column`` names
    the offending columns seen in the sampled rows). Extra columns are allowed."""
    features = tuple(str(c) for c in feature_columns)
    present = tuple(c for c in features if c in pool.columns)
    return _run("pool", pool, _pool_suite(features, present))


def validate_batch(
    batch: pd.DataFrame, *, unlabeled_pool_ids: pd.Index | pd.Series | Collection[str], max_size: int
) -> ValidationReport:
    """A selected batch: columns ``item_id, score, strategy, round_id`` exist; 1 <= rows <= ``max_size``;
    ``item_id`` is not null, unique and one of ``unlabeled_pool_ids``.

    Only the batch is validated: the in-set expectation gets as its value set the batch's own ids that are in
    the pool (at most ``len(batch)`` values), found by one vectorized pass over the pool, which is never copied
    into a set (1.3 s for 2M ids). GX re-processes an expectation's kwargs dozens of times per run, so a
    100k-id value set would cost ~11 s. Give the pool's ids as a pandas Index or Series: in a Prefect task's
    arguments a Python set or list is walked element by element (37 s for 2M ids), a pandas object is not.
    """
    allowed: list[str] = []
    if ITEM_ID in batch.columns:
        batch_ids = batch[ITEM_ID].dropna()
        pool = (
            unlabeled_pool_ids
            if isinstance(unlabeled_pool_ids, pd.Index | pd.Series)
            else pd.Index(list(unlabeled_pool_ids))
        )
        found = {str(i) for i in pool[pool.isin({*batch_ids, *batch_ids.astype(str)})]}
        allowed = sorted({str(i) for i in batch_ids if str(i) in found})
    return _run("batch", batch, _batch_suite(), {"max_size": int(max_size), "allowed_ids": allowed})


def validate_answers(answers: pd.DataFrame, label_names: Sequence[str]) -> ValidationReport:
    """Crowd answers: every contract column (``ANSWER_COLUMNS``) exists; ``label`` is not null and one of
    ``label_names``; ``worker_id`` is not null; ``answer_id`` is not null and unique.

    ``label`` not-null is an addition to the brief: GX's values-in-set expectation skips nulls."""
    return _run("answers", answers, _answers_suite(tuple(label_names)))


def validate_labels(labels: pd.DataFrame, label_names: Sequence[str]) -> ValidationReport:
    """Labels (one source or several): every contract column (``LABEL_COLUMNS``) exists; ``label`` is not
    null and one of ``label_names``; ``confidence`` is not null and in [0, 1]; ``(item_id, source)`` is unique
    (``expect_compound_columns_to_be_unique``: one label per item per source).

    Class distribution not collapsed -- checked only with at least 20 rows and at least 2 label names:

    * ``expect_column_unique_value_count_to_be_between(column="label", min_value=2)``: at least 2 distinct
      labels;
    * for each label name L,
      ``expect_column_values_to_not_be_in_set(column="label", value_set=[L], mostly=0.1)``: at least 10% of
      the (non-null) rows are not L, i.e. no single label covers more than 90% of the rows (exactly 90%
      passes). No built-in expresses "largest share" directly; this is the simplest combination that does,
      at one expectation per label name.

    The not-null checks on ``label`` and ``confidence`` are additions to the brief: GX's in-set and between
    expectations skip nulls, so a null label or confidence would otherwise pass.
    """
    check_distribution = len(labels) >= MIN_ROWS_FOR_DISTRIBUTION and len(set(label_names)) >= 2
    return _run("labels", labels, _labels_suite(tuple(label_names), check_distribution))


_SUITE_FUNCTIONS: Final[Mapping[str, Callable[..., ValidationReport]]] = {
    "pool": validate_pool,
    "batch": validate_batch,
    "answers": validate_answers,
    "labels": validate_labels,
}


def run_suite(frame: pd.DataFrame, suite: str, **kwargs: Any) -> ValidationReport:
    """Run one suite by name (``"pool"``, ``"batch"``, ``"answers"`` or ``"labels"``; ``kwargs`` go to its
    function) and return its report; :class:`ValueError` for an unknown suite."""
    try:
        run = _SUITE_FUNCTIONS[suite]
    except KeyError:
        raise ValueError(f"unknown suite {suite!r}; expected one of {list(SUITES)}") from None
    return run(frame, **kwargs)


def _run(
    name: str, frame: pd.DataFrame, suite: Any, parameters: dict[str, Any] | None = None
) -> ValidationReport:
    results = validate(frame, suite, parameters)
    columns = {str(c) for c in frame.columns}
    outcomes = tuple(outcome(r, columns) for r in results)
    return ValidationReport(suite=name, n_rows=len(frame), outcomes=outcomes)
