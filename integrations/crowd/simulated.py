"""A simulated crowd that behaves like a real one: publish now, answers arrive later, poll for what has arrived.

Workers have their own confusion behaviour (good, uniform spammer, one-class) and each answer is drawn from the
hidden truth. Everything about a request's answers — which workers, what they answer, when it arrives — is a
pure function of (crowd seed, request), so a crowd rebuilt in a new process after a crash returns the very same
answers with the very same ids: nothing is bought twice and a rerun is reproducible.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from labelflow.integrations.crowd.base import (
    Clock,
    CrowdAnswer,
    Handle,
    LabelRequest,
    Review,
    ReviewAction,
    VirtualClock,
)

WorkerKind = Literal["good", "spammer", "one_class"]


class SimulatedCrowdConfig(BaseModel):
    """The simulated crowd's worker mix and speed."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    n_workers: int = Field(30, ge=1, description="How many workers the crowd has.")
    good_share: float = Field(0.7, ge=0, le=1, description="Share of good workers.")
    spammer_share: float = Field(0.2, ge=0, le=1, description="Share of uniform spammers (random labels).")
    one_class_share: float = Field(0.1, ge=0, le=1, description="Share of workers who always give one label.")
    good_accuracy: tuple[float, float] = Field(
        (0.75, 0.95),
        description="Good workers' accuracy range; their errors are uniform over the other labels.",
    )
    mean_latency_minutes: float = Field(
        45.0, gt=0, description="Mean (virtual) time from publishing to an answer; exponential."
    )
    realtime: bool = Field(
        False, description="Answers arrive in wall-clock time instead of a fast-forwarded virtual clock."
    )
    abandon_rate: float = Field(0.0, ge=0, lt=1, description="Share of assignments that are never answered.")
    seed: int = Field(7, description="Seed of the crowd: worker mix, answers and timing.")

    @model_validator(mode="after")
    def _shares_sum_to_one(self) -> SimulatedCrowdConfig:
        total = self.good_share + self.spammer_share + self.one_class_share
        if not np.isclose(total, 1.0):
            raise ValueError(f"good_share + spammer_share + one_class_share must be 1, got {total:g}")
        low, high = self.good_accuracy
        if not 0 <= low <= high <= 1:
            raise ValueError(f"good_accuracy must be a range within [0, 1], got {self.good_accuracy}")
        return self


@dataclass(frozen=True)
class SimulatedWorker:
    worker_id: str
    kind: WorkerKind
    accuracy: float  # for good workers; spammers answer uniformly, one-class workers always `favourite`
    favourite: int


