"""The project's deployments, served locally by ``labelflow serve`` (``prefect.serve``: no work pool needed).

- ``labeling-round/<project>-round``: the cron schedule of ``schedule.round_cron``, and a trigger on
  ``labelflow.pool.grew`` once ``inbox.round_after_items`` new pool items have arrived. Served rounds hand long
  waits over to the collector instead of holding a process.
- ``collect-answers/<project>-collect``: every ``crowd.poll_interval_minutes``, polls the waiting round.
- ``collect-answers/<project>-collect-on-answers`` (Label Studio crowds): a trigger on
  ``labelflow.answers.arrived``, which the webhook receiver emits for each new or edited annotation, so a round
  resumes as soon as its wave is in; the interval collector stays as the fallback. Its runs queue behind each
  other (concurrency 1, ENQUEUE) rather than be cancelled, so the run after the last annotation always polls.
- ``watch-inbox/<project>-watch-inbox``: every ``inbox.watch_interval_seconds``, ingests new files.
- ``labeling-campaign/<project>-campaign``: rounds until the budget, the target or max rounds; run on demand.

One round at a time is the label store's round lease, not a deployment concurrency limit: a run killed with its
process keeps a deployment's concurrency slot until the slot's lease expires (300 s on Prefect 3.9), so a crash
would block the project for five minutes; the store's lease is taken over as soon as its holder is seen dead.
The pollers are idempotent (checksums, answer ids), so overlapping ticks would be safe; they run one at a time
only so that ticks cannot pile up on a busy machine.

With a Label Studio crowd and ``crowd.label_studio.webhook_url`` set, serve also runs the webhook receiver (the
same as ``labelflow webhooks``) in a thread, on webhook_url's port.

One serve process per project, by the store's serve lease. Its flow runs are its child processes, so when it
dies they die with it, and nothing tells the Prefect server: they would stay Running (or Pending) for good, and a
poller's would keep its concurrency slot for 300 s, cancelling every tick of the collector until then. A serve
that takes over the lease of a dead one therefore marks those flow runs Crashed before it starts, and resumes a
round that died before publishing anything (which the collector, having nothing to collect, would not).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
from prefect.events import DeploymentEventTrigger
from prefect.logging import get_logger
from prefect.types.entrypoint import EntrypointType

from labelflow.flows.campaign import labeling_campaign
from labelflow.flows.collect import (
    abandoned_round,
    collect_waiting_answers,
    on_answers_deployment_name,
    resume_round,
    round_deployment_name,
)
from labelflow.flows.config import ProjectConfig
from labelflow.flows.events import ANSWERS_ARRIVED, POOL_GREW, THRESHOLD_LABEL
from labelflow.flows.ingest import watch_inbox
from labelflow.flows.labeling_round import labeling_round
from labelflow.flows.leases import holding
from labelflow.flows.project import Project
from labelflow.flows.runs import crash_flow_run, read_runs
from labelflow.flows.webhooks import webhook_receiver

# A poller still running makes the next tick redundant: cancel the newcomer rather than let ticks pile up on a
# busy machine. (A poller killed with serve would hold its slot until the slot's lease expires: the restarted
# serve frees it, see serve_project.)
_ONE_POLLER = ConcurrencyLimitConfig(limit=1, collision_strategy=ConcurrencyLimitStrategy.CANCEL_NEW)
# Event-driven collectors queue instead: a cancelled one could be the only run after a wave's last annotation.
_ONE_AT_A_TIME = ConcurrencyLimitConfig(limit=1, collision_strategy=ConcurrencyLimitStrategy.ENQUEUE)


def build_deployments(config: ProjectConfig, base_dir: Path) -> list[Any]:
    parameters = {"config": config.model_dump(mode="json"), "base_dir": str(base_dir)}
    tags = ["labelflow", config.name]
    round_trigger = DeploymentEventTrigger(
        name=f"{config.name}: enough new pool items",
        expect={POOL_GREW},
        match={"labelflow.project": config.name, THRESHOLD_LABEL: "true"},
        parameters={"when_pool_grew_by": config.inbox.round_after_items},  # merged over the deployment's
    )
    deployments = [
        labeling_round.to_deployment(
            entrypoint_type=EntrypointType.MODULE_PATH,
            name=round_deployment_name(config),
            cron=config.schedule.round_cron,
            triggers=[round_trigger],
            parameters={**parameters, "wait_for_answers": False},
            tags=tags,
            description=f"One labeling round of {config.name}.",
        ),
        collect_waiting_answers.to_deployment(
            entrypoint_type=EntrypointType.MODULE_PATH,
            name=f"{config.name}-collect",
            concurrency_limit=_ONE_POLLER,
            interval=timedelta(minutes=config.crowd.poll_interval_minutes),
            parameters=parameters,
            tags=tags,
            description="Polls the waiting round's answers and resumes the round when its wave is done.",
        ),
        watch_inbox.to_deployment(
            entrypoint_type=EntrypointType.MODULE_PATH,
            name=f"{config.name}-watch-inbox",
            concurrency_limit=_ONE_POLLER,
            interval=timedelta(seconds=config.inbox.watch_interval_seconds),
            parameters=parameters,
            tags=tags,
            description=f"Ingests new files from {config.inbox.url}.",
        ),
        labeling_campaign.to_deployment(
            entrypoint_type=EntrypointType.MODULE_PATH,
            name=f"{config.name}-campaign",
            parameters=parameters,
            tags=tags,
            description="Rounds until the budget, the target accuracy or max rounds.",
        ),
    ]
    if config.crowd.backend == "label_studio":
        deployments.append(
            collect_waiting_answers.to_deployment(
                entrypoint_type=EntrypointType.MODULE_PATH,
                name=on_answers_deployment_name(config),
                concurrency_limit=_ONE_AT_A_TIME,
                triggers=[
                    DeploymentEventTrigger(
                        name=f"{config.name}: answers arrived",
                        expect={ANSWERS_ARRIVED},
                        match={"labelflow.project": config.name},
                    )
                ],
                parameters={**parameters, "on_answers": True},
                tags=tags,
                description="Polls the waiting round when Label Studio says annotations arrived, and resumes "
                "the round when its wave is done.",
            )
        )
    return deployments


class AlreadyServedError(RuntimeError):
    """Another live ``labelflow serve`` process runs the project's deployments."""


