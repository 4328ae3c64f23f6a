"""Initial label store schema: items, rounds, label requests, answers, labels, workers, model versions.

Revision ID: 0001
Revises:
Create Date: 2026-05-09

Hand-written and frozen: it spells out types and constraint names instead of importing the ORM classes, so a
later change to ``schema.py`` cannot change what this migration did. Names are wrapped in ``op.f`` so that the
target metadata's naming convention is not applied a second time.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.String(512)
NAME = sa.String(200)
ENUM = sa.String(16)


def _ts(name: str, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "items",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project", NAME, nullable=False),
        sa.Column("item_id", ID, nullable=False),
        sa.Column("item_set", ENUM, nullable=False),
        sa.Column("known_label", NAME, nullable=True),
        _ts("added_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_items")),
        sa.UniqueConstraint("project", "item_id", name=op.f("uq_items_project_item_id")),
        sa.CheckConstraint("item_set IN ('pool', 'gold', 'held_out')", name=op.f("ck_items_item_set")),
    )
    op.create_table(
        "rounds",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project", NAME, nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("status", ENUM, nullable=False),
        _ts("started_at"),
        _ts("finished_at", nullable=True),
        sa.Column("summary", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rounds")),
        sa.UniqueConstraint("project", "number", name=op.f("uq_rounds_project_number")),
        sa.CheckConstraint("status IN ('running', 'completed', 'failed')", name=op.f("ck_rounds_status")),
    )
    # At most one running round per project.
    op.create_index(
        op.f("uq_rounds_one_running"),
        "rounds",
        ["project"],
        unique=True,
        sqlite_where=sa.text("status = 'running'"),
        postgresql_where=sa.text("status = 'running'"),
    )
    op.create_table(
        "label_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("request_key", ID, nullable=False),
        sa.Column("round_id", sa.Integer(), nullable=False),
        sa.Column("item_id", ID, nullable=False),
        sa.Column("wave", sa.Integer(), nullable=False),
        sa.Column("n_answers", sa.Integer(), nullable=False),
        sa.Column("answers_before", sa.Integer(), nullable=False),
        sa.Column("is_gold", sa.Boolean(), nullable=False),
        sa.Column("external_id", ID, nullable=True),
        _ts("published_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_label_requests")),
        sa.ForeignKeyConstraint(["round_id"], ["rounds.id"], name=op.f("fk_label_requests_round_id_rounds")),
        sa.UniqueConstraint("request_key", name=op.f("uq_label_requests_request_key")),
        sa.UniqueConstraint(
            "round_id", "item_id", "wave", name=op.f("uq_label_requests_round_id_item_id_wave")
        ),
    )
    op.create_table(
        "answers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("answer_id", ID, nullable=False),
        sa.Column("request_key", ID, nullable=False),
        sa.Column("round_id", sa.Integer(), nullable=False),
        sa.Column("item_id", ID, nullable=False),
        sa.Column("worker_id", ID, nullable=False),
        sa.Column("wave", sa.Integer(), nullable=False),
        sa.Column("is_gold", sa.Boolean(), nullable=False),
        sa.Column("raw", sa.Text(), nullable=False),
        sa.Column("label", NAME, nullable=True),
        sa.Column("parse_error", sa.Text(), nullable=True),
        _ts("submitted_at"),
        _ts("collected_at"),
        sa.Column("backend", NAME, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_answers")),
        sa.ForeignKeyConstraint(["round_id"], ["rounds.id"], name=op.f("fk_answers_round_id_rounds")),
        sa.UniqueConstraint("answer_id", name=op.f("uq_answers_answer_id")),
    )
    op.create_index(op.f("ix_answers_round_id_item_id"), "answers", ["round_id", "item_id"])
    op.create_table(
        "labels",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("round_id", sa.Integer(), nullable=False),
        sa.Column("item_id", ID, nullable=False),
        sa.Column("label", NAME, nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("method", NAME, nullable=False),
        sa.Column("n_answers", sa.Integer(), nullable=False),
        sa.Column("source", ENUM, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_labels")),
        sa.ForeignKeyConstraint(["round_id"], ["rounds.id"], name=op.f("fk_labels_round_id_rounds")),
        sa.UniqueConstraint("round_id", "item_id", "source", name=op.f("uq_labels_round_id_item_id_source")),
        sa.CheckConstraint("source IN ('crowd', 'model', 'functions')", name=op.f("ck_labels_source")),
    )
    op.create_table(
        "workers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project", NAME, nullable=False),
        sa.Column("worker_id", ID, nullable=False),
        sa.Column("backend", NAME, nullable=False),
        sa.Column("status", ENUM, nullable=False),
        sa.Column("n_answers", sa.Integer(), nullable=False),
        sa.Column("accuracy", sa.Float(), nullable=True),
        sa.Column("n_gold", sa.Integer(), nullable=False),
        _ts("updated_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_workers")),
        sa.UniqueConstraint(
            "project", "backend", "worker_id", name=op.f("uq_workers_project_backend_worker_id")
        ),
        sa.CheckConstraint("status IN ('active', 'blocked')", name=op.f("ck_workers_status")),
    )
    op.create_table(
        "model_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project", NAME, nullable=False),
        sa.Column("round_id", sa.Integer(), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("accuracy", sa.Float(), nullable=False),
        sa.Column("metrics", sa.Text(), nullable=False),
        sa.Column("promoted", sa.Boolean(), nullable=False),
        _ts("created_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_versions")),
        sa.ForeignKeyConstraint(["round_id"], ["rounds.id"], name=op.f("fk_model_versions_round_id_rounds")),
    )
    op.create_index(op.f("ix_model_versions_project"), "model_versions", ["project"])


def downgrade() -> None:
    op.drop_index(op.f("ix_model_versions_project"), table_name="model_versions")
    op.drop_table("model_versions")
    op.drop_table("workers")
    op.drop_table("labels")
    op.drop_index(op.f("ix_answers_round_id_item_id"), table_name="answers")
    op.drop_table("answers")
    op.drop_table("label_requests")
    op.drop_index(op.f("uq_rounds_one_running"), table_name="rounds")
    op.drop_table("rounds")
    op.drop_table("items")
