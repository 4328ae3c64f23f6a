"""Mechanical Turk through boto3: one HIT per item, more assignments for later waves, answers from crowd-form XML.

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
- **review** — approve, reject with feedback, bonus (with its own token), block through a custom qualification
  that the HIT type requires workers *not* to have.
- **close** — expire HITs still open, delete those that are finished.

Money: every answer costs the reward plus MTurk's fee (20 %, 40 % for HITs with 10 or more assignments), and a
dispatch is refused — before anything is posted — if the account balance cannot pay for it.
"""

from __future__ import annotations

import hashlib
import html
import json
import logging
import re
import xml.etree.ElementTree as ET
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

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
    TransientCrowdError,
)

if TYPE_CHECKING:
    from mypy_boto3_mturk.client import MTurkClient
    from mypy_boto3_mturk.type_defs import AssignmentTypeDef, HITTypeDef, QualificationRequirementTypeDef

logger = logging.getLogger(__name__)

SANDBOX_ENDPOINT: Final = "https://mturk-requester-sandbox.us-east-1.amazonaws.com"
LIVE_ENDPOINT: Final = "https://mturk-requester.us-east-1.amazonaws.com"
# MTurk's system qualification types (the same ids in the sandbox and in production).
APPROVAL_RATE_QUALIFICATION: Final = "000000000000000000L0"
APPROVED_HITS_QUALIFICATION: Final = "00000000000000000040"
LOCALE_QUALIFICATION: Final = "00000000000000000071"
FEE: Final = 0.20
FEE_LARGE_HIT: Final = 0.40
LARGE_HIT: Final = 10  # MaxAssignments from which the higher fee applies
TOKEN_MAX: Final = 64
ANNOTATION_MAX: Final = 255
QUESTION_MAX: Final = 65535
ANSWER_FIELD: Final = (
    "label"  # the crowd-classifier's name, so its answer is taskAnswers[0]["label"]["label"]
)
# Error codes botocore's standard retry mode treats as throttling; once retries are used up they are still
# transient from our side (a later run may succeed).
THROTTLING_CODES: Final = frozenset(
    {"Throttling", "ThrottlingException", "ThrottledException", "RequestThrottledException",
     "TooManyRequestsException", "RequestLimitExceeded", "SlowDown", "ServiceUnavailableException"}
)  # fmt: skip
HIT_ID: Final = re.compile(r"\b[0-9A-Z]{30}\b")

_T = TypeVar("_T")


class MTurkConfig(BaseModel):
    """The ``[crowd.mturk]`` section: where the HITs go and what workers see. The reward per answer is
    ``crowd.reward_per_answer``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    live: bool = Field(
        False,
        description="Post to production MTurk (real money). Also needs --live on the command line; "
        "otherwise HITs go to the sandbox.",
    )
    endpoint_url: str | None = Field(
        None, description="Override the MTurk endpoint (e.g. a local endpoint from `labelflow mturk-local`)."
    )
    local: bool = Field(
        False,
        description="The endpoint is `labelflow mturk-local`: waiting fast-forwards its clock, and made-up "
        "credentials are used when the AWS chain has none.",
    )
    region: str = Field("us-east-1", description="AWS region (MTurk runs in us-east-1 only).")
    title: str = Field("Choose the right label", description="HIT title workers see in the list.")
    description: str = Field(
        "Look at one item and pick the label that fits it best.", description="HIT description."
    )
    keywords: tuple[str, ...] = Field(("labeling", "classification"), description="HIT keywords.")
    instructions: str = Field(
        "Pick the one label that best describes the item. If unsure, pick the most likely one.",
        description="Instructions shown beside the item.",
    )
    assignment_duration_minutes: int = Field(
        10, ge=1, le=7 * 24 * 60, description="How long a worker has for one answer."
    )
    lifetime_hours: float = Field(72.0, gt=0, le=365 * 24, description="How long a HIT stays on offer.")
    auto_approval_hours: float = Field(
        72.0,
        ge=0,
        le=30 * 24,
        description="Answers not reviewed by then are approved (and paid) automatically.",
    )
    min_approval_rate: int = Field(
        95, ge=0, le=100, description="Workers need this approval rate (percent); 0 drops the requirement."
    )
    min_approved_hits: int = Field(
        100, ge=0, description="…and this many approved HITs (the rate means little below ~100); 0 drops it."
    )
    locales: tuple[str, ...] = Field(
        ("US",), description="Countries (ISO 3166) workers must be in; empty drops the requirement."
    )
    blocked_qualification: str = Field(
        "labelflow-blocked", description="Name of the qualification that marks blocked workers."
    )
    max_attempts: int = Field(
        8, ge=5, le=20, description="Attempts per call, the first included (botocore standard retries)."
    )
    page_size: int = Field(100, ge=1, le=100, description="Assignments per ListAssignmentsForHIT page.")

    @model_validator(mode="after")
    def _local_needs_an_endpoint(self) -> MTurkConfig:
        if self.local and not self.endpoint_url:
            raise ValueError("local = true needs endpoint_url (the address `labelflow mturk-local` prints)")
        if self.local and self.live:
            raise ValueError("a local endpoint is never production: set live = false")
        return self


class LiveOptInError(CrowdBackendError):
    """Production MTurk was asked for on one side only (the config or the command line)."""


class MTurkRequestError(CrowdBackendError):
    """MTurk refused a call; ``code`` is the error code, ``turk_code`` MTurk's own error code if given."""

    def __init__(self, message: str, *, code: str, turk_code: str, service_message: str) -> None:
        super().__init__(message)
        self.code = code
        self.turk_code = turk_code
        self.service_message = service_message


