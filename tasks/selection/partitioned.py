"""Selection over a pool larger than memory: the pool store's pieces scored on a Dask cluster, one at a time per
worker; each piece keeps only its best candidates, the pieces' candidates are merged (a tree of merges) as one
pool's would rank, and the diversity step runs on the merged candidates only.

The choice is the single-process one (:func:`~labelflow.tasks.selection.batch.choose_batch`) wherever scores do
not tie: the top ``candidates * batch_size`` of the whole pool are among the union of each piece's top as many,
ranked by score then by a random tie-breaker, and the same diversity step runs on them. Ties are broken by each
piece's own random numbers (seeded by the config's seed, the round and the piece), so a tie may go the other way,
and the random strategy and the cold start draw other random numbers than the single-process path: the cold
start clusters a uniform sample of the pool (the ``COLD_START_SAMPLE`` items with the lowest random keys).

Plain ``dask.delayed`` functions over the pieces: no DataFrame (a piece is a feature array and its item ids;
the model scores arrays) and no Prefect (this module stays importable and testable without it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from dask import delayed
from distributed import Client

from labelflow.integrations.pool_partitions import PoolPiece, read_pool_rows
from labelflow.tasks.selection.batch import SelectionConfig, batch_frame, wanted_size
from labelflow.tasks.selection.diversity import COLD_START_SAMPLE, best_of, cold_start, spread_out
from labelflow.tasks.selection.scores import Committee, ProbabilisticModel, Strategy, score_pool

MERGE_FAN_IN = 8  # candidate sets one merge task takes: few enough that a merge holds little memory


@dataclass(frozen=True)
class Candidates:
    """The best rows of some pieces, best first: their ids, scores, tie-breakers and features, and how many
    pool rows they were chosen among."""

    item_ids: np.ndarray
    scores: np.ndarray
    jitter: np.ndarray
    features: np.ndarray
    rows: int

    def best(self, keep: int) -> Candidates:
        order = best_of(self.scores, self.jitter, keep)
        return Candidates(
            self.item_ids[order],
            self.scores[order],
            self.jitter[order],
            np.ascontiguousarray(self.features[order]),
            self.rows,
        )


@dataclass(frozen=True)
class Scoring:
    """What every piece is scored with, sent to each worker once."""

    model: ProbabilisticModel | None
    committee: Committee | None
    strategy: Strategy
    chunk_rows: int
    excluded: frozenset[str]


def piece_candidates(
    piece: PoolPiece, feature_columns: Sequence[str], scoring: Scoring, keep: int, seed: Sequence[int]
) -> Candidates:
    """A piece's ``keep`` best pool items by ``scoring`` (random keys without a model), its excluded items left
    out. Scored in ``chunk_rows`` chunks as the single-process path scores, so a worker's memory is the piece."""
    rows = read_pool_rows(piece, feature_columns, excluded=scoring.excluded)
    rng = np.random.default_rng(list(seed))
    scores = score_pool(
        scoring.model,
        rows.features,
        scoring.strategy,
        chunk_rows=scoring.chunk_rows,
        rng=rng,
        committee=scoring.committee,
    )
    jitter = rng.random(len(scores))
    best = best_of(scores, jitter, keep)
    return Candidates(
        rows.item_ids(best),
        scores[best],
        jitter[best],
        np.ascontiguousarray(rows.features[best]),
        len(scores),
    )


def merge_candidates(parts: Sequence[Candidates], keep: int) -> Candidates:
    """The ``keep`` best of several candidate sets, ranked as if they were one."""
    joined = Candidates(
        np.concatenate([p.item_ids for p in parts]),
        np.concatenate([p.scores for p in parts]),
        np.concatenate([p.jitter for p in parts]),
        np.concatenate([p.features for p in parts]),
        sum(p.rows for p in parts),
    )
    return joined.best(keep)


def choose_batch_partitioned(
    pieces: Sequence[PoolPiece],
    feature_columns: Sequence[str],
    model: ProbabilisticModel | None,
    config: SelectionConfig,
    *,
    client: Client,
    round_id: int,
    batch_size: int | None = None,
    committee: Committee | None = None,
    excluded: frozenset[str] = frozenset(),
) -> pd.DataFrame:
    """The batch contract (item_id, score, strategy, round_id) chosen from the pool items of ``pieces`` (those
    in ``excluded`` left out: the labeled ones), scored on ``client``'s cluster; see the module's docstring."""
    has_model = model is not None or committee is not None
    size = wanted_size(config, has_model=has_model, batch_size=batch_size)
    keep = (
        COLD_START_SAMPLE
        if not has_model
        else size * (1 if config.diversity == "none" else config.candidates)
    )
    # keys of their own (no hashing of the arguments, impure tasks): a second choice from the same arguments
    # must not reuse the keys of the first, whose results the scheduler may be releasing at that moment
    (scoring,) = client.scatter(
        [Scoring(model, committee, config.strategy, config.chunk_rows, excluded)], broadcast=True, hash=False
    )
    columns = list(feature_columns)
    parts = [
        delayed(piece_candidates)(piece, columns, scoring, keep, (config.seed, round_id, index))
        for index, piece in enumerate(pieces)
    ]
    while len(parts) > 1:
        parts = [
            delayed(merge_candidates)(parts[start : start + MERGE_FAN_IN], keep)
            for start in range(0, len(parts), MERGE_FAN_IN)
        ]
    merged: Candidates = client.compute(parts[0]).result() if parts else _no_candidates(len(feature_columns))
    seed = config.seed + round_id
    if not has_model:
        chosen = cold_start(merged.features, size, seed=seed) if merged.rows else np.empty(0, int)
        scores = np.ones(len(chosen))
    else:
        if config.diversity == "none" or size >= merged.rows:
            chosen = np.arange(min(size, len(merged.scores)))
        else:
            chosen = spread_out(merged.features, merged.scores, size, config.diversity, seed=seed)
        scores = merged.scores[chosen]
    return batch_frame(merged.item_ids[chosen], scores, config, has_model=has_model, round_id=round_id)


def _no_candidates(columns: int) -> Candidates:
    return Candidates(np.empty(0, object), np.empty(0), np.empty(0), np.empty((0, columns)), 0)
