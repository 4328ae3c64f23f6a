"""The project's deployments, served locally by ``labelflow serve`` (``prefect.serve``: no work pool needed).

- ``labeling-round/<project>-round``: the cron schedule of ``schedule.round_cron``, and a trigger on
  ``labelflow.pool.grew`` once ``inbox.round_after_items`` new pool items have arrived. Served rounds hand long
  waits over to the collector instead of holding a process.
- ``collect-answers/<project>-collect``: every ``crowd.poll_interval_minutes``, polls the waiting round.
- ``watch-inbox/<project>-watch-inbox``: every ``inbox.watch_interval_seconds``, ingests new files.
- ``labeling-campaign/<project>-campaign``: rounds until the budget, the target or max rounds; run on demand.

One round at a time is the label store's round lease, not a deployment concurrency limit: a run killed with its
process keeps a deployment's concurrency slot until the slot's lease expires (300 s on Prefect 3.9), so a crash
would block the project for five minutes; the store's lease is taken over as soon as its holder is seen dead.
The pollers are idempotent (checksums, answer ids), so overlapping ticks would be safe; they run one at a time
only so that ticks cannot pile up on a busy machine.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
from prefect.events import DeploymentEventTrigger

from flows.campaign import labeling_campaign
from flows.collect import collect_waiting_answers, round_deployment_name
from flows.config import ProjectConfig
from flows.events import POOL_GREW, THRESHOLD_LABEL
from flows.ingest import watch_inbox
from flows.labeling_round import labeling_round

# A poller still running makes the next tick redundant: cancel the newcomer rather than let ticks pile up on a
# busy machine. (A poller killed with its process holds the slot until its lease expires, delaying polls, not
# rounds.)
_ONE_POLLER = ConcurrencyLimitConfig(limit=1, collision_strategy=ConcurrencyLimitStrategy.CANCEL_NEW)


def build_deployments(config: ProjectConfig, base_dir: Path) -> list[Any]:
    parameters = {"config": config.model_dump(mode="json"), "base_dir": str(base_dir)}
    tags = ["labelflow", config.name]
    round_trigger = DeploymentEventTrigger(
        name=f"{config.name}: enough new pool items",
        expect={POOL_GREW},
        match={"labelflow.project": config.name, THRESHOLD_LABEL: "true"},
    )
    return [
        labeling_round.to_deployment(
            name=round_deployment_name(config),
            cron=config.schedule.round_cron,
            triggers=[round_trigger],
            parameters={**parameters, "wait_for_answers": False},
            tags=tags,
            description=f"One labeling round of {config.name}.",
        ),
        collect_waiting_answers.to_deployment(
            name=f"{config.name}-collect",
            concurrency_limit=_ONE_POLLER,
            interval=timedelta(minutes=config.crowd.poll_interval_minutes),
            parameters=parameters,
            tags=tags,
            description="Polls the waiting round's answers and resumes the round when its wave is done.",
        ),
        watch_inbox.to_deployment(
            name=f"{config.name}-watch-inbox",
            concurrency_limit=_ONE_POLLER,
            interval=timedelta(seconds=config.inbox.watch_interval_seconds),
            parameters=parameters,
            tags=tags,
            description=f"Ingests new files from {config.inbox.url}.",
        ),
        labeling_campaign.to_deployment(
            name=f"{config.name}-campaign",
            parameters=parameters,
            tags=tags,
            description="Rounds until the budget, the target accuracy or max rounds.",
        ),
    ]


def serve_project(config: ProjectConfig, base_dir: Path, *, limit: int = 4) -> None:
    """Serve until interrupted; at most ``limit`` flow runs at once, so short intervals cannot pile up runs."""
    from prefect import serve

    serve(*build_deployments(config, base_dir), limit=limit)
