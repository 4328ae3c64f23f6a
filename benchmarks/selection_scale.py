"""Scale benchmark: choose 1,000 items from a 1M x 64 float32 pool stored as Parquet.

    .venv/bin/python benchmarks/selection_scale.py                 # margin, default model pipeline
    .venv/bin/python benchmarks/selection_scale.py --committee 5   # vote entropy, 5-member bootstrap committee

Writes the pool once (a temporary Parquet file, ~250 MB), fits the default pipeline (StandardScaler +
LogisticRegression, on 2,000 labeled float64 rows, as a real round would) outside the clock, then times: reading
the Parquet file into one float32 array (column by column, so the Arrow table and the array never both hold the
whole pool) + scoring in chunks + choosing the batch. Prints the seconds and the process's peak resident memory.
Run each configuration in a fresh process: peak memory is per process.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tasks.selection import BootstrapCommittee, SelectionConfig, choose_indices
from tasks.training import TrainingConfig, build_pipeline


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


def read_features(path: Path) -> np.ndarray:
    """The pool as one (rows, columns) float32 array, filled one column at a time."""
    file = pq.ParquetFile(path)
    names = file.schema_arrow.names
    features = np.empty((file.metadata.num_rows, len(names)), dtype=np.float32)
    for c, name in enumerate(names):
        features[:, c] = file.read(columns=[name]).column(0).to_numpy()
    return features


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
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "pool.parquet"
        write_pool(path, args.rows, args.columns, seed=0)
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
        before = peak_mb()
        started = time.perf_counter()
        features = read_features(path)
        read = time.perf_counter() - started
        chosen, _ = choose_indices(
            features, model, config, args.choose, np.random.default_rng(0), committee=committee
        )
        total = time.perf_counter() - started
    print(
        f"chose {len(chosen)} of {args.rows:,} x {args.columns} float32 ({config.strategy}+{config.diversity}"
        f"{f', {args.committee}-member committee' if committee else ''}): {total:.2f} s "
        f"(reading {read:.2f} s); peak memory {peak_mb():.0f} MB (before reading {before:.0f} MB; "
        f"the pool is {features.nbytes / 2**20:.0f} MB)"
    )


if __name__ == "__main__":
    main()
