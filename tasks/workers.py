"""Worker quality and review: which workers' answers carry information, and blocking those whose do not.

A worker's *agreement* is the expected share of their answers that are right under the aggregated posteriors,
``mean_i p_i(answer_i)`` (gold items count at their known label). Uniform spammers and workers who always give
one label both sit near chance (1/K); good workers sit near their accuracy. A worker is blocked only once we are
``confidence`` sure — by a Beta(1 + agreeing, 1 + disagreeing) posterior — that their accuracy lies below
``chance + (1 - chance) / 3``, a third of the way from chance to perfect. That bar is set from first principles
(not fitted to any crowd): a one-coin worker at it adds little once two better workers have answered, and a
good worker (accuracy ≥ 0.75 on ten labels) is many standard errors above it after twenty answers. The Beta bound
carries the evidence, so a verdict needs only five answers — enough that one unlucky item against the first,
weakest consensus cannot decide it. Blocking early matters: at about 130 answers a round over 30 workers, a floor
of twenty answers let a spammer keep answering for three or four rounds.

Per worker the store keeps their answers, the agreement, the gold answers and the share right, Raykar & Yu's
spammer score of their Dawid-Skene confusion matrix (0 for answers that ignore the truth, 1 for a perfect
worker), the confusion matrix itself (it warm-starts the next round's Dawid-Skene) and a status. Review
decisions go back through the crowd protocol: every answer is approved except the wrong gold answers of a worker
who *fails gold* (at least 3 gold answers, fewer right than the accuracy bar), which are rejected with the gold
label as the reason; the top ``bonus_top_share`` of workers by agreement get a bonus per answer of the round
when ``bonus_per_answer`` is set; spammers are blocked.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import beta

from labelflow.contracts import ITEM_ID, require_columns
from labelflow.integrations.crowd.base import CrowdBackend, Review, ReviewAction
from labelflow.integrations.store import LabelStore
from labelflow.tasks.aggregation import DawidSkene, gold_labels, spammer_scores, worker_quality


def posterior_agreement(answers: pd.DataFrame, model: DawidSkene) -> pd.DataFrame:
    """Per worker: ``worker_id, n_answers, agreement`` — the expected share of right answers, each answer
    scored against its item's posterior *without that answer* (its own vote removed by dividing out the
    worker's confusion row), so a spammer is not credited for agreeing with themself."""
    require_columns(answers, ("item_id", "worker_id", "label"), "answers")
    probas = model.probas_
    rows = probas.index.get_indexer(pd.Index(answers[ITEM_ID].astype(str)))
    cols = probas.columns.get_indexer(pd.Index(answers["label"].astype(str)))
    workers = model.workers_.get_indexer(pd.Index(answers["worker_id"].astype(str)))
    known = (rows >= 0) & (cols >= 0) & (workers >= 0)
    posterior = probas.to_numpy()[rows[known]]
    likelihood = model.errors_[workers[known], :, cols[known]]
    loo = posterior / np.clip(likelihood, 1e-12, None)
    loo /= loo.sum(axis=1, keepdims=True)
    p = np.zeros(len(answers))
    p[known] = loo[np.arange(len(loo)), cols[known]]
    frame = pd.DataFrame({"worker_id": answers["worker_id"].astype(str).to_numpy(), "p": p})
    grouped = frame.groupby("worker_id", sort=True)["p"]
    return pd.DataFrame(
        {
            "worker_id": grouped.sum().index,
            "n_answers": grouped.size().to_numpy(),
            "agreement": grouped.mean().to_numpy(),
        }
    )


def accuracy_bar(n_labels: int) -> float:
    """A third of the way from chance to perfect: 0.4 on ten labels, 0.67 on two."""
    chance = 1.0 / n_labels
    return chance + (1.0 - chance) / 3.0


