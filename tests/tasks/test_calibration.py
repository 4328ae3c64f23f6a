"""Tests of labelflow.tasks.calibration: the measures by hand, the map on synthetic probas, cross-fitting without
leakage, too little gold, and one real crowd."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.special import softmax
from scipy.stats import binom

from labelflow.tasks.aggregation import DawidSkene, MajorityVote, from_shared_csv, read_shared_truth
from labelflow.tasks.calibration import (
    ANSWER_BUCKETS,
    MIN_GOLD,
    CalibrationMap,
    EpsPrior,
    calibrate_from_gold,
    ece_floor,
    expected_calibration_error,
    out_of_fold_probas,
    reliability_diagram,
    reliability_plot,
)

# --------------------------------------------------------------------------------------------- measures
# Four items, 10 bins. Bin 9 ([0.9, 1]) holds 0.9 (right), 0.9 (wrong), 1.0 (right): mean confidence 2.8/3,
# accuracy 2/3, gap 0.8/3, weight 3/4 -> 0.2. Bin 6 holds 0.6 (right): gap 0.4, weight 1/4 -> 0.1. ECE = 0.3.
HAND_CONFIDENCE = [0.9, 0.9, 0.6, 1.0]
HAND_CORRECT = [True, False, True, True]


def test_ece_of_a_hand_made_case() -> None:
    assert expected_calibration_error(HAND_CONFIDENCE, HAND_CORRECT) == pytest.approx(0.3)
    # with 2 bins everything is in [0.5, 1]: mean confidence 0.85, accuracy 0.75
    assert expected_calibration_error(HAND_CONFIDENCE, HAND_CORRECT, bins=2) == pytest.approx(0.1)
    assert np.isnan(expected_calibration_error([], []))


def test_reliability_diagram_bins_by_hand() -> None:
    table = reliability_diagram(HAND_CONFIDENCE, HAND_CORRECT)
    assert list(table["count"]) == [0, 0, 0, 0, 0, 0, 1, 0, 0, 3]
    top = table.iloc[9]
    assert top["mean_confidence"] == pytest.approx(2.8 / 3)
    assert top["accuracy"] == pytest.approx(2 / 3)
    assert (top["lower"], top["upper"]) == pytest.approx((0.9, 1.0))
    assert table["accuracy"].iloc[:6].isna().all()


def test_ece_floor_is_what_a_calibrated_predictor_shows() -> None:
    rng = np.random.default_rng(1)
    confidence = rng.uniform(0.5, 1.0, 300)
    floor = ece_floor(confidence)
    simulated = [expected_calibration_error(confidence, rng.random(300) < confidence) for _ in range(300)]
    assert floor == pytest.approx(float(np.mean(simulated)), rel=0.1)
    assert 0.0 < floor < 0.1
    assert ece_floor(np.full(10_000, 0.9)) < 0.01  # shrinks with the number of items


def test_reliability_plot_writes_a_png(tmp_path: Path) -> None:
    path = reliability_plot(
        HAND_CONFIDENCE, HAND_CORRECT, tmp_path / "plots" / "reliability.png", title="gold"
    )
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# --------------------------------------------------------------------------------------------- the map


def overconfident(temperature: float, n: int, k: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """True probabilities, labels drawn from them, and posteriors whose log-odds are ``temperature`` times too
    large."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0.0, 1.5, size=(n, k))
    truth = softmax(logits, axis=1)
    labels = np.array([rng.choice(k, p=row) for row in truth])
    return truth, labels, softmax(logits * temperature, axis=1)


def test_temperature_recovers_a_known_temperature() -> None:
    _, labels, probas = overconfident(3.0, n=4000, k=3, seed=0)
    fitted = CalibrationMap.fit(probas, labels, "temperature")
    assert fitted.temperature == pytest.approx(3.0, rel=0.1)
    assert fitted.uniform_weight == 0.0
    # with the uniform share free, there is no uniform mass to find: eps stays near 0, T near 3
    mixed = CalibrationMap.fit(probas, labels, "temperature_uniform")
    assert mixed.temperature == pytest.approx(3.0, rel=0.15)
    assert mixed.uniform_weight < 0.03


