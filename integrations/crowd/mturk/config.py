"""Where the HITs go and what they cost: the ``[crowd.mturk]`` section, the endpoint, the client and MTurk's fees.

Every answer costs the reward plus MTurk's fee: 20 %, 40 % for HITs with 10 or more assignments. MTurk refuses to
take a HIT from under 10 assignments to 10 or more (the fee would change), so :func:`crosses_large_hit` is the one
place that rule is written; the crowd, the project config and the local endpoint all ask it.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Final

from pydantic import BaseModel, ConfigDict, Field, model_validator

from labelflow.integrations.crowd.base import CrowdBackendError

if TYPE_CHECKING:
    from mypy_boto3_mturk.client import MTurkClient

logger = logging.getLogger(__name__)

SANDBOX_ENDPOINT: Final = "https://mturk-requester-sandbox.us-east-1.amazonaws.com"
LIVE_ENDPOINT: Final = "https://mturk-requester.us-east-1.amazonaws.com"
FEE: Final = 0.20
FEE_LARGE_HIT: Final = 0.40
LARGE_HIT: Final = 10  # MaxAssignments from which the higher fee applies


class MTurkConfig(BaseModel):
    """The ``[crowd.mturk]`` section: where the HITs go, how they are listed, where large images are hosted.
    The reward per answer is ``crowd.reward_per_answer``; what the page says is the ``[task]`` section."""

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
    description: str = Field(
        "Look at one item and pick the label that fits it best.",
        description="HIT description in the HIT list (the page's title and instructions are in [task]).",
    )
    keywords: tuple[str, ...] = Field(("labeling", "classification"), description="HIT keywords.")
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
    image_bucket: str | None = Field(
        None,
        description="S3 bucket for images too large to inline in a HIT (MTurk takes 64 KB per question): they "
        "are uploaded there and shown through presigned links. Needed for local image files.",
    )
    image_prefix: str = Field("labelflow/hit-images/", description="Key prefix of the uploaded images.")
    image_bucket_region: str | None = Field(None, description="The bucket's region (unset: the AWS default).")
    s3_endpoint_url: str | None = Field(
        None, description="Override the S3 endpoint (an S3-compatible store, or moto's server in tests)."
    )

    @model_validator(mode="before")
    @classmethod
    def _moved_to_task(cls, data: object) -> object:
        if isinstance(data, dict):
            moved = sorted({"title", "instructions"} & set(data))
            if moved:
                raise ValueError(
                    f"crowd.mturk.{moved[0]} moved to the [task] section (task.title, task.instruction for "
                    "one line, task.instructions for full Markdown instructions)"
                )
        return data

    @model_validator(mode="after")
    def _local_needs_an_endpoint(self) -> MTurkConfig:
        if self.local and not self.endpoint_url:
            raise ValueError("local = true needs endpoint_url (the address `labelflow mturk-local` prints)")
        if self.local and self.live:
            raise ValueError("a local endpoint is never production: set live = false")
        return self


class LiveOptInError(CrowdBackendError):
    """Production MTurk was asked for on one side only (the config or the command line)."""


class LargeHitError(CrowdBackendError, ValueError):
    """Later waves would take HITs across MTurk's 10-assignment line. A ``ValueError`` too, so a config
    validator that raises it gives a validation error."""


def mturk_fee(max_assignments: int) -> float:
    """MTurk's commission on reward and bonus: 20 %, or 40 % on HITs with 10 or more assignments."""
    return FEE_LARGE_HIT if max_assignments >= LARGE_HIT else FEE


def crosses_large_hit(created: int, grown: int) -> bool:
    """Whether a HIT created with ``created`` assignments would have ``LARGE_HIT`` or more at ``grown``: MTurk
    refuses that growth."""
    return created < LARGE_HIT <= grown


def check_redundancy(redundancy: int, max_answers: int) -> None:
    """Raise :class:`LargeHitError` if adaptive waves would grow HITs created with ``redundancy`` assignments
    across MTurk's 10-assignment line on their way to ``max_answers``."""
    if crosses_large_hit(redundancy, max_answers):
        raise LargeHitError(
            f"crowd.max_answers = {max_answers} would take HITs created with {redundancy} assignments to "
            f"{LARGE_HIT} or more, which MTurk refuses; keep max_answers below {LARGE_HIT} or set "
            f"redundancy to {LARGE_HIT} or more (40 % fee)"
        )


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
