from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labelflow.contracts import BATCH_COLUMNS
from labelflow.tasks.selection import (
    SelectionConfig,
    choose_batch,
    cold_start,
    entropy_scores,
    least_confidence_scores,
    margin_scores,
    stratified_sample,
    top_k,
)

STRATEGIES = ["random", "least_confidence", "margin", "entropy"]


class FixedModel:
    """A 'model' whose probabilities are a fixed function of the first feature, so scores are predictable."""

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        p = 1 / (1 + np.exp(-X[:, 0]))
        return np.column_stack([p, 1 - p])


def make_pool(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {"item_id": [f"i{k}" for k in range(n)], "f0": rng.normal(size=n), "f1": rng.normal(size=n)}
    )


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 200),
    batch=st.integers(1, 60),
    strategy=st.sampled_from(STRATEGIES),
    seed=st.integers(0, 10_000),
)
def test_a_batch_is_unique_from_the_pool_and_exactly_the_size_asked(
    n: int, batch: int, strategy: str, seed: int
) -> None:
    pool = make_pool(n, seed)
    config = SelectionConfig(strategy=strategy, batch_size=batch, seed=seed)  # type: ignore[arg-type]
    chosen = choose_batch(pool, ["f0", "f1"], FixedModel(), config, round_id=1)
    assert list(chosen.columns) == list(BATCH_COLUMNS)
    assert chosen["item_id"].is_unique
    assert set(chosen["item_id"]) <= set(pool["item_id"])
    assert len(chosen) == min(batch, n)


@settings(max_examples=15, deadline=None)
@given(n=st.integers(1, 80), seed_size=st.integers(1, 30))
def test_cold_start_batch_is_unique_and_sized(n: int, seed_size: int) -> None:
    pool = make_pool(n)
    chosen = choose_batch(pool, ["f0", "f1"], None, SelectionConfig(seed_size=seed_size), round_id=1)
    assert chosen["item_id"].is_unique and len(chosen) == min(seed_size, n)
    assert (chosen["strategy"] == "cold_start").all()


def test_a_big_pools_cold_start_covers_its_clusters_from_a_sample() -> None:
    rng = np.random.default_rng(0)
    centres = rng.normal(scale=20, size=(5, 2))
    points = (centres[np.arange(5000) % 5] + rng.normal(size=(5000, 2))).astype(np.float32)
    chosen = cold_start(points, 5, seed=1, sample=400)
    assert len(set(chosen)) == 5 and chosen.max() < 5000
    assert sorted(chosen % 5) == [0, 1, 2, 3, 4]  # one item of each cluster, though 400 of 5,000 were seen
    np.testing.assert_array_equal(chosen, cold_start(points, 5, seed=1, sample=400))


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 120), size=st.integers(0, 60), seed=st.integers(0, 10_000))
def test_a_stratified_sample_is_unique_reproducible_and_exactly_the_size_asked(
    n: int, size: int, seed: int
) -> None:
    points = make_pool(n, seed)[["f0", "f1"]].to_numpy()
    chosen = stratified_sample(points, size, seed=seed)
    assert len(chosen) == min(size, n) and len(set(chosen.tolist())) == len(chosen) and (chosen < n).all()
    np.testing.assert_array_equal(chosen, stratified_sample(points, size, seed=seed))


def test_a_stratified_sample_gives_each_cluster_its_share_at_random() -> None:
    rng = np.random.default_rng(0)
    sizes = [600, 300, 100]  # three far-apart clusters
    points = np.concatenate([rng.normal(loc=30 * k, size=(m, 2)) for k, m in enumerate(sizes)])
    cluster = np.repeat([0, 1, 2], sizes)
    chosen = stratified_sample(points, 40, seed=1, strata=3)
    assert np.bincount(cluster[chosen], minlength=3).tolist() == [
        24,
        12,
        4,
    ]  # proportional: 40 x 0.6 / 0.3 / 0.1
    # every item of a cluster has the same chance, unlike the cold start's medoids: 30 draws of 24 of the 600
    # items reach ~420 different ones (600 x (1 - e^-1.2)), where medoids would be the same few each time
    draws = np.concatenate([stratified_sample(points, 40, seed=s, strata=3) for s in range(30)])
    assert len(set(draws[draws < 600].tolist())) > 350


def test_selection_is_reproducible_and_leaves_the_pool_untouched() -> None:
    pool = make_pool(100)
    before = pool.copy()
    config = SelectionConfig(strategy="random", batch_size=10, seed=3)
    first = choose_batch(pool, ["f0", "f1"], FixedModel(), config, round_id=2)
    second = choose_batch(pool, ["f0", "f1"], FixedModel(), config, round_id=2)
    pd.testing.assert_frame_equal(first, second)
    pd.testing.assert_frame_equal(pool, before)


def test_uncertainty_picks_the_items_nearest_the_decision_boundary() -> None:
    pool = pd.DataFrame(
        {"item_id": ["sure", "coin", "fairly", "toss"], "f0": [9.0, 0.01, 2.0, -0.02], "f1": 0.0}
    )
    for strategy in ["least_confidence", "margin", "entropy"]:
        config = SelectionConfig(strategy=strategy, batch_size=2, diversity="none")  # type: ignore[arg-type]
        assert set(choose_batch(pool, ["f0", "f1"], FixedModel(), config, round_id=1)["item_id"]) == {
            "coin",
            "toss",
        }


@settings(max_examples=50, deadline=None)
@given(st.integers(2, 6), st.integers(1, 30), st.integers(0, 1000))
def test_scores_are_in_range_and_maximal_at_uniform(k: int, n: int, seed: int) -> None:
    probas = np.random.default_rng(seed).dirichlet(np.ones(k), size=n)
    uniform = np.full((1, k), 1 / k)
    for score in (least_confidence_scores, margin_scores, entropy_scores):
        values = score(probas)
        assert values.shape == (n,) and np.all(values >= -1e-12)
        assert np.all(values <= score(uniform)[0] + 1e-9)


