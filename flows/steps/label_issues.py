"""The label issues step: :func:`labelflow.tasks.label_issues.find_label_issues` offered for relabeling as a
table artifact."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
from prefect import get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE

from labelflow.contracts import ITEM_ID
from labelflow.tasks.label_issues import find_label_issues
from labelflow.tasks.training import FeatureRows, TrainingConfig


@task(name="find-label-issues", task_run_name="find-label-issues-round-{round_number}", cache_policy=NO_CACHE)
def report_label_issues(
    labeled: pd.DataFrame,
    feature_columns: list[str],
    label_names: Sequence[str],
    config: TrainingConfig,
    *,
    round_number: int,
    artifact_key: str,
    rows: FeatureRows | None = None,
) -> pd.DataFrame:
    """Find the issues (on ``rows`` of the items when given, as the model is trained) and offer them for
    relabeling as a table artifact."""
    issues = find_label_issues(labeled, feature_columns, label_names, config, rows=rows)
    create_table_artifact(
        table=[
            {
                "item": str(row[ITEM_ID]),
                "crowd label": str(row["label"]),
                "model suggests": str(row["suggested"]),
                "model p(crowd label)": f"{row['p_label']:.3f}",
                "model p(suggested)": f"{row['p_suggested']:.3f}",
                "crowd confidence": f"{row['confidence']:.3f}",
                "answers": int(row["n_answers"]),
            }
            for row in issues.to_dict("records")
        ],
        key=artifact_key,
        description=f"Round {round_number}: crowd labels the model contradicts, offered for relabeling",
    )
    get_run_logger().info("%d label issue(s) among %d crowd labels", len(issues), len(labeled))
    return issues
