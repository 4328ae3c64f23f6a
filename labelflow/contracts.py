"""The data contracts between stages: one spelling of every column, everywhere.

Frames that cross a stage boundary carry exactly these columns (extra columns are allowed on the pool only).
Labels are the user's names (strings such as ``"cat"`` or ``"7"``), never internal integer codes; integer codes
exist only inside an algorithm.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final

import pandas as pd

ITEM_ID: Final = "item_id"
PAYLOAD: Final = "payload"

BATCH_COLUMNS: Final = ("item_id", "score", "strategy", "round_id")
ANSWER_COLUMNS: Final = (
    "answer_id",
    "item_id",
    "worker_id",
    "label",
    "is_gold",
    "wave",
    "round_id",
    "submitted_at",
    "backend",
)
LABEL_COLUMNS: Final = ("item_id", "label", "confidence", "method", "n_answers", "round_id", "source")


class ItemSet(StrEnum):
    """The three disjoint sets of items."""

    POOL = "pool"  # unlabeled; selection chooses from these
    GOLD = "gold"  # known answers, mixed into dispatches to measure workers
    HELD_OUT = "held_out"  # known answers, never sent to anyone; they measure the model


class LabelSource(StrEnum):
    CROWD = "crowd"
    MODEL = "model"  # self-training pseudo-labels
    FUNCTIONS = "functions"  # weak supervision


class ContractError(ValueError):
    """A frame does not have the columns its contract promises."""


def require_columns(frame: pd.DataFrame, columns: tuple[str, ...] | list[str], what: str) -> None:
    """Raise :class:`ContractError` naming every missing column, instead of a bare ``KeyError`` later."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ContractError(
            f"{what} is missing column(s) {missing}; it has {list(frame.columns)}. "
            f"Expected at least {list(columns)}."
        )


def empty_frame(columns: tuple[str, ...]) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="object") for c in columns})