def find_spammers(
    agreement: pd.DataFrame, n_labels: int, *, confidence: float = 0.95, min_answers: int = 5
) -> pd.DataFrame:
    """``agreement`` plus ``accuracy_upper`` (the ``confidence`` upper bound) and ``blocked``."""
    n = agreement["n_answers"].to_numpy(dtype=np.float64)
    agreeing = agreement["agreement"].to_numpy() * n
    upper = beta.ppf(confidence, 1.0 + agreeing, 1.0 + n - agreeing)
    blocked = (n >= min_answers) & (upper < accuracy_bar(n_labels))
    return agreement.assign(accuracy_upper=upper, blocked=blocked)


MIN_GOLD_TO_REJECT = 3  # gold answers a worker needs before failing gold can cost them a rejection


def confusion_json(matrix: np.ndarray, label_names: Sequence[str]) -> str:
    return json.dumps({"labels": list(label_names), "matrix": np.round(matrix, 6).tolist()})


def warm_start_from(workers: pd.DataFrame, label_names: Sequence[str]) -> dict[str, np.ndarray]:
    """Stored confusion matrices (the ``confusion`` column of ``LabelStore.workers()``) for Dawid-Skene's
    ``warm_start``; matrices stored under another label set are skipped."""
    if "confusion" not in workers.columns:
        return {}
    warm: dict[str, np.ndarray] = {}
    for worker_id, text in zip(workers["worker_id"], workers["confusion"], strict=True):
        if not isinstance(text, str):
            continue
        stored = json.loads(text)
        if list(stored.get("labels", [])) == list(label_names):
            warm[str(worker_id)] = np.asarray(stored["matrix"], dtype=np.float64)
    return warm


def worker_table(
    answers: pd.DataFrame, model: DawidSkene, gold: pd.Series, label_names: Sequence[str]
) -> pd.DataFrame:
    """Per worker: ``worker_id, n_answers, agreement, accuracy_upper, blocked`` (:func:`find_spammers`),
    ``n_gold, gold_accuracy`` (:func:`labelflow.tasks.aggregation.worker_quality`), ``spammer_score`` and ``confusion``
    (JSON) from the fitted ``model``."""
    verdict = find_spammers(posterior_agreement(answers, model), len(label_names))
    on_gold = worker_quality(answers, gold).set_index("worker_id")
    scores = pd.Series(spammer_scores(model.errors_), index=model.workers_)
    confusion = pd.Series(
        [confusion_json(m, label_names) for m in model.errors_], index=model.workers_, dtype=object
    )
    ids = verdict["worker_id"]
    return verdict.assign(
        n_gold=ids.map(on_gold["n_gold"]).fillna(0).astype(np.int64).to_numpy(),
        gold_accuracy=ids.map(on_gold["gold_accuracy"]).to_numpy(),
        spammer_score=ids.map(scores).to_numpy(),
        confusion=ids.map(confusion).to_numpy(),
    )


