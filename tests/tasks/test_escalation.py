"""Expert work beside the crowd: which items go to an expert, and an expert's answer deciding an item without
ever calibrating the confidence."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from labelflow.integrations.crowd.base import EXPERT_WAVE
from labelflow.tasks.confidence import EXPERT_METHOD, decision_labels
from labelflow.tasks.escalation import (
    ESCALATED,
    REVIEW,
    affordable_answers,
    escalation_size,
    expert_decisions,
    expert_requests,
    is_review_key,
    items_to_escalate,
    items_to_review,
)

LABELS = ["cat", "dog"]


@pytest.fixture(scope="module")
def crowd() -> tuple[pd.DataFrame, pd.Series, pd.Series]:
    """Three answers on each of 30 gold and 60 pool items by five workers right 80% of the time: the answers,
    the gold (drawn at random: the first 30 of random labels) and the pool's truth."""
    rng = np.random.default_rng(1)
    truth = pd.Series(
        [LABELS[int(rng.integers(2))] for _ in range(90)], index=[f"i{k:02d}" for k in range(90)]
    )
    rows = []
    for item, label in truth.items():
        for worker in rng.choice(5, 3, replace=False):
            other = LABELS[1 - LABELS.index(label)]
            rows.append((item, f"w{worker}", label if rng.random() < 0.8 else other))
    answers = pd.DataFrame(rows, columns=["item_id", "worker_id", "label"])
    return answers, truth.iloc[:30], truth.iloc[30:]


def test_the_expert_wins_and_never_calibrates(crowd: tuple[pd.DataFrame, pd.Series, pd.Series]) -> None:
    answers, gold, pool = crowd
    plain = decision_labels(
        answers, LABELS, method="dawid_skene", gold=gold, random_gold=True, confidence_target=0.9
    )
    assert plain.calibrated
    # The expert contradicts the crowd on the three items it is surest of, and answers as one more worker.
    overruled = plain.labels.nlargest(3, "confidence")
    expert = pd.Series(
        [LABELS[1 - LABELS.index(label)] for label in overruled["label"]],
        index=overruled["item_id"].to_numpy(),
    )
    with_expert = pd.concat(
        [answers, pd.DataFrame({"item_id": expert.index, "worker_id": "ls:7", "label": expert.to_numpy()})],
        ignore_index=True,
    )
    found = decision_labels(
        with_expert,
        LABELS,
        method="dawid_skene",
        gold=gold,
        random_gold=True,
        confidence_target=0.9,
        expert=expert,
    )
    decided = found.labels.set_index("item_id").loc[expert.index]
    assert decided["label"].tolist() == expert.tolist()
    assert (decided["method"] == EXPERT_METHOD).all() and (decided["confidence"] == 1.0).all()
    assert (decided["n_answers"] == 4).all()
    # Every other pool item keeps one label; escalated items are never in the calibration set, and the gold
    # that calibrates is exactly the random gold, as without the expert.
    assert set(found.labels["item_id"]) == set(pool.index)
    assert found.calibration is not None and found.calibrated and plain.calibration is not None
    calibrated_on = set(found.calibration.out_of_fold["item_id"])
    assert calibrated_on == set(gold.index) == set(plain.calibration.out_of_fold["item_id"])
    assert not calibrated_on & set(expert.index)
    # Without random gold, the expert wins the same way.
    unrandom = decision_labels(
        with_expert,
        LABELS,
        method="dawid_skene",
        gold=gold,
        random_gold=False,
        confidence_target=0.9,
        expert=expert,
    )
    assert unrandom.labels.set_index("item_id").loc[expert.index, "label"].tolist() == expert.tolist()


