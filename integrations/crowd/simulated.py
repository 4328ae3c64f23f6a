"""A simulated crowd that behaves like a real one: publish now, answers arrive later, poll for what has arrived.

Workers have their own confusion matrix (good, uniform spammer, one-class; or fitted to a real crowd) and each
answer is drawn from the hidden truth. Items differ too, as on every real crowd: a *hard* item lowers every
reading worker's log-odds of being right by its difficulty, and a share of the wrong answers it draws go to one
label, its *lure* (the label it is easily taken for), so that several workers are wrong the same way on it —
the correlated errors that independence models miss. The default crowd's labels are confused in pairs: each
label has one neighbour that good workers and hard items mistake it for.

All of it is a :class:`CrowdProfile`: the default is built from :class:`SimulatedCrowdConfig`'s parameters, a
fitted one by :func:`labelflow.tasks.crowd_model.fit_crowd_profile` from a real crowd's answers
(``crowd.simulated.fit_from``). Everything about a request's answers — which workers, what they answer, when it
arrives — is a pure function of (crowd seed, request), and an item's difficulty and lure of (crowd seed, item),
so a crowd rebuilt in a new process after a crash returns the very same answers with the very same ids: nothing
is bought twice and a rerun is reproducible.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
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

WorkerKind = Literal["good", "spammer", "one_class", "fitted"]
FloatArray = npt.NDArray[np.float64]


class SimulatedCrowdConfig(BaseModel):
    """The simulated crowd's worker mix, item difficulty, class confusion and speed."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    n_workers: int = Field(30, ge=1, description="How many workers the crowd has.")
    good_share: float = Field(0.7, ge=0, le=1, description="Share of good workers.")
    spammer_share: float = Field(0.2, ge=0, le=1, description="Share of uniform spammers (random labels).")
    one_class_share: float = Field(0.1, ge=0, le=1, description="Share of workers who always give one label.")
    good_accuracy: tuple[float, float] = Field(
        (0.75, 0.95), description="Good workers' accuracy range on an item of ordinary difficulty."
    )
    confusion_share: float = Field(
        0.5,
        ge=0,
        le=1,
        description="Share of a good worker's errors that go to the true label's neighbour (labels are confused "
        "in pairs, drawn from the seed); the rest are uniform over the other labels.",
    )
    hard_item_share: float = Field(0.1, ge=0, le=1, description="Share of items that are hard.")
    hard_item_penalty: float = Field(
        2.2,
        ge=0,
        description="How much a hard item lowers a good worker's log-odds of being right (2.2 takes 0.85 to 0.39).",
    )
    lure_share: float = Field(
        0.6,
        ge=0,
        le=1,
        description="Share of the wrong answers on an item that go to its lure, one wrong label per item (its "
        "label's neighbour): the correlated errors of workers fooled the same way.",
    )
    fit_from: str | None = Field(
        None,
        description="A real crowd's answers file: fit workers' confusion matrices, item difficulty and correlated "
        "errors to it instead of the parameters above (relative to the config file).",
    )
    fit_truth: str | None = Field(
        None,
        description="The true labels of (some of) fit_from's items; without it the simulator is fitted to "
        "Dawid-Skene's labels, which makes the crowd look kinder than it is.",
    )
    mean_latency_minutes: float = Field(
        45.0, gt=0, description="Mean (virtual) time from publishing to an answer; exponential."
    )
    realtime: bool = Field(
        False, description="Answers arrive in wall-clock time instead of a fast-forwarded virtual clock."
    )
    abandon_rate: float = Field(0.0, ge=0, lt=1, description="Share of assignments that are never answered.")
    seed: int = Field(7, description="Seed of the crowd: worker mix, item difficulty, answers and timing.")

    @model_validator(mode="after")
    def _shares_sum_to_one(self) -> SimulatedCrowdConfig:
        total = self.good_share + self.spammer_share + self.one_class_share
        if not np.isclose(total, 1.0):
            raise ValueError(f"good_share + spammer_share + one_class_share must be 1, got {total:g}")
        low, high = self.good_accuracy
        if not 0 <= low <= high <= 1:
            raise ValueError(f"good_accuracy must be a range within [0, 1], got {self.good_accuracy}")
        if self.fit_truth is not None and self.fit_from is None:
            raise ValueError("fit_truth needs fit_from: the answers file the simulator is fitted to")
        return self


@dataclass(frozen=True)
class SimulatedWorker:
    worker_id: str
    kind: WorkerKind
    accuracy: float  # on an item of ordinary difficulty, averaged over labels
    favourite: int  # the one label a one-class worker gives
    confusion: FloatArray = field(repr=False)  # K x K: P(answer | truth) on an item of ordinary difficulty
    reads_items: bool = True  # whether an item's difficulty and lure move this worker (not a spammer's)


