"""One labeling round, top to bottom: pool → ✓ → select → ✓ → waves of dispatch/collect/aggregate → ✓ → retrain
→ evaluate → publish.

Failure semantics: a round that stops on bad data (a failed Great Expectations suite, a dataset or budget error)
is marked ``failed`` — rerunning cannot cure it, so the next run starts a new round once the data is fixed. Any
other interruption (a crash, a kill, a crowd outage) leaves the round ``running``, and the next run *resumes* it:
the store already holds its batch, its requests and every answer collected, so nothing is asked or paid twice.

This module holds the lifecycle only: the frames a round works on are built in ``round_frames``, its figures and
markdown are worked out in ``round_report``, and who holds the round lease is named in ``leases``.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from pathlib import Path

import pandas as pd
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from labelflow.contracts import ITEM_ID, LABEL_COLUMNS, ContractError, ItemSet, empty_frame
from labelflow.flows.bootstrap import bootstrap_labels
from labelflow.flows.config import ProjectConfig
from labelflow.flows.events import ROUND_COMPLETED, ROUND_FAILED, emit
from labelflow.flows.leases import holding
from labelflow.flows.project import Project
from labelflow.flows.reporting import artifact_key, publish_monitoring_artifacts
from labelflow.flows.round_frames import (
    UnanswerableItemsError,
    crowd_labeled_frame,
    gold_is_random,
    gold_labels,
    held_out_frame,
    restore_batch,
    selectable,
    training_frame,
    unanswerable_items,
    unlabeled_pool,
)
from labelflow.flows.round_report import RoundReport, publish_reliability, round_markdown, summarize_round
from labelflow.flows.steps.aggregation import aggregate_answers
from labelflow.flows.steps.answers import collect_answers
from labelflow.flows.steps.dispatch import dispatch_wave
from labelflow.flows.steps.experts import collect_reviews, escalate_items, send_for_review
from labelflow.flows.steps.label_issues import report_label_issues
from labelflow.flows.steps.selection import select_batch, select_batch_on_dask
from labelflow.flows.steps.settlement import settle_round
from labelflow.flows.steps.training import evaluate_model, retrain_model
from labelflow.flows.steps.validation import validate_frame
from labelflow.flows.steps.weak_supervision import label_with_functions
from labelflow.flows.steps.workers import review_workers
from labelflow.integrations.answers_file import AnswersFileError
from labelflow.integrations.crowd.base import (
    EXPERT_WAVE,
    BudgetExceededError,
    CrowdAnswer,
    CrowdBackend,
    Handle,
    Priced,
)
from labelflow.integrations.crowd.task import shown_payloads
from labelflow.integrations.datasets import DatasetError
from labelflow.integrations.store import LabelStore, ModelVersionRecord, RoundRecord
from labelflow.tasks.answers import WaveProgress
from labelflow.tasks.confidence import DecisionLabels
from labelflow.tasks.dispatch import choose_gold, first_wave_items, items_needing_answers, plan_requests
from labelflow.tasks.escalation import expert_decisions
from labelflow.tasks.rows import RowView
from labelflow.tasks.selection import COMMITTEE_STRATEGIES
from labelflow.tasks.settlement import settlement_reviews
from labelflow.tasks.training import TrainedModel, fit_committee, load_model, pseudo_label_frame, save_model
from labelflow.tasks.validation import DataValidationError
from labelflow.tasks.weak_supervision import load_labeling_functions
from labelflow.tasks.workers import warm_start_from

DATA_ERRORS = (
    DataValidationError,
    DatasetError,
    ContractError,
    BudgetExceededError,
    AnswersFileError,
    UnanswerableItemsError,
)


def round_run_name() -> str:
    """``<project>-round-<n>``, n the round this run resumes (the running one) or opens, read from the store as
    the run starts: its console lines and the UI then give it one name from its first line on."""
    parameters = flow_run.parameters
    config: ProjectConfig = parameters["config"]
    with Project(config, Path(parameters.get("base_dir", ".")).resolve()) as project:
        rounds = project.store.rounds()
    running = rounds.loc[rounds["status"] == "running", "number"]
    number = running.iloc[0] if len(running) else rounds["number"].max() + 1 if len(rounds) else 1
    return f"{config.name}-round-{int(number)}"


@flow(name="labeling-round", flow_run_name=round_run_name, log_prints=False)
def labeling_round(
    config: ProjectConfig,
    base_dir: str = ".",
    wait_for_answers: bool = True,
    resume_only: bool = False,
    live: bool = False,
    when_pool_grew_by: int | None = None,
) -> RoundReport | None:
    """Run (or resume) one labeling round of the project (``live``: production MTurk, see docs/mturk.md).

    Returns None when nothing finished in this run: another round of the project is running, or (with
    ``wait_for_answers=False``, as served deployments run) the round handed its wait over to the collector
    deployment, which resumes it once the wave's answers are in (``resume_only=True``: never start a new round,
    so a resume that comes twice does nothing the second time); and, for data with too few labels, while the
    project owner's gold and held-out labels are not all in (``flows.bootstrap``; waited for, like answers).
    ``when_pool_grew_by``, as the pool-growth trigger runs it: a round only if at least that many pool items arrived
    since the latest round started, asked of the store under the lease, so a growth event delivered twice, or a
    scheduled round that came first, starts no second round.
    """
    with (
        Project(config, Path(base_dir).resolve(), live=live) as project,
        holding(project.store.round_lease, config.lease) as busy,
    ):
        if busy is not None:
            get_run_logger().warning(
                "another round of %s is running (%s); this run is skipped, nothing was done",
                config.name,
                busy,
            )
            return None
        waiting = bool((project.store.rounds()["status"] == "running").any())
        if resume_only and not waiting:
            get_run_logger().info("no round of %s is waiting to be resumed; nothing to do", config.name)
            return None
        if when_pool_grew_by is not None and not waiting:
            grown = project.store.pool_items_added_since_last_round()
            if grown < when_pool_grew_by:
                get_run_logger().info(
                    "the pool grew by %d since the latest round started, fewer than the %d that start one; "
                    "nothing to do",
                    grown,
                    when_pool_grew_by,
                )
                return None
        try:
            if project.cold_start is not None and not bootstrap_labels(project, wait=wait_for_answers).done:
                return None  # data without enough labels: no round before the owner's labels are in
            report = run_round(project, wait_for_answers=wait_for_answers)
        except Exception as error:
            emit(ROUND_FAILED, config.name, {"error": f"{type(error).__name__}: {error}"})
            raise
        if report is not None:
            emit(ROUND_COMPLETED, config.name, report.as_dict())
        return report


def run_round(project: Project, *, wait_for_answers: bool = True) -> RoundReport | None:
    """The round itself, under the lease: its report, or None while its wave's answers are awaited."""
    config, store = project.config, project.store
    dataset = project.dataset  # data that cannot be read is refused before a round opens
    round_ = store.open_round()
    settled = False
    try:
        validate_frame(
            dataset.items,
            "pool",
            config.name,
            round_number=round_.number,
            feature_columns=dataset.feature_columns,
        )
        register_items(project, round_number=round_.number)
        crowd, expert = project.crowd(), project.expert()
        if expert is not None:
            collect_reviews(store, expert, round_id=round_.id, round_number=round_.number)
        # the pool's features are held once, in the dataset; the round's frames of pool items are ids and rows
        features, pool = dataset.feature_matrix(), dataset.positions(ItemSet.POOL)
        weak = weak_labels(project, round_)
        store.save_labels(weak)
        unlabeled = unlabeled_pool(pool, store, round_)
        never_answered = unanswerable_items(crowd, dataset.items[ITEM_ID], project.label_names)
        champion = current_model(store, project)
        batch = restore_batch(store, round_) if round_.resumed else None
        if batch is not None:
            refuse_unanswerable(batch, never_answered, round_)
        else:
            unlabeled = leave_out_unanswerable(unlabeled, never_answered)
            committee = (
                fit_committee(
                    training_frame(project),
                    dataset.feature_columns,
                    config.training,
                    config.selection.committee_size,
                    seed=config.selection.seed + round_.number,
                    rows=project.feature_rows,
                )
                if champion is not None and config.selection.strategy in COMMITTEE_STRATEGIES
                else None
            )
            candidates = selectable(unlabeled, weak, project.config)
            batch_size = affordable_batch_size(project, crowd, has_model=champion is not None)
            if config.selection.engine == "dask":
                batch = select_batch_on_dask(
                    candidates,
                    pool[ITEM_ID],
                    champion,
                    config.selection,
                    round_.id,
                    project.workdir,
                    batch_size=batch_size,
                    committee=committee,
                    round_number=round_.number,
                )
            else:
                batch = select_batch(
                    candidates,
                    dataset.feature_columns,
                    champion,
                    config.selection,
                    round_.id,
                    batch_size=batch_size,
                    committee=committee,
                    round_number=round_.number,
                    scoring_rows=project.feature_rows,
                    features=RowView(features, candidates["row"]),
                )
        validate_frame(
            batch,
            "batch",
            config.name,
            round_number=round_.number,
            unlabeled_pool_ids=unlabeled[ITEM_ID],
            max_size=max(len(batch), 1),
        )
        labeled = label_batch(
            project,
            crowd,
            round_,
            batch,
            wait=wait_for_answers,
            leave_out=set(never_answered.index),
            expert=expert,
        )
        if labeled is None:
            return None  # waiting for answers; the collector resumes this round
        labels, waves, confidence = labeled
        validate_frame(
            labels, "labels", config.name, round_number=round_.number, label_names=project.label_names
        )
        store.save_labels(labels)
        review_workers(
            store,
            crowd,
            crowd_answers(store),
            project.label_names,
            gold_labels(dataset),
            round_id=round_.id,
            round_number=round_.number,
            block_spammers=config.quality.block_spammers,
            bonus_per_answer=config.quality.bonus_per_answer,
            bonus_top_share=config.quality.bonus_top_share,
        )
        settle_round(store, crowd, round_.id, round_number=round_.number, expert=expert)
        settled = True
        training = training_frame(project)
        beside_training = pool[~pool[ITEM_ID].isin(training[ITEM_ID])]  # what self-training may pseudo-label
        model = retrain_model(
            training,
            beside_training,
            dataset.feature_columns,
            project.label_names,
            config.training,
            round_.number,
            gold_ids=set(gold_labels(dataset).index),
            rows=project.feature_rows,
            features_version=project.features_version,
            unlabeled_features=RowView(features, beside_training["row"]),
        )
        store.save_labels(pseudo_label_frame(model, round_.id))
        metrics = evaluate_model(
            model, held_out_frame(dataset), dataset.feature_columns, round_.number, rows=project.feature_rows
        )
        version = register_model(store, model, metrics, round_, workdir=project.workdir)
        issues = report_label_issues(
            crowd_labeled_frame(store, dataset),
            dataset.feature_columns,
            project.label_names,
            config.training,
            round_number=round_.number,
            artifact_key=artifact_key(config.name, "label-issues"),
            rows=project.feature_rows,
        )
        issues.to_csv(project.workdir / f"label_issues_round_{round_.number:03d}.csv", index=False)
        if expert is not None and config.crowd.review_per_round > 0:
            send_for_review(
                store,
                expert,
                labels,
                issues,
                item_payloads(project),
                project=config.name,
                round_id=round_.id,
                round_number=round_.number,
                limit=config.crowd.review_per_round,
                confidence_target=config.quality.confidence_target,
                spent=project.spent(crowd),
                budget=config.budget.max_spend,
            )
        report: RoundReport = publish_round(
            project, crowd, round_, batch, labels, waves, model, version, issues, weak, confidence
        )
        return report
    except DATA_ERRORS as error:
        fail_round(project, round_, error, settled=settled)
        raise


