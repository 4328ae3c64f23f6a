"""The settlement step: :func:`labelflow.tasks.settlement.settle` with its log line."""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from labelflow.integrations.crowd.base import CrowdBackend
from labelflow.integrations.store import LabelStore
from labelflow.tasks.settlement import settle


@task(name="settle-round", task_run_name="settle-round-{round_number}", cache_policy=NO_CACHE)
def settle_round(
    store: LabelStore,
    crowd: CrowdBackend,
    round_id: int,
    *,
    round_number: int,
    expert: CrowdBackend | None = None,
) -> int:
    """Settle the round (late answers stored, undecided answers approved, requests closed, the experts' by
    ``expert``); return how many answers were approved here."""
    settlement = settle(store, crowd, round_id, expert)
    get_run_logger().info(
        "round %d settled: %d answers approved here (unparsed or late), %d late answers stored, %d requests closed",
        round_number,
        settlement.approved,
        settlement.late,
        settlement.closed,
    )
    return settlement.approved
