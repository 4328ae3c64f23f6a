"""The temporary Prefect server of ``labelflow run`` without PREFECT_API_URL dies with the command, even when
the command alone is SIGKILLed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from labelflow.integrations.datasets import digits_table
from labelflow.integrations.prefect_server import wait_for
from labelflow.integrations.store import LabelStore

REPO = Path(__file__).resolve().parents[2]


def descendants(pid: int) -> set[int]:
    """Every living process below ``pid``, read from /proc."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # ended while we looked
        parents[int(stat.parent.name)] = int(fields[1])
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def is_alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_sigkilling_labelflow_run_takes_its_temporary_server_with_it(tmp_path: Path) -> None:
    digits_table(0, 300).to_csv(tmp_path / "digits.csv", index=False)
    store_url = f"sqlite:///{tmp_path / 'store.db'}"
    config = tmp_path / "labelflow.toml"
    config.write_text(
        f"""name = "kill-test"
store_url = "{store_url}"
workdir = "{tmp_path / "work"}"
[dataset]
source = "digits.csv"
id_column = "id"
n_gold = 10
[selection]
seed_size = 20
[crowd]
gold_per_round = 5
poll_interval_minutes = 0.01
[crowd.simulated]
realtime = true
mean_latency_minutes = 5
[budget]
max_rounds = 1
"""
    )
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env["PREFECT_HOME"] = str(tmp_path / "prefect-home")
    cli = subprocess.Popen(
        [sys.executable, "-m", "labelflow.flows.cli", "run", "--config", str(config)],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    left_behind: set[int] = set()
    store = LabelStore(store_url, "kill-test")
    try:
        # A running round means the server is up and the flow reports to it; the crowd then takes minutes.
        wait_for(lambda: cli.poll() is None and not store.rounds().empty, 180, "a round running")
        assert cli.poll() is None, "labelflow run ended before it could be killed"
        left_behind = descendants(cli.pid)
        assert left_behind, "labelflow run started no server process"

        os.kill(cli.pid, signal.SIGKILL)  # the command alone, not its process group
        cli.wait()

        wait_for(lambda: not any(is_alive(pid) for pid in left_behind), 30, "the server gone", every=0.2)
    finally:
        store.close()
        for pid in left_behind:
            if is_alive(pid):
                os.kill(pid, signal.SIGKILL)
        if cli.poll() is None:
            cli.kill()
            cli.wait()
