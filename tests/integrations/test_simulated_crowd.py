from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from pydantic import ValidationError

from labelflow.integrations.crowd.base import LabelRequest, Review, ReviewAction, VirtualClock
from labelflow.integrations.crowd.simulated import SimulatedCrowd, SimulatedCrowdConfig, make_workers

LABELS = [str(d) for d in range(10)]


def crowd(n_items: int = 200, **overrides: object) -> SimulatedCrowd:
    truth = {f"i{k}": LABELS[k % 10] for k in range(n_items)}
    return SimulatedCrowd(
        SimulatedCrowdConfig(**overrides),
        LABELS,
        truth,
        reward_per_answer=0.05,  # type: ignore[arg-type]
    )


def requests(n_items: int, n_answers: int = 3, wave: int = 1, before: int = 0) -> list[LabelRequest]:
    return [
        LabelRequest(
            key=f"p/r1/i{k}/w{wave}",
            item_id=f"i{k}",
            round_id=1,
            wave=wave,
            n_answers=n_answers,
            answers_before=before,
        )
        for k in range(n_items)
    ]


def test_default_worker_mix_is_70_20_10() -> None:
    kinds = Counter(w.kind for w in make_workers(SimulatedCrowdConfig(), 10))
    assert kinds == {"good": 21, "spammer": 6, "one_class": 3}
    good = [w.accuracy for w in make_workers(SimulatedCrowdConfig(), 10) if w.kind == "good"]
    assert min(good) >= 0.75 and max(good) <= 0.95


def test_answers_arrive_over_time_not_at_publish() -> None:
    sim = crowd()
    handles = sim.publish(requests(50))
    assert sim.poll(handles) == []  # nothing has arrived the moment it is published
    assert isinstance(sim.clock, VirtualClock)
    sim.clock.sleep(20 * 60)
    some = sim.poll(handles)
    assert 0 < len(some) < 150
    sim.clock.sleep(48 * 3600)
    assert len(sim.poll(handles)) == 150


def test_a_rebuilt_crowd_returns_the_same_answers_with_the_same_ids() -> None:
    first, second = crowd(), crowd()
    handles = first.publish(requests(30))
    first.clock.sleep(48 * 3600)
    second.clock.sleep(48 * 3600)
    a = sorted((x.answer_id, x.worker_id, x.label) for x in first.poll(handles))
    b = sorted((x.answer_id, x.worker_id, x.label) for x in second.poll(handles))
    assert a == b and len({x[0] for x in a}) == len(a) == 90


def test_no_worker_answers_an_item_twice_across_waves() -> None:
    sim = crowd()
    handles = sim.publish(requests(40, 3, wave=1)) + sim.publish(requests(40, 2, wave=2, before=3))
    sim.clock.sleep(48 * 3600)
    pairs = [(a.item_id, a.worker_id) for a in sim.poll(handles)]
    assert len(pairs) == len(set(pairs)) == 200


def test_worker_kinds_behave_as_specified() -> None:
    sim = crowd(n_items=2000)
    handles = sim.publish(requests(2000, 5))
    sim.clock.sleep(96 * 3600)
    answers = sim.poll(handles)
    kind = {w.worker_id: w for w in sim.workers}
    truth = sim.truth
    by_kind: dict[str, list[bool]] = {"good": [], "spammer": [], "one_class": []}
    for a in answers:
        by_kind[kind[a.worker_id].kind].append(a.label == truth[a.item_id])
    assert 0.75 < np.mean(by_kind["good"]) < 0.95
    assert abs(np.mean(by_kind["spammer"]) - 0.1) < 0.04
    one_class = [a for a in answers if kind[a.worker_id].kind == "one_class"]
    assert all(a.label == LABELS[kind[a.worker_id].favourite] for a in one_class)


def test_blocked_workers_get_no_more_work() -> None:
    sim = crowd()
    spammer = next(w.worker_id for w in sim.workers if w.kind == "spammer")
    sim.review([Review(ReviewAction.BLOCK, spammer, reason="failed gold")])
    handles = sim.publish(requests(100, 3))
    sim.clock.sleep(48 * 3600)
    answers = sim.poll(handles)
    assert len(answers) == 300 and spammer not in {a.worker_id for a in answers}


def test_abandoned_assignments_never_arrive() -> None:
    sim = crowd(abandon_rate=0.5)
    handles = sim.publish(requests(100, 2))
    sim.clock.sleep(1000 * 3600)
    assert 60 < len(sim.poll(handles)) < 140


def test_items_without_hidden_truth_are_refused_with_their_ids() -> None:
    sim = crowd(n_items=5)
    with pytest.raises(ValueError, match="i7"):
        sim.publish(requests(8))


def test_worker_shares_must_sum_to_one() -> None:
    with pytest.raises(ValidationError, match="must be 1"):
        SimulatedCrowdConfig(good_share=0.5)


def good_answers(sim: SimulatedCrowd, n_items: int) -> list[tuple[str, str, str]]:
    """(item, good worker's answer, truth) of five answers per item."""
    handles = sim.publish(requests(n_items, 5))
    sim.clock.sleep(96 * 3600)
    kind = {w.worker_id: w.kind for w in sim.workers}
    return [
        (a.item_id, a.label, sim.truth[a.item_id]) for a in sim.poll(handles) if kind[a.worker_id] == "good"
    ]


def test_hard_items_fool_good_workers_together_toward_their_lure() -> None:
    sim = crowd(n_items=1500, hard_item_share=0.3, hard_item_penalty=4.0, lure_share=1.0, confusion_share=0.0)
    given = good_answers(sim, 1500)
    wrong_by_item = Counter(item for item, label, truth in given if label != truth)
    right = np.mean([label == truth for _, label, truth in given])
    # a good worker is 0.75-0.95 right on an ordinary item; hard items (0.3 of them) are mostly answered wrong
    assert 0.55 < right < 0.75
    assert sum(n >= 3 for n in wrong_by_item.values()) > 0.2 * 1500  # several wrong together on one item
    # ... and the same way: every wrong answer of a good worker on an item is its lure
    lures = {(item, label) for item, label, truth in given if label != truth}
    assert len(lures) == len(wrong_by_item)


def test_good_workers_confuse_each_label_with_its_neighbour() -> None:
    sim = crowd(n_items=1500, hard_item_share=0.0, confusion_share=1.0)
    wrong = [(truth, label) for _, label, truth in good_answers(sim, 1500) if label != truth]
    per_truth = {truth: {label for t, label in wrong if t == truth} for truth, _ in wrong}
    assert all(len(labels) == 1 for labels in per_truth.values())  # one neighbour per label
    neighbour = {truth: labels.pop() for truth, labels in per_truth.items()}
    assert all(neighbour[neighbour[label]] == label for label in neighbour)  # confused both ways, in pairs
