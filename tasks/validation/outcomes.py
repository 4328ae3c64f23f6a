"""GX's expectation results turned into plain :class:`ExpectationOutcome` rows: short observed text, a few
offending values, the offending columns of the finite expectation."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Final

import numpy as np
import pandas as pd

from labelflow.tasks.validation.report import ExpectationOutcome
from labelflow.tasks.validation.runtime import MULTI_FINITE

MAX_SAMPLES: Final = 5
"""At most this many offending values are kept per expectation."""

_NULLS_ARE_UNEXPECTED: Final = frozenset(
    {"expect_column_values_to_not_be_null", "expect_column_values_to_be_finite", MULTI_FINITE}
)


def outcome(result: Any, frame_columns: set[str]) -> ExpectationOutcome:
    """One GX expectation result as plain text; an expectation GX could not evaluate fails, naming the missing
    columns of ``frame_columns`` if that was why."""
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
    if kind == MULTI_FINITE and not success:
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
        text = _finite_sample(value) if kind == MULTI_FINITE else _text(value)
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
