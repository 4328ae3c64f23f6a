"""The crowd backend protocol: publish → poll over (real or virtual) time → review → close.

A real crowd is asynchronous: publishing returns handles at once, answers trickle in over hours, and polling
returns only what has arrived since. Every backend — simulated or Mechanical Turk — speaks this protocol, so the
wave loop in ``tasks/`` never knows which one it talks to.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Final, Protocol

# The wave of expert requests: apart from the crowd's waves (1, 2, ...), so that an item the crowd answered in a
# round can also go to an expert in that round ((round, item, wave) is unique in the store); not 0, which
# slot_starts keys an item's total with.
EXPERT_WAVE: Final = -1


class CrowdBackendError(RuntimeError):
    """A crowd backend refused an operation; the message names the operation and the item or HIT."""


class TransientCrowdError(CrowdBackendError):
    """A failure that a later retry may cure (throttling, a 5xx, a dropped connection)."""


class BudgetExceededError(CrowdBackendError):
    """Publishing would spend more than the campaign budget allows; nothing was published."""


@dataclass(frozen=True)
class LabelRequest:
    """Ask the crowd for ``n_answers`` more answers on one item.

    ``key`` is unique per (project, round, item, wave); publishing the same key twice must not buy twice.
    ``answers_before`` is how many answers this item already got in this round, so a later wave can go to
    workers who have not seen the item yet. ``is_expert`` marks a request to the project's experts (an
    escalated or reviewed item, wave :data:`EXPERT_WAVE`); ``suggested_label`` and ``suggested_confidence``
    are the label a reviewer is shown pre-filled (a review request's current label).
    """

    key: str
    item_id: str
    round_id: int
    wave: int
    n_answers: int
    is_gold: bool = False
    payload: str | None = None
    answers_before: int = 0
    is_expert: bool = False
    suggested_label: str | None = None
    suggested_confidence: float | None = None

    def published(self, external_id: str, published_at: datetime) -> Handle:
        """This request's handle once a backend has posted it as ``external_id``."""
        return Handle(
            key=self.key,
            external_id=external_id,
            item_id=self.item_id,
            round_id=self.round_id,
            wave=self.wave,
            n_answers=self.n_answers,
            is_gold=self.is_gold,
            published_at=published_at,
            answers_before=self.answers_before,
            is_expert=self.is_expert,
        )


@dataclass(frozen=True)
class Handle:
    """What a backend returns for a published request: enough to poll for its answers in another process."""

    key: str
    external_id: str
    item_id: str
    round_id: int
    wave: int
    n_answers: int
    is_gold: bool
    published_at: datetime
    answers_before: int = 0
    is_expert: bool = False


@dataclass(frozen=True)
class CrowdAnswer:
    """One answer as it arrived: ``raw`` is kept verbatim; ``label`` is None when ``raw`` did not parse;
    ``is_expert`` marks an expert's answer (to an escalated or reviewed item), which wins in aggregation."""

    answer_id: str
    request_key: str
    item_id: str
    worker_id: str
    round_id: int
    wave: int
    is_gold: bool
    raw: str
    label: str | None
    parse_error: str | None
    submitted_at: datetime
    backend: str
    is_expert: bool = False


class ReviewAction(StrEnum):
    APPROVE = "approve"
    REJECT = "reject"
    BONUS = "bonus"
    BLOCK = "block"


@dataclass(frozen=True)
class Review:
    action: ReviewAction
    worker_id: str
    answer_id: str | None = None
    reason: str = ""
    amount: float = 0.0


class Clock(Protocol):
    """Time as a backend sees it. A virtual clock lets a simulated crowd run days of waiting in milliseconds."""

    def now(self) -> datetime: ...

    def sleep(self, seconds: float) -> None: ...


class RealClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


class VirtualClock:
    """Wall-clock time plus an offset that ``sleep`` advances instantly (fast-forward)."""

    def __init__(self) -> None:
        self._offset = timedelta(0)

    def now(self) -> datetime:
        return datetime.now(UTC) + self._offset

    def sleep(self, seconds: float) -> None:
        self._offset += timedelta(seconds=seconds)


class Priced(Protocol):
    """What a budget check needs from a crowd: its price."""

    def cost_per_answer(self) -> float:
        """What one answer costs the requester, fees included."""
        ...


@dataclass(frozen=True)
class FixedPrice:
    """A crowd's price without the crowd (:class:`Priced`), for checks that need nothing else of it."""

    per_answer: float

    def cost_per_answer(self) -> float:
        return self.per_answer


class CrowdBackend(Protocol):
    """What the wave loop needs from a crowd."""

    name: str
    clock: Clock

    def cost_per_answer(self) -> float:
        """What one answer costs the requester, fees included."""
        ...

    def publish(self, requests: Sequence[LabelRequest]) -> list[Handle]:
        """Post the requests; idempotent on ``request.key`` (a second call returns the same handles)."""
        ...

    def poll(self, handles: Sequence[Handle]) -> list[CrowdAnswer]:
        """Answers that have arrived for these handles (a backend may return an answer again; the store
        ignores an ``answer_id`` it already has)."""
        ...

    def review(self, decisions: Sequence[Review]) -> None:
        """Approve, reject, bonus or block, as decided by quality control."""
        ...

    def close(self, handles: Sequence[Handle]) -> None:
        """Stop collecting: expire whatever is still open."""
        ...


def slot_starts(
    round_handles: Callable[[int], Sequence[Handle]], round_ids: Iterable[int]
) -> dict[tuple[int, str, int], int]:
    """Where each (round, item, wave)'s answer slots start on an item's shared task (an MTurk HIT, a Label Studio
    task): after what the earlier waves bought. Key (round, item, 0) holds the total bought on the item, so an
    answer beyond it is known for one nobody asked for."""
    starts: dict[tuple[int, str, int], int] = {}
    for round_id in round_ids:
        by_item: dict[str, list[Handle]] = defaultdict(list)
        for handle in round_handles(round_id):
            by_item[handle.item_id].append(handle)
        for item_id, item_handles in by_item.items():
            bought = 0
            for handle in sorted(item_handles, key=lambda h: h.wave):
                starts[(round_id, item_id, handle.wave)] = bought
                bought += handle.n_answers
            starts[(round_id, item_id, 0)] = bought
    return starts
