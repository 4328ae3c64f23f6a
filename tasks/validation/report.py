"""A suite's result as plain values (no GX or numpy types), and the error a failed suite raises."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


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
