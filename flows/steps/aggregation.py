"""The aggregation stage as a Prefect task: the round's labels from all answers so far, with the confidence the
round's decisions read (calibrated on random gold when there is enough, :mod:`labelflow.tasks.confidence`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy.typing as npt
import pandas as pd
from prefect import get_run_logger, task

from labelflow.contracts import LABEL_COLUMNS, LabelSource, empty_frame
from labelflow.tasks.confidence import DecisionLabels, decision_labels


@task(name="aggregate-answers", task_run_name="aggregate-round-{round_number}-wave-{wave}")
def aggregate_answers(
    answers: pd.DataFrame,
    label_names: Sequence[str],
    *,
    method: str,
    gold: pd.Series,
    random_gold: bool,
    confidence_target: float,
    round_id: int,
    round_number: int,
    wave: int,
    warm_start: Mapping[str, npt.ArrayLike] | None = None,
    expert: pd.Series | None = None,
) -> DecisionLabels:
    """Labels (the label contract, ``source = crowd``) for every answered non-gold item, from all answers so far:
    worker confusion is estimated from the whole project, not one round's handful of answers per worker;
    ``warm_start`` holds earlier rounds' confusion matrices; an item in ``expert`` (item -> label, the experts'
    latest decisions) gets the expert's label. Their confidence is calibrated on ``gold`` when it
    was drawn at random (``random_gold``) and enough of it is answered. No answers yet (every assignment
    abandoned) gives no labels rather than an error, so the wave loop can go on."""
    if answers.empty:
        return DecisionLabels(empty_frame(LABEL_COLUMNS), None, "uncalibrated: no answers yet")
    found = decision_labels(
        answers,
        label_names,
        method=method,
        gold=gold,
        random_gold=random_gold,
        confidence_target=confidence_target,
        warm_start=warm_start,
        expert=expert,
    )
    labels = found.labels.assign(round_id=round_id, source=LabelSource.CROWD.value)
    calibration = found.calibration
    get_run_logger().info(
        "aggregated %d answers into %d labels (%s), mean confidence %.3f, %s",
        len(answers),
        len(labels),
        found.model_choice or method,
        labels["confidence"].mean() if len(labels) else float("nan"),
        f"calibrated on {calibration.n_gold} gold items (out-of-fold ECE {calibration.ece_before:.3f} -> "
        f"{calibration.ece_after:.3f})"
        if calibration is not None and found.calibrated
        else found.reason,
    )
    return DecisionLabels(
        labels[list(LABEL_COLUMNS)],
        calibration,
        found.reason,
        model_choice=found.model_choice,
        gold=found.gold,
    )