def mturk_fee(max_assignments: int) -> float:
    """MTurk's commission on reward and bonus: 20 %, or 40 % on HITs with 10 or more assignments."""
    return FEE_LARGE_HIT if max_assignments >= LARGE_HIT else FEE


def mturk_endpoint(config: MTurkConfig, *, live: bool) -> str:
    """The endpoint to call: production only when both ``mturk.live`` and ``--live`` say so."""
    if config.live != live:
        where = "the config sets mturk.live = true" if config.live else "--live was given"
        missing = "--live on the command line" if config.live else "mturk.live = true in the config"
        raise LiveOptInError(
            f"{where}, but production MTurk (real money) also needs {missing}; nothing was posted"
        )
    if config.endpoint_url:
        return config.endpoint_url
    return LIVE_ENDPOINT if live else SANDBOX_ENDPOINT


def make_mturk_client(config: MTurkConfig, *, live: bool = False) -> MTurkClient:
    """A boto3 ``mturk`` client for the configured endpoint, with explicit standard-mode retries.

    Credentials come from the standard AWS chain (environment, shared files, SSO, instance role); they are
    never logged. For a local endpoint (``mturk.local``) made-up credentials stand in when the chain has none:
    it checks that requests are signed, not by whom.
    """
    import boto3
    from botocore.config import Config

    endpoint = mturk_endpoint(config, live=live)
    session = boto3.session.Session(region_name=config.region)
    key_id = secret = None
    if config.local and session.get_credentials() is None:
        key_id = secret = "labelflow-local"
    logger.info("MTurk client for %s (%s)", endpoint, "production" if live else "not production")
    return session.client(
        "mturk",
        endpoint_url=endpoint,
        config=Config(
            # total_max_attempts counts the first try too (botocore's max_attempts counts only retries).
            retries={"mode": "standard", "total_max_attempts": config.max_attempts},
            connect_timeout=10,
            read_timeout=60,
        ),
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
    )


def request_token(kind: str, key: str) -> str:
    """A UniqueRequestToken (at most 64 characters) that is the same for the same request in every process."""
    digest = hashlib.blake2b(f"{kind}\x1f{key}".encode(), digest_size=20).hexdigest()
    return f"lf-{kind}-{digest}"[:TOKEN_MAX]


def _looks_like_image(payload: str) -> bool:
    lowered = payload.lower()
    return lowered.startswith("data:image/") or (
        lowered.startswith(("http://", "https://"))
        and lowered.split("?", 1)[0].endswith((".png", ".jpg", ".jpeg", ".gif", ".webp", ".svg"))
    )


