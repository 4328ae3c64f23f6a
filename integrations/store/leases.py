"""Leases: one holder per project at a time, for the round lease and (a separate table) the serve lease.

A lease whose holder is stale (a process that died without releasing it) is taken over, so a crash never
blocks the project for good. Taking one serialises on the project's lease (see ``engine.py``), so of two
processes racing for a free or stale lease exactly one gets it, on PostgreSQL as on SQLite.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import delete, select, update

from labelflow.integrations.store.repository import Repository, now
from labelflow.integrations.store.schema import RoundLease, ServeLease


@dataclass(frozen=True)
class LeaseTable(Repository):
    """The project's lease in ``table``."""

    table: type[RoundLease | ServeLease]

    def holder(self) -> str | None:
        with self.db.read() as conn:
            return conn.scalar(select(self.table.holder).where(self.table.project == self.project))

    def acquire(self, holder: str, is_stale: Callable[[str], bool]) -> str | None:
        # Read, judge, write: two processes must not both find the lease free (or stale) and both take it.
        with self.db.write(serialize=f"{self.table.__tablename__}:{self.project}") as conn:
            current = conn.scalar(select(self.table.holder).where(self.table.project == self.project))
            if current is None:
                conn.execute(
                    self.db.insert(self.table).values(project=self.project, holder=holder, acquired_at=now())
                )
                return None
            if current == holder or is_stale(current):
                conn.execute(
                    update(self.table)
                    .where(self.table.project == self.project)
                    .values(holder=holder, acquired_at=now())
                )
                return None
            return str(current)

    def release(self, holder: str) -> None:
        with self.db.write() as conn:
            conn.execute(
                delete(self.table).where(self.table.project == self.project, self.table.holder == holder)
            )