@dataclass(frozen=True)
class CrowdProfile:
    """Everything a simulated crowd draws answers from (see the module docstring).

    Attributes
    ----------
    workers
        The workers, with their confusion matrices.
    worker_shares
        The share of the crowd's answers each worker gives (an item's workers are drawn in proportion).
    difficulty, difficulty_weights
        A discrete distribution of item difficulty: log-odds penalties and their probabilities.
    lure
        K x K: the distribution of a hard item's lure by its true label (zero diagonal, rows sum to 1).
    lure_share
        Share of an item's wrong answers that go to its lure.
    """

    workers: tuple[SimulatedWorker, ...]
    worker_shares: FloatArray
    difficulty: FloatArray
    difficulty_weights: FloatArray
    lure: FloatArray
    lure_share: float


@dataclass(frozen=True)
class ItemTraits:
    """One item's difficulty (a log-odds penalty) and lure (a label code)."""

    difficulty: float
    lure: int


def stable_seed(*parts: object) -> int:
    """A seed from the parts that is the same in every process (unlike ``hash``)."""
    digest = hashlib.blake2b("\x1f".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def neighbour_confusion(n_labels: int, seed: int) -> FloatArray:
    """K x K, zero diagonal: each label's errors all go to one neighbour; labels are paired at random (one triple
    when K is odd), so a pair is confused both ways, as 3 and 8 are."""
    if n_labels < 2:
        return np.zeros((n_labels, n_labels))
    order = np.random.default_rng(stable_seed("pairs", seed)).permutation(n_labels)
    neighbour = np.empty(n_labels, dtype=np.intp)
    for start in range(0, n_labels - n_labels % 2, 2):
        a, b = order[start], order[start + 1]
        neighbour[a], neighbour[b] = b, a
    if n_labels % 2:
        neighbour[order[-1]] = order[0]
    confusion = np.zeros((n_labels, n_labels))
    confusion[np.arange(n_labels), neighbour] = 1.0
    return confusion


def _good_confusion(accuracy: float, neighbours: FloatArray, confusion_share: float) -> FloatArray:
    k = len(neighbours)
    uniform = (np.ones((k, k)) - np.eye(k)) / max(k - 1, 1)
    wrong = confusion_share * neighbours + (1 - confusion_share) * uniform
    return np.asarray(accuracy * np.eye(k) + (1 - accuracy) * wrong, dtype=np.float64)


def make_workers(config: SimulatedCrowdConfig, n_labels: int) -> list[SimulatedWorker]:
    """The configured worker mix (not a fitted crowd's workers: see :func:`default_profile`)."""
    rng = np.random.default_rng(stable_seed("workers", config.seed))
    n_spam = round(config.n_workers * config.spammer_share)
    n_one = round(config.n_workers * config.one_class_share)
    spammers: list[WorkerKind] = ["spammer"] * n_spam
    one_class: list[WorkerKind] = ["one_class"] * n_one
    good: list[WorkerKind] = ["good"] * (config.n_workers - n_spam - n_one)
    kinds = [*spammers, *one_class, *good]
    kinds = [kinds[i] for i in rng.permutation(len(kinds))]
    low, high = config.good_accuracy
    neighbours = neighbour_confusion(n_labels, config.seed)
    workers = []
    for i, kind in enumerate(kinds):
        accuracy, favourite = float(rng.uniform(low, high)), int(rng.integers(n_labels))
        if kind == "good":
            confusion = _good_confusion(accuracy, neighbours, config.confusion_share)
        elif kind == "spammer":
            confusion = np.full((n_labels, n_labels), 1.0 / n_labels)
        else:
            confusion = np.zeros((n_labels, n_labels))
            confusion[:, favourite] = 1.0
        workers.append(
            SimulatedWorker(f"sim-w{i:03d}", kind, accuracy, favourite, confusion, reads_items=kind == "good")
        )
    return workers


def default_profile(config: SimulatedCrowdConfig, n_labels: int) -> CrowdProfile:
    """The crowd :class:`SimulatedCrowdConfig`'s parameters describe."""
    workers = make_workers(config, n_labels)
    return CrowdProfile(
        workers=tuple(workers),
        worker_shares=np.full(len(workers), 1.0 / len(workers)),
        difficulty=np.array([0.0, config.hard_item_penalty]),
        difficulty_weights=np.array([1.0 - config.hard_item_share, config.hard_item_share]),
        lure=neighbour_confusion(n_labels, config.seed),
        lure_share=config.lure_share,
    )


def item_traits(profile: CrowdProfile, seed: int, item_id: str, true_code: int) -> ItemTraits:
    """An item's difficulty and lure: drawn from the profile, the same in every process."""
    rng = np.random.default_rng(stable_seed("item", seed, item_id))
    difficulty = float(profile.difficulty[rng.choice(len(profile.difficulty), p=profile.difficulty_weights)])
    row = profile.lure[true_code]
    lure = int(rng.choice(len(row), p=row)) if row.sum() > 0 else true_code
    return ItemTraits(difficulty, lure)


def draw_answer(
    worker: SimulatedWorker,
    true_code: int,
    n_labels: int,
    rng: np.random.Generator,
    item: ItemTraits | None = None,
    lure_share: float = 0.0,
) -> int:
    """The label code ``worker`` gives an item whose true label is ``true_code`` (the worker model, shared by
    the simulated crowd and the local MTurk endpoint's simulated workers). ``item`` (its difficulty and lure)
    moves a worker who reads items: right with log-odds lowered by the difficulty, and when wrong, at the lure
    with probability ``lure_share``; without it the item is of ordinary difficulty."""
    row = worker.confusion[true_code]
    if n_labels == 1:
        return true_code
    if item is None or not worker.reads_items:
        return int(rng.choice(n_labels, p=row))
    right = float(row[true_code])
    if 0.0 < right < 1.0:
        right = 1.0 / (1.0 + np.exp(item.difficulty - np.log(right / (1.0 - right))))
    if rng.random() < right:
        return true_code
    if item.lure != true_code and rng.random() < lure_share:
        return item.lure
    wrong = np.where(np.arange(n_labels) == true_code, 0.0, row)
    total = wrong.sum()
    if total <= 0:
        wrong, total = np.where(np.arange(n_labels) == true_code, 0.0, 1.0), n_labels - 1.0
    return int(rng.choice(n_labels, p=wrong / total))


def answer_item(
    profile: CrowdProfile,
    seed: int,
    worker: SimulatedWorker,
    item_id: str,
    true_code: int,
    rng: np.random.Generator,
) -> int:
    """The label code ``worker`` of ``profile`` gives item ``item_id`` (true label ``true_code``), the item
    carrying its difficulty and lure (:func:`item_traits`): one answer model for the simulated crowd and the
    local MTurk endpoint's simulated workers."""
    item = item_traits(profile, seed, item_id, true_code)
    return draw_answer(worker, true_code, len(profile.lure), rng, item, profile.lure_share)


class SimulatedCrowd:
    """The embedded default crowd backend.

    ``truth`` maps every item that may be asked (pool and gold) to its hidden true label (a mapping, or a Series
    indexed by item id, which is looked up as it is rather than copied into a dict). Time runs on
    ``clock`` — a :class:`VirtualClock` by default, which the wave loop fast-forwards while it waits.
    ``blocked_workers`` (kept in the label store between processes) get no more work. ``profile`` is a crowd
    fitted to a real one (:func:`labelflow.tasks.crowd_model.fit_crowd_profile`); without it, the crowd
    ``config``'s parameters describe.
    """

    name = "simulated"

    def __init__(
        self,
        config: SimulatedCrowdConfig,
        label_names: Sequence[str],
        truth: Mapping[str, str] | pd.Series,
        *,
        reward_per_answer: float,
        clock: Clock | None = None,
        blocked_workers: Iterable[str] = (),
        profile: CrowdProfile | None = None,
    ) -> None:
        self.config = config
        self.label_names = list(label_names)
        self.truth = truth
        self.reward_per_answer = reward_per_answer
        self.clock: Clock = clock or VirtualClock()
        self.profile = profile or default_profile(config, len(self.label_names))
        if self.profile.lure.shape != (len(self.label_names),) * 2:
            raise ValueError(
                f"the fitted crowd has {len(self.profile.lure)} labels, the project {len(self.label_names)}"
            )
        self.workers = list(self.profile.workers)
        self._blocked: set[str] = set(blocked_workers)
        self._reviews: list[Review] = []
        self._closed: set[str] = set()
        # a handle's answers, drawn once: every poll of a wave returns the arrived part of the same draw
        self._drawn: dict[str, list[CrowdAnswer]] = {}

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
            if handle.key not in self._drawn:
                self._drawn[handle.key] = self._answers_for(handle)
            arrived.extend(a for a in self._drawn[handle.key] if a.submitted_at <= now)
        return arrived

    def review(self, decisions: Sequence[Review]) -> None:
        self._reviews.extend(decisions)
        self._blocked.update(d.worker_id for d in decisions if d.action is ReviewAction.BLOCK)
        self._drawn.clear()  # who may answer changed: handles drawn before are drawn again

    def close(self, handles: Sequence[Handle]) -> None:
        self._closed.update(h.key for h in handles)

    def _eligible_workers(self, handle: Handle) -> list[SimulatedWorker]:
        # The same worker never answers the same item twice in a round, as on MTurk: every wave of an item
        # draws from one fixed per-item order of workers, continuing where the previous wave stopped.
        # Busy workers come first more often: the order is a draw without replacement by their answer shares.
        order = np.random.default_rng(stable_seed(self.config.seed, handle.round_id, handle.item_id))
        shares = self.profile.worker_shares
        workers = [
            self.workers[i] for i in order.choice(len(shares), size=len(shares), replace=False, p=shares)
        ]
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
            code = answer_item(self.profile, self.config.seed, worker, handle.item_id, true_code, rng)
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
