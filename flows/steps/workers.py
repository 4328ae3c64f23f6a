"""The worker review step: :func:`labelflow.tasks.workers.review_round` with its log line."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from labelflow.integrations.crowd.base import CrowdBackend
from labelflow.integrations.store import LabelStore
from labelflow.tasks.workers import review_round


@task(name="review-workers", task_run_name="review-workers-round-{round_number}", cache_policy=NO_CACHE)
def review_workers(
    store: LabelStore,
    crowd: CrowdBackend,
    answers: pd.DataFrame,
    label_names: Sequence[str],
    gold: pd.Series,
    *,
    round_id: int,
    round_number: int,
    block_spammers: bool,
    bonus_per_answer: float = 0.0,
    bonus_top_share: float = 0.1,
) -> pd.DataFrame:
    """Review the round's workers (see :func:`labelflow.tasks.workers.review_round`); return the worker table
    with each worker's status."""
    review = review_round(
        store,
        crowd,
        answers,
        label_names,
        gold,
        round_id=round_id,
        block_spammers=block_spammers,
        bonus_per_answer=bonus_per_answer,
        bonus_top_share=bonus_top_share,
    )
    counts = pd.Series([d.action.value for d in review.decisions]).value_counts().to_dict()
    get_run_logger().info(
        "reviewed %d workers: %d newly blocked (%s), %d blocked in all; decisions %s",
        len(review.table),
        len(review.newly_blocked),
        ", ".join(sorted(review.newly_blocked)) or "none",
        int((review.table["status"] == "blocked").sum()),
        counts,
    )
    return review.table
