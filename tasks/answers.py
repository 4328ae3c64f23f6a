"""Collection: poll the crowd until a wave's answers are in or its deadline passes, storing each answer at once.

An answer is paid for the moment a worker submits it, so it goes into the store on the poll that brings it —
before aggregation, validation or anything else that could fail.

The polling loop lives here, not in the Prefect step, because its order is what must hold (store first, then
decide whether to stop) and what the tests check on the simulated crowd's virtual clock. The step
(``labelflow.flows.steps.answers``) only watches it: ``on_poll`` gets each poll's counts for a progress artifact
and the log, and the returned :class:`WaveProgress` says why polling stopped.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

from labelflow.integrations.crowd.base import CrowdBackend, Handle
from labelflow.integrations.store import LabelStore


class WaveOutcome(StrEnum):
    """Why collection stopped."""

    COMPLETE = "complete"  # every answer the wave asked for is in
    DEADLINE = "deadline"  # the wave's deadline passed first; the round goes on with what arrived
    HANDED_OVER = "handed_over"  # not waiting: the collector deployment polls again later


@dataclass(frozen=True)
class Poll:
    """One poll: ``collected`` of ``expected`` answers are in, ``inserted`` of them new to the store,
    ``elapsed_hours`` after the wave was published."""

    collected: int
    expected: int
    inserted: int
    elapsed_hours: float


@dataclass(frozen=True)
class WaveProgress:
    collected: int
    expected: int
    outcome: WaveOutcome
    unparsed: tuple[str, ...] = ()  # ids of answers whose raw text did not parse (stored raw with the error)

    @property
    def done(self) -> bool:
        """Every answer is in, or the wave's deadline has passed: the round can go on."""
        return self.outcome is not WaveOutcome.HANDED_OVER


def collect_wave(
    store: LabelStore,
    backend: CrowdBackend,
    handles: Sequence[Handle],
    *,
    poll_interval_minutes: float,
    deadline_hours: float,
    wait: bool = True,
    hold_seconds: float = 0.0,
    on_poll: Callable[[Poll], None] | None = None,
) -> WaveProgress:
    """Poll until every handle has its answers or the wave's deadline (``deadline_hours`` after it was
    published) passes, storing what each poll brings before anything else.

    With ``wait=False`` the wait is handed over instead, so no process sits idle through a long one: keep polling
    for about ``hold_seconds`` of wall-clock time (pausing 1 s, then 2, 4, … up to the poll interval, so a crowd
    that answers within seconds is collected at once and one that takes hours costs a handful of calls), then
    return; the collector deployment polls again later and resumes the round when the wave is done. On a virtual
    clock the pauses cost nothing, so the hold fast-forwards through the wave as ``wait=True`` would."""
    expected = sum(h.n_answers for h in handles)
    clock = backend.clock
    published = min((h.published_at for h in handles), default=clock.now())
    deadline = published + timedelta(hours=deadline_hours)
    hold_until = time.monotonic() + hold_seconds
    interval = poll_interval_minutes * 60
    pause = interval if wait else min(1.0, interval)
    seen: set[str] = set()
    unparsed: set[str] = set()
    while True:
        # a poll returns every answer given so far; those this loop stored already are not sent again (the
        # store would skip them too: it is what keeps a rerun after a kill from storing one twice)
        arrived = [a for a in backend.poll(handles) if a.answer_id not in seen]
        inserted = store.add_answers(arrived)
        seen.update(a.answer_id for a in arrived)
        unparsed.update(a.answer_id for a in arrived if a.label is None)
        if on_poll is not None:
            elapsed_hours = (clock.now() - published).total_seconds() / 3600
            on_poll(Poll(len(seen), expected, inserted, elapsed_hours))
        if len(seen) >= expected:
            outcome = WaveOutcome.COMPLETE
        elif clock.now() >= deadline:
            outcome = WaveOutcome.DEADLINE
        elif not wait and time.monotonic() >= hold_until:
            outcome = WaveOutcome.HANDED_OVER
        else:
            clock.sleep(pause)
            pause = min(2 * pause, interval)
            continue
        return WaveProgress(len(seen), expected, outcome, tuple(sorted(unparsed)))
