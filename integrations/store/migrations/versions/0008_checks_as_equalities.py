"""The CHECKs on a column's allowed values as equalities (``source = 'crowd' OR ...``) instead of ``IN (...)``:
SQLite builds a temporary index for an ``IN`` list for every row inserted, which doubled the time to store a
round's 1.8M pseudo-labels or a 2M-item pool. The values allowed are the same.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02

On SQLite each table is copied once (its constraints cannot be altered in place): seconds for a 2M-item store.
``rounds`` keeps its ``IN``: a project has few rounds, and SQLite cannot copy a table other tables' foreign keys
point at while they are enforced.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# table, column, allowed values: as they are at this revision (migrations do not follow the ORM's later changes)
CHECKS = (
    ("items", "item_set", ("pool", "gold", "held_out")),
    ("labels", "source", ("crowd", "model", "functions")),
    ("workers", "status", ("active", "blocked")),
    ("ingested_files", "status", ("processed", "quarantined")),
)


def _replace_checks(condition: Callable[[str, tuple[str, ...]], str]) -> None:
    for table, column, values in CHECKS:
        with op.batch_alter_table(table) as batch:
            batch.drop_constraint(op.f(f"ck_{table}_{column}"), type_="check")
            batch.create_check_constraint(column, condition(column, values))


def upgrade() -> None:
    _replace_checks(lambda column, values: " OR ".join(f"{column} = {value!r}" for value in values))


def downgrade() -> None:
    _replace_checks(lambda column, values: f"{column} IN ({', '.join(repr(value) for value in values)})")
