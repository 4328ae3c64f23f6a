"""Label issues: our confident learning against cleanlab's ``find_label_issues`` on the same probabilities.

    .venv/bin/pip install -e '.[bench]'          # cleanlab, benchmark-only
    .venv/bin/python benchmarks/label_issues.py

On digits, wine and breast_cancer, a share of the labels (10% and 20%) is flipped to another class uniformly at
random (seeds 0-4). The out-of-sample probabilities come once per case from the product's own function
(``labelflow.tasks.label_issues.out_of_sample_probas``: 5 folds of the default model), and every method flags
issues from the same probabilities, so the figures compare the flagging rules alone. Printed: precision and
recall of the
flagged items against the flipped ones, their F1, and the share of items flagged, as the mean over seeds.
cleanlab is run with its default filter (``prune_by_noise_rate``) and with ``confident_learning``, the rule ours
implements.
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable

import numpy as np
from sklearn.datasets import load_breast_cancer, load_digits, load_wine

from labelflow.tasks.label_issues import confident_issues, out_of_sample_probas
from labelflow.tasks.training import TrainingConfig

DATASETS: dict[str, Callable[..., tuple[np.ndarray, np.ndarray]]] = {
    "digits": load_digits,
    "wine": load_wine,
    "breast_cancer": load_breast_cancer,
}


def flip(y: np.ndarray, n_classes: int, rate: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noisy = y.copy()
    chosen = rng.choice(len(y), size=round(rate * len(y)), replace=False)
    shift = rng.integers(1, n_classes, size=len(chosen))
    noisy[chosen] = (y[chosen] + shift) % n_classes
    return noisy


def scores(flagged: np.ndarray, wrong: np.ndarray) -> tuple[float, float, float, float]:
    hits = int((flagged & wrong).sum())
    precision = hits / max(int(flagged.sum()), 1)
    recall = hits / max(int(wrong.sum()), 1)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1, float(flagged.mean())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--rates", type=float, nargs="+", default=[0.1, 0.2])
    args = parser.parse_args()
    try:
        from cleanlab.filter import find_label_issues
    except ImportError:
        raise SystemExit("cleanlab is missing: .venv/bin/pip install -e '.[bench]'") from None

    methods: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
        "labelflow": lambda codes, probas: confident_issues(codes, probas)[0],
        "cleanlab (default)": lambda codes, probas: np.asarray(
            find_label_issues(labels=codes, pred_probs=probas)
        ),
        "cleanlab (confident_learning)": lambda codes, probas: np.asarray(
            find_label_issues(labels=codes, pred_probs=probas, filter_by="confident_learning")
        ),
    }
    config = TrainingConfig(self_training=False)
    print(f"{'dataset':<14}{'noise':>6}  {'method':<30}{'precision':>10}{'recall':>8}{'F1':>7}{'flagged':>9}")
    for name, load in DATASETS.items():
        X, y = load(return_X_y=True)
        n_classes = int(y.max()) + 1
        names = [str(c) for c in range(n_classes)]
        for rate in args.rates:
            results: dict[str, list[tuple[float, float, float, float]]] = {m: [] for m in methods}
            for seed in args.seeds:
                noisy = flip(y, n_classes, rate, seed)
                probas = out_of_sample_probas(X, noisy.astype(str), names, config)
                assert probas is not None
                for method, flag in methods.items():
                    results[method].append(scores(flag(noisy, probas), noisy != y))
            for method, rows in results.items():
                p, r, f, share = (statistics.mean(column) for column in zip(*rows, strict=True))
                print(f"{name:<14}{rate:>6.0%}  {method:<30}{p:>10.3f}{r:>8.3f}{f:>7.3f}{share:>9.3f}")


if __name__ == "__main__":
    main()
