"""One labeling round, top to bottom: pool → ✓ → select → ✓ → waves of dispatch/collect/aggregate → ✓ → retrain
→ evaluate → publish.

Failure semantics: a round that stops on bad data (a failed Great Expectations suite, a dataset or budget error)
is marked ``failed`` — rerunning cannot cure it, so the next run starts a new round once the data is fixed. Any
other interruption (a crash, a kill, a crowd outage) leaves the round ``running``, and the next run *resumes* it:
the store already holds its batch, its requests and every answer collected, so nothing is asked or paid twice.
"""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from labelflow.contracts import ITEM_ID, LABEL_COLUMNS, ContractError, ItemSet, LabelSource, empty_frame
from labelflow.flows.config import ProjectConfig
from labelflow.flows.events import ROUND_COMPLETED, ROUND_FAILED, emit
from labelflow.flows.project import Project
from labelflow.flows.reporting import artifact_key, publish_monitoring_artifacts
from labelflow.flows.steps.aggregation import aggregate_answers
from labelflow.flows.steps.selection import select_batch
from labelflow.integrations.crowd.base import BudgetExceededError, CrowdBackend
from labelflow.integrations.datasets import Dataset, DatasetError
from labelflow.integrations.store import LabelStore, ModelVersionRecord, RoundRecord
from labelflow.tasks.answers import collect_answers
from labelflow.tasks.dispatch import choose_gold, dispatch_wave, items_needing_answers, plan_requests
from labelflow.tasks.label_issues import report_label_issues
from labelflow.tasks.selection import COMMITTEE_STRATEGIES
from labelflow.tasks.settlement import settle_round
from labelflow.tasks.training import (
    TrainedModel,
    evaluate_model,
    fit_committee,
    load_model,
    pseudo_label_frame,
    retrain_model,
    save_model,
)
from labelflow.tasks.validation import DataValidationError, validate_frame
from labelflow.tasks.weak_supervision import label_with_functions, load_labeling_functions
from labelflow.tasks.workers import review_workers, warm_start_from

DATA_ERRORS = (DataValidationError, DatasetError, ContractError, BudgetExceededError)


@dataclass(frozen=True)
class RoundReport:
    round_id: int
    number: int
    batch_size: int
    waves: int
    answers_bought: int  # this round, gold included
    gold_answers: int
    answers_fixed_k: int  # what fixed redundancy at crowd.max_answers would have bought for the same items
    cost: float
    spent_total: float
    answers_total: int
    agreement: float
    label_accuracy: float | None  # crowd labels vs the simulation's hidden truth, non-gold items
    crowd_labels: int
    pseudo_labels: int
    model_accuracy: float
    previous_accuracy: float | None
    promoted: bool
    model_path: str
    label_issues: int = 0  # crowd labels the model contradicts, offered for relabeling
    label_issue_precision: float | None = None  # share of them that are wrong by the hidden truth
    self_training_threshold: float | None = None  # chosen on gold for training.pseudo_label_precision
    gold_above_threshold: int | None = None  # gold items at or above it (out of fold) ...
    gold_right_above_threshold: int | None = None  # ... and how many of them were right
    pseudo_label_precision_bound: float | None = None  # what they bound the precision at (95% one-sided)
    pseudo_label_accuracy: float | None = None  # pseudo-labels vs the simulation's hidden truth
    function_labels: int = 0  # pool items the labeling functions label (weak supervision)
    function_label_accuracy: float | None = None  # their labels vs the simulation's hidden truth

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@flow(name="labeling-round", flow_run_name="{config.name}-round", log_prints=False)
def labeling_round(
    config: ProjectConfig,
    base_dir: str = ".",
    wait_for_answers: bool = True,
    resume_only: bool = False,
    live: bool = False,
) -> RoundReport | None:
    """Run (or resume) one labeling round of the project (``live``: production MTurk, see docs/mturk.md).

    Returns None when nothing finished in this run: another round of the project is running, or (with
    ``wait_for_answers=False``, as served deployments run) the round handed its wait over to the collector
    deployment, which resumes it once the wave's answers are in (``resume_only=True``: never start a new round,
    so a resume that comes twice does nothing the second time).
    """
    project = Project(config, Path(base_dir).resolve(), live=live)
    holder = lease_holder()
    try:
        busy = project.store.acquire_round_lease(holder, is_stale=holder_is_gone)
        if busy is not None:
            get_run_logger().warning(
                "another round of %s is running (%s); this run is skipped, nothing was done",
                config.name,
                busy,
            )
            return None
        rounds = project.store.rounds()
        if resume_only and not (rounds["status"] == "running").any():
            get_run_logger().info("no round of %s is waiting to be resumed; nothing to do", config.name)
            return None
        try:
            report = run_round(project, wait_for_answers=wait_for_answers)
        except Exception as error:
            emit(ROUND_FAILED, config.name, {"error": f"{type(error).__name__}: {error}"})
            raise
        if report is not None:
            emit(ROUND_COMPLETED, config.name, report.as_dict())
        return report
    finally:
        project.store.release_round_lease(holder)
        project.close()


