"""A big pool end to end: ingest a 2M x 64 float32 Parquet file, run one round on it, and time the cold start.

    nice .venv/bin/python benchmarks/big_pool.py                    # 2,000,000 rows (the target's size)
    nice .venv/bin/python benchmarks/big_pool.py --rows 200000      # a quicker look

Writes, in a temporary folder, a project whose ``dataset.source`` is 5,000 labeled rows (gold and held-out items
are drawn from them) and a ``--rows`` x 64 float32 Parquet file of new items with a hidden label (a noisy linear
rule), then measures, each in a fresh process so that peak memory is per process:

1. ``labelflow ingest big.parquet``: wall time and peak resident memory;
2. ``labelflow run`` with ``budget.max_rounds = 1``: one round on the whole pool (the simulated crowd on a virtual
   clock, so the round's time is all non-crowd time; linear logistic regression with self-training): wall time,
   CPU time and peak memory of the labelflow process, and, as the Prefect server recorded them, the round's own
   wall time (its ``labeling-round`` flow run: without the process's start-up, the campaign's checks before it and
   the export after it) and each of its tasks' (the crowd's answers come from ``collect`` tasks);
3. the cold-start selection alone: the project's pool read from its pool store, then ``choose_batch`` with no
   model, timed apart from the read.

The Prefect server is started once by the benchmark (not by each command), so the labelflow process's memory is
measured apart from the server's; the server's own peak is printed too. Targets (issue 15): ingest <= 30 s and
<= 1.5 GB, the round <= 60 s and <= 2.5 GB, the cold start <= 10 s. Prints every figure with the load average.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from labelflow.integrations.prefect_server import local_prefect_server

COLUMNS = 64
BASE_ROWS = 5_000
CONFIG = """\
name = "big-pool"
labels = ["neg", "pos"]
store_url = "sqlite:///store.db"
workdir = "work"

[dataset]
source = "base.parquet"
id_column = "id"
n_gold = 30
held_out_fraction = 0.2

[selection]
seed_size = 200
batch_size = 200

[crowd]
gold_per_round = 10

[training]
model = "logistic_regression"
self_training = true

[budget]
max_rounds = 1
"""
COLD_START = """
import sys, time
from pathlib import Path
from labelflow.contracts import ItemSet
from labelflow.flows.config import load_config
from labelflow.flows.project import Project
from labelflow.tasks.rows import RowView
from labelflow.tasks.selection import choose_batch

config = load_config(Path("labelflow.toml"))
with Project(config, Path.cwd()) as project:
    started = time.perf_counter()
    dataset = project.dataset
    pool = dataset.positions(ItemSet.POOL)  # as the round: ids and rows, the features read in place
    read = time.perf_counter() - started
    started = time.perf_counter()
    features = RowView(dataset.feature_matrix(), pool["row"])
    batch = choose_batch(pool, dataset.feature_columns, None, config.selection, round_id=99, features=features)
    print(f"{read:.2f} {time.perf_counter() - started:.2f} {len(pool)} {len(batch)}")
"""
ROUND_STEPS = """
import collections, re
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowFilter, FlowFilterName, FlowRunFilter, FlowRunFilterId

with get_client(sync_client=True) as client:
    (run,) = client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=["labeling-round"])))
    tasks = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run.id])))
steps = collections.Counter()
for task in tasks:
    steps[re.sub(r"-round-\\d+|-wave-\\d+|-\\d+$", "", task.name)] += (task.end_time - task.start_time).total_seconds()
print(f"round {(run.end_time - run.start_time).total_seconds():.2f}")
for step, seconds in steps.most_common():
    print(f"{step} {seconds:.2f}")
