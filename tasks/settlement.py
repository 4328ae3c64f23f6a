"""Settlement: once a round's labels are in and its workers reviewed, pick up answers that came late, pay for
what the review did not see, and close the round's requests.

The review (``tasks/workers.py``) decides on every parsed answer: approve, or reject on failed gold with a
reason. Settlement approves the rest — answers that did not parse (a form that did not parse is more likely our
fault than the worker's) and answers that arrived after the review — so every assignment is decided and none is
decided twice. Approving an answer twice is harmless anyway (a backend treats a decided answer as done), so a
resumed round can settle again.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from labelflow.integrations.crowd.base import CrowdBackend, Review, ReviewAction
from labelflow.integrations.store import LabelStore


def settlement_reviews(answers: pd.DataFrame) -> list[Review]:
    """Approve each answer (``answer_id``, ``worker_id``)."""
    return [
        Review(ReviewAction.APPROVE, worker, answer_id)
        for answer_id, worker in zip(
            answers["answer_id"].astype(str), answers["worker_id"].astype(str), strict=True
        )
    ]


@dataclass(frozen=True)
class Settlement:
    """What settling a round did: ``approved`` answers decided here (unparsed or late), ``late`` answers
    stored, ``closed`` requests."""

    approved: int
    late: int
    closed: int


def settle(
    store: LabelStore, crowd: CrowdBackend, round_id: int, expert: CrowdBackend | None = None
) -> Settlement:
    """Store late answers, approve the answers the review did not decide on, close the round's requests (the
    experts' ones, escalated items of the round, by the ``expert`` backend)."""
    handles = store.handles(round_id, expert=False)
    expert_handles = store.handles(round_id, expert=True) if expert is not None else []
    reviewed = set(store.answers(round_id)["answer_id"].astype(str))
    late = store.add_answers(crowd.poll(handles))
    if expert is not None and expert_handles:
        late += store.add_answers(expert.poll(expert_handles))
        expert.close(expert_handles)
    columns = ["answer_id", "worker_id"]
    answers = pd.concat(
        [store.answers(round_id)[columns], store.answers(round_id, parsed=False)[columns]], ignore_index=True
    )
    # The crowd decides on its own workers' answers only: an expert's are not the crowd's to approve.
    reviewed |= set(store.expert_answers(parsed=False)["answer_id"].astype(str))
    undecided = answers[~answers["answer_id"].astype(str).isin(reviewed)]
    crowd.review(settlement_reviews(undecided))
    crowd.close(handles)
    return Settlement(approved=len(undecided), late=late, closed=len(handles) + len(expert_handles))