def lease_holder() -> str:
    """Who this process is, for the round lease: host, process id and a token unique to this run."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def holder_is_gone(holder: str) -> bool:
    """A holder on this host whose process has ended (killed, crashed) will never release its lease."""
    host, pid, _ = holder.split(":", 2)
    if host != socket.gethostname():
        return False  # cannot see another host's processes; its lease stands
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def run_round(project: Project, *, wait_for_answers: bool = True) -> RoundReport | None:
    config, store = project.config, project.store
    round_ = store.open_round()
    _name_flow_run(f"{config.name}-round-{round_.number}")
    try:
        dataset = project.dataset
        validate_frame(dataset.items, "pool", feature_columns=dataset.feature_columns)
        register_items(project)
        crowd = project.crowd()
        pool = dataset.frame(ItemSet.POOL)
        weak = weak_labels(project, round_)
        store.save_labels(weak)
        unlabeled = unlabeled_pool(pool, store, round_)
        champion = current_model(store)
        batch = restore_batch(store, round_) if round_.resumed else None
        if batch is None:
            committee = (
                fit_committee(
                    training_frame(project),
                    dataset.feature_columns,
                    config.training,
                    config.selection.committee_size,
                    seed=config.selection.seed + round_.number,
                )
                if champion is not None and config.selection.strategy in COMMITTEE_STRATEGIES
                else None
            )
            batch = select_batch(
                selectable(unlabeled, weak, project.config),
                dataset.feature_columns,
                champion,
                config.selection,
                round_.id,
                batch_size=affordable_batch_size(project, crowd, has_model=champion is not None),
                committee=committee,
            )
        validate_frame(
            batch, "batch", unlabeled_pool_ids=set(unlabeled[ITEM_ID]), max_size=max(len(batch), 1)
        )
        labeled = label_batch(project, crowd, round_, batch, wait=wait_for_answers)
        if labeled is None:
            return None  # waiting for answers; the collector resumes this round
        labels, waves = labeled
        validate_frame(labels, "labels", label_names=project.label_names)
        store.save_labels(labels)
        review_workers(
            store,
            crowd,
            store.answers(),
            project.label_names,
            gold_labels(dataset),
            round_id=round_.id,
            round_number=round_.number,
            block_spammers=config.quality.block_spammers,
            bonus_per_answer=config.quality.bonus_per_answer,
            bonus_top_share=config.quality.bonus_top_share,
        )
        settle_round(store, crowd, round_.id, round_number=round_.number)
        training = training_frame(project)
        model = retrain_model(
            training,
            pool[~pool[ITEM_ID].isin(training[ITEM_ID])].reset_index(drop=True),
            dataset.feature_columns,
            project.label_names,
            config.training,
            round_.id,
            gold_ids=set(gold_labels(dataset).index),
        )
        store.save_labels(pseudo_label_frame(model, round_.id))
        metrics = evaluate_model(model, held_out_frame(dataset), dataset.feature_columns, round_.id)
        version = register_model(
            store, model, metrics, round_, champion_record=store.champion(), workdir=project.workdir
        )
        issues = report_label_issues(
            crowd_labeled_frame(store, dataset),
            dataset.feature_columns,
            project.label_names,
            config.training,
            round_number=round_.number,
            artifact_key=artifact_key(config.name, "label-issues"),
        )
        issues.to_csv(project.workdir / f"label_issues_round_{round_.number:03d}.csv", index=False)
        report: RoundReport = publish_round(
            project, crowd, round_, batch, labels, waves, model, version, issues, weak
        )
        return report
    except DATA_ERRORS as error:
        store.finish_round(round_.id, "failed", error=f"{type(error).__name__}: {error}")
        raise


@task(name="register-items", cache_policy=NO_CACHE)
def register_items(project: Project) -> None:
    """Record each item's set in the store (idempotent; an item never changes set)."""
    dataset = project.dataset
    frame = dataset.items[[ITEM_ID, "item_set"]].assign(
        known_label=dataset.items[ITEM_ID].map(dataset.known_labels)
    )
    added = project.store.add_items(frame)
    counts = dataset.items["item_set"].value_counts().to_dict()
    get_run_logger().info("dataset: %s items %s (%d new in the store)", len(frame), counts, added)


