"""From a file dropped into the inbox to a completed labeling round, on a real local Prefect server.

    .venv/bin/python benchmarks/served_round.py                      # 5 drops, the watcher every 10 s
    .venv/bin/python benchmarks/served_round.py --watch-interval 60  # the watcher at its default interval

Starts ``prefect server start`` on a free loopback port with its own PREFECT_HOME, writes a project of 200 digits
(the defaults of ``labelflow init`` but for the small batches and gold sets a 200-item pool needs, and the
watcher's interval), and runs ``labelflow serve`` on it, as a user would. Then, one after another and each at a
random moment of the watcher's interval, it drops a file of 20 new digits into the inbox — enough for the
pool-growth trigger — and times each stage from the drop:

- ingested: the watcher recorded the file in the store (a watcher tick, its flow-run process, validation);
- run created: the trigger's labeling-round flow run exists on the server (the event, the automation);
- round opened: the round's process started and opened the round in the store (the runner, a process start);
- completed: the round finished — selection, the crowd's waves, quality control, retraining, publishing.

The crowd is the default simulated one on its virtual clock: a served round holds each wave for
``crowd.hand_off_after_seconds`` (60 s) of wall-clock time before handing the wait to the collector, and on the
virtual clock that hold fast-forwards through the wave, so no round needs the collector here. (How a round waits
for a slow crowd without a process is what tests/flows/test_server.py checks, not a figure.) The load average is
printed beside the figures: on a busy 2-core machine every flow-run process takes longer to start.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]

from labelflow.flows.config import load_config  # noqa: E402
from labelflow.flows.project import Project  # noqa: E402
from labelflow.integrations.datasets import digits_table  # noqa: E402
from labelflow.integrations.prefect_server import (  # noqa: E402
    api_post,
    local_prefect_server,
    start_labelflow_serve,
    stop_process_group,
    wait_for,
)

CONFIG = """name = "bench-served"
store_url = "sqlite:///{folder}/store.db"
workdir = "{folder}/work"
[dataset]
source = "base.csv"
id_column = "id"
n_gold = 10
[selection]
seed_size = 20
batch_size = 20
[crowd]
gold_per_round = 5
[inbox]
watch_interval_seconds = {watch_interval}
round_after_items = 20
"""
STAGES = ("ingested", "run created", "round opened", "completed")


def seconds_since(moment: datetime, start: datetime) -> float:
    return (moment.replace(tzinfo=moment.tzinfo or UTC) - start).total_seconds()


def time_one_drop(
    env: dict[str, str], project: Project, folder: Path, number: int, timeout: float
) -> dict[str, float]:
    store = project.store
    name = f"new-{number}.csv"
    dropped = datetime.now(UTC)
    frame = digits_table(200 + 20 * number, 220 + 20 * number)
    frame.to_csv(folder / "inbox" / f".{name}", index=False)
    (folder / "inbox" / f".{name}").rename(folder / "inbox" / name)  # whole, never half-written

    def round_done() -> pd.Series | None:
        rounds = store.rounds()
        finished = rounds[(rounds["number"] == number + 1) & (rounds["status"] != "running")]
        return finished.iloc[0] if len(finished) else None

    done = wait_for(round_done, timeout, f"round {number + 1} finished after {name} was dropped")
    if done["status"] != "completed":
        raise RuntimeError(f"round {number + 1} ended {done['status']}: {done['error']}")
    files = store.ingested_files()
    ingested = files.loc[files["filename"] == name, "ingested_at"].iloc[0]
    runs = api_post(
        env,
        "/flow_runs/filter",
        {
            "flows": {"name": {"any_": ["labeling-round"]}},
            "flow_runs": {"name": {"any_": [f"{project.config.name}-round-{number + 1}"]}},
        },
    )
    created = min(datetime.fromisoformat(run["created"]) for run in runs)
    return {
        "ingested": seconds_since(ingested, dropped),
        "run created": seconds_since(created, dropped),
        "round opened": seconds_since(done["started_at"], dropped),
        "completed": seconds_since(done["finished_at"], dropped),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--drops", type=int, default=5, help="files dropped, one round each (default 5)")
    parser.add_argument(
        "--watch-interval", type=int, default=10, help="inbox.watch_interval_seconds (default 10)"
    )
    parser.add_argument("--timeout", type=float, default=300, help="give up on a round after this long")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="labelflow-served-") as tmp:
        folder = Path(tmp)
        digits_table(0, 200).to_csv(folder / "base.csv", index=False)
        (folder / "inbox").mkdir()
        config_path = folder / "labelflow.toml"
        config_path.write_text(CONFIG.format(folder=folder, watch_interval=args.watch_interval))
        with local_prefect_server(folder / "prefect-home") as env:
            serve = start_labelflow_serve(config_path, env, folder / "serve.log")
            project = Project(load_config(config_path), folder)
            try:
                wait_for(
                    lambda: len(api_post(env, "/deployments/filter", {})) >= 4,
                    120,
                    "serve registered its deployments",
                )
                time.sleep(2 * args.watch_interval)  # let the first watcher ticks pass: serve is warm
                rows = []
                phase = random.Random(0)
                for number in range(args.drops):
                    # files land at any moment, not just after the last round: a random phase of the watcher
                    time.sleep(phase.uniform(0, args.watch_interval))
                    rows.append(time_one_drop(env, project, folder, number, args.timeout))
                    figures = "  ".join(f"{stage} {rows[-1][stage]:5.1f} s" for stage in STAGES)
                    print(f"drop {number + 1}: {figures}   (load average {os.getloadavg()[0]:.1f})")
            finally:
                project.close()
                stop_process_group(serve)
    print(f"\nmedian of {args.drops} drops, seconds from the drop (watcher every {args.watch_interval} s):")
    for stage in STAGES:
        values = [row[stage] for row in rows]
        print(
            f"  {stage:<13} {statistics.median(values):6.1f}   (min {min(values):.1f}, max {max(values):.1f})"
        )


if __name__ == "__main__":
    main()
