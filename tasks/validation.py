"""Great Expectations suites at each stage boundary.

The four suite functions (:func:`validate_pool`, :func:`validate_batch`, :func:`validate_answers`,
:func:`validate_labels`) are pure: they need no Prefect run and return a :class:`ValidationReport`.
:func:`run_suite` runs one of them by name; the Prefect step ``labelflow.flows.steps.validation.validate_frame``
publishes its outcomes as a table artifact and raises :class:`DataValidationError` on failure.

How GX is used (see ``/work/shared/NOTES-prefect-gx.md``):

* GX is imported lazily (its import takes ~2-3 s) and **one** ephemeral context is built per process, with one
  pandas datasource, one dataframe asset and one whole-dataframe batch definition, reused by every call.
  Progress bars are switched off and GX's loggers are quietened to ``ERROR``.
* Suites are plain :class:`ExpectationSuite` objects kept in a small LRU cache keyed by their structure
  (columns, label names, ...); they are **not** registered in the context, and no ``ValidationDefinition``
  is created.
  We validate with ``batch_definition.get_batch(batch_parameters={"dataframe": df}).validate(suite, ...)``.
  Reason: ``ValidationDefinition.run`` also stores every result in the context's in-memory
  validation-results store (one more entry per call, never evicted), whereas ``Batch.validate`` runs the
  same validator and stores nothing. So nothing grows across thousands of calls (checked: 1000 calls, flat
  memory, empty results store).
* Values that change every call (the batch's allowed ids, the batch size limit) are GX suite parameters
  (``{"$PARAMETER": ...}``) supplied at run time, so the cached suite is reused.
  (``ExpectationSuite`` names must be unique in a context -- adding an existing name raises
  ``DataContextError`` -- which is one more reason not to register per-call suites there.)
* Null or non-finite pool features are caught by one custom multicolumn expectation,
  ``expect_multicolumn_values_to_be_finite`` (vectorised ``numpy.isfinite`` over all feature columns, nulls
  counted as unexpected). Built-in per-column ``not_null`` + ``between`` expectations cost ~1 s for 64 feature
  columns on 100k rows, almost all of it GX's per-expectation overhead; the single expectation costs ~0.02 s.
  Each feature column still gets its own ``expect_column_to_exist``.
"""

from __future__ import annotations

import logging
import math
import os
import threading
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Final

import numpy as np
import pandas as pd

from labelflow.contracts import ANSWER_COLUMNS, BATCH_COLUMNS, ITEM_ID, LABEL_COLUMNS

__all__ = [
    "SUITES",
    "DataValidationError",
    "ExpectationOutcome",
    "ValidationReport",
    "run_suite",
    "validate_answers",
    "validate_batch",
    "validate_labels",
    "validate_pool",
]

SUITES: Final = ("pool", "batch", "answers", "labels")

MAX_SAMPLES: Final = 5
"""At most this many offending values are kept per expectation."""

MIN_ROWS_FOR_DISTRIBUTION: Final = 20
"""The labels suite checks the class distribution only on frames with at least this many rows."""

MAX_LABEL_SHARE: Final = 0.9
"""No single label may account for more than this share of the rows (labels suite)."""

_MULTI_FINITE: Final = "expect_multicolumn_values_to_be_finite"
_NULLS_ARE_UNEXPECTED: Final = frozenset(
    {"expect_column_values_to_not_be_null", "expect_column_values_to_be_finite", _MULTI_FINITE}
)
_INDEX_KEY: Final = "labelflow_index"
_RESULT_FORMAT: Final = {"result_format": "BASIC", "partial_unexpected_count": 20}
_SUITE_CACHE_SIZE: Final = 64


# ------------------------------------------------------------------------------------------------------------
# Report types


@dataclass(frozen=True)
class ExpectationOutcome:
    """One expectation's result, as plain strings (no numpy types)."""

    expectation: str  # e.g. "expect_column_values_to_be_unique"
    column: str | None
    success: bool
    observed: str  # short human text: observed value / unexpected count
    sample_unexpected: tuple[str, ...]  # up to MAX_SAMPLES offending values, as strings

    def describe(self) -> str:
        where = f" on column {self.column!r}" if self.column else ""
        text = f"{self.expectation}{where}: {self.observed}"
        if self.sample_unexpected:
            text += "; sample: " + ", ".join(repr(v) for v in self.sample_unexpected)
        return text