def unlabeled_pool(pool: pd.DataFrame, store: LabelStore, round_: RoundRecord) -> pd.DataFrame:
    """Pool items no earlier round has asked the crowd about."""
    asked = store.requested_items(before_round=round_.id)
    return pool[~pool[ITEM_ID].isin(asked)].reset_index(drop=True)


def weak_labels(project: Project, round_: RoundRecord) -> pd.DataFrame:
    """This round's labels from the labeling functions (``source = functions``); none when none are set."""
    spec = project.config.weak_supervision.functions
    if spec is None:
        return empty_frame(LABEL_COLUMNS)
    dataset = project.dataset
    items = dataset.items[dataset.items["item_set"].isin([ItemSet.POOL.value, ItemSet.GOLD.value])]
    labels: pd.DataFrame = label_with_functions(
        items.reset_index(drop=True),
        load_labeling_functions(spec),
        project.label_names,
        gold_labels(dataset),
        round_id=round_.id,
        round_number=round_.number,
        artifact_key=artifact_key(project.config.name, "labeling-functions"),
    )
    validate_frame(labels, "labels", label_names=project.label_names)
    return labels


def selectable(unlabeled: pd.DataFrame, weak: pd.DataFrame, config: ProjectConfig) -> pd.DataFrame:
    """The unlabeled pool less what the labeling functions already label confidently (when configured so)."""
    if not config.weak_supervision.skip_confident or weak.empty:
        return unlabeled
    confident = weak.loc[weak["confidence"] >= config.quality.confidence_target, ITEM_ID]
    return unlabeled[~unlabeled[ITEM_ID].isin(confident)].reset_index(drop=True)


def current_model(store: LabelStore) -> TrainedModel | None:
    champion = store.champion()
    return load_model(Path(champion.path)) if champion else None


def restore_batch(store: LabelStore, round_: RoundRecord) -> pd.DataFrame | None:
    """The batch an interrupted round already dispatched, so a resumed round asks about the same items."""
    first_wave = store.requests(round_.id, wave=1)
    items = first_wave.loc[~first_wave["is_gold"].astype(bool), ITEM_ID]
    if items.empty:
        return None
    return pd.DataFrame(
        {ITEM_ID: items.to_numpy(), "score": np.nan, "strategy": "resumed", "round_id": round_.id}
    )


