"""The expert steps of a round with ``crowd.expert_backend`` (:mod:`labelflow.tasks.escalation`): reviews collected
at the start, the items the crowd disagrees on most escalated after its last wave, labels sent for review at
the end."""

from __future__ import annotations

import pandas as pd
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from labelflow.contracts import ITEM_ID
from labelflow.integrations.crowd.base import EXPERT_WAVE, CrowdBackend, Handle
from labelflow.integrations.store import LabelStore
from labelflow.tasks.confidence import EXPERT_METHOD
from labelflow.tasks.dispatch import publish_wave
from labelflow.tasks.escalation import (
    ESCALATED,
    REVIEW,
    affordable_answers,
    escalation_size,
    expert_decisions,
    expert_requests,
    is_review_key,
    items_to_escalate,
    items_to_review,
)


@task(name="collect-reviews", task_run_name="collect-reviews-round-{round_number}", cache_policy=NO_CACHE)
def collect_reviews(store: LabelStore, expert: CrowdBackend, *, round_id: int, round_number: int) -> int:
    """Store the decisions made in the experts' review queue since the last look (the review requests of every
    earlier round whose item has no expert answer yet); return how many were stored."""
    decided = set(store.expert_answers()[ITEM_ID].astype(str))
    waiting = [
        handle
        for earlier in store.rounds()["id"]
        if int(earlier) != round_id
        for handle in store.handles(int(earlier), EXPERT_WAVE, expert=True)
        if is_review_key(handle.key) and handle.item_id not in decided
    ]
    if not waiting:
        return 0
    stored = store.add_answers(expert.poll(waiting))
    get_run_logger().info(
        "review queue: %d decision(s) stored, %d item(s) were waiting for one", stored, len(waiting)
    )
    return stored


@task(name="escalate-items", task_run_name="escalate-round-{round_number}", cache_policy=NO_CACHE)
def escalate_items(
    store: LabelStore,
    expert: CrowdBackend,
    labels: pd.DataFrame,
    payloads: pd.Series,
    *,
    project: str,
    round_id: int,
    round_number: int,
    share: float,
    confidence_target: float,
    crowd_cost: float,
    spent: float,
    budget: float,
) -> list[Handle]:
    """Send the round's items the crowd disagrees on most (``labels``: the round's batch after its last wave)
    to the experts, as many as ``share`` of the round's spend buys (and the budget allows); a resumed round
    sends the items it chose before. Returns the escalation's handles."""
    stored = store.requests(round_id, wave=EXPERT_WAVE)
    chosen = stored.loc[~stored["request_key"].map(is_review_key), ITEM_ID].astype(str)
    if chosen.empty:
        asked = store.requested_items(expert=True) | set(expert_decisions(store.expert_answers()).index)
        unsure = items_to_escalate(labels, limit=len(labels), below=confidence_target, asked=asked)
        cost = expert.cost_per_answer()
        size = escalation_size(
            share,
            crowd_cost=crowd_cost,
            expert_cost_per_answer=cost,
            candidates=min(len(unsure), affordable_answers(cost, spent=spent, budget=budget)),
        )
        items = unsure.head(size)
    else:  # resumed: the same items, whatever the expert answered since
        items = labels[labels[ITEM_ID].astype(str).isin(chosen)][[ITEM_ID, "label", "confidence"]]
    if items.empty:
        get_run_logger().info("escalation: no item of round %d to escalate", round_number)
        return []
    requests = expert_requests(
        items, payloads, project=project, round_id=round_id, round_number=round_number, kind=ESCALATED
    )
    dispatched = publish_wave(store, expert, requests, wave=EXPERT_WAVE, spent=spent, budget=budget)
    keys = {request.key for request in requests}
    get_run_logger().info(
        "escalation: %d item(s) the crowd disagrees on most sent to the experts (confidence %.3f-%.3f), %d newly",
        len(requests),
        float(items["confidence"].min()),
        float(items["confidence"].max()),
        dispatched.newly_published,
    )
    return [handle for handle in dispatched.handles if handle.key in keys]


@task(name="send-for-review", task_run_name="send-for-review-round-{round_number}", cache_policy=NO_CACHE)
def send_for_review(
    store: LabelStore,
    expert: CrowdBackend,
    labels: pd.DataFrame,
    issues: pd.DataFrame,
    payloads: pd.Series,
    *,
    project: str,
    round_id: int,
    round_number: int,
    limit: int,
    confidence_target: float,
    spent: float,
    budget: float,
) -> int:
    """Send crowd labels that label-issue detection flagged or that are still under the confidence target to
    the experts' review queue, the current label pre-filled (at most ``limit``, within the budget); the round
    does not wait for the decisions. Returns how many were sent."""
    asked = store.requested_items(expert=True) | set(expert_decisions(store.expert_answers()).index)
    crowd_labels = labels[labels["method"] != EXPERT_METHOD]
    review = items_to_review(crowd_labels, issues, confidence_target=confidence_target, asked=asked)
    size = min(limit, len(review), affordable_answers(expert.cost_per_answer(), spent=spent, budget=budget))
    if size == 0:
        get_run_logger().info(
            "review: nothing of round %d to send (%d candidate(s))", round_number, len(review)
        )
        return 0
    sent = review.head(size)
    requests = expert_requests(
        sent, payloads, project=project, round_id=round_id, round_number=round_number, kind=REVIEW
    )
    publish_wave(store, expert, requests, wave=EXPERT_WAVE, spent=spent, budget=budget)
    get_run_logger().info(
        "review: %d label(s) sent to the experts' queue, the current label pre-filled (%d candidate(s)): %s",
        size,
        len(review),
        "; ".join(f"{row[ITEM_ID]}: {row['reason']}" for row in sent.head(5).to_dict("records")),
    )
    return size
