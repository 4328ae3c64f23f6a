"""The local MTurk endpoint's request handlers: MTurk's operations on HITs, assignments, qualifications, money.

The behaviour follows MTurk's documentation where our client depends on it: idempotency tokens, the
10-assignment limit on extending a HIT, statuses, auto-approval, funds. Each handler takes the (already validated)
request parameters and returns the reply, or raises :class:`~.faults.MTurkFault` for an error reply; the caller
holds the endpoint's lock and a transaction around it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import sqlite3
import xml.etree.ElementTree as ET
from collections.abc import Callable
from typing import Any, Final

from labelflow.integrations.crowd.mturk.config import FEE, LARGE_HIT, crosses_large_hit, mturk_fee
from labelflow.integrations.mturk_local.faults import MTurkFault, request_error
from labelflow.integrations.mturk_local.schema import EndpointDatabase, new_id
from labelflow.integrations.mturk_local.workers import SimulatedWorkers, question_labels

TOKEN_TTL: Final = 24 * 3600
DONE: Final = ("Submitted", "Approved", "Rejected")


class MTurkApi:
    """MTurk's requester operations over the endpoint's database, with ``workers`` taking new assignments
    (None: they wait for people, who take them on the endpoint's worker pages)."""

    def __init__(self, db: EndpointDatabase, workers: SimulatedWorkers | None) -> None:
        self.db = db
        self.workers = workers
        self.operations: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
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

    # ------------------------------------------------------------------ money

    def _spend(self, dollars: float) -> None:
        balance = self.db.balance()
        if dollars > balance + 1e-9:
            raise request_error(
                "This Requester has insufficient funds in their account to complete this transaction. "
                "Please visit https://requester.mturk.com/account to purchase more.",
                "AWS.MechanicalTurk.InsufficientFunds",
            )
        self.db.set_balance(round(balance - dollars, 6))

    def get_account_balance(self, params: dict[str, Any]) -> dict[str, Any]:
        balance = self.db.balance()
        return {"AvailableBalance": f"{balance:.2f}", "OnHoldBalance": "0.00"}

    # ------------------------------------------------------------------ tokens

    def _seen_token(self, token: str | None) -> str | None:
        if not token:
            return None
        row = self.db.execute(
            "SELECT ref FROM tokens WHERE token = ? AND created > ?", (token, self.db.now() - TOKEN_TTL)
        ).fetchone()
        return str(row["ref"]) if row else None

    def _remember_token(self, token: str | None, ref: str) -> None:
        if token:
            self.db.execute(
                "INSERT OR REPLACE INTO tokens (token, ref, created) VALUES (?, ?, ?)",
                (token, ref, self.db.now()),
            )

    # ------------------------------------------------------------------ qualifications

    def create_qualification_type(self, params: dict[str, Any]) -> dict[str, Any]:
        name = params["Name"]
        if self.db.execute("SELECT 1 FROM qualification_types WHERE name = ?", (name,)).fetchone():
            raise request_error(
                "You have already created a QualificationType with this name. A QualificationType's name must "
                "be unique among all of the QualificationTypes created by the same user."
            )
        qualification_id = new_id("3")
        self.db.execute(
            "INSERT INTO qualification_types (id, name, description, status, created) VALUES (?, ?, ?, ?, ?)",
            (qualification_id, name, params["Description"], params["QualificationTypeStatus"], self.db.now()),
        )
        return {"QualificationType": self._qualification(qualification_id)}

    def _qualification(self, qualification_id: str) -> dict[str, Any]:
        row = self.db.execute(
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
        rows = self.db.execute("SELECT id, name FROM qualification_types ORDER BY created").fetchall()
        found = [self._qualification(r["id"]) for r in rows if query.lower() in r["name"].lower()]
        return {"NumResults": len(found), "QualificationTypes": found}

    def associate_qualification_with_worker(self, params: dict[str, Any]) -> dict[str, Any]:
        qualification_id = params["QualificationTypeId"]
        if not self.db.execute(
            "SELECT 1 FROM qualification_types WHERE id = ?", (qualification_id,)
        ).fetchone():
            raise request_error(f"QualificationType {qualification_id} does not exist.")
        self.db.execute(
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
        self.db.execute(
            "INSERT OR IGNORE INTO hit_types (id, params) VALUES (?, ?)", (hit_type_id, canonical)
        )
        return {"HITTypeId": hit_type_id}

    def create_hit_with_hit_type(self, params: dict[str, Any]) -> dict[str, Any]:
        token = params.get("UniqueRequestToken")
        existing = self._seen_token(token)
        if existing:
            raise request_error(
                "There is already a HIT which exists with the same UniqueRequestToken as in your current "
                f"request. The HITId of the existing HIT is: {existing}.",
                "AWS.MechanicalTurk.HitAlreadyExists",
            )
        hit_type = self.db.execute(
            "SELECT params FROM hit_types WHERE id = ?", (params["HITTypeId"],)
        ).fetchone()
        if hit_type is None:
            raise request_error(f"HITType {params['HITTypeId']} does not exist.")
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
        self._spend(reward * max_assignments * (1 + mturk_fee(max_assignments)))
        hit_id = new_id("3")
        now = self.db.now()
        self.db.execute(
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
        self.db.count("hits_created")
        if self.workers is not None:
            self.workers.schedule(self.db, self._hit_row(hit_id), 0, max_assignments, now)
        return {"HIT": self._hit(hit_id)}

    def _hit_row(self, hit_id: str) -> sqlite3.Row:
        row: sqlite3.Row | None = self.db.execute("SELECT * FROM hits WHERE id = ?", (hit_id,)).fetchone()
        if row is None:
            raise request_error(f"Hit {hit_id} does not exist.", "AWS.MechanicalTurk.HITDoesNotExist")
        return row

    def _hit(self, hit_id: str) -> dict[str, Any]:
        row = self._hit_row(hit_id)
        hit_type = self.db.hit_type(row["hit_type_id"])
        now = self.db.now()
        counts = {status: 0 for status in (*DONE, "Pending")}
        for a in self.db.execute(
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
        ids = [row["id"] for row in self.db.execute("SELECT id FROM hits ORDER BY seq")]
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
            raise request_error(f'The idempotency token "{token}" has already been processed.')
        row = self._hit_row(params["HITId"])
        extra = int(params["NumberOfAdditionalAssignments"])
        if extra < 1:
            raise MTurkFault("ParameterValidationError", "NumberOfAdditionalAssignments must be at least 1.")
        before = int(row["max_assignments"])
        if crosses_large_hit(before, before + extra):
            raise request_error(
                f"HITs created with fewer than {LARGE_HIT} assignments cannot be extended to have {LARGE_HIT} "
                "or more assignments.",
                "AWS.MechanicalTurk.InvalidMaximumAssignmentsIncrease",
            )
        reward = float(self._hit(row["id"])["Reward"])
        self._spend(reward * extra * (1 + mturk_fee(before + extra)))
        self.db.execute("UPDATE hits SET max_assignments = ? WHERE id = ?", (before + extra, row["id"]))
        self._remember_token(token, row["id"])
        self.db.count("assignments_added", extra)
        if self.workers is not None:
            self.workers.schedule(self.db, row, before, extra, self.db.now())
        return {}

    def update_expiration(self, params: dict[str, Any]) -> dict[str, Any]:
        row = self._hit_row(params["HITId"])
        expire_at = (
            max(float(params["ExpireAt"]), self.db.now()) if params["ExpireAt"] is not None else self.db.now()
        )
        self.db.execute("UPDATE hits SET expiration = ? WHERE id = ?", (expire_at, row["id"]))
        return {}

    def delete_hit(self, params: dict[str, Any]) -> dict[str, Any]:
        hit = self._hit(params["HITId"])
        unreviewed = self.db.execute(
            "SELECT count(*) FROM assignments WHERE hit_id = ? AND status = 'Submitted'", (hit["HITId"],)
        ).fetchone()[0]
        if hit["HITStatus"] != "Reviewable" or unreviewed:
            raise request_error(
                f"This HIT is currently in the state '{hit['HITStatus']}' with {unreviewed} submitted "
                "assignment(s) not yet reviewed. This operation can be called with a status of: Reviewable, "
                "once every submitted assignment is approved or rejected."
            )
        self.db.execute("DELETE FROM assignments WHERE hit_id = ?", (hit["HITId"],))
        self.db.execute("DELETE FROM hits WHERE id = ?", (hit["HITId"],))
        self.db.count("hits_deleted")
        return {}

    # ------------------------------------------------------------------ assignments

    def _assignment(self, row: sqlite3.Row) -> dict[str, Any]:
        hit_type = json.loads(
            self.db.execute(
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
            for r in self.db.execute(
                f"SELECT * FROM assignments WHERE hit_id = ? AND status IN ({','.join('?' * len(statuses))}) "
                "ORDER BY submit_time, id",
                (params["HITId"], *statuses),
            )
        }
        page, token = self._page(list(rows), params, default_size=10)
        self.db.count("assignments_listed", len(page))
        return {"NumResults": len(page), "Assignments": [self._assignment(rows[i]) for i in page], **token}

    def _assignment_row(self, assignment_id: str) -> sqlite3.Row:
        row: sqlite3.Row | None = self.db.execute(
            "SELECT * FROM assignments WHERE id = ? AND status != 'Scheduled'", (assignment_id,)
        ).fetchone()
        if row is None:
            raise request_error(f"Assignment {assignment_id} does not exist.")
        return row

    def get_assignment(self, params: dict[str, Any]) -> dict[str, Any]:
        row = self._assignment_row(params["AssignmentId"])
        return {"Assignment": self._assignment(row), "HIT": self._hit(row["hit_id"])}

    def _decide(
        self, assignment_id: str, status: str, feedback: str | None, *, allowed: tuple[str, ...]
    ) -> None:
        row = self._assignment_row(assignment_id)
        if row["status"] not in allowed:
            raise request_error(
                f"This operation can be called with a status of: {', '.join(allowed)}; assignment "
                f"{assignment_id} is {row['status']}."
            )
        self.db.execute(
            "UPDATE assignments SET status = ?, decided_at = ?, feedback = ? WHERE id = ?",
            (status, self.db.now(), feedback, assignment_id),
        )
        self.db.count(f"assignments_{status.lower()}")

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
            raise request_error(f'The idempotency token "{token}" has already been processed.')
        row = self._assignment_row(params["AssignmentId"])
        if row["worker_id"] != params["WorkerId"]:
            raise request_error(f"Assignment {row['id']} was not done by worker {params['WorkerId']}.")
        if not re.fullmatch(r"\d+\.\d{2}", params["BonusAmount"]):
            raise MTurkFault(
                "ParameterValidationError",
                f"Value ({params['BonusAmount']}) for parameter BonusAmount is invalid.",
            )
        amount = float(params["BonusAmount"])
        self._spend(amount * (1 + FEE))
        self.db.execute(
            "INSERT INTO bonuses (worker_id, assignment_id, amount, reason, created) VALUES (?, ?, ?, ?, ?)",
            (params["WorkerId"], row["id"], amount, params["Reason"], self.db.now()),
        )
        self._remember_token(token, row["id"])
        self.db.count("bonuses_sent")
        return {}
