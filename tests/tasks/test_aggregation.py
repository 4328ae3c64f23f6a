"""Tests of labelflow.tasks.aggregation: a hand-checkable crowd, properties, gold, synthetic and real crowds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labelflow.contracts import ContractError
from labelflow.tasks.aggregation import (
    METHODS,
    AnswersError,
    DawidSkene,
    MajorityVote,
    OneCoinDawidSkene,
    Wawa,
    aggregate_answers_frame,
    from_crowd_kit,
    from_shared_csv,
    read_shared_truth,
    spammer_scores,
    worker_quality,
)
from labelflow.tasks.aggregation.dawid_skene import evidence_shrinkage
from labelflow.tasks.synthetic import oracle_posteriors
from labelflow.tasks.synthetic import synthetic_crowd as make_synthetic_crowd

Estimator = type[MajorityVote] | type[Wawa] | type[DawidSkene]
ESTIMATORS: list[Estimator] = [MajorityVote, Wawa, DawidSkene, OneCoinDawidSkene]

# --------------------------------------------------------------------------------------------- tiny crowd
# 3 workers, 4 items; "fish" is a label nobody chose. Majority by hand:
#   i1: cat cat dog -> cat    i2: dog dog dog -> dog    i3: bird cat bird -> bird    i4: dog bird dog -> dog
TINY_LABELS = ["cat", "dog", "bird", "fish"]
TINY_ROWS = [
    ("i1", "w1", "cat"),
    ("i1", "w2", "cat"),
    ("i1", "w3", "dog"),
    ("i2", "w1", "dog"),
    ("i2", "w2", "dog"),
    ("i2", "w3", "dog"),
    ("i3", "w1", "bird"),
    ("i3", "w2", "cat"),
    ("i3", "w3", "bird"),
    ("i4", "w1", "dog"),
    ("i4", "w2", "bird"),
    ("i4", "w3", "dog"),
]
TINY_MV = {"i1": "cat", "i2": "dog", "i3": "bird", "i4": "dog"}


def answers_frame(rows: list[tuple[str, str, str]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["item_id", "worker_id", "label"])


def probas_row(probas: pd.DataFrame, item_id: str) -> list[float]:
    return [float(p) for p in probas.loc[[item_id]].to_numpy()[0]]


@pytest.fixture
def tiny() -> pd.DataFrame:
    return answers_frame(TINY_ROWS)


def test_majority_vote_on_tiny_crowd(tiny: pd.DataFrame) -> None:
    mv = MajorityVote(TINY_LABELS).fit(tiny)
    assert mv.labels_.to_dict() == TINY_MV
    assert mv.labels_.name == "label"
    assert list(mv.probas_.columns) == TINY_LABELS
    assert probas_row(mv.probas_, "i1") == pytest.approx([2 / 3, 1 / 3, 0.0, 0.0])
    assert probas_row(mv.probas_, "i2") == pytest.approx([0.0, 1.0, 0.0, 0.0])


def test_dawid_skene_on_tiny_crowd(tiny: pd.DataFrame) -> None:
    ds = DawidSkene(TINY_LABELS).fit(tiny)
    assert ds.labels_.to_dict() == TINY_MV  # w1 always sides with the majority; nothing to overturn
    assert ds.errors_.shape == (3, 4, 4)
    assert list(ds.workers_) == ["w1", "w2", "w3"]
    np.testing.assert_allclose(ds.errors_.sum(axis=2), 1.0)
    assert list(ds.priors_.index) == TINY_LABELS
    assert ds.priors_.sum() == pytest.approx(1.0)
    assert ds.priors_["fish"] > 0  # a class nobody chose still exists
    assert 1 <= ds.n_iter_ < ds.max_iter


def test_wawa_on_tiny_crowd_by_hand(tiny: pd.DataFrame) -> None:
    # Agreement with the majority: w1 4/4, w2 2/4 (wrong on i3, i4), w3 3/4 (wrong on i1). Weighted shares:
    #   i1: cat 1 + 0.5 = 1.5, dog 0.75 -> 2/3, 1/3    i3: bird 1 + 0.75 = 1.75, cat 0.5 -> 7/9, 2/9
    wawa = Wawa(TINY_LABELS).fit(tiny)
    assert wawa.skills_.to_dict() == pytest.approx({"w1": 1.0, "w2": 0.5, "w3": 0.75})
    assert probas_row(wawa.probas_, "i1") == pytest.approx([2 / 3, 1 / 3, 0.0, 0.0])
    assert probas_row(wawa.probas_, "i3") == pytest.approx([2 / 9, 0.0, 7 / 9, 0.0])
    assert probas_row(wawa.probas_, "i4") == pytest.approx([0.0, 7 / 9, 2 / 9, 0.0])
    assert wawa.labels_.to_dict() == TINY_MV


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=lambda e: e.__name__)
class TestPythonAPI:
    """What ``from labelflow import ...`` promises: crowd-kit's columns, inferred labels, fit_predict(_proba)."""

    def test_fit_predict_is_the_fit_labels_by_hand(self, estimator: Estimator, tiny: pd.DataFrame) -> None:
        assert estimator(TINY_LABELS).fit_predict(tiny).to_dict() == TINY_MV

    def test_fit_predict_proba_by_hand(self, estimator: Estimator, tiny: pd.DataFrame) -> None:
        probas = estimator(TINY_LABELS).fit_predict_proba(tiny)
        assert list(probas.columns) == TINY_LABELS
        assert list(probas.index) == ["i1", "i2", "i3", "i4"]
        np.testing.assert_allclose(probas.sum(axis=1), 1.0)
        # Three workers agreeing on i2: every aggregator puts (nearly) all mass on "dog".
        assert probas.loc["i2", "dog"] > 0.9
        # "fish" was never answered: only Dawid-Skene's prior keeps a sliver of mass on it.
        assert probas["fish"].max() < 0.05

    def test_crowd_kit_columns_give_the_same_result(self, estimator: Estimator, tiny: pd.DataFrame) -> None:
        ours = estimator(TINY_LABELS).fit(tiny)
        theirs = estimator(TINY_LABELS).fit(tiny.rename(columns={"item_id": "task", "worker_id": "worker"}))
        pd.testing.assert_series_equal(theirs.labels_, ours.labels_)
        pd.testing.assert_frame_equal(theirs.probas_, ours.probas_)
        assert theirs.labels_.index.name == "item_id"

    def test_crowd_kit_columns_with_numbers_as_ids(self, estimator: Estimator) -> None:
        answers = pd.DataFrame({"task": [1, 1, 1, 2], "worker": [7, 8, 9, 7], "label": [0, 0, 1, 1]})
        assert estimator().fit_predict(answers).to_dict() == {"1": "0", "2": "1"}

    def test_inferred_labels_are_the_answered_ones_sorted(
        self, estimator: Estimator, tiny: pd.DataFrame
    ) -> None:
        inferred = estimator().fit(tiny)
        explicit = estimator(["bird", "cat", "dog"]).fit(tiny)
        assert list(inferred.probas_.columns) == ["bird", "cat", "dog"]
        pd.testing.assert_frame_equal(inferred.probas_, explicit.probas_)
        pd.testing.assert_series_equal(inferred.labels_, explicit.labels_)

    def test_inferred_labels_include_gold_labels(self, estimator: Estimator, tiny: pd.DataFrame) -> None:
        model = estimator().fit(tiny, gold=pd.Series({"i2": "fish"}))
        assert list(model.probas_.columns) == ["bird", "cat", "dog", "fish"]
        assert model.labels_["i2"] == "fish"

    def test_no_predict_that_refits(self, estimator: Estimator) -> None:
        # Removed on purpose: an aggregator has nothing to apply to new answers, and predict(answers) re-fitted.
        assert not hasattr(estimator(), "predict") and not hasattr(estimator(), "predict_proba")


