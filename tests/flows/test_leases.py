"""Holding a lease: its heartbeat thread, and judging a holder dead by its heartbeat (any host) or its pid (this
host)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from labelflow.flows.config import LeaseConfig
from labelflow.flows.leases import holder_is_gone, holding
from labelflow.integrations.prefect_server import wait_for
from labelflow.integrations.store import LabelStore, Lease


def _lease(host: str, pid: int, age_seconds: float) -> Lease:
    return Lease(f"{host}:{pid}:t", host, pid, None, datetime.now(UTC), timedelta(seconds=age_seconds))


def _ended_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_a_holder_is_judged_dead_by_its_heartbeat_from_any_host_and_by_its_pid_on_its_own() -> None:
    here, alive, ended = socket.gethostname(), os.getpid(), _ended_pid()
    judge = {"stale_after_seconds": 60.0}
    assert not holder_is_gone(
        _lease("another-host", 1, 5), **judge
    )  # cannot see its process: fresh heartbeat
    assert holder_is_gone(_lease("another-host", 1, 61), **judge)  # its heartbeat stopped: a killed worker
    assert not holder_is_gone(_lease(here, alive, 5), **judge)
    assert holder_is_gone(
        _lease(here, ended, 5), **judge
    )  # its process ended: dead before its heartbeat is old
    assert holder_is_gone(_lease(here, alive, 61), **judge)  # a silent process (or a reused pid) is dead too


def test_a_lease_config_needs_several_beats_per_timeout() -> None:
    with pytest.raises(ValueError, match=r"at least 3 x lease\.heartbeat_seconds"):
        LeaseConfig(heartbeat_seconds=30, stale_after_seconds=60)


def test_holding_a_lease_keeps_its_heartbeat_fresh_and_gives_it_back(tmp_path: Path) -> None:
    config = LeaseConfig(heartbeat_seconds=0.1, stale_after_seconds=1)
    with LabelStore(f"sqlite:///{tmp_path}/store.db", "cats") as store:
        with holding(store.round_lease, config) as busy:
            assert busy is None
            lease = store.round_lease.current()
            assert lease is not None and lease.pid == os.getpid() and lease.host == socket.gethostname()
            with (
                store.engine.begin() as conn
            ):  # as if it had gone silent an hour ago: the thread beats it fresh
                conn.execute(
                    update(store.round_lease.table).values(
                        heartbeat_at=datetime.now(UTC) - timedelta(hours=1)
                    )
                )
            wait_for(
                lambda: store.round_lease.current().heartbeat_age < timedelta(seconds=5), 10, "a heartbeat"
            )  # type: ignore[union-attr]
            with holding(store.round_lease, config) as second:  # a second holder, alive: refused
                assert second is not None and second.holder == lease.holder
        assert store.round_lease.current() is None