def fail_round(project: Project, round_: RoundRecord, error: Exception, *, settled: bool) -> None:
    """End a round that cannot go on: store and pay the answers already given, close what was published, cancel
    what was not, and mark it ``failed`` with the reason, so that the next run starts a new round. A round that
    was ``settled`` already did the first two."""
    store, logger = project.store, get_run_logger()
    published = store.handles(round_.id, expert=False)
    collected = approved = 0
    if published and not settled:
        crowd = project.crowd()
        collected = store.add_answers(answers_given(crowd, published))
        # Nothing of a failing round was reviewed yet: every answer given is approved (the workers did the work).
        columns = ["answer_id", "worker_id"]
        given = pd.concat(
            [store.answers(round_.id)[columns], store.answers(round_.id, parsed=False)[columns]],
            ignore_index=True,
        )
        given = given[~given["answer_id"].isin(store.expert_answers(parsed=False)["answer_id"])]
        crowd.review(settlement_reviews(given))
        approved = len(given)
        crowd.close(published)
    escalated = store.handles(round_.id, expert=True) if not settled else []
    if escalated and (expert := project.expert()) is not None:
        collected += store.add_answers(answers_given(expert, escalated))
        expert.close(escalated)
        published = published + escalated
    cancelled = store.cancel_unpublished_requests(round_.id)
    store.finish_round(round_.id, "failed", error=f"{type(error).__name__}: {error}")
    logger.error(
        "round %d failed and is closed: %d late answer(s) stored, %d approved, %d published request(s) closed, %d "
        "unpublished cancelled. Fix the cause above; the next run starts round %d",
        round_.number,
        collected,
        approved,
        len(published),
        cancelled,
        round_.number + 1,
    )