def test_fit_predict_proba_rows_sum_to_one_on_a_synthetic_crowd() -> None:
    crowd = make_synthetic_crowd(2_000, kind="class_confusion", seed=3)
    for estimator in ESTIMATORS:
        probas = estimator().fit_predict_proba(crowd.answers)
        assert list(probas.columns) == sorted(crowd.label_names)
        np.testing.assert_allclose(probas.sum(axis=1), 1.0)


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=lambda e: e.__name__)
class TestAggregatorContract:
    """Every aggregator: the estimator shape and the same answers to bad input (the properties — row order,
    probabilities summing to 1, perfect workers — are the hypothesis tests below, over ESTIMATORS)."""

    def test_shape(self, estimator: Estimator, tiny: pd.DataFrame) -> None:
        model = estimator(TINY_LABELS)
        assert model.fit(tiny) is model
        assert list(model.probas_.columns) == TINY_LABELS
        assert model.labels_.index.equals(model.probas_.index)
        assert model.n_answers_.tolist() == [3, 3, 3, 3]
        np.testing.assert_allclose(model.probas_.sum(axis=1), 1.0)

    def test_empty_table(self, estimator: Estimator, tiny: pd.DataFrame) -> None:
        with pytest.raises(AnswersError, match="empty"):
            estimator(TINY_LABELS).fit(tiny.iloc[:0])

    def test_label_outside_label_names_names_the_rows(self, estimator: Estimator, tiny: pd.DataFrame) -> None:
        bad = tiny.copy()
        bad.loc[5, "label"] = "zebra"
        with pytest.raises(AnswersError, match=r"\['zebra'\].*row 5: item_id='i2', worker_id='w3'"):
            estimator(TINY_LABELS).fit(bad)

    def test_unknown_items_name_the_rows(self, estimator: Estimator, tiny: pd.DataFrame) -> None:
        with pytest.raises(AnswersError, match=r"\['i4'\].*row 9: item_id='i4'.*row 10.*row 11"):
            estimator(TINY_LABELS).fit(tiny, items=["i1", "i2", "i3"])
        assert estimator(TINY_LABELS).fit(tiny, items=["i1", "i2", "i3", "i4", "i5"]).labels_.size == 4

    def test_duplicate_answer_ids_name_the_rows(self, estimator: Estimator, tiny: pd.DataFrame) -> None:
        with_ids = tiny.assign(answer_id=[f"a{i}" for i in range(len(tiny))])
        assert estimator(TINY_LABELS).fit(with_ids).labels_.size == 4
        with_ids.loc[7, "answer_id"] = "a2"
        with pytest.raises(AnswersError, match=r"answer_id must be unique.*'a2'.*'a2'"):
            estimator(TINY_LABELS).fit(with_ids)

    def test_gold_clamps(self, estimator: Estimator, tiny: pd.DataFrame) -> None:
        model = estimator(TINY_LABELS).fit(tiny, gold=pd.Series({"i2": "fish"}))
        assert model.labels_["i2"] == "fish"
        assert probas_row(model.probas_, "i2") == [0.0, 0.0, 0.0, 1.0]


