"""The per-project serve lease: which ``labelflow serve`` process runs the project's deployments.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NAME = sa.String(200)


def upgrade() -> None:
    op.create_table(
        "serve_leases",
        sa.Column("project", NAME, nullable=False),
        sa.Column("holder", NAME, nullable=False),
        sa.Column("acquired_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("project", name=op.f("pk_serve_leases")),
    )


def downgrade() -> None:
    op.drop_table("serve_leases")
