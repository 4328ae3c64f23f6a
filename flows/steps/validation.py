"""The validation step: a Great Expectations suite (:func:`labelflow.tasks.validation.run_suite`) as a table
artifact and a log line, raising on failure. The GX context stays the one per process that
``labelflow.tasks.validation`` builds on first use."""

from __future__ import annotations

from typing import Any

import pandas as pd
from prefect import get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE

from labelflow.flows.reporting import artifact_key
from labelflow.tasks.validation import ValidationReport, run_suite


def _run_name(parameters: dict[str, Any]) -> str:
    """``validate-<suite>``, then ``-round-<n>`` and ``-wave-<w>`` when given, as the round's other steps."""
    name = f"validate-{parameters['suite']}"
    if parameters.get("round_number") is not None:
        name += f"-round-{parameters['round_number']}"
    if parameters.get("wave") is not None:
        name += f"-wave-{parameters['wave']}"
    return name


@task(name="validate-frame", task_run_name=_run_name, cache_policy=NO_CACHE)
def validate_frame(
    frame: pd.DataFrame,
    suite: str,
    project: str,
    *,
    round_number: int | None = None,
    wave: int | None = None,
    **kwargs: Any,
) -> ValidationReport:
    """Run one suite (``"pool"``, ``"batch"``, ``"answers"`` or ``"labels"``; ``kwargs`` go to its function),
    publish the outcomes as the table artifact ``<project>-gx-<suite>`` (so that two projects on one server keep
    their own), log a one-line summary, then raise :class:`~labelflow.tasks.validation.DataValidationError` if
    anything failed. Returns the report. ``round_number`` and ``wave`` only name the task run."""
    report = run_suite(frame, suite, **kwargs)
    create_table_artifact(
        table=report.as_rows(), key=artifact_key(project, f"gx-{suite}"), description=report.summary()
    )
    logger = get_run_logger()
    if report.success:
        logger.info(report.summary())
    else:
        logger.error(report.summary())
    report.raise_for_failures()
    return report
