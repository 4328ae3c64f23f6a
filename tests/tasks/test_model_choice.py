"""Tests of GLAD and of choose_aggregator (the crowd model chosen by held-out likelihood)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from labelflow.tasks.aggregation import (
    CANDIDATES,
    GLAD,
    DawidSkene,
    MajorityVote,
    choose_aggregator,
    make_aggregator,
)
from labelflow.tasks.aggregation.choice import held_out_scores
from labelflow.tasks.calibration import ece_floor


def hard_items_crowd(seed: int, n_items: int = 400) -> tuple[pd.DataFrame, pd.Series, np.ndarray]:
    """3 labels, ``n_items`` items (a quarter of them hard: every worker answers at random), 5 answers each from 20
    workers of accuracy 0.65-0.95 on easy items. Returns answers, truth and which items are hard."""
    rng = np.random.default_rng(seed)
    k, n_workers = 3, 20
    truth = rng.integers(0, k, n_items)
    hard = rng.random(n_items) < 0.25
    skill = rng.uniform(0.65, 0.95, n_workers)
    item = np.repeat(np.arange(n_items), 5)
    worker = np.argsort(rng.random((n_items, n_workers)), axis=1)[:, :5].ravel()
    right = rng.random(len(item)) < np.where(hard[item], 1.0 / k, skill[worker])
    answer = np.where(right, truth[item], (truth[item] + rng.integers(1, k, len(item))) % k)
    answers = pd.DataFrame(
        {
            "item_id": [f"i{i:03d}" for i in item],
            "worker_id": [f"w{w}" for w in worker],
            "label": answer.astype(str),
        }
    )
    return answers, pd.Series(truth.astype(str), index=[f"i{i:03d}" for i in range(n_items)]), hard


def test_glad_finds_the_hard_items_and_labels_like_the_others() -> None:
    answers, truth, hard = hard_items_crowd(0)
    glad = GLAD().fit(answers)
    assert np.allclose(glad.probas_.sum(axis=1), 1.0)
    assert glad.betas_.to_numpy()[hard].mean() < glad.betas_.to_numpy()[~hard].mean()
    accuracy = float((glad.labels_.reindex(truth.index) == truth).mean())
    vote = float((MajorityVote().fit_predict(answers).reindex(truth.index) == truth).mean())
    assert accuracy >= vote - 0.01, f"GLAD {accuracy:.3f}, majority vote {vote:.3f}"
    gold = truth.iloc[:20]
    clamped = GLAD().fit(answers, gold)
    assert (clamped.labels_.reindex(gold.index) == gold).all()


def test_choice_scores_every_candidate_on_held_out_answers_and_gold() -> None:
    answers, truth, _ = hard_items_crowd(1, n_items=150)
    gold = truth.iloc[:40]
    choice = choose_aggregator(answers, gold, random_state=3)
    assert list(choice.scores.index) == list(CANDIDATES)
    assert choice.method in CANDIDATES and choice.method in choice.reason
    assert choice.n_held_out == len(answers)  # every item has 5 answers: each is held out once
    assert choice.n_gold == 40
    assert (choice.scores["answer_loglik"] < 0).all() and (choice.scores["gap"] <= 0).all()
    make_aggregator(choice.method, None).fit(answers, gold)


def test_held_out_scores_are_what_the_choice_totals() -> None:
    answers, truth, _ = hard_items_crowd(4, n_items=100)
    gold = truth.iloc[:20]
    names = ("majority_vote", "dawid_skene")
    scores = held_out_scores(answers, gold, candidates=names, random_state=1)
    choice = choose_aggregator(answers, gold, candidates=names, random_state=1)
    assert scores.answer_loglik.shape == (2, len(answers)) and scores.gold_loglik.shape == (2, 20)
    np.testing.assert_allclose(scores.per_item().sum(axis=1), choice.scores["total"].to_numpy())
    np.testing.assert_allclose(scores.gold_right.mean(axis=1), choice.scores["gold_accuracy"].to_numpy())


def test_choice_prefers_per_worker_models_where_workers_differ() -> None:
    # half the workers are spammers: identical-worker majority vote predicts held-out answers worst
    rng = np.random.default_rng(2)
    truth = rng.integers(0, 2, 300)
    rows = []
    for i, t in enumerate(truth):
        for w in rng.choice(10, 5, replace=False):
            answer = t if (w < 5 and rng.random() < 0.9) else rng.integers(0, 2)
            rows.append((f"i{i}", f"w{w}", str(answer)))
    answers = pd.DataFrame(rows, columns=["item_id", "worker_id", "label"])
    choice = choose_aggregator(answers, candidates=("majority_vote", "dawid_skene"))
    assert choice.method == "dawid_skene"
    assert choice.scores.loc["majority_vote", "total"] < choice.scores.loc["dawid_skene", "total"]


def test_choice_on_many_answers_uses_a_subset_of_workers() -> None:
    answers, _, _ = hard_items_crowd(3)
    choice = choose_aggregator(answers, candidates=("majority_vote", "dawid_skene"), max_answers=500)
    # whole workers drawn until they hold 500 answers (one worker has at most ~130), on items two of them answered
    assert 200 <= choice.n_held_out <= 500 + answers["worker_id"].value_counts().max()
    with pytest.raises(ValueError, match="candidates"):
        choose_aggregator(answers, candidates=("best",))


def test_ece_floor_counts_a_recurring_item_once() -> None:
    # 20 draws scoring the same 30 items: their outcomes are correlated, so the floor is higher than for 600
    # independent items
    confidence = np.tile(np.linspace(0.55, 0.95, 30), 20)
    items = np.tile(np.arange(30), 20)
    independent = ece_floor(confidence)
    shared = ece_floor(confidence, item_ids=items)
    assert shared > 1.5 * independent
    assert shared == pytest.approx(ece_floor(np.linspace(0.55, 0.95, 30)), rel=0.15)


def refit_loglik(method: str, answers: pd.DataFrame, gold: pd.Series | None, k: int) -> float:
    """Mean log-probability of each answer under a refit on every other answer (the exact leave-one-out)."""
    items = answers["item_id"].to_numpy(dtype=str)
    workers = answers["worker_id"].to_numpy(dtype=str)
    labels = answers["label"].to_numpy(dtype=str).astype(int)
    logs = []
    for j in range(len(answers)):
        rest = np.arange(len(answers)) != j
        if method == "majority_vote":  # identical one-coin workers, accuracy = share agreeing with the vote
            votes = {i: np.bincount(labels[rest & (items == i)], minlength=k) for i in set(items[rest])}
            agree = sum(int(v.max()) for v in votes.values()) / int(rest.sum())
            mine = votes[items[j]]
            log_post = mine * np.log(agree) + (mine.sum() - mine) * np.log((1 - agree) / (k - 1))
            post = np.exp(log_post - log_post.max())
            right = post[labels[j]] / post.sum()
            logs.append(float(np.log(right * agree + (1 - right) * (1 - agree) / (k - 1))))
        else:  # every item gold: the item's label is known, only the worker's matrix moves
            assert gold is not None
            model = DawidSkene(
                [str(c) for c in range(k)],
                shrinkage=float("inf") if method == "one_coin_dawid_skene" else None,
            ).fit(answers[rest], gold)
            errors = model.errors_[model.workers_.get_indexer(pd.Index([workers[j]]))[0]]
            logs.append(float(np.log(errors[int(gold[items[j]]), labels[j]])))
    return float(np.mean(logs))


def test_closed_form_held_out_answers_equal_refits_where_nothing_else_moves() -> None:
    # Majority vote's identical workers are left out exactly; so are Dawid-Skene's workers when every item is
    # gold (no other posterior can move). 4 workers answer 12 items: 48 refits per method.
    rng = np.random.default_rng(4)
    truth = pd.Series(rng.integers(0, 3, 12).astype(str), index=[f"i{i}" for i in range(12)])
    answers = pd.DataFrame(
        [
            (item, f"w{w}", label if rng.random() < 0.5 + 0.1 * w else str(rng.integers(0, 3)))
            for item, label in truth.items()
            for w in range(4)
        ],
        columns=["item_id", "worker_id", "label"],
    )
    choice = choose_aggregator(answers, candidates=("majority_vote",))
    assert choice.scores.loc["majority_vote", "answer_loglik"] == pytest.approx(
        refit_loglik("majority_vote", answers, None, 3), abs=1e-12
    )
    on_gold = choose_aggregator(answers, truth, candidates=("one_coin_dawid_skene", "dawid_skene"))
    for method in ("one_coin_dawid_skene", "dawid_skene"):
        assert on_gold.scores.loc[method, "answer_loglik"] == pytest.approx(
            refit_loglik(method, answers, truth, 3), abs=1e-9
        ), method


def test_closed_form_held_out_answers_are_close_to_refits_for_dawid_skene() -> None:
    answers, _, _ = hard_items_crowd(5, n_items=200)
    model = DawidSkene().fit(answers)
    closed = model.held_out_answer_probas(answers)
    sample = np.random.default_rng(0).choice(len(answers), 30, replace=False)
    refit = []
    for j in sample:
        row = answers.iloc[j]
        rest = DawidSkene().fit(answers.drop(index=answers.index[j]))
        errors = rest.errors_[rest.workers_.get_loc(row["worker_id"])]
        refit.append(
            rest.probas_.loc[row["item_id"]].to_numpy()
            @ errors[:, rest.probas_.columns.get_loc(row["label"])]
        )
    gap = np.log(closed[sample]) - np.log(refit)
    assert np.median(np.abs(gap)) < 0.01 and abs(gap.mean()) < 0.03, gap
