"""Collection: poll the crowd until a wave's answers are in or its deadline passes, storing each answer at once.

An answer is paid for the moment a worker submits it, so it goes into the store on the poll that brings it —
before aggregation, validation or anything else that could fail.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from prefect import get_run_logger, task
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.cache_policies import NO_CACHE

from labelflow.integrations.crowd.base import CrowdBackend, Handle
from labelflow.integrations.store import LabelStore


@dataclass(frozen=True)
class WaveProgress:
    collected: int
    expected: int
    done: bool  # every answer is in, or the wave's deadline has passed


@task(name="collect-answers", task_run_name="collect-round-{round_number}-wave-{wave}", cache_policy=NO_CACHE)
def collect_answers(
    store: LabelStore,
    backend: CrowdBackend,
    handles: Sequence[Handle],
    *,
    round_number: int,
    wave: int,
    poll_interval_minutes: float,
    deadline_hours: float,
    wait: bool = True,
    hold_seconds: float = 0.0,
) -> WaveProgress:
    """Poll until every handle has its answers or the wave's deadline (``deadline_hours`` after it was
    published) passes.

    With ``wait=False`` the wait is handed over instead, so no process sits idle through a long one: keep polling
    for about ``hold_seconds`` of wall-clock time (pausing 1 s, then 2, 4, … up to the poll interval, so a crowd
    that answers within seconds is collected at once and one that takes hours costs a handful of calls), then
    return; the collector deployment polls again later and resumes the round when the wave is done. On a virtual
    clock the pauses cost nothing, so the hold fast-forwards through the wave as ``wait=True`` would."""
    logger = get_run_logger()
    expected = sum(h.n_answers for h in handles)
    clock = backend.clock
    published = min((h.published_at for h in handles), default=clock.now())
    deadline = published + timedelta(hours=deadline_hours)
    hold_until = time.monotonic() + hold_seconds
    interval = poll_interval_minutes * 60
    pause = interval if wait else min(1.0, interval)
    progress_id = create_progress_artifact(
        progress=0.0, description=f"Round {round_number}, wave {wave}: answers collected of {expected}"
    )
    seen: set[str] = set()
    unparsed: set[str] = set()
    while True:
        arrived = backend.poll(handles)
        inserted = store.add_answers(arrived)
        seen.update(a.answer_id for a in arrived)
        unparsed.update(a.answer_id for a in arrived if a.label is None)
        elapsed_hours = (clock.now() - published).total_seconds() / 3600
        update_progress_artifact(progress_id, progress=100.0 * len(seen) / max(expected, 1))
        if inserted:
            logger.info(
                "wave %d: %d/%d answers after %.1f h (%d new)",
                wave,
                len(seen),
                expected,
                elapsed_hours,
                inserted,
            )
        if len(seen) >= expected:
            progress = WaveProgress(len(seen), expected, done=True)
            break
        if clock.now() >= deadline:
            logger.warning(
                "wave %d: deadline of %.0f h passed with %d of %d answers; going on with what arrived",
                wave,
                deadline_hours,
                len(seen),
                expected,
            )
            progress = WaveProgress(len(seen), expected, done=True)
            break
        if not wait and time.monotonic() >= hold_until:
            logger.info(
                "wave %d: %d/%d answers so far; handing the wait over to the collector",
                wave,
                len(seen),
                expected,
            )
            progress = WaveProgress(len(seen), expected, done=False)
            break
        clock.sleep(pause)
        pause = min(2 * pause, interval)
    if unparsed:
        logger.warning(
            "wave %d: %d answer(s) did not parse; kept raw with their error (store.answers(parsed=False)): %s",
            wave,
            len(unparsed),
            ", ".join(sorted(unparsed)[:5]),
        )
    return progress
