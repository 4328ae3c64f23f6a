from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_digits

from labelflow.tasks.training import (
    TrainingConfig,
    evaluate,
    fit_classifier,
    fit_model,
    pseudo_label_frame,
)


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    data = load_digits()
    return data.data, data.target.astype(str)


def test_more_clean_labels_give_a_better_model(digits: tuple[np.ndarray, np.ndarray]) -> None:
    X, y = digits
    names = [str(d) for d in range(10)]
    rng = np.random.default_rng(0)
    order = rng.permutation(len(X))
    test, train = order[:400], order[400:]
    config = TrainingConfig(self_training=False)
    ids = np.array([f"i{k}" for k in range(len(X))], dtype=object)
    small = fit_model(X[train[:30]], y[train[:30]], np.ones(30), X[:0], ids[:0], names, config)
    large = fit_model(X[train[:600]], y[train[:600]], np.ones(600), X[:0], ids[:0], names, config)
    assert (
        evaluate(large, X[test], y[test])["accuracy"] > evaluate(small, X[test], y[test])["accuracy"] + 0.05
    )
    assert evaluate(large, X[test], y[test])["accuracy"] > 0.93


def test_self_training_pseudo_labels_only_confident_items_and_marks_them_model(
    digits: tuple[np.ndarray, np.ndarray],
) -> None:
    X, y = digits
    names = [str(d) for d in range(10)]
    ids = np.array([f"i{k}" for k in range(len(X))], dtype=object)
    config = TrainingConfig(self_training=True, self_training_threshold=0.99)
    model = fit_model(X[:100], y[:100], np.ones(100), X[100:], ids[100:], names, config)
    pseudo = model.pseudo_labels
    assert 0 < len(pseudo) < len(X) - 100
    assert (pseudo["confidence"] >= 0.99).all()
    truth = dict(zip(ids, y, strict=True))
    assert (
        np.mean(pseudo["label"].to_numpy() == pseudo["item_id"].map(truth).to_numpy()) > 0.9
    )  # LR is overconfident: ~0.93 here
    frame = pseudo_label_frame(model, round_id=3)
    assert (frame["source"] == "model").all() and (frame["round_id"] == 3).all()


def test_confidence_weights_matter(digits: tuple[np.ndarray, np.ndarray]) -> None:
    X, y = digits
    names = [str(d) for d in range(10)]
    noisy = y[:300].copy()
    flipped = np.arange(300) % 3 == 0
    noisy[flipped] = "0"
    config = TrainingConfig(self_training=False)
    empty = np.array([], dtype=object)
    trusting = fit_model(X[:300], noisy, np.ones(300), X[:0], empty, names, config)
    weighted = fit_model(X[:300], noisy, np.where(flipped, 0.05, 1.0), X[:0], empty, names, config)
    test_x, test_y = X[1000:], y[1000:]
    assert evaluate(weighted, test_x, test_y)["accuracy"] > evaluate(trusting, test_x, test_y)["accuracy"]


def test_single_class_training_set_is_refused_clearly(digits: tuple[np.ndarray, np.ndarray]) -> None:
    X, _ = digits
    with pytest.raises(ValueError, match="single class"):
        fit_model(
            X[:5],
            np.array(["1"] * 5, dtype=object),
            np.ones(5),
            X[:0],
            np.array([], dtype=object),
            ["0", "1"],
            TrainingConfig(),
        )


def test_predict_proba_covers_every_label_name(digits: tuple[np.ndarray, np.ndarray]) -> None:
    X, y = digits
    keep = np.isin(y, ["1", "2"])
    model = fit_model(
        X[keep][:50],
        y[keep][:50],
        np.ones(50),
        X[:0],
        np.array([], dtype=object),
        [str(d) for d in range(10)],
        TrainingConfig(self_training=False),
    )
    probas = model.predict_proba(X[:7])
    assert probas.shape == (7, 10) and np.allclose(probas.sum(axis=1), 1)
    assert np.all(probas[:, [0, 3, 4, 5, 6, 7, 8, 9]] == 0)


def test_the_kernel_model_beats_the_linear_one_on_pixels_and_copes_with_two_labels_per_class(
    digits: tuple[np.ndarray, np.ndarray],
) -> None:
    X, y = digits
    names = [str(d) for d in range(10)]
    ids = np.array([f"i{k}" for k in range(len(X))], dtype=object)
    order = np.random.default_rng(1).permutation(len(X))
    test, train = order[:500], order[500:700]
    accuracy = {}
    for kind in ("logistic_regression", "kernel_logistic_regression"):
        config = TrainingConfig(model=kind, self_training=False)
        model = fit_model(X[train], y[train], np.ones(len(train)), X[:0], ids[:0], names, config)
        accuracy[kind] = evaluate(model, X[test], y[test])["accuracy"]
    assert accuracy["kernel_logistic_regression"] > accuracy["logistic_regression"] + 0.01

    two_each = np.concatenate([np.flatnonzero(y == name)[:2] for name in names])
    config = TrainingConfig(model="kernel_logistic_regression", self_training=False)
    tiny = fit_model(X[two_each], y[two_each], np.ones(20), X[:0], ids[:0], names, config)
    probas = tiny.predict_proba(X[test])
    assert probas.shape == (len(test), 10) and np.allclose(probas.sum(axis=1), 1.0)


def test_a_seed_set_the_crowd_labeled_all_alike_gives_the_prior_model(
    digits: tuple[np.ndarray, np.ndarray],
) -> None:
    X, _ = digits
    alike = np.array(["1", "1", "1", "1"])

    model = fit_classifier(TrainingConfig(self_training=False), X[:4], alike)

    assert model.predict(X[4:10]).tolist() == ["1"] * 6
    assert model.predict_proba(X[4:6]).tolist() == [[1.0], [1.0]]


def test_two_classes_give_the_configured_classifier(digits: tuple[np.ndarray, np.ndarray]) -> None:
    X, y = digits
    binary = (y[:200] == y[0]).astype(str)

    model = fit_classifier(TrainingConfig(self_training=False), X[:200], binary, np.ones(200))

    assert model.predict_proba(X[200:210]).shape == (10, 2)
    assert (model.predict(X[200:400]) == (y[200:400] == y[0]).astype(str)).mean() > 0.9
