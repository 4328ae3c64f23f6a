"""The events labelflow emits, so users can chain their own flows and automations on them.

- ``labelflow.data.arrived``: a file was ingested (or quarantined); one per file.
- ``labelflow.pool.grew``: pool items were added; carries how many since the last round started, and the
  resource label ``labelflow.threshold-reached`` = "true" once that reaches ``inbox.round_after_items``.
- ``labelflow.answers.arrived``: Label Studio called the webhook receiver about a new or edited annotation (its
  project, task, annotation and worker in the payload); a served round's collector runs on it.
- ``labelflow.round.completed`` (with the round's figures) and ``labelflow.round.failed`` (with the error).

Every event's resource is the project (``labelflow.project.<name>``), labelled ``labelflow.project``.
"""

from __future__ import annotations

from typing import Any

from prefect.events import emit_event

DATA_ARRIVED = "labelflow.data.arrived"
POOL_GREW = "labelflow.pool.grew"
ANSWERS_ARRIVED = "labelflow.answers.arrived"
ROUND_COMPLETED = "labelflow.round.completed"
ROUND_FAILED = "labelflow.round.failed"
THRESHOLD_LABEL = "labelflow.threshold-reached"


def project_resource(project: str, **labels: str) -> dict[str, str]:
    return {"prefect.resource.id": f"labelflow.project.{project}", "labelflow.project": project, **labels}


def emit(event: str, project: str, payload: dict[str, Any], **labels: str) -> None:
    emit_event(event=event, resource=project_resource(project, **labels), payload=payload)
