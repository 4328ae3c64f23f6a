"""Ingested files, remembered by content checksum so that the same content is never ingested twice."""

from __future__ import annotations

from typing import Any, Final

import pandas as pd

from labelflow.integrations.store.repository import Repository, now, select_columns
from labelflow.integrations.store.schema import IngestedFile

INGESTED_FILE_COLUMNS: Final = (
    "checksum",
    "filename",
    "stored_at",
    "status",
    "n_rows",
    "n_added",
    "report",
    "ingested_at",
)


class IngestionTable(Repository):
    """The files ingested into the project."""

    def get(self, checksum: str) -> dict[str, Any] | None:
        files = self.read()
        match = files[files["checksum"] == checksum]
        return None if match.empty else dict(match.iloc[0])

    def record(
        self,
        *,
        checksum: str,
        filename: str,
        stored_at: str,
        status: str,
        n_rows: int,
        n_added: int,
        report: str | None = None,
    ) -> bool:
        with self.db.write() as conn:
            result = conn.execute(
                self.db.insert_new(IngestedFile)
                .values(
                    project=self.project,
                    checksum=checksum,
                    filename=filename,
                    stored_at=stored_at,
                    status=status,
                    n_rows=int(n_rows),
                    n_added=int(n_added),
                    report=report,
                    ingested_at=now(),
                )
                # RETURNING, not rowcount, tells whether the row went in: on PostgreSQL SQLAlchemy fetches the
                # new id with an implicit RETURNING, after which the rowcount is -1 either way.
                .returning(IngestedFile.id)
            )
            return result.first() is not None

    def read(self, status: str | None = None) -> pd.DataFrame:
        query = select_columns(IngestedFile, INGESTED_FILE_COLUMNS).where(
            IngestedFile.project == self.project
        )
        if status is not None:
            query = query.where(IngestedFile.status == status)
        return self.read_frame(query.order_by(IngestedFile.id), INGESTED_FILE_COLUMNS)
