"""Files ingested from the inbox (idempotent on their checksum) and the per-project round lease.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NAME = sa.String(200)
ENUM = sa.String(16)


def upgrade() -> None:
    op.create_table(
        "ingested_files",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project", NAME, nullable=False),
        sa.Column("checksum", sa.String(64), nullable=False),
        sa.Column("filename", sa.Text(), nullable=False),
        sa.Column("stored_at", sa.Text(), nullable=False),
        sa.Column("status", ENUM, nullable=False),
        sa.Column("n_rows", sa.Integer(), nullable=False),
        sa.Column("n_added", sa.Integer(), nullable=False),
        sa.Column("report", sa.Text(), nullable=True),
        sa.Column("ingested_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ingested_files")),
        sa.UniqueConstraint("project", "checksum", name=op.f("uq_ingested_files_project_checksum")),
        sa.CheckConstraint("status IN ('processed', 'quarantined')", name=op.f("ck_ingested_files_status")),
    )
    op.create_table(
        "round_leases",
        sa.Column("project", NAME, nullable=False),
        sa.Column("holder", NAME, nullable=False),
        sa.Column("acquired_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("project", name=op.f("pk_round_leases")),
    )


def downgrade() -> None:
    op.drop_table("round_leases")
    op.drop_table("ingested_files")
