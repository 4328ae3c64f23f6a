"""Answers from elsewhere as our contract: crowd-kit frames and the shared-data CSVs (``answers.csv``,
``truth.csv``) of the public crowdsourcing datasets."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from labelflow.contracts import ITEM_ID, require_columns
from labelflow.tasks.aggregation._encoding import LABEL, WORKER_ID


def from_crowd_kit(frame: pd.DataFrame) -> pd.DataFrame:
    """crowd-kit's ``task, worker, label`` frame as our ``item_id, worker_id, label`` contract (strings).

    The aggregators take crowd-kit's columns as they are; this is for the other stages, which take ours.

    Examples
    --------
    >>> import pandas as pd
    >>> from_crowd_kit(pd.DataFrame({"task": [1], "worker": ["w"], "label": [0]}))
      item_id worker_id label
    0       1         w     0
    """
    require_columns(frame, ("task", "worker", "label"), "crowd-kit answers")
    return pd.DataFrame(
        {
            ITEM_ID: frame["task"].astype(str).to_numpy(),
            WORKER_ID: frame["worker"].astype(str).to_numpy(),
            LABEL: frame["label"].astype(str).to_numpy(),
        }
    )


def from_shared_csv(answers_csv: Path) -> pd.DataFrame:
    """A shared-data ``answers.csv`` (``question, worker, answer``) as ``item_id, worker_id, label`` (str)."""
    raw = pd.read_csv(answers_csv, dtype=str, keep_default_na=False)
    require_columns(raw, ("question", "worker", "answer"), str(answers_csv))
    return pd.DataFrame(
        {
            ITEM_ID: raw["question"].to_numpy(),
            WORKER_ID: raw["worker"].to_numpy(),
            LABEL: raw["answer"].to_numpy(),
        }
    ).astype(str)


def read_shared_truth(truth_csv: Path) -> pd.Series:
    """A shared-data ``truth.csv`` (``question, truth``) as a Series ``item_id -> label`` (strings)."""
    raw = pd.read_csv(truth_csv, dtype=str, keep_default_na=False)
    require_columns(raw, ("question", "truth"), str(truth_csv))
    return pd.Series(
        raw["truth"].astype(str).to_numpy(),
        index=pd.Index(raw["question"].astype(str).to_numpy(), name=ITEM_ID),
        name=LABEL,
    )
