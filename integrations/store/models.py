"""Model versions: every trained model of the project's rounds; the champion is the latest promoted one."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Final

import pandas as pd
from sqlalchemy import select

from labelflow.integrations.store.repository import Repository, dumps, frame, now
from labelflow.integrations.store.schema import ModelVersion, Round

MODEL_VERSION_COLUMNS: Final = (
    "id",
    "round_id",
    "round_number",
    "path",
    "accuracy",
    "metrics",
    "promoted",
    "created_at",
)


@dataclass(frozen=True)
class ModelVersionRecord:
    """A recorded model version; the champion is the latest one with ``promoted`` set."""

    id: int
    round_id: int
    path: str
    accuracy: float
    metrics: dict[str, float]
    promoted: bool


class ModelVersionTable(Repository):
    """The project's model versions."""

    def add(
        self, round_id: int, path: str, accuracy: float, metrics: dict[str, float], promoted: bool
    ) -> ModelVersionRecord:
        clean_metrics = {str(k): float(v) for k, v in metrics.items()}
        with self.db.write() as conn:
            self.require_rounds(conn, [int(round_id)])
            version_id = conn.execute(
                self.db.insert(ModelVersion)
                .values(
                    project=self.project,
                    round_id=int(round_id),
                    path=str(path),
                    accuracy=float(accuracy),
                    metrics=dumps(clean_metrics),
                    promoted=bool(promoted),
                    created_at=now(),
                )
                .returning(ModelVersion.id)
            ).scalar_one()
        return ModelVersionRecord(
            version_id, int(round_id), str(path), float(accuracy), clean_metrics, bool(promoted)
        )

    def champion(self) -> ModelVersionRecord | None:
        with self.db.read() as conn:
            row = conn.execute(
                select(
                    ModelVersion.id,
                    ModelVersion.round_id,
                    ModelVersion.path,
                    ModelVersion.accuracy,
                    ModelVersion.metrics,
                    ModelVersion.promoted,
                )
                .where(ModelVersion.project == self.project, ModelVersion.promoted.is_(True))
                .order_by(ModelVersion.id.desc())
                .limit(1)
            ).first()
        if row is None:
            return None
        return ModelVersionRecord(
            row.id, row.round_id, row.path, row.accuracy, json.loads(row.metrics), row.promoted
        )

    def read(self) -> pd.DataFrame:
        with self.db.read() as conn:
            rows = conn.execute(
                select(
                    ModelVersion.id,
                    ModelVersion.round_id,
                    Round.number,
                    ModelVersion.path,
                    ModelVersion.accuracy,
                    ModelVersion.metrics,
                    ModelVersion.promoted,
                    ModelVersion.created_at,
                )
                .join(Round, Round.id == ModelVersion.round_id)
                .where(ModelVersion.project == self.project)
                .order_by(ModelVersion.id)
            ).all()
        versions = frame(rows, MODEL_VERSION_COLUMNS)
        versions["metrics"] = pd.Series(
            [json.loads(row.metrics) for row in rows], index=versions.index, dtype="object"
        )
        return versions
