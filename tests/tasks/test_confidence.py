"""The confidence a round's decisions read: calibrated on random gold when there is enough of it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from labelflow.integrations.crowd.base import LabelRequest
from labelflow.integrations.crowd.simulated import SimulatedCrowd, SimulatedCrowdConfig
from labelflow.tasks.aggregation import aggregate_answers_frame
from labelflow.tasks.calibration import MIN_GOLD
from labelflow.tasks.confidence import as_first_asked, decision_labels
from labelflow.tasks.dispatch import items_needing_answers

LABELS = ["cat", "dog"]
TARGET = 0.875


def answered(truth: dict[str, str], config: SimulatedCrowdConfig, k: int = 2) -> pd.DataFrame:
    """``k`` answers on every item from a simulated crowd."""
    crowd = SimulatedCrowd(config, LABELS, truth, reward_per_answer=0.05)
    handles = crowd.publish(
        [LabelRequest(key=f"t/{item}", item_id=item, round_id=1, wave=1, n_answers=k) for item in truth]
    )
    crowd.clock.sleep(1e7)
    given = crowd.poll(handles)
    return pd.DataFrame(
        {
            "item_id": [a.item_id for a in given],
            "worker_id": [a.worker_id for a in given],
            "label": [a.label for a in given],
        }
    )


@pytest.fixture(scope="module")
def overconfident() -> tuple[pd.DataFrame, dict[str, str], pd.Series]:
    """Good workers who are fooled together on the hard third of the items: two answers that agree look sure to
    Dawid-Skene, and a third of such pairs are wrong."""
    rng = np.random.default_rng(0)
    truth = {f"i{k:03d}": LABELS[int(rng.integers(2))] for k in range(460)}
    config = SimulatedCrowdConfig(
        good_share=1.0,
        spammer_share=0.0,
        one_class_share=0.0,
        good_accuracy=(0.85, 0.95),
        hard_item_share=0.35,
        hard_item_penalty=5.0,
        seed=3,
    )
    gold = pd.Series({item: truth[item] for item in list(truth)[:60]})  # the first 60 of random labels
    return answered(truth, config), truth, gold


def stopped(labels: pd.DataFrame) -> pd.DataFrame:
    """The labels adaptive redundancy buys no more answers for."""
    more = items_needing_answers(labels, confidence_target=TARGET, max_answers=7)
    return labels[~labels["item_id"].isin(more["item_id"])]


def test_calibration_keeps_buying_answers_where_raw_posteriors_would_stop_too_early(
    overconfident: tuple[pd.DataFrame, dict[str, str], pd.Series],
) -> None:
    answers, truth, gold = overconfident
    common = {"method": "dawid_skene", "gold": gold, "confidence_target": TARGET}
    raw = decision_labels(answers, LABELS, random_gold=False, **common)  # type: ignore[arg-type]
    calibrated = decision_labels(answers, LABELS, random_gold=True, **common)  # type: ignore[arg-type]

    raw_stops = stopped(raw.labels)
    right = (raw_stops["label"] == raw_stops["item_id"].map(truth)).mean()
    # Raw posteriors stop on most items at ~0.97 confidence, where the labels are far less often right ...
    assert len(raw_stops) > 0.6 * len(raw.labels) and raw_stops["confidence"].mean() > 0.95
    assert right < 0.75
    # ... the calibrated confidence of the same labels says so, and the round keeps buying answers for them.
    assert calibrated.calibrated and calibrated.reason == ""
    assert calibrated.calibration is not None and calibrated.calibration.ece_after < 0.1
    stops = stopped(calibrated.labels)
    assert len(stops) < 0.2 * len(raw_stops)
    same = calibrated.labels.set_index("item_id").loc[raw_stops["item_id"]]
    assert abs(same["confidence"].mean() - right) < 0.1
    # calibration changes the confidence, never the label
    pd.testing.assert_series_equal(
        calibrated.labels.set_index("item_id")["label"], raw.labels.set_index("item_id")["label"]
    )
    # the gold's confidence as if it were not gold means what the labels' does, and asks gold again as often
    gold_seen = calibrated.gold.set_index("item_id")
    assert set(gold_seen.index) == set(gold.index) and (gold_seen["n_answers"] == 2).all()
    gold_right = calibrated.calibration.out_of_fold["correct"].mean()
    assert abs(gold_seen["confidence"].mean() - gold_right) < 0.1
    more = items_needing_answers(
        calibrated.labels, confidence_target=TARGET, max_answers=7, gold=calibrated.gold
    )
    gold_asked = more.loc[more["is_gold"], "item_id"]
    assert set(gold_asked) <= set(gold.index)
    assert abs(len(gold_asked) / len(gold) - (1 - len(stops) / len(calibrated.labels))) < 0.2


def test_with_too_little_gold_the_confidence_is_the_aggregators_and_says_uncalibrated(
    overconfident: tuple[pd.DataFrame, dict[str, str], pd.Series],
) -> None:
    answers, _, gold = overconfident
    few = gold.iloc[: MIN_GOLD - 1]
    found = decision_labels(
        answers, LABELS, method="dawid_skene", gold=few, random_gold=True, confidence_target=TARGET
    )
    expected = aggregate_answers_frame(answers, LABELS, method="dawid_skene", gold=few)
    pd.testing.assert_frame_equal(found.labels, expected)
    assert not found.calibrated
    assert (
        found.reason
        == f"uncalibrated: {MIN_GOLD - 1} answered gold item(s), fewer than the 20 a calibration needs"
    )
    assert set(found.gold["item_id"]) == set(few.index)  # still cross-fitted, for adaptive redundancy


def test_gold_is_asked_again_by_its_confidence_as_if_it_were_not_gold() -> None:
    answers = pd.DataFrame(
        {
            "item_id": ["g1", "g1", "g2", "g2", "i1", "i1"],
            "worker_id": ["a", "b", "a", "b", "a", "b"],
            "label": ["cat", "dog", "dog", "dog", "cat", "dog"],
        }
    )
    found = decision_labels(
        answers,
        LABELS,
        method="majority_vote",
        gold=pd.Series({"g1": "cat", "g2": "dog"}),
        random_gold=True,
        confidence_target=TARGET,
    )
    # uncalibrated (two gold items): the votes of each, its gold label unseen
    assert found.gold.set_index("item_id")["confidence"].to_dict() == {"g1": 0.5, "g2": 1.0}
    more = items_needing_answers(found.labels, confidence_target=TARGET, max_answers=7, gold=found.gold)
    assert dict(zip(more["item_id"], more["is_gold"], strict=True)) == {"i1": False, "g1": True}


def test_gold_not_drawn_at_random_is_clamped_but_never_calibrates(
    overconfident: tuple[pd.DataFrame, dict[str, str], pd.Series],
) -> None:
    answers, _, gold = overconfident
    found = decision_labels(
        answers, LABELS, method="dawid_skene", gold=gold, random_gold=False, confidence_target=TARGET
    )
    assert found.calibration is None and "not known to be drawn at random" in found.reason
    assert not found.labels["item_id"].isin(gold.index).any()


def test_gold_asked_again_in_later_rounds_calibrates_with_the_answers_of_its_first_round_only() -> None:
    answers = pd.DataFrame(
        {
            "item_id": ["g1", "g1", "g1", "g1", "g2", "g2", "i1", "i1", "i1"],
            "worker_id": ["a", "b", "c", "d", "a", "b", "a", "b", "c"],
            "label": ["cat"] * 9,
            "round_id": [2, 2, 3, 5, 4, 4, 1, 1, 6],
        }
    )
    kept = as_first_asked(answers, pd.Index(["g1", "g2"]))
    assert kept["item_id"].tolist() == [
        "g1",
        "g1",
        "g2",
        "g2",
        "i1",
        "i1",
        "i1",
    ]  # pool items keep every round
    assert as_first_asked(answers.drop(columns="round_id"), pd.Index(["g1"])).equals(
        answers.drop(columns="round_id")
    )


def test_auto_labels_with_the_model_the_evidence_chooses_and_says_why(
    overconfident: tuple[pd.DataFrame, dict[str, str], pd.Series],
) -> None:
    from labelflow.tasks.aggregation import choose_aggregator

    answers, _, gold = overconfident
    chosen = choose_aggregator(answers, gold, label_names=LABELS)
    found = decision_labels(
        answers, LABELS, method="auto", gold=gold, random_gold=True, confidence_target=TARGET
    )
    assert found.model_choice == f"auto chose {chosen.method}: {chosen.reason}"
    assert set(found.labels["method"]) == {chosen.method}
    by_that_model = decision_labels(
        answers, LABELS, method=chosen.method, gold=gold, random_gold=True, confidence_target=TARGET
    )
    pd.testing.assert_frame_equal(found.labels, by_that_model.labels)
    assert by_that_model.model_choice == ""