def question_xml(
    item_id: str, payload: str | None, label_names: Sequence[str], *, title: str, instructions: str
) -> str:
    """An HTMLQuestion: a crowd-html-elements ``crowd-form`` with one ``crowd-classifier`` over the labels.

    Everything that comes from data is HTML-escaped, which also keeps ``]]>`` out of the CDATA section.
    """
    shown = payload if payload is not None else f"Item {item_id}"
    target = (
        f'<img src="{html.escape(shown, quote=True)}" alt="the item" style="max-width:100%">'
        if _looks_like_image(shown)
        else f"<p>{html.escape(shown)}</p>"
    )
    categories = html.escape(json.dumps(list(label_names)), quote=True)
    text = html.escape(instructions)
    return (
        '<HTMLQuestion xmlns="http://mechanicalturk.amazonaws.com/AWSMechanicalTurkDataSchemas/2011-11-11/'
        'HTMLQuestion.xsd"><HTMLContent><![CDATA[<!DOCTYPE html>\n'
        '<html><head><meta charset="utf-8">'
        '<script src="https://assets.crowd.aws/crowd-html-elements.js"></script></head><body>\n'
        "<crowd-form>\n"
        f'<crowd-classifier name="{ANSWER_FIELD}" categories="{categories}" '
        f'header="{html.escape(title, quote=True)}">\n'
        f"<classification-target>{target}</classification-target>\n"
        f'<full-instructions header="Instructions"><p>{text}</p></full-instructions>\n'
        f"<short-instructions><p>{text}</p></short-instructions>\n"
        "</crowd-classifier>\n</crowd-form>\n</body></html>]]></HTMLContent>"
        "<FrameHeight>0</FrameHeight></HTMLQuestion>"
    )