def review_decisions(
    round_answers: pd.DataFrame,
    table: pd.DataFrame,
    gold: pd.Series,
    n_labels: int,
    *,
    block: set[str],
    bonus_per_answer: float = 0.0,
    bonus_top_share: float = 0.1,
    min_answers_for_bonus: int = 20,
) -> list[Review]:
    """The decisions for one round's answers (``answer_id, item_id, worker_id, label``), given the worker
    ``table`` of :func:`worker_table` and the workers to ``block`` now. See the module docstring."""
    require_columns(round_answers, ("answer_id", "item_id", "worker_id", "label"), "round answers")
    bar = accuracy_bar(n_labels)
    stats = table.set_index("worker_id")
    fails_gold = set(
        stats.index[(stats["n_gold"] >= MIN_GOLD_TO_REJECT) & (stats["gold_accuracy"].fillna(1.0) < bar)]
    )
    known = gold_labels(gold)
    expected = round_answers["item_id"].astype(str).map(known)
    wrong_gold = expected.notna() & (round_answers["label"].astype(str) != expected.fillna(""))
    n_gold = stats["n_gold"].astype(int).to_dict()
    n_right = (stats["gold_accuracy"].fillna(0.0) * stats["n_gold"]).round().astype(int).to_dict()
    decisions: list[Review] = []
    for answer_id, item_id, worker_id, label, wrong, truth in zip(
        round_answers["answer_id"].astype(str),
        round_answers["item_id"].astype(str),
        round_answers["worker_id"].astype(str),
        round_answers["label"].astype(str),
        wrong_gold.to_numpy(),
        expected.to_numpy(),
        strict=True,
    ):
        worker = str(worker_id)
        if wrong and worker in fails_gold:
            reason = (
                f"gold question {item_id}: answered {label!r}, the known answer is {truth!r}; "
                f"{n_right[worker]} of {n_gold[worker]} gold questions right (below {bar:.0%})"
            )
            decisions.append(Review(ReviewAction.REJECT, worker, answer_id=str(answer_id), reason=reason))
        else:
            decisions.append(Review(ReviewAction.APPROVE, worker, answer_id=str(answer_id)))
    if bonus_per_answer > 0:
        this_round = round_answers["worker_id"].astype(str).value_counts()
        eligible = stats[
            (stats["n_answers"] >= min_answers_for_bonus)
            & ~stats.index.isin(block)
            & ~stats["blocked"].astype(bool)
            & stats.index.isin(this_round.index)
        ]
        n_top = int(np.ceil(bonus_top_share * len(eligible))) if len(eligible) else 0
        for worker in eligible["agreement"].sort_values(ascending=False).index[:n_top]:
            decisions.append(
                Review(
                    ReviewAction.BONUS,
                    str(worker),
                    amount=round(bonus_per_answer * int(this_round[worker]), 2),
                    reason=f"top {bonus_top_share:.0%} of workers by agreement with the consensus",
                )
            )
    reason = f"answers agree with the consensus no better than {bar:.2f}"
    decisions.extend(Review(ReviewAction.BLOCK, w, reason=reason) for w in sorted(block))
    return decisions


@dataclass(frozen=True)
class WorkerReview:
    """What :func:`review_round` did: the worker ``table`` (:func:`worker_table` plus ``status``), the
    workers ``newly_blocked`` this round, and the ``decisions`` sent through the crowd."""

    table: pd.DataFrame
    newly_blocked: set[str]
    decisions: list[Review]


def review_round(
    store: LabelStore,
    crowd: CrowdBackend,
    answers: pd.DataFrame,
    label_names: Sequence[str],
    gold: pd.Series,
    *,
    round_id: int,
    block_spammers: bool,
    bonus_per_answer: float = 0.0,
    bonus_top_share: float = 0.1,
) -> WorkerReview:
    """Score every worker on all answers so far, store the scores, and send the round's review decisions
    (approve / reject on failed gold / bonus / block) through the crowd."""
    warm = warm_start_from(store.workers(), label_names)
    model = DawidSkene(label_names).fit(answers, gold, warm_start=warm)
    table = worker_table(answers, model, gold, label_names)
    already = store.blocked_workers(crowd.name)
    newly = (
        set(table.loc[table["blocked"] & ~table["worker_id"].isin(already), "worker_id"])
        if block_spammers
        else set()
    )
    round_answers = answers[answers["round_id"] == round_id] if "round_id" in answers.columns else answers
    decisions = review_decisions(
        round_answers,
        table,
        gold,
        len(label_names),
        block=newly,
        bonus_per_answer=bonus_per_answer,
        bonus_top_share=bonus_top_share,
    )
    crowd.review(decisions)
    status = np.where(table["worker_id"].isin(already | newly), "blocked", "active")
    store.update_workers(
        table[["worker_id", "n_answers", "n_gold", "spammer_score", "confusion"]].assign(
            backend=crowd.name, status=status, accuracy=table["agreement"]
        )
    )
    return WorkerReview(table.assign(status=status), newly, decisions)
