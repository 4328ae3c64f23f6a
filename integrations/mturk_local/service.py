"""The local MTurk endpoint's account: one SQLite file, its clock, the injected faults, and the calls' dispatch.

Time is wall-clock time plus an offset that the admin path advances (fast-forward) and that ``time_scale`` grows,
so tests and offline demos do not wait hours. As time passes, simulated workers' assignments become visible and
answers nobody reviewed are approved automatically. The operations themselves are in :mod:`.api`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from labelflow.integrations.crowd.simulated import SimulatedCrowdConfig
from labelflow.integrations.mturk_local.api import MTurkApi
from labelflow.integrations.mturk_local.faults import Faults, MTurkFault, load_faults, save_faults, take_fault
from labelflow.integrations.mturk_local.schema import EndpointDatabase
from labelflow.integrations.mturk_local.worker_site import WorkerSite
from labelflow.integrations.mturk_local.workers import SimulatedWorkers

T = TypeVar("T")


class LocalMTurk:
    """An MTurk requester account in a SQLite file, with simulated workers behind it.

    ``truth`` maps item ids (the HITs' RequesterAnnotation) to their true labels; workers answer other items at
    random. ``workers`` is the simulated crowd's config (worker mix, accuracy, latency, seed). With ``people``,
    no simulated worker takes assignments: they wait for people on the worker pages (:attr:`site`).
    """

    def __init__(
        self,
        db_path: Path,
        *,
        truth: Mapping[str, str] | None = None,
        workers: SimulatedCrowdConfig | None = None,
        time_scale: float = 1.0,
        people: bool = False,
    ) -> None:
        self.db_path = Path(db_path)
        self.time_scale = time_scale
        self._lock = threading.RLock()
        self._db = EndpointDatabase(self.db_path)
        simulated = None if people else SimulatedWorkers(workers or SimulatedCrowdConfig(), truth or {})
        self._api = MTurkApi(self._db, simulated)
        self._site = WorkerSite(self._db, self._api)
        self._last_tick = time.time()

    @property
    def operations(self) -> list[str]:
        return sorted(self._api.operations)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # ------------------------------------------------------------------ time

    def now(self) -> float:
        """The endpoint's time (epoch seconds): wall-clock time plus the fast-forward offset."""
        with self._lock:
            return self._db.now()

    def advance(self, seconds: float) -> float:
        """Fast-forward the endpoint's clock; returns the new time."""
        with self._lock, self._db.transaction():
            self._db.shift(max(0.0, seconds))
        return self.now()

    def _tick(self) -> None:
        # time_scale > 1 makes time run faster: the wall-clock time since the last request counts scale times.
        wall = time.time()
        if self.time_scale != 1.0:
            self._db.shift((wall - self._last_tick) * (self.time_scale - 1.0))
        self._last_tick = wall
        now = wall + self._db.offset()
        self._db.execute(
            "UPDATE assignments SET status = 'Submitted' WHERE status = 'Scheduled' AND submit_time <= ? "
            "AND accept_time < (SELECT expiration FROM hits WHERE hits.id = assignments.hit_id)",
            (now,),
        )
        self._db.execute(
            "UPDATE assignments SET status = 'Approved', decided_at = submit_time + "
            "(SELECT json_extract(ht.params, '$.AutoApprovalDelayInSeconds') FROM hits h JOIN hit_types ht "
            " ON ht.id = h.hit_type_id WHERE h.id = assignments.hit_id) "
            "WHERE status = 'Submitted' AND submit_time + (SELECT json_extract(ht.params, "
            "'$.AutoApprovalDelayInSeconds') FROM hits h JOIN hit_types ht ON ht.id = h.hit_type_id "
            "WHERE h.id = assignments.hit_id) <= ?",
            (now,),
        )

    # ------------------------------------------------------------------ what tests set and read

    @property
    def faults(self) -> Faults:
        with self._lock:
            return load_faults(self._db)

    def set_faults(self, faults: Faults) -> None:
        with self._lock, self._db.transaction():
            save_faults(self._db, faults)

    def set_balance(self, dollars: float) -> None:
        with self._lock, self._db.transaction():
            self._db.set_balance(dollars)

    def counter(self, name: str) -> int:
        """One call counter, e.g. ``hits_created``, ``call:GetHIT``, ``reply:<error code>``, ``fault:throttle``."""
        return self.counters().get(name, 0)

    def counters(self) -> dict[str, int]:
        with self._lock:
            return self._db.counters()

    def state(self) -> dict[str, Any]:
        """What a test asks the endpoint: its time, call counters, HITs, assignments by status, balance."""
        with self._lock, self._db.transaction():
            self._tick()
            statuses = {
                row["status"]: int(row["n"])
                for row in self._db.execute("SELECT status, count(*) AS n FROM assignments GROUP BY status")
            }
            return {
                "now": self.now(),
                "counters": self.counters(),
                "hits": int(self._db.execute("SELECT count(*) FROM hits").fetchone()[0]),
                "assignments": statuses,
                "balance": self._db.balance(),
                "blocked": sorted(
                    row["worker_id"]
                    for row in self._db.execute("SELECT worker_id FROM worker_qualifications")
                ),
                "faults": self.faults.__dict__,
            }

    # ------------------------------------------------------------------ the worker's side

    def worker(self, action: Callable[[WorkerSite], T]) -> T:
        """Run one worker action (accept, a page, submit) on the worker site, in a transaction at the
        endpoint's current time; raises :class:`~.worker_site.WorkerError` for what the worker is told instead."""
        with self._lock, self._db.transaction():
            self._tick()
            return action(self._site)

    # ------------------------------------------------------------------ calls

    def handle(self, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        """Run one (already validated) operation; raises :class:`MTurkFault` for an error reply."""
        method = self._api.operations.get(operation)
        if method is None:
            raise MTurkFault(
                "UnknownOperationException", f"the local endpoint does not implement {operation}"
            )
        with self._lock:
            try:
                with self._db.transaction():
                    # Calls and injected faults are counted even when the operation itself fails.
                    self._db.count(f"call:{operation}")
                    fault = take_fault(self._db, operation)
                if fault is not None:
                    raise fault
                with self._db.transaction():
                    self._tick()
                    return method(params)
            except MTurkFault as fault:
                with self._db.transaction():
                    self._db.count(f"reply:{fault.turk_code or fault.code}")
                raise
