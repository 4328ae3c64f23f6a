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


@task(name="validate-frame", task_run_name="validate-{suite}", cache_policy=NO_CACHE)
def validate_frame(frame: pd.DataFrame, suite: str, project: str, **kwargs: Any) -> ValidationReport:
    """Run one suite (``"pool"``, ``"batch"``, ``"answers"`` or ``"labels"``; ``kwargs`` go to its function),
    publish the outcomes as the table artifact ``<project>-gx-<suite>`` (so that two projects on one server keep
    their own), log a one-line summary, then raise :class:`~labelflow.tasks.validation.DataValidationError` if
    anything failed. Returns the report."""
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
