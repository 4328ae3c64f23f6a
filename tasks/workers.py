"""Worker quality and review: which workers' answers carry information, and blocking those whose do not.

A worker's *agreement* is the expected share of their answers that are right under the aggregated posteriors,
``mean_i p_i(answer_i)`` (gold items count at their known label). Uniform spammers and workers who always give
one label both sit near chance (1/K); good workers sit near their accuracy. A worker is blocked only once we are
``confidence`` sure — by a Beta(1 + agreeing, 1 + disagreeing) posterior — that their accuracy lies below
``chance + (1 - chance) / 3``, a third of the way from chance to perfect. That bar is set from first principles
(not fitted to any crowd): a one-coin worker at it adds little once two better workers have answered, and a
good worker (accuracy ≥ 0.75 on ten labels) is many standard errors above it after twenty answers.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from scipy.stats import beta

from integrations.crowd.base import CrowdBackend, Review, ReviewAction
from integrations.store import LabelStore
from tasks.aggregation import DawidSkene
from tasks.contracts import ITEM_ID, require_columns


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
    agreement: pd.DataFrame, n_labels: int, *, confidence: float = 0.95, min_answers: int = 20
) -> pd.DataFrame:
    """``agreement`` plus ``accuracy_upper`` (the ``confidence`` upper bound) and ``blocked``."""
    n = agreement["n_answers"].to_numpy(dtype=np.float64)
    agreeing = agreement["agreement"].to_numpy() * n
    upper = beta.ppf(confidence, 1.0 + agreeing, 1.0 + n - agreeing)
    blocked = (n >= min_answers) & (upper < accuracy_bar(n_labels))
    return agreement.assign(accuracy_upper=upper, blocked=blocked)


@task(name="review-workers", task_run_name="review-workers-round-{round_number}", cache_policy=NO_CACHE)
def review_workers(
    store: LabelStore,
    crowd: CrowdBackend,
    answers: pd.DataFrame,
    label_names: Sequence[str],
    gold: pd.Series,
    *,
    round_number: int,
    block_spammers: bool,
) -> pd.DataFrame:
    """Score every worker on all answers so far, store the scores, and block the spammers through the crowd."""
    model = DawidSkene(label_names).fit(answers, gold)
    verdict = find_spammers(posterior_agreement(answers, model), len(label_names))
    already = store.blocked_workers(crowd.name)
    newly = (
        verdict[verdict["blocked"] & ~verdict["worker_id"].isin(already)]
        if block_spammers
        else verdict.iloc[:0]
    )
    if len(newly):
        reason = f"answers agree with the consensus no better than {accuracy_bar(len(label_names)):.2f}"
        crowd.review([Review(ReviewAction.BLOCK, str(w), reason=reason) for w in newly["worker_id"]])
    status = np.where(
        verdict["worker_id"].isin(already) | verdict["worker_id"].isin(newly["worker_id"]),
        "blocked",
        "active",
    )
    store.update_workers(
        pd.DataFrame(
            {
                "worker_id": verdict["worker_id"],
                "backend": crowd.name,
                "status": status,
                "accuracy": verdict["agreement"],
            }
        )
    )
    get_run_logger().info(
        "reviewed %d workers: %d newly blocked (%s), %d blocked in all",
        len(verdict),
        len(newly),
        ", ".join(newly["worker_id"]) or "none",
        int((status == "blocked").sum()),
    )
    return verdict
