"""Calibration from gold on the six real crowds of ../shared/data.

    .venv/bin/pip install -e '.[bench]'                                # crowd-kit, benchmark-only
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/calibration.py           # 20 draws (seeds 100-119), one core
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/calibration.py --quick   # 4 draws
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/calibration.py --develop # seeds 0-19: how the map was chosen

For each crowd (duck, product, dog, face, sentiment_polarity, labelme) and each gold size n = 20, 50, 100 (never
more than half the crowd's items), n gold items are drawn at random from the truth, 20 times. The gold is used by
every method (clamped, and by ours to calibrate); the OTHER items are scored against the truth and pooled over the
draws: accuracy, ECE (10 equal-width bins) beside its floor (the ECE a perfectly calibrated predictor shows on
the same confidences, mean of 200 simulations; an item scored in several draws shares one uniform draw across
them, so its outcomes are as correlated as a real item's: ``ece_floor(..., item_ids=...)``), and the share right
among items at confidence >= 0.95 with their count. Methods: our default Dawid-Skene uncalibrated and calibrated
from the gold (``labelflow.tasks.calibration.calibrate_from_gold``, its default map and 5 folds); "auto", the
model ``choose_aggregator`` picks on the draw's answers and gold, calibrated the same way; majority vote; and
crowd-kit's Dawid-Skene with the gold as ``true_labels`` when crowd-kit is installed.

The reported draws (seeds 100-119) were never used to choose anything; ``--develop`` reruns the comparison of
calibration families on seeds 0-19 that the module docstring of ``labelflow.tasks.calibration`` reports.
"""

from __future__ import annotations

import argparse
import functools
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd
from shared_crowds import CROWDS

from labelflow.tasks.aggregation import (
    DawidSkene,
    MajorityVote,
    choose_aggregator,
    from_shared_csv,
    make_aggregator,
    read_shared_truth,
)
from labelflow.tasks.calibration import (
    BUCKET_PRIOR_SD,
    DEFAULT_EPS_PRIOR,
    DEFAULT_FAMILY,
    DEFAULT_OBJECTIVE,
    CalibrationMap,
    EpsPrior,
    Family,
    Objective,
    calibrate_from_gold,
    ece_floor,
    expected_calibration_error,
    out_of_fold_probas,
)

GOLD_SIZES = (20, 50, 100)
REPORT_SEEDS = range(100, 120)
DEVELOP_SEEDS = range(0, 20)
THRESHOLD = 0.95
BINS = 10
N_FOLDS = 5


@dataclass(frozen=True)
class Crowd:
    name: str
    answers: pd.DataFrame
    truth: pd.Series  # answered items only
    label_names: list[str]


def load_crowds() -> list[Crowd]:
    missing = [str(path) for path in CROWDS.values() if not (path / "answers.csv").exists()]
    if missing:
        raise SystemExit(f"shared crowds not found (they live beside the repo in ../shared): {missing}")
    crowds = []
    for name, folder in CROWDS.items():
        answers = from_shared_csv(folder / "answers.csv")
        truth = read_shared_truth(folder / "truth.csv")
        truth = truth[truth.index.isin(answers["item_id"].unique())].sort_index()
        labels = sorted(set(answers["label"]) | set(truth))
        crowds.append(Crowd(name, answers, truth, labels))
    return crowds


def draw_gold(crowd: Crowd, n: int, seed: int) -> pd.Series:
    """``n`` items drawn uniformly at random from the truth (seeded by the draw and the gold size)."""
    rng = np.random.default_rng([seed, n])
    return crowd.truth.iloc[np.sort(rng.choice(len(crowd.truth), size=n, replace=False))]


def gold_sizes(crowd: Crowd, sizes: Iterable[int] = GOLD_SIZES) -> list[int]:
    return [n for n in sizes if n <= len(crowd.truth) // 2]


@dataclass
class Pool:
    """Confidence and correctness of scored items, pooled over draws."""

    confidence: list[npt.NDArray[np.float64]]
    correct: list[npt.NDArray[np.bool_]]
    items: list[npt.NDArray[np.str_]]

    def add(self, confidence: npt.ArrayLike, correct: npt.ArrayLike, items: npt.ArrayLike) -> None:
        self.confidence.append(np.asarray(confidence, dtype=np.float64))
        self.correct.append(np.asarray(correct, dtype=bool))
        self.items.append(np.asarray(items, dtype=str))

    def arrays(self) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_], npt.NDArray[np.str_]]:
        return np.concatenate(self.confidence), np.concatenate(self.correct), np.concatenate(self.items)


def new_pool() -> Pool:
    return Pool([], [], [])


