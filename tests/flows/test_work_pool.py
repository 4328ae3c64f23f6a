"""Three projects on a process work pool with two workers, as docs/operations.md lays production out: a Prefect
server and the label store on PostgreSQL, ``deployments/prefect.yaml`` deployed with ``prefect deploy --all``, two
``prefect worker start`` processes, each on a host of its own (its own UTS namespace and host name, so that a
lease held on one is judged from the other by its heartbeat, never by its pid).

Rounds of the three projects run concurrently across the workers, two coinciding runs per project. While a round
waits for its wave's answers, its worker is killed with everything it runs (SIGKILL, worker and flow-run
processes): the other worker's collector finds the round's heartbeat stale, marks the dead run Crashed and
resumes the round, which completes; nothing is asked, answered or paid twice.
"""

from __future__ import annotations

import contextlib
import copy
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from labelflow.flows.config import ProjectConfig
from labelflow.integrations.datasets import digits_table
from labelflow.integrations.prefect_server import api_post, local_prefect_server, wait_for
from labelflow.integrations.store import LabelStore, Lease
from labelflow.integrations.store.local_postgres import LocalPostgres

pytestmark = [pytest.mark.slow]
PREFECT_YAML = Path(__file__).resolve().parents[2] / "deployments" / "prefect.yaml"
PROJECTS = ("ants", "bees", "wasps")
HOSTS = ("worker-host-a", "worker-host-b")
COLLECT_EVERY_SECONDS = 10


def project_config(folder: Path, name: str, store_url: str) -> dict[str, Any]:
    """A 200-digit project whose crowd answers in wall-clock time, the last answers ~40 s after publishing, all
    within the round's 60 s hold: a round dispatches, waits in its flow run, and completes in one run, unless
    its worker dies. Its lease beats every second and is stale after 6 s."""
    folder.mkdir()
    digits_table(0, 200).to_csv(folder / "base.csv", index=False)
    config = ProjectConfig.model_validate(
        {
            "name": name,
            "store_url": store_url,
            "workdir": str(folder / "work"),
            "dataset": {"source": str(folder / "base.csv"), "id_column": "id", "n_gold": 10},
            "selection": {"seed_size": 20, "batch_size": 20},
            "crowd": {
                "gold_per_round": 5,
                "redundancy": 3,  # one wave per round
                "max_answers": 3,
                "poll_interval_minutes": 0.1,
                "hand_off_after_seconds": 60,
                "simulated": {"mean_latency_minutes": 0.15, "realtime": True},
            },
            "training": {"self_training_max_iter": 2},
            "inbox": {"url": str(folder / "inbox")},
            "lease": {"heartbeat_seconds": 1, "stale_after_seconds": 6},
        }
    )
    return config.model_dump(mode="json")


def work_pool_spec(configs: list[dict[str, Any]]) -> dict[str, Any]:
    """deployments/prefect.yaml with its deployments repeated for each project (its config inline, its name in
    the deployments' names and the round trigger's match), the collector every few seconds; no watcher ticks and
    no cron rounds, which this test does not need."""
    spec = yaml.safe_load(PREFECT_YAML.read_text())
    deployments = []
    for config in configs:
        for template in spec["deployments"]:
            deployment = copy.deepcopy(template)
            deployment["name"] = deployment["name"].replace("digits-demo", config["name"])
            deployment["parameters"]["config"] = config
            for trigger in deployment.get("triggers", []):
                trigger["match"]["labelflow.project"] = config["name"]
            collector = deployment["entrypoint"].endswith(":collect_waiting_answers")
            deployment["schedules"] = [{"interval": COLLECT_EVERY_SECONDS}] if collector else []
            deployments.append(deployment)
    spec["deployments"] = deployments
    return spec


