"""The worker's side of the local MTurk endpoint: preview a HIT, accept an assignment, work on it in a browser,
submit it through ``/mturk/externalSubmit``.

It keeps MTurk's contract for HTMLQuestion HITs: the worker's page frames the HIT's own HTML with
``assignmentId``, ``hitId``, ``workerId`` and ``turkSubmitTo`` in its URL (``assignmentId`` is
``ASSIGNMENT_ID_NOT_AVAILABLE`` in preview); the form posts to ``<turkSubmitTo>/mturk/externalSubmit``; the
answer is stored as the QuestionFormAnswers document MTurk makes of the form's fields, and comes back through
``ListAssignmentsForHIT`` like any other. People work only on assignments no simulated worker has taken, so an
endpoint meant for them is started without simulated workers (``labelflow mturk-local --people``).
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from labelflow.integrations.crowd.mturk.forms import PREVIEW_ASSIGNMENT, form_answers, page_of_question
from labelflow.integrations.mturk_local.api import MTurkApi
from labelflow.integrations.mturk_local.schema import EndpointDatabase, new_id
from labelflow.integrations.mturk_local.workers import excluded_workers

ACCEPTED = "Accepted"

_FRAME_STYLE = (
    "body{margin:0;font:14px system-ui,sans-serif}"
    "header{display:flex;gap:16px;align-items:center;padding:8px 14px;background:#232f3e;color:#fff}"
    "header form{margin-left:auto}iframe{display:block;width:100%;height:calc(100vh - 44px);border:0}"
)


class WorkerError(Exception):
    """What a worker is told instead (no such HIT, nothing left to accept, not your assignment…)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class WorkerSite:
    """What a worker does on MTurk's site, over the endpoint's database and its requester operations."""

    def __init__(self, db: EndpointDatabase, api: MTurkApi) -> None:
        self.db = db
        self.api = api

    def _hit(self, hit_id: str) -> dict[str, Any]:
        row = self.db.execute("SELECT 1 FROM hits WHERE id = ?", (hit_id,)).fetchone()
        if row is None:
            raise WorkerError(f"There is no HIT {hit_id}.", status=404)
        hit: dict[str, Any] = self.api.get_hit({"HITId": hit_id})["HIT"]
        return hit

    def accept(self, hit_id: str, worker_id: str) -> str:
        """Give ``worker_id`` one of the HIT's open assignments; returns its id."""
        if not worker_id:
            raise WorkerError("A worker id is needed to accept a HIT.")
        hit = self._hit(hit_id)
        if hit["NumberOfAssignmentsAvailable"] < 1:
            raise WorkerError(f"HIT {hit_id} has no assignment left to accept (it is {hit['HITStatus']}).")
        if worker_id in excluded_workers(self.db, self.db.hit_type(hit["HITTypeId"])):
            raise WorkerError(f"Worker {worker_id} does not meet this HIT's qualification requirements.", 403)
        if self.db.execute(
            "SELECT 1 FROM assignments WHERE hit_id = ? AND worker_id = ?", (hit_id, worker_id)
        ).fetchone():
            raise WorkerError(f"Worker {worker_id} has already worked on HIT {hit_id}.")
        slot = self.db.execute("SELECT count(*) FROM assignments WHERE hit_id = ?", (hit_id,)).fetchone()[0]
        assignment_id = new_id("3")
        now = self.db.now()
        # submit_time holds the deadline until the worker submits.
        self.db.execute(
            "INSERT INTO assignments (id, hit_id, worker_id, slot, accept_time, submit_time, answer, status) "
            "VALUES (?, ?, ?, ?, ?, ?, '', ?)",
            (assignment_id, hit_id, worker_id, slot, now, now + hit["AssignmentDurationInSeconds"], ACCEPTED),
        )
        self.db.count("assignments_accepted")
        return assignment_id

    def _accepted(self, hit_id: str | None, assignment_id: str) -> Any:
        row = self.db.execute("SELECT * FROM assignments WHERE id = ?", (assignment_id,)).fetchone()
        if row is None or (hit_id is not None and row["hit_id"] != hit_id):
            of_hit = f" of HIT {hit_id}" if hit_id else ""
            raise WorkerError(f"There is no assignment {assignment_id}{of_hit}.", 404)
        if row["status"] != ACCEPTED:
            raise WorkerError(f"Assignment {assignment_id} was already submitted ({row['status']}).", 409)
        if self.db.now() > row["submit_time"]:
            raise WorkerError(f"Assignment {assignment_id} is past its deadline.", 410)
        return row

    def question_page(self, hit_id: str) -> str:
        """The HIT's own HTML, as MTurk serves it in the worker's frame."""
        self._hit(hit_id)
        question = self.db.execute("SELECT question FROM hits WHERE id = ?", (hit_id,)).fetchone()[0]
        return page_of_question(question)

    def frame_page(self, hit_id: str, assignment_id: str | None, worker_id: str, submit_to: str) -> str:
        """The worker's page: a bar with the HIT's title and reward (and Accept in preview) over a frame holding
        the HIT with MTurk's URL parameters."""
        hit = self._hit(hit_id)
        if assignment_id is None:
            params = {"assignmentId": PREVIEW_ASSIGNMENT, "hitId": hit_id}
            action = (
                f'<form method="post" action="/worker/{html.escape(hit_id)}/accept">'
                f'<input type="hidden" name="workerId" value="{html.escape(worker_id, quote=True)}">'
                f'<button id="accept" type="submit"{"" if worker_id else " disabled"}>Accept</button></form>'
            )
        else:
            worker_id = self._accepted(hit_id, assignment_id)["worker_id"]
            params = {
                "assignmentId": assignment_id,
                "hitId": hit_id,
                "workerId": worker_id,
                "turkSubmitTo": submit_to,
            }
            action = f"<span>Assignment {html.escape(assignment_id)}</span>"
        frame = html.escape(f"/worker/{hit_id}/question?{urlencode(params)}", quote=True)
        return (
            f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(hit["Title"])}'
            f" — local MTurk</title><style>{_FRAME_STYLE}</style></head><body><header>"
            f"<strong>{html.escape(hit['Title'])}</strong><span>Reward ${html.escape(hit['Reward'])}</span>"
            f"<span>{html.escape(worker_id) or 'preview'}</span>{action}</header>"
            f'<iframe id="hit-frame" title="HIT" src="{frame}"></iframe></body></html>'
        )

    def submit(self, fields: Mapping[str, str]) -> str:
        """Store a submitted form as its assignment's answer (status Submitted); returns the assignment id."""
        assignment_id = fields.get("assignmentId", "")
        if not assignment_id or assignment_id == PREVIEW_ASSIGNMENT:
            raise WorkerError("This HIT was not accepted: accept it before submitting.")
        self._accepted(None, assignment_id)
        self.db.execute(
            "UPDATE assignments SET answer = ?, submit_time = ?, status = 'Submitted' WHERE id = ?",
            (form_answers(fields), self.db.now(), assignment_id),
        )
        self.db.count("assignments_submitted")
        return assignment_id