def test_top_label_objective() -> None:
    # with two labels, "is the top label right" is "which label is true": both objectives fit the same map
    _, labels, probas = overconfident(2.0, n=1000, k=2, seed=6)
    by_label = CalibrationMap.fit(probas, labels, "temperature_uniform", objective="label")
    by_top = CalibrationMap.fit(probas, labels, "temperature_uniform", objective="top_label")
    assert by_top.temperature == pytest.approx(by_label.temperature, rel=1e-3)
    assert by_top.uniform_weight == pytest.approx(by_label.uniform_weight, abs=1e-3)
    # with more labels it still finds the overconfidence from the top label's correctness alone
    _, labels, probas = overconfident(3.0, n=4000, k=4, seed=7)
    assert CalibrationMap.fit(
        probas, labels, "temperature", objective="top_label"
    ).temperature == pytest.approx(3.0, rel=0.2)


def test_uniform_share_recovers_sure_but_wrong_mass() -> None:
    truth, labels, _ = overconfident(1.0, n=4000, k=4, seed=1)
    rng = np.random.default_rng(2)
    # 10% of items get a uniformly drawn label whatever the posterior says: a 100%-sure aggregator is wrong there
    noisy = rng.random(len(labels)) < 0.1
    labels = np.where(noisy, rng.integers(0, 4, len(labels)), labels)
    fitted = CalibrationMap.fit(truth, labels, "temperature_uniform")
    assert fitted.uniform_weight == pytest.approx(0.1, abs=0.04)
    assert fitted.temperature == pytest.approx(1.0, rel=0.15)


def test_bucket_temperatures_follow_the_answer_count() -> None:
    # items with 2 answers are 1.5 times overconfident, items with 10 answers 4 times
    _, labels_few, probas_few = overconfident(1.5, n=3000, k=3, seed=4)
    _, labels_many, probas_many = overconfident(4.0, n=3000, k=3, seed=5)
    probas = np.vstack([probas_few, probas_many])
    labels = np.concatenate([labels_few, labels_many])
    n_answers = np.repeat([2, 10], 3000)
    fitted = CalibrationMap.fit(probas, labels, "bucket_temperature_uniform", n_answers)
    by_count = dict(zip(ANSWER_BUCKETS, fitted.bucket_temperatures, strict=True))
    assert by_count[2] == pytest.approx(1.5, rel=0.15)
    assert by_count[10] == pytest.approx(4.0, rel=0.15)
    assert by_count[1] == fitted.temperature  # no gold with one answer: the global temperature
    assert fitted.parameters()["temperature_10+"] == by_count[10]
    with pytest.raises(ValueError, match="n_answers"):
        fitted.apply(probas)


def test_map_keeps_the_label_and_sums_to_one() -> None:
    _, _, probas = overconfident(2.0, n=200, k=5, seed=3)
    mapped = CalibrationMap(temperature=2.5, uniform_weight=0.05).apply(probas)
    np.testing.assert_allclose(mapped.sum(axis=1), 1.0)
    np.testing.assert_array_equal(mapped.argmax(axis=1), probas.argmax(axis=1))
    assert mapped.max() <= 0.95 + 0.05 / 5 + 1e-12
    np.testing.assert_allclose(CalibrationMap().apply(probas), probas)


# --------------------------------------------------------------------------------------------- cross-fitting