def answers_given(crowd: CrowdBackend, handles: list[Handle]) -> list[CrowdAnswer]:
    """The answers already given to ``handles``; a handle the crowd cannot poll (the reason its round failed)
    is logged and skipped instead of keeping the others' answers from being stored."""
    try:
        return crowd.poll(handles)
    except Exception:  # the round is failing already: poll one by one to keep what can be kept
        given: list[CrowdAnswer] = []
        for handle in handles:
            try:
                given.extend(crowd.poll([handle]))
            except Exception as error:
                get_run_logger().warning("cannot poll item %s of the failed round: %s", handle.item_id, error)
        return given


def leave_out_unanswerable(unlabeled: pd.DataFrame, never_answered: pd.Series) -> pd.DataFrame:
    """The unlabeled pool less the items the crowd can never answer, with the reason logged."""
    left_out = unlabeled[ITEM_ID].isin(never_answered.index)
    if left_out.any():
        examples = never_answered[unlabeled.loc[left_out, ITEM_ID]].head(3)
        get_run_logger().warning(
            "%d pool item(s) left out of selection, the crowd can never answer them: %s",
            int(left_out.sum()),
            "; ".join(f"{item}: {reason}" for item, reason in examples.items()),
        )
        return unlabeled[~left_out].reset_index(drop=True)
    return unlabeled  # not a copy of the whole pool for nothing


