"""Which pool-store partitions have all their items in ``items``, so that a round registers only new ones.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03

Empty after the upgrade: the next round registers every partition once more (the items are there already, so
nothing is added) and lists them.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "registered_partitions",
        sa.Column("project", sa.String(200), nullable=False),
        sa.Column("partition", sa.String(200), nullable=False),
        sa.Column("n_items", sa.Integer(), nullable=False),
        sa.Column("registered_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("project", "partition", name=op.f("pk_registered_partitions")),
    )


def downgrade() -> None:
    op.drop_table("registered_partitions")