def scored(
    probas: pd.DataFrame, labels: pd.Series, truth: pd.Series
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Confidence in the chosen label, whether it is right, and the item ids, for the items of ``truth``."""
    chosen = labels.astype(str).reindex(truth.index)
    frame = probas.reindex(truth.index)
    columns = frame.columns.get_indexer(pd.Index(chosen.to_numpy()))
    confidence = frame.to_numpy()[np.arange(len(frame)), columns]
    return confidence, (chosen == truth).to_numpy(), truth.index.to_numpy()


def crowd_kit_dawid_skene() -> Callable[[pd.DataFrame, pd.Series], tuple[pd.DataFrame, pd.Series]] | None:
    try:
        from crowdkit.aggregation import DawidSkene as CrowdKitDawidSkene
    except ImportError:
        return None

    def fit(answers: pd.DataFrame, gold: pd.Series) -> tuple[pd.DataFrame, pd.Series]:
        data = pd.DataFrame(
            {"task": answers["item_id"], "worker": answers["worker_id"], "label": answers["label"]}
        )
        model = CrowdKitDawidSkene(n_iter=100).fit(data, true_labels=gold)
        assert model.probas_ is not None and model.labels_ is not None  # set by fit
        return model.probas_, model.labels_

    return fit


def ours(label_names: list[str]) -> Callable[[], DawidSkene]:
    return lambda: DawidSkene(label_names)


# --------------------------------------------------------------------------------------------- the report


METHODS = ("ours", "ours calibrated", "auto calibrated", "majority vote", "crowd-kit DS")


Pools = dict[tuple[str, int, str], Pool]
Maps = dict[tuple[str, int], list[CalibrationMap]]
Choices = dict[tuple[str, int], list[str]]


def run_draws(
    crowds: list[Crowd], seeds: Iterable[int], sizes: Iterable[int] = GOLD_SIZES
) -> tuple[Pools, Maps, Choices]:
    """Every method on every draw: the pooled non-gold items per (crowd, gold size, method), our maps and the
    models auto chose."""
    crowd_kit = crowd_kit_dawid_skene()
    pools: Pools = defaultdict(new_pool)
    maps: Maps = defaultdict(list)
    choices: Choices = defaultdict(list)
    for crowd in crowds:
        started = time.perf_counter()
        for n in gold_sizes(crowd, sizes):
            for seed in seeds:
                gold = draw_gold(crowd, n, seed)
                others = crowd.truth.drop(gold.index)
                result = calibrate_from_gold(
                    crowd.answers, gold, ours(crowd.label_names), n_folds=N_FOLDS, random_state=seed
                )
                pools[crowd.name, n, "ours"].add(*scored(result.raw_probas, result.labels, others))
                pools[crowd.name, n, "ours calibrated"].add(*scored(result.probas, result.labels, others))
                chosen = choose_aggregator(
                    crowd.answers, gold, label_names=crowd.label_names, random_state=seed
                ).method
                choices[crowd.name, n].append(chosen)
                if chosen != "dawid_skene":
                    result = calibrate_from_gold(
                        crowd.answers,
                        gold,
                        functools.partial(make_aggregator, chosen, crowd.label_names),
                        n_folds=N_FOLDS,
                        random_state=seed,
                    )
                pools[crowd.name, n, "auto calibrated"].add(*scored(result.probas, result.labels, others))
                vote = MajorityVote(crowd.label_names, random_state=seed).fit(crowd.answers, gold)
                pools[crowd.name, n, "majority vote"].add(*scored(vote.probas_, vote.labels_, others))
                if crowd_kit is not None:
                    probas, labels = crowd_kit(crowd.answers, gold)
                    pools[crowd.name, n, "crowd-kit DS"].add(*scored(probas, labels, others))
                maps[crowd.name, n].append(result.map)
        print(f"  {crowd.name}: {time.perf_counter() - started:.0f} s", flush=True)
    return pools, maps, choices


def figures(pool: Pool) -> dict[str, float]:
    confidence, correct, items = pool.arrays()
    sure = confidence >= THRESHOLD
    return {
        "items": float(len(confidence)),
        "accuracy": float(correct.mean()),
        "ece": expected_calibration_error(confidence, correct, BINS),
        "floor": ece_floor(confidence, BINS, n_sims=200, item_ids=items),
        "right_at": float(correct[sure].mean()) if sure.any() else float("nan"),
        "n_at": float(sure.sum()),
    }


def report(
    crowds: list[Crowd], pools: Pools, maps: Maps, choices: Choices, n_draws: int, sizes: Iterable[int]
) -> None:
    print(
        f"\nNon-gold items pooled over {n_draws} draws; ECE with {BINS} equal-width bins beside its floor; "
        f"right@{THRESHOLD} is the share right among items at confidence >= {THRESHOLD} (their count)."
    )
    header = (
        f"{'crowd':<19}{'gold':>5} {'method':<16}{'items':>7}{'acc':>8}{'ECE':>7}{'floor':>7}"
        f"{'right@.95':>10}{'(n)':>8}"
    )
    means: dict[tuple[int, str], list[dict[str, float]]] = defaultdict(list)
    print(header)
    print("-" * len(header))
    for crowd in crowds:
        for n in gold_sizes(crowd, sizes):
            for method in METHODS:
                if (crowd.name, n, method) not in pools:
                    continue
                row = figures(pools[crowd.name, n, method])
                means[n, method].append(row)
                print(
                    f"{crowd.name:<19}{n:>5} {method:<16}{row['items']:>7.0f}{row['accuracy']:>8.4f}"
                    f"{row['ece']:>7.3f}{row['floor']:>7.3f}{row['right_at']:>10.3f}{row['n_at']:>8.0f}"
                )
            fitted = maps[crowd.name, n]
            chosen = pd.Series(choices[crowd.name, n]).value_counts()
            print(
                f"{'':<25}auto's map, median over draws: temperature "
                f"{np.median([m.temperature for m in fitted]):.2f}, uniform weight "
                f"{np.median([m.uniform_weight for m in fitted]):.3f}; auto chose "
                + ", ".join(f"{name} {count}x" for name, count in chosen.items())
            )
    print("\nMeans over the crowds (duck has 108 items, so no n = 100 for it):")
    print(f"{'gold':>5} {'method':<16}{'crowds':>7}{'acc':>8}{'ECE':>7}{'floor':>7}{'right@.95':>10}")
    for (n, method), rows in sorted(means.items(), key=lambda kv: (kv[0][0], METHODS.index(kv[0][1]))):
        mean = {  # right@.95 over the crowds that have items there (NaN when none has)
            key: float(np.mean(values))
            if len(values := [row[key] for row in rows if not np.isnan(row[key])])
            else float("nan")
            for key in ("accuracy", "ece", "floor", "right_at")
        }
        print(
            f"{n:>5} {method:<16}{len(rows):>7}{mean['accuracy']:>8.4f}{mean['ece']:>7.3f}{mean['floor']:>7.3f}"
            f"{mean['right_at']:>10.3f}"
        )


# --------------------------------------------------------------------------------------------- development

# name -> (family, prior sd of a bucket's log-temperature, objective[, prior on eps]); None is the identity
CANDIDATES: dict[str, tuple[Family, float, Objective] | tuple[Family, float, Objective, EpsPrior] | None] = {
    "uncalibrated": None,
    "temperature": ("temperature", BUCKET_PRIOR_SD, "label"),
    "temperature_uniform": ("temperature_uniform", BUCKET_PRIOR_SD, "label"),
    "bucket, prior sd 0.25": ("bucket_temperature_uniform", 0.25, "label"),
    "bucket, prior sd 0.5": ("bucket_temperature_uniform", 0.5, "label"),
    "bucket, prior sd 1": ("bucket_temperature_uniform", 1.0, "label"),
    "temperature_uniform, top": ("temperature_uniform", BUCKET_PRIOR_SD, "top_label"),
    "bucket sd 0.5, top": ("bucket_temperature_uniform", 0.5, "top_label"),
    "bucket sd 1, top": ("bucket_temperature_uniform", 1.0, "top_label"),
    "averaged, top": ("averaged_temperature_uniform", BUCKET_PRIOR_SD, "top_label", "flat"),
    "averaged Jeffreys, top": ("averaged_temperature_uniform", BUCKET_PRIOR_SD, "top_label", "jeffreys"),
    "averaged log-flat, top": ("averaged_temperature_uniform", BUCKET_PRIOR_SD, "top_label", "log_flat"),
    "averaged sure-error flat, top": (
        "averaged_temperature_uniform",
        BUCKET_PRIOR_SD,
        "top_label",
        "sure_error_flat",
    ),
    "averaged sure-error Beta, top": (
        "averaged_temperature_uniform",
        BUCKET_PRIOR_SD,
        "top_label",
        "sure_error_beta",
    ),
}


def develop(
    crowds: list[Crowd],
    seeds: Iterable[int],
    sizes: Iterable[int] = GOLD_SIZES,
    maps: Iterable[str] = CANDIDATES,
) -> None:
    """ECE of the non-gold items under each candidate map, fitted on cross-fitted gold posteriors (the same
    computation as ``calibrate_from_gold``, with one set of fits shared by all candidates)."""
    pools: Pools = defaultdict(new_pool)
    for crowd in crowds:
        make = ours(crowd.label_names)
        for n in gold_sizes(crowd, sizes):
            for seed in seeds:
                gold = draw_gold(crowd, n, seed)
                others = crowd.truth.drop(gold.index)
                full = make().fit(crowd.answers, gold)
                n_answers = full.n_answers_
                folds = np.random.default_rng(seed).permutation(np.arange(n) % N_FOLDS)
                oof = out_of_fold_probas(crowd.answers, gold, make, folds, fitted=full).to_numpy()
                truth = full.probas_.columns.get_indexer(pd.Index(gold.to_numpy()))
                for name in maps:
                    candidate = CANDIDATES[name]
                    calibration_map = CalibrationMap()
                    if candidate is not None:
                        family, prior_sd, objective, *eps_prior = candidate
                        calibration_map = CalibrationMap.fit(
                            oof,
                            truth,
                            family,
                            n_answers.loc[gold.index].to_numpy(),
                            bucket_prior_sd=prior_sd,
                            objective=objective,
                            eps_prior=eps_prior[0] if eps_prior else DEFAULT_EPS_PRIOR,
                        )
                    probas = pd.DataFrame(
                        calibration_map.apply(full.probas_.to_numpy(), n_answers.to_numpy()),
                        index=full.probas_.index,
                        columns=full.probas_.columns,
                    )
                    pools[crowd.name, n, name].add(*scored(probas, full.labels_, others))
    rows = {key: figures(pool) for key, pool in pools.items()}
    ece = {key: row["ece"] for key, row in rows.items()}
    names = [crowd.name for crowd in crowds]
    print(
        f"\nDevelopment draws (seeds {min(seeds)}-{max(seeds)}): pooled non-gold ECE per crowd, and below it "
        f"right@{THRESHOLD} (the count of items at >= {THRESHOLD})"
    )
    for n in sorted({n for _, n, _ in rows}):
        print(
            f"\n gold {n}: {'candidate':<22}" + "".join(f"{name[:9]:>14}" for name in names) + f"{'mean':>8}"
        )
        for label in maps:
            values = [ece.get((name, n, label), float("nan")) for name in names]
            print(
                f"{'':>9}{label:<22}" + "".join(f"{v:>14.3f}" for v in values) + f"{np.nanmean(values):>8.3f}"
            )
            at = [rows.get((name, n, label)) for name in names]
            print(
                f"{'':>31}"
                + "".join(
                    f"{'':>14}"
                    if row is None or not row["n_at"]
                    else f"{row['right_at']:>7.3f} ({row['n_at']:>4.0f})"
                    for row in at
                )
            )
    print("\nLeave-one-crowd-out choice (lowest mean ECE over the other crowds and all gold sizes):")
    for held_out in names:
        score = {
            candidate: np.nanmean(
                [v for (name, _, c), v in ece.items() if c == candidate and name != held_out]
            )
            for candidate in maps
        }
        print(f"  without {held_out:<19} -> {min(score, key=score.__getitem__)}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="4 draws instead of 20")
    parser.add_argument("--develop", action="store_true", help="compare map families on seeds 0-19")
    parser.add_argument("--crowds", nargs="+", choices=list(CROWDS), help="only these crowds")
    parser.add_argument("--maps", nargs="+", choices=list(CANDIDATES), help="--develop: only these maps")
    parser.add_argument("--gold", nargs="+", type=int, choices=GOLD_SIZES, help="only these gold sizes")
    args = parser.parse_args()
    started, started_cpu = time.perf_counter(), time.process_time()
    crowds = [crowd for crowd in load_crowds() if not args.crowds or crowd.name in args.crowds]
    sizes = tuple(args.gold) if args.gold else GOLD_SIZES
    if args.develop:
        develop(crowds, DEVELOP_SEEDS, sizes, args.maps or list(CANDIDATES))
    else:
        seeds = REPORT_SEEDS[:4] if args.quick else REPORT_SEEDS
        print(
            f"map {DEFAULT_FAMILY!r} fitted to {DEFAULT_OBJECTIVE!r}, {N_FOLDS} folds; "
            f"draws with seeds {seeds.start}-{seeds.stop - 1}"
        )
        if crowd_kit_dawid_skene() is None:
            print("crowd-kit is not installed (pip install -e '.[bench]'): its column is skipped")
        report(crowds, *run_draws(crowds, seeds, sizes), len(seeds), sizes)
    print(
        f"\n{time.perf_counter() - started:.0f} s wall, {time.process_time() - started_cpu:.0f} s CPU "
        "(the wall time depends on what else the machine runs)"
    )


if __name__ == "__main__":
    main()
