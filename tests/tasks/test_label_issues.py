from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.datasets import load_digits

from labelflow.tasks.label_issues import confident_issues, find_label_issues
from labelflow.tasks.training import TrainingConfig


def test_confident_learning_by_hand() -> None:
    given = np.array([0, 0, 0, 1, 1, 1])
    probas = np.array([[0.9, 0.1], [0.8, 0.2], [0.1, 0.9], [0.2, 0.8], [0.3, 0.7], [0.65, 0.35]])
    # thresholds: class 0 = mean(0.9, 0.8, 0.1) = 0.6; class 1 = mean(0.8, 0.7, 0.35) = 0.617
    issues, assigned = confident_issues(given, probas)
    assert issues.tolist() == [False, False, True, False, False, True]
    assert assigned.tolist() == [0, 0, 1, 1, 1, 0]


def test_flipped_labels_are_found_far_above_chance() -> None:
    digits = load_digits()
    rng = np.random.default_rng(0)
    n = 600
    features = [f"f{k}" for k in range(64)]
    frame = pd.DataFrame(digits.data[:n], columns=features)
    truth = digits.target[:n].astype(str)
    noisy = truth.copy()
    flipped = rng.random(n) < 0.1
    noisy[flipped] = [str((int(t) + 1 + rng.integers(9)) % 10) for t in truth[flipped]]
    frame.insert(0, "item_id", [f"i{k}" for k in range(n)])
    frame["label"], frame["confidence"], frame["n_answers"] = noisy, 0.9, 3
    issues = find_label_issues(frame, features, [str(d) for d in range(10)], TrainingConfig())
    flagged = frame["item_id"].isin(issues["item_id"]).to_numpy()
    precision = flipped[flagged].mean()
    recall = flagged[flipped].mean()
    assert precision > 0.7, (precision, recall)  # base rate: 0.1
    assert recall > 0.6, (precision, recall)
    assert (issues["label"] != issues["suggested"]).all()
    assert issues["p_label"].is_monotonic_increasing


def test_too_few_items_per_class_gives_no_issues_rather_than_an_error() -> None:
    frame = pd.DataFrame(
        {
            "item_id": ["a", "b", "c"],
            "f": [0.0, 1.0, 2.0],
            "label": ["x", "y", "y"],
            "confidence": 1.0,
            "n_answers": 3,
        }
    )
    assert find_label_issues(frame, ["f"], ["x", "y"], TrainingConfig()).empty
