"""Scale benchmark: choose 1,000 items from a 1M x 64 float32 pool stored as Parquet, in one process, or from
pools of 1M, 5M and 20M rows on a Dask cluster.

    .venv/bin/python benchmarks/selection_scale.py                 # margin + k-means, default model pipeline
    .venv/bin/python benchmarks/selection_scale.py --committee 5   # vote entropy, 5-member bootstrap committee
    nice .venv/bin/python benchmarks/selection_scale.py --engine dask [--rows 1000000 5000000 20000000]

The single-process engine (the default) writes the pool once (a temporary Parquet file, ~370 MB, written with
pyarrow's defaults), then measures ``--runs`` times, each in a fresh process (peak memory is per process): fit
the default pipeline (StandardScaler + LogisticRegression, on 2,000 labeled float64 rows, as a real round would)
outside the clock, then time from reading the file to the chosen row indices — the project's own Parquet reader
(``read_features``) and ``choose_indices`` as ``choose_batch`` calls it — with the time split into reading,
scoring and the diverse batch. Prints every run, the median, the CPU seconds (all threads; on a busy machine
wall time is that divided by the share of the cores the run got), the load average, and each process's peak
resident memory (imports included).

``--engine dask`` writes a pool store of 1M-row item partitions (``--data``, by default
~/.cache/labelflow/selection_scale: 20M x 64 float32 is ~6 GB, written once and reused by later runs; a pool of N
rows is its first N / 1M partitions), then for each ``--rows``, in a fresh process: starts the cluster that
``selection.engine = "dask"`` starts (a LocalCluster, one single-threaded worker process per core; or connects to
``--dask-address``), fits the model as above, has every worker import labelflow, then times
``choose_batch_partitioned`` from listing the partitions to the batch. Memory is the sum of the resident memory of
the benchmark's process (the client; a LocalCluster's scheduler and nannies run in it) and every process under
it (the workers, multiprocessing's resource tracker), sampled every 0.2 s from before the cluster starts; CPU is
summed over the same processes. Prints rows/s (and rows per CPU second, the steadier figure on a busy machine)
per size, and the ratio of the largest size's to the second largest's.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psutil
import pyarrow as pa
import pyarrow.parquet as pq

import labelflow.tasks.selection.batch
from labelflow.contracts import ITEM_ID, PAYLOAD, ItemSet
from labelflow.integrations.datasets import read_features
from labelflow.integrations.pool_partitions import items_folder, piece_feature_columns, pool_pieces
from labelflow.integrations.pool_store import LABEL, PoolStore
from labelflow.tasks.selection import BootstrapCommittee, SelectionConfig, choose_indices
from labelflow.tasks.training import TrainingConfig, build_pipeline


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def write_pool(path: Path, rows: int, columns: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    writer = None
    for start in range(0, rows, 100_000):
        n = min(100_000, rows - start)
        block = rng.normal(size=(n, columns)).astype(np.float32)
        table = pa.table({f"f{c}": block[:, c] for c in range(columns)})
        writer = writer or pq.ParquetWriter(path, table.schema)
        writer.write_table(table)
    if writer is not None:
        writer.close()


def timed(name: str, seconds: dict[str, float]) -> None:
    """Wrap ``<name>`` in ``labelflow.tasks.selection.batch``, the module ``choose_indices`` looks it up in, so the
    real ``choose_indices`` reports the time spent in it."""
    real: Callable[..., Any] = getattr(labelflow.tasks.selection.batch, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return real(*args, **kwargs)
        finally:
            seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - started

    setattr(labelflow.tasks.selection.batch, name, wrapper)


def fitted(args: argparse.Namespace) -> tuple[Any, BootstrapCommittee | None, SelectionConfig]:
    """The model (and committee) a round would score with, fitted on 2,000 labeled float64 rows, and the config."""
    rng = np.random.default_rng(1)
    X_train = rng.normal(size=(2000, args.columns))
    y_train = (X_train[:, :4] @ np.array([1.0, -1.0, 0.5, 2.0]) > 0).astype(int) + (X_train[:, 4] > 1)
    model = build_pipeline(TrainingConfig(self_training=False)).fit(X_train, y_train)
    committee = (
        BootstrapCommittee(build_pipeline(TrainingConfig()), args.committee, random_state=0).fit(
            X_train, y_train
        )
        if args.committee
        else None
    )
    config = SelectionConfig(strategy="vote_entropy" if committee else "margin")
    if args.diversity:
        config = config.model_copy(update={"diversity": args.diversity})
    return model, committee, config


def setup_name(config: SelectionConfig, committee: BootstrapCommittee | None) -> str:
    members = f", {len(committee.members_)}-member committee" if committee else ""
    return f"{config.strategy}+{config.diversity}{members}"


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """One run in this process: fit outside the clock, then read + choose on the clock."""
    model, committee, config = fitted(args)
    seconds: dict[str, float] = {}
    timed("score_pool", seconds)
    timed("diverse_top", seconds)
    columns = pq.read_schema(args.pool).names
    started, cpu_started = time.perf_counter(), time.process_time()
    features = read_features(args.pool, columns)
    read = time.perf_counter() - started
    chosen, _ = choose_indices(
        features, model, config, args.choose, np.random.default_rng(0), committee=committee
    )
    total = time.perf_counter() - started
    return {
        "cpu": time.process_time() - cpu_started,
        "setup": setup_name(config, committee),
        "chosen": len(chosen),
        "total": total,
        "read": read,
        "score": seconds["score_pool"],
        "diversity": seconds["diverse_top"],
        "peak_mb": peak_mb(),
        "pool_mb": features.nbytes / 2**20,
    }


PARTITION_ROWS = 1_000_000
DEFAULT_DATA = Path.home() / ".cache" / "labelflow" / "selection_scale"


def pool_workdir(args: argparse.Namespace) -> Path:
    """The project workdir whose pool store holds the benchmark's partitions (``pool/items`` under it)."""
    return Path(args.data) / f"x{args.columns}"


