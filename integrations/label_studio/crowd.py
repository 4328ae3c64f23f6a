"""Label Studio as a crowd backend: a team's own annotators answer in the tool they know.

How the crowd protocol maps onto Label Studio:

- **the project** — one Label Studio project per labelflow project, found by title or created once, its
  labeling config generated from the labels and the data kind. A project whose config no longer asks for
  exactly our labels (edited by hand) is refused with the config to restore.
- **publish, wave 1** — one task per (round, item), carrying ``labelflow_task`` = ``round/item`` in its data.
  The project's tasks are listed first and only the missing ones imported, so a rerun after a crash imports
  nothing twice. Gold items are ordinary tasks: annotators cannot tell them apart.
- **publish, later waves** — the same task, its ``overlap`` raised to every answer bought for the item so far:
  Label Studio's queue only offers a task to annotators who have not annotated it, so a later wave never goes
  to someone who already answered. The overlap is set, not added to, so a rerun changes nothing.
- **poll** — the task's annotations, oldest first. Skipped (cancelled) ones are no answer. The others fill the
  waves' slots in order (wave 1 the first ``n``, wave 2 the next ones), as redundancy is enforced here, not by
  Label Studio (which accepts any number of annotations through the API or the data manager). Each annotation
  is an answer ``ls-<annotation id>`` by worker ``ls:<user id>``; an edited one comes back as a new answer
  (``ls-<id>@<updated_at>``), and the latest answer of a worker on an item is the one that counts. A second
  annotation by the same annotator on a task, an annotation beyond what was asked, one from a blocked
  annotator, or one without exactly one of the project's labels is stored as a rejected answer with the reason.
- **review** — blocking removes the annotator from the organization (Label Studio's community edition has no
  per-project membership) and rejects their later annotations; approve, reject and bonus have no Label Studio
  counterpart (the internal cost is fixed per answer).
- **webhook** — with ``webhook_url`` configured, publishing first makes sure the project has one webhook to it
  for new and edited annotations, carrying the shared secret in its header (created once, corrected if
  changed); the receiver (:mod:`.webhooks`) turns each call into a Prefect event that resumes a served round.
- **close** — tasks of the handles that got no answer are deleted; a task with fewer answers than asked gets its
  overlap lowered to what it has, so the queue stops offering it.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from labelflow.integrations.crowd.base import (
    Clock,
    CrowdAnswer,
    CrowdBackendError,
    Handle,
    LabelRequest,
    RealClock,
    Review,
    ReviewAction,
    slot_starts,
)
from labelflow.integrations.label_studio.client import LabelStudioClient, LabelStudioNotFound
from labelflow.integrations.label_studio.config import (
    CHOICES_NAME,
    DATA_FIELD,
    ItemKind,
    LabelStudioConfig,
    check_labeling_config,
    choice_prediction,
    labeling_config,
)

logger = logging.getLogger(__name__)

TASK_KEY: Final = "labelflow_task"  # task data field: "<round>/<item>"
ITEM_KEY: Final = "labelflow_item"
WORKER_PREFIX: Final = "ls:"
WEBHOOK_ACTIONS: Final = frozenset({"ANNOTATION_CREATED", "ANNOTATION_UPDATED"})
WEBHOOK_SECRET_HEADER: Final = "X-Labelflow-Secret"
EDIT_TOLERANCE_SECONDS: Final = 0.05  # on creation, Label Studio stamps updated_at some microseconds later
SUGGESTION_VERSION: Final = (
    "labelflow crowd label"  # the model version a review task's pre-filled label shows
)


def task_key(round_id: int, item_id: str) -> str:
    return f"{round_id}/{item_id}"


def worker_id(user_id: object) -> str:
    """``ls:<user id>``: people from two backends never merge into one worker."""
    if isinstance(user_id, Mapping):
        user_id = user_id.get("id")
    return f"{WORKER_PREFIX}{user_id}"


def _timestamp(value: object) -> datetime:
    if not value:
        return datetime.now(UTC)
    parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def parse_result(result: object, label_names: Sequence[str]) -> tuple[str | None, str | None]:
    """The label an annotation's ``result`` gives, or None and why not."""
    if not isinstance(result, list):
        return None, f"the annotation's result is not a list: {str(result)[:100]}"
    chosen: list[str] = []
    for region in result:
        if isinstance(region, Mapping) and region.get("from_name") == CHOICES_NAME:
            value = region.get("value")
            chosen.extend(str(c) for c in (value.get("choices", []) if isinstance(value, Mapping) else []))
    if not chosen:
        return None, "the annotation has no choice"
    if len(chosen) > 1:
        return None, f"the annotation has {len(chosen)} choices {chosen}; one was asked for"
    if chosen[0] not in label_names:
        return None, f"label {chosen[0]!r} is not one of the project's labels {list(label_names)}"
    return chosen[0], None