def _local_name(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def parse_answer(raw: str, label_names: Sequence[str]) -> tuple[str | None, str | None]:
    """``(label, None)`` from a QuestionFormAnswers document holding the crowd-form's ``taskAnswers`` JSON,
    or ``(None, why)`` when it does not parse or names no known label."""
    try:
        root = ET.fromstring(raw)
    except ET.ParseError as error:
        return None, f"answer XML does not parse: {error}"
    free_text: str | None = None
    for answer in root.iter():
        if _local_name(answer.tag) != "Answer":
            continue
        fields = {_local_name(child.tag): (child.text or "") for child in answer}
        if fields.get("QuestionIdentifier") == "taskAnswers":
            free_text = fields.get("FreeText")
    if free_text is None:
        return None, "no taskAnswers answer in the QuestionFormAnswers document"
    try:
        tasks = json.loads(free_text)
    except json.JSONDecodeError as error:
        return None, f"taskAnswers is not JSON: {error}"
    try:
        label = tasks[0][ANSWER_FIELD]["label"]
    except (TypeError, KeyError, IndexError):
        return None, f'taskAnswers has no [0]["{ANSWER_FIELD}"]["label"]: {free_text[:200]!r}'
    if not isinstance(label, str) or label not in label_names:
        return None, f"answer {label!r} is not one of the labels {list(label_names)[:20]}"
    return label, None


def _as_utc(value: datetime | None) -> datetime:
    if value is None:
        return datetime.now(UTC)
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


class MTurkCrowd:
    """The crowd backend for Mechanical Turk (sandbox, production, or a local endpoint).

    ``client`` is a boto3 ``mturk`` client (:func:`make_mturk_client`). ``round_handles(round_id)`` returns the
    round's published handles (the label store's ``handles``): it gives later waves their item's HIT and tells
    ``poll`` which of a HIT's assignments belong to which wave. ``redundancy`` and ``max_answers`` are the
    first wave's assignments per HIT and the most a HIT may get.
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
    ) -> None:
        if redundancy < LARGE_HIT <= max_answers:
            # MTurk refuses to take a HIT from under 10 assignments to 10 or more (the fee would change).
            raise CrowdBackendError(
                f"crowd.max_answers = {max_answers} would take HITs created with {redundancy} assignments to "
                f"{LARGE_HIT} or more, which MTurk refuses; keep max_answers below {LARGE_HIT} or set "
                f"redundancy to {LARGE_HIT} or more (40 % fee)"
            )
        self.client = client
        self.config = config
        self.label_names = list(label_names)
        self.reward_per_answer = reward_per_answer
        self.redundancy = redundancy
        self.max_answers = max_answers
        self.round_handles = round_handles
        self.clock: Clock = clock or RealClock()
        self._hit_type_id: str | None = None
        self._blocked_qualification_id: str | None = None
        self._complete: dict[str, list[CrowdAnswer]] = {}

    # ------------------------------------------------------------------ money

    def cost_per_answer(self) -> float:
        """Reward plus MTurk's fee; the fee of the largest HIT this crowd makes (it never crosses the cliff)."""
        return self.reward_per_answer * (1 + mturk_fee(self.redundancy))

    def balance(self) -> float:
        """The account's available balance in dollars (``GetAccountBalance``)."""
        response = self._call("GetAccountBalance", None, self.client.get_account_balance)
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
                if before < LARGE_HIT <= before + request.n_answers:
                    raise CrowdBackendError(
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
            handles.append(
                Handle(
                    key=request.key,
                    external_id=hit_id,
                    item_id=request.item_id,
                    round_id=request.round_id,
                    wave=request.wave,
                    n_answers=request.n_answers,
                    is_gold=request.is_gold,
                    published_at=self.clock.now(),
                    answers_before=request.answers_before,
                )
            )
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
        question = question_xml(
            request.item_id,
            request.payload,
            self.label_names,
            title=self.config.title,
            instructions=self.config.instructions,
        )
        if len(question) > QUESTION_MAX:
            raise CrowdBackendError(
                f"the question for item {request.item_id!r} is {len(question)} characters; MTurk takes at "
                f"most {QUESTION_MAX} (is the payload an inline image? host it and give its URL)"
            )
        try:
            response = self._call(
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
            self._call(
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
            self._call(
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
            response = self._call(
                "CreateHITType",
                None,
                self.client.create_hit_type,
                Title=self.config.title,
                Description=self.config.description,
                Reward=f"{self.reward_per_answer:.2f}",
                AssignmentDurationInSeconds=self.config.assignment_duration_minutes * 60,
                AutoApprovalDelayInSeconds=int(self.config.auto_approval_hours * 3600),
                QualificationRequirements=self.qualification_requirements(),
                **({"Keywords": keywords} if keywords else {}),
            )
            self._hit_type_id = response["HITTypeId"]
        return self._hit_type_id

    def qualification_requirements(self) -> list[QualificationRequirementTypeDef]:
        config = self.config
        requirements: list[QualificationRequirementTypeDef] = []
        for qualification, minimum in (
            (APPROVAL_RATE_QUALIFICATION, config.min_approval_rate),
            (APPROVED_HITS_QUALIFICATION, config.min_approved_hits),
        ):
            if minimum:
                requirements.append(
                    {
                        "QualificationTypeId": qualification,
                        "Comparator": "GreaterThanOrEqualTo",
                        "IntegerValues": [minimum],
                        "ActionsGuarded": "Accept",
                    }
                )
        if config.locales:
            requirements.append(
                {
                    "QualificationTypeId": LOCALE_QUALIFICATION,
                    "Comparator": "In",
                    "LocaleValues": [{"Country": country} for country in config.locales],
                    "ActionsGuarded": "Accept",
                }
            )
        requirements.append(
            {
                "QualificationTypeId": self.blocked_qualification_id(),
                "Comparator": "DoesNotExist",
                "ActionsGuarded": "DiscoverPreviewAndAccept",
            }
        )
        return requirements

    def blocked_qualification_id(self) -> str:
        """The id of the qualification that marks blocked workers, created on first use."""
        if self._blocked_qualification_id is None:
            name = self.config.blocked_qualification
            listed = self._call(
                "ListQualificationTypes",
                None,
                self.client.list_qualification_types,
                Query=name,
                MustBeRequestable=False,
                MustBeOwnedByCaller=True,
                MaxResults=100,
            )
            found = [
                q["QualificationTypeId"] for q in listed.get("QualificationTypes", []) if q["Name"] == name
            ]
            if found:
                self._blocked_qualification_id = found[0]
            else:
                created = self._call(
                    "CreateQualificationType",
                    None,
                    self.client.create_qualification_type,
                    Name=name,
                    Description="Workers whose answers labelflow's quality control found no better than chance.",
                    QualificationTypeStatus="Active",
                )
                self._blocked_qualification_id = created["QualificationType"]["QualificationTypeId"]
        return self._blocked_qualification_id

    # ------------------------------------------------------------------ poll

    def poll(self, handles: Sequence[Handle]) -> list[CrowdAnswer]:
        starts = self._slot_starts({h.round_id for h in handles})
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

    def _slot_starts(self, round_ids: Iterable[int]) -> dict[tuple[int, str, int], int]:
        """Where each (round, item, wave)'s assignments start in the HIT: after what earlier waves bought."""
        starts: dict[tuple[int, str, int], int] = {}
        for round_id in round_ids:
            by_item: dict[str, list[Handle]] = defaultdict(list)
            for handle in self.round_handles(round_id):
                by_item[handle.item_id].append(handle)
            for item_id, item_handles in by_item.items():
                bought = 0
                for handle in sorted(item_handles, key=lambda h: h.wave):
                    starts[(round_id, item_id, handle.wave)] = bought
                    bought += handle.n_answers
        return starts

    def assignments(
        self, hit_id: str, *, statuses: Sequence[str] = ("Submitted", "Approved")
    ) -> list[AssignmentTypeDef]:
        """Every assignment of the HIT in ``statuses``, following NextToken through all pages."""
        found: list[AssignmentTypeDef] = []
        token: str | None = None
        while True:
            page = self._call(
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
            worker_id=assignment["WorkerId"],
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
                self._call(
                    "AssociateQualificationWithWorker",
                    None,
                    self.client.associate_qualification_with_worker,
                    worker=decision.worker_id,
                    QualificationTypeId=self.blocked_qualification_id(),
                    WorkerId=decision.worker_id,
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
            self._call(
                "SendBonus",
                None,
                self.client.send_bonus,
                worker=decision.worker_id,
                WorkerId=decision.worker_id,
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
                self._call(
                    "ApproveAssignment",
                    None,
                    self.client.approve_assignment,
                    assignment=decision.answer_id,
                    AssignmentId=decision.answer_id,
                    **({"RequesterFeedback": decision.reason[:1024]} if decision.reason else {}),
                )
            else:
                self._call(
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
            status = self._call(
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
                self._call("DeleteHIT", hit_id, self.client.delete_hit, HITId=hit_id)
            except MTurkRequestError as error:
                # Answers still pending or unreviewed: MTurk keeps the HIT until they are done.
                logger.info("HIT %s kept: %s", hit_id, error.service_message)

    def expire(self, hit_id: str) -> bool:
        """Stop offering the HIT if it is still on offer; True if it was."""
        if self._get_hit(hit_id).get("HITStatus") not in ("Assignable", "Unassignable"):
            return False
        self._call(
            "UpdateExpirationForHIT",
            hit_id,
            self.client.update_expiration_for_hit,
            HITId=hit_id,
            ExpireAt=datetime(2015, 1, 1, tzinfo=UTC),  # a time in the past expires it at once
        )
        return True

    def _get_hit(self, hit_id: str) -> HITTypeDef:
        return self._call("GetHIT", hit_id, self.client.get_hit, HITId=hit_id)["HIT"]

    def hits(self) -> Iterator[HITTypeDef]:
        """Every HIT of the account (``ListHITs``, all pages)."""
        token: str | None = None
        while True:
            page = self._call(
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

    # ------------------------------------------------------------------ errors

    def _call(
        self,
        operation: str,
        hit_id: str | None,
        method: Callable[..., _T],
        *,
        item: str | None = None,
        worker: str | None = None,
        assignment: str | None = None,
        **params: Any,
    ) -> _T:
        """Call MTurk; its errors become ours, naming the operation and what it was about."""
        from botocore.exceptions import BotoCoreError, ClientError, ConnectionError, HTTPClientError

        about = [
            f"{name} {value}" if name != "item" else f"item {value!r}"
            for name, value in (
                ("HIT", hit_id),
                ("item", item),
                ("worker", worker),
                ("assignment", assignment),
            )
            if value
        ]
        where = f" ({', '.join(about)})" if about else ""
        try:
            return method(**params)
        except ClientError as error:
            response: Mapping[str, Any] = error.response
            code = str(response.get("Error", {}).get("Code", "Unknown"))
            message = str(response.get("Error", {}).get("Message", ""))
            meta = response.get("ResponseMetadata", {})
            status, attempts = int(meta.get("HTTPStatusCode", 0)), int(meta.get("RetryAttempts", 0)) + 1
            text = f"MTurk {operation}{where} failed: {code}: {message}"
            if code in THROTTLING_CODES or status >= 500:
                raise TransientCrowdError(
                    f"{text} (HTTP {status}, gave up after {attempts} attempts)"
                ) from error
            raise MTurkRequestError(
                text, code=code, turk_code=str(response.get("TurkErrorCode", "")), service_message=message
            ) from error
        except (ConnectionError, HTTPClientError) as error:
            raise TransientCrowdError(f"MTurk {operation}{where}: could not reach MTurk: {error}") from error
        except BotoCoreError as error:
            raise CrowdBackendError(f"MTurk {operation}{where}: {error}") from error
