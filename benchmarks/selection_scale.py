"""Scale benchmark: choose 1,000 items from a 1M x 64 float32 pool stored as Parquet.

    .venv/bin/python benchmarks/selection_scale.py                 # margin + k-means, default model pipeline
    .venv/bin/python benchmarks/selection_scale.py --committee 5   # vote entropy, 5-member bootstrap committee

Writes the pool once (a temporary Parquet file, ~370 MB, written with pyarrow's defaults), then measures ``--runs``
times, each in a fresh process (peak memory is per process): fit the default pipeline (StandardScaler +
LogisticRegression, on 2,000 labeled float64 rows, as a real round would) outside the clock, then time from
reading the file to the chosen row indices — the project's own Parquet reader
(``read_features``) and ``choose_indices`` as ``choose_batch`` calls it —
with the time split into reading, scoring and the diverse batch. Prints every run, the median, the CPU seconds
(all threads; on a busy machine wall time is that divided by the share of the cores the run got), the load
average, and each process's peak resident memory (imports included).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

import labelflow.tasks.selection.batch
from labelflow.integrations.datasets import read_features
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


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """One run in this process: fit outside the clock, then read + choose on the clock."""
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
        "setup": f"{config.strategy}+{config.diversity}"
        + (f", {args.committee}-member committee" if committee else ""),
        "chosen": len(chosen),
        "total": total,
        "read": read,
        "score": seconds["score_pool"],
        "diversity": seconds["diverse_top"],
        "peak_mb": peak_mb(),
        "pool_mb": features.nbytes / 2**20,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
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
    args = parser.parse_args()
    if args.pool is not None:
        print(json.dumps(measure(args)))
        return
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "pool.parquet"
        write_pool(path, args.rows, args.columns, seed=0)
        forwarded = [f"--{key}={getattr(args, key)}" for key in ("rows", "columns", "choose", "committee")]
        forwarded += [f"--diversity={args.diversity}"] if args.diversity else []
        runs = []
        for _ in range(args.runs):
            child = subprocess.run(
                [sys.executable, __file__, *forwarded, "--pool", str(path)],
                check=True,
                capture_output=True,
                text=True,
            )
            run = json.loads(child.stdout.strip().splitlines()[-1])
            runs.append(run)
            print(
                f"chose {run['chosen']} of {args.rows:,} x {args.columns} float32 ({run['setup']}): "
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