def test_wawa_weights_workers_by_agreement() -> None:
    # w1 and w2 agree with the majority everywhere; w3 never does. On i4 w3 alone says "bird" against w4 ("dog"),
    # a tie for majority vote that Wawa breaks towards the more reliable worker.
    rows = [(f"i{i}", w, "cat") for i in range(3) for w in ("w1", "w2", "w4")]
    rows += [(f"i{i}", "w3", "dog") for i in range(3)]
    rows += [("i4", "w3", "bird"), ("i4", "w4", "dog")]
    wawa = Wawa(TINY_LABELS).fit(answers_frame(rows))
    assert wawa.skills_["w3"] <= 0.25 < 0.75 <= wawa.skills_["w4"]
    assert wawa.labels_["i4"] == "dog"


def test_one_coin_dawid_skene_has_one_coin_matrices(tiny: pd.DataFrame) -> None:
    errors = OneCoinDawidSkene(TINY_LABELS).fit(tiny).errors_
    off = errors[:, ~np.eye(4, dtype=bool)].reshape(3, -1)
    np.testing.assert_allclose(off, off[:, :1] * np.ones_like(off))
    np.testing.assert_allclose(
        np.diagonal(errors, axis1=1, axis2=2), np.diagonal(errors, axis1=1, axis2=2)[:, :1] * np.ones((3, 4))
    )


