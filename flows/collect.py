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
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.deployments import run_deployment

from labelflow.flows.config import ProjectConfig
from labelflow.flows.leases import holder_is_gone
from labelflow.flows.project import Project
from labelflow.flows.runs import crash_flow_run, read_runs
from labelflow.flows.steps.answers import collect_answers
from labelflow.integrations.crowd.base import EXPERT_WAVE
from labelflow.integrations.store import LabelStore
from labelflow.tasks.escalation import is_review_key

ROUND_FLOW = "labeling-round"
COLLECT_FLOW = "collect-answers"
RESUMED_TAG = "resumed-by-collector"


def round_deployment_name(config: ProjectConfig) -> str:
    return f"{config.name}-round"


def on_answers_deployment_name(config: ProjectConfig) -> str:
    return f"{config.name}-collect-on-answers"


@flow(name=COLLECT_FLOW, flow_run_name="collect-{config.name}")
def collect_waiting_answers(config: ProjectConfig, base_dir: str = ".", on_answers: bool = False) -> str:
    """Poll the project's waiting round once; resume it through its deployment when its wave is done.

    ``on_answers``: this run was started by a ``labelflow.answers.arrived`` event. Such runs queue behind each
    other rather than being dropped, so the last annotation of a burst is always polled after it arrived; and
    once this one has polled, the runs that were queued before it started are cancelled: their annotations
    arrived before this poll, which has seen them. A burst of webhooks thus costs a poll or two, not one each."""
    covered = _queued_on_answers(config) if on_answers else []
    outcome = _collect_once(config, Path(base_dir).resolve())
    if covered:
        _cancel(covered, f"a collector that started after its event polled ({outcome})")
    return outcome


def _collect_once(config: ProjectConfig, base_dir: Path) -> str:
    logger = get_run_logger()
    with Project(config, base_dir) as project:
        store = project.store
        abandoned = abandoned_round(store, config)
        if abandoned is not None:
            outcome = resume_round(config, abandoned)
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


def _queued_on_answers(config: ProjectConfig) -> list[FlowRun]:
    """The event-driven collector runs waiting to start (for their turn, or for the runner)."""
    with get_client(sync_client=True) as client:
        return read_runs(client, [(COLLECT_FLOW, on_answers_deployment_name(config))], [StateType.SCHEDULED])


def _cancel(runs: list[FlowRun], reason: str) -> None:
    """Cancel runs whose events a poll has covered (one that started meanwhile too: it would find nothing new)."""
    from prefect.states import Cancelled

    with get_client(sync_client=True) as client:
        for run in runs:
            client.set_flow_run_state(run.id, Cancelled(message=f"Not needed: {reason}"))


def abandoned_round(store: LabelStore, config: ProjectConfig) -> str | None:
    """Why the running round must be resumed now, or None: the process that ran it died (a killed worker, a
    crash) while holding its lease, or died before publishing anything, when the collector, with nothing to
    collect, would wait for it for ever. A round waiting for its answers, with no one holding it, is not
    abandoned: the collector resumes it when its wave is done.

    A dead holder's flow run, left Running by its killed process, is marked Crashed on the way."""
    rounds = store.rounds()
    running = rounds[rounds["status"] == "running"]
    if running.empty:
        return None
    number = int(running["number"].iloc[0])
    lease = store.round_lease.current()
    if lease is not None:
        if not holder_is_gone(lease, stale_after_seconds=config.lease.stale_after_seconds):
            return None
        if lease.flow_run_id is not None:
            crash_flow_run(lease.flow_run_id, f"the process that ran it ({lease}) is dead")
        return f"round {number} was left by a dead process ({lease})"
    if store.requests(int(running["id"].iloc[0]))["external_id"].notna().any():
        return None
    return f"round {number} had stopped before publishing anything"


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
