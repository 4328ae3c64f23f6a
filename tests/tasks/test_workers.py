from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from labelflow.integrations.crowd.base import LabelRequest, ReviewAction
from labelflow.integrations.crowd.simulated import SimulatedCrowd, SimulatedCrowdConfig
from labelflow.tasks.aggregation import DawidSkene
from labelflow.tasks.workers import (
    accuracy_bar,
    find_spammers,
    posterior_agreement,
    review_decisions,
    warm_start_from,
    worker_table,
)

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


def test_worker_table_scores_and_stores_confusion() -> None:
    answers, kinds = simulated_answers(101, n_items=300)
    gold = pd.Series({f"i{k}": LABELS[k % 10] for k in range(20)})
    model = DawidSkene(LABELS).fit(answers, gold)
    table = worker_table(answers, model, gold, LABELS)
    table["kind"] = table["worker_id"].map(kinds)
    assert {"n_gold", "gold_accuracy", "spammer_score", "confusion"} <= set(table.columns)
    assert table.groupby("kind")["spammer_score"].mean()["good"] > 0.5
    assert table.loc[table["kind"] != "good", "spammer_score"].max() < 0.3
    warm = warm_start_from(table.assign(worker_id=table["worker_id"]), LABELS)
    assert set(warm) == set(table["worker_id"]) and warm[table["worker_id"][0]].shape == (10, 10)
    assert warm_start_from(table, LABELS[:5]) == {}  # stored under another label set: not used


def test_review_approves_rejects_only_failed_gold_bonuses_and_blocks() -> None:
    gold = pd.Series({"g1": "a", "g2": "b", "g3": "a"})
    rows = [
        ("x1", "g1", "good", "a"),
        ("x2", "g2", "good", "a"),  # a wrong gold answer from a worker who passes gold: approved
        ("x3", "g3", "good", "a"),
        ("x4", "g1", "bad", "b"),  # wrong gold answers from a worker who fails gold: rejected
        ("x5", "g2", "bad", "a"),
        ("x6", "g3", "bad", "a"),
        ("x7", "i1", "bad", "b"),
    ]
    round_answers = pd.DataFrame(rows, columns=["answer_id", "item_id", "worker_id", "label"])
    table = pd.DataFrame(
        {
            "worker_id": ["bad", "good"],
            "n_answers": [30, 30],
            "agreement": [0.2, 0.9],
            "blocked": [True, False],
            "n_gold": [3, 3],
            "gold_accuracy": [1 / 3, 2 / 3],
        }
    )
    decisions = review_decisions(round_answers, table, gold, 2, block={"bad"}, bonus_per_answer=0.01)
    by_answer = {d.answer_id: d for d in decisions if d.answer_id}
    assert {a for a, d in by_answer.items() if d.action is ReviewAction.REJECT} == {"x4", "x5"}
    assert "known answer is 'a'" in by_answer["x4"].reason and "1 of 3" in by_answer["x4"].reason
    assert by_answer["x2"].action is ReviewAction.APPROVE
    bonus = [d for d in decisions if d.action is ReviewAction.BONUS]
    assert [(d.worker_id, d.amount) for d in bonus] == [("good", 0.03)]
    assert [d.worker_id for d in decisions if d.action is ReviewAction.BLOCK] == ["bad"]
    no_bonus = review_decisions(round_answers, table, gold, 2, block=set())
    assert not [d for d in no_bonus if d.action in (ReviewAction.BONUS, ReviewAction.BLOCK)]