def test_warm_start_uses_earlier_confusion_and_checks_its_shape(tiny: pd.DataFrame) -> None:
    earlier = DawidSkene(TINY_LABELS).fit(tiny)
    warm = {str(w): earlier.errors_[i] for i, w in enumerate(earlier.workers_)}
    warmed = DawidSkene(TINY_LABELS).fit(tiny, warm_start=warm | {"gone": np.eye(4)})
    assert warmed.labels_.to_dict() == earlier.labels_.to_dict()
    assert warmed.n_iter_ <= earlier.n_iter_
    with pytest.raises(ValueError, match=r"warm_start\['w1'\] must be a 4 x 4"):
        DawidSkene(TINY_LABELS).fit(tiny, warm_start={"w1": np.eye(3)})


def test_calibrated_on_both_synthetic_crowds() -> None:
    # Of the items the default is >= 0.99 sure of, at least 98% are right, whether workers err one-coin or
    # confuse pairs of classes (the benchmark prints the same figure at scale).
    for kind in ("one_coin", "class_confusion"):
        crowd = make_synthetic_crowd(20_000, kind=kind, seed=1)
        model = DawidSkene(crowd.label_names).fit(crowd.answers)
        sure = model.probas_.max(axis=1) >= 0.99
        right = model.labels_ == crowd.truth.reindex(model.labels_.index)
        assert right[sure].mean() >= 0.98, (kind, right[sure].mean())


def test_evidence_keeps_one_coin_workers_one_coin_and_frees_the_others() -> None:
    # The prior strength is chosen per worker: workers who err uniformly (good one-coin workers, spammers)
    # mostly stay one-coin (inf), a worker who favours one label or mixes up a pair never does.
    one_coin = make_synthetic_crowd(20_000, kind="one_coin", seed=1)
    model = DawidSkene(one_coin.label_names).fit(one_coin.answers)
    kinds = one_coin.worker_kinds.reindex(model.workers_).to_numpy()
    assert np.isfinite(model.shrinkage_[kinds == "biased"]).all()
    assert np.isinf(model.shrinkage_[kinds != "biased"]).mean() >= 0.8
    pairs = make_synthetic_crowd(20_000, kind="class_confusion", seed=1)
    model = DawidSkene(pairs.label_names).fit(pairs.answers)
    kinds = pairs.worker_kinds.reindex(model.workers_).to_numpy()
    assert np.isfinite(model.shrinkage_[kinds != "spammer"]).all()


def test_close_to_the_oracle_on_both_synthetic_crowds() -> None:
    # The benchmark's target (within 0.5 points of the Bayes-optimal oracle) on small crowds of other seeds.
    for kind in ("one_coin", "class_confusion"):
        gaps = []
        for seed in (1, 2, 3):
            crowd = make_synthetic_crowd(20_000, kind=kind, seed=seed)
            oracle = float((oracle_posteriors(crowd).argmax(axis=1) == crowd.true_codes).mean())
            labels = DawidSkene(crowd.label_names).fit(crowd.answers).labels_
            gaps.append(oracle - float((labels == crowd.truth.reindex(labels.index)).mean()))
        assert np.mean(gaps) <= 0.005, (kind, gaps)


def test_accelerated_em_stops_at_the_fixed_point() -> None:
    # SQUAREM jumps must not change where EM ends: the default stopping point agrees with EM run to 1e-9.
    for kind in ("one_coin", "class_confusion"):
        crowd = make_synthetic_crowd(20_000, kind=kind, seed=1)
        fast = DawidSkene(crowd.label_names).fit(crowd.answers)
        exact = DawidSkene(crowd.label_names, tol=1e-9, max_iter=1000).fit(crowd.answers)
        assert fast.n_iter_ <= 15 < exact.n_iter_ < 1000
        pd.testing.assert_series_equal(fast.labels_, exact.labels_)
        np.testing.assert_allclose(fast.probas_.to_numpy(), exact.probas_.to_numpy(), atol=0.01)


