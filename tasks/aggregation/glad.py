"""GLAD: one-coin workers whose chance of being right also depends on how hard the item is.

Whitehill, J., Ruvolo, P., Wu, T., Bergsma, J., & Movellan, J. (2009). Whose vote should count more: optimal
integration of labels from labelers of unknown expertise. NIPS 22, 2035-2043.

A worker ``w`` answers item ``j`` right with probability ``σ(α_w β_j)`` (``α_w`` the worker's skill, any sign;
``β_j = exp(b_j) > 0`` the item's easiness) and otherwise any other label uniformly. EM alternates the
posteriors of the true labels (E-step, exact) and, as the M-step, one Fisher-scoring step on the skills and one on
the log-easiness of the expected complete log-likelihood under Gaussian priors ``α_w ~ N(1, 1)``,
``b_j ~ N(0, 1)``, as in the paper (generalized EM: a step that improves, not the M-step's optimum; each is a
few vectorized passes over the answers, where the paper's gradient ascent, or L-BFGS, takes tens). Class priors get
one pseudo-count per class (Laplace), as in :class:`~labelflow.tasks.aggregation.DawidSkene`.

What it adds to one-coin Dawid-Skene is that an item most workers got wrong can be *hard* rather than evidence
against those workers: the hard item's answers then count for less, everywhere, which is also how a model
without correlations approximates workers being wrong together on the same items.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final, Self

import numpy as np
import pandas as pd
from scipy.special import expit, log_expit

from labelflow.tasks.aggregation._encoding import TIE_ATOL, FloatArray, argmax_random_ties, encode
from labelflow.tasks.aggregation.base import BaseAggregator

# Prior means and standard deviations of the skills α and log-easiness b (Whitehill et al.'s choice).
_SKILL_PRIOR: Final = (1.0, 1.0)
_EASINESS_PRIOR: Final = (0.0, 1.0)


class GLAD(BaseAggregator):
    """GLAD (Whitehill et al. 2009): worker skill times item easiness, fitted with the true labels by EM.

    Gold items (Series ``item_id -> label``) have their posteriors clamped to one-hot in every E-step.

    Parameters
    ----------
    label_names : sequence of str, optional
        Every label a worker may answer, in the order of ``probas_``'s columns; by default every label answered
        (or given as gold), sorted as strings.
    max_iter : int, default 50
        Most EM iterations.
    tol : float, default 1e-3
        EM stops once no posterior moves by more than this in one iteration.
    random_state : int, default 0
        Seed of the tie-breaks.

    Attributes
    ----------
    labels_, probas_, n_answers_
        As every aggregator (crowd-kit's names).
    priors_ : pandas.Series
        Class priors over the labels.
    alphas_ : pandas.Series
        ``worker_id -> skill`` ``α_w`` (0 is a coin flip, negative an adversary).
    betas_ : pandas.Series
        ``item_id -> easiness`` ``β_j`` (large: everyone gets it right; near 0: answers are noise).
    n_iter_ : int
        EM iterations run.

    Examples
    --------
    >>> import pandas as pd
    >>> from labelflow.tasks.aggregation import GLAD
    >>> answers = pd.DataFrame({"task": ["t1", "t1", "t1", "t2", "t2", "t2"],
    ...                         "worker": ["a", "b", "c", "a", "b", "c"],
    ...                         "label": ["yes", "yes", "no", "no", "no", "no"]})
    >>> GLAD().fit_predict(answers).to_dict()
    {'t1': 'yes', 't2': 'no'}
    """

    priors_: pd.Series
    alphas_: pd.Series
    betas_: pd.Series
    n_iter_: int

    def __init__(
        self,
        label_names: Sequence[str] | None = None,
        *,
        max_iter: int = 50,
        tol: float = 1e-3,
        random_state: int = 0,
    ) -> None:
        super().__init__(label_names, random_state=random_state)
        self.max_iter = max_iter
        self.tol = tol

    def fit(
        self,
        answers: pd.DataFrame,
        gold: pd.Series | None = None,
        *,
        items: Sequence[str] | pd.Index | None = None,
    ) -> Self:
        """Fit on ``answers``; the parameters are those of :meth:`BaseAggregator.fit_predict`."""
        if self.max_iter < 0:
            raise ValueError(f"max_iter must be >= 0, got {self.max_iter}")
        coded = encode(answers, self.label_names, gold, items)
        k, n_items, n_workers = coded.n_labels, coded.n_items, coded.n_workers
        item, worker, label = coded.item, coded.worker, coded.label
        log_wrong_share = -np.log(k - 1) if k > 1 else 0.0
        item_label = item * k + label

        counts = coded.counts().astype(np.float64)
        probas = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1.0)
        coded.clamp(probas)
        skill = np.full(n_workers, _SKILL_PRIOR[0])
        log_easiness = np.full(n_items, _EASINESS_PRIOR[0])

        def scoring_step(right: FloatArray) -> None:
            """One Fisher-scoring step on the skills, then one on the log-easiness (each a Newton step with the
            expected curvature, which is negative everywhere, so the step is always defined), on the expected
            complete log-likelihood plus the priors."""
            nonlocal skill, log_easiness
            easiness = np.exp(log_easiness)
            x = skill[worker] * easiness[item]
            p = expit(x)
            weight = p * (1.0 - p)
            grad = (
                np.bincount(worker, weights=(right - p) * easiness[item], minlength=n_workers)
                - (skill - _SKILL_PRIOR[0]) / _SKILL_PRIOR[1] ** 2
            )
            info = np.bincount(worker, weights=weight * easiness[item] ** 2, minlength=n_workers)
            skill = skill + grad / (info + 1.0 / _SKILL_PRIOR[1] ** 2)
            x = skill[worker] * easiness[item]
            p = expit(x)
            grad = (
                np.bincount(item, weights=(right - p) * x, minlength=n_items)
                - (log_easiness - _EASINESS_PRIOR[0]) / _EASINESS_PRIOR[1] ** 2
            )
            info = np.bincount(item, weights=p * (1.0 - p) * x**2, minlength=n_items)
            log_easiness = log_easiness + grad / (info + 1.0 / _EASINESS_PRIOR[1] ** 2)

        priors = (probas.sum(axis=0) + 1.0) / (n_items + k)
        n_iter = 0
        while n_iter < self.max_iter:
            # M-step: the probability that each answer is right under the current posteriors
            scoring_step(probas[item, label])
            priors = (probas.sum(axis=0) + 1.0) / (n_items + k)
            # E-step: log σ(x) for the answered label, log (1 - σ(x)) / (K - 1) for every other label
            x = skill[worker] * np.exp(log_easiness[item])
            log_right, log_wrong = log_expit(x), log_expit(-x) + log_wrong_share
            log_post = np.bincount(item_label, weights=log_right - log_wrong, minlength=n_items * k)
            log_post = log_post.reshape(n_items, k)
            log_post += np.bincount(item, weights=log_wrong, minlength=n_items)[:, None]
            log_post += np.log(priors)
            log_post -= log_post.max(axis=1, keepdims=True)
            new = np.exp(log_post)
            new /= new.sum(axis=1, keepdims=True)
            coded.clamp(new)
            n_iter += 1
            change = float(np.abs(new - probas).max()) if n_items else 0.0
            probas = new
            if change < self.tol:
                break

        rng = np.random.default_rng(self.random_state)
        codes = argmax_random_ties(probas, rng, atol=TIE_ATOL)
        self._set_results(coded, probas, codes)
        self.priors_ = pd.Series(priors, index=coded.labels, name="prior")
        self.alphas_ = pd.Series(skill, index=coded.workers, name="alpha")
        self.betas_ = pd.Series(np.exp(log_easiness), index=coded.items, name="beta")
        self.n_iter_ = n_iter
        return self