def write_partitions(args: argparse.Namespace, rows: int) -> list[str]:
    """The names of the pool store's first ``rows`` / 1M item partitions, written through the pool store's own
    writer unless already there (each from its own seed, so a partition is the same whichever run wrote it)."""
    store = PoolStore(pool_workdir(args))
    features = [f"f{c}" for c in range(args.columns)]
    names = []
    for index in range(rows // PARTITION_ROWS):
        name = f"arrival-{index:05d}"
        names.append(name)
        if store.has(name):
            continue
        started = time.perf_counter()
        block = np.random.default_rng([0, index]).standard_normal((PARTITION_ROWS, args.columns), np.float32)
        frame = pd.DataFrame(block, columns=features, copy=False)
        first = index * PARTITION_ROWS
        frame.insert(0, ITEM_ID, [f"item-{n:09d}" for n in range(first, first + PARTITION_ROWS)])
        frame.insert(1, "item_set", ItemSet.POOL.value)
        frame[PAYLOAD] = ""
        frame[LABEL] = None
        store.write_items(name, frame, kind="table", feature_columns=features, label_names=["0", "1", "2"])
        print(f"wrote {store.items_dir / name}.parquet in {time.perf_counter() - started:.1f} s", flush=True)
    return names


class ProcessTreeSampler(threading.Thread):
    """The peak of the summed resident memory of this process and every process under it, sampled every 0.2 s,
    and their summed CPU seconds on demand."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak_bytes = 0
        self.most_processes = 0
        self._done = threading.Event()

    def _tree(self) -> list[psutil.Process]:
        me = psutil.Process()
        return [me, *me.children(recursive=True)]

    def _sum(self, read: Callable[[psutil.Process], float]) -> tuple[float, int]:
        total, counted = 0.0, 0
        for process in self._tree():
            try:
                total += read(process)
                counted += 1
            except psutil.NoSuchProcess:  # a process that ended between the listing and the read
                pass
        return total, counted

    def run(self) -> None:
        while not self._done.wait(0.2):
            resident, counted = self._sum(lambda process: process.memory_info().rss)
            self.peak_bytes = max(self.peak_bytes, int(resident))
            self.most_processes = max(self.most_processes, counted)

    def cpu_seconds(self) -> float:
        return self._sum(lambda process: sum(process.cpu_times()[:4]))[0]  # user + system, own and children

    def stop(self) -> None:
        self._done.set()
        self.join()


def measure_dask(args: argparse.Namespace) -> dict[str, Any]:
    """One size in this process: start the cluster, fit, warm the workers, then choose on the clock."""
    # imported here, not at the top: the single-process runs' peak memory does not include distributed
    from labelflow.integrations.dask_cluster import dask_client
    from labelflow.tasks.selection.partitioned import choose_batch_partitioned

    sampler = ProcessTreeSampler()
    sampler.start()
    model, committee, config = fitted(args)
    wanted = {f"arrival-{index:05d}" for index in range(args.measure_dask // PARTITION_ROWS)}
    folder = items_folder(pool_workdir(args))
    with dask_client(args.dask_address) as client:
        client.run(importlib.import_module, "labelflow.tasks.selection.partitioned")
        workers = len(client.scheduler_info()["workers"])
        cpu_started, started = sampler.cpu_seconds(), time.perf_counter()
        pieces = [piece for piece in pool_pieces(folder) if Path(piece.location).stem in wanted]
        batch = choose_batch_partitioned(
            pieces,
            piece_feature_columns(pieces[0]),
            model,
            config,
            client=client,
            round_id=1,
            batch_size=args.choose,
            committee=committee,
        )
        total = time.perf_counter() - started
        cpu = sampler.cpu_seconds() - cpu_started
    sampler.stop()
    return {
        "rows": sum(piece.rows for piece in pieces),
        "pieces": len(pieces),
        "chosen": len(batch),
        "setup": setup_name(config, committee),
        "workers": workers,
        "total": total,
        "cpu": cpu,
        "peak_mb": sampler.peak_bytes / 2**20,
        "processes": sampler.most_processes,
        "load": os.getloadavg()[0],
    }


def run_dask(args: argparse.Namespace, forwarded: list[str]) -> None:
    """Every ``--rows`` size in its own process, then the throughput of the largest against the one before."""
    write_partitions(args, max(args.rows))
    rates, cpu_rates = [], []
    for rows in args.rows:
        child = subprocess.run(
            [sys.executable, __file__, *forwarded, f"--measure-dask={rows}"],
            check=True,
            capture_output=True,
            text=True,
        )
        run = json.loads(child.stdout.strip().splitlines()[-1])
        rates.append(run["rows"] / run["total"])
        cpu_rates.append(run["rows"] / run["cpu"])
        print(
            f"dask: chose {run['chosen']} of {run['rows']:,} x {args.columns} float32 ({run['setup']}; "
            f"{run['pieces']} pieces) on {run['workers']} workers: {run['total']:.1f} s, {rates[-1]:,.0f} rows/s "
            f"(CPU {run['cpu']:.1f} s in all processes: {cpu_rates[-1]:,.0f} rows per CPU second); peak memory "
            f"{run['peak_mb']:,.0f} MB summed over {run['processes']} processes (the client's, holding the "
            f"scheduler and the nannies, and those under it: workers, multiprocessing's resource tracker); "
            f"load average {run['load']:.1f} on {os.cpu_count()} CPUs",
            flush=True,
        )
    if len(rates) > 1:
        print(
            f"throughput at {args.rows[-1]:,} rows is {rates[-1] / rates[-2]:.2f}x that at {args.rows[-2]:,} "
            f"(target: at least 0.75x); per CPU second {cpu_rates[-1] / cpu_rates[-2]:.2f}x"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--engine", choices=["local", "dask"], default="local", help="one process, or a Dask cluster"
    )
    parser.add_argument(
        "--rows",
        type=int,
        nargs="+",
        default=None,
        help="pool sizes (default: 1000000; with --engine dask 1000000 5000000 20000000, multiples of 1M)",
    )
    parser.add_argument(
        "--data", type=Path, default=DEFAULT_DATA, help="--engine dask: where the pool store is written once"
    )
    parser.add_argument(
        "--dask-address", default=None, help="--engine dask: a running scheduler (default: a LocalCluster)"
    )
    parser.add_argument("--columns", type=int, default=64)
    parser.add_argument("--choose", type=int, default=1000)
    parser.add_argument(
        "--committee", type=int, default=0, help="members of a bootstrap committee (0: margin)"
    )
    parser.add_argument(
        "--diversity", choices=["none", "kcenter", "kmeans"], default=None, help="default: config's"
    )
    parser.add_argument(
        "--runs", type=int, default=3, help="fresh processes to measure in; the median counts"
    )
    parser.add_argument("--pool", type=Path, default=None, help=argparse.SUPPRESS)  # a measuring child
    parser.add_argument("--measure-dask", type=int, default=None, help=argparse.SUPPRESS)  # a measuring child
    args = parser.parse_args()
    if args.pool is not None:
        print(json.dumps(measure(args)))
        return
    if args.measure_dask is not None:
        print(json.dumps(measure_dask(args)))
        return
    forwarded = [f"--{key}={getattr(args, key)}" for key in ("columns", "choose", "committee", "data")]
    forwarded += [f"--diversity={args.diversity}"] if args.diversity else []
    forwarded += [f"--dask-address={args.dask_address}"] if args.dask_address else []
    if args.engine == "dask":
        args.rows = args.rows or [1_000_000, 5_000_000, 20_000_000]
        if any(rows % PARTITION_ROWS for rows in args.rows):
            parser.error(f"--engine dask: --rows are multiples of {PARTITION_ROWS:,} (the partitions' size)")
        run_dask(args, forwarded)
        return
    for rows in args.rows or [1_000_000]:
        run_local(args, rows, forwarded)


def run_local(args: argparse.Namespace, rows: int, forwarded: list[str]) -> None:
    """``--runs`` fresh processes choosing from a temporary ``rows`` x ``columns`` Parquet file; their median."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "pool.parquet"
        write_pool(path, rows, args.columns, seed=0)
        runs = []
        for _ in range(args.runs):
            child = subprocess.run(
                [sys.executable, __file__, *forwarded, f"--rows={rows}", "--pool", str(path)],
                check=True,
                capture_output=True,
                text=True,
            )
            run = json.loads(child.stdout.strip().splitlines()[-1])
            runs.append(run)
            print(
                f"chose {run['chosen']} of {rows:,} x {args.columns} float32 ({run['setup']}): "
                f"{run['total']:.2f} s (read {run['read']:.2f}, score {run['score']:.2f}, "
                f"diversity {run['diversity']:.2f}; CPU {run['cpu']:.2f} s in all threads); "
                f"peak memory {run['peak_mb']:.0f} MB "
                f"(the pool is {run['pool_mb']:.0f} MB)"
            )
    median = {
        key: statistics.median(run[key] for run in runs)
        for key in ("total", "read", "score", "diversity", "cpu")
    }
    print(
        f"median of {len(runs)}: {median['total']:.2f} s (read {median['read']:.2f}, score {median['score']:.2f}, "
        f"diversity {median['diversity']:.2f}; CPU {median['cpu']:.2f} s); load average {os.getloadavg()[0]:.1f} "
        f"on {os.cpu_count()} CPUs; peak memory at most {max(r['peak_mb'] for r in runs):.0f} MB"
    )


if __name__ == "__main__":
    main()
