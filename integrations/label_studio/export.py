"""Labels to Label Studio's task format and back: each label a prediction with its confidence as the score, so a
team can inspect a round's labels (and correct them) in the tool it uses.

A task is ``{"data": {<field>: <payload>, "labelflow_item": <id>}, "predictions": [{"model_version": "labelflow
<source> round <n>", "score": <confidence>, "result": [<the choice>]}]}``; Label Studio imports a JSON list of
them as is, and its own JSON export gives them back with any annotations the team added, which win on reading.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from labelflow.contracts import ITEM_ID
from labelflow.integrations.label_studio.config import DATA_FIELD, ItemKind, choice_prediction
from labelflow.integrations.label_studio.crowd import ITEM_KEY, parse_result


class LabelStudioExportError(ValueError):
    """A Label Studio export that cannot be read back; the message names the task."""


def label_studio_tasks(
    labels: pd.DataFrame, payloads: Mapping[str, object], kind: ItemKind
) -> list[dict[str, Any]]:
    """Tasks for ``labels`` (item_id, label, confidence, source, and round if present), showing each item's
    payload (its text, image URL, or row as a mapping)."""
    field = DATA_FIELD[kind]
    tasks = []
    for row in labels.to_dict("records"):
        item = str(row[ITEM_ID])
        version = f"labelflow {row.get('source', 'label')}" + (
            f" round {int(row['round'])}" if pd.notna(row.get("round")) else ""
        )
        tasks.append(
            {
                "data": {field: payloads.get(item), ITEM_KEY: item},
                "predictions": [
                    choice_prediction(str(row["label"]), float(row["confidence"]), kind, version)
                ],
            }
        )
    return tasks


def read_label_studio_export(path: Path, label_names: Sequence[str]) -> pd.DataFrame:
    """The labels of a Label Studio JSON export (or of :func:`label_studio_tasks`' file): per task, its latest
    annotation (``source`` = ``annotation``, confidence 1) or else its best-scored prediction (``prediction``,
    its score). Columns item_id, label, confidence, source. Tasks with neither are left out."""
    try:
        tasks = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise LabelStudioExportError(f"{path}: not a Label Studio JSON export ({error})") from None
    if not isinstance(tasks, list):
        raise LabelStudioExportError(f"{path}: a Label Studio JSON export is a list of tasks")
    rows = []
    for number, task in enumerate(tasks):
        data = task.get("data", {}) if isinstance(task, dict) else {}
        item = data.get(ITEM_KEY)
        if item is None:
            raise LabelStudioExportError(
                f"{path}: task {number} has no data.{ITEM_KEY}; it is not labelflow's"
            )
        annotations = [a for a in task.get("annotations", []) if not a.get("was_cancelled")]
        if annotations:
            latest = max(annotations, key=lambda a: (str(a.get("updated_at", "")), int(a.get("id", 0))))
            label, problem = parse_result(latest.get("result"), label_names)
            confidence, source = 1.0, "annotation"
        elif task.get("predictions"):
            predictions = [p for p in task["predictions"] if isinstance(p, dict)]
            if not predictions:
                raise LabelStudioExportError(
                    f"{path}: task {number} (item {item!r}) lists its predictions by id only (Label Studio's "
                    "quick JSON export does): save the tasks with GET /api/tasks/?project=<id>&fields=all instead"
                )
            best = max(predictions, key=lambda p: float(p.get("score") or 0))
            label, problem = parse_result(best.get("result"), label_names)
            confidence, source = float(best.get("score") or 0), "prediction"
        else:
            continue
        if problem:
            raise LabelStudioExportError(f"{path}: task {number} (item {item!r}): {problem}")
        rows.append({ITEM_ID: str(item), "label": label, "confidence": confidence, "source": source})
    return pd.DataFrame(rows, columns=[ITEM_ID, "label", "confidence", "source"])
