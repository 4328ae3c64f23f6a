"""Errors in MTurk's shape, and the failures a test injects: throttling, server errors, malformed answers, slowness.

The injected faults live in the endpoint's meta table, so they survive a restart and every call sees the counts
the previous calls left.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from labelflow.integrations.mturk_local.schema import EndpointDatabase


class MTurkFault(Exception):
    """An error reply in MTurk's shape: ``__type`` (the error code), ``Message``, ``TurkErrorCode``."""

    def __init__(self, code: str, message: str, *, status: int = 400, turk_code: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.turk_code = turk_code

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"__type": self.code, "Message": self.message}
        if self.turk_code:
            body["TurkErrorCode"] = self.turk_code
        return body


def request_error(message: str, turk_code: str | None = None) -> MTurkFault:
    """MTurk's ``RequestError``: the service refused the request itself (not its shape)."""
    # MTurk ends its messages with the time in milliseconds, e.g. "... (1626172412406)".
    return MTurkFault("RequestError", f"{message} ({int(time.time() * 1000)})", turk_code=turk_code)


@dataclass
class Faults:
    """Fault injection. ``operations`` limits the faults to those operations (empty: every operation);
    ``after`` lets that many matching calls through first; ``server_errors`` < 0 means for ever."""

    throttle: int = 0
    server_errors: int = 0
    operations: tuple[str, ...] = ()
    after: int = 0
    malformed_answers: int = 0
    slow_factor: float = 1.0


def load_faults(db: EndpointDatabase) -> Faults:
    raw = json.loads(db.meta("faults", "{}"))
    raw["operations"] = tuple(raw.get("operations", ()))
    return Faults(**raw)


def save_faults(db: EndpointDatabase, faults: Faults) -> None:
    db.set_meta("faults", json.dumps({**faults.__dict__, "operations": list(faults.operations)}))


def take_fault(db: EndpointDatabase, operation: str) -> MTurkFault | None:
    """The injected error this call gets, if any (its counter already decremented)."""
    faults = load_faults(db)
    if faults.operations and operation not in faults.operations:
        return None
    if not (faults.throttle or faults.server_errors):
        return None
    if faults.after > 0:
        faults.after -= 1
        save_faults(db, faults)
        return None
    if faults.throttle > 0:
        faults.throttle -= 1
        save_faults(db, faults)
        db.count("fault:throttle")
        return MTurkFault("ThrottlingException", "Rate exceeded")
    if faults.server_errors > 0:
        faults.server_errors -= 1
        save_faults(db, faults)
    db.count("fault:server_error")
    return MTurkFault(
        "ServiceFault",
        "The request failed because of an internal error; try again later.",
        status=500,
        turk_code="AWS.ServiceUnavailable",
    )


def take_malformed_answer(db: EndpointDatabase) -> bool:
    """Whether the next simulated answer is to be cut off (its counter already decremented)."""
    faults = load_faults(db)
    if faults.malformed_answers <= 0:
        return False
    faults.malformed_answers -= 1
    save_faults(db, faults)
    db.count("fault:malformed_answer")
    return True
