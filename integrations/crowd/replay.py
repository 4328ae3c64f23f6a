"""A crowd that replays answers real workers once gave: the recorded crowd of an answers file, on a virtual clock.

A request for ``n`` answers on an item is answered by that item's recorded workers in the file's order, one
answer per slot: wave 1 gets the first workers, a later wave (``answers_before`` answers in) the next ones.
Which recorded answer fills a slot, and when it arrives, is a pure function of (file, item, slot), so a crowd
rebuilt in a new process after a crash returns the very same answers with the very same ids, as the simulated
crowd does. An item has only the answers in the file: once they are used up, a request gets fewer answers than
it asked for, or none: the crowd publishes the request for the answers it can give, so only those are paid and
waited for, and its external id keeps how many were asked (:meth:`ReplayCrowd.shortfall`, counted in the round
report). Answers of blocked workers are skipped, as a blocked worker gets no more work.

A recorded answer keeps one id however often it is asked for: a gold item asked again in a later round brings
back answers the store already holds, and so adds nothing (the recording has no second answer from a worker).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from labelflow.integrations.answers_file import read_answers
from labelflow.integrations.crowd.base import (
    Clock,
    CrowdAnswer,
    Handle,
    LabelRequest,
    Review,
    ReviewAction,
    VirtualClock,
)
from labelflow.integrations.crowd.simulated import stable_seed


class ReplayCrowdConfig(BaseModel):
    """Where the recorded answers are, and how fast they come back."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    answers: str = Field(
        ...,
        description="The recorded answers (CSV, Parquet or JSON Lines; columns question,worker,answer or "
        "item_id,worker_id,label or task,worker,label), relative to the config file. A worker may answer an "
        "item once.",
    )
    mean_delay_minutes: float = Field(
        45.0, gt=0, description="Mean (virtual) time from publishing to an answer; exponential."
    )


class ReplayCrowd:
    """The recorded crowd of ``config.answers`` as a crowd backend.

    ``label_names`` are the project's labels: a recorded answer with another label, or a worker answering an
    item twice, makes the file unusable (:class:`~labelflow.integrations.answers_file.AnswersFileError` naming
    the lines). ``namespace`` (the project's name) goes into the answer ids, so projects sharing a store never
    share one.
    """

    name = "replay"

    def __init__(
        self,
        config: ReplayCrowdConfig,
        label_names: Sequence[str],
        *,
        reward_per_answer: float,
        base_dir: Path = Path("."),
        clock: Clock | None = None,
        blocked_workers: Iterable[str] = (),
        namespace: str = "",
    ) -> None:
        self.config = config
        self.path = (base_dir / config.answers).resolve()
        self.reward_per_answer = reward_per_answer
        self.clock: Clock = clock or VirtualClock()
        recorded = read_answers(
            self.path, known_labels=label_names, namespace=f"{namespace}\x1freplay", backend=self.name
        ).answers
        # The file's order within each item: groupby keeps it.
        self._recorded: dict[str, list[tuple[str, str, str]]] = {
            str(item): list(zip(group["answer_id"], group["worker_id"], group["label"], strict=True))
            for item, group in recorded.groupby("item_id", sort=False)
        }
        self._blocked: set[str] = set(blocked_workers)
        self._reviews: list[Review] = []
        self._closed: set[str] = set()
        # Each request's answers, computed once: a wave polls the same handles again and again.
        self._answers: dict[Handle, list[CrowdAnswer]] = {}

    @property
    def items(self) -> set[str]:
        """The items that have recorded answers."""
        return set(self._recorded)

    def cost_per_answer(self) -> float:
        return self.reward_per_answer

    def publish(self, requests: Sequence[LabelRequest]) -> list[Handle]:
        """Handles for the answers the recording can give each request (``n_answers`` lowered to them, 0 for an
        item whose recorded answers are used up); the external id ends in the number asked for."""
        now = self.clock.now()
        handles = []
        for request in requests:
            handle = request.published(
                f"replay-{stable_seed(self.name, request.key):016x}-of-{request.n_answers}", now
            )
            handles.append(replace(handle, n_answers=len(self._slots(handle))))
        return handles

    def poll(self, handles: Sequence[Handle]) -> list[CrowdAnswer]:
        now = self.clock.now()
        return [
            answer
            for handle in handles
            if handle.key not in self._closed
            for answer in self._answers_for(handle)
            if answer.submitted_at <= now
        ]

    def review(self, decisions: Sequence[Review]) -> None:
        self._reviews.extend(decisions)
        newly_blocked = {d.worker_id for d in decisions if d.action is ReviewAction.BLOCK} - self._blocked
        if newly_blocked:
            self._blocked |= newly_blocked
            self._answers.clear()

    def close(self, handles: Sequence[Handle]) -> None:
        self._closed.update(h.key for h in handles)

    def shortfall(self, handle: Handle) -> int:
        """How many of the answers ``handle``'s request asked for the file could not give: its item's recorded
        answers (less blocked workers') were used up. 0 for a request answered in full."""
        asked = handle.external_id.rpartition("-of-")[2]
        return int(asked) - handle.n_answers if asked.isdigit() else 0

    def exhausted_requests(self, handles: Sequence[Handle]) -> int:
        """How many of ``handles`` get fewer answers than they asked for (for the round report)."""
        return sum(self.shortfall(h) > 0 for h in handles)

    def _slots(self, handle: Handle) -> list[tuple[str, str, str]]:
        available = [a for a in self._recorded.get(handle.item_id, []) if a[1] not in self._blocked]
        return available[handle.answers_before : handle.answers_before + handle.n_answers]

    def _answers_for(self, handle: Handle) -> list[CrowdAnswer]:
        if handle not in self._answers:
            self._answers[handle] = self._replay(handle)
        return self._answers[handle]

    def _replay(self, handle: Handle) -> list[CrowdAnswer]:
        answers = []
        for recorded_id, worker_id, label in self._slots(handle):
            # The delay hangs on the recorded answer alone, so the same answer arrives at the same time after
            # its request was published, in any process.
            rng = np.random.default_rng(stable_seed(recorded_id))
            delay = timedelta(minutes=float(rng.exponential(self.config.mean_delay_minutes)))
            answers.append(
                CrowdAnswer(
                    answer_id=recorded_id,
                    request_key=handle.key,
                    item_id=handle.item_id,
                    worker_id=worker_id,
                    round_id=handle.round_id,
                    wave=handle.wave,
                    is_gold=handle.is_gold,
                    raw=label,
                    label=label,
                    parse_error=None,
                    submitted_at=handle.published_at + delay,
                    backend=self.name,
                )
            )
        return answers