def refuse_unanswerable(batch: pd.DataFrame, never_answered: pd.Series, round_: RoundRecord) -> None:
    """A resumed batch (sent out before such items were left out) with items the crowd can never answer."""
    stuck = never_answered[never_answered.index.isin(batch[ITEM_ID])]
    if not stuck.empty:
        raise UnanswerableItemsError(
            f"the crowd can never answer {len(stuck)} item(s) of round {round_.number}; run again: the next "
            "run starts a new round without them ("
            + "; ".join(f"{item}: {reason}" for item, reason in stuck.head(3).items())
            + ")"
        )


@task(name="register-items", task_run_name="register-items-round-{round_number}", cache_policy=NO_CACHE)
def register_items(project: Project, *, round_number: int) -> None:
    """Record each item's set in the store (idempotent; an item never changes set): the items of the pool-store
    partitions the store has not listed as registered (a new or changed source, a file whose ingestion stopped
    before it registered them), not every item of a 2M pool again at each round."""
    dataset, store = project.dataset, project.store
    items = dataset.items
    registered = store.registered_partitions()
    added = registered_now = start = 0
    for name, rows in dataset.parts:
        part, start = items.iloc[start : start + rows], start + rows
        if name in registered:
            continue
        added += store.add_items(
            part[[ITEM_ID, "item_set"]].assign(known_label=part[ITEM_ID].map(dataset.known_labels))
        )
        store.mark_registered(name, rows)
        registered_now += 1
    counts = items["item_set"].value_counts().to_dict()
    get_run_logger().info(
        "dataset: %s items %s (%d new in the store; %d of %d pool-store partitions registered now)",
        len(items),
        counts,
        added,
        registered_now,
        len(dataset.parts),
    )


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
    validate_frame(
        labels, "labels", project.config.name, round_number=round_.number, label_names=project.label_names
    )
    return labels


def current_model(store: LabelStore, project: Project) -> TrainedModel | None:
    """The champion the store records, loaded from its file; None before the first model, and None when it was
    fitted on other features than the project's now (a featurizer refit, a store from before text models
    trained on their sparse rows): selection then scores with no model rather than with a mismatched one."""
    champion = store.champion()
    if champion is None:
        return None
    model = load_model(Path(champion.path))
    if model.features_version != project.features_version:
        get_run_logger().warning(
            "the champion (model version %d) was fitted on featurizer version %s, the project's features are "
            "version %s now: this round's batch is chosen as a cold start; the round's new model uses the new "
            "features",
            champion.id,
            model.features_version,
            project.features_version,
        )
        return None
    return model


