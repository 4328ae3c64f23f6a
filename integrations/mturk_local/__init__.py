"""A local MTurk-compatible endpoint: MTurk's JSON protocol on 127.0.0.1 with simulated workers behind it."""

from labelflow.integrations.mturk_local.server import EndpointClock, LocalMTurkServer, admin, validate_request
from labelflow.integrations.mturk_local.service import Faults, LocalMTurk, MTurkFault, crowd_form_answer

__all__ = [
    "EndpointClock",
    "Faults",
    "LocalMTurk",
    "LocalMTurkServer",
    "MTurkFault",
    "admin",
    "crowd_form_answer",
    "validate_request",
]
