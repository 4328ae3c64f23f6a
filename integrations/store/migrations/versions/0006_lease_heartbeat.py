"""Lease heartbeats: a lease records its holder's host, process id and flow run, and a heartbeat the holder
refreshes, so that a holder on another host is judged dead when its heartbeat stops.

Revision ID: 0006_lease_heartbeat
Revises: 0005
Create Date: 2026-12-02

A lease taken before this migration gets its host and pid from its holder (``host:pid:token``) and its
acquisition time as its last heartbeat: a holder that is still alive refreshes it within its next beat.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_lease_heartbeat"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NAME = sa.String(200)
TABLES = ("round_leases", "serve_leases")


def _host_and_pid(holder: str) -> tuple[str, int]:
    host, _, rest = holder.partition(":")
    pid = rest.partition(":")[0]
    return host, int(pid) if pid.isdigit() else 0


def upgrade() -> None:
    conn = op.get_bind()
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("host", NAME, nullable=True))
            batch.add_column(sa.Column("pid", sa.Integer(), nullable=True))
            batch.add_column(sa.Column("flow_run_id", NAME, nullable=True))
            batch.add_column(sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True))
        leases = sa.table(
            table,
            sa.column("project"),
            sa.column("holder"),
            sa.column("host"),
            sa.column("pid"),
            sa.column("acquired_at"),
            sa.column("heartbeat_at"),
        )
        for project, holder in conn.execute(sa.select(leases.c.project, leases.c.holder)).all():
            host, pid = _host_and_pid(holder)
            conn.execute(
                leases.update()
                .where(leases.c.project == project)
                .values(host=host, pid=pid, heartbeat_at=leases.c.acquired_at)
            )
        with op.batch_alter_table(table) as batch:
            batch.alter_column("host", existing_type=NAME, nullable=False)
            batch.alter_column("pid", existing_type=sa.Integer(), nullable=False)
            batch.alter_column("heartbeat_at", existing_type=sa.DateTime(timezone=True), nullable=False)


def downgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            for column in ("heartbeat_at", "flow_run_id", "pid", "host"):
                batch.drop_column(column)
