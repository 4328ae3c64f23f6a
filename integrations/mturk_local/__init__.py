"""A local MTurk-compatible endpoint: MTurk's JSON protocol on 127.0.0.1 with simulated workers behind it.

- :mod:`.server` — the HTTP endpoint (request checks, the admin path) and its clock for a crowd;
- :mod:`.service` — the account: its clock, injected faults and the calls' dispatch;
- :mod:`.api` — the MTurk operations' handlers;
- :mod:`.schema` — the SQLite file and its tables;
- :mod:`.faults` — errors in MTurk's shape and injected failures;
- :mod:`.workers` — the simulated workers who take the assignments.
"""

from labelflow.integrations.mturk_local.faults import Faults, MTurkFault
from labelflow.integrations.mturk_local.server import EndpointClock, LocalMTurkServer, admin, validate_request
from labelflow.integrations.mturk_local.service import LocalMTurk
from labelflow.integrations.mturk_local.workers import form_answer, question_labels

__all__ = [
    "EndpointClock",
    "Faults",
    "LocalMTurk",
    "LocalMTurkServer",
    "MTurkFault",
    "admin",
    "form_answer",
    "question_labels",
    "validate_request",
]