def _normalized(key: str, value: object) -> object:
    """A webhook's setting as we compare it: its actions in any order."""
    return sorted(value) if key == "actions" and isinstance(value, list) else value


@dataclass(frozen=True)
class _Slot:
    """One annotation as poll sees it: the answer it makes and whether it fills one of the answers bought."""

    annotation: Mapping[str, Any]
    reason: str | None  # why it is rejected, if it is


class LabelStudioCrowd:
    """The crowd backend for a Label Studio server (see the module docstring for the mapping).

    ``round_handles(round_id)`` returns the round's published handles (the label store's ``handles``): it says
    how many answers earlier waves bought on an item. ``table_rows(item_id)``, for ``kind = "table"``, gives the
    values shown for an item (column -> value)."""

    name = "label_studio"

    def __init__(
        self,
        client: LabelStudioClient,
        config: LabelStudioConfig,
        label_names: Sequence[str],
        *,
        kind: ItemKind,
        project_title: str,
        reward_per_answer: float,
        redundancy: int,
        round_handles: Callable[[int], Sequence[Handle]],
        clock: Clock | None = None,
        blocked_workers: Iterable[str] = (),
        table_rows: Callable[[str], Mapping[str, object]] | None = None,
        webhook_secret: str | None = None,
    ) -> None:
        self.client = client
        self.config = config
        self.label_names = [str(n) for n in label_names]
        self.kind: ItemKind = kind
        self.project_title = config.project_title or project_title
        self.reward_per_answer = reward_per_answer
        self.redundancy = redundancy
        self.round_handles = round_handles
        self.clock: Clock = clock or RealClock()
        self.table_rows = table_rows
        self._blocked: set[str] = set(blocked_workers)
        self._project_id: int | None = None
        self._missing_tasks: set[int] = set()
        self.webhook_secret = webhook_secret
        self._webhook_checked = False

    def cost_per_answer(self) -> float:
        return self.config.cost_per_answer(self.reward_per_answer)

    # ------------------------------------------------------------------ the project

    @property
    def project_id(self) -> int:
        """The Label Studio project, found by title (its labeling config checked) or created on first use."""
        if self._project_id is None:
            self._project_id = self._find_or_create_project()
        return self._project_id

    def _find_or_create_project(self) -> int:
        found = [
            p
            for p in self.client.pages(
                "/api/projects/", "listing projects", {"title": self.project_title}, self.config.page_size
            )
            if p.get("title") == self.project_title
        ]
        if len(found) > 1:
            raise CrowdBackendError(
                f"Label Studio at {self.client.url} has {len(found)} projects titled {self.project_title!r} "
                f"(ids {[p['id'] for p in found]}); rename all but one, or set crowd.label_studio.project_title"
            )
        if found:
            project = found[0]
            check_labeling_config(
                str(project.get("label_config", "")),
                self.label_names,
                self.kind,
                f"Label Studio project {self.project_title!r} (id {project['id']}) at {self.client.url}",
            )
            return int(project["id"])
        created = self.client.request(
            "POST",
            "/api/projects/",
            f"creating project {self.project_title!r}",
            json={
                "title": self.project_title,
                "description": "Created by labelflow: tasks come and go with its labeling rounds.",
                "label_config": labeling_config(self.label_names, self.kind, self.config.instructions),
                # The queue's overlap; each task's own overlap is set per wave below.
                "maximum_annotations": self.redundancy,
                "overlap_cohort_percentage": 100,
                "show_overlap_first": True,
                "show_skip_button": True,
            },
        )
        logger.info("created Label Studio project %r (id %s)", self.project_title, created["id"])
        return int(created["id"])

    def tasks(self) -> dict[str, dict[str, Any]]:
        """The project's labelflow tasks by ``round/item`` key (tasks added by hand are left alone)."""
        listed = self.client.pages(
            "/api/tasks/", "listing tasks", {"project": self.project_id}, self.config.page_size
        )
        return {str(t["data"][TASK_KEY]): t for t in listed if TASK_KEY in t.get("data", {})}

    # ------------------------------------------------------------------ publish

    def publish(self, requests: Sequence[LabelRequest]) -> list[Handle]:
        if not requests:
            return []
        self._ensure_webhook()
        existing = self.tasks()
        missing = {
            task_key(r.round_id, r.item_id): r
            for r in requests
            if task_key(r.round_id, r.item_id) not in existing
        }
        later = [key for key, r in missing.items() if r.wave > 1]
        if later:
            raise CrowdBackendError(
                f"later-wave requests for {later[:5]} (round/item) have no task in Label Studio project "
                f"{self.project_id} to add answers to (deleted in the UI?)"
            )
        if missing:
            imported = self.client.request(
                "POST",
                f"/api/projects/{self.project_id}/import",
                f"importing {len(missing)} tasks",
                params={"return_task_ids": "true"},
                json=[self._task_data(r) for r in missing.values()],
            )
            logger.info(
                "imported %d tasks into Label Studio project %d",
                imported.get("task_count", 0),
                self.project_id,
            )
            existing = self.tasks()
        bought = self._bought_before(requests)
        handles = []
        for request in requests:
            key = task_key(request.round_id, request.item_id)
            task = existing[key]
            overlap = bought.get((request.round_id, request.item_id, request.wave), 0) + request.n_answers
            if int(task.get("overlap", 1)) < overlap:
                self._set_overlap(
                    int(task["id"]), overlap, f"raising the overlap of task {task['id']}", full=False
                )
            handles.append(request.published(str(task["id"]), self.clock.now()))
        return handles

    def _ensure_webhook(self) -> None:
        """With ``webhook_url`` configured, the project's webhook to it (new and edited annotations, the shared
        secret in its header): created once, corrected if someone changed it, never duplicated."""
        url = self.config.webhook_url
        if url is None or self._webhook_checked:
            return
        if not self.webhook_secret:
            raise CrowdBackendError(
                "crowd.label_studio.webhook_url is set but no webhook secret was given (LABELFLOW_WEBHOOK_SECRET "
                "or crowd.label_studio.webhook_secret)"
            )
        wanted = {
            "url": url,
            "send_payload": True,
            "send_for_all_actions": False,
            "actions": sorted(WEBHOOK_ACTIONS),
            "headers": {WEBHOOK_SECRET_HEADER: self.webhook_secret},
            "is_active": True,
        }
        listed = self.client.request(
            "GET", "/api/webhooks/", "listing the project's webhooks", params={"project": self.project_id}
        )
        ours = [w for w in listed if w.get("url") == url and w.get("project") == self.project_id]
        if not ours:
            self.client.request(
                "POST",
                "/api/webhooks/",
                f"registering the webhook to {url}",
                json={"project": self.project_id, **wanted},
            )
            logger.info("registered Label Studio project %d's webhook to %s", self.project_id, url)
        elif any(_normalized(key, ours[0].get(key)) != value for key, value in wanted.items()):
            self.client.request(
                "PATCH", f"/api/webhooks/{ours[0]['id']}/", f"updating the webhook to {url}", json=wanted
            )
            logger.info("updated Label Studio project %d's webhook to %s", self.project_id, url)
        self._webhook_checked = True

    def _task_data(self, request: LabelRequest) -> dict[str, Any]:
        field = DATA_FIELD[self.kind]
        if self.kind == "table":
            if self.table_rows is None:
                raise CrowdBackendError("a table project needs table_rows to show its items")
            shown: object = {str(k): v for k, v in self.table_rows(request.item_id).items()}
        else:
            if request.payload is None:
                raise CrowdBackendError(
                    f"item {request.item_id!r} has no payload ({self.kind}) to show in Label Studio; name "
                    "dataset.payload_column"
                )
            shown = request.payload
        task: dict[str, Any] = {
            "data": {
                field: shown,
                TASK_KEY: task_key(request.round_id, request.item_id),
                ITEM_KEY: request.item_id,
            }
        }
        if request.suggested_label is not None:  # a review: the current label, pre-filled
            task["predictions"] = [
                choice_prediction(
                    request.suggested_label,
                    request.suggested_confidence if request.suggested_confidence is not None else 0.0,
                    self.kind,
                    SUGGESTION_VERSION,
                )
            ]
        return task

    def _bought_before(self, requests: Sequence[LabelRequest]) -> dict[tuple[int, str, int], int]:
        """Answers bought on each request's item by the round's earlier waves."""
        before: dict[tuple[int, str, int], int] = {}
        for round_id in {r.round_id for r in requests}:
            handles = self.round_handles(round_id)
            for request in (r for r in requests if r.round_id == round_id):
                before[(round_id, request.item_id, request.wave)] = sum(
                    h.n_answers for h in handles if h.item_id == request.item_id and h.wave < request.wave
                )
        return before

    def _set_overlap(self, task_id: int, overlap: int, operation: str, *, full: bool) -> None:
        """Label Studio keeps ``is_labeled`` as a column, recomputed only when an annotation is saved: set it
        with the overlap, or the queue would not offer a task whose overlap was raised."""
        self.client.request(
            "PATCH", f"/api/tasks/{task_id}/", operation, json={"overlap": overlap, "is_labeled": full}
        )

    # ------------------------------------------------------------------ poll

    def poll(self, handles: Sequence[Handle]) -> list[CrowdAnswer]:
        by_task: dict[str, list[Handle]] = defaultdict(list)
        for handle in handles:
            by_task[handle.external_id].append(handle)
        starts = slot_starts(self.round_handles, {h.round_id for h in handles})
        arrived: list[CrowdAnswer] = []
        for task_id, task_handles in by_task.items():
            annotations = self._annotations(int(task_id), task_handles[0])
            if annotations is None:
                continue
            first = task_handles[0]
            spans = {
                h.wave: (
                    start := starts.get((h.round_id, h.item_id, h.wave), h.answers_before),
                    start + h.n_answers,
                )
                for h in task_handles
            }
            bought = max(
                [starts.get((first.round_id, first.item_id, 0), 0), *(end for _, end in spans.values())]
            )
            latest = max(task_handles, key=lambda h: h.wave)
            for position, slot in enumerate(self._slots(annotations)):
                owner = next(
                    (h for h in task_handles if spans[h.wave][0] <= position < spans[h.wave][1]), None
                )
                if owner is not None:
                    arrived.append(self._answer(owner, slot.annotation, slot.reason))
                elif position >= bought:
                    reason = f"beyond the {bought} answer(s) asked for this item"
                    arrived.append(self._answer(latest, slot.annotation, reason, suffix=":beyond"))
            arrived.extend(
                self._answer(latest, a, reason, suffix=":repeat") for a, reason in self._repeats(annotations)
            )
        return arrived

    def _annotations(self, task_id: int, handle: Handle) -> list[dict[str, Any]] | None:
        try:
            listed = self.client.request(
                "GET", f"/api/tasks/{task_id}/annotations/", f"reading the annotations of task {task_id}"
            )
        except LabelStudioNotFound:
            if task_id not in self._missing_tasks:
                self._missing_tasks.add(task_id)
                logger.warning(
                    "task %d of item %r (round %d) is gone from Label Studio project %d (deleted in the UI?): "
                    "its answers stored so far are kept; it gets no more, and the wave's deadline ends the "
                    "wait for them",
                    task_id,
                    handle.item_id,
                    handle.round_id,
                    self.project_id,
                )
            return None
        return sorted(listed, key=lambda a: int(a["id"]))

    def _slots(self, annotations: Sequence[Mapping[str, Any]]) -> list[_Slot]:
        """The annotations that hold a slot, in order: each annotator's first non-skipped one."""
        seen: set[str] = set()
        slots = []
        for annotation in annotations:
            worker = worker_id(annotation.get("completed_by"))
            if annotation.get("was_cancelled") or worker in seen:
                continue
            seen.add(worker)
            blocked = f"annotator {worker} is blocked" if worker in self._blocked else None
            slots.append(_Slot(annotation, blocked))
        return slots

    def _repeats(self, annotations: Sequence[Mapping[str, Any]]) -> list[tuple[Mapping[str, Any], str]]:
        """Second and later annotations of one annotator on one task: kept, rejected."""
        first: dict[str, int] = {}
        repeats = []
        for annotation in annotations:
            worker = worker_id(annotation.get("completed_by"))
            if annotation.get("was_cancelled"):
                continue
            if worker in first:
                repeats.append(
                    (
                        annotation,
                        f"a second annotation by {worker} on this task (annotation {first[worker]} counts)",
                    )
                )
            else:
                first[worker] = int(annotation["id"])
        return repeats

    def _answer(
        self, handle: Handle, annotation: Mapping[str, Any], reason: str | None, suffix: str = ""
    ) -> CrowdAnswer:
        """The annotation as an answer (rejected with ``reason`` if given); an edited one gets the edit's time
        in its id, so each version is stored."""
        result = annotation.get("result")
        label, error = parse_result(result, self.label_names)
        if reason is not None:
            label, error = None, reason
        created, updated = _timestamp(annotation.get("created_at")), _timestamp(annotation.get("updated_at"))
        answer_id = f"ls-{annotation['id']}{suffix}"
        if (updated - created).total_seconds() > EDIT_TOLERANCE_SECONDS:
            answer_id += f"@{updated.isoformat()}"
        if error and not suffix:
            logger.warning(
                "annotation %s of task %s (item %r) gives no label: %s",
                annotation["id"],
                handle.external_id,
                handle.item_id,
                error,
            )
        return CrowdAnswer(
            answer_id=answer_id,
            request_key=handle.key,
            item_id=handle.item_id,
            worker_id=worker_id(annotation.get("completed_by")),
            round_id=handle.round_id,
            wave=handle.wave,
            is_gold=handle.is_gold,
            raw=json.dumps(result, sort_keys=True),
            label=label,
            parse_error=error,
            submitted_at=updated,
            backend=self.name,
            is_expert=handle.is_expert,
        )

    # ------------------------------------------------------------------ review and close

    def review(self, decisions: Sequence[Review]) -> None:
        for decision in decisions:
            if decision.action is not ReviewAction.BLOCK or decision.worker_id in self._blocked:
                continue
            self._blocked.add(decision.worker_id)
            self._remove_from_organization(decision.worker_id)

    def _remove_from_organization(self, worker: str) -> None:
        if not worker.startswith(WORKER_PREFIX):
            return
        user_id = worker.removeprefix(WORKER_PREFIX)
        me = self.client.request("GET", "/api/current-user/whoami", "reading the current user")
        if str(me.get("id")) == user_id:
            logger.warning(
                "annotator %s is the token's own account; not removed from the organization", worker
            )
            return
        organization = me.get("active_organization")
        try:
            self.client.request(
                "DELETE",
                f"/api/organizations/{organization}/memberships/{user_id}/",
                f"removing annotator {worker} from organization {organization}",
            )
        except LabelStudioNotFound:
            logger.info("annotator %s is not in organization %s any more", worker, organization)
        logger.info(
            "blocked annotator %s: removed from the organization; later annotations are rejected", worker
        )

    def close(self, handles: Sequence[Handle]) -> None:
        for task_id in dict.fromkeys(int(h.external_id) for h in handles):
            try:
                annotations = self.client.request(
                    "GET", f"/api/tasks/{task_id}/annotations/", f"reading the annotations of task {task_id}"
                )
            except LabelStudioNotFound:
                continue
            answered = len(
                {worker_id(a.get("completed_by")) for a in annotations if not a.get("was_cancelled")}
            )
            if annotations:
                # Answers (or skips) stay where the team can see them; the queue stops offering the task.
                self._set_overlap(
                    task_id, max(answered, 1), f"lowering the overlap of task {task_id}", full=True
                )
            else:
                with contextlib.suppress(LabelStudioNotFound):
                    self.client.request(
                        "DELETE", f"/api/tasks/{task_id}/", f"deleting unanswered task {task_id}"
                    )
