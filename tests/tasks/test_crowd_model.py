"""Fitting a simulated crowd to a real one's answers: the twin must buy what the crowd buys."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from labelflow.integrations.crowd.base import LabelRequest
from labelflow.integrations.crowd.simulated import CrowdProfile, SimulatedCrowd, SimulatedCrowdConfig
from labelflow.tasks.aggregation import MajorityVote
from labelflow.tasks.crowd_model import fit_crowd_profile

LABELS = ["a", "b", "c", "d"]
# A crowd much harder than the default: a quarter of the items fool most workers, toward one label each.
HARD = SimulatedCrowdConfig(
    n_workers=40, hard_item_share=0.25, hard_item_penalty=3.0, lure_share=0.8, confusion_share=0.3, seed=11
)
TRUTH = {f"i{k:04d}": LABELS[k % 4] for k in range(1500)}


def answers_of(config: SimulatedCrowdConfig, k: int, profile: CrowdProfile | None = None) -> pd.DataFrame:
    crowd = SimulatedCrowd(config, LABELS, TRUTH, reward_per_answer=0.05, profile=profile)
    handles = crowd.publish(
        [LabelRequest(key=f"t/{item}", item_id=item, round_id=1, wave=1, n_answers=k) for item in TRUTH]
    )
    crowd.clock.sleep(1e8)
    given = crowd.poll(handles)
    return pd.DataFrame(
        {
            "item_id": [a.item_id for a in given],
            "worker_id": [a.worker_id for a in given],
            "label": [a.label for a in given],
        }
    )


def wrong_pairs_agreeing(answers: pd.DataFrame) -> float:
    """Of the pairs of wrong answers on one item, the share that give the same label (correlated errors)."""
    wrong = answers[answers["label"] != answers["item_id"].map(TRUTH)]
    same = wrong.groupby(["item_id", "label"]).size()
    pairs = wrong.groupby("item_id").size()
    return float((same * (same - 1)).sum() / (pairs * (pairs - 1)).sum())


def majority_vote_accuracy(answers: pd.DataFrame) -> float:
    truth = pd.Series(TRUTH)
    return float((MajorityVote(LABELS).fit_predict(answers).reindex(truth.index) == truth).mean())


@pytest.fixture(scope="module")
def recorded() -> pd.DataFrame:
    """What the user has: five answers per item from the hard crowd."""
    return answers_of(HARD, 5)


def test_the_twin_buys_at_k3_what_the_crowd_buys(recorded: pd.DataFrame) -> None:
    profile = fit_crowd_profile(recorded, LABELS, pd.Series(TRUTH))
    twins = [answers_of(SimulatedCrowdConfig(seed=s), 3, profile) for s in (1, 2)]
    real = answers_of(HARD.model_copy(update={"seed": 12}), 3)
    easy = answers_of(HARD.model_copy(update={"seed": 12, "hard_item_share": 0.0}), 3)
    real_accuracy = majority_vote_accuracy(real)
    assert abs(np.mean([majority_vote_accuracy(twin) for twin in twins]) - real_accuracy) < 0.03
    assert majority_vote_accuracy(easy) - real_accuracy > 0.05  # the gap the fit closes
    # errors are as correlated: two wrong answers on one item agree as often
    assert abs(np.mean([wrong_pairs_agreeing(twin) for twin in twins]) - wrong_pairs_agreeing(real)) < 0.05
    hard = profile.difficulty_weights[profile.difficulty >= 1.5].sum()
    assert 0.12 <= hard <= 0.4
    assert len(profile.workers) == 40 and np.isclose(profile.worker_shares.sum(), 1.0)


def test_without_truth_the_fit_sees_the_crowd_as_dawid_skene_does_and_finds_it_kinder(
    recorded: pd.DataFrame,
) -> None:
    with_truth = fit_crowd_profile(recorded, LABELS, pd.Series(TRUTH))
    without = fit_crowd_profile(recorded, LABELS)
    twin = SimulatedCrowdConfig(seed=3)
    assert majority_vote_accuracy(answers_of(twin, 3, without)) > majority_vote_accuracy(
        answers_of(twin, 3, with_truth)
    )


def test_a_label_outside_the_projects_is_refused_by_name(recorded: pd.DataFrame) -> None:
    with pytest.raises(
        ValueError, match=r"label\(s\) \['d'\] that are not among the labels \['a', 'b', 'c'\]"
    ):
        fit_crowd_profile(recorded, ["a", "b", "c"])
    with pytest.raises(ValueError, match="no answer is on an item whose true label is known"):
        fit_crowd_profile(recorded, LABELS, pd.Series({"elsewhere": "a"}))
