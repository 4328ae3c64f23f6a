"""Active-learning benchmark: learning curves of every selection strategy against random, with clean labels.

    .venv/bin/python benchmarks/active_learning.py --quick          # digits + synthetic, 2 seeds (~3 min)
    .venv/bin/python benchmarks/active_learning.py                  # all four datasets, 5 seeds
    .venv/bin/python benchmarks/active_learning.py --seeds $(seq 10 49) --candidates 10   # development seeds

Protocol: per seed a stratified 25% test split, the rest is the pool; the seed set is 2 labeled items
per class; each step labels a batch of 1% of the pool (at least 5) chosen by the strategy, refits, and measures
test accuracy, until half the pool is labeled. The model is the project's default pipeline (StandardScaler +
LogisticRegression, no self-training). "Full-data accuracy" is the same model fitted on the whole pool; the
header prints the most iterations that fit took against LogisticRegression's max_iter, so a ceiling fitted short of
convergence (which active learning could then "beat") shows.

Reported per dataset and strategy (mean over seeds):
- AUC: the area under the learning curve (accuracy against the fraction of the pool labeled, from the seed set
  to half the pool), divided by the width of that range, so it is in [0, 1];
- labels to reach 95% and 99% of full-data accuracy (a seed that never gets there counts as half the pool, and
  the mean is then shown as ">="), and the ratio to random's;
- the stopping rule at its defaults (``labelflow.tasks.selection.StoppingRule``:
  kappa >= 0.99 over 3 successive steps, or
  kappa levelled off, on a fixed stop set of pool items): labels at the stop vs at the plateau (the first point
  after which accuracy never rises by more than 0.5 percentage points); a curve the rule never stops counts at
  its last point. "stop/plateau" is the mean ratio, where early and late stops cancel; "off by" is how far each
  curve's stop is from its own plateau either way (geometric mean of max(stop/plateau, plateau/stop), minus 1).
  Two bounds beside them: "floor", how far the plateau moves when only the test set is redrawn (bootstrap, the
  same models), which no rule can see, so in expectation over test sets no rule is off by less (on a few seeds
  a rule can be luckier than that); and "+1 step", the ratio of an
  oracle that stops exactly one step after the plateau, the best any rule can do that needs to see a step past
  it (as one comparing successive models does). Where the plateau comes a few steps of 5 labels in, that bound is
  itself above 1.1;
- the default's area minus scikit-activeml's best, seed by seed (paired), with its standard error.

With ``--crowd`` the labels bought are the simulated crowd's instead of the clean ones: each pool item gets 3
answers from the default simulated crowd (30 workers: 70% good at 0.75-0.95, 20% uniform spammers, 10% one-class;
its seed is the run's), aggregated by the default Dawid-Skene over the whole pool's answers. The test labels and
the full-data ceiling stay clean, so the curves show what the crowd's noise costs each strategy.

scikit-activeml's UncertaintySampling (margin) and QueryByCommittee run side by side when it is installed
(`pip install -e '.[bench]'`); otherwise a note says they were skipped. A PNG of the curves is written.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from joblib import Parallel, delayed
from sklearn.base import clone
from sklearn.datasets import load_breast_cancer, load_digits, load_wine, make_classification
from sklearn.ensemble import BaggingClassifier
from sklearn.model_selection import train_test_split

from labelflow.tasks.selection import (
    BootstrapCommittee,
    SelectionConfig,
    StoppingRule,
    choose_indices,
    stopping_round,
)
from labelflow.tasks.training import TrainingConfig, build_pipeline, fit_classifier

STRATEGIES: dict[str, SelectionConfig] = {
    "random": SelectionConfig(strategy="random", diversity="none"),
    "least_confidence": SelectionConfig(strategy="least_confidence", diversity="none"),
    "entropy": SelectionConfig(strategy="entropy", diversity="none"),
    "margin": SelectionConfig(strategy="margin", diversity="none"),
    "margin+kcenter": SelectionConfig(strategy="margin", diversity="kcenter"),
    "margin+kmeans": SelectionConfig(strategy="margin", diversity="kmeans"),
    "vote_entropy": SelectionConfig(strategy="vote_entropy", diversity="none"),
    "consensus_kl": SelectionConfig(strategy="consensus_kl", diversity="none"),
}
QUICK_STRATEGIES = [
    "random",
    "margin",
    "entropy",
    "margin+kcenter",
    "margin+kmeans",
    "vote_entropy",
    "consensus_kl",
]
SKACTIVEML = ["skactiveml:margin", "skactiveml:qbc"]
DEFAULT = "margin+kmeans"  # SelectionConfig()'s strategy and diversity


def load(name: str) -> tuple[np.ndarray, np.ndarray]:
    if name == "digits":
        data = load_digits()
        return data.data, data.target
    if name == "breast_cancer":
        data = load_breast_cancer()
        return data.data, data.target
    if name == "wine":
        data = load_wine()
        return data.data, data.target
    if name == "synthetic":
        X, y = make_classification(
            n_samples=20000, n_features=20, n_informative=10, n_classes=4, flip_y=0.01, random_state=0
        )
        return X, y
    raise ValueError(f"unknown dataset {name!r}")


BENCHMARK_MODEL = TrainingConfig(self_training=False)


def model() -> Any:
    return build_pipeline(BENCHMARK_MODEL)


@dataclass
class Curve:
    dataset: str
    strategy: str
    seed: int
    labels: list[int]
    accuracy: list[float]
    full_accuracy: float
    full_iterations: int  # solver iterations of the full-data fit; below max_iter means it converged
    pool_size: int
    predictions: list[np.ndarray]  # each step's model on the fixed stop set, for the stopping rule
    test_correct: list[
        np.ndarray
    ]  # each step's model on each test item, right or not (bootstraps the plateau)
    seconds: float
    fallbacks: int = 0  # steps an external strategy failed and random chose instead


def crowd_labels(y: np.ndarray, seed: int, answers_per_item: int = 3) -> np.ndarray:
    """Each item's label as the default simulated crowd gives it (module docstring, ``--crowd``)."""
    import pandas as pd

    from labelflow.integrations.crowd.simulated import SimulatedCrowdConfig, draw_answer, make_workers
    from labelflow.tasks.aggregation import aggregate_answers_frame

    classes = np.unique(y)
    names = [str(c) for c in classes]
    workers = make_workers(SimulatedCrowdConfig(seed=seed), len(names))
    rng = np.random.default_rng(seed)
    codes = np.searchsorted(classes, y)
    rows = [
        (f"i{item}", workers[w].worker_id, names[draw_answer(workers[w], int(code), len(names), rng)])
        for item, code in enumerate(codes)
        for w in rng.choice(len(workers), size=answers_per_item, replace=False)
    ]
    answers = pd.DataFrame(rows, columns=["item_id", "worker_id", "label"])
    labels = aggregate_answers_frame(answers, names).set_index("item_id")["label"]
    aggregated = labels.reindex([f"i{item}" for item in range(len(y))]).to_numpy()
    return classes[[names.index(label) for label in aggregated]]