def prefect_cli(env: dict[str, str], *args: str, cwd: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "prefect", "--no-prompt", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, f"prefect {' '.join(args)}:\n{done.stdout}\n{done.stderr}"


def start_worker(env: dict[str, str], host: str, log: Path) -> subprocess.Popen[bytes]:
    """``prefect worker start`` in a UTS namespace of its own named ``host``: its flow runs' leases name that
    host, as they would on another machine."""
    command = [sys.executable, "-m", "prefect", "worker", "start", "--pool", "labelflow", "--limit", "3"]
    with log.open("a") as output:
        return subprocess.Popen(
            ["unshare", "--map-root-user", "--uts", "sh", "-c", 'hostname "$0" && exec "$@"', host, *command],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def descendants(pid: int) -> list[int]:
    """Every process below ``pid``, read from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue  # ended while being read
            children.setdefault(parent, []).append(int(entry.name))
    found, stack = [], [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found


def kill_host(worker: subprocess.Popen[bytes]) -> None:
    """SIGKILL the worker and every process it started, all at once, as a host that loses power."""
    for pid in [worker.pid, *descendants(worker.pid)]:
        with contextlib.suppress(ProcessLookupError):  # ended on its own meanwhile
            os.kill(pid, signal.SIGKILL)
    worker.wait()


def stop_worker(worker: subprocess.Popen[bytes]) -> None:
    if worker.poll() is None:
        kill_host(worker)


def create_work_pool_with_queues() -> None:
    """``prefect work-pool create labelflow --type process`` and its two queues, rounds before pollers."""
    from prefect import get_client
    from prefect.client.schemas.actions import WorkPoolCreate

    with get_client(sync_client=True) as client:
        client.create_work_pool(WorkPoolCreate(name="labelflow", type="process"))
        for priority, queue in enumerate(("rounds", "pollers"), start=1):
            client.create_work_queue(name=queue, work_pool_name="labelflow", priority=priority)


@pytest.fixture
def prefect_server_on_postgres(tmp_path: Path, postgres: LocalPostgres) -> Iterator[dict[str, str]]:
    postgres.create_database("prefect_work_pool")
    with local_prefect_server(
        tmp_path / "prefect-home", database_url=postgres.url("prefect_work_pool", driver="asyncpg")
    ) as env:
        yield env
    postgres.drop_database("prefect_work_pool")


def test_two_workers_run_three_projects_and_a_killed_workers_round_is_resumed_by_the_other(
    tmp_path: Path, prefect_server_on_postgres: dict[str, str], postgres_database: str
) -> None:
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from labelflow.flows.work_pool import detect_dead_flow_runs

    env = {
        **prefect_server_on_postgres,
        "LABELFLOW_HOME": str(tmp_path),
        "PREFECT_WORKER_QUERY_SECONDS": "1",
        "PREFECT_WORKER_PREFETCH_SECONDS": "1",
        "PREFECT_FLOWS_HEARTBEAT_FREQUENCY": "30",
    }
    configs = [project_config(tmp_path / name, name, postgres_database) for name in PROJECTS]
    (tmp_path / "prefect.yaml").write_text(yaml.safe_dump(work_pool_spec(configs), sort_keys=False))
    with temporary_settings({PREFECT_API_URL: env["PREFECT_API_URL"]}):
        create_work_pool_with_queues()
        detect_dead_flow_runs(within_seconds=45)
    prefect_cli(env, "deploy", "--all", "--prefect-file", str(tmp_path / "prefect.yaml"), cwd=tmp_path)
    stores = {name: LabelStore(postgres_database, name) for name in PROJECTS}
    workers = {host: start_worker(env, host, tmp_path / f"{host}.log") for host in HOSTS}
    try:
        with temporary_settings({PREFECT_API_URL: env["PREFECT_API_URL"]}):
            for name in (
                PROJECTS[0],
                *PROJECTS,
            ):  # the first twice at once, as a cron run and a trigger: one round
                run_deployment(f"labeling-round/{name}-round", timeout=0, as_subflow=False)

        holders_seen: set[tuple[str, str]] = set()  # (project, host) of every round lease seen held
        most_held_at_once = 0

        def round_waiting_for_answers() -> tuple[str, Lease] | None:
            """A project whose round has published its wave and waits for its answers in its flow run."""
            nonlocal most_held_at_once
            leases = {name: store.round_lease.current() for name, store in stores.items()}
            held = {name: lease for name, lease in leases.items() if lease is not None}
            holders_seen.update((name, lease.host) for name, lease in held.items())
            most_held_at_once = max(most_held_at_once, len(held))
            for name, lease in held.items():
                store = stores[name]
                rounds = store.rounds()
                running = rounds[rounds["status"] == "running"]
                if running.empty:
                    continue
                requests = store.requests(int(running["id"].iloc[0]))
                published = not requests.empty and requests["external_id"].notna().all()
                if published and store.count_answers() < requests["n_answers"].sum():
                    return name, lease
            return None

        victim, killed_lease = wait_for(
            round_waiting_for_answers, 240, "a round waiting for answers", every=0.2
        )
        host = killed_lease.host
        kill_host(workers[host])
        killed = time.monotonic()

        def taken_over() -> bool:
            lease = stores[victim].round_lease.current()
            if lease is not None and lease.holder != killed_lease.holder:
                holders_seen.add((victim, lease.host))
                return True
            return bool((stores[victim].rounds()["status"] == "completed").any())

        # a generous bound: the time it took is printed (the issue asks for 2 minutes on a machine not overloaded;
        # most of it is flow-run processes starting: the collector's, then the resumed round's)
        wait_for(taken_over, 300, f"the other worker took over {victim}'s round", every=0.2)
        recovered_after = time.monotonic() - killed
        for name, store in stores.items():
            wait_for(
                lambda s=store: (s.rounds()["status"] == "completed").any(), 240, f"{name}'s round completed"
            )
        print(
            f"{victim}'s round, its worker on {host} killed, was taken over {recovered_after:.0f} s later and "
            f"completed {time.monotonic() - killed:.0f} s after the kill; round leases held on: "
            f"{sorted(holders_seen)}, at most {most_held_at_once} at once before the kill; load average "
            f"{os.getloadavg()[0]:.1f}"
        )
        (survivor,) = set(HOSTS) - {host}
        assert (victim, survivor) in holders_seen, holders_seen  # resumed on the other worker
        assert most_held_at_once >= 2  # projects' rounds ran side by side
        # given back by the run that completed the round, just after it completed
        wait_for(
            lambda: stores[victim].round_lease.current() is None, 60, f"{victim}'s round lease given back"
        )

        for name, store in stores.items():
            rounds = store.rounds()
            assert rounds["status"].tolist() == ["completed"], (name, rounds)  # one round, never two at once
            requests = store.requests(int(rounds["id"].iloc[0]))
            assert requests["request_key"].is_unique and not requests.duplicated(["item_id", "wave"]).any()
            assert requests["external_id"].notna().all() and requests["external_id"].is_unique
            answers = store.answers()
            assert answers["answer_id"].is_unique
            per_request = answers.groupby(["item_id", "wave"]).size()
            asked = requests.set_index(["item_id", "wave"])["n_answers"]
            assert per_request.reindex(asked.index).tolist() == asked.tolist(), name  # each answer once
            assert store.workers()["n_answers"].sum() == len(answers), name  # each answer counted once
            summary = rounds["summary"].iloc[0]
            assert summary["answers_bought"] == len(answers), (name, summary)  # and paid once

        # the killed run was marked Crashed by the collector that found its heartbeat stale
        crashed = api_post(
            env, "/flow_runs/filter", {"flow_runs": {"state": {"type": {"any_": ["CRASHED"]}}}}
        )
        assert killed_lease.flow_run_id in {run["id"] for run in crashed}

    finally:
        for worker in workers.values():
            stop_worker(worker)
        for store in stores.values():
            store.close()