@dataclass(frozen=True)
class ValidationReport:
    suite: str  # "pool", "batch", "answers", "labels"
    n_rows: int
    outcomes: tuple[ExpectationOutcome, ...]

    @property
    def success(self) -> bool:
        return all(o.success for o in self.outcomes)

    def failures(self) -> list[ExpectationOutcome]:
        return [o for o in self.outcomes if not o.success]

    def summary(self) -> str:
        """One line, e.g. ``GX suite 'pool': 68/68 expectations passed on 100000 rows``."""
        passed = len(self.outcomes) - len(self.failures())
        line = f"GX suite {self.suite!r}: {passed}/{len(self.outcomes)} expectations passed"
        line += f" on {self.n_rows} rows"
        failed = self.failures()
        if failed:
            names = sorted({f"{o.expectation}({o.column})" if o.column else o.expectation for o in failed})
            line += "; failed: " + ", ".join(names)
        return line

    def as_rows(self) -> list[dict[str, str]]:
        """The outcomes as rows of strings, for a Prefect table artifact."""
        return [
            {
                "expectation": o.expectation,
                "column": o.column or "",
                "success": "yes" if o.success else "NO",
                "observed": o.observed,
                "sample_unexpected": ", ".join(o.sample_unexpected),
            }
            for o in self.outcomes
        ]

    def raise_for_failures(self) -> None:
        """Raise :class:`DataValidationError` if any expectation failed."""
        if not self.success:
            raise DataValidationError(self)


class DataValidationError(ValueError):
    """A frame failed its GX suite. The message names the suite, each failed expectation (type and column)
    and sample offending values; ``report`` holds the full :class:`ValidationReport`."""

    def __init__(self, report: ValidationReport) -> None:
        self.report = report
        failed = report.failures()
        lines = [
            f"GX suite {report.suite!r} failed {len(failed)} of {len(report.outcomes)} expectations "
            f"on {report.n_rows} rows:"
        ]
        lines += [f"  - {o.describe()}" for o in failed]
        super().__init__("\n".join(lines))

    def __reduce__(self) -> tuple[Any, ...]:  # picklable (Prefect may persist or ship exceptions)
        return (type(self), (self.report,))


# ------------------------------------------------------------------------------------------------------------
# The GX context: built once per process


@dataclass(frozen=True)
class _Gx:
    gx: Any  # the great_expectations module
    gxe: Any  # great_expectations.expectations
    batch_definition: Any
    finite: Callable[[Sequence[str]], Any]  # columns -> our "values are finite" expectation


# Guards building the context and every validation (GX is not documented as thread-safe).
_GX_LOCK = threading.RLock()
_GX_STATE: _Gx | None = None


def _gx() -> _Gx:
    """The process-wide GX context, datasource and batch definition (built on first use)."""
    global _GX_STATE
    with _GX_LOCK:
        if _GX_STATE is None:
            _GX_STATE = _build_gx()
        return _GX_STATE


def _build_gx() -> _Gx:
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx
    import great_expectations.expectations as gxe
    from great_expectations.data_context.types.base import ProgressBarsConfig

    _quieten_gx_loggers()
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    asset = context.data_sources.add_pandas("labelflow").add_dataframe_asset("frame")
    batch_definition = asset.add_batch_definition_whole_dataframe("whole-frame")
    return _Gx(gx=gx, gxe=gxe, batch_definition=batch_definition, finite=_define_finite_expectation())


def _quieten_gx_loggers() -> None:
    """GX pins some module loggers to INFO (e.g. "Created temporary directory ... for ephemeral docs site"),
    so quietening the parent alone is not enough: lower every GX logger that exists after import."""
    logging.getLogger("great_expectations").setLevel(logging.ERROR)
    for name, logger in list(logging.root.manager.loggerDict.items()):
        if name.startswith("great_expectations.") and isinstance(logger, logging.Logger):
            logger.setLevel(logging.ERROR)