def affordable_batch_size(project: Project, crowd: Priced, *, has_model: bool) -> int:
    """The configured batch size, capped so the round's worst case (every item and gold item at max_answers, and
    with experts their share of the round on top) fits the budget."""
    config = project.config
    wanted = config.selection.batch_size if has_model else config.selection.seed_size
    for_crowd = 1 - config.crowd.escalate_share if config.crowd.expert_backend is not None else 1.0
    remaining_answers = (
        (config.budget.max_spend - project.spent(crowd)) * for_crowd / max(crowd.cost_per_answer(), 1e-12)
    )
    gold_answers = config.crowd.gold_per_round * config.crowd.max_answers  # gold gets more waves like items
    affordable = int((remaining_answers - gold_answers) // config.crowd.max_answers)
    if affordable < 1:
        raise BudgetExceededError(
            f"the remaining budget buys {remaining_answers:.0f} answers, not enough for a round "
            f"({gold_answers} gold answers + {config.crowd.max_answers} per item); raise budget.max_spend"
        )
    return min(wanted, affordable)


def label_batch(
    project: Project,
    crowd: CrowdBackend,
    round_: RoundRecord,
    batch: pd.DataFrame,
    *,
    wait: bool = True,
    leave_out: Collection[str] = (),
    expert: CrowdBackend | None = None,
) -> tuple[pd.DataFrame, int, DecisionLabels] | None:
    """The wave loop: dispatch → collect → ✓answers → aggregate, then another wave for items still uncertain
    (by the confidence :mod:`labelflow.tasks.confidence` makes: calibrated on random gold when there is enough);
    with an ``expert`` backend, the items still most uncertain after the last wave are escalated to it, and its
    answers decide them. None if a wave's answers are not in yet and ``wait`` is off. Gold items in
    ``leave_out`` are never asked."""
    config, store = project.config, project.store
    gold = project.dataset.frame(ItemSet.GOLD)[ITEM_ID]
    gold_ids = choose_gold(
        gold[~gold.isin(leave_out)].tolist(),
        config.crowd.gold_per_round,
        seed=config.selection.seed,
        round_number=round_.number,
    )
    # what the waves can ask about (the batch, the gold) is shown: not a JSON text for each of 2M pool items
    payloads = item_payloads(project, [*batch[ITEM_ID], *gold_ids])
    wave_items = first_wave_items(list(batch[ITEM_ID]), gold_ids, redundancy=config.crowd.redundancy)
    wave, decided = 1, DecisionLabels(pd.DataFrame(), None, "uncalibrated: no answers yet")
    out_of_answers: set[str] = set()  # items the crowd published no answer for: asking again brings none
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
        if not wave_collected(project, crowd, handles, round_number=round_.number, wave=wave, wait=wait):
            return None
        out_of_answers |= {handle.item_id for handle in handles if handle.n_answers == 0}
        answers = store.answers()
        validate_frame(
            answers,
            "answers",
            config.name,
            round_number=round_.number,
            wave=wave,
            label_names=project.label_names,
        )
        decided = decide_labels(project, round_, answers, wave=wave)
        this_round = decided.labels[decided.labels[ITEM_ID].isin(batch[ITEM_ID])]
        # gold asked in an earlier round calibrates on that round's answers: asking it more buys nothing
        asked_before = answers.loc[answers["round_id"] != round_.id, ITEM_ID]
        gold_asked_first = decided.gold[
            decided.gold[ITEM_ID].isin(gold_ids) & ~decided.gold[ITEM_ID].isin(asked_before)
        ]
        wave_items = items_needing_answers(
            this_round,
            confidence_target=config.quality.confidence_target,
            max_answers=config.crowd.max_answers,
            gold=gold_asked_first,
        )
        wave_items = wave_items[~wave_items[ITEM_ID].isin(out_of_answers)]
        wave += 1
    if expert is not None and config.crowd.escalate_share > 0:
        bought = store.requests(round_.id)
        crowd_answers_bought = int(bought.loc[~bought["is_expert"].astype(bool), "n_answers"].sum())
        handles = escalate_items(
            store,
            expert,
            decided.labels[decided.labels[ITEM_ID].isin(batch[ITEM_ID])],
            payloads,
            project=config.name,
            round_id=round_.id,
            round_number=round_.number,
            share=config.crowd.escalate_share,
            confidence_target=config.quality.confidence_target,
            crowd_cost=crowd_answers_bought * crowd.cost_per_answer(),
            spent=project.spent(crowd),
            budget=config.budget.max_spend,
        )
        if handles:
            if not wave_collected(
                project, expert, handles, round_number=round_.number, wave=EXPERT_WAVE, wait=wait
            ):
                return None
            decided = decide_labels(project, round_, store.answers(), wave=EXPERT_WAVE)
    return decided.labels, wave - 1, decided


def decide_labels(
    project: Project, round_: RoundRecord, answers: pd.DataFrame, *, wave: int
) -> DecisionLabels:
    """The labels from every answer so far (an item an expert decided at the expert's label), their confidence
    calibrated on random gold when there is enough."""
    config, store = project.config, project.store
    decided: DecisionLabels = aggregate_answers(
        answers,
        project.label_names,
        method=config.quality.method,
        gold=gold_labels(project.dataset),
        random_gold=gold_is_random(config),
        confidence_target=config.quality.confidence_target,
        round_id=round_.id,
        round_number=round_.number,
        wave=wave,
        warm_start=warm_start_from(store.workers(), project.label_names),
        expert=expert_decisions(store.expert_answers()),
    )
    return decided


def wave_collected(
    project: Project,
    backend: CrowdBackend,
    handles: Sequence[Handle],
    *,
    round_number: int,
    wave: int,
    wait: bool,
) -> bool:
    """Collect a wave's answers with the project's polling settings: True once the wave is done."""
    crowd = project.config.crowd
    progress: WaveProgress = collect_answers(
        project.store,
        backend,
        handles,
        round_number=round_number,
        wave=wave,
        poll_interval_minutes=crowd.poll_interval_minutes,
        deadline_hours=crowd.wave_deadline_hours,
        wait=wait,
        hold_seconds=crowd.hand_off_after_seconds,
    )
    return progress.done


def item_payloads(project: Project, item_ids: Collection[str] | None = None) -> pd.Series:
    """What each item (or each of ``item_ids``) shows a person (its text, image or row), by item id."""
    dataset = project.dataset
    items = dataset.items if item_ids is None else dataset.items[dataset.items[ITEM_ID].isin(item_ids)]
    return shown_payloads(items, dataset.kind, dataset.feature_columns)


def crowd_answers(store: LabelStore) -> pd.DataFrame:
    """Every parsed answer of the crowd's workers: the experts are the reference, not reviewed by the crowd's
    quality control."""
    answers = store.answers()
    return answers[~answers["answer_id"].isin(store.expert_answers()["answer_id"])].reset_index(drop=True)


@task(name="register-model", task_run_name="register-model-round-{round_.number}", cache_policy=NO_CACHE)
def register_model(
    store: LabelStore, model: TrainedModel, metrics: dict[str, float], round_: RoundRecord, *, workdir: Path
) -> ModelVersionRecord:
    """Save the challenger and promote it only if it is at least as accurate as the champion on held-out data.

    Once per round: a rerun after a kill finds the model the round already registered and keeps it (its file
    included), and the champion compared with is always an earlier round's."""
    logger = get_run_logger()
    registered = store.model_version_of_round(round_.id)
    if registered is not None:
        logger.info(
            "model of round %d was already registered (accuracy %.3f); kept",
            round_.number,
            registered.accuracy,
        )
        return registered
    champion_record = store.champion(excluding_round=round_.id)
    path = save_model(model, workdir / "models" / f"round-{round_.number:03d}.joblib")
    promoted = champion_record is None or metrics["accuracy"] >= champion_record.accuracy
    version = store.add_model_version(round_.id, str(path), metrics["accuracy"], metrics, promoted)
    logger.info(
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


@task(name="publish-round", task_run_name="publish-round-{round_.number}", cache_policy=NO_CACHE)
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
    confidence: DecisionLabels,
) -> RoundReport:
    """Sum the round up: a markdown artifact in the Prefect UI (and the gold's reliability plot), the round's
    summary in the store."""
    report = summarize_round(
        project, crowd, round_, batch, labels, waves, model, version, issues, weak, confidence
    )
    create_markdown_artifact(
        key=artifact_key(project.config.name, "round-summary"),
        markdown=round_markdown(project.config, report),
        description=f"Round {round_.number} of {project.config.name}",
    )
    project.store.finish_round(round_.id, "completed", summary=report.as_dict())
    publish_monitoring_artifacts(project.store, project.config.name, project.workdir, round_.id)
    publish_reliability(project.config.name, project.workdir, round_.number, confidence)
    return report
