"""The aggregation stage as a Prefect task: the round's labels from all answers so far."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy.typing as npt
import pandas as pd
from prefect import get_run_logger, task

from labelflow.contracts import LABEL_COLUMNS, LabelSource, empty_frame
from labelflow.tasks.aggregation import aggregate_answers_frame


@task(name="aggregate-answers", task_run_name="aggregate-round-{round_number}-wave-{wave}")
def aggregate_answers(
    answers: pd.DataFrame,
    label_names: Sequence[str],
    *,
    method: str,
    gold: pd.Series,
    round_id: int,
    round_number: int,
    wave: int,
    warm_start: Mapping[str, npt.ArrayLike] | None = None,
) -> pd.DataFrame:
    """Labels (the label contract, ``source = crowd``) for every answered non-gold item, from all answers so far:
    worker confusion is estimated from the whole project, not one round's handful of answers per worker;
    ``warm_start`` holds earlier rounds' confusion matrices. No answers yet (every assignment abandoned) gives
    no labels rather than an error, so the wave loop can go on."""
    if answers.empty:
        return empty_frame(LABEL_COLUMNS)
    labels = aggregate_answers_frame(
        answers, label_names, method=method, gold=gold, warm_start=warm_start
    ).assign(round_id=round_id, source=LabelSource.CROWD.value)
    get_run_logger().info(
        "aggregated %d answers into %d labels (%s), mean confidence %.3f",
        len(answers),
        len(labels),
        method,
        labels["confidence"].mean() if len(labels) else float("nan"),
    )
    return labels[list(LABEL_COLUMNS)]
