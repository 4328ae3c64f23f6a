"""The weak supervision step: :func:`labelflow.tasks.weak_supervision.label_items` with the functions' analysis
as a table artifact and their failures in the log."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
from prefect import get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE

from labelflow.tasks.weak_supervision import LabelingFunction, label_items


@task(
    name="label-with-functions",
    task_run_name="label-with-functions-round-{round_number}",
    cache_policy=NO_CACHE,
)
def label_with_functions(
    items: pd.DataFrame,
    functions: Sequence[LabelingFunction],
    label_names: Sequence[str],
    gold: pd.Series,
    *,
    round_id: int,
    round_number: int,
    artifact_key: str,
) -> pd.DataFrame:
    """Label ``items`` with the functions, publish their analysis table and log each failing function."""
    found = label_items(items, functions, label_names, gold, round_id=round_id)
    create_table_artifact(
        table=found.analysis.round(3).to_dict("records"),
        key=artifact_key,
        description=f"Round {round_number}: labeling functions — coverage, overlap, conflict, gold accuracy, "
        "failures",
    )
    logger = get_run_logger()
    for name, count in found.result.failures.items():
        logger.warning(
            "labeling function %s failed on %d item(s); first: %s", name, count, found.result.errors[name]
        )
    logger.info("labeling functions labeled %d of %d items", len(found.labels), len(items))
    return found.labels