def test_evidence_shrinkage_chooses_within_the_grid_it_is_given() -> None:
    # A worker who always answers the first label: one-coin explains them worst, the lightest prior best.
    counts = np.array([[[5.0, 0.0, 0.0], [5.0, 0.0, 0.0], [5.0, 0.0, 0.0]]])
    accuracy = np.array([1.0 / 3.0])
    assert evidence_shrinkage(counts, accuracy).tolist() == [0.25 * 3]
    assert evidence_shrinkage(counts, accuracy, grid=(float("inf"), 4.0)).tolist() == [4.0 * 3]
    assert np.isinf(evidence_shrinkage(counts, accuracy, grid=(float("inf"),))).all()


def test_fixed_shrinkage_is_the_same_for_every_worker(tiny: pd.DataFrame) -> None:
    assert DawidSkene(TINY_LABELS, shrinkage=8.0).fit(tiny).shrinkage_.tolist() == [8.0, 8.0, 8.0]
    assert np.isinf(OneCoinDawidSkene(TINY_LABELS).fit(tiny).shrinkage_).all()
    with pytest.raises(ValueError, match="shrinkage"):
        DawidSkene(TINY_LABELS, shrinkage=-1.0).fit(tiny)


def test_spammer_scores() -> None:
    perfect, spammer = np.eye(3), np.full((3, 3), 1 / 3)
    one_label = np.tile([0.0, 1.0, 0.0], (3, 1))
    np.testing.assert_allclose(spammer_scores(np.stack([perfect, spammer, one_label])), [1.0, 0.0, 0.0])


def test_dawid_skene_stops_on_posterior_change_or_max_iter(tiny: pd.DataFrame) -> None:
    assert DawidSkene(TINY_LABELS, tol=0.0, max_iter=5).fit(tiny).n_iter_ == 5
    assert DawidSkene(TINY_LABELS, tol=1.0).fit(tiny).n_iter_ == 1


def test_smoothing_keeps_a_new_worker_below_certainty() -> None:
    # w_new agrees with five unanimous experts three times: trusted, but not at 0.99+.
    rows = [(f"i{i}", f"e{e}", "a" if i % 2 else "b") for i in range(40) for e in range(5)]
    rows += [(f"i{i}", "w_new", "a" if i % 2 else "b") for i in range(3)]
    ds = DawidSkene(["a", "b"]).fit(answers_frame(rows))
    new = ds.errors_[ds.workers_.get_loc("w_new")]
    assert 0.7 < new[0, 0] < 0.99
    assert 0.7 < new[1, 1] < 0.99


# --------------------------------------------------------------------------------------------- errors


def test_unknown_label_names_the_label_and_row(tiny: pd.DataFrame) -> None:
    bad = pd.concat([tiny, answers_frame([("i9", "w7", "zebra")])], ignore_index=True)
    for estimator in ESTIMATORS:
        with pytest.raises(ValueError, match=r"'zebra'.*row 12.*item_id='i9'.*worker_id='w7'"):
            estimator(TINY_LABELS).fit(bad)


def test_missing_column_is_a_contract_error(tiny: pd.DataFrame) -> None:
    for estimator in ESTIMATORS:
        with pytest.raises(ContractError, match="worker_id"):
            estimator(TINY_LABELS).fit(tiny.drop(columns="worker_id"))
    with pytest.raises(ContractError, match="label"):
        worker_quality(tiny.drop(columns="label"), pd.Series({"i1": "cat"}))
    with pytest.raises(ContractError, match="task"):
        from_crowd_kit(tiny)


def test_unknown_method_lists_the_allowed_ones(tiny: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match=r"majority_vote.*dawid_skene"):
        aggregate_answers_frame(tiny, TINY_LABELS, method="mace")


def test_bad_gold_and_label_names_are_value_errors(tiny: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match=r"'zebra'.*'i1'"):
        DawidSkene(TINY_LABELS).fit(tiny, gold=pd.Series({"i1": "zebra"}))
    with pytest.raises(ValueError, match="unique"):
        MajorityVote(["cat", "cat", "dog"]).fit(tiny)
    with pytest.raises(ValueError, match="no label"):
        MajorityVote(TINY_LABELS).fit(tiny.assign(label=tiny["label"].where(tiny.index != 0)))


