"""Leases: one holder per project at a time, for the round lease and (a separate table) the serve lease.

A lease records who holds it (host, process id, a token unique to the run, and the Prefect flow run, if any) and
a heartbeat the holder refreshes while it runs. A lease whose holder is stale (a process that died without
releasing it) is taken over, so a crash never blocks the project for good; the caller judges staleness from the
lease, typically by the heartbeat's age and, on the holder's own host, by its process id.

Heartbeats are written and aged by the database's clock, never a host's: hosts whose clocks disagree still agree
on how old a heartbeat is. Taking a lease serialises on the project's lease (see ``engine.py``), so of two
processes racing for a free or stale lease exactly one gets it, on PostgreSQL as on SQLite.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, Connection, delete, func, select, update

from labelflow.integrations.store.repository import Repository, now
from labelflow.integrations.store.schema import RoundLease, ServeLease, UTCDateTime


@dataclass(frozen=True)
class LeaseHolder:
    """Who takes a lease: a process on a host, a token that tells apart two runs one process makes (and a
    reused pid), and the Prefect flow run it runs, if any."""

    host: str
    pid: int
    token: str
    flow_run_id: str | None = None

    def __str__(self) -> str:
        return f"{self.host}:{self.pid}:{self.token}"


@dataclass(frozen=True)
class Lease:
    """A lease as stored, with its heartbeat's age by the database's clock."""

    holder: str
    host: str
    pid: int
    flow_run_id: str | None
    acquired_at: datetime
    heartbeat_age: timedelta

    def __str__(self) -> str:
        return f"{self.holder}, its last heartbeat {self.heartbeat_age.total_seconds():.0f} s ago"


def _database_now() -> ColumnElement[datetime]:
    # SQLite's CURRENT_TIMESTAMP is UTC with whole seconds: ample for timeouts of several seconds.
    return func.current_timestamp(type_=UTCDateTime())


@dataclass(frozen=True)
class LeaseTable(Repository):
    """The project's lease in ``table``."""

    table: type[RoundLease | ServeLease]

    def current(self) -> Lease | None:
        """The lease as it stands, if anyone holds it (it may be a dead process that never released it)."""
        with self.db.read() as conn:
            return self._read(conn)

    def acquire(self, holder: LeaseHolder, is_stale: Callable[[Lease], bool]) -> Lease | None:
        """Take the lease for ``holder``: None on success, else the lease that stands (held by someone alive).

        A lease that ``is_stale`` (its holder died without releasing it) is taken over.
        """
        # Read, judge, write: two processes must not both find the lease free (or stale) and both take it.
        with self.db.write(serialize=f"{self.table.__tablename__}:{self.project}") as conn:
            current = self._read(conn)
            values = {
                "holder": str(holder),
                "host": holder.host,
                "pid": holder.pid,
                "flow_run_id": holder.flow_run_id,
                "acquired_at": now(),
                "heartbeat_at": _database_now(),
            }
            if current is None:
                conn.execute(self.db.insert(self.table).values(project=self.project, **values))
                return None
            if current.holder == str(holder) or is_stale(current):
                conn.execute(update(self.table).where(self.table.project == self.project).values(**values))
                return None
            return current

    def beat(self, holder: LeaseHolder) -> bool:
        """Refresh ``holder``'s heartbeat; False if it no longer holds the lease (it was taken over)."""
        with self.db.write() as conn:
            refreshed = conn.execute(
                update(self.table)
                .where(self.table.project == self.project, self.table.holder == str(holder))
                .values(heartbeat_at=_database_now())
            )
            return bool(refreshed.rowcount)

    def release(self, holder: LeaseHolder) -> None:
        """Give the lease back (only if ``holder`` still has it)."""
        with self.db.write() as conn:
            conn.execute(
                delete(self.table).where(self.table.project == self.project, self.table.holder == str(holder))
            )

    def _read(self, conn: Connection) -> Lease | None:
        row = conn.execute(
            select(
                self.table.holder,
                self.table.host,
                self.table.pid,
                self.table.flow_run_id,
                self.table.acquired_at,
                self.table.heartbeat_at,
                _database_now(),
            ).where(self.table.project == self.project)
        ).one_or_none()
        if row is None:
            return None
        holder, host, pid, flow_run_id, acquired_at, heartbeat_at, database_now = row
        return Lease(holder, host, pid, flow_run_id, acquired_at, database_now - heartbeat_at)