def test_top_k_breaks_ties_at_random_not_by_pool_order() -> None:
    scores = np.zeros(100)
    picks = {tuple(top_k(scores, 3, np.random.default_rng(s))) for s in range(5)}
    assert len(picks) > 1


@settings(max_examples=60, deadline=None)
@given(
    scores=st.lists(st.integers(0, 4), max_size=60).map(lambda v: np.asarray(v, dtype=float)),
    k=st.integers(0, 70),
    seed=st.integers(0, 1000),
)
def test_top_k_is_the_head_of_the_whole_pool_sorted_best_first_ties_at_random(
    scores: np.ndarray, k: int, seed: int
) -> None:
    jitter = np.random.default_rng(seed).random(len(scores))
    whole = np.lexsort((jitter, -scores))[:k]
    np.testing.assert_array_equal(top_k(scores, k, np.random.default_rng(seed)), whole)


def test_the_batch_size_cap_wins_over_the_config() -> None:
    pool = make_pool(50)
    chosen = choose_batch(
        pool, ["f0", "f1"], FixedModel(), SelectionConfig(batch_size=20), round_id=1, batch_size=7
    )
    assert len(chosen) == 7


@pytest.mark.parametrize("chunk_rows", [1, 7, 1000])
def test_chunked_scoring_matches_whole_pool_scoring(chunk_rows: int) -> None:
    pool = make_pool(60)
    config = SelectionConfig(strategy="margin", batch_size=60, chunk_rows=chunk_rows)
    chosen = choose_batch(pool, ["f0", "f1"], FixedModel(), config, round_id=1).set_index("item_id")["score"]
    expected = margin_scores(FixedModel().predict_proba(pool[["f0", "f1"]].to_numpy()))
    np.testing.assert_allclose(chosen.loc[pool["item_id"]].to_numpy(), expected)


@pytest.mark.parametrize("seed", range(5))
def test_the_cold_start_covers_groups_that_a_large_scale_column_would_hide(seed: int) -> None:
    """The penguins' shape: three species apart in two measurements in millimetres, and a body mass in grams
    whose spread (hundreds of grams) dwarfs theirs. On raw features the cold start clustered by mass and covered
    all three species in 3 of 30 draws; on standardized ones, as the diversity steps, it covers them in all 30."""
    rng = np.random.default_rng(seed)
    species = np.repeat([0, 1, 2], 100)
    millimetres = np.array([[39.0, 190.0], [49.0, 192.0], [44.0, 216.0]])[species]
    pool = pd.DataFrame(
        {
            "item_id": [f"p{k}" for k in range(len(species))],
            "bill_mm": millimetres[:, 0] + rng.normal(scale=0.8, size=len(species)),
            "flipper_mm": millimetres[:, 1] + rng.normal(scale=1.5, size=len(species)),
            "body_mass_g": rng.normal(4200.0, 400.0, size=len(species)),
        }
    )

    batch = choose_batch(
        pool,
        ["bill_mm", "flipper_mm", "body_mass_g"],
        None,
        SelectionConfig(seed_size=3, seed=seed),
        round_id=1,
    )

    assert sorted(species[pool["item_id"].isin(batch["item_id"]).to_numpy()]) == [0, 1, 2]


def test_a_model_trained_on_sparse_rows_scores_those_rows_while_the_dense_view_spreads_the_batch() -> None:
    import numpy as np
    import pandas as pd
    import scipy.sparse as sp
    from sklearn.linear_model import LogisticRegression

    from labelflow.tasks.selection import SelectionConfig, choose_batch, margin_scores

    rng = np.random.default_rng(0)
    rows = sp.random(60, 500, density=0.05, format="csr", random_state=0)
    model = LogisticRegression().fit(rows, rng.choice(["a", "b"], 60))
    pool = pd.DataFrame(
        {"item_id": [f"i{k}" for k in range(60)], "v0": rng.normal(size=60), "v1": rng.normal(size=60)}
    )
    config = SelectionConfig(batch_size=5, diversity="kmeans")
    batch = choose_batch(pool, ["v0", "v1"], model, config, round_id=1, scoring_features=rows)
    expected = pd.Series(margin_scores(model.predict_proba(rows)), index=pool["item_id"])
    np.testing.assert_allclose(batch["score"], expected[batch["item_id"]].to_numpy())


def test_choose_batch_on_a_row_view_chooses_the_batch_of_the_frame_with_its_features() -> None:
    """The round's candidates are item ids with their rows' positions in the pool's one feature matrix: the
    batch, cold start or scored, is the one the frame holding those features gets."""
    from sklearn.linear_model import LogisticRegression

    from labelflow.tasks.rows import RowView

    rng = np.random.default_rng(0)
    matrix = rng.normal(size=(3_000, 4)).astype(np.float32)
    rows = np.sort(rng.choice(3_000, 2_000, replace=False))
    columns = ["a", "b", "c", "d"]
    frame = pd.DataFrame(matrix[rows], columns=columns).assign(item_id=[f"i{r}" for r in rows])
    model = LogisticRegression().fit(matrix[:100], matrix[:100, 0] > 0)
    config = SelectionConfig(batch_size=20, seed_size=30)
    for champion in (None, model):
        expected = choose_batch(frame, columns, champion, config, round_id=3)
        viewed = choose_batch(
            frame[["item_id"]], columns, champion, config, round_id=3, features=RowView(matrix, rows)
        )
        pd.testing.assert_frame_equal(viewed, expected)
