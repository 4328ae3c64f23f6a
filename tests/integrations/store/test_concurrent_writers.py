"""The store's rules under concurrent writers, on SQLite and on a real PostgreSQL server: one lease holder, one
running round per project, one external id per request. Each writer has its own store object (its own engine
and connections), started together at a barrier; the judging of a stale lease is slowed down so that, without the
store's locks, every writer would read the lease before any of them wrote it."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TypeVar

import pytest
from sqlalchemy import text

from labelflow.integrations.crowd.base import Handle, LabelRequest
from labelflow.integrations.store import LabelStore, Lease, LeaseHolder, StoreError
from labelflow.integrations.store.engine import Database

WRITERS = 6
Result = TypeVar("Result")


def _together(url: str, project: str, work: Callable[[LabelStore, int], Result]) -> list[Result | Exception]:
    """Run ``work(store, k)`` in WRITERS threads at once, each with its own store; their results or errors."""
    stores = [LabelStore(url, project) for _ in range(WRITERS)]
    barrier = threading.Barrier(WRITERS)
    results: list[Result | Exception] = [RuntimeError("did not run")] * WRITERS

    def one(k: int) -> None:
        barrier.wait()
        try:
            results[k] = work(stores[k], k)
        except Exception as error:
            results[k] = error

    threads = [threading.Thread(target=one, args=(k,)) for k in range(WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    for store in stores:
        store.close()
    return results


def _slowly_stale(lease: Lease) -> bool:
    time.sleep(0.2)  # a wide window between reading the lease and taking it over
    return lease.holder == "dead-host:1:x"


def _holder(k: int) -> LeaseHolder:
    return LeaseHolder("host", k, "w")


@pytest.mark.parametrize("lease", ["round", "serve"])
def test_of_many_writers_racing_for_a_stale_lease_exactly_one_takes_it(store_url: str, lease: str) -> None:
    with LabelStore(store_url, "cats") as store:
        dead = LeaseHolder("dead-host", 1, "x")
        assert getattr(store, f"{lease}_lease").acquire(dead, lambda _: False) is None

    results = _together(
        store_url, "cats", lambda s, k: getattr(s, f"{lease}_lease").acquire(_holder(k), _slowly_stale)
    )

    winners = [k for k, result in enumerate(results) if result is None]
    assert len(winners) == 1, results
    winner = str(_holder(winners[0]))
    assert all(isinstance(result, Lease) and result.holder == winner for result in results if result), results
    with LabelStore(store_url, "cats") as store:
        assert getattr(store, f"{lease}_lease").current().holder == winner


def test_of_many_writers_racing_for_a_free_lease_exactly_one_takes_it(store_url: str) -> None:
    results = _together(store_url, "cats", lambda s, k: s.round_lease.acquire(_holder(k), lambda _: False))
    assert sum(result is None for result in results) == 1, results
    assert not any(isinstance(result, Exception) for result in results), results


def test_many_writers_opening_rounds_share_one_running_round_per_project(store_url: str) -> None:
    opened = _together(store_url, "cats", lambda s, _: s.open_round())
    assert not any(isinstance(record, Exception) for record in opened), opened
    assert len({record.id for record in opened}) == 1  # type: ignore[union-attr]
    assert sorted(record.resumed for record in opened) == [False] + [True] * (WRITERS - 1)  # type: ignore[union-attr]

    with LabelStore(store_url, "cats") as store:
        store.finish_round(opened[0].id, "completed")  # type: ignore[union-attr]
    reopened = _together(store_url, "cats", lambda s, _: s.open_round())
    assert {record.number for record in reopened} == {2}  # type: ignore[union-attr]


def test_two_publishers_of_one_request_with_different_hits_one_is_refused(store_url: str) -> None:
    with LabelStore(store_url, "cats") as store:
        round_id = store.open_round().id
        request = LabelRequest(key="r-a-w1", item_id="a", round_id=round_id, wave=1, n_answers=3)
        store.add_requests([request])

    def publish(store: LabelStore, k: int) -> str:
        handle = Handle(
            key=request.key,
            external_id=f"HIT{k}",
            item_id="a",
            round_id=round_id,
            wave=1,
            n_answers=3,
            is_gold=False,
            published_at=datetime.now(UTC),
        )
        store.mark_published([handle])
        return f"HIT{k}"

    results = _together(store_url, "cats", publish)
    published = [result for result in results if isinstance(result, str)]
    refused = [result for result in results if isinstance(result, StoreError)]
    assert len(published) == 1 and len(refused) == WRITERS - 1, results
    with LabelStore(store_url, "cats") as store:
        assert store.requests(round_id)["external_id"].tolist() == published


def test_a_serialised_write_waits_for_the_other_to_commit_on_postgresql(postgres_database: str) -> None:
    """The advisory lock itself: a second transaction with the same name blocks until the first commits."""
    first, second = Database(postgres_database), Database(postgres_database)
    entered = threading.Event()
    waited: list[float] = []

    def later() -> None:
        entered.wait()
        start = time.monotonic()
        with second.write(serialize="rounds:cats") as conn:
            waited.append(time.monotonic() - start)
            conn.execute(text("SELECT 1"))

    thread = threading.Thread(target=later)
    thread.start()
    with first.write(serialize="rounds:cats"):
        entered.set()
        time.sleep(0.5)
    thread.join()
    with second.write(serialize="rounds:dogs"):  # another name does not wait
        pass
    first.close()
    second.close()
    assert waited and waited[0] >= 0.4
