"""A labeling campaign: rounds until the budget is spent, the target accuracy is reached, or max rounds."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from prefect import flow, get_run_logger

from flows.config import ProjectConfig
from flows.labeling_round import RoundReport, affordable_batch_size, labeling_round
from flows.project import Project
from integrations.crowd.base import BudgetExceededError


@dataclass
class CampaignReport:
    rounds: list[RoundReport] = field(default_factory=list)
    stopped_because: str = ""

    @property
    def final(self) -> RoundReport | None:
        return self.rounds[-1] if self.rounds else None


def next_round_blocker(config: ProjectConfig, base_dir: Path, live: bool = False) -> str | None:
    """Why no further round should start, or None if one should. Counts the project's rounds in the store, so
    a campaign run again continues where the last one stopped; an interrupted round is always resumed."""
    project = Project(config, base_dir, live=live)
    try:
        store = project.store
        rounds = store.rounds()
        if (rounds["status"] == "running").any():
            return None
        champion = store.champion()
        if champion is not None and champion.accuracy >= config.budget.target_accuracy:
            return f"target accuracy {config.budget.target_accuracy:.3f} reached ({champion.accuracy:.3f})"
        completed = int((rounds["status"] == "completed").sum())
        if completed >= config.budget.max_rounds:
            return f"max rounds ({config.budget.max_rounds}) done"
        crowd = project.crowd()
        try:
            affordable_batch_size(project, crowd, has_model=champion is not None)
        except BudgetExceededError:
            return f"budget spent (${project.spent(crowd):.2f} of ${config.budget.max_spend:.2f})"
        return None
    finally:
        project.close()


@flow(name="labeling-campaign", flow_run_name="{config.name}-campaign")
def labeling_campaign(
    config: ProjectConfig,
    base_dir: str = ".",
    live: bool = False,
) -> CampaignReport:
    """Run labeling rounds, one after another, until a stopping condition holds."""
    logger = get_run_logger()
    report = CampaignReport()
    while (blocker := next_round_blocker(config, Path(base_dir).resolve(), live)) is None:
        round_report = labeling_round(config, base_dir, live=live)
        if round_report is None:
            blocker = "another round of this project is running; this campaign stops here"
            break
        report.rounds.append(round_report)
        logger.info(
            "round %d: %d answers, $%.2f spent, label accuracy %s, model accuracy %.3f",
            round_report.number,
            round_report.answers_bought,
            round_report.spent_total,
            f"{round_report.label_accuracy:.3f}" if round_report.label_accuracy is not None else "n/a",
            round_report.model_accuracy,
        )
    report.stopped_because = blocker
    logger.info("campaign stopped: %s", blocker)
    return report
