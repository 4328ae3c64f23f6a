"""The collector: polls a waiting round's open wave, stores what arrived, and resumes the round when it is done.

Served rounds do not sit idle while a crowd works for hours: the round dispatches a wave, polls once and ends
(its flow run Completed, the round still ``running`` in the store). This flow runs on an interval, polls the
wave's handles from the store — answers go into the store the moment they are collected — and, once every
answer is in or the wave's deadline has passed, starts the round deployment, which resumes the round from the
store. Nothing is held in memory between the two, so a crash of either loses nothing.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_client, get_run_logger
from prefect.client.schemas.objects import StateType
from prefect.deployments import run_deployment

from labelflow.flows.config import ProjectConfig
from labelflow.flows.leases import holder_is_gone
from labelflow.flows.project import Project
from labelflow.flows.runs import read_runs
from labelflow.flows.steps.answers import collect_answers
from labelflow.integrations.crowd.base import EXPERT_WAVE
from labelflow.integrations.store import LabelStore
from labelflow.tasks.escalation import is_review_key

ROUND_FLOW = "labeling-round"
RESUMED_TAG = "resumed-by-collector"


def round_deployment_name(config: ProjectConfig) -> str:
    return f"{config.name}-round"


@flow(name="collect-answers", flow_run_name="collect-{config.name}")
def collect_waiting_answers(config: ProjectConfig, base_dir: str = ".") -> str:
    """Poll the project's waiting round once; resume it through its deployment when its wave is done."""
    logger = get_run_logger()
    with Project(config, Path(base_dir).resolve()) as project:
        store = project.store
        stopped = stopped_before_publishing(store)
        if stopped is not None:
            outcome = resume_round(config, f"round {stopped} had stopped before publishing anything")
            logger.warning(outcome)
            return outcome
        rounds = store.rounds()
        running = rounds[rounds["status"] == "running"]
        if running.empty:
            return "no round is waiting for answers"
        round_id, number = int(running["id"].iloc[0]), int(running["number"].iloc[0])
        requests = store.requests(round_id)
        if requests.empty or requests["external_id"].isna().all():
            return f"round {number} has published nothing yet"
        # Escalated items are the round's last step: once they are out, the round waits for the experts.
        escalated = requests["is_expert"].astype(bool) & ~requests["request_key"].map(is_review_key).astype(
            bool
        )
        expert = project.expert() if (escalated & requests["external_id"].notna()).any() else None
        wave = EXPERT_WAVE if expert is not None else int(requests.loc[~escalated, "wave"].max())
        progress = collect_answers(
            store,
            expert or project.crowd(),
            store.handles(round_id, wave, expert=expert is not None),
            round_number=number,
            wave=wave,
            poll_interval_minutes=config.crowd.poll_interval_minutes,
            deadline_hours=config.crowd.wave_deadline_hours,
            wait=False,
        )
    if not progress.done:
        return f"round {number}, wave {wave}: {progress.collected}/{progress.expected} answers; still waiting"
    outcome = resume_round(config, f"round {number}, wave {wave} is done")
    logger.info(outcome)
    return outcome


def stopped_before_publishing(store: LabelStore) -> int | None:
    """The number of the running round if the run that opened it died (a crash, a kill) before publishing
    anything: with nothing to collect, the collector would wait for it for ever."""
    rounds = store.rounds()
    running = rounds[rounds["status"] == "running"]
    if running.empty or store.requests(int(running["id"].iloc[0]))["external_id"].notna().any():
        return None
    holder = store.round_lease_holder()
    return int(running["number"].iloc[0]) if holder is None or holder_is_gone(holder) else None


def resume_round(config: ProjectConfig, outcome: str) -> str:
    """Start the round deployment on the waiting round (``resume_only``: a resume that comes twice does nothing),
    unless a resume is already on its way: on a busy machine a flow run can take longer to start than a collector
    interval, and a resume per tick would crowd out the one that matters."""
    with get_client(sync_client=True) as client:
        on_its_way = read_runs(
            client,
            [(ROUND_FLOW, round_deployment_name(config))],
            [StateType.SCHEDULED, StateType.PENDING, StateType.RUNNING],
            tag=RESUMED_TAG,
            limit=1,
        )
    if on_its_way:
        return f"{outcome}: its resume is already on its way as flow run {on_its_way[0].name}"
    run = run_deployment(
        f"{ROUND_FLOW}/{round_deployment_name(config)}",
        parameters={"resume_only": True},
        timeout=0,
        tags=[RESUMED_TAG],
        as_subflow=False,
    )
    return f"{outcome}: resuming the round as flow run {run.name}"
