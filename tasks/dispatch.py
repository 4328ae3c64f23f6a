"""Dispatch: turn a batch into label requests — gold questions joined here, never in the batch — and publish them.

A round buys answers in waves. Wave 1 asks ``redundancy`` answers per item; each later wave asks one more answer
for the items whose aggregated label is still below the confidence target, up to ``max_answers`` — the round's
gold items too, by their confidence as if they were not gold. Requests go
into the store before they go to the crowd, so a rerun finds them and publishes nothing twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from labelflow.contracts import ITEM_ID, PAYLOAD
from labelflow.integrations.crowd.base import BudgetExceededError, CrowdBackend, Handle, LabelRequest
from labelflow.integrations.store import LabelStore


def request_key(project: str, round_number: int, item_id: str, wave: int) -> str:
    return f"{project}/r{round_number}/{item_id}/w{wave}"


def choose_gold(gold_ids: Sequence[str], n: int, *, seed: int, round_number: int) -> list[str]:
    """A different, reproducible sample of gold items each round."""
    rng = np.random.default_rng([seed, round_number])
    n = min(n, len(gold_ids))
    return sorted(rng.choice(np.asarray(sorted(gold_ids), dtype=object), size=n, replace=False).tolist())


def first_wave_items(batch_ids: Sequence[str], gold_ids: Sequence[str], *, redundancy: int) -> pd.DataFrame:
    """The first wave: the batch's items, then the round's gold items (joined here: a batch never holds gold),
    ``redundancy`` answers each (item_id, is_gold, n_answers, answers_before, as :func:`plan_requests` takes)."""
    return pd.DataFrame(
        {
            ITEM_ID: [*batch_ids, *gold_ids],
            "is_gold": [False] * len(batch_ids) + [True] * len(gold_ids),
            "n_answers": redundancy,
            "answers_before": 0,
        }
    )


def plan_requests(
    items: pd.DataFrame,
    *,
    project: str,
    round_id: int,
    round_number: int,
    wave: int,
) -> list[LabelRequest]:
    """Requests for ``items`` (item_id, is_gold, n_answers, answers_before, and optionally payload)."""
    payloads = items[PAYLOAD] if PAYLOAD in items.columns else pd.Series(None, index=items.index)
    return [
        LabelRequest(
            key=request_key(project, round_number, str(row[ITEM_ID]), wave),
            item_id=str(row[ITEM_ID]),
            round_id=round_id,
            wave=wave,
            n_answers=int(row["n_answers"]),
            is_gold=bool(row["is_gold"]),
            payload=None if pd.isna(payload) else str(payload),
            answers_before=int(row["answers_before"]),
        )
        for (_, row), payload in zip(items.iterrows(), payloads, strict=True)
    ]


def items_needing_answers(
    labels: pd.DataFrame,
    *,
    confidence_target: float,
    max_answers: int,
    gold: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Items whose label is below the confidence target and can still get an answer: one more each.

    ``labels`` and ``gold`` have ``item_id, confidence, n_answers``; ``gold`` (the round's gold items, each at
    its confidence as if it were not gold) follows the same rule, asked as gold, so the gold a calibration is
    fitted on stops at the answer counts the labels it is applied to stop at."""
    rows = pd.concat(
        [labels.assign(is_gold=False), *([] if gold is None else [gold.assign(is_gold=True)])],
        ignore_index=True,
    )
    uncertain = rows[(rows["confidence"] < confidence_target) & (rows["n_answers"] < max_answers)]
    return pd.DataFrame(
        {
            ITEM_ID: uncertain[ITEM_ID].to_numpy(),
            "is_gold": uncertain["is_gold"].to_numpy(dtype=bool),
            "n_answers": 1,
            "answers_before": uncertain["n_answers"].to_numpy(dtype=int),
        }
    )


def check_budget(
    requests: Sequence[LabelRequest], cost_per_answer: float, *, spent: float, budget: float
) -> float:
    """The cost of ``requests``; raises :class:`BudgetExceededError` (before anything is posted) if it is too much."""
    cost = sum(r.n_answers for r in requests) * cost_per_answer
    if spent + cost > budget + 1e-9:
        raise BudgetExceededError(
            f"publishing {len(requests)} requests costs ${cost:.2f}; ${spent:.2f} of the ${budget:.2f} budget is "
            "spent already. Raise budget.max_spend or lower selection.batch_size."
        )
    return cost


@dataclass(frozen=True)
class DispatchedWave:
    """A wave's handles (every request of the wave, published now or by an earlier run) and how many of its
    requests this call published."""

    handles: list[Handle]
    newly_published: int


def publish_wave(
    store: LabelStore,
    backend: CrowdBackend,
    requests: Sequence[LabelRequest],
    *,
    wave: int,
    spent: float,
    budget: float,
) -> DispatchedWave:
    """Store the requests, publish those not yet published (after :func:`check_budget`), and return the wave's
    handles: a rerun finds its requests stored and published, and publishes nothing twice."""
    stored = store.add_requests(requests)
    unpublished_keys = set(stored.loc[stored["external_id"].isna(), "request_key"])
    to_publish = [r for r in requests if r.key in unpublished_keys]
    if to_publish:
        check_budget(to_publish, backend.cost_per_answer(), spent=spent, budget=budget)
        store.mark_published(backend.publish(to_publish))
    round_id = requests[0].round_id if requests else 0
    return DispatchedWave(store.handles(round_id, wave), len(to_publish))