def crowd(n_items: int, contrarian: int, seed: int) -> tuple[pd.DataFrame, pd.Series]:
    """Five 80%-right workers per item on labels a/b, and gold on half the items; on the first ``contrarian``
    gold items every worker answered the label that gold says is wrong."""
    rng = np.random.default_rng(seed)
    truth = rng.choice(["a", "b"], n_items)
    rows = []
    for i, label in enumerate(truth):
        for w in range(5):
            right = i < contrarian or rng.random() < 0.8
            answer = label if right else ("b" if label == "a" else "a")
            rows.append((f"i{i:03d}", f"w{(i + w) % 12}", answer))
    answers = pd.DataFrame(rows, columns=["item_id", "worker_id", "label"])
    gold = pd.Series(truth, index=[f"i{i:03d}" for i in range(n_items)])[: n_items // 2].copy()
    # the gold label of a contrarian item is the one nobody answered
    gold.iloc[:contrarian] = np.where(gold.iloc[:contrarian] == "a", "b", "a")
    return answers, gold


def test_cross_fitting_never_uses_a_gold_items_own_label() -> None:
    answers, gold = crowd(n_items=80, contrarian=8, seed=0)
    contrarian = gold.index[:8]
    result = calibrate_from_gold(answers, gold, lambda: DawidSkene(["a", "b"]), n_folds=5)
    oof = result.out_of_fold.set_index("item_id")
    # In fold, clamping would pull each of them to its gold label (right, confidence 1); out of fold, the
    # answers alone speak and every one of them is wrong.
    assert not oof.loc[contrarian, "correct"].any()
    assert (oof.loc[contrarian, "confidence_before"] > 0.9).all()
    assert oof.drop(contrarian)["correct"].mean() > 0.8
    # the full fit clamps all gold: the returned probas of a gold item are its gold label
    assert (result.probas.loc[contrarian].idxmax(axis=1) == gold[contrarian]).all()
    assert (result.probas.loc[contrarian].max(axis=1) == 1.0).all()


class Recording:
    """A real majority vote that appends the gold of each fit to ``seen``."""

    def __init__(self, seen: list[set[str]]) -> None:
        self.seen = seen
        self.vote = MajorityVote(["a", "b"])

    def fit(self, answers: pd.DataFrame, gold: pd.Series | None = None) -> Recording:
        self.seen.append(set() if gold is None else set(gold.index))
        self.vote.fit(answers, gold)
        return self

    @property
    def probas_(self) -> pd.DataFrame:
        # each row tagged with whether its item was clamped in this fit, so the rows the caller kept show it
        return self.vote.probas_.assign(clamped=self.vote.probas_.index.isin(list(self.seen[-1])))

    @property
    def labels_(self) -> pd.Series:
        return self.vote.labels_


def test_out_of_fold_rows_come_from_fits_that_did_not_clamp_them() -> None:
    answers, gold = crowd(n_items=40, contrarian=0, seed=1)
    seen: list[set[str]] = []
    folds = np.arange(len(gold)) % 4
    probas = out_of_fold_probas(answers, gold, lambda: Recording(seen), folds)
    assert len(seen) == 4
    assert not probas["clamped"].any()
    for fold, gold_seen in enumerate(seen):
        assert gold_seen == set(gold.index[folds != fold])


def test_dawid_skene_cross_fits_from_its_own_fit_as_a_refit_would() -> None:
    answers, gold = crowd(n_items=200, contrarian=10, seed=3)
    folds = np.arange(len(gold)) % 5
    full = DawidSkene(["a", "b"]).fit(answers, gold)
    local = out_of_fold_probas(answers, gold, lambda: DawidSkene(["a", "b"]), folds, fitted=full)
    refit = out_of_fold_probas(answers, gold, lambda: DawidSkene(["a", "b"]), folds)
    assert np.abs(local - refit).to_numpy().max() < 0.02
    assert (local.loc[gold.index[:10], "a"].round() != (gold.iloc[:10] == "a")).all()  # against their gold
    with pytest.raises(ValueError, match="not answered gold items"):
        full.held_out_gold_probas(["i199"])


def test_too_little_gold_is_reported_uncalibrated() -> None:
    answers, gold = crowd(n_items=60, contrarian=0, seed=2)
    few = gold.iloc[: MIN_GOLD - 1]
    result = calibrate_from_gold(answers, few, lambda: DawidSkene(["a", "b"]))
    assert not result.calibrated
    assert f"{MIN_GOLD - 1} answered gold" in result.reason
    pd.testing.assert_frame_equal(result.probas, result.raw_probas)
    assert result.map == CalibrationMap()
    # gold nobody answered does not count towards the minimum
    unanswered = pd.concat([few, pd.Series(["a"] * 5, index=[f"x{i}" for i in range(5)])])
    assert not calibrate_from_gold(answers, unanswered, lambda: DawidSkene(["a", "b"])).calibrated
    assert calibrate_from_gold(answers, gold.iloc[:MIN_GOLD], lambda: DawidSkene(["a", "b"])).calibrated


# --------------------------------------------------------------------------------------------- a real crowd


def test_calibration_lowers_ece_on_the_dog_crowd(shared_crowd: Path) -> None:
    folder = shared_crowd / "dog"
    answers = from_shared_csv(folder / "answers.csv")
    truth = read_shared_truth(folder / "truth.csv")
    labels = sorted(set(answers["label"]) | set(truth))
    gold = truth.sample(50, random_state=7)
    result = calibrate_from_gold(answers, gold, lambda: DawidSkene(labels))
    assert result.calibrated
    assert result.n_gold == 50
    others = truth.drop(gold.index)
    correct = (result.labels.reindex(others.index) == others).to_numpy()
    before = expected_calibration_error(result.raw_probas.reindex(others.index).max(axis=1), correct)
    after = expected_calibration_error(result.probas.reindex(others.index).max(axis=1), correct)
    assert after < before


def test_averaged_map_keeps_its_uncertainty() -> None:
    # 50 gold items the aggregator is sure of, all right: the most likely map has no uniform share, but the
    # averaged one keeps the plausible eps > 0, so no item is mapped to certainty.
    sure = np.tile([[1.0 - 1e-9, 1e-9]], (50, 1))
    truth = np.zeros(50, dtype=np.intp)
    most_likely = CalibrationMap.fit(sure, truth, "temperature_uniform")
    averaged = CalibrationMap.fit(sure, truth)
    assert most_likely.uniform_weight == pytest.approx(0.0, abs=1e-3)
    assert 0.002 < averaged.uniform_weight < 0.05
    assert averaged.apply(sure)[:, 0].max() < 1.0 - averaged.uniform_weight / 4
    assert sum(weight for weight, _, _ in averaged.components) == pytest.approx(1.0)
    # with plenty of evidence it agrees with the most likely map
    _, labels_big, probas_big = overconfident(3.0, n=4000, k=3, seed=6)
    big = CalibrationMap.fit(probas_big, labels_big, objective="label")
    assert big.temperature == pytest.approx(3.0, rel=0.15)
    np.testing.assert_allclose(big.apply(probas_big).sum(axis=1), 1.0)


def test_few_gold_items_do_not_leave_sure_items_needlessly_underconfident() -> None:
    # 20 gold items of 10 labels that the aggregator is sure of, each wrong with probability `lapse` (the demo's
    # crowd: hard items where good workers agree on the wrong label). Over the draws of such gold (the number
    # wrong is binomial), the expected confidence the map gives a sure item should be its accuracy: below it,
    # labels that are right enough are asked again; above it is overconfidence. The flat prior on eps, the
    # default before, sat 0.04 under it.
    def sure(n: int, spare: float = 1e-9) -> np.ndarray:
        rows = np.full((n, 10), spare / 9)
        rows[:, 0] = 1.0 - spare
        return rows

    def confidence_with(n_wrong: int, **prior: EpsPrior) -> float:
        truth = np.where(np.arange(20) < n_wrong, 1, 0)
        return float(CalibrationMap.fit(sure(20), truth, **prior).apply(sure(1, 1e-30))[0, 0])

    wrong = np.arange(10)  # 10 or more wrong of 20 has probability < 1e-4 at these lapses
    default = np.array([confidence_with(w) for w in wrong])
    flat = np.array([confidence_with(w, eps_prior="flat") for w in wrong])
    for lapse in (0.08, 0.15):
        chance = binom.pmf(wrong, 20, lapse)
        assert chance @ flat + 0.008 < chance @ default <= 1.0 - lapse + 0.005
