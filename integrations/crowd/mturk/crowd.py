"""Mechanical Turk through boto3: one HIT per item, more assignments for later waves, answers from the form's XML.

How the crowd protocol maps onto MTurk:

- **publish, wave 1** — one HIT per item (``CreateHITWithHITType``) with ``MaxAssignments`` = the wave's answers,
  ``RequesterAnnotation`` = the item id, and a ``UniqueRequestToken`` derived from the request key (project,
  round, item, wave 1). A rerun after a crash sends the same token; MTurk answers ``HitAlreadyExists`` with the
  HIT's id in its message, and we recover that HIT instead of posting a second one.
- **publish, later waves** — more assignments on the item's wave-1 HIT (``CreateAdditionalAssignmentsForHIT``,
  with its own token). The wave-1 HIT id comes from ``round_handles``, a lookup the caller passes in (the label
  store's handles of the round): every handle of an item, whatever its wave, carries the same HIT id.
- **poll** — ``ListAssignmentsForHIT`` (every page). A HIT's assignments, in submission order, are shared out
  to its handles by wave: wave 1 owns the first ``n`` slots, wave 2 the next ones, and so on (slot starts come
  from what each earlier wave *bought*, from ``round_handles``), so a wave's collector waits for its own answers.
  Each assignment is an answer by worker ``mturk:<WorkerId>``, so people from two backends never merge; the
  calls that name a worker (block, bonus) get the WorkerId without the prefix.
- **review** — approve, reject with feedback, bonus (with its own token), block through a custom qualification
  that the HIT type requires workers *not* to have.
- **close** — expire HITs still open, delete those that are finished.

Money: every answer costs the reward plus MTurk's fee (20 %, 40 % for HITs with 10 or more assignments), and a
dispatch is refused — before anything is posted — if the account balance cannot pay for it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Final

from labelflow.integrations.crowd.base import (
    BudgetExceededError,
    Clock,
    CrowdAnswer,
    CrowdBackendError,
    Handle,
    LabelRequest,
    RealClock,
    Review,
    ReviewAction,
    slot_starts,
)
from labelflow.integrations.crowd.mturk.calls import (
    MTurkRequestError,
    call_mturk,
    raw_worker_id,
    request_token,
    worker_id,
)
from labelflow.integrations.crowd.mturk.config import (
    FEE,
    LARGE_HIT,
    LargeHitError,
    MTurkConfig,
    check_redundancy,
    crosses_large_hit,
    mturk_fee,
)
from labelflow.integrations.crowd.mturk.forms import parse_answer
from labelflow.integrations.crowd.mturk.pages import HitPages, ImageHost
from labelflow.integrations.crowd.mturk.qualifications import (
    find_or_create_blocked_qualification,
    qualification_requirements,
)
from labelflow.integrations.crowd.task import TaskConfig

if TYPE_CHECKING:
    from mypy_boto3_mturk.client import MTurkClient
    from mypy_boto3_mturk.type_defs import AssignmentTypeDef, HITTypeDef

logger = logging.getLogger(__name__)

ANNOTATION_MAX: Final = 255
HIT_ID: Final = re.compile(r"\b[0-9A-Z]{30}\b")


def _as_utc(value: datetime | None) -> datetime:
    if value is None:
        return datetime.now(UTC)
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


class MTurkCrowd:
    """The crowd backend for Mechanical Turk (sandbox, production, or a local endpoint).

    ``client`` is a boto3 ``mturk`` client (:func:`make_mturk_client`). ``round_handles(round_id)`` returns the
    round's published handles (the label store's ``handles``): it gives later waves their item's HIT and tells
    ``poll`` which of a HIT's assignments belong to which wave. ``redundancy`` and ``max_answers`` are the
    first wave's assignments per HIT and the most a HIT may get. ``pages`` makes each item's HIT page (the
    ``[task]`` section's template for the dataset's kind); by default, text items with the default task.
    """

    name = "mturk"

    def __init__(
        self,
        client: MTurkClient,
        config: MTurkConfig,
        label_names: Sequence[str],
        *,
        reward_per_answer: float,
        redundancy: int,
        max_answers: int,
        round_handles: Callable[[int], Sequence[Handle]],
        clock: Clock | None = None,
        pages: HitPages | None = None,
    ) -> None:
        check_redundancy(redundancy, max_answers)
        self.client = client
        self.config = config
        self.label_names = list(label_names)
        self.reward_per_answer = reward_per_answer
        self.redundancy = redundancy
        self.max_answers = max_answers
        self.round_handles = round_handles
        self.clock: Clock = clock or RealClock()
        self.pages = pages or HitPages(TaskConfig(), self.label_names, "text", ImageHost(config))
        self._hit_type_id: str | None = None
        self._blocked_qualification_id: str | None = None
        self._complete: dict[str, list[CrowdAnswer]] = {}

    # ------------------------------------------------------------------ money

    def cost_per_answer(self) -> float:
        """Reward plus MTurk's fee; the fee of the largest HIT this crowd makes (it never crosses the cliff)."""
        return self.reward_per_answer * (1 + mturk_fee(self.redundancy))

    def balance(self) -> float:
        """The account's available balance in dollars (``GetAccountBalance``)."""
        response = call_mturk("GetAccountBalance", None, self.client.get_account_balance)
        return float(response.get("AvailableBalance", "0"))

    def _require_balance(self, cost: float, what: str) -> None:
        available = self.balance()
        if cost > available + 1e-9:
            raise BudgetExceededError(
                f"{what} costs ${cost:.2f} with MTurk's fee, but the account balance is ${available:.2f}; "
                "nothing was posted. Add funds to the requester account or lower selection.batch_size."
            )

    # ------------------------------------------------------------------ publish

    def publish(self, requests: Sequence[LabelRequest]) -> list[Handle]:
        if not requests:
            return []
        unknown = sorted({r.item_id for r in requests if r.wave > 1} - set(self._first_hits(requests)))
        if unknown:
            raise CrowdBackendError(
                f"later-wave requests for item(s) {unknown[:5]} have no wave-1 HIT in this round to add "
                "assignments to"
            )
        n_answers = sum(r.n_answers for r in requests)
        self._require_balance(n_answers * self.cost_per_answer(), f"publishing {len(requests)} requests")
        first_hits = self._first_hits(requests)
        hits_before = {
            r.key: self._get_hit(first_hits[r.item_id]) for r in requests if r.wave > 1
        }  # read all before posting anything, so a refused request posts none of the wave
        for request in requests:
            if request.wave > 1:
                before = hits_before[request.key]["MaxAssignments"]
                if crosses_large_hit(before, before + request.n_answers):
                    raise LargeHitError(
                        f"adding {request.n_answers} assignment(s) to HIT {first_hits[request.item_id]} "
                        f"(item {request.item_id!r}) would take it from {before} to {LARGE_HIT} or more "
                        "assignments, which MTurk refuses; nothing was posted"
                    )
        handles, recovered = [], 0
        for request in requests:
            if request.wave == 1:
                hit_id, was_there = self._create_hit(request)
                recovered += was_there
            else:
                hit_id = first_hits[request.item_id]
                self._add_assignments(request, hit_id, hits_before[request.key])
            handles.append(request.published(hit_id, self.clock.now()))
        logger.info(
            "published %d requests on MTurk (%d HITs already there from an earlier attempt)",
            len(handles),
            recovered,
        )
        return handles

    def _first_hits(self, requests: Sequence[LabelRequest]) -> dict[str, str]:
        rounds = {r.round_id for r in requests if r.wave > 1}
        return {
            h.item_id: h.external_id
            for round_id in rounds
            for h in self.round_handles(round_id)
            if h.wave == 1
        }

    def _create_hit(self, request: LabelRequest) -> tuple[str, bool]:
        """The new HIT's id, or the id of the HIT an earlier attempt posted with the same token (and True)."""
        question = self.pages.question(request.item_id, request.payload)
        try:
            response = call_mturk(
                "CreateHITWithHITType",
                None,
                self.client.create_hit_with_hit_type,
                item=request.item_id,
                HITTypeId=self.hit_type_id(),
                MaxAssignments=request.n_answers,
                LifetimeInSeconds=int(self.config.lifetime_hours * 3600),
                Question=question,
                RequesterAnnotation=request.item_id[:ANNOTATION_MAX],
                UniqueRequestToken=request_token("hit", request.key),
            )
        except MTurkRequestError as error:
            found = HIT_ID.search(error.service_message)
            if "HitAlreadyExists" in (error.turk_code + error.service_message) and found:
                logger.info("HIT %s for item %r was posted by an earlier attempt", found[0], request.item_id)
                return found[0], True
            raise
        return response["HIT"]["HITId"], False

    def _add_assignments(self, request: LabelRequest, hit_id: str, hit: HITTypeDef) -> None:
        try:
            call_mturk(
                "CreateAdditionalAssignmentsForHIT",
                hit_id,
                self.client.create_additional_assignments_for_hit,
                HITId=hit_id,
                NumberOfAdditionalAssignments=request.n_answers,
                UniqueRequestToken=request_token("add", request.key),
            )
        except MTurkRequestError as error:
            if "already been processed" not in error.service_message:
                raise
            logger.info(
                "assignments of %s for item %r were added by an earlier attempt", hit_id, request.item_id
            )
        expiration = hit.get("Expiration")
        if expiration is not None and _as_utc(expiration) <= self.clock.now():
            # New assignments on an expired HIT are not offered to anyone until it is extended.
            call_mturk(
                "UpdateExpirationForHIT",
                hit_id,
                self.client.update_expiration_for_hit,
                HITId=hit_id,
                ExpireAt=self.clock.now() + timedelta(hours=self.config.lifetime_hours),
            )

    def hit_type_id(self) -> str:
        """The HIT type (created once per crowd; MTurk returns the same id for the same properties)."""
        if self._hit_type_id is None:
            keywords = ", ".join(self.config.keywords)
            response = call_mturk(
                "CreateHITType",
                None,
                self.client.create_hit_type,
                Title=self.pages.task.title,
                Description=self.config.description,
                Reward=f"{self.reward_per_answer:.2f}",
                AssignmentDurationInSeconds=self.config.assignment_duration_minutes * 60,
                AutoApprovalDelayInSeconds=int(self.config.auto_approval_hours * 3600),
                QualificationRequirements=qualification_requirements(
                    self.config, self.blocked_qualification_id()
                ),
                **({"Keywords": keywords} if keywords else {}),
            )
            self._hit_type_id = response["HITTypeId"]
        return self._hit_type_id

    def blocked_qualification_id(self) -> str:
        """The id of the qualification that marks blocked workers, created on first use."""
        if self._blocked_qualification_id is None:
            self._blocked_qualification_id = find_or_create_blocked_qualification(
                self.client, self.config.blocked_qualification
            )
        return self._blocked_qualification_id

    # ------------------------------------------------------------------ poll

    def poll(self, handles: Sequence[Handle]) -> list[CrowdAnswer]:
        starts = slot_starts(self.round_handles, {h.round_id for h in handles})
        listed: dict[str, list[AssignmentTypeDef]] = {}
        arrived: list[CrowdAnswer] = []
        for handle in handles:
            if handle.key in self._complete:
                # Submitted answers never change, so a handle with all its answers needs no more calls.
                arrived.extend(self._complete[handle.key])
                continue
            hit_id = handle.external_id
            if hit_id not in listed:
                listed[hit_id] = sorted(
                    self.assignments(hit_id, statuses=("Submitted", "Approved", "Rejected")),
                    key=lambda a: (_as_utc(a.get("SubmitTime")), a["AssignmentId"]),
                )
            start = starts.get((handle.round_id, handle.item_id, handle.wave), handle.answers_before)
            mine = listed[hit_id][start : start + handle.n_answers]
            # Rejected assignments only hold their slot; they were stored when they were submitted.
            answers = [self._answer(handle, a) for a in mine if a["AssignmentStatus"] != "Rejected"]
            if len(mine) == handle.n_answers:
                self._complete[handle.key] = answers
            arrived.extend(answers)
        return arrived

    def assignments(
        self, hit_id: str, *, statuses: Sequence[str] = ("Submitted", "Approved")
    ) -> list[AssignmentTypeDef]:
        """Every assignment of the HIT in ``statuses``, following NextToken through all pages."""
        found: list[AssignmentTypeDef] = []
        token: str | None = None
        while True:
            page = call_mturk(
                "ListAssignmentsForHIT",
                hit_id,
                self.client.list_assignments_for_hit,
                HITId=hit_id,
                MaxResults=self.config.page_size,
                AssignmentStatuses=list(statuses),
                **({"NextToken": token} if token else {}),
            )
            found.extend(page.get("Assignments", []))
            token = page.get("NextToken")
            if not token:
                return found

    def _answer(self, handle: Handle, assignment: AssignmentTypeDef) -> CrowdAnswer:
        raw = assignment.get("Answer", "")
        label, error = parse_answer(raw, self.label_names)
        if error:
            logger.warning(
                "assignment %s of HIT %s (item %r): %s; kept raw",
                assignment["AssignmentId"],
                handle.external_id,
                handle.item_id,
                error,
            )
        return CrowdAnswer(
            answer_id=assignment["AssignmentId"],
            request_key=handle.key,
            item_id=handle.item_id,
            worker_id=worker_id(assignment["WorkerId"]),
            round_id=handle.round_id,
            wave=handle.wave,
            is_gold=handle.is_gold,
            raw=raw,
            label=label,
            parse_error=error,
            submitted_at=_as_utc(assignment.get("SubmitTime")),
            backend=self.name,
        )

    # ------------------------------------------------------------------ review and close

    def review(self, decisions: Sequence[Review]) -> None:
        bonuses = [d for d in decisions if d.action is ReviewAction.BONUS]
        if bonuses:
            total = sum(d.amount for d in bonuses) * (1 + FEE)
            self._require_balance(total, f"{len(bonuses)} bonus(es)")
        for decision in decisions:
            if decision.action is ReviewAction.BLOCK:
                call_mturk(
                    "AssociateQualificationWithWorker",
                    None,
                    self.client.associate_qualification_with_worker,
                    worker=decision.worker_id,
                    QualificationTypeId=self.blocked_qualification_id(),
                    WorkerId=raw_worker_id(decision.worker_id),
                    IntegerValue=1,
                    SendNotification=False,
                )
                continue
            if not decision.answer_id:
                raise CrowdBackendError(
                    f"{decision.action} for worker {decision.worker_id} needs an answer_id"
                )
            if decision.action is ReviewAction.BONUS:
                self._send_bonus(decision)
            else:
                self._decide(decision)

    def _send_bonus(self, decision: Review) -> None:
        try:
            call_mturk(
                "SendBonus",
                None,
                self.client.send_bonus,
                worker=decision.worker_id,
                WorkerId=raw_worker_id(decision.worker_id),
                AssignmentId=decision.answer_id,
                BonusAmount=f"{decision.amount:.2f}",
                Reason=decision.reason or "Thank you for careful work.",
                UniqueRequestToken=request_token("bonus", decision.answer_id or ""),
            )
        except MTurkRequestError as error:
            if "already been processed" not in error.service_message:
                raise
            logger.info("the bonus for assignment %s was sent by an earlier attempt", decision.answer_id)

    def _decide(self, decision: Review) -> None:
        assert decision.answer_id is not None
        try:
            if decision.action is ReviewAction.APPROVE:
                call_mturk(
                    "ApproveAssignment",
                    None,
                    self.client.approve_assignment,
                    assignment=decision.answer_id,
                    AssignmentId=decision.answer_id,
                    **({"RequesterFeedback": decision.reason[:1024]} if decision.reason else {}),
                )
            else:
                call_mturk(
                    "RejectAssignment",
                    None,
                    self.client.reject_assignment,
                    assignment=decision.answer_id,
                    AssignmentId=decision.answer_id,
                    RequesterFeedback=(decision.reason or "The answer did not follow the instructions.")[
                        :1024
                    ],
                )
        except MTurkRequestError:
            # Already decided (a rerun of the review, or MTurk's auto-approval came first): not an error.
            status = call_mturk(
                "GetAssignment",
                None,
                self.client.get_assignment,
                assignment=decision.answer_id,
                AssignmentId=decision.answer_id,
            )["Assignment"]["AssignmentStatus"]
            if status == "Submitted":
                raise
            logger.info("assignment %s is already %s; left as it is", decision.answer_id, status)

    def close(self, handles: Sequence[Handle]) -> None:
        """Expire the handles' HITs that are still on offer; delete those with every answer reviewed."""
        for hit_id in dict.fromkeys(h.external_id for h in handles):
            self.expire(hit_id)
            try:
                call_mturk("DeleteHIT", hit_id, self.client.delete_hit, HITId=hit_id)
            except MTurkRequestError as error:
                # Answers still pending or unreviewed: MTurk keeps the HIT until they are done.
                logger.info("HIT %s kept: %s", hit_id, error.service_message)

    def expire(self, hit_id: str) -> bool:
        """Stop offering the HIT if it is still on offer; True if it was."""
        if self._get_hit(hit_id).get("HITStatus") not in ("Assignable", "Unassignable"):
            return False
        call_mturk(
            "UpdateExpirationForHIT",
            hit_id,
            self.client.update_expiration_for_hit,
            HITId=hit_id,
            ExpireAt=datetime(2015, 1, 1, tzinfo=UTC),  # a time in the past expires it at once
        )
        return True

    def _get_hit(self, hit_id: str) -> HITTypeDef:
        return call_mturk("GetHIT", hit_id, self.client.get_hit, HITId=hit_id)["HIT"]

    def hits(self) -> Iterator[HITTypeDef]:
        """Every HIT of the account (``ListHITs``, all pages)."""
        token: str | None = None
        while True:
            page = call_mturk(
                "ListHITs",
                None,
                self.client.list_hits,
                MaxResults=100,
                **({"NextToken": token} if token else {}),
            )
            yield from page.get("HITs", [])
            token = page.get("NextToken")
            if not token:
                return
