"""Dispatch: adaptive redundancy's waves, the gold questions joined at dispatch, and planning within the budget.

Real parts only: a SQLite label store in tmp_path and the simulated crowd on its virtual clock.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from labelflow.contracts import ITEM_ID
from labelflow.integrations.crowd.base import BudgetExceededError, LabelRequest
from labelflow.integrations.crowd.simulated import SimulatedCrowd, SimulatedCrowdConfig
from labelflow.integrations.store import LabelStore, RoundRecord
from labelflow.tasks.aggregation import aggregate_answers_frame
from labelflow.tasks.answers import collect_wave
from labelflow.tasks.dispatch import (
    check_budget,
    choose_gold,
    first_wave_items,
    items_needing_answers,
    plan_requests,
    publish_wave,
)

LABELS = ["cat", "dog", "owl"]
BATCH = [f"item-{k}" for k in range(12)]
GOLD = [f"gold-{k}" for k in range(20)]
TRUTH = {item: LABELS[k % 3] for k, item in enumerate(BATCH + GOLD)}
REWARD = 0.05


@pytest.fixture
def store(tmp_path: Path) -> Iterator[LabelStore]:
    store = LabelStore(f"sqlite:///{tmp_path / 'labels.db'}", "pets")
    yield store
    store.close()


def crowd(**config: Any) -> SimulatedCrowd:
    return SimulatedCrowd(SimulatedCrowdConfig(**config), LABELS, TRUTH, reward_per_answer=REWARD)


def labels_frame(rows: list[tuple[str, float, int]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=[ITEM_ID, "confidence", "n_answers"])


# ------------------------------------------------------------------------------------------------ adaptive redundancy


def test_only_items_below_the_confidence_target_get_one_more_answer() -> None:
    labels = labels_frame(
        [("sure", 0.99, 2), ("unsure", 0.6, 2), ("at-target", 0.875, 3), ("barely", 0.874, 3)]
    )
    more = items_needing_answers(labels, confidence_target=0.875, max_answers=7)
    assert list(more[ITEM_ID]) == ["unsure", "barely"]
    assert list(more["n_answers"]) == [1, 1]
    assert list(more["answers_before"]) == [2, 3]  # so the next wave goes to workers who have not seen them
    assert not more["is_gold"].any()


def test_max_answers_caps_an_item_however_unsure_it_stays() -> None:
    labels = labels_frame([("capped", 0.4, 5), ("one-left", 0.4, 4)])
    more = items_needing_answers(labels, confidence_target=0.875, max_answers=5)
    assert list(more[ITEM_ID]) == ["one-left"]
    assert items_needing_answers(labels, confidence_target=0.875, max_answers=4).empty


def test_a_higher_confidence_target_buys_more_answers() -> None:
    labels = labels_frame([(f"i{k}", c, 2) for k, c in enumerate([0.55, 0.7, 0.8, 0.9, 0.97, 1.0])])
    asked = [
        len(items_needing_answers(labels, confidence_target=t, max_answers=7))
        for t in (0.6, 0.85, 0.95, 0.99)
    ]
    assert asked == [1, 3, 4, 5]


def run_round(
    store: LabelStore, backend: SimulatedCrowd, *, target: float, redundancy: int, max_answers: int
) -> tuple[list[list[str]], pd.DataFrame]:
    """The wave loop of a round (as labeling_round.label_batch runs it) on the pure functions; returns the
    items asked per wave and the final labels."""
    round_ = store.open_round()
    wave_items = first_wave_items(BATCH, [], redundancy=redundancy)
    asked: list[list[str]] = []
    wave, labels = 1, pd.DataFrame()
    while not wave_items.empty:
        asked.append(sorted(wave_items[ITEM_ID]))
        requests = plan_requests(
            wave_items, project="pets", round_id=round_.id, round_number=round_.number, wave=wave
        )
        dispatched = publish_wave(store, backend, requests, wave=wave, spent=0.0, budget=100.0)
        collect_wave(store, backend, dispatched.handles, poll_interval_minutes=10, deadline_hours=24)
        labels = aggregate_answers_frame(store.answers(round_.id), LABELS, method="majority_vote")
        wave_items = items_needing_answers(labels, confidence_target=target, max_answers=max_answers)
        wave += 1
    return asked, labels


def test_waves_stop_once_every_item_is_confident_or_capped(store: LabelStore) -> None:
    asked, labels = run_round(store, crowd(seed=3), target=0.75, redundancy=2, max_answers=5)
    assert len(asked) >= 2, "a crowd of 30% careless workers leaves some item unsure after two answers"
    assert asked[0] == sorted(BATCH)
    for earlier, later in itertools.pairwise(asked):
        assert set(later) <= set(earlier)  # an item confident after a wave is never asked again
    assert labels["n_answers"].max() <= 5
    unsure = labels[labels["confidence"] < 0.75]
    assert (unsure["n_answers"] == 5).all()  # only the cap stops an unsure item
    answers = store.answers()
    assert answers.groupby(ITEM_ID)["worker_id"].nunique().equals(answers.groupby(ITEM_ID).size())


def test_fixed_redundancy_when_max_answers_equals_redundancy(store: LabelStore) -> None:
    asked, labels = run_round(store, crowd(seed=3), target=0.99, redundancy=3, max_answers=3)
    assert len(asked) == 1 and (labels["n_answers"] == 3).all()


# ------------------------------------------------------------------------------------------------ gold


def test_gold_is_a_reproducible_random_sample_that_changes_every_round() -> None:
    first = choose_gold(GOLD, 5, seed=0, round_number=1)
    assert first == choose_gold(list(reversed(GOLD)), 5, seed=0, round_number=1)
    assert len(first) == 5 and set(first) <= set(GOLD) and first == sorted(first)
    rounds = {tuple(choose_gold(GOLD, 5, seed=0, round_number=r)) for r in range(1, 11)}
    assert len(rounds) == 10
    assert choose_gold(GOLD, 5, seed=1, round_number=1) != first
    assert choose_gold(GOLD[:3], 5, seed=0, round_number=1) == sorted(GOLD[:3])
    assert choose_gold([], 5, seed=0, round_number=1) == []


def test_gold_joins_the_first_wave_at_dispatch_and_never_the_batch(store: LabelStore) -> None:
    round_ = store.open_round()
    gold = choose_gold(GOLD, 4, seed=0, round_number=round_.number)
    wave_items = first_wave_items(BATCH, gold, redundancy=2)
    requests = plan_requests(
        wave_items, project="pets", round_id=round_.id, round_number=round_.number, wave=1
    )
    publish_wave(store, crowd(), requests, wave=1, spent=0.0, budget=100.0)
    stored = store.requests(round_.id, wave=1)
    flagged = dict(zip(stored[ITEM_ID], stored["is_gold"].astype(bool), strict=True))
    assert {item for item, is_gold in flagged.items() if is_gold} == set(gold)
    assert {item for item, is_gold in flagged.items() if not is_gold} == set(BATCH)
    assert (stored["n_answers"] == 2).all()
    # later waves: the labels given as labels are asked as the batch's items, never as gold
    later = items_needing_answers(
        labels_frame([(item, 0.5, 2) for item in stored[ITEM_ID]]), confidence_target=0.9, max_answers=7
    )
    assert not later["is_gold"].any()


def test_gold_below_the_target_gets_another_answer_asked_as_gold_like_an_item() -> None:
    labels = labels_frame([("item-unsure", 0.6, 2), ("item-sure", 0.95, 2)])
    gold = labels_frame([("gold-unsure", 0.6, 2), ("gold-sure", 0.95, 2), ("gold-capped", 0.5, 7)])
    more = items_needing_answers(labels, confidence_target=0.875, max_answers=7, gold=gold)
    asked = dict(zip(more[ITEM_ID], more["is_gold"], strict=True))
    assert asked == {"item-unsure": False, "gold-unsure": True}
    assert list(more["answers_before"]) == [2, 2] and list(more["n_answers"]) == [1, 1]
    requests = plan_requests(more, project="pets", round_id=1, round_number=1, wave=2)
    assert [(r.key, r.is_gold) for r in requests] == [
        ("pets/r1/item-unsure/w2", False),
        ("pets/r1/gold-unsure/w2", True),
    ]


# ------------------------------------------------------------------------------------------------ planning and budget


def test_requests_carry_one_key_per_project_round_item_and_wave(store: LabelStore) -> None:
    round_ = store.open_round()
    items = first_wave_items(BATCH[:2], [], redundancy=3).assign(payload=["a picture", None])
    requests = plan_requests(items, project="pets", round_id=round_.id, round_number=round_.number, wave=2)
    assert [r.key for r in requests] == [
        f"pets/r{round_.number}/item-0/w2",
        f"pets/r{round_.number}/item-1/w2",
    ]
    assert [r.payload for r in requests] == ["a picture", None]
    assert all(r.n_answers == 3 and r.round_id == round_.id and r.wave == 2 for r in requests)


def test_check_budget_prices_the_requests_and_refuses_what_the_budget_cannot_pay(store: LabelStore) -> None:
    round_ = store.open_round()
    requests = plan_requests(
        first_wave_items(BATCH[:4], [], redundancy=3),
        project="pets",
        round_id=round_.id,
        round_number=1,
        wave=1,
    )
    assert check_budget(requests, REWARD, spent=0.0, budget=0.60) == pytest.approx(
        0.60
    )  # 12 answers, exactly
    with pytest.raises(BudgetExceededError, match="max_spend"):
        check_budget(requests, REWARD, spent=0.01, budget=0.60)


def open_wave(round_: RoundRecord, items: list[str]) -> list[LabelRequest]:
    return plan_requests(
        first_wave_items(items, [], redundancy=2), project="pets", round_id=round_.id, round_number=1, wave=1
    )


def test_a_refused_wave_posts_nothing(store: LabelStore) -> None:
    round_ = store.open_round()
    backend = crowd()
    requests = open_wave(round_, BATCH)
    with pytest.raises(BudgetExceededError):
        publish_wave(store, backend, requests, wave=1, spent=0.0, budget=REWARD * 2 * len(BATCH) - 0.01)
    assert store.handles(round_.id) == []
    assert store.requested_answers() == 0  # stored (a rerun finds them) but nothing bought
    assert store.requests(round_.id)["external_id"].isna().all()
    backend.clock.sleep(7 * 24 * 3600)
    assert backend.poll(store.handles(round_.id)) == []


def test_a_rerun_publishes_nothing_twice_and_is_not_charged_again(store: LabelStore) -> None:
    round_ = store.open_round()
    backend = crowd()
    requests = open_wave(round_, BATCH)
    budget = REWARD * 2 * len(BATCH)
    first = publish_wave(store, backend, requests, wave=1, spent=0.0, budget=budget)
    assert first.newly_published == len(BATCH) and len(first.handles) == len(BATCH)
    # the rerun sees the budget spent, yet passes: it has nothing left to publish
    again = publish_wave(store, backend, requests, wave=1, spent=budget, budget=budget)
    assert again.newly_published == 0 and again.handles == first.handles
    assert store.requested_answers() == 2 * len(BATCH)
