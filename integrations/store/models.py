"""Model versions: every trained model of the project's rounds; the champion is the latest promoted one."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Final

import pandas as pd
from sqlalchemy import ColumnElement, select
from sqlalchemy.exc import IntegrityError

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
        """Record the round's model; a round that already has one (a rerun after a kill) gets that one back."""
        existing = self.of_round(round_id)
        if existing is not None:
            return existing
        clean_metrics = {str(k): float(v) for k, v in metrics.items()}
        try:
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
        except IntegrityError:
            # Another process registered the round's model between our read and our insert.
            raced = self.of_round(round_id)
            if raced is None:
                raise
            return raced
        return ModelVersionRecord(
            version_id, int(round_id), str(path), float(accuracy), clean_metrics, bool(promoted)
        )

    def of_round(self, round_id: int) -> ModelVersionRecord | None:
        """The model version recorded for the round, if any."""
        return self._first(ModelVersion.round_id == int(round_id))

    def champion(self, excluding_round: int | None = None) -> ModelVersionRecord | None:
        """The latest promoted version, leaving out ``excluding_round``'s own model (the round being compared)."""
        condition: ColumnElement[bool] = ModelVersion.promoted.is_(True)
        if excluding_round is not None:
            condition = condition & (ModelVersion.round_id != int(excluding_round))
        return self._first(condition)

    def _first(self, condition: ColumnElement[bool]) -> ModelVersionRecord | None:
        """The latest of the project's versions that meet ``condition``."""
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
                .where(ModelVersion.project == self.project, condition)
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
