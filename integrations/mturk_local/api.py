"""The state and behaviour of the local MTurk endpoint: HITs, assignments, qualifications, money, workers.

Everything lives in one SQLite file, so a restarted endpoint loses nothing. Simulated workers (the worker models
of :mod:`~labelflow.integrations.crowd.simulated`) take a HIT's assignments when they are created: each assignment
gets its
worker, its answer and its accept/submit times at once, and becomes visible as time passes. Time is wall-clock
time plus an offset that the admin path advances (fast-forward) and that ``time_scale`` grows, so tests and
offline demos do not wait hours. The behaviour follows MTurk's documentation where our client depends on it:
idempotency tokens, the 10-assignment limit on extending a HIT, statuses, auto-approval, funds.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
import secrets
import sqlite3
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np

from labelflow.integrations.crowd.simulated import (
    SimulatedCrowdConfig,
    draw_answer,
    make_workers,
    stable_seed,
)

TOKEN_TTL: Final = 24 * 3600
LARGE_HIT: Final = 10
DEFAULT_BALANCE: Final = 10_000.0
DONE: Final = ("Submitted", "Approved", "Rejected")
QFA_NAMESPACE: Final = (
    "http://mechanicalturk.amazonaws.com/AWSMechanicalTurkDataSchemas/2005-10-01/QuestionFormAnswers.xsd"
)

SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, n INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS tokens (token TEXT PRIMARY KEY, ref TEXT NOT NULL, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS qualification_types (
    id TEXT PRIMARY KEY, name TEXT UNIQUE NOT NULL, description TEXT NOT NULL, status TEXT NOT NULL,
    created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS worker_qualifications (
    qualification_id TEXT NOT NULL, worker_id TEXT NOT NULL, value INTEGER NOT NULL,
    PRIMARY KEY (qualification_id, worker_id));
CREATE TABLE IF NOT EXISTS hit_types (id TEXT PRIMARY KEY, params TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS hits (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE NOT NULL, hit_type_id TEXT NOT NULL,
    max_assignments INTEGER NOT NULL, created REAL NOT NULL, expiration REAL NOT NULL, question TEXT NOT NULL,
    annotation TEXT, labels TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS assignments (
    id TEXT PRIMARY KEY, hit_id TEXT NOT NULL, worker_id TEXT NOT NULL, slot INTEGER NOT NULL,
    accept_time REAL NOT NULL, submit_time REAL NOT NULL, answer TEXT NOT NULL, status TEXT NOT NULL,
    decided_at REAL, feedback TEXT);
CREATE INDEX IF NOT EXISTS ix_assignments_hit ON assignments (hit_id);
CREATE TABLE IF NOT EXISTS bonuses (
    worker_id TEXT NOT NULL, assignment_id TEXT NOT NULL, amount REAL NOT NULL, reason TEXT NOT NULL,
    created REAL NOT NULL);
"""


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


def _request_error(message: str, turk_code: str | None = None) -> MTurkFault:
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


def _new_id(prefix: str = "3") -> str:
    """A 30-character upper-case id, like MTurk's HIT and assignment ids."""
    return (prefix + secrets.token_hex(15).upper())[:30]


def crowd_form_answer(label: str) -> str:
    """The QuestionFormAnswers document MTurk stores for a crowd-form with one crowd-classifier."""
    task_answers = json.dumps([{"label": {"label": label}}])
    return (
        f'<?xml version="1.0" encoding="ASCII"?><QuestionFormAnswers xmlns="{QFA_NAMESPACE}">'
        f"<Answer><QuestionIdentifier>taskAnswers</QuestionIdentifier>"
        f"<FreeText>{html.escape(task_answers, quote=False)}</FreeText></Answer></QuestionFormAnswers>"
    )


def question_labels(question: str) -> list[str]:
    """The label names of the crowd-classifier in an HTMLQuestion (what a worker would see)."""
    found = re.search(r'categories="([^"]*)"', question)
    if not found:
        return []
    try:
        labels = json.loads(html.unescape(found[1]))
    except json.JSONDecodeError:
        return []
    return [str(label) for label in labels] if isinstance(labels, list) else []