def serve_project(config: ProjectConfig, base_dir: Path, *, limit: int = 4) -> None:
    """Serve until interrupted; at most ``limit`` flow runs at once, so short intervals cannot pile up runs."""
    from prefect import serve

    with Project(config, base_dir) as project:
        store = project.store
        previous = store.serve_lease.current()
        with holding(store.serve_lease, config.lease) as busy:
            if busy is not None:
                raise AlreadyServedError(f"labelflow serve is already running for {config.name} ({busy})")
            deployments = build_deployments(config, base_dir)
            if previous is not None:  # its process died without giving the lease back: its runs died with it
                crash_orphaned_runs(deployments, f"the labelflow serve process that ran it ({previous}) died")
                abandoned = abandoned_round(store, config)
                if (
                    abandoned is not None
                ):  # now rather than at the collector's next tick, up to an interval away
                    get_logger("labelflow.serve").warning(resume_round(config, abandoned))
            with webhooks_if_configured(config):
                serve(*deployments, limit=limit)


@contextmanager
def webhooks_if_configured(config: ProjectConfig) -> Iterator[None]:
    """The webhook receiver in a thread for a Label Studio crowd with a webhook_url, for as long as the block."""
    logger = get_logger("labelflow.serve")
    settings = config.crowd.label_studio
    if config.crowd.backend != "label_studio":
        yield
        return
    if settings.webhook_url is None:
        logger.info(
            "no crowd.label_studio.webhook_url: rounds collect every %g minutes only",
            config.crowd.poll_interval_minutes,
        )
        yield
        return
    with webhook_receiver(config) as receiver:
        logger.info("receiving Label Studio's webhooks at %s (for %s)", receiver.url, settings.webhook_url)
        yield


def crash_orphaned_runs(deployments: list[Any], reason: str) -> None:
    """Mark the deployments' unfinished flow runs Crashed, which also frees their concurrency slots. Only for
    runs whose process is known to be dead."""
    from prefect import get_client
    from prefect.client.schemas.objects import StateType

    unfinished = [StateType.PENDING, StateType.RUNNING, StateType.CANCELLING]
    with get_client(sync_client=True) as client:
        runs = read_runs(client, [(d.flow_name, d.name) for d in deployments], unfinished)
    for run in runs:
        crash_flow_run(str(run.id), reason)
    if runs:
        get_logger("labelflow.serve").warning(
            "marked %d orphaned flow run(s) Crashed: %s", len(runs), ", ".join(run.name for run in runs)
        )
