"""Holding a project's lease (the round lease, the serve lease): who holds it, its heartbeat, and whether a
holder can still give it back.

The store keeps the leases; these helpers name the holder, refresh its heartbeat while it runs, and judge it dead,
so that a lease whose process was killed, on this host or another, is taken over instead of blocking the project.

The heartbeat is a background thread, not a beat at each task boundary: a round's steps have no bound on their
length (a selection over a large pool, a wave's hold, a training), so a beat per step would need a timeout longer
than the longest step. A thread beats every ``lease.heartbeat_seconds`` whatever the round is doing, and stops
exactly when the process does — which is what a heartbeat must tell. (A process that hangs keeps beating: a hung
round is a bug to see in the Prefect UI, not a dead holder.)
"""

from __future__ import annotations

import os
import socket
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial

from prefect.logging import get_logger
from prefect.runtime import flow_run

from labelflow.flows.config import LeaseConfig
from labelflow.integrations.store import Lease, LeaseHolder
from labelflow.integrations.store.leases import LeaseTable


def lease_holder() -> LeaseHolder:
    """Who this process is, for a lease: host, process id, a token unique to this run, and its flow run."""
    return LeaseHolder(socket.gethostname(), os.getpid(), uuid.uuid4().hex[:8], flow_run.get_id())


def holder_is_gone(lease: Lease, *, stale_after_seconds: float) -> bool:
    """The holder will never give the lease back: its heartbeat stopped ``stale_after_seconds`` ago (from any
    host), or it ran on this host and its process has ended (known at once, before its heartbeat is stale)."""
    if lease.heartbeat_age.total_seconds() > stale_after_seconds:
        return True
    if lease.host != socket.gethostname():
        return False  # another host's processes cannot be seen; its heartbeat is fresh
    try:
        os.kill(lease.pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


@contextmanager
def holding(lease: LeaseTable, config: LeaseConfig) -> Iterator[Lease | None]:
    """Take ``lease`` (over from a dead holder too) and keep its heartbeat going until the block ends, then give
    it back. Yields None when taken; else the lease that stands, held by someone alive: do nothing then."""
    holder = lease_holder()
    busy = lease.acquire(
        holder, is_stale=partial(holder_is_gone, stale_after_seconds=config.stale_after_seconds)
    )
    if busy is not None:
        yield busy
        return
    stop = threading.Event()
    beating = threading.Thread(
        target=_beat, args=(lease, holder, config, stop), name=f"heartbeat-{holder}", daemon=True
    )
    beating.start()
    try:
        yield None
    finally:
        stop.set()
        beating.join()
        lease.release(holder)


def _beat(lease: LeaseTable, holder: LeaseHolder, config: LeaseConfig, stop: threading.Event) -> None:
    logger = get_logger("labelflow.leases")
    while not stop.wait(config.heartbeat_seconds):
        try:
            if not lease.beat(holder):
                logger.error(
                    "the %s of %s was taken over from %s: its heartbeat had not reached the store for %.0f s",
                    lease.table.__tablename__.removesuffix("s").replace("_", " "),
                    lease.project,
                    holder,
                    config.stale_after_seconds,
                )
                return
        except (
            Exception
        ) as error:  # the database out of reach for a moment: a later beat may still be in time
            logger.warning("the lease's heartbeat did not reach the store (%s); trying again", error)
