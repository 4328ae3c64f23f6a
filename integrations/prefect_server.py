"""A real Prefect server in a child process, on a free loopback port with its own PREFECT_HOME, and
``labelflow serve`` in another one pointed at it; and the temporary server ``labelflow run`` and ``demo`` start
when PREFECT_API_URL is not set, which dies with them whatever kills them.

The server tests and the serving benchmark need one that behaves as a user's ``prefect server start`` does, not
the in-process test harness; this starts exactly that command. The port goes in through the environment (with
``--port`` alone the UI would still call the API on 4200), and the scheduler and the runner poll every second so
that a scheduled or triggered run starts within a second or two of being created.
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sized
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def is_healthy(api_url: str) -> bool:
    try:
        return httpx.get(f"{api_url}/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@contextmanager
def local_prefect_server(
    home: Path, *, timeout: float = 90.0, die_with_parent: bool = False, database_url: str | None = None
) -> Iterator[dict[str, str]]:
    """Start ``prefect server start`` with ``home`` as its PREFECT_HOME (its SQLite database and log
    ``server.log`` go there); yield the environment that points a process at it; stop it on exit.

    ``die_with_parent``: the kernel sends the server SIGTERM when the thread that started it ends, even by
    SIGKILL, when no ``finally`` runs (Linux's parent-death signal; start it from the main thread then).

    ``database_url``: the server's database instead of SQLite in ``home``, e.g. PostgreSQL as
    ``postgresql+asyncpg://prefect@db:5432/prefect`` (Prefect's PREFECT_API_DATABASE_CONNECTION_URL; asyncpg
    reads the password from PGPASSWORD). The server creates its tables there when it starts."""
    home.mkdir(parents=True, exist_ok=True)
    port = free_port()
    database = {"PREFECT_API_DATABASE_CONNECTION_URL": database_url} if database_url else {}
    env = {
        **os.environ,
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_API_HOST": "127.0.0.1",
        "PREFECT_SERVER_API_PORT": str(port),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "1",
        "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
        "PREFECT_RUNNER_POLL_FREQUENCY": "1",
        "PREFECT_SERVER_DATABASE_TIMEOUT": "60",
        **database,
    }
    with (home / "server.log").open("w") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "prefect", "server", "start"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_terminate_with(os.getpid()) if die_with_parent else None,
        )
        try:
            deadline = time.monotonic() + timeout
            while not is_healthy(env["PREFECT_API_URL"]):
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"the Prefect server did not become healthy within {timeout:.0f} s; "
                        f"see {home / 'server.log'}"
                    )
                time.sleep(0.3)
            yield env
        finally:
            stop_process_group(server)


PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def _terminate_with(parent_pid: int) -> Callable[[], None]:
    """A ``preexec_fn``: the child gets SIGTERM when its parent dies, including by SIGKILL (a process group
    cannot do that: nothing signals the group when its leader is killed)."""

    def set_parent_death_signal() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
        if os.getppid() != parent_pid:  # the parent died before the signal was armed
            os.kill(os.getpid(), signal.SIGTERM)

    return set_parent_death_signal


@contextmanager
def prefect_api(home: Path | None = None) -> Iterator[str]:
    """The Prefect API this process's flow runs report to, for as long as the block runs: PREFECT_API_URL if
    set; otherwise a temporary ``prefect server start`` keeping its database in ``home`` (by default the
    user's PREFECT_HOME, as Prefect's own temporary server does), which dies with this process whatever kills
    it.

    Prefect's own temporary server (its ephemeral mode) is a child that outlives a SIGKILL or SIGTERM of this
    process, ~230 MB each time, hence a server of ours."""
    from prefect.settings import PREFECT_API_URL, PREFECT_HOME, temporary_settings

    configured = PREFECT_API_URL.value()  # from the environment, the Prefect profile or temporary settings
    if configured:
        yield str(configured)
        return
    with local_prefect_server(home or PREFECT_HOME.value(), die_with_parent=True) as env:
        url = env["PREFECT_API_URL"]
        os.environ["PREFECT_API_URL"] = url  # for processes this one starts
        try:
            with temporary_settings(updates={PREFECT_API_URL: url}):
                try:
                    yield url
                finally:  # a failed run's logs too: undelivered, they held the exit for a minute of retries
                    _deliver_pending_logs_and_events()
        finally:
            del os.environ["PREFECT_API_URL"]


def _deliver_pending_logs_and_events() -> None:
    """Send the run logs and events still queued in this process while their server lives: after it stops,
    Prefect's workers would print "Error logging to API" at exit."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    for worker in (APILogWorker, EventsWorker):
        worker.drain_all(timeout=10)


def start_labelflow_serve(config_path: Path, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """``labelflow serve --config config_path`` against the server ``env`` points at, in its own process group
    (so that stopping or killing it takes its flow runs with it), its output appended to ``log``."""
    with log.open("a") as output:
        return subprocess.Popen(
            [sys.executable, "-m", "labelflow.flows.cli", "serve", "--config", str(config_path)],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def stop_process_group(process: subprocess.Popen[Any], grace: float = 20.0) -> None:
    """SIGTERM the process group (serve's flow runs are its children); SIGKILL what lingers."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    except ProcessLookupError:
        pass


def api_post(env: dict[str, str], path: str, body: dict[str, Any]) -> Any:
    """POST to the Prefect API, riding out the 503s a busy SQLite-backed server answers now and then."""
    for attempt in range(10):
        response = httpx.post(f"{env['PREFECT_API_URL']}{path}", json=body, timeout=30)
        if response.status_code < 500 or attempt == 9:
            break
        time.sleep(1 + attempt)
    response.raise_for_status()
    return response.json() if response.content else None


def wait_for(condition: Callable[[], Any], timeout: float, what: str, every: float = 0.5) -> Any:
    """Call ``condition`` every ``every`` seconds until it returns something true (a collection: non-empty, so a
    pandas row counts), and return that; raise TimeoutError naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value is not None and (len(value) > 0 if isinstance(value, Sized) else bool(value)):
            return value
        time.sleep(every)
    raise TimeoutError(f"{what}: not within {timeout:.0f} s")
