"""The simulated workers behind the local MTurk endpoint: who takes a HIT's assignments, what they answer, when.

The workers are the worker models of :mod:`~labelflow.integrations.crowd.simulated`, on the same items: each
item (a HIT's RequesterAnnotation) has the difficulty and lure the simulated crowd would give it, so a crowd
behind the endpoint is as hard as the embedded one with the same configuration. They take a HIT's assignments
when the assignments are created: each one gets its worker, its answer and its accept/submit times at once, and
becomes visible as the endpoint's time passes them.
"""

from __future__ import annotations

import html
import json
import re
import sqlite3
from collections.abc import Mapping
from typing import Any, Final

import numpy as np

from labelflow.integrations.crowd.mturk.forms import ANSWER_FIELD, form_answers
from labelflow.integrations.crowd.simulated import (
    SimulatedCrowdConfig,
    answer_item,
    default_profile,
    stable_seed,
)
from labelflow.integrations.mturk_local.faults import load_faults, take_malformed_answer
from labelflow.integrations.mturk_local.schema import EndpointDatabase, new_id

_CHOICE: Final = re.compile(rf'<input type="radio" name="{ANSWER_FIELD}" value="([^"]*)"')


def form_answer(label: str) -> str:
    """The QuestionFormAnswers document MTurk stores when a worker submits ``label`` on a HIT page."""
    return form_answers({ANSWER_FIELD: label})


def question_labels(question: str) -> list[str]:
    """The labels a worker can choose on an HTMLQuestion's page (its radio buttons' values)."""
    return [html.unescape(value) for value in _CHOICE.findall(question)]


class SimulatedWorkers:
    """The endpoint's crowd. ``truth`` maps item ids (the HITs' RequesterAnnotation) to their true labels;
    workers answer other items at random. ``config`` is the worker mix, accuracy, latency and seed."""

    def __init__(self, config: SimulatedCrowdConfig, truth: Mapping[str, str]) -> None:
        self.config = config
        self.truth = dict(truth)

    def schedule(self, db: EndpointDatabase, hit: sqlite3.Row, first_slot: int, n: int, start: float) -> None:
        """Give ``n`` new assignments of the HIT to simulated workers, with their answers and timing."""
        hit_id = hit["id"]
        labels = json.loads(hit["labels"]) or ["?"]
        config = self.config
        profile = default_profile(config, len(labels))
        workers = profile.workers
        hit_type = db.hit_type(hit["hit_type_id"])
        excluded = excluded_workers(db, hit_type)
        busy = {
            r["worker_id"]
            for r in db.execute("SELECT worker_id FROM assignments WHERE hit_id = ?", (hit_id,))
        }
        order = np.random.default_rng(stable_seed(config.seed, hit_id)).permutation(len(workers))
        eligible = [
            (worker_id, workers[i])
            for i in order
            if (worker_id := f"ASIMW{i:05d}") not in excluded and worker_id not in busy
        ][:n]
        item_id = hit["annotation"] or ""
        true_label = self.truth.get(item_id)
        duration = float(hit_type["AssignmentDurationInSeconds"])
        slow_factor = load_faults(db).slow_factor
        for offset, (worker_id, worker) in enumerate(eligible):
            slot = first_slot + offset
            rng = np.random.default_rng(stable_seed(config.seed, hit_id, slot))
            delay = float(rng.exponential(config.mean_latency_minutes * 60)) * slow_factor
            working = min(delay / 2, duration * 0.9)
            if true_label in labels:
                code = answer_item(profile, config.seed, worker, item_id, labels.index(true_label), rng)
            else:
                code = int(rng.integers(len(labels)))
            answer = form_answer(labels[code])
            if take_malformed_answer(db):
                answer = answer[: len(answer) // 2]  # cut off mid-document: not well-formed XML
            db.execute(
                "INSERT INTO assignments (id, hit_id, worker_id, slot, accept_time, submit_time, answer, status) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, 'Scheduled')",
                (new_id("3"), hit_id, worker_id, slot, start + delay - working, start + delay, answer),
            )


def excluded_workers(db: EndpointDatabase, hit_type: Mapping[str, Any]) -> set[str]:
    """Workers a DoesNotExist requirement keeps out. Simulated workers meet every system qualification."""
    excluded: set[str] = set()
    for requirement in hit_type.get("QualificationRequirements", []):
        if requirement.get("Comparator") == "DoesNotExist":
            excluded.update(
                r["worker_id"]
                for r in db.execute(
                    "SELECT worker_id FROM worker_qualifications WHERE qualification_id = ?",
                    (requirement["QualificationTypeId"],),
                )
            )
    return excluded