def test_extra_columns_are_ignored(tiny: pd.DataFrame) -> None:
    extra = tiny.assign(answer_id=range(len(tiny)), wave=1)
    assert MajorityVote(TINY_LABELS).fit(extra).labels_.to_dict() == TINY_MV


# --------------------------------------------------------------------------------------------- frame API


def test_aggregate_answers_frame_contract(tiny: pd.DataFrame) -> None:
    for method in METHODS:
        frame = aggregate_answers_frame(tiny, TINY_LABELS, method=method)
        assert list(frame.columns) == ["item_id", "label", "confidence", "method", "n_answers"]
        assert frame["item_id"].tolist() == ["i1", "i2", "i3", "i4"]
        assert (frame["method"] == method).all()
        assert frame["n_answers"].dtype == np.int64
        assert frame["n_answers"].tolist() == [3, 3, 3, 3]
        assert frame["confidence"].between(0.0, 1.0).all()
    mv = aggregate_answers_frame(tiny, TINY_LABELS, method="majority_vote")
    assert dict(zip(mv["item_id"], mv["label"], strict=True)) == TINY_MV
    assert mv["confidence"].tolist() == pytest.approx([2 / 3, 1.0, 2 / 3, 2 / 3])


def test_gold_items_are_clamped_and_not_returned(tiny: pd.DataFrame) -> None:
    # Every worker said "dog" on i2; gold says "fish", a label nobody chose.
    gold = pd.Series({"i2": "fish"})
    for estimator in ESTIMATORS:
        model = estimator(TINY_LABELS).fit(tiny, gold=gold)
        assert model.labels_["i2"] == "fish"
        assert probas_row(model.probas_, "i2") == [0.0, 0.0, 0.0, 1.0]
    for method in METHODS:
        frame = aggregate_answers_frame(tiny, TINY_LABELS, method=method, gold=gold)
        assert frame["item_id"].tolist() == ["i1", "i3", "i4"]


def test_worker_quality(tiny: pd.DataFrame) -> None:
    answers = pd.concat([tiny, answers_frame([("i1", "w4", "cat")])], ignore_index=True)
    quality = worker_quality(answers, pd.Series({"i2": "dog", "i3": "cat", "i9": "cat"}))
    assert list(quality.columns) == ["worker_id", "n_answers", "n_gold", "gold_accuracy"]
    assert quality["worker_id"].tolist() == ["w1", "w2", "w3", "w4"]
    assert quality["n_answers"].tolist() == [4, 4, 4, 1]
    assert quality["n_gold"].tolist() == [2, 2, 2, 0]
    assert quality["gold_accuracy"].iloc[:3].tolist() == [0.5, 1.0, 0.5]
    assert np.isnan(quality["gold_accuracy"].iloc[3])


def test_from_crowd_kit() -> None:
    frame = pd.DataFrame({"task": [1, 2], "worker": [7, 8], "label": [0, 1], "extra": [0, 0]})
    converted = from_crowd_kit(frame)
    assert list(converted.columns) == ["item_id", "worker_id", "label"]
    assert converted.to_numpy().tolist() == [["1", "7", "0"], ["2", "8", "1"]]


def test_shared_csv_readers_keep_ids_as_strings(tmp_path: Path) -> None:
    (tmp_path / "answers.csv").write_text("question,worker,answer\n007,A1,0\n008,42,1\n")
    (tmp_path / "truth.csv").write_text("question,truth\n007,1\n")
    answers = from_shared_csv(tmp_path / "answers.csv")
    assert answers.to_numpy().tolist() == [["007", "A1", "0"], ["008", "42", "1"]]
    truth = read_shared_truth(tmp_path / "truth.csv")
    assert truth.to_dict() == {"007": "1"}
    with pytest.raises(ContractError, match="answer"):
        from_shared_csv(tmp_path / "truth.csv")


# --------------------------------------------------------------------------------------------- properties


