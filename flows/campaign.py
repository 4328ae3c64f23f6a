"""A labeling campaign: rounds until the budget is spent, the target accuracy is reached, max rounds are done, or
more labels stop changing the model (the stopping rule)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from prefect import flow, get_run_logger

from labelflow.contracts import ITEM_ID, ItemSet
from labelflow.flows.bootstrap import progress_in_store
from labelflow.flows.config import ProjectConfig
from labelflow.flows.labeling_round import affordable_batch_size, labeling_round
from labelflow.flows.project import Project
from labelflow.flows.round_report import RoundReport
from labelflow.integrations.crowd.base import BudgetExceededError
from labelflow.tasks.selection import stop_reason, stop_set
from labelflow.tasks.training import load_model


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
    with Project(config, base_dir, live=live) as project:
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
        crowd = project.crowd_price()
        try:
            affordable_batch_size(project, crowd, has_model=champion is not None)
        except BudgetExceededError:
            return f"budget spent (${project.spent(crowd):.2f} of ${config.budget.max_spend:.2f})"
        return stopping_rule_blocker(project)


def waiting_for_owner(config: ProjectConfig, base_dir: Path) -> str | None:
    """Why a round did not start, if the project's owner has yet to label its gold and held-out items."""
    with Project(config, base_dir) as project:
        progress = progress_in_store(project.store)
    return progress.describe() if progress is not None else None


def stopping_rule_blocker(project: Project) -> str | None:
    """The stopping rule's verdict, derived from the store alone: each completed round's model (its file, as the
    store records it) predicts the stop set, so a campaign resumed in another process decides the same."""
    rule = project.config.selection.stopping
    store = project.store
    if not rule.enabled:
        return None
    rounds = store.rounds()
    versions = store.model_versions()
    versions = versions[versions["round_id"].isin(rounds.loc[rounds["status"] == "completed", "id"])]
    versions = versions.drop_duplicates("round_id", keep="last").sort_values("round_number")
    if len(versions) <= rule.window:
        return None  # too few rounds for the rule to say anything yet
    missing = [path for path in versions["path"] if not Path(path).exists()]
    if missing:
        get_run_logger().warning(
            "stopping rule skipped: the models of earlier rounds are gone (%s); the campaign goes on",
            missing[0],
        )
        return None
    dataset = project.dataset
    pool = dataset.frame(ItemSet.POOL).set_index(ITEM_ID)
    ids = stop_set(pool.index.tolist(), rule.stop_set_size, seed=project.config.selection.seed)
    rows = project.feature_rows
    features = rows(ids) if rows else pool.loc[ids, dataset.feature_columns].to_numpy(dtype=np.float64)
    models = [load_model(Path(path)) for path in versions["path"]]
    # models fitted on another featurizer version than the project's now (before a refit) cannot predict
    # today's rows: the rule looks at the rounds since
    models = [model for model in models if model.features_version == project.features_version]
    if len(models) <= rule.window:
        return None
    predictions = [model.predict(features) for model in models]
    reason = stop_reason(predictions, rule)
    return f"{reason}, after round {int(versions['round_number'].iloc[-1])}" if reason else None


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
            blocker = waiting_for_owner(config, Path(base_dir).resolve()) or (
                "another round of this project is running; this campaign stops here"
            )
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
