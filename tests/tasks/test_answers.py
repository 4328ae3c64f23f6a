"""Answer collection: every poll's answers stored before anything can fail, the wave's deadline, the hand-over
when the round does not wait, and answers that do not parse kept raw.

Real parts only: a SQLite label store in tmp_path, the simulated crowd on its virtual clock, and (for answers
that do not parse) the local MTurk endpoint with its malformed-answer fault.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from labelflow.contracts import ITEM_ID
from labelflow.integrations.crowd.base import CrowdBackend, Handle
from labelflow.integrations.crowd.mturk import MTurkConfig, MTurkCrowd, make_mturk_client
from labelflow.integrations.crowd.simulated import SimulatedCrowd, SimulatedCrowdConfig
from labelflow.integrations.mturk_local import EndpointClock, Faults, LocalMTurkServer
from labelflow.integrations.store import LabelStore
from labelflow.tasks.answers import Poll, WaveOutcome, collect_wave
from labelflow.tasks.dispatch import first_wave_items, plan_requests, publish_wave

LABELS = ["cat", "dog", "owl"]
ITEMS = [f"item-{k}" for k in range(10)]
TRUTH = {item: LABELS[k % 3] for k, item in enumerate(ITEMS)}
REDUNDANCY = 3


@pytest.fixture
def store(tmp_path: Path) -> Iterator[LabelStore]:
    store = LabelStore(f"sqlite:///{tmp_path / 'labels.db'}", "pets")
    yield store
    store.close()


def simulated(**config: Any) -> SimulatedCrowd:
    return SimulatedCrowd(SimulatedCrowdConfig(**config), LABELS, TRUTH, reward_per_answer=0.05)


def publish(store: LabelStore, backend: CrowdBackend, items: list[str] = ITEMS) -> list[Handle]:
    round_ = store.open_round()
    requests = plan_requests(
        first_wave_items(items, [], redundancy=REDUNDANCY),
        project="pets",
        round_id=round_.id,
        round_number=round_.number,
        wave=1,
    )
    return publish_wave(store, backend, requests, wave=1, spent=0.0, budget=100.0).handles


def test_a_wave_is_collected_in_full_on_the_virtual_clock(store: LabelStore) -> None:
    backend = simulated()
    handles = publish(store, backend)
    progress = collect_wave(store, backend, handles, poll_interval_minutes=10, deadline_hours=24)
    assert progress.outcome is WaveOutcome.COMPLETE and progress.done
    assert progress.collected == progress.expected == REDUNDANCY * len(ITEMS)
    assert store.count_answers() == progress.expected
    assert store.answers()[ITEM_ID].value_counts().to_dict() == dict.fromkeys(ITEMS, REDUNDANCY)


def test_each_poll_stores_its_answers_before_anything_can_fail(store: LabelStore) -> None:
    backend = simulated()
    handles = publish(store, backend)
    polls: list[Poll] = []

    def fail_once_answers_arrive(poll: Poll) -> None:
        assert store.count_answers() == poll.collected  # already in the store when anyone hears of them
        polls.append(poll)
        if poll.collected:
            raise RuntimeError("aggregation, validation, a crash: whatever comes next")

    with pytest.raises(RuntimeError, match="whatever comes next"):
        collect_wave(
            store,
            backend,
            handles,
            poll_interval_minutes=10,
            deadline_hours=24,
            on_poll=fail_once_answers_arrive,
        )
    assert 0 < polls[-1].collected < polls[-1].expected
    assert (
        store.count_answers()
        == polls[-1].collected
        == polls[-1].inserted + sum(p.inserted for p in polls[:-1])
    )
    # a rerun collects the rest without storing anything twice
    progress = collect_wave(store, backend, handles, poll_interval_minutes=10, deadline_hours=24)
    assert progress.outcome is WaveOutcome.COMPLETE
    assert store.count_answers() == progress.expected


def test_polls_come_every_interval_until_the_deadline_then_the_round_goes_on(store: LabelStore) -> None:
    backend = simulated(abandon_rate=0.3, seed=11)  # some assignments are never answered
    handles = publish(store, backend)
    polls: list[Poll] = []
    progress = collect_wave(
        store, backend, handles, poll_interval_minutes=30, deadline_hours=6, on_poll=polls.append
    )
    assert progress.outcome is WaveOutcome.DEADLINE and progress.done
    assert 0 < progress.collected < progress.expected
    assert store.count_answers() == progress.collected
    published = min(h.published_at for h in handles)
    assert backend.clock.now() - published >= timedelta(hours=6)
    assert len(polls) == 6 * 2 + 1  # at 0, 0.5 h, ..., 6 h
    assert [round(p.elapsed_hours, 3) for p in polls[:3]] == [0.0, 0.5, 1.0]


def test_a_round_that_does_not_wait_hands_the_wave_over_and_the_collector_finishes_it(
    store: LabelStore,
) -> None:
    backend = simulated()
    handles = publish(store, backend)
    start = backend.clock.now()
    progress = collect_wave(
        store, backend, handles, poll_interval_minutes=10, deadline_hours=24, wait=False, hold_seconds=0.0
    )
    assert progress.outcome is WaveOutcome.HANDED_OVER and not progress.done
    assert backend.clock.now() - start < timedelta(seconds=1)  # polled once, waited for nothing
    assert store.count_answers() == progress.collected < progress.expected
    # the collector's later poll (another process: a fresh crowd object over the same store) ends the wave
    later = simulated()
    later.clock.sleep(24 * 3600)
    resumed = collect_wave(
        store,
        later,
        store.handles(handles[0].round_id, 1),
        poll_interval_minutes=10,
        deadline_hours=24,
        wait=False,
    )
    assert resumed.outcome is WaveOutcome.COMPLETE and resumed.done
    assert store.count_answers() == resumed.expected


def test_holding_on_a_virtual_clock_fast_forwards_through_the_wave(store: LabelStore) -> None:
    backend = simulated()
    handles = publish(store, backend)
    progress = collect_wave(
        store, backend, handles, poll_interval_minutes=10, deadline_hours=24, wait=False, hold_seconds=30.0
    )
    assert progress.outcome is WaveOutcome.COMPLETE


def test_answers_that_do_not_parse_are_kept_raw_with_their_error(
    store: LabelStore, mturk_endpoint: Callable[..., LocalMTurkServer]
) -> None:
    endpoint = mturk_endpoint(truth=TRUTH)
    endpoint.mturk.set_faults(Faults(malformed_answers=2))
    config = MTurkConfig(endpoint_url=endpoint.url, local=True)
    backend = MTurkCrowd(
        make_mturk_client(config),
        config,
        LABELS,
        reward_per_answer=0.05,
        redundancy=REDUNDANCY,
        max_answers=REDUNDANCY,
        round_handles=store.handles,
        clock=EndpointClock(endpoint.url),
    )
    handles = publish(store, backend, ITEMS[:3])
    progress = collect_wave(store, backend, handles, poll_interval_minutes=10, deadline_hours=24)
    assert progress.outcome is WaveOutcome.COMPLETE  # an answer that does not parse is still an answer in
    assert progress.collected == progress.expected == 3 * REDUNDANCY
    assert len(progress.unparsed) == 2
    unparsed = store.answers(parsed=False)
    assert sorted(unparsed["answer_id"]) == list(progress.unparsed)
    assert unparsed["raw"].str.startswith("<?xml").all() and unparsed["parse_error"].notna().all()
    assert len(store.answers()) == progress.expected - 2