@st.composite
def crowds(draw: st.DrawFn) -> tuple[pd.DataFrame, list[str]]:
    """Small random crowds: any worker may answer any item any label (duplicates included)."""
    k = draw(st.integers(2, 4))
    n_items = draw(st.integers(1, 6))
    n_workers = draw(st.integers(1, 4))
    rows = draw(
        st.lists(
            st.tuples(st.integers(0, n_items - 1), st.integers(0, n_workers - 1), st.integers(0, k - 1)),
            min_size=1,
            max_size=30,
        )
    )
    frame = answers_frame([(f"i{i}", f"w{w}", f"l{label}") for i, w, label in rows])
    return frame, [f"l{j}" for j in range(k)]


@settings(deadline=None, max_examples=60)
@given(crowd=crowds(), seed=st.integers(0, 2**32 - 1))
def test_probas_rows_sum_to_one(crowd: tuple[pd.DataFrame, list[str]], seed: int) -> None:
    answers, labels = crowd
    for estimator in ESTIMATORS:
        probas = estimator(labels, random_state=seed).fit(answers).probas_
        assert list(probas.columns) == labels
        np.testing.assert_allclose(probas.sum(axis=1), 1.0, atol=1e-12)
        assert ((probas >= 0) & (probas <= 1)).all().all()


@settings(deadline=None, max_examples=60)
@given(crowd=crowds(), data=st.data())
def test_aggregation_does_not_depend_on_row_order(
    crowd: tuple[pd.DataFrame, list[str]], data: st.DataObject
) -> None:
    answers, labels = crowd
    order = data.draw(st.permutations(range(len(answers))))
    shuffled = answers.iloc[list(order)]
    for estimator in ESTIMATORS:
        first = estimator(labels, random_state=3).fit(answers)
        second = estimator(labels, random_state=3).fit(shuffled)
        pd.testing.assert_series_equal(first.labels_, second.labels_)
        pd.testing.assert_frame_equal(first.probas_, second.probas_, check_exact=False, atol=1e-9, rtol=0)


@settings(deadline=None, max_examples=60)
@given(
    k=st.integers(2, 5),
    n_workers=st.integers(1, 5),
    truth=st.lists(st.integers(0, 4), min_size=1, max_size=30),
)
def test_every_aggregator_with_perfect_workers_agrees_with_majority_vote(
    k: int, n_workers: int, truth: list[int]
) -> None:
    labels = [f"l{j}" for j in range(k)]
    rows = [(f"i{i}", f"w{w}", f"l{t % k}") for i, t in enumerate(truth) for w in range(n_workers)]
    answers = answers_frame(rows)
    mv = MajorityVote(labels).fit(answers).labels_
    for estimator in ESTIMATORS:
        pd.testing.assert_series_equal(estimator(labels).fit(answers).labels_, mv)
    assert mv.to_dict() == {f"i{i}": f"l{t % k}" for i, t in enumerate(truth)}


@settings(deadline=None, max_examples=30)
@given(seed=st.integers(0, 2**32 - 1))
def test_majority_vote_tie_break_is_seeded_not_first_label(seed: int) -> None:
    # 100 items, each a 1-1 tie between "a" (listed first, answered first) and "b".
    rows = [(f"i{i:03d}", w, label) for i in range(100) for w, label in (("w1", "a"), ("w2", "b"))]
    answers = answers_frame(rows)
    labels = MajorityVote(["a", "b"], random_state=seed).fit(answers).labels_
    again = MajorityVote(["a", "b"], random_state=seed).fit(answers).labels_
    pd.testing.assert_series_equal(labels, again)
    assert set(labels) == {"a", "b"}


def test_majority_vote_tie_break_depends_on_seed() -> None:
    rows = [(f"i{i:03d}", w, label) for i in range(100) for w, label in (("w1", "a"), ("w2", "b"))]
    answers = answers_frame(rows)
    runs = {tuple(MajorityVote(["a", "b"], random_state=s).fit(answers).labels_) for s in range(5)}
    assert len(runs) == 5


# ------------------------------------------------------------------------------------------ synthetic crowd