def _define_finite_expectation() -> Callable[[Sequence[str]], Any]:
    """Define (and thereby register with GX) ``expect_multicolumn_values_to_be_finite`` and its one-column
    twin ``expect_column_values_to_be_finite``; return a factory that picks one for a list of columns.

    Row-wise condition: every listed column holds a finite number. NaN/None/NA and ±inf are unexpected, and
    so is anything that is not numeric. Defined inside a function so GX is imported only when first needed.
    """
    from great_expectations.execution_engine import PandasExecutionEngine
    from great_expectations.expectations.expectation import ColumnMapExpectation, MulticolumnMapExpectation
    from great_expectations.expectations.metrics.map_metric_provider import (
        ColumnMapMetricProvider,
        MulticolumnMapMetricProvider,
        column_condition_partial,
        multicolumn_condition_partial,
    )

    class MulticolumnValuesFinite(MulticolumnMapMetricProvider):  # type: ignore[misc]
        condition_metric_name = "multicolumn_values.labelflow_finite"
        filter_column_isnull = False
        condition_domain_keys = (
            "batch_id",
            "table",
            "column_list",
            "row_condition",
            "condition_parser",
            "ignore_row_if",
        )

        @multicolumn_condition_partial(engine=PandasExecutionEngine)
        def _pandas(cls, column_list: pd.DataFrame, **kwargs: Any) -> pd.Series:
            return pd.Series(_finite_rows(column_list), index=column_list.index)

    class ExpectMulticolumnValuesToBeFinite(MulticolumnMapExpectation):  # type: ignore[misc]
        """Expect every value in the listed columns to be a finite number (not null, not ±inf)."""

        map_metric = "multicolumn_values.labelflow_finite"
        ignore_row_if: str = "never"  # rows that are entirely null must be counted, not skipped

    class ColumnValuesFinite(ColumnMapMetricProvider):  # type: ignore[misc]
        condition_metric_name = "column_values.labelflow_finite"
        filter_column_isnull = False

        @column_condition_partial(engine=PandasExecutionEngine)
        def _pandas(cls, column: pd.Series, **kwargs: Any) -> pd.Series:
            return pd.Series(_finite_rows(column.to_frame()), index=column.index)

    class ExpectColumnValuesToBeFinite(ColumnMapExpectation):  # type: ignore[misc]
        """Single-column twin of the above (GX's multicolumn domain needs at least two columns)."""

        map_metric = "column_values.labelflow_finite"

    def finite(columns: Sequence[str]) -> Any:
        if len(columns) == 1:
            return ExpectColumnValuesToBeFinite(column=columns[0])
        return ExpectMulticolumnValuesToBeFinite(column_list=list(columns))

    return finite


