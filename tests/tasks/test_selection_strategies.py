"""Every selection strategy through the same contract, plus the committee, diversity and stopping-rule pieces."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from labelflow.contracts import BATCH_COLUMNS
from labelflow.tasks.selection import (
    BootstrapCommittee,
    SelectionConfig,
    StoppingRule,
    choose_batch,
    cohen_kappa,
    consensus_kl_scores,
    kcenter_greedy,
    score_pool,
    stop_reason,
    stop_set,
    stopping_round,
    vote_entropy_scores,
)

STRATEGIES = ["random", "least_confidence", "margin", "entropy", "vote_entropy", "consensus_kl"]
DIVERSITY = ["none", "kcenter", "kmeans"]
FEATURES = ["f0", "f1", "f2"]


def make_labeled(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    y = np.array(["a", "b", "c"], dtype=object)[(X[:, 0] > 0).astype(int) + (X[:, 1] > 0.5).astype(int)]
    return X, y


def make_pool(n: int, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(size=(n, 3)), columns=FEATURES)
    frame.insert(0, "item_id", [f"p{k}" for k in range(n)])
    return frame


@pytest.fixture(scope="module")
def fitted() -> tuple[LogisticRegression, BootstrapCommittee]:
    X, y = make_labeled(60, 0)
    model = LogisticRegression(max_iter=500).fit(X, y)
    committee = BootstrapCommittee(LogisticRegression(max_iter=500), n_members=4, random_state=0).fit(X, y)
    return model, committee


@pytest.mark.parametrize("diversity", DIVERSITY)
@pytest.mark.parametrize("strategy", STRATEGIES)
class TestStrategyContract:
    """What every strategy promises, whatever it scores by (the scikit-activeml contract-test pattern)."""

    def choose(
        self,
        fitted: tuple[LogisticRegression, BootstrapCommittee],
        strategy: str,
        diversity: str,
        *,
        n: int = 120,
        batch: int = 9,
        seed: int = 3,
    ) -> pd.DataFrame:
        model, committee = fitted
        config = SelectionConfig(
            strategy=strategy,  # type: ignore[arg-type]
            diversity=diversity,  # type: ignore[arg-type]
            batch_size=batch,
            seed=seed,
            chunk_rows=50,
            candidates=4,
        )
        return choose_batch(make_pool(n), FEATURES, model, config, round_id=2, committee=committee)

    def test_reproducible_with_a_seed(
        self, fitted: tuple[LogisticRegression, BootstrapCommittee], strategy: str, diversity: str
    ) -> None:
        pd.testing.assert_frame_equal(
            self.choose(fitted, strategy, diversity), self.choose(fitted, strategy, diversity)
        )

    @pytest.mark.parametrize(("n", "batch"), [(120, 9), (30, 30), (5, 9), (40, 1)])
    def test_batch_size_honoured_unique_and_from_the_pool(
        self,
        fitted: tuple[LogisticRegression, BootstrapCommittee],
        strategy: str,
        diversity: str,
        n: int,
        batch: int,
    ) -> None:
        chosen = self.choose(fitted, strategy, diversity, n=n, batch=batch)
        assert list(chosen.columns) == list(BATCH_COLUMNS)
        assert len(chosen) == min(n, batch)
        assert chosen["item_id"].is_unique
        assert set(chosen["item_id"]) <= set(make_pool(n)["item_id"])
        assert np.isfinite(chosen["score"]).all()

    def test_model_committee_and_pool_untouched(
        self, fitted: tuple[LogisticRegression, BootstrapCommittee], strategy: str, diversity: str
    ) -> None:
        before = pickle.dumps(fitted)
        pool = make_pool(80)
        pool_before = pool.copy()
        model, committee = fitted
        config = SelectionConfig(strategy=strategy, diversity=diversity, batch_size=5)  # type: ignore[arg-type]
        choose_batch(pool, FEATURES, model, config, round_id=1, committee=committee)
        assert pickle.dumps(fitted) == before
        pd.testing.assert_frame_equal(pool, pool_before)


class RecordingModel:
    """Records the dtype and size of every chunk it is asked about."""

    def __init__(self) -> None:
        self.calls: list[tuple[np.dtype[np.generic], int]] = []

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        self.calls.append((X.dtype, len(X)))
        p = 1 / (1 + np.exp(-X[:, 0].astype(np.float64)))
        return np.column_stack([p, 1 - p])


def test_a_float32_pool_is_scored_in_chunks_in_its_own_dtype() -> None:
    pool = make_pool(1000).astype({c: np.float32 for c in FEATURES})
    model = RecordingModel()
    config = SelectionConfig(strategy="margin", batch_size=10, chunk_rows=256)
    choose_batch(pool, FEATURES, model, config, round_id=1)
    assert [rows for _, rows in model.calls] == [256, 256, 256, 232]
    assert {dtype for dtype, _ in model.calls} == {np.dtype(np.float32)}


def test_committee_strategies_without_a_committee_say_what_to_pass() -> None:
    with pytest.raises(ValueError, match="committee"):
        score_pool(
            RecordingModel(), np.zeros((3, 3)), "vote_entropy", chunk_rows=10, rng=np.random.default_rng(0)
        )


def test_disagreement_is_zero_when_the_committee_agrees_and_largest_when_split() -> None:
    same = np.tile(np.array([[[0.7, 0.2, 0.1]]]), (4, 1, 1))
    split = np.array([[[0.9, 0.1, 0.0]], [[0.1, 0.9, 0.0]], [[0.9, 0.1, 0.0]], [[0.1, 0.9, 0.0]]])
    assert vote_entropy_scores(same)[0] == 0 and consensus_kl_scores(same)[0] == pytest.approx(0, abs=1e-9)
    assert vote_entropy_scores(split)[0] == pytest.approx(np.log(2))
    assert consensus_kl_scores(split)[0] > 0.3


def test_bootstrap_committee_members_differ_and_see_every_class() -> None:
    X, y = make_labeled(40, 5)
    estimator = LogisticRegression(max_iter=500)
    committee = BootstrapCommittee(estimator, n_members=3, random_state=1).fit(X, y)
    assert not hasattr(estimator, "coef_")  # cloned, never fitted itself
    assert all(list(m.classes_) == ["a", "b", "c"] for m in committee.members_)
    probas = committee.member_probas(X)
    assert probas.shape == (3, 40, 3) and not np.allclose(probas[0], probas[1])


def test_kcenter_greedy_spreads_a_batch_over_clusters_not_near_copies() -> None:
    rng = np.random.default_rng(0)
    centres = np.array([[0, 0], [10, 0], [0, 10], [10, 10]], dtype=float)
    points = np.vstack([c + rng.normal(scale=0.1, size=(25, 2)) for c in centres])
    picked = kcenter_greedy(points, 4)
    assert sorted(np.unique(picked // 25)) == [0, 1, 2, 3]


def test_a_kcenter_batch_covers_more_clusters_than_plain_top_scores() -> None:
    # 3 tight clusters of near-duplicate uncertain items; plain top-k takes 6 from one
    rng = np.random.default_rng(1)
    points = np.vstack([c + rng.normal(scale=0.01, size=(10, 2)) for c in ([0, 0], [5, 5], [9, 0])])
    pool = pd.DataFrame(points, columns=["f0", "f1"]).assign(item_id=[f"i{k}" for k in range(30)])

    class ClusterModel:
        def predict_proba(self, X: np.ndarray) -> np.ndarray:
            p = np.where(np.abs(X[:, 0]) < 1, 0.5, 0.4)  # the first cluster is the most uncertain
            return np.column_stack([p, 1 - p])

    def clusters(diversity: str) -> int:
        config = SelectionConfig(batch_size=6, diversity=diversity, candidates=5)  # type: ignore[arg-type]
        batch = choose_batch(pool, ["f0", "f1"], ClusterModel(), config, round_id=1)
        return len({int(i[1:]) // 10 for i in batch["item_id"]})

    assert clusters("none") == 1
    assert clusters("kcenter") == 3 and clusters("kmeans") == 3


def test_stabilizing_predictions_stop_after_a_window_of_agreeing_rounds() -> None:
    a = np.array(list("abcabcabca"))
    b = a.copy()
    b[0] = "b"
    assert cohen_kappa(a, a) == 1.0 and cohen_kappa(a, b) < 1.0
    rule = StoppingRule(window=2)
    history = [b, a, a, a, a]
    assert stop_reason(history[:3], rule) is None
    assert "stabilized" in str(stop_reason(history[:4], rule))
    assert stopping_round(history, rule) == 3
    assert stopping_round([a, b, a, b], rule) is None


def successive_models(changes: list[int], rows: int = 1000) -> list[np.ndarray]:
    """Predictions of models on a stop set, each differing from the one before on ``changes[i]`` items."""
    models = [np.arange(rows) % 4]
    for step, changed in enumerate(changes):
        nxt = models[-1].copy()
        rows_changed = (np.arange(changed) * 7 + step * 131) % rows
        nxt[rows_changed] = (nxt[rows_changed] + 1) % 4
        models.append(nxt)
    return models


def test_the_rule_also_stops_once_agreement_levels_off_below_the_stabilized_kappa() -> None:
    rule = StoppingRule()  # window 3, kappa >= 0.99, or levelled off at >= 0.95 within 0.005
    steady = successive_models([400, 200, 100, 30, 30, 30, 30, 30, 30])  # kappa 0.96 from the 4th pair on
    assert cohen_kappa(steady[4], steady[5]) < rule.min_kappa
    assert stopping_round(steady, rule) == 9
    assert "stopped stabilizing further" in str(stop_reason(steady, rule))
    still_rising = successive_models([400, 200, 100, 60, 40, 25, 15, 12, 11])
    assert stopping_round(still_rising, rule) is None
    unstable = successive_models([100] * 9)  # level, but kappa 0.87: the models still disagree too much
    assert stopping_round(unstable, rule) is None


def test_the_stop_set_is_a_fixed_sample_of_the_pool() -> None:
    ids = [f"i{k:03d}" for k in range(300)]
    chosen = stop_set(ids, 50, seed=3)
    assert len(set(chosen)) == 50 and set(chosen) <= set(ids)
    assert stop_set(list(reversed(ids)), 50, seed=3) == chosen
    assert stop_set(ids, 50, seed=4) != chosen and stop_set(ids, 500, seed=3) == ids
