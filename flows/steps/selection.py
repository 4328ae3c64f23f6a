"""The selection stage as a Prefect task: the round's batch of pool items for the crowd."""

from __future__ import annotations

import pandas as pd
from prefect import get_run_logger, task

from labelflow.tasks.selection import Committee, ProbabilisticModel, SelectionConfig, choose_batch


@task(name="select-batch", task_run_name="select-batch-round-{round_number}")
def select_batch(
    pool: pd.DataFrame,
    feature_columns: list[str],
    model: ProbabilisticModel | None,
    config: SelectionConfig,
    round_id: int,
    batch_size: int | None = None,
    committee: Committee | None = None,
    *,
    round_number: int,
) -> pd.DataFrame:
    """:func:`labelflow.tasks.selection.choose_batch`, logged."""
    batch = choose_batch(
        pool, feature_columns, model, config, round_id=round_id, batch_size=batch_size, committee=committee
    )
    get_run_logger().info(
        "selected %d of %d unlabeled items (%s)",
        len(batch),
        len(pool),
        batch["strategy"].iat[0] if len(batch) else "-",
    )
    return batch
