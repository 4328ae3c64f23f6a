from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from integrations.crowd.base import LabelRequest
from integrations.crowd.simulated import SimulatedCrowd, SimulatedCrowdConfig
from tasks.aggregation import DawidSkene
from tasks.workers import accuracy_bar, find_spammers, posterior_agreement

LABELS = [str(d) for d in range(10)]


def simulated_answers(seed: int, n_items: int, per_item: int = 3) -> tuple[pd.DataFrame, dict[str, str]]:
    truth = {f"i{k}": LABELS[k % 10] for k in range(n_items)}
    crowd = SimulatedCrowd(SimulatedCrowdConfig(seed=seed), LABELS, truth, reward_per_answer=0.05)
    handles = crowd.publish(
        [
            LabelRequest(key=f"k{k}", item_id=f"i{k}", round_id=1, wave=1, n_answers=per_item)
            for k in range(n_items)
        ]
    )
    crowd.clock.sleep(10**6)
    answers = pd.DataFrame(
        [{"item_id": a.item_id, "worker_id": a.worker_id, "label": a.label} for a in crowd.poll(handles)]
    )
    kinds = {w.worker_id: w.kind for w in crowd.workers}
    return answers, kinds


def test_the_bar_is_a_third_of_the_way_from_chance_to_perfect() -> None:
    assert accuracy_bar(10) == pytest.approx(0.4)
    assert accuracy_bar(2) == pytest.approx(2 / 3)


@pytest.mark.parametrize("seed", [101, 102, 103])
def test_spammers_and_one_class_workers_are_blocked_good_workers_never(seed: int) -> None:
    answers, kinds = simulated_answers(seed, n_items=400)
    verdict = find_spammers(posterior_agreement(answers, DawidSkene(LABELS).fit(answers)), len(LABELS))
    verdict["kind"] = verdict["worker_id"].map(kinds)
    good = verdict[verdict["kind"] == "good"]
    bad = verdict[verdict["kind"] != "good"]
    assert not good["blocked"].any()
    assert bad["blocked"].mean() >= 0.6, verdict
    assert good["agreement"].min() > bad["agreement"].max()


def test_few_answers_are_never_enough_to_block() -> None:
    answers, _ = simulated_answers(7, n_items=30)
    verdict = find_spammers(posterior_agreement(answers, DawidSkene(LABELS).fit(answers)), 10, min_answers=20)
    assert not verdict.loc[verdict["n_answers"] < 20, "blocked"].any()


def test_leave_one_out_removes_self_agreement() -> None:
    # one item, one worker: without their own vote the posterior is the class prior, far from certain
    answers = pd.DataFrame({"item_id": ["a"], "worker_id": ["w"], "label": ["3"]})
    model = DawidSkene(LABELS).fit(answers)
    agreement = posterior_agreement(answers, model)
    assert model.probas_.loc["a", "3"] > 0.5
    assert agreement["agreement"].iloc[0] == pytest.approx(model.priors_["3"], abs=1e-3)
    assert np.isfinite(agreement["agreement"]).all()