def seed_set(y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return np.concatenate([rng.choice(np.flatnonzero(y == c), size=2, replace=False) for c in np.unique(y)])


def skactiveml_chooser(
    kind: str, seed: int
) -> Callable[[np.ndarray, np.ndarray, np.ndarray, int], np.ndarray]:
    """scikit-activeml's own strategies, on its own API (unlabeled = MISSING_LABEL)."""
    from skactiveml.classifier import SklearnClassifier
    from skactiveml.pool import QueryByCommittee, UncertaintySampling
    from skactiveml.utils import MISSING_LABEL

    def choose(X: np.ndarray, y: np.ndarray, labeled: np.ndarray, k: int) -> np.ndarray:
        y_partial = np.full(len(y), MISSING_LABEL, dtype=float)
        y_partial[labeled] = y[labeled]
        classes = np.unique(y)
        clf = SklearnClassifier(model(), classes=classes, random_state=seed)
        if kind == "margin":
            qs: Any = UncertaintySampling(method="margin_sampling", random_state=seed)
            return np.asarray(qs.query(X, y_partial, clf=clf, batch_size=k))
        # identical LogisticRegression members would never disagree: a bagging ensemble, as its docs suggest
        ensemble = SklearnClassifier(
            BaggingClassifier(model(), n_estimators=5, random_state=seed), classes=classes, random_state=seed
        )
        qs = QueryByCommittee(method="KL_divergence", random_state=seed)
        return np.asarray(qs.query(X, y_partial, ensemble=ensemble, batch_size=k))

    return choose


def run_curve(
    dataset: str, strategy: str, seed: int, crowd: bool = False, candidates: int | None = None
) -> Curve:
    warnings.filterwarnings("ignore")  # scikit-activeml warns on every unfittable bootstrap member
    started = time.perf_counter()
    X, y = load(dataset)
    X_pool, X_test, y_pool, y_test = train_test_split(X, y, test_size=0.25, stratify=y, random_state=seed)
    full = clone(model()).fit(X_pool, y_pool)
    full_accuracy = float((full.predict(X_test) == y_test).mean())
    full_iterations = int(np.max(full[-1].n_iter_))
    bought = crowd_labels(y_pool, seed) if crowd else y_pool
    rng = np.random.default_rng(seed)
    stop_set = rng.choice(len(X_pool), size=min(1000, len(X_pool)), replace=False)
    labeled = seed_set(y_pool, rng)
    batch = max(5, round(0.01 * len(X_pool)))
    limit = len(X_pool) // 2
    external = skactiveml_chooser(strategy.split(":")[1], seed) if strategy in SKACTIVEML else None
    config = STRATEGIES.get(strategy)
    if config is not None and candidates is not None:
        config = config.model_copy(update={"candidates": candidates})
    labels: list[int] = []
    accuracy: list[float] = []
    predictions: list[np.ndarray] = []
    test_correct: list[np.ndarray] = []
    step = fallbacks = 0
    while True:
        # the crowd may label every seed item alike: then the step's model is the prior (fit_classifier)
        fitted = fit_classifier(BENCHMARK_MODEL, X_pool[labeled], bought[labeled])
        labels.append(len(labeled))
        test_correct.append(fitted.predict(X_test) == y_test)
        accuracy.append(float(test_correct[-1].mean()))
        predictions.append(fitted.predict(X_pool[stop_set]))
        if len(labeled) >= limit:
            break
        k = min(batch, limit - len(labeled))
        unlabeled = np.setdiff1d(np.arange(len(X_pool)), labeled)
        step += 1
        if external is not None:
            try:
                picked = external(X_pool, bought, labeled, k)
            except ValueError:
                # scikit-activeml's bagging committee cannot fit a member whose bootstrap of a tiny seed set
                # holds one class; that step is chosen at random and counted
                picked = rng.choice(unlabeled, size=k, replace=False)
                fallbacks += 1
            labeled = np.concatenate([labeled, np.setdiff1d(picked, labeled)])
            continue
        assert config is not None
        committee = None
        if config.strategy in ("vote_entropy", "consensus_kl"):
            committee = BootstrapCommittee(
                model(), config.committee_size, random_state=seed * 1000 + step
            ).fit(X_pool[labeled], bought[labeled])
        chosen, _ = choose_indices(
            X_pool[unlabeled],
            fitted,
            config,
            k,
            np.random.default_rng([seed, step]),
            committee=committee,
            seed=seed * 1000 + step,
        )
        labeled = np.concatenate([labeled, unlabeled[chosen]])
    return Curve(
        dataset,
        strategy,
        seed,
        labels,
        accuracy,
        full_accuracy,
        full_iterations,
        len(X_pool),
        predictions,
        test_correct,
        time.perf_counter() - started,
        fallbacks,
    )


def labels_to_reach(curve: Curve, share: float) -> tuple[float, bool]:
    """Labels at the first point reaching ``share`` of full-data accuracy; (half the pool, False) if never."""
    for n, acc in zip(curve.labels, curve.accuracy, strict=True):
        if acc >= share * curve.full_accuracy:
            return float(n), True
    return float(curve.pool_size // 2), False


def area(curve: Curve) -> float:
    fraction = np.asarray(curve.labels) / curve.pool_size
    accuracy = np.asarray(curve.accuracy)
    width = fraction[-1] - fraction[0]
    return float(np.trapezoid(accuracy, fraction) / width) if width > 0 else float(accuracy[0])


def plateau_index(accuracy: list[float], tolerance: float = 0.005) -> int:
    """The first point after which accuracy never rises by more than ``tolerance``."""
    acc = np.asarray(accuracy)
    for i in range(len(acc)):
        if acc[i:].max() - acc[i] <= tolerance:
            return i
    return len(acc) - 1


def distance(stops: list[int], plateaus: list[int]) -> float:
    """How far each stop is from its curve's plateau, as a share either way: the geometric mean of
    max(stop/plateau, plateau/stop), minus 1. Unlike the mean ratio, early and late stops do not cancel."""
    return float(np.expm1(np.mean(np.abs(np.log(np.asarray(stops) / np.asarray(plateaus))))))


def test_set_spread(curve: Curve, draws: int = 200) -> float:
    """How far the plateau moves when only the test set is redrawn (bootstrap), for this curve's very models:
    the mean |log| distance from each redrawn plateau to their median. A stopping rule cannot see the test set,
    so for a curve it is off by at least this much in expectation, however well it reads the models."""
    rng = np.random.default_rng(curve.seed)
    correct = np.asarray(curve.test_correct)  # steps x test items
    n_test = correct.shape[1]
    plateaus = []
    for _ in range(draws):
        redrawn = correct[:, rng.integers(0, n_test, n_test)].mean(axis=1)
        plateaus.append(curve.labels[plateau_index(list(redrawn))])
    logs = np.log(plateaus)
    return float(np.mean(np.abs(logs - np.median(logs))))


def stop_and_plateau_points(curves: list[Curve]) -> tuple[list[int], list[int]]:
    """Each curve's point where the default stopping rule stops (its last if never), and its plateau's."""
    rule = [stopping_round(c.predictions, StoppingRule()) for c in curves]
    stops = [len(c.labels) - 1 if i is None else i for c, i in zip(curves, rule, strict=True)]
    return stops, [plateau_index(c.accuracy) for c in curves]


def labels_at(curves: list[Curve], points: list[int]) -> list[int]:
    return [c.labels[i] for c, i in zip(curves, points, strict=True)]


def fmt_labels(values: list[tuple[float, bool]]) -> str:
    mean = statistics.mean(v for v, _ in values)
    return f"{'>=' if not all(ok for _, ok in values) else ''}{mean:.0f}"


def report(curves: list[Curve], strategies: list[str], datasets: list[str]) -> None:
    for dataset in datasets:
        rows = [c for c in curves if c.dataset == dataset]
        if not rows:
            continue
        full = statistics.mean({c.seed: c.full_accuracy for c in rows}.values())
        n_seeds = len({c.seed for c in rows})
        iterations, max_iter = max(c.full_iterations for c in rows), model()[-1].max_iter
        converged = "converged" if iterations < max_iter else "NOT converged"
        print(
            f"\n== {dataset}: pool {rows[0].pool_size}, test {len(rows[0].test_correct[0])}, full-data accuracy "
            f"{full:.3f} (fit {converged}: at most {iterations} of {max_iter} iterations), {n_seeds} seeds"
        )
        print(
            f"{'strategy':<20} {'AUC':>6} {'to 95%':>8} {'to 99%':>8} {'99% vs random':>13} "
            f"{'stop at':>8} {'plateau':>8} {'stop/plateau':>12} {'off by':>7} {'floor':>6} {'+1 step':>8} "
            f"{'s/curve':>8}"
        )
        random99 = [labels_to_reach(c, 0.99)[0] for c in rows if c.strategy == "random"]
        for strategy in strategies:
            mine = [c for c in rows if c.strategy == strategy]
            if not mine:
                continue
            to95 = [labels_to_reach(c, 0.95) for c in mine]
            to99 = [labels_to_reach(c, 0.99) for c in mine]
            ratio = (
                statistics.mean(v for v, _ in to99) / statistics.mean(random99) if random99 else float("nan")
            )
            stop_at, plateau_at = stop_and_plateau_points(mine)
            stops, plateaus = labels_at(mine, stop_at), labels_at(mine, plateau_at)
            stop_ratio = statistics.mean(s / p for s, p in zip(stops, plateaus, strict=True))
            floor = float(np.expm1(np.mean([test_set_spread(c) for c in mine])))
            one_step_after = statistics.mean(
                c.labels[min(i + 1, len(c.labels) - 1)] / c.labels[i]
                for c, i in zip(mine, plateau_at, strict=True)
            )
            print(
                f"{strategy:<20} {statistics.mean(area(c) for c in mine):>6.3f} {fmt_labels(to95):>8} "
                f"{fmt_labels(to99):>8} {ratio:>12.2f}x {statistics.mean(stops):>8.0f} "
                f"{statistics.mean(plateaus):>8.0f} {stop_ratio:>12.2f} {distance(stops, plateaus):>7.0%} "
                f"{floor:>6.0%} {one_step_after:>8.2f} {statistics.mean(c.seconds for c in mine):>8.1f}"
            )
        print_paired_area(rows)


def print_paired_area(rows: list[Curve], default: str = DEFAULT) -> None:
    """The default's area minus scikit-activeml's best, seed by seed: is a difference more than the seeds' noise?"""
    external = [s for s in SKACTIVEML if any(c.strategy == s for c in rows)]
    by_seed = {(c.strategy, c.seed): area(c) for c in rows}
    seeds = sorted({c.seed for c in rows if c.strategy == default})
    if not external or not seeds:
        return
    best = max(external, key=lambda s: statistics.mean(by_seed[s, seed] for seed in seeds))
    differences = [by_seed[default, seed] - by_seed[best, seed] for seed in seeds]
    spread = statistics.stdev(differences) / len(seeds) ** 0.5 if len(seeds) > 1 else float("nan")
    print(
        f"AUC {default} - {best} (scikit-activeml's best), seed by seed: mean {statistics.mean(differences):+.4f}, "
        f"standard error {spread:.4f}, {sum(d >= 0 for d in differences)} of {len(seeds)} seeds >= 0"
    )


def plot(curves: list[Curve], strategies: list[str], datasets: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    present = [d for d in datasets if any(c.dataset == d for c in curves)]
    fig, axes = plt.subplots(1, len(present), figsize=(5 * len(present), 4), squeeze=False)
    for ax, dataset in zip(axes[0], present, strict=True):
        for strategy in strategies:
            mine = [c for c in curves if c.dataset == dataset and c.strategy == strategy]
            if not mine:
                continue
            length = min(len(c.labels) for c in mine)
            default = strategy == DEFAULT
            ax.plot(
                mine[0].labels[:length],
                np.mean([c.accuracy[:length] for c in mine], axis=0),
                label=f"{strategy} (default)" if default else strategy,
                linestyle="--" if strategy == "random" else "-",
                linewidth=2.5 if default else 1.2,
                color="black" if default else None,
                zorder=3 if default else 2,
            )
            if default:
                stop_at, plateau_at = stop_and_plateau_points(mine)
                for points, name, style in (
                    (plateau_at, "plateau", {"color": "black", "linestyle": "-.", "linewidth": 1}),
                    (stop_at, "rule stops", {"color": "crimson", "linestyle": ":", "linewidth": 1.5}),
                ):
                    where = float(np.median(labels_at(mine, points)))
                    ax.axvline(where, label=f"{name} (default, median)", **style)
        ax.set_title(f"{dataset}, mean of {len({c.seed for c in curves})} seeds")
        ax.set_xlabel("labels")
        ax.set_ylabel("test accuracy")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="digits + synthetic, 2 seeds, fewer strategies")
    parser.add_argument("--datasets", nargs="+", default=None)
    parser.add_argument("--seeds", type=int, nargs="+", default=None)
    parser.add_argument("--strategies", nargs="+", default=None)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument(
        "--crowd", action="store_true", help="buy the simulated crowd's labels instead of clean ones"
    )
    parser.add_argument(
        "--candidates",
        type=int,
        default=None,
        help="diversity picks among this many x batch top-scoring items (default: SelectionConfig's)",
    )
    parser.add_argument("--plot", type=Path, default=Path(".labelflow/active_learning.png"))
    args = parser.parse_args()
    datasets = args.datasets or (
        ["digits", "synthetic"] if args.quick else ["digits", "breast_cancer", "wine", "synthetic"]
    )
    seeds = args.seeds or ([0, 1] if args.quick else [0, 1, 2, 3, 4])
    strategies = args.strategies or (QUICK_STRATEGIES if args.quick else list(STRATEGIES))
    try:
        import skactiveml  # noqa: F401

        strategies = strategies + [s for s in SKACTIVEML if s not in strategies]
    except ImportError:
        print(
            "note: scikit-activeml is not installed, its strategies are skipped (pip install -e '.[bench]')"
        )
    started = time.perf_counter()
    jobs = [(d, s, seed) for d in datasets for s in strategies for seed in seeds]
    curves: list[Curve] = Parallel(n_jobs=args.jobs)(
        delayed(run_curve)(d, s, seed, args.crowd, args.candidates) for d, s, seed in jobs
    )
    if args.crowd:
        print("labels bought from the simulated crowd (3 answers, Dawid-Skene); test labels clean")
    candidates = args.candidates or SelectionConfig().candidates
    print(f"diversity strategies choose among {candidates} x batch most uncertain items")
    report(curves, strategies, datasets)
    for strategy in strategies:
        fallbacks = sum(c.fallbacks for c in curves if c.strategy == strategy)
        if fallbacks:
            print(
                f"note: {strategy} failed on {fallbacks} steps (tiny seed sets); random chose those batches"
            )
    args.plot.parent.mkdir(parents=True, exist_ok=True)
    plot(curves, strategies, datasets, args.plot)
    print(f"\ncurves: {args.plot}; {time.perf_counter() - started:.0f} s in all ({args.jobs} jobs)")


if __name__ == "__main__":
    main()
