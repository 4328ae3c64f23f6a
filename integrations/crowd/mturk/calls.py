"""Calling MTurk: idempotency tokens, and MTurk's errors turned into the crowd protocol's own."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from typing import Any, Final, TypeVar

from labelflow.integrations.crowd.base import CrowdBackendError, TransientCrowdError

TOKEN_MAX: Final = 64
WORKER_PREFIX: Final = "mturk:"
# Error codes botocore's standard retry mode treats as throttling; once retries are used up they are still
# transient from our side (a later run may succeed).
THROTTLING_CODES: Final = frozenset(
    {"Throttling", "ThrottlingException", "ThrottledException", "RequestThrottledException",
     "TooManyRequestsException", "RequestLimitExceeded", "SlowDown", "ServiceUnavailableException"}
)  # fmt: skip

_T = TypeVar("_T")


class MTurkRequestError(CrowdBackendError):
    """MTurk refused a call; ``code`` is the error code, ``turk_code`` MTurk's own error code if given."""

    def __init__(self, message: str, *, code: str, turk_code: str, service_message: str) -> None:
        super().__init__(message)
        self.code = code
        self.turk_code = turk_code
        self.service_message = service_message


def worker_id(raw: str) -> str:
    """``mturk:<WorkerId>``, the worker as answers store it: people from two backends never merge."""
    return f"{WORKER_PREFIX}{raw}"


def raw_worker_id(worker: str) -> str:
    """The WorkerId MTurk's own calls need. A store made before the prefix keeps unprefixed ids: they pass
    through unchanged."""
    return worker.removeprefix(WORKER_PREFIX)


def request_token(kind: str, key: str) -> str:
    """A UniqueRequestToken (at most 64 characters) that is the same for the same request in every process."""
    digest = hashlib.blake2b(f"{kind}\x1f{key}".encode(), digest_size=20).hexdigest()
    return f"lf-{kind}-{digest}"[:TOKEN_MAX]


def call_mturk(
    operation: str,
    hit_id: str | None,
    method: Callable[..., _T],
    *,
    item: str | None = None,
    worker: str | None = None,
    assignment: str | None = None,
    **params: Any,
) -> _T:
    """Call MTurk (``method(**params)``); its errors become ours, naming the operation and what it was about.

    Throttling and server errors left after botocore's retries become :class:`TransientCrowdError`, other
    refusals :class:`MTurkRequestError`.
    """
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
            raise TransientCrowdError(f"{text} (HTTP {status}, gave up after {attempts} attempts)") from error
        raise MTurkRequestError(
            text, code=code, turk_code=str(response.get("TurkErrorCode", "")), service_message=message
        ) from error
    except (ConnectionError, HTTPClientError) as error:
        raise TransientCrowdError(f"MTurk {operation}{where}: could not reach MTurk: {error}") from error
    except BotoCoreError as error:
        raise CrowdBackendError(f"MTurk {operation}{where}: {error}") from error
