"""The collection step: :func:`labelflow.tasks.answers.collect_wave` with a progress artifact and its log."""

from __future__ import annotations

import time
from collections.abc import Sequence

from prefect import get_run_logger, task
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.cache_policies import NO_CACHE

from labelflow.integrations.crowd.base import CrowdBackend, Handle
from labelflow.integrations.store import LabelStore
from labelflow.tasks.answers import Poll, WaveOutcome, WaveProgress, collect_wave

# a crowd on a virtual clock polls hundreds of times a second, and each refresh is a call to the Prefect API
# (~30 ms): `collect` took 2.8 s of the 2M-item round with a refresh per poll, 1.9 s with this (big_pool.py)
REFRESH_SECONDS = 1.0


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
    """Collect one wave's answers (see :func:`labelflow.tasks.answers.collect_wave`), showing each poll's
    progress as an artifact and logging new answers, a passed deadline, a hand-over and unparsed answers."""
    logger = get_run_logger()
    expected = sum(h.n_answers for h in handles)
    progress_id = create_progress_artifact(
        progress=0.0, description=f"Round {round_number}, wave {wave}: answers collected of {expected}"
    )

    shown, shown_at = 0, float("-inf")

    def refresh(collected: int) -> None:
        nonlocal shown, shown_at
        update_progress_artifact(progress_id, progress=100.0 * collected / max(expected, 1))
        shown, shown_at = collected, time.monotonic()

    def show(poll: Poll) -> None:
        # most polls of a slow crowd bring nothing: no API call for them
        if poll.collected != shown and time.monotonic() - shown_at >= REFRESH_SECONDS:
            refresh(poll.collected)
        if poll.inserted:
            logger.info(
                "wave %d: %d/%d answers after %.1f h (%d new)",
                wave,
                poll.collected,
                poll.expected,
                poll.elapsed_hours,
                poll.inserted,
            )

    progress = collect_wave(
        store,
        backend,
        handles,
        poll_interval_minutes=poll_interval_minutes,
        deadline_hours=deadline_hours,
        wait=wait,
        hold_seconds=hold_seconds,
        on_poll=show,
    )
    if progress.collected != shown:
        refresh(progress.collected)
    if progress.outcome is WaveOutcome.DEADLINE:
        logger.warning(
            "wave %d: deadline of %.0f h passed with %d of %d answers; going on with what arrived",
            wave,
            deadline_hours,
            progress.collected,
            progress.expected,
        )
    elif progress.outcome is WaveOutcome.HANDED_OVER:
        logger.info(
            "wave %d: %d/%d answers so far; handing the wait over to the collector",
            wave,
            progress.collected,
            progress.expected,
        )
    if progress.unparsed:
        logger.warning(
            "wave %d: %d answer(s) did not parse; kept raw with their error (store.answers(parsed=False)): %s",
            wave,
            len(progress.unparsed),
            ", ".join(progress.unparsed[:5]),
        )
    return progress
