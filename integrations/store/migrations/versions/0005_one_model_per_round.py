"""One model version per round: a rerun of a round after a kill reuses the round's model row instead of adding
a second one (which was promoted too and then counted as the round's own "previous champion").

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02

A store written before this migration may already hold several rows for one round; the latest of them is kept,
because the rerun that wrote it also wrote the model file they all point at.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        "DELETE FROM model_versions WHERE id NOT IN "
        "(SELECT max(id) FROM model_versions GROUP BY project, round_id)"
    )
    with op.batch_alter_table("model_versions") as batch:
        batch.create_unique_constraint(op.f("uq_model_versions_project_round_id"), ["project", "round_id"])


def downgrade() -> None:
    with op.batch_alter_table("model_versions") as batch:
        batch.drop_constraint(op.f("uq_model_versions_project_round_id"), type_="unique")
