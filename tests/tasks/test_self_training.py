"""Active learning + self-training: the pseudo-labeling threshold chosen on gold for a target precision."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.datasets import load_digits

from labelflow.tasks.training import (
    GoldEvidence,
    TrainingConfig,
    fit_committee,
    fit_model,
    gold_items_to_certify,
    precision_threshold,
)


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(0, 60),
    target=st.floats(0.6, 1.0),
    support=st.integers(1, 15),
    seed=st.integers(0, 1000),
)
def test_the_chosen_threshold_reaches_the_target_precision_and_is_the_lowest_that_does(
    n: int, target: float, support: int, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    confidence = rng.choice(np.linspace(0.3, 1.0, 15), size=n)
    correct = rng.random(n) < confidence
    threshold = precision_threshold(confidence, correct, target, min_support=support)
    if threshold is None:
        for t in np.unique(confidence):
            above = confidence >= t
            assert above.sum() < support or correct[above].mean() < target
        return
    above = confidence >= threshold
    assert correct[above].mean() >= target and above.sum() >= support
    for t in np.unique(confidence[confidence < threshold]):
        lower = confidence >= t
        assert correct[lower].mean() < target or lower.sum() < support


def test_precision_threshold_rejects_a_target_outside_0_1() -> None:
    with pytest.raises(ValueError, match="target precision"):
        precision_threshold(np.ones(3), np.ones(3, bool), 1.5)


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    data = load_digits()
    # shuffled: digits is ordered by writer, and gold must come from the pool's distribution to speak for it
    order = np.random.default_rng(0).permutation(len(data.data))
    ids = np.array([f"i{k}" for k in range(len(data.data))], dtype=object)
    return data.data[order], data.target.astype(str)[order], ids


def test_the_gold_chosen_threshold_gives_pseudo_labels_near_the_target_precision(
    digits: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> None:
    X, y, ids = digits
    names = [str(d) for d in range(10)]
    is_gold = np.arange(200) < 80
    config = TrainingConfig(pseudo_label_precision=0.98, self_training_max_iter=2)
    model = fit_model(X[:200], y[:200], np.ones(200), X[200:], ids[200:], names, config, is_gold=is_gold)
    assert model.self_training_threshold is not None and model.self_training_threshold != 0.95
    truth = dict(zip(ids, y, strict=True))
    right = model.pseudo_labels["label"].to_numpy() == model.pseudo_labels["item_id"].map(truth).to_numpy()
    assert len(right) > 1000 and right.mean() > 0.96  # 0.974 measured at target 0.98
    evidence = model.gold_evidence
    assert evidence is not None and evidence.threshold == model.self_training_threshold
    assert evidence.above >= config.min_gold_support and evidence.right / evidence.above >= 0.98
    # 80 gold items all right bound the precision at 0.963 at best: the report must not read as a certificate
    assert evidence.precision_bound() < 0.98


def test_the_precision_bound_is_clopper_pearson_and_says_how_much_gold_would_certify_a_target() -> None:
    assert GoldEvidence(0.6, above=30, right=30).precision_bound() == pytest.approx(0.05 ** (1 / 30))
    assert GoldEvidence(0.6, above=30, right=29).precision_bound() == pytest.approx(0.8514, abs=1e-4)
    assert GoldEvidence(0.6, above=10, right=0).precision_bound() == 0.0
    needed = gold_items_to_certify(0.98)
    assert needed == 149
    assert GoldEvidence(0.6, needed, needed).precision_bound() >= 0.98
    assert GoldEvidence(0.6, needed - 1, needed - 1).precision_bound() < 0.98


def test_without_enough_gold_the_fixed_threshold_is_used(
    digits: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> None:
    X, y, ids = digits
    names = [str(d) for d in range(10)]
    config = TrainingConfig(self_training_threshold=0.97, self_training_max_iter=1)
    model = fit_model(
        X[:100], y[:100], np.ones(100), X[100:300], ids[100:300], names, config, is_gold=np.arange(100) < 3
    )
    assert model.self_training_threshold == 0.97 and model.gold_evidence is None
    assert (model.pseudo_labels["confidence"] >= 0.97).all()


def test_fit_committee_bootstraps_the_configured_model(
    digits: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> None:
    X, y, _ = digits
    labeled = pd.DataFrame(X[:60], columns=[f"f{k}" for k in range(64)]).assign(label=y[:60], confidence=1.0)
    committee = fit_committee(labeled, [f"f{k}" for k in range(64)], TrainingConfig(), 3, seed=0)
    assert committee.member_probas(X[60:70]).shape == (3, 10, 10)


def test_the_round_report_shows_what_the_gold_items_bound_the_pseudo_label_precision_at() -> None:
    from labelflow.flows.config import ProjectConfig
    from labelflow.flows.round_report import RoundReport, round_markdown

    evidence = GoldEvidence(0.61, above=30, right=29)
    report = RoundReport(
        round_id=1,
        number=1,
        batch_size=40,
        waves=1,
        answers_bought=120,
        gold_answers=15,
        answers_fixed_k=200,
        cost=6.0,
        spent_total=6.0,
        answers_total=120,
        agreement=0.9,
        label_accuracy=0.97,
        crowd_labels=40,
        pseudo_labels=1200,
        model_accuracy=0.93,
        previous_accuracy=None,
        promoted=True,
        model_path="m.joblib",
        self_training_threshold=evidence.threshold,
        gold_above_threshold=evidence.above,
        gold_right_above_threshold=evidence.right,
        pseudo_label_precision_bound=evidence.precision_bound(),
        pseudo_label_accuracy=0.95,
    )
    line = next(row for row in round_markdown(ProjectConfig(), report).splitlines() if "self-training" in row)
    assert "1200 at confidence ≥ 0.610, chosen on gold: 29 of 30 right above it" in line
    assert (
        "precision ≥ 0.851 at 95% confidence (target 0.98)" in line
        and "95.0% right by the hidden truth" in line
    )


def test_self_training_on_a_row_view_in_chunks_fits_the_model_a_copied_pool_fits() -> None:
    """The round hands self-training the pool's rows by position (a RowView of one float32 matrix) and the fit
    standardizes its stacked rows in place, chunk by chunk: the model, threshold and pseudo-labels are those of
    the pool copied into an array of its own and fitted in one piece."""
    from sklearn.base import clone

    from labelflow.tasks.rows import RowView
    from labelflow.tasks.training import build_pipeline, fit_on_own_rows

    rng = np.random.default_rng(3)
    X = rng.normal(size=(5_000, 6)).astype(np.float32)
    y = np.where(X @ rng.normal(size=6) + rng.normal(scale=0.5, size=len(X)) > 0, "b", "a").astype(object)
    labeled, positions = np.arange(200), np.arange(200, 5_000)[::-1]  # the pool's rows in another order
    is_gold = np.arange(200) < 40
    config = TrainingConfig(pseudo_label_precision=0.9)
    ids = positions.astype(str).astype(object)
    copied = fit_model(
        X[labeled], y[labeled], np.ones(200), X[positions], ids, ["a", "b"], config, is_gold=is_gold
    )
    viewed = fit_model(
        X[labeled], y[labeled], np.ones(200), RowView(X, positions), ids, ["a", "b"], config, is_gold=is_gold
    )
    assert viewed.self_training_threshold == copied.self_training_threshold
    assert len(viewed.pseudo_labels) > 1_000
    pd.testing.assert_frame_equal(viewed.pseudo_labels, copied.pseudo_labels)
    np.testing.assert_array_equal(viewed.predict_proba(X), copied.predict_proba(X))
    assert viewed.pipeline.classes_.tolist() == ["a", "b"]

    # in chunks and in place: the scaler's statistics and the classifier as a whole-array fit gives them
    rows = X[positions].copy()
    whole = clone(build_pipeline(config)).fit(rows, y[positions])
    chunked = fit_on_own_rows(
        clone(build_pipeline(config)), rows, y[positions], np.ones(len(rows)), chunk_rows=700
    )
    np.testing.assert_allclose(chunked.steps[0][1].mean_, whole.steps[0][1].mean_, rtol=1e-6)
    np.testing.assert_allclose(chunked.steps[0][1].scale_, whole.steps[0][1].scale_, rtol=1e-6)
    np.testing.assert_allclose(chunked.predict_proba(X), whole.predict_proba(X), atol=1e-4)
    assert not np.shares_memory(rows, X) and np.abs(rows.mean(axis=0)).max() < 1e-3  # standardized in place
