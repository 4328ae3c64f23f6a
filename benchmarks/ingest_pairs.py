"""The 2M x 64 float32 ingest of ``big_pool.py``, by this tree and by another commit, in turn.

    nice .venv/bin/python benchmarks/ingest_pairs.py a3061c4 --pairs 3     # about 4 min with 2M rows

This machine's speed drifts by ~1.5x over hours, more than a change of a few seconds, so whole runs taken apart
cannot compare two versions. Here each pair is one ingest by this tree and one by ``revision`` (checked out in a
temporary git worktree), minutes apart: each ingests ``big.parquet`` into a fresh copy of the same project
(``big_pool.py``'s), against one Prefect server started for all of them, with
``python -m labelflow.flows.cli ingest big.parquet`` and that tree first on the import path. Prints each run's
wall time, CPU time and peak memory, and the paired differences' mean and standard error.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from big_pool import BASE_ROWS, CONFIG, measured, write_items

from labelflow.integrations.prefect_server import local_prefect_server

REPO = Path(__file__).resolve().parents[1]
# the venv's editable install would put this tree's labelflow first whatever PYTHONPATH says
WITHOUT_EDITABLE_FINDER = (
    "import sys\n"
    "sys.meta_path[:] = [f for f in sys.meta_path if 'editable' not in getattr(f, '__module__', '')]\n"
)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("revision", help="the commit to compare this tree with, e.g. a3061c4")
    parser.add_argument("--pairs", type=int, default=3, help="pairs of ingests (default 3)")
    parser.add_argument("--rows", type=int, default=2_000_000, help="rows of the ingested file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ingest-pairs-") as temporary:
        work = Path(temporary)
        project = work / "project"
        project.mkdir()
        write_items(project / "base.parquet", BASE_ROWS, 0, seed=1)
        write_items(project / "big.parquet", args.rows, BASE_ROWS, seed=2)
        (project / "labelflow.toml").write_text(CONFIG)
        (work / "shim").mkdir()
        (work / "shim" / "sitecustomize.py").write_text(WITHOUT_EDITABLE_FINDER)
        other = work / "other"
        git = ["git", "-C", str(REPO), "worktree"]
        subprocess.run([*git, "add", "-q", "--detach", str(other), args.revision], check=True)
        try:
            with local_prefect_server(work / "prefect") as env:
                runs: dict[str, list[tuple[float, float, float]]] = {"this tree": [], args.revision: []}
                for pair in range(args.pairs):
                    for label, tree in (("this tree", REPO), (args.revision, other)):
                        folder = work / f"run-{pair}-{len(runs[label])}-{tree.name}"
                        shutil.copytree(project, folder)
                        load = os.getloadavg()[0]
                        seconds, peak, _, cpu = measured(
                            [sys.executable, "-m", "labelflow.flows.cli", "ingest", "big.parquet"],
                            folder,
                            {**env, "PYTHONPATH": f"{tree}{os.pathsep}{work / 'shim'}"},
                        )
                        shutil.rmtree(folder)
                        runs[label].append((seconds, cpu, peak))
                        print(
                            f"pair {pair + 1} {label:>12}: {seconds:6.1f} s wall, {cpu:6.1f} s CPU, "
                            f"peak {peak:6.0f} MB (load average {load:.2f})",
                            flush=True,
                        )
        finally:
            subprocess.run([*git, "remove", "--force", str(other)], check=True)
    for what, at in (("wall", 0), ("CPU", 1), ("peak MB", 2)):
        differences = [a[at] - b[at] for a, b in zip(runs["this tree"], runs[args.revision], strict=True)]
        error = (
            statistics.stdev(differences) / len(differences) ** 0.5 if len(differences) > 1 else float("nan")
        )
        print(
            f"this tree - {args.revision}, {what}: {statistics.mean(differences):+.1f} +- {error:.1f} (paired)"
        )


if __name__ == "__main__":
    main()
