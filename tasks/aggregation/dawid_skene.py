"""Dawid-Skene (full, one-coin, gold-anchored, warm-started) and the maths of its hierarchical shrinkage.

Speed: the answers become one sparse count matrix ``S`` (items x (worker, answer) pairs), built once in linear
time. Every EM iteration is then two sparse-dense products — the E-step ``S @ log_errors`` and the M-step
``S.T @ posteriors``, each one pass over the non-zeros for all K classes at once — and no Python loop over
classes, workers or answers. EM itself converges linearly and slowly when items have few answers (on 6M answers,
46 iterations to move no posterior by 1e-3); SQUAREM extrapolation cuts that to under 20 iterations.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final, Self

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy.special import gammaln

from labelflow.tasks.aggregation._encoding import (
    LOG_FLOOR,
    TIE_ATOL,
    FloatArray,
    IntArray,
    answer_pairs,
    argmax_random_ties,
    encode,
)
from labelflow.tasks.aggregation.base import BaseAggregator


def one_coin_matrices(accuracy: FloatArray, k: int) -> FloatArray:
    """Confusion matrices (len(accuracy) x k x k) of one-coin workers: right with probability ``accuracy``,
    otherwise any other label uniformly."""
    if k == 1:
        return np.ones((len(accuracy), 1, 1))
    off = (1.0 - accuracy) / (k - 1)
    return np.asarray(
        off[:, None, None] + np.eye(k)[None] * (accuracy - off)[:, None, None], dtype=np.float64
    )


def spammer_scores(errors: FloatArray) -> FloatArray:
    """Raykar & Yu's spammer score per worker from confusion matrices ``errors[w, t, a]``.

    Raykar, V. C., & Yu, S. (2012). Eliminating spammers and ranking annotators for crowdsourced labeling
    tasks. JMLR 13, 491-518 (Section 5, categorical annotations): ``S = 1/(K(K-1)) Σ_{c<c'} Σ_k (a_ck -
    a_c'k)²``. A spammer's answers do not depend on the truth (all rows equal) and score 0, whatever label they
    favour; a perfect worker scores 1.

    Examples
    --------
    >>> import numpy as np
    >>> perfect, spammer = np.eye(2), np.array([[0.5, 0.5], [0.5, 0.5]])
    >>> spammer_scores(np.stack([perfect, spammer]))
    array([1., 0.])
    """
    k = errors.shape[1]
    if k < 2:
        return np.zeros(errors.shape[0])
    diff = errors[:, :, None, :] - errors[:, None, :, :]  # w, c, c', answer
    return np.asarray((diff**2).sum(axis=(1, 2, 3)) / 2.0 / (k * (k - 1)), dtype=np.float64)


# Candidate prior strengths (pseudo-answers per confusion row, in units of K) for the evidence-chosen
# shrinkage, from strongest to weakest so that a tie keeps the simpler model; inf is one-coin. Factors of 4 apart:
# the marginal likelihood is flat at that scale, and a finer grid changed no synthetic-crowd figure.
_SHRINKAGE_GRID: Final = (float("inf"), 256.0, 64.0, 16.0, 4.0, 1.0, 0.25)


def one_coin_accuracy(counts: FloatArray, smoothing: float, prior_accuracy: float) -> FloatArray:
    """Each worker's one-coin accuracy from expected counts ``counts[w, t, a]``: the MAP estimate under a Beta
    prior of ``smoothing`` pseudo-answers centred on ``prior_accuracy``; 1/K for a worker with no evidence."""
    n_workers, k, _ = counts.shape
    denominator = counts.sum(axis=(1, 2)) + smoothing
    accuracy = np.divide(
        np.trace(counts, axis1=1, axis2=2) + smoothing * prior_accuracy,
        denominator,
        out=np.full(n_workers, 1.0 / k),
        where=denominator > 0,
    )
    return np.asarray(np.clip(accuracy, 0.0, 1.0), dtype=np.float64)


def evidence_shrinkage(
    counts: FloatArray, accuracy: FloatArray, grid: Sequence[float] = _SHRINKAGE_GRID
) -> FloatArray:
    """Per worker, the Dirichlet prior strength (pseudo-answers per row) around their one-coin matrix that best
    explains their expected counts: type-II maximum likelihood (empirical Bayes) over ``grid`` (in units of K,
    strongest first, inf for one-coin itself), by default :data:`_SHRINKAGE_GRID`.

    Row ``t`` of worker ``w`` has Dirichlet-multinomial evidence ``Γ(α)/Γ(α+n_t) Π_a Γ(c_ta + α m_ta)/Γ(α m_ta)``
    with ``m`` the one-coin matrix; ``α = inf`` is the multinomial ``Π_a m_ta^c_ta``. A worker whose rows
    differ from one-coin by no more than sampling noise gets ``inf`` (one parameter instead of K(K-1)); a
    worker who favours a label or mixes up a pair gets a weak prior and their own confusion.
    """
    n_workers, k, _ = counts.shape
    if k < 2:
        return np.full(n_workers, np.inf)
    # Floors keep Γ finite where the one-coin matrix has a zero (accuracy 0 or 1, possible without smoothing).
    correct = np.maximum(accuracy, LOG_FLOOR)
    wrong = np.maximum((1.0 - accuracy) / (k - 1), LOG_FLOOR)
    base = wrong[:, None, None] + np.eye(k)[None] * (correct - wrong)[:, None, None]
    rows = counts.sum(axis=2)
    alphas = np.asarray(grid, dtype=np.float64) * k
    evidence = np.empty((n_workers, len(alphas)))
    for j, alpha in enumerate(alphas):
        if np.isinf(alpha):
            evidence[:, j] = (counts * np.log(base)).sum(axis=(1, 2))
            continue
        # Σ_t Σ_a Γ(α m_ta) in closed form: each row has one diagonal and K - 1 off-diagonal cells.
        prior_norm = k * (gammaln(alpha * correct) + (k - 1) * gammaln(alpha * wrong) - gammaln(alpha))
        evidence[:, j] = (
            gammaln(counts + alpha * base).sum(axis=(1, 2)) - gammaln(rows + alpha).sum(axis=1) - prior_norm
        )
    return np.asarray(alphas[evidence.argmax(axis=1)], dtype=np.float64)


def shrunk_confusion(counts: FloatArray, one_coin: FloatArray, shrinkage: FloatArray) -> FloatArray:
    """Confusion rows ``(counts + s * one_coin) / (n + s)`` per worker (posterior means under the Dirichlet
    prior); ``s = inf`` is the one-coin matrix itself."""
    k = counts.shape[1]
    finite = np.isfinite(shrinkage)
    errors = one_coin.copy()
    rows = counts[finite] + shrinkage[finite, None, None] * one_coin[finite]
    totals = rows.sum(axis=2, keepdims=True)
    # A row with no evidence and no pseudo-counts (shrinkage=0) knows nothing: uniform.
    errors[finite] = np.divide(rows, totals, out=np.full_like(rows, 1.0 / k), where=totals > 0)
    return errors


def _normalized(log_probas: FloatArray) -> FloatArray:
    """Rows of log-probabilities (up to a constant) as probabilities."""
    probas = np.exp(log_probas - log_probas.max(axis=1, keepdims=True))
    return np.asarray(probas / probas.sum(axis=1, keepdims=True), dtype=np.float64)


def _squarem_jump(history: list[tuple[FloatArray, FloatArray]]) -> tuple[FloatArray, FloatArray]:
    """Varadhan & Roland (2008) SQUAREM step from three successive EM parameters, on log-probabilities (so
    no cell can turn negative), renormalized to distributions."""
    logs = [
        np.concatenate([np.log(np.maximum(p, LOG_FLOOR)), np.log(np.maximum(e, LOG_FLOOR)).ravel()])
        for p, e in history
    ]
    r = logs[1] - logs[0]
    v = logs[2] - 2.0 * logs[1] + logs[0]
    vv = float(v @ v)
    if vv == 0.0:
        return history[2]
    step = min(-np.sqrt(float(r @ r) / vv), -1.0)
    jumped = logs[0] - 2.0 * step * r + step * step * v
    k = len(history[0][0])
    log_priors, log_errors = jumped[:k], jumped[k:].reshape(history[0][1].shape)
    priors = np.exp(log_priors - log_priors.max())
    errors = np.exp(log_errors - log_errors.max(axis=2, keepdims=True))
    return priors / priors.sum(), errors / errors.sum(axis=2, keepdims=True)


class DawidSkene(BaseAggregator):
    """Dawid-Skene: each worker has a confusion matrix, fitted jointly with the true labels by EM.

    Dawid, A. P., & Skene, A. M. (1979). Maximum likelihood estimation of observer error-rates using the EM
    algorithm. Journal of the Royal Statistical Society, Series C (Applied Statistics), 28(1), 20-28.

    EM starts from the majority-vote shares (or, with ``warm_start``, from earlier rounds' confusion matrices)
    and alternates an M-step (class priors and per-worker confusion matrices from the current posteriors) and an
    E-step (posteriors from priors and confusion matrices, in log space). It stops when no posterior moves by
    more than ``tol`` in one EM step, or after ``max_iter`` E-steps. After every two EM steps the parameters jump
    along a SQUAREM extrapolation (Varadhan & Roland, "Simple and globally convergent methods for accelerating
    the convergence of any EM algorithm", Scand. J. Statist. 35, 2008; on log-probabilities, without the
    paper's objective check), which takes two to three times fewer steps. The stopping rule is only applied to
    plain EM steps, so wherever the jumps lead, the result is where EM itself stops.

    **Hierarchical shrinkage** makes the posteriors calibrated on one-coin and class-confusion crowds alike. A
    full K x K matrix per worker, fitted from a few dozen answers, overfits: a worker seen five times on a class
    looks certain about it, and items with three different answers end at posteriors ≥ 0.99. So every worker's
    row for true class ``t`` is a posterior mean under a Dirichlet prior centred on *that worker's own one-coin
    matrix* with ``s_w`` pseudo-answers:

        errors[w, t, :] = (counts[w, t, :] + s_w * one_coin(acc_w)[t, :]) / (n[w, t] + s_w)

    and the one-coin accuracy ``acc_w`` is itself a MAP estimate over all of the worker's answers under a
    Beta prior with ``smoothing`` pseudo-answers centred on ``prior_accuracy``. Class priors get one
    pseudo-count per class (Laplace).

    How strong ``s_w`` should be depends on the worker, not on the crowd: a one-coin worker's K(K-1) free cells
    only add noise (with 500 answers on 3 labels, enough to cost 0.4 points of accuracy against the oracle), while
    a worker who favours one label or mixes up a pair needs their own rows. So by default (``shrinkage=None``)
    ``s_w`` is chosen per worker, at every M-step, by the evidence of the worker's expected counts
    (:func:`evidence_shrinkage`, empirical Bayes): one-coin unless the rows depart from it by more than their
    sampling noise. A worker with few answers per class cannot show such a departure and stays one-coin, which
    is what keeps a 10-label crowd with ~50 answers per worker calibrated. A number fixes ``s_w`` for every
    worker: ``shrinkage=inf`` is one-coin Dawid-Skene (:class:`OneCoinDawidSkene`), ``shrinkage=0`` plain
    per-row estimates.

    Defaults: the evidence-chosen ``s_w`` replaced a fixed ``2 K`` after measuring the synthetic and simulated
    crowds only (the real crowds were run once afterwards, not used to choose). Lighter rules that match
    crowd-kit on the labelme crowd were compared leave-one-crowd-out on the real crowds and not adopted: those
    that reach it cost 0.6 points against the oracle on workers with 500 answers, and capping ``s_w`` at the
    worker's answers per label falls short of it and overfits workers with a few answers (benchmarks/README.md,
    "The shrinkage rule"). ``smoothing = 2`` and
    ``prior_accuracy = 0.7``, from first principles: an unknown worker starts clearly better than chance (0.7 >
    1/K for every K ≥ 2) but far from expert, and two answers of evidence already move them.

    Gold items (Series ``item_id -> label``) have their posteriors clamped to one-hot in every E-step, so they
    inform the confusion matrices and the priors (gold-anchored Dawid-Skene).

    Parameters
    ----------
    label_names : sequence of str, optional
        Every label a worker may answer, in the order of ``probas_``'s columns and of the confusion matrices; by
        default every label answered (or given as gold), sorted as strings.
    max_iter : int, default 100
        Most E-steps run.
    tol : float, default 1e-3
        EM stops once no posterior moves by more than this in one step.
    shrinkage : float, optional
        Pseudo-answers ``s_w`` for every worker; by default chosen per worker by the evidence.
    smoothing : float, default 2.0
        Pseudo-answers of the Beta prior on each worker's one-coin accuracy.
    prior_accuracy : float, default 0.7
        Centre of that prior.
    random_state : int, default 0
        Seed of the tie-breaks.

    Attributes
    ----------
    labels_ : pandas.Series
        ``item_id -> label``; ties within 1e-12 broken with the seeded generator.
    probas_ : pandas.DataFrame
        Items x labels, rows sum to 1.
    priors_ : pandas.Series
        Class priors over the labels.
    errors_ : numpy.ndarray
        Workers x K x K; ``errors_[w, t, a]`` is the probability that worker ``w`` answers ``a`` when the truth
        is ``t`` (rows sum to 1).
    workers_ : pandas.Index
        Worker ids aligned with ``errors_``.
    shrinkage_ : numpy.ndarray
        Each worker's ``s_w``.
    n_answers_ : pandas.Series
        ``item_id -> answers``.
    n_iter_ : int
        E-steps run.

    Examples
    --------
    >>> import pandas as pd
    >>> from labelflow import DawidSkene
    >>> answers = pd.DataFrame({"item_id": ["i1", "i1", "i1", "i2", "i2", "i2"],
    ...                         "worker_id": ["a", "b", "c", "a", "b", "c"],
    ...                         "label": ["cat", "cat", "dog", "dog", "dog", "cat"]})
    >>> ds = DawidSkene().fit(answers)
    >>> ds.labels_.to_dict()
    {'i1': 'cat', 'i2': 'dog'}
    >>> ds.errors_.shape  # workers x true label x answer
    (3, 2, 2)
    """

    priors_: pd.Series
    errors_: FloatArray
    shrinkage_: FloatArray
    workers_: pd.Index
    n_iter_: int
    _counts: FloatArray
    _gold_answers: tuple[IntArray, IntArray, IntArray, IntArray]

    def __init__(
        self,
        label_names: Sequence[str] | None = None,
        *,
        max_iter: int = 100,
        tol: float = 1e-3,
        shrinkage: float | None = None,
        smoothing: float = 2.0,
        prior_accuracy: float = 0.7,
        random_state: int = 0,
    ) -> None:
        self.label_names = label_names
        self.max_iter = max_iter
        self.tol = tol
        self.shrinkage = shrinkage
        self.smoothing = smoothing
        self.prior_accuracy = prior_accuracy
        self.random_state = random_state

    def _check_params(self) -> None:
        if self.max_iter < 0:
            raise ValueError(f"max_iter must be >= 0, got {self.max_iter}")
        if not self.tol >= 0:
            raise ValueError(f"tol must be >= 0, got {self.tol}")
        if self.shrinkage is not None and not self.shrinkage >= 0:
            raise ValueError(f"shrinkage must be >= 0 or None (chosen per worker), got {self.shrinkage}")
        if not self.smoothing >= 0:
            raise ValueError(f"smoothing must be >= 0 (0 is plain maximum likelihood), got {self.smoothing}")
        if not 0.0 <= self.prior_accuracy <= 1.0:
            raise ValueError(f"prior_accuracy must be in [0, 1], got {self.prior_accuracy}")

    def fit(
        self,
        answers: pd.DataFrame,
        gold: pd.Series | None = None,
        *,
        items: Sequence[str] | pd.Index | None = None,
        warm_start: Mapping[str, npt.ArrayLike] | None = None,
    ) -> Self:
        """Fit on ``answers``; ``answers``, ``gold`` and ``items`` as in :meth:`BaseAggregator.fit_predict`.

        ``warm_start`` maps worker ids to K x K confusion matrices from earlier rounds (rows: true label, columns:
        answer, in label order), used for those workers in the first E-step instead of majority vote."""
        self._check_params()
        coded = encode(answers, self.label_names, gold, items)
        k, n_workers = coded.n_labels, coded.n_workers
        design = coded.design()
        design_t = design.T  # a CSC view: S.T @ x walks S row by row and accumulates into a small matrix
        gold_rows = np.flatnonzero(coded.gold >= 0)
        gold_onehot = np.eye(k)[:, coded.gold[gold_rows]]
        # Posteriors live as (K, items) inside the loop: reductions over K then run across long contiguous rows,
        # which is several times faster than reducing each 3- or 10-wide row of an (items, K) array. The sparse
        # products take and give (items, K) and (columns, K) instead, so that one pass over S serves all K
        # classes (about twice as fast as K passes); the transposed copies between the two cost less than that.

        counts = np.zeros((n_workers, k, k))  # the expected counts of the last M-step

        def m_step(post_t: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
            nonlocal counts
            priors = (post_t.sum(axis=1) + 1.0) / (coded.n_items + k)
            # (S.T @ posteriors)[worker * K + answer, true] -> counts[worker, true, answer]
            by_column = design_t @ np.ascontiguousarray(post_t.T)
            counts = np.ascontiguousarray(by_column.reshape(n_workers, k, k).transpose(0, 2, 1))
            return priors, *self._confusions(counts)

        def e_step(priors: FloatArray, errors: FloatArray) -> FloatArray:
            # log errors[worker, true, answer] as rows matching S's columns (worker * K + answer), one column per
            # true class
            weights = np.log(np.maximum(errors, LOG_FLOOR)).transpose(0, 2, 1).reshape(n_workers * k, k)
            log_post = np.ascontiguousarray((design @ weights).T)
            log_post += np.log(np.maximum(priors, LOG_FLOOR))[:, None]
            log_post -= log_post.max(axis=0)
            post: FloatArray = np.exp(log_post, out=log_post)
            post /= post.sum(axis=0)
            post[:, gold_rows] = gold_onehot
            return post

        votes = coded.counts().astype(np.float64)
        probas_t = np.ascontiguousarray((votes / np.maximum(votes.sum(axis=1, keepdims=True), 1.0)).T)
        probas_t[:, gold_rows] = gold_onehot
        priors, errors, shrinkage = m_step(probas_t)
        if warm_start:
            errors = self._warm_errors(errors, coded.workers, warm_start)
        n_iter = 0
        # SQUAREM: after every two EM steps, jump along their squared extrapolation; the next EM step starts
        # from there. Convergence is only judged on a plain EM step: across a jump a small change would not mean
        # a fixed point.
        history = [(priors, errors)]
        jumped = False
        while n_iter < self.max_iter:
            new = e_step(priors, errors)
            n_iter += 1
            # The previous posteriors are not needed again: their buffer takes the change, saving a temporary.
            change = np.abs(np.subtract(new, probas_t, out=probas_t), out=probas_t)
            converged = not jumped and float(change.max()) < self.tol
            probas_t = new
            priors, errors, shrinkage = m_step(probas_t)
            if converged:
                break
            history.append((priors, errors))
            jumped = len(history) == 3
            if jumped:
                priors, errors = _squarem_jump(history)
                history = [(priors, errors)]
        probas = np.ascontiguousarray(probas_t.T)

        rng = np.random.default_rng(self.random_state)
        codes = argmax_random_ties(probas, rng, atol=TIE_ATOL)
        self._set_results(coded, probas, codes)
        self.priors_ = pd.Series(priors, index=coded.labels, name="prior")
        self.errors_ = errors
        self.shrinkage_ = shrinkage
        self.workers_ = coded.workers
        self.n_iter_ = n_iter
        # What held_out_gold_probas needs: the expected counts and the answers on gold items (few).
        self._counts = counts
        on_gold = coded.gold[coded.item] >= 0
        self._gold_answers = (coded.item[on_gold], coded.worker[on_gold], coded.label[on_gold], coded.gold)
        return self

    def _confusions(self, counts: FloatArray) -> tuple[FloatArray, FloatArray]:
        """The M-step's confusion matrices and shrinkage from expected counts ``counts[w, t, a]``."""
        k = counts.shape[1]
        accuracy = one_coin_accuracy(counts, self.smoothing, self.prior_accuracy)
        if self.shrinkage is None:
            shrinkage = evidence_shrinkage(counts, accuracy)
        else:
            shrinkage = np.full(len(counts), float(self.shrinkage))
        return shrunk_confusion(counts, one_coin_matrices(accuracy, k), shrinkage), shrinkage

    def held_out_gold_probas(self, item_ids: Sequence[str] | pd.Index) -> pd.DataFrame:
        """Posteriors of gold items clamped in this fit, as a fit that had not been given their labels would
        see them: for cross-fitting gold (:func:`labelflow.tasks.calibration.out_of_fold_probas`) without
        refitting.

        The items' one-hot contributions to their workers' expected counts are replaced by their own posteriors,
        and EM runs on these items alone (M-step for their workers, E-step for them) to its fixed point, every
        other item's posterior held at this fit's. What that leaves out is how the other items' posteriors would
        move without these gold labels, a second-order effect (through the workers they share) that only a
        refit sees. Cost: the items' answers, not the crowd's.

        Returns items x labels in ``item_ids``' order; an id that is not an answered gold item of this fit is
        an error.
        """
        ids = pd.Index([str(i) for i in item_ids])
        positions = self.probas_.index.get_indexer(ids)
        item, worker, label, gold = self._gold_answers
        if (positions < 0).any() or (gold[positions] < 0).any():
            bad = [str(i) for i, p in zip(ids, positions, strict=True) if p < 0 or gold[p] < 0][:5]
            raise ValueError(f"item(s) {bad} are not answered gold items of this fit; pass the fit's gold")
        k = self._counts.shape[1]
        local = np.full(len(self.probas_), -1, dtype=np.intp)
        local[positions] = np.arange(len(ids))
        mine = local[item] >= 0
        row, worker, label = local[item[mine]], worker[mine], label[mine]
        involved, worker = np.unique(worker, return_inverse=True)
        # The involved workers' counts without these items, and the class totals without them (priors).
        base = self._counts[involved].copy()
        np.subtract.at(base, (worker, gold[positions][row], label), 1.0)
        n_items = len(self.probas_)
        class_totals = (
            self.priors_.to_numpy() * (n_items + k) - 1.0 - np.bincount(gold[positions], minlength=k)
        )
        every = np.arange(k)[None, :]
        post = np.full((len(ids), k), 1.0 / k)
        for _ in range(max(self.max_iter, 1)):
            counts = base.copy()
            np.add.at(counts, (worker[:, None], every, label[:, None]), post[row])
            errors, _ = self._confusions(counts)
            priors = (class_totals + post.sum(axis=0) + 1.0) / (n_items + k)
            log_post = np.tile(np.log(np.maximum(priors, LOG_FLOOR)), (len(ids), 1))
            np.add.at(log_post, row, np.log(np.maximum(errors[worker, :, label], LOG_FLOOR)))
            new = np.exp(log_post - log_post.max(axis=1, keepdims=True))
            new /= new.sum(axis=1, keepdims=True)
            change = float(np.abs(new - post).max()) if len(ids) else 0.0
            post = new
            if change < self.tol:
                break
        return pd.DataFrame(post, index=ids, columns=self.probas_.columns)

    def held_out_answer_probas(self, answers: pd.DataFrame) -> FloatArray:
        """Each answer's probability under this fit with that answer left out, without refitting: what
        :func:`labelflow.tasks.aggregation.choose_aggregator` scores.

        ``answers`` are the answers this model was fitted on (any row order). For the answer ``(item, worker,
        label)``: the item's posterior without it is the fit's posterior (recomputed from ``priors_`` and
        ``errors_``) divided by the answer's factor ``errors_[worker, :, label]`` and renormalized (a gold item
        keeps its gold label); the worker's confusion matrix is the M-step's, shrinkage choice included, on
        their expected counts less this answer's (the item's posterior, in column ``label``); and the item's other
        answers' workers are re-estimated once (their shrinkage held) with the item counted at its posterior
        without the answer, which is then recomputed from them. The result is ``Σ_t P(t | the item's other
        answers) errors'[t, label]``. What it leaves out is how the other items' posteriors and the class priors
        would move without the answer (through the workers they share), as in :meth:`held_out_gold_probas`: on
        crowds with few answers per item and many labels a refit can flip items, and this is then optimistic
        for the weakly shrunk models (choice.py's docstring). On gold items nothing else moves, and it is what a
        refit without the answer gives. A worker with no other answer is predicted as the crowd's
        average worker (their confusion matrices weighted by answers). Returns one probability per row of
        ``answers``.
        """
        k = len(self.probas_.columns)
        coded = encode(answers, list(self.probas_.columns), None)
        item = self.probas_.index.get_indexer(coded.items)[coded.item]
        worker = self.workers_.get_indexer(coded.workers)[coded.worker]
        label = coded.label
        if (item < 0).any() or (worker < 0).any():
            raise ValueError(
                "answers must be the answers this model was fitted on (an item or worker is new)"
            )
        gold = self._gold_answers[3][item]
        own = np.log(np.maximum(self.errors_[worker, :, label], LOG_FLOOR))  # answers x K
        log_post = np.log(np.maximum(self.priors_.to_numpy(), LOG_FLOOR)) + np.stack(
            [np.bincount(item, weights=own[:, t], minlength=len(self.probas_)) for t in range(k)], axis=1
        )
        rest = log_post[item] - own
        fitted = self.probas_.to_numpy()  # the posteriors the expected counts were summed from
        # The item's other answers were counted, in their workers' expected counts, at the item's posterior
        # with this answer; a refit counts them at the posterior without it. One step of that: their workers'
        # matrices from counts at the posterior without the answer (shrinkage held at the fit's), on items
        # with at most PAIRED_ANSWERS answers.
        left, right = answer_pairs(item, len(self.probas_))
        first = _normalized(rest)
        first[gold >= 0] = np.eye(k)[gold[gold >= 0]]
        moved = np.zeros((len(label), k))
        chunk = max(1, 2**21 // (k * k))  # pairs (or answers) x K x K floats at a time: at most 16 MB
        for start in range(0, len(left), chunk):
            a, b = left[start : start + chunk], right[start : start + chunk]
            rows = np.arange(len(a))
            counts = self._counts[worker[b]]  # a copy (fancy indexing)
            counts[rows, :, label[b]] -= fitted[item[a]] - first[a]
            counts = np.maximum(counts, 0.0)  # the floor absorbs rounding only
            accuracy = one_coin_accuracy(counts, self.smoothing, self.prior_accuracy)
            errors = shrunk_confusion(counts, one_coin_matrices(accuracy, k), self.shrinkage_[worker[b]])
            change = np.log(np.maximum(errors[rows, :, label[b]], LOG_FLOOR)) - own[b]
            for t in range(k):
                moved[:, t] += np.bincount(a, weights=change[:, t], minlength=len(label))
        post = _normalized(rest + moved)
        post[gold >= 0] = np.eye(k)[gold[gold >= 0]]
        per_worker = np.bincount(worker, minlength=len(self.workers_))
        probas = np.empty(len(label))
        for start in range(0, len(label), chunk):
            part = slice(start, start + chunk)
            rows = np.arange(len(label[part]))
            counts = self._counts[worker[part]]
            counts[rows, :, label[part]] -= fitted[item[part]]
            errors, _ = self._confusions(np.maximum(counts, 0.0))
            probas[part] = np.einsum("nt,nt->n", post[part], errors[rows, :, label[part]])
        alone = per_worker[worker] < 2
        average = np.tensordot(per_worker / max(int(per_worker.sum()), 1), self.errors_, axes=1)
        probas[alone] = np.einsum("nt,tn->n", post[alone], average[:, label[alone]])
        return probas

    def _warm_errors(
        self, errors: FloatArray, workers: pd.Index, warm_start: Mapping[str, npt.ArrayLike]
    ) -> FloatArray:
        k = errors.shape[1]
        warmed = errors.copy()
        for worker_id, matrix in warm_start.items():
            position = workers.get_indexer(pd.Index([str(worker_id)]))[0]
            if position < 0:
                continue  # a worker of earlier rounds with no answers in this fit
            values = np.asarray(matrix, dtype=np.float64)
            if values.shape != (k, k) or not np.all(np.isfinite(values)) or (values < 0).any():
                raise ValueError(
                    f"warm_start[{worker_id!r}] must be a {k} x {k} matrix of non-negative numbers (rows: true "
                    f"label, columns: answer, in label_names order), got shape {values.shape}"
                )
            sums = values.sum(axis=1, keepdims=True)
            warmed[position] = np.divide(values, sums, out=np.full((k, k), 1.0 / k), where=sums > 0)
        return warmed


class OneCoinDawidSkene(DawidSkene):
    """One-coin Dawid-Skene: each worker is right with one probability whatever the class, and otherwise
    answers any other label uniformly — one parameter per worker instead of K(K-1).

    The one-coin special case of Dawid & Skene (1979), as in Karger, Oh & Shah (2011) and crowd-kit's
    ``OneCoinDawidSkene``. It is :class:`DawidSkene` with ``shrinkage = inf``: the same EM, priors, gold
    clamping, warm start and attributes. Calibrated on one-coin crowds, blind to class-specific confusion.

    Parameters
    ----------
    label_names, max_iter, tol, smoothing, prior_accuracy, random_state
        As :class:`DawidSkene`.

    Examples
    --------
    >>> import pandas as pd
    >>> from labelflow import OneCoinDawidSkene
    >>> answers = pd.DataFrame({"task": ["t1", "t1", "t1", "t2", "t2", "t2"],
    ...                         "worker": ["a", "b", "c", "a", "b", "c"],
    ...                         "label": ["yes", "yes", "no", "no", "no", "no"]})
    >>> model = OneCoinDawidSkene().fit(answers)
    >>> model.labels_.to_dict()
    {'t1': 'yes', 't2': 'no'}
    >>> bool(model.probas_.sum(axis=1).round(12).eq(1.0).all())
    True
    """

    def __init__(
        self,
        label_names: Sequence[str] | None = None,
        *,
        max_iter: int = 100,
        tol: float = 1e-3,
        smoothing: float = 2.0,
        prior_accuracy: float = 0.7,
        random_state: int = 0,
    ) -> None:
        super().__init__(
            label_names,
            max_iter=max_iter,
            tol=tol,
            shrinkage=float("inf"),
            smoothing=smoothing,
            prior_accuracy=prior_accuracy,
            random_state=random_state,
        )
