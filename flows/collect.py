"""The collector: polls a waiting round's open wave, stores what arrived, and resumes the round when it is done.

Served rounds do not sit idle while a crowd works for hours: the round dispatches a wave, polls once and ends
(its flow run Completed, the round still ``running`` in the store). This flow runs on an interval, polls the
wave's handles from the store — answers go into the store the moment they are collected — and, once every
answer is in or the wave's deadline has passed, starts the round deployment, which resumes the round from the
store. Nothing is held in memory between the two, so a crash of either loses nothing.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger
from prefect.deployments import run_deployment

from flows.config import ProjectConfig
from flows.project import Project
from tasks.answers import collect_answers

ROUND_FLOW = "labeling-round"


def round_deployment_name(config: ProjectConfig) -> str:
    return f"{config.name}-round"


@flow(name="collect-answers", flow_run_name="collect-{config.name}")
def collect_waiting_answers(config: ProjectConfig, base_dir: str = ".") -> str:
    """Poll the project's waiting round once; resume it through its deployment when its wave is done."""
    logger = get_run_logger()
    project = Project(config, Path(base_dir).resolve())
    try:
        store = project.store
        rounds = store.rounds()
        running = rounds[rounds["status"] == "running"]
        if running.empty:
            return "no round is waiting for answers"
        round_id, number = int(running["id"].iloc[0]), int(running["number"].iloc[0])
        requests = store.requests(round_id)
        if requests.empty or requests["external_id"].isna().all():
            return f"round {number} has published nothing yet"
        wave = int(requests["wave"].max())
        progress = collect_answers(
            store,
            project.crowd(),
            store.handles(round_id, wave),
            round_number=number,
            wave=wave,
            poll_interval_minutes=config.crowd.poll_interval_minutes,
            deadline_hours=config.crowd.wave_deadline_hours,
            wait=False,
        )
    finally:
        project.close()
    if not progress.done:
        return f"round {number}, wave {wave}: {progress.collected}/{progress.expected} answers; still waiting"
    deployment = f"{ROUND_FLOW}/{round_deployment_name(config)}"
    run = run_deployment(
        deployment,
        parameters={"resume_only": True},
        timeout=0,
        tags=["resumed-by-collector"],
        as_subflow=False,
    )
    logger.info("round %d, wave %d is done: resuming the round as flow run %s", number, wave, run.name)
    return f"round {number} resumed"