def test_an_expert_label_on_a_gold_item_leaves_the_gold_label(
    crowd: tuple[pd.DataFrame, pd.Series, pd.Series],
) -> None:
    answers, gold, _ = crowd
    item = str(gold.index[0])
    wrong = pd.Series({item: LABELS[1 - LABELS.index(gold[item])]})
    found = decision_labels(
        answers,
        LABELS,
        method="majority_vote",
        gold=gold,
        random_gold=True,
        confidence_target=0.9,
        expert=wrong,
    )
    assert item not in set(found.labels["item_id"])
    assert found.calibration is not None and item in set(found.calibration.out_of_fold["item_id"])


def test_escalation_takes_the_least_sure_items_under_the_target_once() -> None:
    labels = pd.DataFrame(
        {"item_id": ["a", "b", "c", "d", "e"], "label": "cat", "confidence": [0.6, 0.95, 0.5, 0.5, 0.88]}
    )
    chosen = items_to_escalate(labels, limit=3, below=0.9, asked={"c"})
    assert chosen["item_id"].tolist() == ["d", "a", "e"]
    assert items_to_escalate(labels, limit=0, below=0.9).empty
    assert items_to_escalate(labels, limit=10, below=0.5).empty


def test_the_escalation_size_gives_experts_their_share_of_the_spend() -> None:
    # The crowd cost 90: experts get 10% of 100, i.e. 10, five answers at 2 each.
    assert escalation_size(0.1, crowd_cost=90.0, expert_cost_per_answer=2.0, candidates=100) == 5
    assert escalation_size(0.1, crowd_cost=90.0, expert_cost_per_answer=2.0, candidates=3) == 3
    assert escalation_size(0.0, crowd_cost=90.0, expert_cost_per_answer=2.0, candidates=100) == 0
    assert escalation_size(0.1, crowd_cost=90.0, expert_cost_per_answer=0.0, candidates=7) == 7
    assert affordable_answers(0.5, spent=9.0, budget=10.0) == 2
    assert affordable_answers(0.5, spent=11.0, budget=10.0) == 0


def test_review_takes_label_issues_first_then_unsure_labels_each_once() -> None:
    labels = pd.DataFrame(
        {
            "item_id": ["a", "b", "c", "d"],
            "label": ["cat", "dog", "cat", "dog"],
            "confidence": [0.99, 0.6, 0.7, 0.95],
        }
    )
    issues = pd.DataFrame({"item_id": ["d", "b", "zz"], "suggested": ["cat", "cat", "dog"]})
    review = items_to_review(labels, issues, confidence_target=0.9, asked={"c"})
    assert review["item_id"].tolist() == ["d", "b"]
    assert review["reason"].tolist() == [
        "label issue: the model suggests cat",
        "label issue: the model suggests cat",
    ]
    assert items_to_review(labels, issues.iloc[:0], confidence_target=0.9)["item_id"].tolist() == ["b", "c"]


def test_expert_requests_and_decisions() -> None:
    items = pd.DataFrame({"item_id": ["a", "b"], "label": ["cat", "dog"], "confidence": [0.6, 0.7]})
    payloads = pd.Series({"a": "text a", "b": None})
    review = expert_requests(items, payloads, project="p", round_id=4, round_number=2, kind=REVIEW)
    escalated = expert_requests(items, payloads, project="p", round_id=4, round_number=2, kind=ESCALATED)
    assert [r.key for r in review] == ["p/r2/a/review", "p/r2/b/review"]
    assert all(is_review_key(r.key) for r in review) and not any(is_review_key(r.key) for r in escalated)
    assert all(r.is_expert and r.wave == EXPERT_WAVE and r.n_answers == 1 for r in review + escalated)
    assert (review[0].suggested_label, review[0].suggested_confidence, review[0].payload) == (
        "cat",
        0.6,
        "text a",
    )
    assert review[1].payload is None
    assert escalated[0].suggested_label is None  # an escalated item is judged unprompted
    answers = pd.DataFrame({"item_id": ["a", "b", "a"], "label": ["cat", "dog", "dog"]})
    assert expert_decisions(answers).to_dict() == {"a": "dog", "b": "dog"}
    assert expert_decisions(answers.iloc[:0]).empty
