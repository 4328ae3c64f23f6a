"""Settlement: once a round's labels are in, pick up answers that came late, pay for the round's answers, and
close its requests.

Every answer of the round is approved — unparsed ones too, since a form that did not parse is more likely our
fault than the worker's — except those of workers quality control has blocked as spammers, which are rejected
with the reason as feedback. Approving or rejecting an answer twice is harmless (a backend treats an answer
already decided as done), so a resumed round can settle again.
"""

from __future__ import annotations

from collections.abc import Collection

import pandas as pd
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from integrations.crowd.base import CrowdBackend, Review, ReviewAction
from integrations.store import LabelStore

REJECT_REASON = (
    "Your answers in this batch agreed with other workers' no more often than chance would; they were not "
    "accepted."
)


def settlement_reviews(answers: pd.DataFrame, blocked: Collection[str]) -> list[Review]:
    """Approve each answer (``answer_id``, ``worker_id``) unless its worker is blocked; reject those."""
    return [
        Review(ReviewAction.REJECT, worker, answer_id, reason=REJECT_REASON)
        if worker in blocked
        else Review(ReviewAction.APPROVE, worker, answer_id)
        for answer_id, worker in zip(
            answers["answer_id"].astype(str), answers["worker_id"].astype(str), strict=True
        )
    ]


@task(name="settle-round", task_run_name="settle-round-{round_number}", cache_policy=NO_CACHE)
def settle_round(store: LabelStore, crowd: CrowdBackend, round_id: int, *, round_number: int) -> int:
    """Store late answers, approve or reject every answer of the round, close its requests; return how many
    answers were reviewed."""
    handles = store.handles(round_id)
    late = store.add_answers(crowd.poll(handles))
    columns = ["answer_id", "worker_id"]
    answers = pd.concat(
        [store.answers(round_id)[columns], store.answers(round_id, parsed=False)[columns]], ignore_index=True
    )
    reviews = settlement_reviews(answers, store.blocked_workers(crowd.name))
    crowd.review(reviews)
    crowd.close(handles)
    rejected = sum(r.action is ReviewAction.REJECT for r in reviews)
    get_run_logger().info(
        "round %d settled: %d answers approved, %d rejected (blocked workers), %d late answers stored, "
        "%d requests closed",
        round_number,
        len(reviews) - rejected,
        rejected,
        late,
        len(handles),
    )
    return len(reviews)