class LocalMTurk:
    """An MTurk requester account in a SQLite file, with simulated workers behind it.

    ``truth`` maps item ids (the HITs' RequesterAnnotation) to their true labels; workers answer other items at
    random. ``workers`` is the simulated crowd's config (worker mix, accuracy, latency, seed).
    """

    def __init__(
        self,
        db_path: Path,
        *,
        truth: Mapping[str, str] | None = None,
        workers: SimulatedCrowdConfig | None = None,
        time_scale: float = 1.0,
    ) -> None:
        self.db_path = Path(db_path)
        self.db_path.parent.mkdir(parents=True, exist_ok=True)
        self.truth = dict(truth or {})
        self.workers_config = workers or SimulatedCrowdConfig()
        self.time_scale = time_scale
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(str(self.db_path), check_same_thread=False, isolation_level=None)
        self._conn.row_factory = sqlite3.Row
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.executescript(SCHEMA)
        self._last_tick = time.time()
        self._operations: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
            "CreateHITType": self.create_hit_type,
            "CreateHITWithHITType": self.create_hit_with_hit_type,
            "GetHIT": self.get_hit,
            "ListHITs": self.list_hits,
            "CreateAdditionalAssignmentsForHIT": self.create_additional_assignments,
            "ListAssignmentsForHIT": self.list_assignments_for_hit,
            "GetAssignment": self.get_assignment,
            "ApproveAssignment": self.approve_assignment,
            "RejectAssignment": self.reject_assignment,
            "SendBonus": self.send_bonus,
            "CreateQualificationType": self.create_qualification_type,
            "ListQualificationTypes": self.list_qualification_types,
            "AssociateQualificationWithWorker": self.associate_qualification_with_worker,
            "UpdateExpirationForHIT": self.update_expiration,
            "DeleteHIT": self.delete_hit,
            "GetAccountBalance": self.get_account_balance,
        }

    @property
    def operations(self) -> list[str]:
        return sorted(self._operations)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    # ------------------------------------------------------------------ plumbing

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    def _meta(self, key: str, default: str) -> str:
        row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return str(row["value"]) if row else default

    def _set_meta(self, key: str, value: str) -> None:
        self._conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    def _count(self, name: str, n: int = 1) -> None:
        self._conn.execute(
            "INSERT INTO counters (name, n) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET n = n + ?",
            (name, n, n),
        )

    def now(self) -> float:
        """The endpoint's time (epoch seconds): wall-clock time plus the fast-forward offset."""
        with self._lock:
            return time.time() + float(self._meta("offset", "0"))

    def advance(self, seconds: float) -> float:
        """Fast-forward the endpoint's clock; returns the new time."""
        with self._lock, self._transaction():
            self._set_meta("offset", repr(float(self._meta("offset", "0")) + max(0.0, seconds)))
        return self.now()

    def _tick(self) -> None:
        # time_scale > 1 makes time run faster: the wall-clock time since the last request counts scale times.
        wall = time.time()
        if self.time_scale != 1.0:
            extra = (wall - self._last_tick) * (self.time_scale - 1.0)
            self._set_meta("offset", repr(float(self._meta("offset", "0")) + extra))
        self._last_tick = wall
        now = wall + float(self._meta("offset", "0"))
        self._conn.execute(
            "UPDATE assignments SET status = 'Submitted' WHERE status = 'Scheduled' AND submit_time <= ? "
            "AND accept_time < (SELECT expiration FROM hits WHERE hits.id = assignments.hit_id)",
            (now,),
        )
        self._conn.execute(
            "UPDATE assignments SET status = 'Approved', decided_at = submit_time + "
            "(SELECT json_extract(ht.params, '$.AutoApprovalDelayInSeconds') FROM hits h JOIN hit_types ht "
            " ON ht.id = h.hit_type_id WHERE h.id = assignments.hit_id) "
            "WHERE status = 'Submitted' AND submit_time + (SELECT json_extract(ht.params, "
            "'$.AutoApprovalDelayInSeconds') FROM hits h JOIN hit_types ht ON ht.id = h.hit_type_id "
            "WHERE h.id = assignments.hit_id) <= ?",
            (now,),
        )

    @property
    def faults(self) -> Faults:
        with self._lock:
            raw = json.loads(self._meta("faults", "{}"))
        raw["operations"] = tuple(raw.get("operations", ()))
        return Faults(**raw)

    def set_faults(self, faults: Faults) -> None:
        with self._lock, self._transaction():
            self._write_faults(faults)

    def _write_faults(self, faults: Faults) -> None:
        self._set_meta("faults", json.dumps({**faults.__dict__, "operations": list(faults.operations)}))

    def _take_fault(self, operation: str) -> MTurkFault | None:
        """The injected error this call gets, if any (its counter already decremented)."""
        faults = self.faults
        if faults.operations and operation not in faults.operations:
            return None
        if not (faults.throttle or faults.server_errors):
            return None
        if faults.after > 0:
            faults.after -= 1
            self._write_faults(faults)
            return None
        if faults.throttle > 0:
            faults.throttle -= 1
            self._write_faults(faults)
            self._count("fault:throttle")
            return MTurkFault("ThrottlingException", "Rate exceeded")
        if faults.server_errors > 0:
            faults.server_errors -= 1
            self._write_faults(faults)
        self._count("fault:server_error")
        return MTurkFault(
            "ServiceFault",
            "The request failed because of an internal error; try again later.",
            status=500,
            turk_code="AWS.ServiceUnavailable",
        )

    def counter(self, name: str) -> int:
        """One call counter, e.g. ``hits_created``, ``call:GetHIT``, ``reply:<error code>``, ``fault:throttle``."""
        return self.counters().get(name, 0)

    def counters(self) -> dict[str, int]:
        with self._lock:
            return {row["name"]: int(row["n"]) for row in self._conn.execute("SELECT name, n FROM counters")}

    def state(self) -> dict[str, Any]:
        """What a test asks the endpoint: its time, call counters, HITs, assignments by status, balance."""
        with self._lock, self._transaction():
            self._tick()
            statuses = {
                row["status"]: int(row["n"])
                for row in self._conn.execute("SELECT status, count(*) AS n FROM assignments GROUP BY status")
            }
            return {
                "now": self.now(),
                "counters": self.counters(),
                "hits": int(self._conn.execute("SELECT count(*) FROM hits").fetchone()[0]),
                "assignments": statuses,
                "balance": float(self._meta("balance", repr(DEFAULT_BALANCE))),
                "blocked": sorted(
                    row["worker_id"]
                    for row in self._conn.execute("SELECT worker_id FROM worker_qualifications")
                ),
                "faults": self.faults.__dict__,
            }

    def set_balance(self, dollars: float) -> None:
        with self._lock, self._transaction():
            self._set_meta("balance", repr(float(dollars)))

    def handle(self, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        """Run one (already validated) operation; raises :class:`MTurkFault` for an error reply."""
        method = self._operations.get(operation)
        if method is None:
            raise MTurkFault(
                "UnknownOperationException", f"the local endpoint does not implement {operation}"
            )
        with self._lock:
            try:
                with self._transaction():
                    # Calls and injected faults are counted even when the operation itself fails.
                    self._count(f"call:{operation}")
                    fault = self._take_fault(operation)
                if fault is not None:
                    raise fault
                with self._transaction():
                    self._tick()
                    return method(params)
            except MTurkFault as fault:
                with self._transaction():
                    self._count(f"reply:{fault.turk_code or fault.code}")
                raise

    # ------------------------------------------------------------------ money

    def _spend(self, dollars: float) -> None:
        balance = float(self._meta("balance", repr(DEFAULT_BALANCE)))
        if dollars > balance + 1e-9:
            raise _request_error(
                "This Requester has insufficient funds in their account to complete this transaction. "
                "Please visit https://requester.mturk.com/account to purchase more.",
                "AWS.MechanicalTurk.InsufficientFunds",
            )
        self._set_meta("balance", repr(round(balance - dollars, 6)))

    def get_account_balance(self, params: dict[str, Any]) -> dict[str, Any]:
        balance = float(self._meta("balance", repr(DEFAULT_BALANCE)))
        return {"AvailableBalance": f"{balance:.2f}", "OnHoldBalance": "0.00"}

    @staticmethod
    def _fee(max_assignments: int) -> float:
        return 0.40 if max_assignments >= LARGE_HIT else 0.20

    # ------------------------------------------------------------------ tokens

    def _seen_token(self, token: str | None) -> str | None:
        if not token:
            return None
        row = self._conn.execute(
            "SELECT ref FROM tokens WHERE token = ? AND created > ?", (token, self._now() - TOKEN_TTL)
        ).fetchone()
        return str(row["ref"]) if row else None

    def _remember_token(self, token: str | None, ref: str) -> None:
        if token:
            self._conn.execute(
                "INSERT OR REPLACE INTO tokens (token, ref, created) VALUES (?, ?, ?)",
                (token, ref, self._now()),
            )

    def _now(self) -> float:
        return time.time() + float(self._meta("offset", "0"))

    # ------------------------------------------------------------------ qualifications

    def create_qualification_type(self, params: dict[str, Any]) -> dict[str, Any]:
        name = params["Name"]
        if self._conn.execute("SELECT 1 FROM qualification_types WHERE name = ?", (name,)).fetchone():
            raise _request_error(
                "You have already created a QualificationType with this name. A QualificationType's name must "
                "be unique among all of the QualificationTypes created by the same user."
            )
        qualification_id = _new_id("3")
        self._conn.execute(
            "INSERT INTO qualification_types (id, name, description, status, created) VALUES (?, ?, ?, ?, ?)",
            (qualification_id, name, params["Description"], params["QualificationTypeStatus"], self._now()),
        )
        return {"QualificationType": self._qualification(qualification_id)}

    def _qualification(self, qualification_id: str) -> dict[str, Any]:
        row = self._conn.execute(
            "SELECT * FROM qualification_types WHERE id = ?", (qualification_id,)
        ).fetchone()
        return {
            "QualificationTypeId": row["id"],
            "CreationTime": row["created"],
            "Name": row["name"],
            "Description": row["description"],
            "QualificationTypeStatus": row["status"],
            "IsRequestable": False,
            "AutoGranted": False,
        }

    def list_qualification_types(self, params: dict[str, Any]) -> dict[str, Any]:
        query = str(params.get("Query", ""))
        rows = self._conn.execute("SELECT id, name FROM qualification_types ORDER BY created").fetchall()
        found = [self._qualification(r["id"]) for r in rows if query.lower() in r["name"].lower()]
        return {"NumResults": len(found), "QualificationTypes": found}

    def associate_qualification_with_worker(self, params: dict[str, Any]) -> dict[str, Any]:
        qualification_id = params["QualificationTypeId"]
        if not self._conn.execute(
            "SELECT 1 FROM qualification_types WHERE id = ?", (qualification_id,)
        ).fetchone():
            raise _request_error(f"QualificationType {qualification_id} does not exist.")
        self._conn.execute(
            "INSERT OR REPLACE INTO worker_qualifications (qualification_id, worker_id, value) VALUES (?, ?, ?)",
            (qualification_id, params["WorkerId"], int(params.get("IntegerValue", 1))),
        )
        return {}

    # ------------------------------------------------------------------ HITs

    def create_hit_type(self, params: dict[str, Any]) -> dict[str, Any]:
        if not re.fullmatch(r"\d+\.\d{2}", params["Reward"]):
            raise MTurkFault(
                "ParameterValidationError", f"Value ({params['Reward']}) for parameter Reward is invalid."
            )
        params = {"AutoApprovalDelayInSeconds": 2592000, **params}
        canonical = json.dumps(params, sort_keys=True)
        # MTurk returns the same HIT type for the same properties.
        hit_type_id = ("3" + hashlib.sha256(canonical.encode()).hexdigest().upper())[:30]
        self._conn.execute(
            "INSERT OR IGNORE INTO hit_types (id, params) VALUES (?, ?)", (hit_type_id, canonical)
        )
        return {"HITTypeId": hit_type_id}

    def create_hit_with_hit_type(self, params: dict[str, Any]) -> dict[str, Any]:
        token = params.get("UniqueRequestToken")
        existing = self._seen_token(token)
        if existing:
            raise _request_error(
                "There is already a HIT which exists with the same UniqueRequestToken as in your current "
                f"request. The HITId of the existing HIT is: {existing}.",
                "AWS.MechanicalTurk.HitAlreadyExists",
            )
        hit_type = self._conn.execute(
            "SELECT params FROM hit_types WHERE id = ?", (params["HITTypeId"],)
        ).fetchone()
        if hit_type is None:
            raise _request_error(f"HITType {params['HITTypeId']} does not exist.")
        max_assignments = int(params.get("MaxAssignments", 1))
        lifetime = int(params["LifetimeInSeconds"])
        if not 1 <= max_assignments <= 1_000_000_000 or not 30 <= lifetime <= 31_536_000:
            raise MTurkFault(
                "ParameterValidationError", "MaxAssignments or LifetimeInSeconds is out of range."
            )
        question = params.get("Question", "")
        try:
            ET.fromstring(question)
        except ET.ParseError:
            raise MTurkFault(
                "ParameterValidationError",
                "There was an error parsing the XML question or answer data in your request. Please make sure "
                "the data is well-formed and validates against the appropriate schema.",
            ) from None
        reward = float(json.loads(hit_type["params"])["Reward"])
        self._spend(reward * max_assignments * (1 + self._fee(max_assignments)))
        hit_id = _new_id("3")
        now = self._now()
        self._conn.execute(
            "INSERT INTO hits (id, hit_type_id, max_assignments, created, expiration, question, annotation, labels) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                hit_id,
                params["HITTypeId"],
                max_assignments,
                now,
                now + lifetime,
                question,
                params.get("RequesterAnnotation"),
                json.dumps(question_labels(question)),
            ),
        )
        self._remember_token(token, hit_id)
        self._count("hits_created")
        self._schedule(hit_id, 0, max_assignments, now)
        return {"HIT": self._hit(hit_id)}

    def _hit_row(self, hit_id: str) -> sqlite3.Row:
        row: sqlite3.Row | None = self._conn.execute("SELECT * FROM hits WHERE id = ?", (hit_id,)).fetchone()
        if row is None:
            raise _request_error(f"Hit {hit_id} does not exist.", "AWS.MechanicalTurk.HITDoesNotExist")
        return row

    def _hit(self, hit_id: str) -> dict[str, Any]:
        row = self._hit_row(hit_id)
        hit_type = json.loads(
            self._conn.execute("SELECT params FROM hit_types WHERE id = ?", (row["hit_type_id"],)).fetchone()[
                0
            ]
        )
        now = self._now()
        counts = {status: 0 for status in (*DONE, "Pending")}
        for a in self._conn.execute(
            "SELECT status, accept_time FROM assignments WHERE hit_id = ? AND accept_time < ?",
            (hit_id, row["expiration"]),
        ):
            if a["status"] in DONE:
                counts[a["status"]] += 1
            elif a["accept_time"] <= now:
                counts["Pending"] += 1
        taken = sum(counts[s] for s in DONE) + counts["Pending"]
        expired = now >= row["expiration"]
        available = 0 if expired else max(0, row["max_assignments"] - taken)
        if available:
            status = "Assignable"
        elif counts["Pending"]:
            status = "Unassignable"
        else:
            status = "Reviewable"
        hit: dict[str, Any] = {
            "HITId": row["id"],
            "HITTypeId": row["hit_type_id"],
            "HITGroupId": row["hit_type_id"],
            "CreationTime": row["created"],
            "Title": hit_type["Title"],
            "Description": hit_type["Description"],
            "Question": row["question"],
            "HITStatus": status,
            "MaxAssignments": row["max_assignments"],
            "Reward": hit_type["Reward"],
            "AutoApprovalDelayInSeconds": hit_type["AutoApprovalDelayInSeconds"],
            "Expiration": row["expiration"],
            "AssignmentDurationInSeconds": hit_type["AssignmentDurationInSeconds"],
            "QualificationRequirements": hit_type.get("QualificationRequirements", []),
            "HITReviewStatus": "NotReviewed",
            "NumberOfAssignmentsPending": counts["Pending"],
            "NumberOfAssignmentsAvailable": available,
            "NumberOfAssignmentsCompleted": counts["Approved"] + counts["Rejected"],
        }
        if hit_type.get("Keywords"):
            hit["Keywords"] = hit_type["Keywords"]
        if row["annotation"] is not None:
            hit["RequesterAnnotation"] = row["annotation"]
        return hit

    def get_hit(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"HIT": self._hit(params["HITId"])}

    def list_hits(self, params: dict[str, Any]) -> dict[str, Any]:
        ids = [row["id"] for row in self._conn.execute("SELECT id FROM hits ORDER BY seq")]
        page, token = self._page(ids, params, default_size=10)
        return {"NumResults": len(page), "HITs": [self._hit(i) for i in page], **token}

    @staticmethod
    def _page(
        values: list[str], params: dict[str, Any], *, default_size: int
    ) -> tuple[list[str], dict[str, str]]:
        size = int(params.get("MaxResults", default_size))
        if not 1 <= size <= 100:
            raise MTurkFault(
                "ParameterValidationError", f"Value ({size}) for parameter MaxResults is invalid."
            )
        start = 0
        if params.get("NextToken"):
            try:
                start = int(json.loads(base64.b64decode(params["NextToken"]))["offset"])
            except (ValueError, KeyError, TypeError):
                raise MTurkFault("ParameterValidationError", "The NextToken is invalid.") from None
        page = values[start : start + size]
        more = start + size < len(values)
        next_token = base64.b64encode(json.dumps({"offset": start + size}).encode()).decode()
        return page, ({"NextToken": next_token} if more else {})

    def create_additional_assignments(self, params: dict[str, Any]) -> dict[str, Any]:
        token = params.get("UniqueRequestToken")
        if self._seen_token(token):
            raise _request_error(f'The idempotency token "{token}" has already been processed.')
        row = self._hit_row(params["HITId"])
        extra = int(params["NumberOfAdditionalAssignments"])
        if extra < 1:
            raise MTurkFault("ParameterValidationError", "NumberOfAdditionalAssignments must be at least 1.")
        before = int(row["max_assignments"])
        if before < LARGE_HIT <= before + extra:
            raise _request_error(
                f"HITs created with fewer than {LARGE_HIT} assignments cannot be extended to have {LARGE_HIT} "
                "or more assignments.",
                "AWS.MechanicalTurk.InvalidMaximumAssignmentsIncrease",
            )
        reward = float(self._hit(row["id"])["Reward"])
        self._spend(reward * extra * (1 + self._fee(before + extra)))
        self._conn.execute("UPDATE hits SET max_assignments = ? WHERE id = ?", (before + extra, row["id"]))
        self._remember_token(token, row["id"])
        self._count("assignments_added", extra)
        self._schedule(row["id"], before, extra, self._now())
        return {}

    def update_expiration(self, params: dict[str, Any]) -> dict[str, Any]:
        row = self._hit_row(params["HITId"])
        expire_at = (
            max(float(params["ExpireAt"]), self._now()) if params["ExpireAt"] is not None else self._now()
        )
        self._conn.execute("UPDATE hits SET expiration = ? WHERE id = ?", (expire_at, row["id"]))
        return {}

    def delete_hit(self, params: dict[str, Any]) -> dict[str, Any]:
        hit = self._hit(params["HITId"])
        unreviewed = self._conn.execute(
            "SELECT count(*) FROM assignments WHERE hit_id = ? AND status = 'Submitted'", (hit["HITId"],)
        ).fetchone()[0]
        if hit["HITStatus"] != "Reviewable" or unreviewed:
            raise _request_error(
                f"This HIT is currently in the state '{hit['HITStatus']}' with {unreviewed} submitted "
                "assignment(s) not yet reviewed. This operation can be called with a status of: Reviewable, "
                "once every submitted assignment is approved or rejected."
            )
        self._conn.execute("DELETE FROM assignments WHERE hit_id = ?", (hit["HITId"],))
        self._conn.execute("DELETE FROM hits WHERE id = ?", (hit["HITId"],))
        self._count("hits_deleted")
        return {}

    # ------------------------------------------------------------------ simulated workers

    def _schedule(self, hit_id: str, first_slot: int, n: int, start: float) -> None:
        """Give ``n`` new assignments of the HIT to simulated workers, with their answers and timing."""
        row = self._hit_row(hit_id)
        labels = json.loads(row["labels"]) or ["?"]
        config = self.workers_config
        workers = make_workers(config, len(labels))
        hit_type = json.loads(
            self._conn.execute("SELECT params FROM hit_types WHERE id = ?", (row["hit_type_id"],)).fetchone()[
                0
            ]
        )
        excluded = self._excluded_workers(hit_type)
        busy = {
            r["worker_id"]
            for r in self._conn.execute("SELECT worker_id FROM assignments WHERE hit_id = ?", (hit_id,))
        }
        order = np.random.default_rng(stable_seed(config.seed, hit_id)).permutation(len(workers))
        eligible = [
            (worker_id, workers[i])
            for i in order
            if (worker_id := f"ASIMW{i:05d}") not in excluded and worker_id not in busy
        ][:n]
        true_label = self.truth.get(row["annotation"] or "")
        duration = float(hit_type["AssignmentDurationInSeconds"])
        faults = self.faults
        for offset, (worker_id, worker) in enumerate(eligible):
            slot = first_slot + offset
            rng = np.random.default_rng(stable_seed(config.seed, hit_id, slot))
            delay = float(rng.exponential(config.mean_latency_minutes * 60)) * faults.slow_factor
            working = min(delay / 2, duration * 0.9)
            if true_label in labels:
                code = draw_answer(worker, labels.index(true_label), len(labels), rng)
            else:
                code = int(rng.integers(len(labels)))
            answer = crowd_form_answer(labels[code])
            if faults.malformed_answers > 0:
                faults.malformed_answers -= 1
                self._write_faults(faults)
                answer = answer[: len(answer) // 2]  # cut off mid-document: not well-formed XML
                self._count("fault:malformed_answer")
            self._conn.execute(
                "INSERT INTO assignments (id, hit_id, worker_id, slot, accept_time, submit_time, answer, status) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, 'Scheduled')",
                (_new_id("3"), hit_id, worker_id, slot, start + delay - working, start + delay, answer),
            )

    def _excluded_workers(self, hit_type: dict[str, Any]) -> set[str]:
        """Workers a DoesNotExist requirement keeps out. Simulated workers meet every system qualification."""
        excluded: set[str] = set()
        for requirement in hit_type.get("QualificationRequirements", []):
            if requirement.get("Comparator") == "DoesNotExist":
                excluded.update(
                    r["worker_id"]
                    for r in self._conn.execute(
                        "SELECT worker_id FROM worker_qualifications WHERE qualification_id = ?",
                        (requirement["QualificationTypeId"],),
                    )
                )
        return excluded

    # ------------------------------------------------------------------ assignments

    def _assignment(self, row: sqlite3.Row) -> dict[str, Any]:
        hit_type = json.loads(
            self._conn.execute(
                "SELECT ht.params FROM hits h JOIN hit_types ht ON ht.id = h.hit_type_id WHERE h.id = ?",
                (row["hit_id"],),
            ).fetchone()[0]
        )
        assignment: dict[str, Any] = {
            "AssignmentId": row["id"],
            "WorkerId": row["worker_id"],
            "HITId": row["hit_id"],
            "AssignmentStatus": row["status"],
            "AutoApprovalTime": row["submit_time"] + hit_type["AutoApprovalDelayInSeconds"],
            "AcceptTime": row["accept_time"],
            "SubmitTime": row["submit_time"],
            "Deadline": row["accept_time"] + hit_type["AssignmentDurationInSeconds"],
            "Answer": row["answer"],
        }
        if row["status"] == "Approved":
            assignment["ApprovalTime"] = row["decided_at"]
        if row["status"] == "Rejected":
            assignment["RejectionTime"] = row["decided_at"]
        if row["feedback"]:
            assignment["RequesterFeedback"] = row["feedback"]
        return assignment

    def list_assignments_for_hit(self, params: dict[str, Any]) -> dict[str, Any]:
        self._hit_row(params["HITId"])
        statuses = params.get("AssignmentStatuses") or list(DONE)
        rows = {
            r["id"]: r
            for r in self._conn.execute(
                f"SELECT * FROM assignments WHERE hit_id = ? AND status IN ({','.join('?' * len(statuses))}) "
                "ORDER BY submit_time, id",
                (params["HITId"], *statuses),
            )
        }
        page, token = self._page(list(rows), params, default_size=10)
        self._count("assignments_listed", len(page))
        return {"NumResults": len(page), "Assignments": [self._assignment(rows[i]) for i in page], **token}

    def _assignment_row(self, assignment_id: str) -> sqlite3.Row:
        row: sqlite3.Row | None = self._conn.execute(
            "SELECT * FROM assignments WHERE id = ? AND status != 'Scheduled'", (assignment_id,)
        ).fetchone()
        if row is None:
            raise _request_error(f"Assignment {assignment_id} does not exist.")
        return row

    def get_assignment(self, params: dict[str, Any]) -> dict[str, Any]:
        row = self._assignment_row(params["AssignmentId"])
        return {"Assignment": self._assignment(row), "HIT": self._hit(row["hit_id"])}

    def _decide(
        self, assignment_id: str, status: str, feedback: str | None, *, allowed: tuple[str, ...]
    ) -> None:
        row = self._assignment_row(assignment_id)
        if row["status"] not in allowed:
            raise _request_error(
                f"This operation can be called with a status of: {', '.join(allowed)}; assignment "
                f"{assignment_id} is {row['status']}."
            )
        self._conn.execute(
            "UPDATE assignments SET status = ?, decided_at = ?, feedback = ? WHERE id = ?",
            (status, self._now(), feedback, assignment_id),
        )
        self._count(f"assignments_{status.lower()}")

    def approve_assignment(self, params: dict[str, Any]) -> dict[str, Any]:
        allowed = ("Submitted", "Rejected") if params.get("OverrideRejection") else ("Submitted",)
        self._decide(params["AssignmentId"], "Approved", params.get("RequesterFeedback"), allowed=allowed)
        return {}

    def reject_assignment(self, params: dict[str, Any]) -> dict[str, Any]:
        self._decide(params["AssignmentId"], "Rejected", params["RequesterFeedback"], allowed=("Submitted",))
        return {}

    def send_bonus(self, params: dict[str, Any]) -> dict[str, Any]:
        token = params.get("UniqueRequestToken")
        if self._seen_token(token):
            raise _request_error(f'The idempotency token "{token}" has already been processed.')
        row = self._assignment_row(params["AssignmentId"])
        if row["worker_id"] != params["WorkerId"]:
            raise _request_error(f"Assignment {row['id']} was not done by worker {params['WorkerId']}.")
        if not re.fullmatch(r"\d+\.\d{2}", params["BonusAmount"]):
            raise MTurkFault(
                "ParameterValidationError",
                f"Value ({params['BonusAmount']}) for parameter BonusAmount is invalid.",
            )
        amount = float(params["BonusAmount"])
        self._spend(amount * 1.2)
        self._conn.execute(
            "INSERT INTO bonuses (worker_id, assignment_id, amount, reason, created) VALUES (?, ?, ?, ?, ?)",
            (params["WorkerId"], row["id"], amount, params["Reason"], self._now()),
        )
        self._remember_token(token, row["id"])
        self._count("bonuses_sent")
        return {}