def affordable_batch_size(project: Project, crowd: CrowdBackend, *, has_model: bool) -> int:
    """The configured batch size, capped so the round's worst case (every item at max_answers) fits the budget."""
    config = project.config
    wanted = config.selection.batch_size if has_model else config.selection.seed_size
    remaining_answers = (config.budget.max_spend - project.spent(crowd)) / max(crowd.cost_per_answer(), 1e-12)
    gold_answers = config.crowd.gold_per_round * config.crowd.redundancy
    affordable = int((remaining_answers - gold_answers) // config.crowd.max_answers)
    if affordable < 1:
        raise BudgetExceededError(
            f"the remaining budget buys {remaining_answers:.0f} answers, not enough for a round "
            f"({gold_answers} gold answers + {config.crowd.max_answers} per item); raise budget.max_spend"
        )
    return min(wanted, affordable)


def label_batch(
    project: Project, crowd: CrowdBackend, round_: RoundRecord, batch: pd.DataFrame, *, wait: bool = True
) -> tuple[pd.DataFrame, int] | None:
    """The wave loop: dispatch → collect → ✓answers → aggregate, then another wave for items still uncertain.
    None if a wave's answers are not in yet and ``wait`` is off."""
    config, store = project.config, project.store
    gold_ids = choose_gold(
        project.dataset.frame(ItemSet.GOLD)[ITEM_ID].tolist(),
        config.crowd.gold_per_round,
        seed=config.selection.seed,
        round_number=round_.number,
    )
    payloads = project.dataset.items.set_index(ITEM_ID)["payload"]
    wave_items = pd.DataFrame(
        {
            ITEM_ID: list(batch[ITEM_ID]) + gold_ids,
            "is_gold": [False] * len(batch) + [True] * len(gold_ids),
            "n_answers": config.crowd.redundancy,
            "answers_before": 0,
        }
    )
    wave, labels = 1, pd.DataFrame()
    while not wave_items.empty:
        requests = plan_requests(
            wave_items.assign(payload=wave_items[ITEM_ID].map(payloads)),
            project=config.name,
            round_id=round_.id,
            round_number=round_.number,
            wave=wave,
        )
        handles = dispatch_wave(
            store,
            crowd,
            requests,
            round_number=round_.number,
            wave=wave,
            spent=project.spent(crowd),
            budget=config.budget.max_spend,
        )
        progress = collect_answers(
            store,
            crowd,
            handles,
            round_number=round_.number,
            wave=wave,
            poll_interval_minutes=config.crowd.poll_interval_minutes,
            deadline_hours=config.crowd.wave_deadline_hours,
            wait=wait,
            hold_seconds=config.crowd.hand_off_after_seconds,
        )
        if not progress.done:
            return None
        answers = store.answers()
        validate_frame(answers, "answers", label_names=project.label_names)
        labels = aggregate_answers(
            answers,
            project.label_names,
            method=config.quality.method,
            gold=gold_labels(project.dataset),
            round_id=round_.id,
            warm_start=warm_start_from(store.workers(), project.label_names),
        )
        this_round = labels[labels[ITEM_ID].isin(batch[ITEM_ID])]
        wave_items = items_needing_answers(
            this_round,
            confidence_target=config.quality.confidence_target,
            max_answers=config.crowd.max_answers,
        )
        wave += 1
    return labels, wave - 1


def crowd_labeled_frame(store: LabelStore, dataset: Dataset) -> pd.DataFrame:
    """The latest crowd label of every answered non-gold item, with its features."""
    crowd = store.labels().query("source == 'crowd'")
    crowd = crowd[~crowd[ITEM_ID].isin(dataset.known_labels.index)]
    columns = [ITEM_ID, "label", "confidence", "n_answers"]
    return crowd[columns].merge(dataset.items[[ITEM_ID, *dataset.feature_columns]], on=ITEM_ID, how="inner")


def issue_precision(issues: pd.DataFrame, truth: pd.Series) -> float | None:
    """Of the flagged crowd labels, the share that the hidden truth says are wrong (where a truth exists)."""
    known = issues[issues[ITEM_ID].isin(truth.index)]
    if known.empty:
        return None
    return float((known["label"].to_numpy() != truth.reindex(known[ITEM_ID]).to_numpy()).mean())


def gold_labels(dataset: Dataset) -> pd.Series:
    return dataset.known_labels[dataset.frame(ItemSet.GOLD)[ITEM_ID]]


def training_frame(project: Project) -> pd.DataFrame:
    """Features with the latest crowd label of every answered item, gold items at their known labels, and (with
    labeling functions configured) the functions' labels of items nobody answered, at their reduced weight."""
    dataset, weak_config = project.dataset, project.config.weak_supervision
    labels = project.store.labels()
    columns = [ITEM_ID, "label", "confidence"]
    crowd = labels.loc[labels["source"] == LabelSource.CROWD.value, columns]
    gold = dataset.frame(ItemSet.GOLD)[[ITEM_ID]].assign(
        label=lambda f: f[ITEM_ID].map(dataset.known_labels), confidence=1.0
    )
    parts = [crowd[~crowd[ITEM_ID].isin(gold[ITEM_ID])], gold]
    if weak_config.functions is not None and weak_config.training_weight > 0:
        weak = labels.loc[labels["source"] == LabelSource.FUNCTIONS.value, columns]
        weak = weak[~weak[ITEM_ID].isin(crowd[ITEM_ID]) & ~weak[ITEM_ID].isin(gold[ITEM_ID])]
        parts.append(weak.assign(confidence=weak["confidence"] * weak_config.training_weight))
    labeled = pd.concat(parts, ignore_index=True)
    return labeled.merge(dataset.items[[ITEM_ID, *dataset.feature_columns]], on=ITEM_ID, how="inner")


def held_out_frame(dataset: Dataset) -> pd.DataFrame:
    held_out = dataset.frame(ItemSet.HELD_OUT)
    return held_out.assign(label=held_out[ITEM_ID].map(dataset.known_labels))


@task(name="register-model", cache_policy=NO_CACHE)
def register_model(
    store: LabelStore,
    model: TrainedModel,
    metrics: dict[str, float],
    round_: RoundRecord,
    *,
    champion_record: ModelVersionRecord | None,
    workdir: Path,
) -> ModelVersionRecord:
    """Save the challenger and promote it only if it is at least as accurate as the champion on held-out data."""
    path = save_model(model, workdir / "models" / f"round-{round_.number:03d}.joblib")
    promoted = champion_record is None or metrics["accuracy"] >= champion_record.accuracy
    version = store.add_model_version(round_.id, str(path), metrics["accuracy"], metrics, promoted)
    get_run_logger().info(
        "model of round %d: accuracy %.3f, %s",
        round_.number,
        metrics["accuracy"],
        "promoted"
        if promoted
        else f"kept the champion ({champion_record.accuracy:.3f})"
        if champion_record
        else "",
    )
    return version


def agreement(answers: pd.DataFrame, labels: pd.DataFrame) -> float:
    """Share of answers that agree with their item's aggregated label."""
    joined = answers.merge(labels[[ITEM_ID, "label"]], on=ITEM_ID, suffixes=("", "_agg"))
    return float((joined["label"] == joined["label_agg"]).mean()) if len(joined) else float("nan")


@task(name="publish-round", cache_policy=NO_CACHE)
def publish_round(
    project: Project,
    crowd: CrowdBackend,
    round_: RoundRecord,
    batch: pd.DataFrame,
    labels: pd.DataFrame,
    waves: int,
    model: TrainedModel,
    version: ModelVersionRecord,
    issues: pd.DataFrame,
    weak: pd.DataFrame,
) -> RoundReport:
    """Sum the round up: a markdown artifact in the Prefect UI, the round's summary in the store."""
    store, dataset = project.store, project.dataset
    requests = store.requests(round_.id)
    round_answers = store.answers(round_.id)
    non_gold = labels[~labels[ITEM_ID].isin(dataset.known_labels.index)]
    truth = dataset.hidden_truth.reindex(non_gold[ITEM_ID]).to_numpy()
    known = pd.notna(truth)
    previous = store.model_versions().query("round_id != @round_.id and promoted")
    evidence = model.gold_evidence
    report = RoundReport(
        round_id=round_.id,
        number=round_.number,
        batch_size=len(batch),
        waves=waves,
        answers_bought=int(requests["n_answers"].sum()),
        gold_answers=int(requests.loc[requests["is_gold"].astype(bool), "n_answers"].sum()),
        answers_fixed_k=fixed_k_answers(requests, project.config.crowd.max_answers),
        cost=float(requests["n_answers"].sum() * crowd.cost_per_answer()),
        spent_total=project.spent(crowd),
        answers_total=store.count_answers(),
        agreement=agreement(round_answers[~round_answers["is_gold"].astype(bool)], labels),
        label_accuracy=float((non_gold["label"].to_numpy()[known] == truth[known]).mean())
        if known.any()
        else None,
        crowd_labels=len(non_gold),
        pseudo_labels=len(model.pseudo_labels),
        model_accuracy=version.accuracy,
        previous_accuracy=float(previous["accuracy"].iloc[-1]) if len(previous) else None,
        promoted=version.promoted,
        model_path=version.path,
        label_issues=len(issues),
        label_issue_precision=issue_precision(issues, dataset.hidden_truth),
        self_training_threshold=model.self_training_threshold,
        gold_above_threshold=evidence.above if evidence else None,
        gold_right_above_threshold=evidence.right if evidence else None,
        pseudo_label_precision_bound=evidence.precision_bound() if evidence else None,
        pseudo_label_accuracy=share_right(model.pseudo_labels, dataset.hidden_truth),
        function_labels=len(weak),
        function_label_accuracy=share_right(weak, dataset.hidden_truth),
    )
    create_markdown_artifact(
        key=artifact_key(project.config.name, "round-summary"),
        markdown=round_markdown(project.config, report),
        description=f"Round {round_.number} of {project.config.name}",
    )
    store.finish_round(round_.id, "completed", summary=report.as_dict())
    publish_monitoring_artifacts(store, project.config.name, project.workdir, round_.id)
    return report


def share_right(labels: pd.DataFrame, truth: pd.Series) -> float | None:
    """Share of ``labels`` that the hidden truth confirms (where a truth exists)."""
    known = labels[labels[ITEM_ID].isin(truth.index)]
    if known.empty:
        return None
    return float((known["label"].to_numpy() == truth.reindex(known[ITEM_ID]).to_numpy()).mean())


def fixed_k_answers(requests: pd.DataFrame, k: int) -> int:
    """Answers the round would have bought asking every item (gold included) ``k`` answers in one wave."""
    return int(requests.loc[requests["wave"] == 1, "item_id"].nunique() * k)


def round_markdown(config: ProjectConfig, report: RoundReport) -> str:
    change = (
        f"{report.model_accuracy - report.previous_accuracy:+.3f}"
        if report.previous_accuracy is not None
        else "first model"
    )
    label_accuracy = (
        f"{report.label_accuracy:.3f}" if report.label_accuracy is not None else "n/a (no hidden truth)"
    )
    saved = report.answers_fixed_k - report.answers_bought
    return "\n".join(
        [
            f"# {config.name} — round {report.number}",
            "",
            "| figure | value |",
            "|---|---|",
            f"| items sent to the crowd | {report.batch_size} in {report.waves} wave(s) |",
            f"| answers bought (gold included) | {report.answers_bought} ({report.gold_answers} gold) |",
            f"| adaptive redundancy (k0 {config.crowd.redundancy}, up to {config.crowd.max_answers} while "
            f"confidence < {config.quality.confidence_target}) | {saved} answers saved against fixed "
            f"k = {config.crowd.max_answers} ({report.answers_fixed_k}) |",
            f"| cost of the round | ${report.cost:.2f} |",
            f"| spent so far | ${report.spent_total:.2f} of ${config.budget.max_spend:.2f} |",
            f"| agreement with the aggregated label | {report.agreement:.3f} |",
            f"| crowd labels ({config.quality.method}) | {report.crowd_labels} |",
            f"| label accuracy vs hidden truth | {label_accuracy} |",
            f"| items labeled per source | crowd {report.crowd_labels}, labeling functions "
            f"{report.function_labels}, model {report.pseudo_labels} |",
            f"| pseudo-labels (self-training) | {report.pseudo_labels}"
            + (
                f" at confidence ≥ {report.self_training_threshold:.3f}"
                if report.self_training_threshold is not None
                else ""
            )
            + (
                f", chosen on gold: {report.gold_right_above_threshold} of {report.gold_above_threshold} right "
                f"above it, so precision ≥ {report.pseudo_label_precision_bound:.3f} at 95% confidence "
                f"(target {config.training.pseudo_label_precision})"
                if report.pseudo_label_precision_bound is not None
                else ""
            )
            + (
                f", {report.pseudo_label_accuracy:.1%} right by the hidden truth"
                if report.pseudo_label_accuracy is not None
                else ""
            )
            + " |",
            f"| held-out model accuracy | {report.model_accuracy:.3f} ({change}) |",
            f"| model promoted | {'yes' if report.promoted else 'no'} |",
            f"| label issues offered for relabeling | {report.label_issues}"
            + (
                f" ({report.label_issue_precision:.0%} of them wrong by the hidden truth)"
                if report.label_issue_precision is not None
                else ""
            )
            + " |",
        ]
    )


def _name_flow_run(name: str) -> None:
    """Give the flow run a name that says which round it is, once the store has told us."""
    from prefect.client.orchestration import get_client

    run_id = flow_run.get_id()
    if run_id:
        with get_client(sync_client=True) as client:
            client.update_flow_run(run_id, name=name)
