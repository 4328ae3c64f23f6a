"""The selection stage as a Prefect task: the round's batch of pool items for the crowd."""

from __future__ import annotations

import pandas as pd
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from labelflow.contracts import ITEM_ID
from labelflow.tasks.selection import Committee, ProbabilisticModel, SelectionConfig, choose_batch
from labelflow.tasks.training import FeatureRows


@task(name="select-batch", task_run_name="select-batch-round-{round_number}", cache_policy=NO_CACHE)
def select_batch(
    pool: pd.DataFrame,
    feature_columns: list[str],
    model: ProbabilisticModel | None,
    config: SelectionConfig,
    round_id: int,
    batch_size: int | None = None,
    committee: Committee | None = None,
    scoring_rows: FeatureRows | None = None,
    *,
    round_number: int,
) -> pd.DataFrame:
    """:func:`labelflow.tasks.selection.choose_batch`, logged. With ``scoring_rows`` (item ids -> the rows the
    model was trained on, e.g. sparse TF-IDF) the model scores those, and ``feature_columns`` (their dense view)
    only spread the batch out and start it cold."""
    batch = choose_batch(
        pool,
        feature_columns,
        model,
        config,
        round_id=round_id,
        batch_size=batch_size,
        committee=committee,
        scoring_features=(
            scoring_rows(pool[ITEM_ID].astype(str).tolist())
            if scoring_rows is not None and (model is not None or committee is not None) and len(pool)
            else None
        ),
    )
    get_run_logger().info(
        "selected %d of %d unlabeled items (%s)",
        len(batch),
        len(pool),
        batch["strategy"].iat[0] if len(batch) else "-",
    )
    return batch
