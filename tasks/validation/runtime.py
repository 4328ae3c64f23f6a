"""The GX runtime: one ephemeral context per process (building one costs ~2 s), built lazily on first use, with
the custom finite expectation; suites are built here and validated under one lock."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import pandas as pd

MULTI_FINITE: Final = "expect_multicolumn_values_to_be_finite"
"""GX's name for the multicolumn finite expectation defined below (its class name in snake case)."""

_INDEX_KEY: Final = "labelflow_index"
_RESULT_FORMAT: Final = {"result_format": "BASIC", "partial_unexpected_count": 20}


@dataclass(frozen=True)
class GxRuntime:
    gx: Any  # the great_expectations module
    gxe: Any  # great_expectations.expectations
    batch_definition: Any
    finite: Callable[[Sequence[str]], Any]  # columns -> our "values are finite" expectation


# Guards building the context and every validation (GX is not documented as thread-safe).
_GX_LOCK = threading.RLock()
_GX_STATE: GxRuntime | None = None


def gx_runtime() -> GxRuntime:
    """The process-wide GX context, datasource and batch definition (built on first use)."""
    global _GX_STATE
    with _GX_LOCK:
        if _GX_STATE is None:
            _GX_STATE = _build_gx()
        return _GX_STATE


def _build_gx() -> GxRuntime:
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx
    import great_expectations.expectations as gxe
    from great_expectations.data_context.types.base import ProgressBarsConfig
    from great_expectations.execution_engine import pandas_execution_engine

    _quieten_gx_loggers()
    # GX fingerprints every frame under 1 GB by hashing it whole (twice per validation), a batch marker labelflow
    # never reads: 17 s of a 2M x 64 pool's ingestion. Frames are validated as given, without the fingerprint.
    pandas_execution_engine.HASH_THRESHOLD = 0
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    asset = context.data_sources.add_pandas("labelflow").add_dataframe_asset("frame")
    batch_definition = asset.add_batch_definition_whole_dataframe("whole-frame")
    return GxRuntime(gx=gx, gxe=gxe, batch_definition=batch_definition, finite=_define_finite_expectation())


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
    """True for rows whose values are all finite numbers; column by column, in each column's own dtype (a
    float64 copy of the whole frame doubled a float32 pool's memory)."""
    finite = np.ones(len(frame), dtype=bool)
    for _, column in frame.items():
        if not pd.api.types.is_numeric_dtype(
            column.dtype
        ):  # anything that does not parse counts as non-finite
            column = pd.to_numeric(column, errors="coerce")
        values = column.to_numpy(dtype="float64", na_value=np.nan) if column.hasnans else column.to_numpy()
        finite &= np.isfinite(values) if np.issubdtype(values.dtype, np.floating) else ~pd.isna(values)
    return finite


def _index(expectations: list[Any]) -> list[Any]:
    """Tag each expectation with its position so results come back in suite order."""
    for i, expectation in enumerate(expectations):
        expectation.meta = {**(expectation.meta or {}), _INDEX_KEY: i}
    return expectations


def new_suite(name: str, expectations: list[Any]) -> Any:
    """A plain suite of ``expectations`` (not registered in the context), results to come back in their order."""
    return gx_runtime().gx.ExpectationSuite(name=f"labelflow-{name}", expectations=_index(expectations))


def validate(frame: pd.DataFrame, suite: Any, parameters: dict[str, Any] | None = None) -> list[Any]:
    """GX's result for each expectation of ``suite`` on ``frame``, in suite order; ``parameters`` fill the suite's
    ``{"$PARAMETER": ...}`` values."""
    g = gx_runtime()
    with _GX_LOCK:
        batch = g.batch_definition.get_batch(batch_parameters={"dataframe": frame})
        result = batch.validate(suite, result_format=_RESULT_FORMAT, expectation_parameters=parameters or {})
    return sorted(result.results, key=lambda r: (r.expectation_config.meta or {}).get(_INDEX_KEY, 1 << 30))
