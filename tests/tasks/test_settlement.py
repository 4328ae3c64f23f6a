"""Settlement: late answers stored, what the review did not decide on approved, the round's requests closed, and
every assignment decided exactly once — a resumed round that settles again decides nothing twice.

Real parts only: a SQLite label store in tmp_path, the simulated crowd on its virtual clock and the real worker
review. The simulated crowd records each decision it is sent (``_reviews``), as MTurk records an assignment's.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from labelflow.integrations.crowd.base import CrowdAnswer, Handle, ReviewAction
from labelflow.integrations.crowd.simulated import SimulatedCrowd, SimulatedCrowdConfig
from labelflow.integrations.store import LabelStore
from labelflow.tasks.answers import WaveOutcome, collect_wave
from labelflow.tasks.dispatch import first_wave_items, plan_requests, publish_wave
from labelflow.tasks.settlement import settle
from labelflow.tasks.workers import review_round

LABELS = ["cat", "dog", "owl"]
ITEMS = [f"item-{k}" for k in range(10)]
TRUTH = {item: LABELS[k % 3] for k, item in enumerate(ITEMS)}
REDUNDANCY = 3
DAY = 24 * 3600.0


@pytest.fixture
def store(tmp_path: Path) -> Iterator[LabelStore]:
    store = LabelStore(f"sqlite:///{tmp_path / 'labels.db'}", "pets")
    yield store
    store.close()


@pytest.fixture
def backend() -> SimulatedCrowd:
    return SimulatedCrowd(SimulatedCrowdConfig(seed=5), LABELS, TRUTH, reward_per_answer=0.05)


def publish(store: LabelStore, backend: SimulatedCrowd) -> list[Handle]:
    round_ = store.open_round()
    requests = plan_requests(
        first_wave_items(ITEMS, [], redundancy=REDUNDANCY),
        project="pets",
        round_id=round_.id,
        round_number=round_.number,
        wave=1,
    )
    return publish_wave(store, backend, requests, wave=1, spent=0.0, budget=100.0).handles


def garbled_answer(handle: Handle, backend: SimulatedCrowd) -> CrowdAnswer:
    """An answer as a backend hands over a form that did not parse: raw text, no label, the error."""
    return CrowdAnswer(
        answer_id="garbled-1",
        request_key=handle.key,
        item_id=handle.item_id,
        worker_id="w-garbled",
        round_id=handle.round_id,
        wave=handle.wave,
        is_gold=False,
        raw="<QuestionFormAnswers><Answer>",
        label=None,
        parse_error="does not parse: no element found",
        submitted_at=backend.clock.now(),
        backend=backend.name,
    )


def decisions_per_answer(backend: SimulatedCrowd) -> Counter[str]:
    return Counter(
        str(r.answer_id) for r in backend._reviews if r.action in (ReviewAction.APPROVE, ReviewAction.REJECT)
    )


def reviewed_round(store: LabelStore, backend: SimulatedCrowd) -> tuple[list[Handle], int]:
    """A round cut short by its deadline, with one answer that did not parse, reviewed as the flow reviews it;
    returns its handles and how many answers were still out at the review."""
    handles = publish(store, backend)
    progress = collect_wave(store, backend, handles, poll_interval_minutes=10, deadline_hours=0.5)
    assert progress.outcome is WaveOutcome.DEADLINE
    store.add_answers([garbled_answer(handles[0], backend)])
    review_round(
        store,
        backend,
        store.answers(),
        LABELS,
        pd.Series(dtype=object),
        round_id=handles[0].round_id,
        block_spammers=False,
    )
    return handles, progress.expected - progress.collected


def test_settlement_stores_late_answers_approves_the_undecided_and_closes_the_requests(
    store: LabelStore, backend: SimulatedCrowd
) -> None:
    handles, out = reviewed_round(store, backend)
    round_id = handles[0].round_id
    reviewed = set(decisions_per_answer(backend))
    assert out > 0 and len(reviewed) == REDUNDANCY * len(ITEMS) - out  # the review saw the parsed answers in

    backend.clock.sleep(DAY)  # the stragglers submit after the review
    settlement = settle(store, backend, round_id)

    assert settlement.late == out
    assert store.count_answers(round_id) == REDUNDANCY * len(ITEMS) + 1
    assert settlement.approved == out + 1  # the late answers and the one that did not parse
    assert settlement.closed == len(handles)
    every_answer = set(store.answers(round_id)["answer_id"]) | set(
        store.answers(round_id, parsed=False)["answer_id"]
    )
    decided = decisions_per_answer(backend)
    assert set(decided) == every_answer
    assert set(decided.values()) == {1}
    approved_here = {str(r.answer_id) for r in backend._reviews[-settlement.approved :]}
    assert approved_here == every_answer - reviewed
    assert all(r.action is ReviewAction.APPROVE for r in backend._reviews[-settlement.approved :])
    assert backend.poll(handles) == []  # closed: nothing more arrives, nothing more is bought


def test_settling_again_stores_nothing_and_repeats_only_the_approvals_the_store_cannot_remember(
    store: LabelStore, backend: SimulatedCrowd
) -> None:
    """A resumed round settles once more. The store keeps no review decisions, so the answers only settlement
    decides (those that did not parse) are approved again — harmless, a backend treats a decided answer as done
    (tests/integrations/test_mturk.py) — while no late answer is stored or approved twice."""
    handles, _ = reviewed_round(store, backend)
    backend.clock.sleep(DAY)
    settle(store, backend, handles[0].round_id)
    before = len(backend._reviews)
    again = settle(store, backend, handles[0].round_id)
    assert (again.approved, again.late) == (1, 0)
    assert [(r.action, r.answer_id) for r in backend._reviews[before:]] == [
        (ReviewAction.APPROVE, "garbled-1")
    ]


def test_a_round_whose_answers_were_all_reviewed_has_nothing_left_to_approve(
    store: LabelStore, backend: SimulatedCrowd
) -> None:
    handles = publish(store, backend)
    collect_wave(store, backend, handles, poll_interval_minutes=10, deadline_hours=48)
    review_round(
        store,
        backend,
        store.answers(),
        LABELS,
        pd.Series(dtype=object),
        round_id=handles[0].round_id,
        block_spammers=False,
    )
    settlement = settle(store, backend, handles[0].round_id)
    assert (settlement.approved, settlement.late, settlement.closed) == (0, 0, len(handles))
    assert set(decisions_per_answer(backend).values()) == {1}
