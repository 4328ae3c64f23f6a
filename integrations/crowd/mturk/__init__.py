"""Mechanical Turk as a crowd backend: config and fees, the HIT's form, qualifications, and the crowd itself.

- :mod:`.config` — the ``[crowd.mturk]`` section, endpoints, the boto3 client, fees and the 10-assignment rule;
- :mod:`.calls` — idempotency tokens and MTurk's errors as the crowd protocol's;
- :mod:`.forms` — the HIT page template workers see (an HTMLQuestion) and the answer document that comes back;
- :mod:`.pages` — each item's page from config, with its image inlined or hosted on S3;
- :mod:`.qualifications` — who may work: system qualifications and the blocking one;
- :mod:`.crowd` — :class:`MTurkCrowd`, the crowd protocol over those.
"""

from labelflow.integrations.crowd.mturk.calls import (
    THROTTLING_CODES,
    TOKEN_MAX,
    MTurkRequestError,
    call_mturk,
    request_token,
)
from labelflow.integrations.crowd.mturk.config import (
    FEE,
    FEE_LARGE_HIT,
    LARGE_HIT,
    LIVE_ENDPOINT,
    SANDBOX_ENDPOINT,
    LargeHitError,
    LiveOptInError,
    MTurkConfig,
    check_redundancy,
    crosses_large_hit,
    make_mturk_client,
    mturk_endpoint,
    mturk_fee,
)
from labelflow.integrations.crowd.mturk.crowd import ANNOTATION_MAX, HIT_ID, MTurkCrowd
from labelflow.integrations.crowd.mturk.forms import (
    ANSWER_FIELD,
    PREVIEW_ASSIGNMENT,
    QUESTION_MAX,
    form_answers,
    hit_page,
    item_html,
    page_of_question,
    parse_answer,
    question_xml,
)
from labelflow.integrations.crowd.mturk.pages import HitPages, ImageHost
from labelflow.integrations.crowd.mturk.qualifications import (
    APPROVAL_RATE_QUALIFICATION,
    APPROVED_HITS_QUALIFICATION,
    LOCALE_QUALIFICATION,
    find_or_create_blocked_qualification,
    qualification_requirements,
)

__all__ = [
    "ANNOTATION_MAX",
    "ANSWER_FIELD",
    "APPROVAL_RATE_QUALIFICATION",
    "APPROVED_HITS_QUALIFICATION",
    "FEE",
    "FEE_LARGE_HIT",
    "HIT_ID",
    "LARGE_HIT",
    "LIVE_ENDPOINT",
    "LOCALE_QUALIFICATION",
    "PREVIEW_ASSIGNMENT",
    "QUESTION_MAX",
    "SANDBOX_ENDPOINT",
    "THROTTLING_CODES",
    "TOKEN_MAX",
    "HitPages",
    "ImageHost",
    "LargeHitError",
    "LiveOptInError",
    "MTurkConfig",
    "MTurkCrowd",
    "MTurkRequestError",
    "call_mturk",
    "check_redundancy",
    "crosses_large_hit",
    "find_or_create_blocked_qualification",
    "form_answers",
    "hit_page",
    "item_html",
    "make_mturk_client",
    "mturk_endpoint",
    "mturk_fee",
    "page_of_question",
    "parse_answer",
    "qualification_requirements",
    "question_xml",
    "request_token",
]
