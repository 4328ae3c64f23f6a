"""Great Expectations suite timings: the first call (GX import + context) and repeat calls on a large pool.

.venv/bin/python benchmarks/validation.py --rows 100000 --features 64
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--features", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    import numpy as np
    import pandas as pd

    from labelflow.tasks.validation import validate_pool

    features = [f"f{i}" for i in range(args.features)]
    frame = pd.DataFrame(np.random.default_rng(0).normal(size=(args.rows, args.features)), columns=features)
    frame.insert(0, "item_id", [f"i{k}" for k in range(args.rows)])
    started = time.perf_counter()
    validate_pool(frame, features)
    first = time.perf_counter() - started
    repeats = []
    for _ in range(args.repeats):
        started = time.perf_counter()
        assert validate_pool(frame, features).success
        repeats.append(time.perf_counter() - started)
    print(
        f"pool suite on {args.rows:,} rows x {args.features} features: first call {first:.2f} s "
        f"(GX import + context), then median {sorted(repeats)[len(repeats) // 2]:.3f} s per call"
    )


if __name__ == "__main__":
    main()