def synthetic_crowd(seed: int) -> tuple[pd.DataFrame, list[str], pd.Series, pd.Series]:
    """30 workers (21 good at 0.75-0.95, 6 uniform spammers, 3 always-one-label), 10 labels.

    300 regular items get 3 answers each from distinct workers; 30 gold items are mixed into dispatches so
    that every worker answers 10 of them. Returns answers, labels, truth of the regular items, gold.
    """
    rng = np.random.default_rng(seed)
    k, n_workers, n_items, n_gold, gold_per_worker = 10, 30, 300, 30, 10
    labels = [f"c{j}" for j in range(k)]
    kind = np.array(["good"] * 21 + ["spam"] * 6 + ["fixed"] * 3)
    accuracy = rng.uniform(0.75, 0.95, n_workers)
    fixed = rng.integers(0, k, n_workers)
    truth = rng.integers(0, k, n_items + n_gold)
    regular_workers = np.argsort(rng.random((n_items, n_workers)), axis=1)[:, :3].ravel()
    gold_items = np.argsort(rng.random((n_workers, n_gold)), axis=1)[:, :gold_per_worker].ravel() + n_items
    item = np.concatenate([np.repeat(np.arange(n_items), 3), gold_items])
    worker = np.concatenate([regular_workers, np.repeat(np.arange(n_workers), gold_per_worker)])
    true = truth[item]
    wrong = (true + rng.integers(1, k, len(item))) % k
    good = np.where(rng.random(len(item)) < accuracy[worker], true, wrong)
    spam = rng.integers(0, k, len(item))
    answer = np.select([kind[worker] == "good", kind[worker] == "spam"], [good, spam], fixed[worker])
    answers = answers_frame(
        [(f"i{i}", f"w{w}", labels[a]) for i, w, a in zip(item, worker, answer, strict=True)]
    )
    named = pd.Series([labels[t] for t in truth], index=[f"i{i}" for i in range(n_items + n_gold)])
    return answers, labels, named.iloc[:n_items], named.iloc[n_items:]


def accuracy_on(frame: pd.DataFrame, truth: pd.Series) -> float:
    predicted = frame.set_index("item_id")["label"].reindex(truth.index)
    return float((predicted == truth).mean())


def test_dawid_skene_beats_majority_vote_on_synthetic_crowd_and_gold_does_not_hurt() -> None:
    scores = []
    for seed in range(5):
        answers, labels, truth, gold = synthetic_crowd(seed)
        mv = accuracy_on(aggregate_answers_frame(answers, labels, method="majority_vote"), truth)
        ds = accuracy_on(aggregate_answers_frame(answers, labels), truth)
        ds_gold_frame = aggregate_answers_frame(answers, labels, gold=gold)
        assert not ds_gold_frame["item_id"].isin(gold.index).any()
        ds_gold = accuracy_on(ds_gold_frame, truth)
        assert ds >= mv - 0.01, f"seed {seed}: DS {ds:.3f} vs MV {mv:.3f}"
        scores.append((mv, ds, ds_gold))
    mv_mean, ds_mean, ds_gold_mean = np.mean(scores, axis=0)
    message = f"mean over 5 crowds: MV {mv_mean:.3f}, DS {ds_mean:.3f}, DS+gold {ds_gold_mean:.3f}"
    assert ds_mean >= mv_mean + 0.03, message
    assert ds_gold_mean >= ds_mean - 0.005, message


# --------------------------------------------------------------------------------------------- real crowds


@pytest.mark.parametrize(
    ("dataset", "strictly_better"),
    [("product", True), ("dog", True), ("duck", False), ("face", False)],
)
def test_dawid_skene_on_real_crowds(shared_crowd: Path, dataset: str, strictly_better: bool) -> None:
    folder = shared_crowd / dataset
    answers = from_shared_csv(folder / "answers.csv")
    truth = read_shared_truth(folder / "truth.csv")
    labels = sorted(set(answers["label"]) | set(truth))
    truth = truth[truth.index.isin(answers["item_id"])]
    mv = accuracy_on(aggregate_answers_frame(answers, labels, method="majority_vote"), truth)
    ds = accuracy_on(aggregate_answers_frame(answers, labels), truth)
    message = f"{dataset}: MV accuracy {mv:.4f}, DS accuracy {ds:.4f} on {len(truth)} items"
    if strictly_better:
        assert ds > mv, message
    else:  # no claim from the literature that DS wins here; guard against a regression only
        assert ds >= mv - 0.01, message
