"""How a Prefect server copes with labelflow's pollers: on SQLite, and on PostgreSQL.

    nice .venv/bin/python benchmarks/poller_load.py                  # 10 minutes on each database
    nice .venv/bin/python benchmarks/poller_load.py --minutes 2 --database postgresql

For each database it starts a real ``prefect server start`` (on SQLite in its PREFECT_HOME; on PostgreSQL in a
throwaway cluster, through asyncpg, as docs/operations.md sets it up), writes three projects whose inbox watcher
and answer collector both run every 5 s (their production defaults are 60 s and 10 min), their label stores on
the same database kind, and runs ``labelflow serve`` for each, as a user would. The inboxes stay empty and no
round waits: the pollers' runs are pure overhead, which is what is measured.

After the window it counts, over the poller runs the server scheduled to start within it:

- scheduled, completed, cancelled (serve cancels a tick whose previous run still holds the poller's slot), and
  any other end (failed, crashed, or never started: late);
- "database is locked" errors, in the server's log (``PREFECT_SERVER_LOG_RETRYABLE_ERRORS`` makes Prefect log
  them) and the serve processes' logs;
- 5xx answers, as the clients saw them: Prefect's client logs each retried 5xx (its ``prefect.client`` logger at
  DEBUG here), and a 5xx it gives up on ends as an error in a run's log;

and prints them beside the load average sampled through the window (on a shared 2-core machine other work
weighs on both runs alike only if it is steady; the load column says how busy the machine was) and the serve
processes that gave up before the window (a serve exits when the server answers 503 to every retry of
registering its deployments).
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from labelflow.integrations.datasets import digits_table
from labelflow.integrations.prefect_server import (
    api_post,
    local_prefect_server,
    start_labelflow_serve,
    stop_process_group,
    wait_for,
)
from labelflow.integrations.store.local_postgres import local_postgres

POLLERS = ("collect-answers", "watch-inbox")
CONFIG = """name = "{name}"
store_url = "{store_url}"
workdir = "{folder}/work"
[dataset]
source = "base.csv"
id_column = "id"
n_gold = 10
[crowd]
poll_interval_minutes = {collect_minutes}
[inbox]
watch_interval_seconds = {watch_seconds}
"""
LOCKED = re.compile(r"database is locked")
# Prefect's client, on a 5xx it retries; and an HTTPStatusError a run or serve gave up on.
RETRIED_5XX = re.compile(r"retryable status code 5\d\d")
FAILED_5XX = re.compile(r"Server error '5\d\d")


@dataclass(frozen=True)
class Figures:
    database: str
    scheduled: int
    completed: int
    cancelled: int
    other: int
    locked: int
    http_5xx: int
    load: tuple[float, float]  # mean and max of the 1-minute load average through the window
    serves_failed: int  # serve processes that exited before the window (could not register their deployments)


def _count(env: dict[str, str], window: tuple[datetime, datetime], state: str | None = None) -> int:
    start, end = window
    runs: dict[str, Any] = {"expected_start_time": {"after_": start.isoformat(), "before_": end.isoformat()}}
    if state is not None:
        runs["state"] = {"type": {"any_": [state]}}
    return int(
        api_post(env, "/flow_runs/count", {"flows": {"name": {"any_": list(POLLERS)}}, "flow_runs": runs})
    )


def _grep(paths: list[Path], pattern: re.Pattern[str]) -> int:
    return sum(len(pattern.findall(path.read_text(errors="replace"))) for path in paths if path.exists())


@contextmanager
def _load_sampler(every: float = 5.0) -> Iterator[list[float]]:
    samples: list[float] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(every):
            samples.append(os.getloadavg()[0])

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield samples
    finally:
        stop.set()
        thread.join()


def run(database: str, minutes: float, projects: int, interval: float, folder: Path) -> Figures:
    with ExitStack() as stack:
        server_url = store_url = None
        if database == "postgresql":
            cluster = stack.enter_context(local_postgres())
            os.environ["PGPASSWORD"] = cluster.password  # the server, the serve processes and their runs
            cluster.create_database("prefect")
            server_url = cluster.url("prefect", driver="asyncpg")
            store_url = cluster.create_database("labels")
        os.environ["PREFECT_SERVER_LOG_RETRYABLE_ERRORS"] = "true"
        os.environ["PREFECT_LOGGING_LOGGERS_PREFECT_CLIENT_LEVEL"] = "DEBUG"
        env = stack.enter_context(local_prefect_server(folder / "prefect-home", database_url=server_url))
        logs = [folder / "prefect-home" / "server.log"]
        serves = []
        for k in range(projects):
            project = folder / f"project-{k}"
            (project / "inbox").mkdir(parents=True)
            digits_table(0, 100).to_csv(project / "base.csv", index=False)
            config = project / "labelflow.toml"
            config.write_text(
                CONFIG.format(
                    name=f"load-{k}",
                    folder=project,
                    store_url=store_url or f"sqlite:///{project}/store.db",
                    collect_minutes=interval / 60,
                    watch_seconds=interval,
                )
            )
            logs.append(project / "serve.log")
            serves.append(start_labelflow_serve(config, env, logs[-1]))
            stack.callback(stop_process_group, serves[-1])
        wait_for(
            lambda: (
                len(api_post(env, "/deployments/filter", {})) >= 4 * projects
                or any(serve.poll() is not None for serve in serves)
            ),
            600,
            "every serve registered its deployments",
        )
        # A serve that could not register its deployments (on a loaded SQLite server: 503 after every retry)
        # has exited; the window measures the ones still serving.
        failed = [k for k, serve in enumerate(serves) if serve.poll() is not None]
        for k in failed:
            last = logs[k + 1].read_text(errors="replace").strip().splitlines()[-3:]
            print(f"  {database}: serve of project {k} exited: {' / '.join(last)[:400]}", flush=True)
        start = datetime.now(UTC)
        print(
            f"  {database}: serving {projects - len(failed)} of {projects} projects from {start:%H:%M:%S} "
            f"for {minutes:g} min",
            flush=True,
        )
        with _load_sampler() as load:
            time.sleep(minutes * 60)
        end = datetime.now(UTC)
        time.sleep(max(30.0, 3 * interval))  # the window's last runs finish or are cancelled
        window = (start, end)
        scheduled = _count(env, window)
        completed = _count(env, window, "COMPLETED")
        cancelled = _count(env, window, "CANCELLED")
        return Figures(
            database=database,
            scheduled=scheduled,
            completed=completed,
            cancelled=cancelled,
            other=scheduled - completed - cancelled,
            locked=_grep(logs, LOCKED),
            http_5xx=_grep(logs, RETRIED_5XX) + _grep(logs, FAILED_5XX),
            load=(statistics.fmean(load) if load else os.getloadavg()[0], max(load, default=0.0)),
            serves_failed=len(failed),
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="How long each database is measured.")
    parser.add_argument("--projects", type=int, default=3, help="Projects served at once.")
    parser.add_argument(
        "--interval", type=float, default=5.0, help="Seconds between two runs of each poller."
    )
    parser.add_argument("--database", choices=["sqlite", "postgresql", "both"], default="both")
    args = parser.parse_args()
    databases = ["sqlite", "postgresql"] if args.database == "both" else [args.database]
    print(
        f"watcher and collector every {args.interval:g} s, {args.projects} projects served, "
        f"{args.minutes:g} min per database, {os.cpu_count()} CPUs"
    )
    results = []
    for database in databases:
        with tempfile.TemporaryDirectory(prefix=f"poller-load-{database}-") as folder:
            results.append(run(database, args.minutes, args.projects, args.interval, Path(folder)))
    header = (
        f"{'database':<11}{'scheduled':>10}{'completed':>16}{'cancelled':>11}{'other':>7}"
        f"{'locked':>8}{'5xx':>6}{'load mean/max':>15}{'serves failed':>15}"
    )
    print(header)
    for r in results:
        share = f"{r.completed} ({r.completed / r.scheduled:.0%})" if r.scheduled else "0"
        print(
            f"{r.database:<11}{r.scheduled:>10}{share:>16}{r.cancelled:>11}{r.other:>7}{r.locked:>8}"
            f"{r.http_5xx:>6}{r.load[0]:>9.1f}/{r.load[1]:<5.1f}{r.serves_failed:>15}"
        )


if __name__ == "__main__":
    main()