def stable_seed(*parts: object) -> int:
    """A seed from the parts that is the same in every process (unlike ``hash``)."""
    digest = hashlib.blake2b("\x1f".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def make_workers(config: SimulatedCrowdConfig, n_labels: int) -> list[SimulatedWorker]:
    rng = np.random.default_rng(stable_seed("workers", config.seed))
    n_spam = round(config.n_workers * config.spammer_share)
    n_one = round(config.n_workers * config.one_class_share)
    spammers: list[WorkerKind] = ["spammer"] * n_spam
    one_class: list[WorkerKind] = ["one_class"] * n_one
    good: list[WorkerKind] = ["good"] * (config.n_workers - n_spam - n_one)
    kinds = [*spammers, *one_class, *good]
    kinds = [kinds[i] for i in rng.permutation(len(kinds))]
    low, high = config.good_accuracy
    return [
        SimulatedWorker(
            worker_id=f"sim-w{i:03d}",
            kind=kind,
            accuracy=float(rng.uniform(low, high)),
            favourite=int(rng.integers(n_labels)),
        )
        for i, kind in enumerate(kinds)
    ]


def draw_answer(worker: SimulatedWorker, true_code: int, n_labels: int, rng: np.random.Generator) -> int:
    """The label code ``worker`` gives an item whose true label is ``true_code`` (the worker model, shared by
    the simulated crowd and the local MTurk endpoint's simulated workers)."""
    if worker.kind == "one_class":
        return worker.favourite
    if worker.kind == "spammer":
        return int(rng.integers(n_labels))
    if rng.random() < worker.accuracy or n_labels == 1:
        return true_code
    wrong = int(rng.integers(n_labels - 1))
    return wrong + (wrong >= true_code)


class SimulatedCrowd:
    """The embedded default crowd backend.

    ``truth`` maps every item that may be asked (pool and gold) to its hidden true label. Time runs on
    ``clock`` — a :class:`VirtualClock` by default, which the wave loop fast-forwards while it waits.
    ``blocked_workers`` (kept in the label store between processes) get no more work.
    """

    name = "simulated"

    def __init__(
        self,
        config: SimulatedCrowdConfig,
        label_names: Sequence[str],
        truth: Mapping[str, str],
        *,
        reward_per_answer: float,
        clock: Clock | None = None,
        blocked_workers: Iterable[str] = (),
    ) -> None:
        self.config = config
        self.label_names = list(label_names)
        self.truth = truth
        self.reward_per_answer = reward_per_answer
        self.clock: Clock = clock or VirtualClock()
        self.workers = make_workers(config, len(self.label_names))
        self._blocked: set[str] = set(blocked_workers)
        self._reviews: list[Review] = []
        self._closed: set[str] = set()

    def cost_per_answer(self) -> float:
        return self.reward_per_answer

    def publish(self, requests: Sequence[LabelRequest]) -> list[Handle]:
        unknown = [r.item_id for r in requests if r.item_id not in self.truth]
        if unknown:
            raise ValueError(
                f"the simulated crowd has no hidden truth for item(s) {unknown[:5]}; it can only answer items "
                "whose true label the dataset provides"
            )
        now = self.clock.now()
        return [r.published(f"sim-{stable_seed(self.config.seed, r.key):016x}", now) for r in requests]

    def poll(self, handles: Sequence[Handle]) -> list[CrowdAnswer]:
        now = self.clock.now()
        arrived: list[CrowdAnswer] = []
        for handle in handles:
            if handle.key in self._closed:
                continue
            arrived.extend(a for a in self._answers_for(handle) if a.submitted_at <= now)
        return arrived

    def review(self, decisions: Sequence[Review]) -> None:
        self._reviews.extend(decisions)
        self._blocked.update(d.worker_id for d in decisions if d.action is ReviewAction.BLOCK)

    def close(self, handles: Sequence[Handle]) -> None:
        self._closed.update(h.key for h in handles)

    def _eligible_workers(self, handle: Handle) -> list[SimulatedWorker]:
        # The same worker never answers the same item twice in a round, as on MTurk: every wave of an item
        # draws from one fixed per-item order of workers, continuing where the previous wave stopped.
        order = np.random.default_rng(stable_seed(self.config.seed, handle.round_id, handle.item_id))
        workers = [self.workers[i] for i in order.permutation(len(self.workers))]
        eligible = [w for w in workers if w.worker_id not in self._blocked]
        return eligible[handle.answers_before : handle.answers_before + handle.n_answers]

    def _answers_for(self, handle: Handle) -> list[CrowdAnswer]:
        true_code = self.label_names.index(self.truth[handle.item_id])
        answers = []
        for slot, worker in enumerate(self._eligible_workers(handle)):
            rng = np.random.default_rng(stable_seed(self.config.seed, handle.key, slot))
            if rng.random() < self.config.abandon_rate:
                continue
            delay = timedelta(minutes=float(rng.exponential(self.config.mean_latency_minutes)))
            code = draw_answer(worker, true_code, len(self.label_names), rng)
            answers.append(
                CrowdAnswer(
                    answer_id=f"{handle.external_id}-{slot}",
                    request_key=handle.key,
                    item_id=handle.item_id,
                    worker_id=worker.worker_id,
                    round_id=handle.round_id,
                    wave=handle.wave,
                    is_gold=handle.is_gold,
                    raw=self.label_names[code],
                    label=self.label_names[code],
                    parse_error=None,
                    submitted_at=handle.published_at + delay,
                    backend=self.name,
                )
            )
        return answers
