"""What workers are told: the ``[task]`` section (title, instructions, how each label is shown) and what of an
item they see. Backend-neutral: the MTurk HIT template renders it, and any other labeling UI can.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Final

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator

from labelflow.contracts import ITEM_ID, PAYLOAD

TABLE_COLUMNS_SHOWN: Final = (
    12  # a row wider than this is cut: a worker reads a small table, not a spreadsheet
)


class LabelDisplay(BaseModel):
    """How one label is shown: ``[task.labels.<name>]``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    display: str | None = Field(
        None, description='The name workers see; unset: the label with "_" as spaces, capitalised.'
    )
    description: str = Field("", description="One or two sentences on when to choose it.")
    example: str = Field("", description="A short example of an item with this label.")


class TaskConfig(BaseModel):
    """The ``[task]`` section: what workers are told about the labeling task."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    title: str = Field(
        "Choose the label that fits",
        description="The task's title, in the HIT list and at the top of the page.",
    )
    instruction: str = Field(
        "Pick the one label that best describes the item. If unsure, pick the most likely one.",
        description="One line under the title: what to do.",
    )
    instructions: str = Field(
        "",
        description="Full instructions in Markdown (rules, edge cases), folded under the one-line instruction; "
        "empty: none.",
    )
    labels: dict[str, LabelDisplay] = Field(
        default_factory=dict,
        description="Per label ([task.labels.<name>]): display, description, example; unset labels are shown "
        "by name.",
    )

    @field_validator("title", "instruction")
    @classmethod
    def _one_line(cls, value: str) -> str:
        if "\n" in value.strip():
            raise ValueError("must be one line; put longer text in task.instructions (Markdown)")
        if not value.strip():
            raise ValueError("must not be empty")
        return value.strip()

    def unknown_labels(self, label_names: Sequence[str]) -> list[str]:
        """Labels described here that the project does not have (a typo would otherwise go unseen)."""
        return sorted(set(self.labels) - set(label_names))

    def display(self, label: str) -> LabelDisplay:
        """How ``label`` is shown, defaults filled in."""
        shown = self.labels.get(label, LabelDisplay())
        if shown.display is not None:
            return shown
        default = label.replace("_", " ").strip() or label
        return shown.model_copy(update={"display": default[:1].upper() + default[1:]})


def shown_payloads(items: pd.DataFrame, kind: str, feature_columns: Sequence[str]) -> pd.Series:
    """What a worker is shown of each item (``item_id`` -> text): the payload, or for a table row without one,
    its first feature values as a JSON object (which the HIT template shows as a small table)."""
    payloads = items.set_index(ITEM_ID)[PAYLOAD]
    if kind != "table" or not feature_columns:
        return payloads
    columns = list(feature_columns)[:TABLE_COLUMNS_SHOWN]
    rows = items.set_index(ITEM_ID)[columns]
    as_json = pd.Series(
        [
            json.dumps({c: _plain(v) for c, v in zip(columns, row, strict=True)})
            for row in rows.itertuples(False)
        ],
        index=rows.index,
        dtype=object,
    )
    return payloads.where(payloads.notna(), as_json)


def _plain(value: object) -> object:
    plain = value.item() if hasattr(value, "item") else value  # numpy scalars are not JSON
    if isinstance(plain, float):
        if not math.isfinite(plain):
            return None  # not JSON
        shown = float(f"{plain:.6g}")  # six digits are plenty for a person
        return int(shown) if shown.is_integer() else shown
    return plain