"""


def write_items(path: Path, rows: int, first: int, seed: int) -> None:
    """``rows`` items ``id, f0..f63`` (float32), ``label``: pos where a fixed direction's projection plus noise
    is positive, written in 100k-row groups."""
    rng = np.random.default_rng(seed)
    direction = np.random.default_rng(0).normal(size=COLUMNS).astype(np.float32)
    with pq.ParquetWriter(path, _schema()) as writer:
        for start in range(0, rows, 100_000):
            n = min(100_000, rows - start)
            block = rng.normal(size=(n, COLUMNS)).astype(np.float32)
            score = block @ direction + rng.normal(scale=2.0, size=n)
            columns = {"id": [f"i{first + start + k:08d}" for k in range(n)]}
            columns |= {f"f{c}": block[:, c] for c in range(COLUMNS)}
            columns["label"] = np.where(score > 0, "pos", "neg").tolist()
            writer.write_table(pa.table(columns, schema=_schema()))


def _schema() -> pa.Schema:
    fields = [pa.field("id", pa.string()), *(pa.field(f"f{c}", pa.float32()) for c in range(COLUMNS))]
    return pa.schema([*fields, pa.field("label", pa.string())])


def measured(command: list[str], folder: Path, env: dict[str, str]) -> tuple[float, float, str, float]:
    """Run ``command`` in ``folder``: its wall seconds, its peak resident memory in MB, its output and its CPU
    seconds (user + system, all threads: on a shared machine, the wall time the step would take alone is about
    this divided by the cores it could use)."""
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert process.stdout is not None
    output = process.stdout.read().decode(errors="replace")
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - started
    if process.returncode:
        raise SystemExit(f"{' '.join(command)} failed ({process.returncode}):\n{output[-4000:]}")
    return seconds, usage.ru_maxrss / 1024, output, usage.ru_utime + usage.ru_stime  # Linux reports KiB


def server_peak_mb(home: Path) -> float:
    """The Prefect server's peak resident memory so far (its process is the one listening for the API)."""
    peaks = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            text = status.read_text()
            if str(home) in (status.parent / "environ").read_bytes().decode(errors="replace"):
                peaks.append(int(next(li for li in text.splitlines() if li.startswith("VmHWM")).split()[1]))
        except (OSError, StopIteration):
            continue
    return max(peaks, default=0) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=2_000_000, help="rows of the ingested file")
    parser.add_argument(
        "--keep", type=Path, help="work in this folder and keep it (default: a temporary one)"
    )
    parser.add_argument(
        "--no-round", action="store_true", help="ingest and cold start only (the round is the longest step)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="big-pool-") as temporary:
        folder = args.keep or Path(temporary)
        folder.mkdir(parents=True, exist_ok=True)
        write_items(folder / "base.parquet", BASE_ROWS, 0, seed=1)
        write_items(folder / "big.parquet", args.rows, BASE_ROWS, seed=2)
        (folder / "labelflow.toml").write_text(CONFIG)
        labelflow = str(Path(sys.executable).with_name("labelflow"))
        with local_prefect_server(folder / "prefect") as env:
            loads = [os.getloadavg()[0]]
            ingest = measured([labelflow, "ingest", "big.parquet"], folder, env)
            loads.append(os.getloadavg()[0])
            round_ = None if args.no_round else measured([labelflow, "run"], folder, env)
            loads.append(os.getloadavg()[0])
            steps = None if args.no_round else measured([sys.executable, "-c", ROUND_STEPS], folder, env)
            cold = measured([sys.executable, "-c", COLD_START], folder, env)
            loads.append(os.getloadavg()[0])
            server = server_peak_mb(folder / "prefect")
        read, select, pool, batch = cold[2].split()[-4:]
        print(f"big pool: {args.rows:,} x {COLUMNS} float32 rows ingested into a {BASE_ROWS:,}-row project")
        print(f"  ingest      {_figures(ingest)}   (target <= 30 s, <= 1,536 MB)")
        if round_ is not None:
            print(f"  labelflow run {_figures(round_)}   (target <= 2,560 MB)")
        if steps is not None:
            lines = [line.rsplit(" ", 1) for line in steps[2].strip().splitlines()]
            (_, round_seconds), tasks = lines[0], lines[1:]
            print(f"  one round   {float(round_seconds):6.1f} s wall   (target <= 60 s), of which, by task:")
            for step, seconds in tasks:
                print(f"    {step:<28} {float(seconds):6.1f} s")
            outside = float(round_seconds) - sum(float(seconds) for _, seconds in tasks)
            print(f"    {'(the flow, outside tasks)':<28} {outside:6.1f} s")
        print(
            f"  cold start  {float(select):6.1f} s wall of {int(pool):,} pool items, {batch} chosen (target <= 10 s)"
        )
        print(
            f"              (its process: the pool read from the store in {float(read):.1f} s; {_figures(cold)})"
        )
        print(f"  Prefect server peak {server:.0f} MB (measured apart)")
        print(f"  load average (1 min) before/after each step: {', '.join(f'{x:.2f}' for x in loads)}")
        print(f"  cores: {os.cpu_count()}")


def _figures(step: tuple[float, float, str, float]) -> str:
    seconds, peak, _, cpu = step
    return f"{seconds:6.1f} s wall, {cpu:6.1f} s CPU, peak {peak:6.0f} MB"


if __name__ == "__main__":
    main()
