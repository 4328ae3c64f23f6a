"""Expert work: a label request or an answer may be an expert's (an item the crowd disagreed on, escalated, or a
label sent for review), and an expert's answer wins in aggregation.

Revision ID: 0007
Revises: 0006_lease_heartbeat
Create Date: 2026-12-02

Rows stored before this migration are the crowd's: both columns default to false.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006_lease_heartbeat"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("label_requests", "answers")


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.add_column(
                sa.Column("is_expert", sa.Boolean(), server_default=sa.text("false"), nullable=False)
            )


def downgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("is_expert")
