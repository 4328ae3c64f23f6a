"""Worker quality: each worker's Raykar-Yu spammer score and confusion matrix.

Revision ID: 0002
Revises: 0001
Create Date: 2026-05-10

Hand-written and frozen like 0001. Both columns are nullable: workers stored before this migration simply have
no score yet, and the next review fills them in.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("workers") as batch:
        batch.add_column(sa.Column("spammer_score", sa.Float(), nullable=True))
        # JSON: {"labels": [...], "matrix": [[...], ...]}, rows the true label, columns the answer
        batch.add_column(sa.Column("confusion", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("workers") as batch:
        batch.drop_column("confusion")
        batch.drop_column("spammer_score")
