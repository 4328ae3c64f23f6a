"""Sample selection: which unlabeled pool items are worth paying the crowd for.

Uncertainty sampling (Lewis & Gale 1994; Settles 2009, "Active Learning Literature Survey", §3.1): least
confidence, margin and entropy scores on the model's predicted probabilities; random as the baseline; and a cold
start (k-means medoids, so the first batch covers the feature space) while no model exists yet.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, Protocol

import numpy as np
import pandas as pd
from prefect import get_run_logger, task
from pydantic import BaseModel, ConfigDict, Field
from sklearn.cluster import KMeans

from tasks.contracts import BATCH_COLUMNS, ITEM_ID

Strategy = Literal["random", "least_confidence", "margin", "entropy"]


class SelectionConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    strategy: Strategy = Field("margin", description="How pool items are scored once a model exists.")
    batch_size: int = Field(40, ge=1, description="Pool items sent to the crowd per round.")
    seed_size: int = Field(40, ge=1, description="Items chosen by the cold start of the first round.")
    chunk_rows: int = Field(100_000, ge=1, description="Pool rows scored at a time (bounds memory).")
    seed: int = Field(0, description="Seed for random selection, tie-breaks and the cold start.")


class ProbabilisticModel(Protocol):
    def predict_proba(self, X: np.ndarray) -> np.ndarray: ...


def least_confidence_scores(probas: np.ndarray) -> np.ndarray:
    """1 - p_top1: how far the model is from certain about its best guess."""
    return np.asarray(1.0 - probas.max(axis=1))


def margin_scores(probas: np.ndarray) -> np.ndarray:
    """Uncertainty as 1 - (p_top1 - p_top2): 1 is a coin toss, 0 is certain."""
    if probas.shape[1] < 2:
        return np.zeros(len(probas))
    top2 = np.partition(probas, -2, axis=1)[:, -2:]
    return np.asarray(1.0 - (top2[:, 1] - top2[:, 0]))


def entropy_scores(probas: np.ndarray) -> np.ndarray:
    """Shannon entropy of the predicted distribution, in nats."""
    p = np.clip(probas, 1e-12, 1.0)
    return np.asarray(-(p * np.log(p)).sum(axis=1))


UNCERTAINTY: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "least_confidence": least_confidence_scores,
    "margin": margin_scores,
    "entropy": entropy_scores,
}


def score_pool(
    model: ProbabilisticModel | None,
    features: np.ndarray,
    strategy: Strategy,
    *,
    chunk_rows: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """One score per pool row, higher = more informative; scored in chunks so memory stays bounded."""
    if strategy == "random" or model is None:
        return rng.random(len(features))
    score = UNCERTAINTY[strategy]
    return np.concatenate(
        [
            score(model.predict_proba(features[start : start + chunk_rows]))
            for start in range(0, len(features), chunk_rows)
        ]
        or [np.empty(0)]
    )


def top_k(scores: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of the k highest scores; ties broken at random, not by pool order."""
    k = min(k, len(scores))
    jitter = rng.random(len(scores))
    order = np.lexsort((jitter, -scores))
    return order[:k]


def cold_start(features: np.ndarray, k: int, seed: int) -> np.ndarray:
    """The pool items nearest to k k-means centroids: a first batch that covers the feature space."""
    k = min(k, len(features))
    kmeans = KMeans(n_clusters=k, n_init=1, random_state=seed).fit(features)
    chosen: list[int] = []
    distances = kmeans.transform(features)
    for cluster in range(k):
        for index in np.argsort(distances[:, cluster]):
            if index not in chosen:
                chosen.append(int(index))
                break
    return np.asarray(chosen, dtype=int)


def choose_batch(
    pool: pd.DataFrame,
    feature_columns: list[str],
    model: ProbabilisticModel | None,
    config: SelectionConfig,
    *,
    round_id: int,
    batch_size: int | None = None,
) -> pd.DataFrame:
    """The batch contract (item_id, score, strategy, round_id) for the unlabeled ``pool`` rows.

    Without a model the batch is the cold start (``seed_size`` items); otherwise the ``batch_size`` (or the
    given, budget-capped ``batch_size``) highest-scoring items.
    """
    rng = np.random.default_rng([config.seed, round_id])
    features = pool[feature_columns].to_numpy(dtype=np.float64)
    size = batch_size if batch_size is not None else (config.batch_size if model else config.seed_size)
    if model is None:
        chosen = cold_start(features, size, seed=config.seed + round_id) if len(pool) else np.empty(0, int)
        scores, strategy = np.ones(len(chosen)), "cold_start"
    else:
        all_scores = score_pool(model, features, config.strategy, chunk_rows=config.chunk_rows, rng=rng)
        chosen = top_k(all_scores, size, rng)
        scores, strategy = all_scores[chosen], config.strategy
    batch = pd.DataFrame(
        {
            ITEM_ID: pool[ITEM_ID].to_numpy()[chosen],
            "score": scores.astype(np.float64),
            "strategy": strategy,
            "round_id": round_id,
        }
    )
    return batch[list(BATCH_COLUMNS)]


@task(name="select-batch", task_run_name="select-batch-round-{round_id}")
def select_batch(
    pool: pd.DataFrame,
    feature_columns: list[str],
    model: ProbabilisticModel | None,
    config: SelectionConfig,
    round_id: int,
    batch_size: int | None = None,
) -> pd.DataFrame:
    batch = choose_batch(pool, feature_columns, model, config, round_id=round_id, batch_size=batch_size)
    get_run_logger().info(
        "selected %d of %d unlabeled items (%s)",
        len(batch),
        len(pool),
        batch["strategy"].iat[0] if len(batch) else "-",
    )
    return batch