def _finite_rows(frame: pd.DataFrame) -> np.ndarray[Any, np.dtype[np.bool_]]:
    """True for rows whose values are all finite numbers."""
    if all(pd.api.types.is_numeric_dtype(t) for t in frame.dtypes):  # bool counts as numeric (0/1)
        values = frame.to_numpy(dtype="float64", na_value=np.nan)
    else:  # strings, objects...: anything that does not parse as a number counts as non-finite
        values = frame.apply(pd.to_numeric, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    return np.asarray(np.isfinite(values).all(axis=1))


# ------------------------------------------------------------------------------------------------------------
# Suites: built once per structure, cached (bounded), never registered in the context


def _index(expectations: list[Any]) -> list[Any]:
    """Tag each expectation with its position so results come back in suite order."""
    for i, expectation in enumerate(expectations):
        expectation.meta = {**(expectation.meta or {}), _INDEX_KEY: i}
    return expectations


def _suite(name: str, expectations: list[Any]) -> Any:
    return _gx().gx.ExpectationSuite(name=f"labelflow-{name}", expectations=_index(expectations))


@lru_cache(maxsize=_SUITE_CACHE_SIZE)
def _pool_suite(feature_columns: tuple[str, ...], present: tuple[str, ...]) -> Any:
    g = _gx()
    e = g.gxe
    expectations: list[Any] = [
        e.ExpectColumnToExist(column=ITEM_ID),
        e.ExpectColumnValuesToNotBeNull(column=ITEM_ID),
        e.ExpectColumnValuesToBeUnique(column=ITEM_ID),
    ]
    expectations += [e.ExpectColumnToExist(column=c) for c in feature_columns]
    if present:  # the present features only, so a missing column does not hide bad values in the others
        expectations.append(g.finite(present))
    return _suite("pool", expectations)


@lru_cache(maxsize=_SUITE_CACHE_SIZE)
def _batch_suite() -> Any:
    e = _gx().gxe
    expectations: list[Any] = [e.ExpectColumnToExist(column=c) for c in BATCH_COLUMNS]
    expectations += [
        e.ExpectTableRowCountToBeBetween(min_value=1, max_value={"$PARAMETER": "max_size"}),
        e.ExpectColumnValuesToNotBeNull(column=ITEM_ID),
        e.ExpectColumnValuesToBeUnique(column=ITEM_ID),
        e.ExpectColumnValuesToBeInSet(column=ITEM_ID, value_set={"$PARAMETER": "allowed_ids"}),
    ]
    return _suite("batch", expectations)


@lru_cache(maxsize=_SUITE_CACHE_SIZE)
def _answers_suite(label_names: tuple[str, ...]) -> Any:
    e = _gx().gxe
    expectations: list[Any] = [e.ExpectColumnToExist(column=c) for c in ANSWER_COLUMNS]
    expectations += [
        e.ExpectColumnValuesToNotBeNull(column="label"),
        e.ExpectColumnValuesToBeInSet(column="label", value_set=list(label_names)),
        e.ExpectColumnValuesToNotBeNull(column="worker_id"),
        e.ExpectColumnValuesToNotBeNull(column="answer_id"),
        e.ExpectColumnValuesToBeUnique(column="answer_id"),
    ]
    return _suite("answers", expectations)


@lru_cache(maxsize=_SUITE_CACHE_SIZE)
def _labels_suite(label_names: tuple[str, ...], check_distribution: bool) -> Any:
    e = _gx().gxe
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
    return _suite("labels", expectations)


# ------------------------------------------------------------------------------------------------------------
# The four suites


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
    batch: pd.DataFrame, *, unlabeled_pool_ids: Collection[str], max_size: int
) -> ValidationReport:
    """A selected batch: columns ``item_id, score, strategy, round_id`` exist; 1 <= rows <= ``max_size``;
    ``item_id`` is not null, unique and one of ``unlabeled_pool_ids``.

    The in-set expectation gets as its value set only the batch's own ids that are in the pool (at most
    ``len(batch)`` values), not the whole pool: the answer is the same, and GX re-processes an expectation's
    kwargs dozens of times per run, so a 100k-id value set costs ~11 s where this costs milliseconds.
    """
    pool_ids = (
        unlabeled_pool_ids if isinstance(unlabeled_pool_ids, set | frozenset) else set(unlabeled_pool_ids)
    )
    allowed: list[str] = []
    if ITEM_ID in batch.columns:
        allowed = sorted({str(i) for i in batch[ITEM_ID].dropna() if i in pool_ids or str(i) in pool_ids})
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


# ------------------------------------------------------------------------------------------------------------
# Running a suite and turning GX results into plain outcomes


def _run(
    name: str, frame: pd.DataFrame, suite: Any, parameters: dict[str, Any] | None = None
) -> ValidationReport:
    g = _gx()
    with _GX_LOCK:
        batch = g.batch_definition.get_batch(batch_parameters={"dataframe": frame})
        result = batch.validate(suite, result_format=_RESULT_FORMAT, expectation_parameters=parameters or {})
    ordered = sorted(result.results, key=lambda r: (r.expectation_config.meta or {}).get(_INDEX_KEY, 1 << 30))
    columns = {str(c) for c in frame.columns}
    outcomes = tuple(_outcome(r, columns) for r in ordered)
    return ValidationReport(suite=name, n_rows=len(frame), outcomes=outcomes)


