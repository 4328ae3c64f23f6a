"""Featurizing at scale: 100,000 distinct sentences and 10,000 photos through the project's feature store, and a
second round that featurizes only the new items.

    nice .venv/bin/python benchmarks/featurize.py                      # the targets' sizes
    nice .venv/bin/python benchmarks/featurize.py --sentences 10000 --photos 1000   # a quick look

The items are made from the real ones in ../shared/data/crowd-items (read in place, never copied into the
repository): each sentence joins the start of one movie-review sentence to the end of another, cut at random
words, until there are as many distinct ones as asked; each photo is one of the 1,000 LabelMe photos flipped,
cropped (70-100 % of each side), turned (±10°) and its brightness and contrast jittered, then saved as a JPEG at
256 x 256 under --scratch (outside the repository; made once, reused). Making them is not timed.

Timed: :func:`labelflow.tasks.features.pool_features` with the kind's default featurizer (text: word + char
TF-IDF with its 64-d SVD view; image: colour histogram + HOG at 64 px over 2 processes), from an empty workdir:
the fit on the pool, every item's rows and dense view, and writing them to the store. Then the same call with
``--new`` more items: it must featurize only those. Targets (issue 13): 100,000 sentences <= 15 s, 10,000
photos <= 60 s on 2 cores. The machine is shared, so beside the wall-clock time the script prints the load
average and the CPU seconds this process and its worker processes used: on an otherwise idle 2-core machine the
wall time is about CPU / 2 for the parallel parts.

Measured: see benchmarks/README.md ("Featurizing").
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from PIL import Image, ImageEnhance, ImageOps

from labelflow.tasks.features import pool_features
from labelflow.tasks.features.config import FeaturesConfig, featurizer_factory

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "crowd-items"
SENTENCES, PHOTOS = DATA / "sentiment_polarity", DATA / "labelme"


def distinct_sentences(n: int, seed: int = 0) -> list[str]:
    """``n`` distinct sentences, each the start of one real sentence and the end of another."""
    real = pd.concat(
        [pd.read_csv(SENTENCES / name, dtype=str)["text"] for name in ("items.csv", "test_items.csv")]
    ).tolist()
    words = [sentence.split() for sentence in real]
    rng = np.random.default_rng(seed)
    made: dict[str, None] = dict.fromkeys(real[:n])
    while len(made) < n:
        firsts, seconds = rng.integers(len(words), size=(2, 2 * (n - len(made))))
        for a, b in zip(firsts, seconds, strict=True):
            head, tail = words[a], words[b]
            cut_a, cut_b = rng.integers(1, len(head) + 1), rng.integers(0, max(len(tail) - 1, 1))
            made[" ".join(head[:cut_a] + tail[cut_b:])] = None
            if len(made) == n:
                break
    return list(made)


def augmented_photos(n: int, scratch: Path, seed: int = 0) -> list[str]:
    """Paths of ``n`` photos made from the LabelMe ones (made once under ``scratch``, then reused)."""
    sources = sorted((PHOTOS / "images").glob("*.jpg"))
    scratch.mkdir(parents=True, exist_ok=True)
    paths = [scratch / f"photo-{k:06d}.jpg" for k in range(n)]
    todo = [k for k, path in enumerate(paths) if not path.exists()]
    if todo:
        print(f"making {len(todo)} photos under {scratch} (not timed) ...", flush=True)
        chunks = [todo[start : start + 500] for start in range(0, len(todo), 500)]
        Parallel(n_jobs=2)(delayed(_make_photos)(chunk, sources, paths, seed) for chunk in chunks)
    return [str(path) for path in paths]


def _make_photos(ks: list[int], sources: list[Path], paths: list[Path], seed: int) -> None:
    for k in ks:
        rng = np.random.default_rng([seed, k])
        with Image.open(sources[k % len(sources)]) as opened:
            image = opened.convert("RGB")
        if k >= len(sources):  # the first copy of each photo is the photo itself
            if rng.random() < 0.5:
                image = ImageOps.mirror(image)
            width, height = image.size
            w, h = (int(side * rng.uniform(0.7, 1.0)) for side in (width, height))
            left, top = int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1))
            image = image.crop((left, top, left + w, top + h)).rotate(float(rng.uniform(-10, 10)))
            image = ImageEnhance.Brightness(image).enhance(float(rng.uniform(0.7, 1.3)))
            image = ImageEnhance.Contrast(image).enhance(float(rng.uniform(0.7, 1.3)))
        image.resize((256, 256)).save(paths[k], quality=90)


def cpu_seconds() -> float:
    """User + system CPU seconds of this process and of its live child processes (joblib's workers)."""
    tick = os.sysconf("SC_CLK_TCK")
    own = os.times()
    total = own.user + own.system
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the process ended meanwhile
        if int(fields[1]) == os.getpid():  # fields after the name: state, ppid, ..., utime (12), stime (13)
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def timed_rounds(kind: str, contents: list[str], n_new: int, workdir: Path) -> None:
    """Featurize ``contents`` but the last ``n_new`` from scratch, then all of them: print both."""
    items = pd.DataFrame({"item_id": [f"{kind}-{k:06d}" for k in range(len(contents))], "payload": contents})
    new_featurizer = featurizer_factory(kind, FeaturesConfig())
    first = items.iloc[: len(items) - n_new]
    start, cpu = time.perf_counter(), cpu_seconds()
    features = pool_features(first, workdir, new_featurizer=new_featurizer)
    elapsed, cpu = time.perf_counter() - start, cpu_seconds() - cpu
    print(
        f"{kind}: {len(first):,} items featurized in {elapsed:.1f} s, {cpu:.1f} CPU s ({features.computed:,} computed, "
        f"{features.matrix.shape[1]:,} features, {features.matrix.nnz / max(len(first), 1):.0f} non-zeros a row, "
        f"dense view {features.dense.shape[1]}-d), load average {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    start = time.perf_counter()
    again = pool_features(items, workdir, new_featurizer=new_featurizer)
    print(
        f"{kind}: second round of {len(items):,} items ({n_new:,} new) in {time.perf_counter() - start:.1f} s: "
        f"{again.computed:,} featurized, the other {len(items) - again.computed:,} read from the store",
        flush=True,
    )
    if again.computed != n_new:
        raise SystemExit(
            f"{kind}: the second round featurized {again.computed} items, not the {n_new} new ones"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sentences", type=int, default=100_000, help="distinct sentences (0: skip)")
    parser.add_argument("--photos", type=int, default=10_000, help="photos (0: skip)")
    parser.add_argument("--new", type=float, default=0.05, help="share of new items in the second round")
    parser.add_argument(
        "--scratch", type=Path, default=Path(tempfile.gettempdir()) / "labelflow-featurize-photos"
    )
    args = parser.parse_args()
    if not DATA.exists():
        raise SystemExit(f"the shared crowd items are not at {DATA} (they live beside the repository)")
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} before starting", flush=True)
    workdir = Path(tempfile.mkdtemp(prefix="labelflow-featurize-"))
    try:
        if args.sentences:
            n_new = int(args.sentences * args.new)
            sentences = distinct_sentences(args.sentences + n_new)
            timed_rounds("text", sentences, n_new, workdir / "text")
        if args.photos:
            n_new = int(args.photos * args.new)
            timed_rounds(
                "image", augmented_photos(args.photos + n_new, args.scratch), n_new, workdir / "image"
            )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
