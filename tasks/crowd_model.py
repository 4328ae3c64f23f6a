"""Fit a simulated crowd to a real one: "what would k answers buy on a crowd like mine?" before paying.

From a file of real answers (and, when there is one, the true labels of some of its items; otherwise Dawid-Skene's
labels stand in for the truth) :func:`fit_crowd_profile` estimates the three things that make real crowds harder
than the textbook one (issue 14):

- **worker confusion matrices**: each worker's answer counts by true label, shrunk towards the crowd's pooled
  confusion matrix with ``prior_answers`` pseudo-answers per true label, so a worker seen on five items is mostly
  the crowd's average and one seen on five hundred is mostly themself; each worker answers in proportion to how
  many answers they gave in the file;
- **item difficulty**: an answer is right with log-odds ``logit(C_w[t, t]) - d_i``, where ``d_i`` is the item's
  difficulty. Its distribution is the nonparametric maximum-likelihood mixture on a grid (Kiefer & Wolfowitz
  1956, fitted by EM: Laird 1978) — no shape assumed, so a crowd with a few impossible items and many easy ones
  keeps that shape instead of being smoothed into a normal;
- **correlated errors**: a share ``lure_share`` of an item's wrong answers go to one wrong label per item, its
  lure, drawn from the crowd's pooled confusion; the share is the one that reproduces how often two wrong
  answers on the same item agree (a method of moments; with two labels every wrong answer agrees and the share
  is 0).

Pure: no I/O, no Prefect; the file is read by :mod:`labelflow.integrations.answers_file` and the result drives
:class:`labelflow.integrations.crowd.simulated.SimulatedCrowd`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import numpy as np
import pandas as pd
from scipy.special import expit, logit

from labelflow.integrations.crowd.simulated import CrowdProfile, FloatArray, SimulatedWorker
from labelflow.tasks.aggregation import DawidSkene

# Pseudo-answers per true label a worker's confusion row is shrunk with towards the crowd's (chosen on the
# development crowds of benchmarks/simulated_twin.py among 1, 3, 10 and 30).
PRIOR_ANSWERS: Final = 3.0
# The difficulty grid: log-odds penalties from much easier than a worker's average item to hopeless.
DIFFICULTY_GRID: Final = tuple(float(d) for d in np.linspace(-4.0, 8.0, 25))
_SKILL_BOUND: Final = (
    6.0  # |logit| of a worker's accuracy, so that a perfect record stays movable by difficulty
)
_EM_ITERATIONS: Final = 300


def fit_crowd_profile(
    answers: pd.DataFrame,
    label_names: Sequence[str],
    truth: pd.Series | None = None,
    *,
    prior_answers: float = PRIOR_ANSWERS,
    worker_prefix: str = "fit-w",
) -> CrowdProfile:
    """A :class:`CrowdProfile` fitted to ``answers`` (``item_id, worker_id, label``).

    Parameters
    ----------
    answers
        The real answers; labels outside ``label_names`` are refused.
    label_names
        The labels, in the order the simulated crowd's project uses.
    truth
        ``item_id -> label`` for some or all items; only those items' answers are fitted. Without it, Dawid-Skene's
        labels are the truth: the fit then sees the crowd as its own aggregator does, so difficulty and errors
        that fool the majority are invisible, and the twin comes out kinder than the crowd.
    prior_answers
        Shrinkage of each worker's confusion row towards the crowd's (pseudo-answers per true label).
    worker_prefix
        The simulated workers' ids are this plus a number (real ids are not carried into the simulation).

    Returns
    -------
    CrowdProfile

    Examples
    --------
    >>> import pandas as pd
    >>> answers = pd.DataFrame({"item_id": ["a", "a", "a", "b", "b", "b"], "worker_id": ["x", "y", "z"] * 2,
    ...                         "label": ["cat", "cat", "dog", "dog", "dog", "dog"]})
    >>> profile = fit_crowd_profile(answers, ["cat", "dog"], pd.Series({"a": "cat", "b": "dog"}))
    >>> len(profile.workers), profile.lure.tolist()
    (3, [[0.0, 1.0], [1.0, 0.0]])
    """
    names = [str(n) for n in label_names]
    k = len(names)
    if k < 2:
        raise ValueError(f"a crowd model needs at least two labels, got {names}")
    frame = answers.astype({"item_id": str, "worker_id": str, "label": str})
    unknown = sorted(set(frame["label"]) - set(names))
    if unknown:
        raise ValueError(f"answers give label(s) {unknown[:5]} that are not among the labels {names}")
    if truth is None:
        truth = DawidSkene(names).fit(frame).labels_
    truth = pd.Series(truth.astype(str).to_numpy(), index=truth.index.astype(str))
    frame = frame[frame["item_id"].isin(truth.index)]
    if frame.empty:
        raise ValueError("no answer is on an item whose true label is known: nothing to fit")
    label_code = {name: code for code, name in enumerate(names)}
    true_codes = truth.map(label_code)
    if true_codes.isna().any():
        raise ValueError(
            f"the truth gives label(s) {sorted(set(truth[true_codes.isna()]))[:5]} outside {names}"
        )

    item_codes, _ = pd.factorize(frame["item_id"])
    worker_codes, worker_ids = pd.factorize(frame["worker_id"])
    given = frame["label"].map(label_code).to_numpy(dtype=np.intp)
    true = true_codes.reindex(frame["item_id"]).to_numpy(dtype=np.intp)
    n_workers = len(worker_ids)

    counts = np.zeros((n_workers, k, k))
    np.add.at(counts, (worker_codes, true, given), 1.0)
    pooled = counts.sum(axis=0) + 1.0  # one pseudo-answer per cell keeps every confusion possible
    pooled /= pooled.sum(axis=1, keepdims=True)
    confusions = (counts + prior_answers * pooled[None]) / (counts.sum(axis=2, keepdims=True) + prior_answers)

    skill = np.clip(logit(confusions[worker_codes, true, true]), -_SKILL_BOUND, _SKILL_BOUND)
    grid = np.asarray(DIFFICULTY_GRID)
    weights = difficulty_mixture(skill, given == true, item_codes, grid)

    off_diagonal = pooled * (1.0 - np.eye(k))
    lure = off_diagonal / off_diagonal.sum(axis=1, keepdims=True)
    lure_share = fit_lure_share(given, true, item_codes, off_diagonal, lure)

    accuracy = np.einsum("wtt->w", confusions) / k
    workers = tuple(
        SimulatedWorker(
            worker_id=f"{worker_prefix}{w:04d}",
            kind="fitted",
            accuracy=float(accuracy[w]),
            favourite=int(confusions[w].sum(axis=0).argmax()),
            confusion=confusions[w],
        )
        for w in range(n_workers)
    )
    shares = np.bincount(worker_codes, minlength=n_workers).astype(np.float64)
    return CrowdProfile(
        workers=workers,
        worker_shares=shares / shares.sum(),
        difficulty=grid,
        difficulty_weights=weights,
        lure=lure,
        lure_share=lure_share,
    )


def difficulty_mixture(
    skill: FloatArray, right: np.ndarray, item_codes: np.ndarray, grid: FloatArray
) -> FloatArray:
    """The weights on ``grid`` of the item-difficulty distribution that maximize the likelihood of which answers
    were ``right`` (one per answer, with its worker's log-odds ``skill`` and its item's code): the
    nonparametric maximum-likelihood mixture, by EM on the weights."""
    n_items = int(item_codes.max()) + 1
    p = expit(skill[:, None] - grid[None, :])  # answers x grid
    log_p = np.where(right[:, None], np.log(p), np.log1p(-p))
    item_log_lik = np.zeros((n_items, len(grid)))
    np.add.at(item_log_lik, item_codes, log_p)
    item_lik = np.exp(item_log_lik - item_log_lik.max(axis=1, keepdims=True))
    weights = np.full(len(grid), 1.0 / len(grid))
    for _ in range(_EM_ITERATIONS):
        posterior = item_lik * weights
        posterior /= posterior.sum(axis=1, keepdims=True)
        weights = posterior.mean(axis=0)
    return np.asarray(weights / weights.sum(), dtype=np.float64)


def fit_lure_share(
    given: np.ndarray, true: np.ndarray, item_codes: np.ndarray, off_diagonal: FloatArray, lure: FloatArray
) -> float:
    """The share of wrong answers that go to an item's lure that makes two wrong answers on one item agree as
    often as they do in the file (0 when no item has two wrong answers, or with two labels)."""
    k = lure.shape[0]
    if k <= 2:
        return 0.0
    wrong = given != true
    frame = pd.DataFrame({"item": item_codes[wrong], "true": true[wrong], "given": given[wrong]})
    per_label = frame.groupby(["item", "given"]).size().rename("n").reset_index()
    per_item = frame.groupby("item").agg(true=("true", "first"), n=("given", "size"))
    pairs = per_item["n"] * (per_item["n"] - 1) / 2
    if pairs.sum() <= 0:
        return 0.0
    agreeing = (per_label["n"] * (per_label["n"] - 1) / 2).sum()
    observed = float(agreeing / pairs.sum())
    # Per true label, the chance that two wrong answers agree for a lure share rho: the lure is l with probability
    # lure[t, l]; each wrong answer is l with probability rho + (1 - rho) q[l], another label a with (1 - rho) q[a].
    q = off_diagonal / off_diagonal.sum(axis=1, keepdims=True)
    pair_share = (pairs.groupby(per_item["true"]).sum() / pairs.sum()).reindex(range(k), fill_value=0.0)

    def expected(rho: float) -> float:
        total = 0.0
        for t in range(k):
            if pair_share[t] == 0:
                continue
            squares = ((1 - rho) * q[t]) ** 2
            at_lure = (rho + (1 - rho) * q[t]) ** 2 - squares  # the lure's square replaces its plain one
            total += pair_share[t] * float((lure[t] * (squares.sum() + at_lure)).sum())
        return total

    candidates = np.linspace(0.0, 1.0, 101)
    return float(candidates[np.argmin([abs(expected(r) - observed) for r in candidates])])
