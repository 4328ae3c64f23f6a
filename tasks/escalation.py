"""Expert work beside the crowd: which items go to the project's experts, and what their answers decide.

Two ways an item reaches an expert (``crowd.expert_backend``), both as requests of wave
:data:`~labelflow.integrations.crowd.base.EXPERT_WAVE` marked ``is_expert`` in the store:

- **escalation** — after the crowd's last wave of a round, the round's items the crowd disagrees on most (the
  lowest calibrated confidence, below the confidence target) go to one expert each, at most
  ``crowd.escalate_per_round`` of them; the round waits for those answers as for a wave;
- **review** — at the end of a round, the crowd labels label-issue detection flags and those still below the
  confidence target go to the experts' review queue with the current label shown pre-filled; the round does not
  wait: a decision is collected whenever it comes (the next round, ``labelflow collect``).

An expert's latest answer on an item is its label from then on (:func:`expert_decisions`, clamped in
aggregation like gold: :func:`labelflow.tasks.confidence.decision_labels`). Neither kind of item is a random
draw, so neither ever calibrates the confidence. An item is asked of an expert once.
"""

from __future__ import annotations

from collections.abc import Collection

import pandas as pd

from labelflow.contracts import ITEM_ID
from labelflow.integrations.crowd.base import EXPERT_WAVE, LabelRequest

REVIEW_COLUMNS = ("item_id", "label", "confidence", "reason")


ESCALATED, REVIEW = "escalated", "review"  # the two kinds of expert request, the last part of their key


def expert_request_key(project: str, round_number: int, item_id: str, kind: str) -> str:
    return f"{project}/r{round_number}/{item_id}/{kind}"


def is_review_key(request_key: str) -> bool:
    return request_key.endswith(f"/{REVIEW}")


def escalation_size(
    share: float, *, crowd_cost: float, expert_cost_per_answer: float, candidates: int
) -> int:
    """How many items a round escalates so that experts get ``share`` of its spend: the expert answers that
    ``share / (1 - share)`` of what the crowd cost (``crowd_cost``) buys, at most the ``candidates``.

    Examples
    --------
    >>> escalation_size(0.1, crowd_cost=90.0, expert_cost_per_answer=2.0, candidates=100)
    5
    """
    if share <= 0 or candidates <= 0:
        return 0
    if expert_cost_per_answer <= 0:
        return candidates
    return min(int(share / (1 - share) * crowd_cost / expert_cost_per_answer + 1e-9), candidates)


def items_to_escalate(
    labels: pd.DataFrame, *, limit: int, below: float, asked: Collection[str] = ()
) -> pd.DataFrame:
    """The items the crowd disagrees on most: labels (``item_id, label, confidence``) below ``below``, the
    lowest confidence first (ties by item id), at most ``limit``, none in ``asked`` (already put to an expert).

    Examples
    --------
    >>> labels = pd.DataFrame({"item_id": ["a", "b", "c", "d"], "label": ["x", "y", "x", "y"],
    ...                        "confidence": [0.5, 0.99, 0.6, 0.4]})
    >>> items_to_escalate(labels, limit=2, below=0.9, asked={"d"})["item_id"].tolist()
    ['a', 'c']
    """
    if limit <= 0 or labels.empty:
        return labels.iloc[:0][[ITEM_ID, "label", "confidence"]]
    unsure = labels[(labels["confidence"] < below) & ~labels[ITEM_ID].astype(str).isin(set(asked))]
    ranked = unsure.sort_values(["confidence", ITEM_ID], kind="stable")
    return ranked[[ITEM_ID, "label", "confidence"]].head(limit).reset_index(drop=True)


def items_to_review(
    labels: pd.DataFrame,
    issues: pd.DataFrame,
    *,
    confidence_target: float,
    asked: Collection[str] = (),
) -> pd.DataFrame:
    """Crowd labels to send for review (REVIEW_COLUMNS): those label-issue detection flagged (``issues``:
    ``item_id, suggested``), most contradicted first, then those below ``confidence_target`` from the lowest;
    none in ``asked`` (already put to an expert), each once.

    Examples
    --------
    >>> labels = pd.DataFrame({"item_id": ["a", "b", "c"], "label": ["x", "y", "x"],
    ...                        "confidence": [0.95, 0.99, 0.6]})
    >>> issues = pd.DataFrame({"item_id": ["b"], "suggested": ["x"]})
    >>> items_to_review(labels, issues, confidence_target=0.9)[["item_id", "reason"]].values.tolist()
    [['b', 'label issue: the model suggests x'], ['c', 'confidence 0.600 below the target 0.9']]
    """
    current = labels.assign(**{ITEM_ID: labels[ITEM_ID].astype(str)}).drop_duplicates(ITEM_ID, keep="last")
    current = current.set_index(ITEM_ID)
    flagged = issues[issues[ITEM_ID].astype(str).isin(current.index)]
    rows = [
        (str(item), current.at[str(item), "label"], current.at[str(item), "confidence"], reason)
        for item, reason in zip(
            flagged[ITEM_ID],
            "label issue: the model suggests " + flagged["suggested"].astype(str),
            strict=True,
        )
    ]
    unsure = current[current["confidence"] < confidence_target].sort_values("confidence", kind="stable")
    rows += [
        (str(item), label, confidence, f"confidence {confidence:.3f} below the target {confidence_target:g}")
        for item, label, confidence in zip(unsure.index, unsure["label"], unsure["confidence"], strict=True)
    ]
    review = pd.DataFrame(rows, columns=list(REVIEW_COLUMNS))
    review = review[~review[ITEM_ID].isin(set(asked))].drop_duplicates(ITEM_ID, keep="first")
    return review.reset_index(drop=True)


def expert_decisions(expert_answers: pd.DataFrame) -> pd.Series:
    """``item_id -> label``: each item's latest expert answer (``expert_answers`` in arrival order)."""
    if expert_answers.empty:
        return pd.Series(dtype=object)
    latest = expert_answers.drop_duplicates(ITEM_ID, keep="last")
    return pd.Series(latest["label"].astype(str).to_numpy(), index=latest[ITEM_ID].astype(str).to_numpy())


def expert_requests(
    items: pd.DataFrame,
    payloads: pd.Series,
    *,
    project: str,
    round_id: int,
    round_number: int,
    kind: str,
) -> list[LabelRequest]:
    """One expert answer asked for each of ``items`` (``item_id, label, confidence``; ``payloads`` what each
    item shows, by item id), of ``kind``
    :data:`ESCALATED` (the expert judges unprompted) or :data:`REVIEW` (the current label and its confidence
    are shown pre-filled)."""
    suggest = kind == REVIEW
    return [
        LabelRequest(
            key=expert_request_key(project, round_number, str(row[ITEM_ID]), kind),
            item_id=str(row[ITEM_ID]),
            round_id=round_id,
            wave=EXPERT_WAVE,
            n_answers=1,
            payload=None if pd.isna(shown := payloads.get(str(row[ITEM_ID]))) else str(shown),
            is_expert=True,
            suggested_label=str(row["label"]) if suggest else None,
            suggested_confidence=float(row["confidence"]) if suggest else None,
        )
        for row in items.to_dict("records")
    ]


def affordable_answers(cost_per_answer: float, *, spent: float, budget: float) -> int:
    """How many answers at ``cost_per_answer`` the rest of the budget buys (any number when they are free)."""
    if cost_per_answer <= 0:
        return 2**31 - 1
    return max(int((budget - spent) / cost_per_answer + 1e-9), 0)