def _outcome(result: Any, frame_columns: set[str]) -> ExpectationOutcome:
    config = result.expectation_config
    kind = str(config.type)
    kwargs: dict[str, Any] = dict(config.kwargs)
    details: dict[str, Any] = dict(result.result or {})
    success = bool(result.success)
    column: str | None = str(kwargs["column"]) if kwargs.get("column") is not None else None
    column_list = [str(c) for c in kwargs.get("column_list") or []]
    if column is None and column_list:
        column = ", ".join(column_list) if len(column_list) <= 3 else _span(column_list)

    error = _exception_message(result.exception_info)
    if error is not None:
        missing = [
            c for c in ([column] if "column" in kwargs else column_list) if c and c not in frame_columns
        ]
        if missing:
            observed = f"not evaluated: column(s) {', '.join(missing)} missing"
        else:
            observed = f"error: {_truncate(error, 200)}"
        return ExpectationOutcome(kind, column, False, observed, ())

    samples = _samples(details.get("partial_unexpected_list") or [], kind)
    if kind == _MULTI_FINITE and not success:
        offending = _offending_columns(details.get("partial_unexpected_list") or [])
        if offending:
            column = ", ".join(offending)
    return ExpectationOutcome(kind, column, success, _observed(kind, success, details, kwargs), samples)


def _span(columns: Sequence[str]) -> str:
    return f"{columns[0]} … {columns[-1]} ({len(columns)} columns)"


def _exception_message(info: Any) -> str | None:
    """GX nests exception info either flat or keyed by metric id; return the first raised message."""
    if not isinstance(info, Mapping):
        return None
    if info.get("raised_exception"):
        return str(info.get("exception_message") or "exception raised")
    for value in info.values():
        if isinstance(value, Mapping) and value.get("raised_exception"):
            return str(value.get("exception_message") or "exception raised")
    return None


def _observed(kind: str, success: bool, details: Mapping[str, Any], kwargs: Mapping[str, Any]) -> str:
    if kind == "expect_column_to_exist":
        return "present" if success else "missing"
    if "unexpected_count" in details:
        unexpected = int(_plain(details["unexpected_count"]))
        total = int(_plain(details.get("element_count", 0)))
        text = f"{unexpected} of {total} rows unexpected"
        mostly = kwargs.get("mostly")
        if mostly is not None and float(mostly) < 1.0:
            share = float(_plain(details.get("unexpected_percent") or 0.0))
            text += f" ({share:.1f}%; at most {100 * (1 - float(mostly)):.0f}% allowed)"
        missing = int(_plain(details.get("missing_count") or 0))
        if missing and kind not in _NULLS_ARE_UNEXPECTED:
            text += f"; {missing} null rows skipped"
        return text
    if "observed_value" in details:
        return f"observed {_text(details['observed_value'])}"
    return "passed" if success else "failed"


def _samples(values: Sequence[Any], kind: str) -> tuple[str, ...]:
    out: list[str] = []
    for value in values:
        text = _finite_sample(value) if kind == _MULTI_FINITE else _text(value)
        if text not in out:
            out.append(text)
        if len(out) == MAX_SAMPLES:
            break
    return tuple(out)


def _finite_sample(row: Any) -> str:
    """For the finite expectation a sample is a whole row; keep only its offending cells."""
    if not isinstance(row, Mapping):
        return _text(row)
    bad = [f"{k}={_text(v)}" for k, v in row.items() if not _is_finite_number(v)]
    return _truncate(", ".join(bad) or _text(row), 120)


def _offending_columns(rows: Sequence[Any]) -> list[str]:
    found: list[str] = []
    for row in rows:
        if isinstance(row, Mapping):
            for key, value in row.items():
                if not _is_finite_number(value) and str(key) not in found:
                    found.append(str(key))
    return found


def _is_finite_number(value: Any) -> bool:
    value = _plain(value)
    return isinstance(value, int | float) and math.isfinite(value)


def _plain(value: Any) -> Any:
    """numpy scalar -> Python scalar; anything else unchanged."""
    if isinstance(value, np.generic):
        return value.item()
    return value


def _text(value: Any) -> str:
    value = _plain(value)
    if value is None or value is pd.NA or value is pd.NaT:
        return str(value)
    if isinstance(value, Mapping):
        return _truncate(", ".join(f"{k}={_text(v)}" for k, v in value.items()), 120)
    if isinstance(value, float):
        return repr(value)  # 'nan', 'inf', '0.5'
    return _truncate(str(value), 120)


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
