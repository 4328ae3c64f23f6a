"""Choosing the crowd model by evidence: which aggregator best predicts answers (and gold) it did not see.

Every candidate is a generative model of the answers: given an item's true label and the worker, a distribution
over what the worker answers. So each one can be asked to *predict* an answer left out of its fit, and the one
that predicts real answers best is the one whose picture of the crowd (identical workers, one-coin workers,
class confusion, item difficulty) is closest to this crowd's. :func:`choose_aggregator`

1. fits every candidate once, on every answer, with all the gold clamped;
2. scores every answer of an item with at least two answers by ``log P(answer | every other answer)`` =
   ``log Σ_t P(t | the item's other answers) P(answer | t, worker)``, computed from that one fit with the
   answer's own contribution taken out in closed form (below), and every gold item by ``log P(gold label | its
   answers)`` without its label clamped;
3. keeps the default, the shrunk Dawid-Skene, unless the candidate with the largest total (answer and gold
   log-likelihoods are both nats of held-out data) beats it by more than :data:`MARGIN_SE` paired standard errors
   (over items).

Leaving an answer out without refitting:

- **majority vote**, the crowd of identical one-coin workers (one accuracy for everyone: the share of answers
  agreeing with their item's vote, a tie counted by its expected agreement): exactly, the item's votes and the
  accuracy recounted without the answer; gold items likewise without their label.
- **Dawid-Skene** (one-coin, the default, full): :meth:`DawidSkene.held_out_answer_probas` — the item's
  posterior divided by the answer's factor, the worker's confusion matrix re-estimated (the M-step, shrinkage
  choice included) from their expected counts less this answer's, and the item's other answers' workers
  re-estimated once with the item at its posterior without the answer. Exact where nothing else can move (every
  item gold); gold items come from :meth:`DawidSkene.held_out_gold_probas`, in ``n_folds`` folds.
- **GLAD**: one Fisher-scoring step from the fit on the objective without the answer, for the worker's skill
  and the item's easiness (the item's other answers counted at its posterior without the answer), then the
  item's posterior from its other answers at that easiness (the approximate leave-one-out of a one-step Newton
  update; the other workers' skills stay as fitted). Gold items: EM on the item alone, its easiness and posterior,
  the skills as fitted.

What the closed forms leave out is how the *other* items' posteriors would move without the answer, which a
refit sees. For the flexible models that is not small: on a sample of labelme's answers (2.5 per item, 8 labels)
against exact leave-one-out refits, the closed form's mean log-likelihood per answer is higher by .011 (one-coin),
.068 (the default), .170 (full Dawid-Skene) and .061 (GLAD), on sentiment_polarity by .003 (the default) and
.026 (GLAD); the median answer differs by .0001-.026 nats, the mean by a few answers whose item's label a refit
flips. So the scores are optimistic for the models with more parameters, and the margin below is what keeps
that from choosing them on noise.

How the rule was fixed: leave-one-crowd-out on the six real crowds of ``../shared/data`` (50 gold items, draws
with seeds 0-4, never the reported seeds), scoring each rule by the accuracy of the model it picks on the
non-gold items. Rules tried: the largest total; the largest answer likelihood; the largest gold likelihood; the
best gold accuracy; always the default; the default unless beaten by m = 0, 1, 2, 2.5, 3, 4, 6 or 8 standard
errors. With these scores, held-out likelihood picks full Dawid-Skene on labelme (1.5 points more accurate
there than the default), duck and product, and GLAD on sentiment_polarity; for five of the six held-out crowds
the other five chose m = 6 or 8 (tied; for labelme tied with "always the default"; without sentiment_polarity,
m = 2), and the smallest of them is :data:`MARGIN_SE`. With it the default is kept on every development draw
but labelme's, where full Dawid-Skene is chosen. (The refit-based scores of the version before, 3 folds of
held-out answers and 15 fits, chose m = 4 the same way; their labelme answers favoured majority vote.) On 20
draws (seeds 0-19, ``benchmarks/model_choice.py``) the same comparison chooses m = 0, not adopted: it still
misses crowd-kit's mean accuracy on the reported draws (.8414 against .8415), and on the 1M-answer one-coin
synthetic crowd it picks full Dawid-Skene (by 1.5 standard errors), 0.36 points less accurate there than the
default. The default itself was not chosen on these crowds (see :class:`~labelflow.tasks.aggregation.DawidSkene`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy.special import expit, log_expit

from labelflow.contracts import ITEM_ID
from labelflow.tasks.aggregation._encoding import (
    LABEL,
    PAIRED_ANSWERS,
    WORKER_ID,
    Coded,
    FloatArray,
    IntArray,
    _factorize_as_str,
    answer_columns,
    answer_pairs,
    encode,
)
from labelflow.tasks.aggregation.dawid_skene import DawidSkene, _normalized
from labelflow.tasks.aggregation.frame import make_aggregator
from labelflow.tasks.aggregation.glad import _EASINESS_PRIOR, _SKILL_PRIOR, GLAD

# Simplest first: a tie (within one standard error) goes to the earlier one.
CANDIDATES: Final = ("majority_vote", "one_coin_dawid_skene", "dawid_skene", "full_dawid_skene", "glad")
DEFAULT_FOLDS: Final = 3
# Beyond this many answers the choice is made on a random subset of whole workers holding about this many answers
# (their answers on items two of them answered), to bound its cost: on the 6M-answer synthetic crowds (12,000
# workers of 500 answers) that is ~400 workers and 24,000-50,000 scored answers, 0.8-1.1 s of CPU
# (benchmarks/README.md). Whole workers, because what the per-worker models need is each worker's answers: a subset
# of items leaves each worker a few (~17 at 200,000 answers), which favours the simpler models. On both
# synthetic crowds the choice is then the most accurate model or the default (the default on the one-coin crowd,
# 1.1 points more accurate there than one-coin Dawid-Skene; the default, or full Dawid-Skene by 4.5 standard
# errors, on the class-confusion one, where the two are equally accurate).
MAX_ANSWERS: Final = 200_000
# The default, and how many paired standard errors of held-out log-likelihood another model must beat it by.
DEFAULT_CHOICE: Final = "dawid_skene"
MARGIN_SE: Final = 6.0
# Probabilities are floored here before the log, so one impossible answer costs ~14 nats, not infinity.
_PROBABILITY_FLOOR: Final = 1e-6


@dataclass(frozen=True)
class ModelChoice:
    """What :func:`choose_aggregator` found.

    Attributes
    ----------
    method
        The chosen method name (one of :data:`CANDIDATES`; :func:`make_aggregator` builds it).
    scores
        One row per candidate, in :data:`CANDIDATES` order: ``answer_loglik`` (mean log-likelihood per
        held-out answer), ``gold_loglik`` (mean per gold item, NaN without gold), ``gold_accuracy`` (of the
        out-of-fold labels of gold items), ``total`` (summed nats of everything held out), ``gap`` (total
        minus the best total), ``gap_se`` (standard error of that paired difference).
    n_held_out
        Held-out answers scored.
    n_gold
        Gold items scored.
    reason
        One sentence: why this method.
    """

    method: str
    scores: pd.DataFrame
    n_held_out: int
    n_gold: int
    reason: str


def _identical_posteriors(votes: FloatArray, accuracy: FloatArray) -> FloatArray:
    """Posteriors (uniform prior) of items with ``votes`` (items x K) under identical one-coin workers of
    ``accuracy`` (one per row)."""
    k = votes.shape[1]
    n = votes.sum(axis=1, keepdims=True)
    wrong = (1.0 - accuracy) / max(k - 1, 1)
    return _normalized(votes * np.log(accuracy)[:, None] + (n - votes) * np.log(wrong)[:, None])


def _vote_held_out(coded: Coded) -> tuple[FloatArray, FloatArray]:
    """Majority vote as identical one-coin workers, left out exactly: each answer's probability given every
    other answer, and each gold item's posterior without its label.

    The one accuracy is the share of answers agreeing with their item's vote (its gold label on gold items),
    a tie counted by its expected agreement over the random tie-break, which is the item's largest vote
    count; so leaving an answer (or a gold label) out changes it in closed form, and the result is what a
    refit without it gives."""
    k, n_items = coded.n_labels, coded.n_items
    votes = coded.counts().astype(np.float64)
    gold = coded.gold
    is_gold = gold >= 0
    agree = np.where(is_gold, votes[np.arange(n_items), np.maximum(gold, 0)], votes.max(axis=1))
    total_agree, total = float(agree.sum()), len(coded.item)
    low, high = 1.0 / k + 1e-3, 1.0 - 1e-3
    item, label = coded.item, coded.label
    answer = np.arange(len(item))
    rest = votes[item]
    rest[answer, label] -= 1.0
    on_gold = is_gold[item]
    agree_rest = np.where(on_gold, rest[answer, np.maximum(gold[item], 0)], rest.max(axis=1))
    accuracy = np.clip((total_agree - agree[item] + agree_rest) / max(total - 1, 1), low, high)
    post = _identical_posteriors(rest, accuracy)
    post[on_gold] = np.eye(k)[gold[item[on_gold]]]
    right = post[answer, label]
    probas = right * accuracy + (1.0 - right) * (1.0 - accuracy) / max(k - 1, 1)
    rows = np.flatnonzero(is_gold)
    gold_accuracy = np.clip((total_agree - agree[rows] + votes[rows].max(axis=1)) / total, low, high)
    return np.asarray(probas, dtype=np.float64), _identical_posteriors(votes[rows], gold_accuracy)


def _glad_held_out(model: GLAD, coded: Coded) -> tuple[FloatArray, FloatArray]:
    """GLAD left out approximately: each answer's probability given every other answer, and each gold item's
    posterior without its label (module docstring)."""
    k = coded.n_labels
    item, worker, label = coded.item, coded.worker, coded.label
    n_items, n_workers = coded.n_items, coded.n_workers
    answer = np.arange(len(item))
    fit_skill = model.alphas_.reindex(coded.workers).to_numpy()
    fit_log_easiness = np.log(model.betas_.reindex(coded.items).to_numpy())
    log_priors = np.log(model.priors_.to_numpy())
    wrong_share = np.log(max(k - 1, 1))
    easiness = np.exp(fit_log_easiness)[item]
    x = fit_skill[worker] * easiness
    p = expit(x)
    weight = p * (1.0 - p)
    fitted = model.probas_.reindex(coded.items).to_numpy()
    residual = fitted[item, label] - p
    # One Fisher-scoring step from the fit on the objective without the answer: its gradient and expected
    # information less the answer's terms (GLAD's own M-step, glad.py).
    (skill_mean, skill_sd), (easiness_mean, easiness_sd) = _SKILL_PRIOR, _EASINESS_PRIOR
    grad = np.bincount(worker, residual * easiness, n_workers) - (fit_skill - skill_mean) / skill_sd**2
    info = np.bincount(worker, weight * easiness**2, n_workers) + 1.0 / skill_sd**2
    skill = fit_skill[worker] + (grad[worker] - residual * easiness) / (info[worker] - weight * easiness**2)
    per_worker = np.bincount(worker, minlength=n_workers)
    skill[per_worker[worker] < 2] = float(fit_skill.mean())  # a worker with no other answer: the average one
    # The item's posterior without the answer, at the fitted easiness: its own factor taken out.
    log_right, log_wrong = log_expit(x), log_expit(-x) - wrong_share
    own = np.tile(log_wrong[:, None], (1, k))
    own[answer, label] = log_right
    by_item = np.stack([np.bincount(item, own[:, t], n_items) for t in range(k)], axis=1)
    rest = log_priors + by_item[item] - own
    first = _normalized(rest)
    on_gold = coded.gold[item] >= 0
    first[on_gold] = np.eye(k)[coded.gold[item[on_gold]]]
    # The easiness without the answer: its terms out, and the item's other answers' residuals at the posterior
    # without it (a refit's); then the posterior from the other answers at that easiness, over every pair
    # (a, b) of answers of one item with at most PAIRED_ANSWERS answers (beyond, one answer among so many
    # barely moves the easiness and the fitted one is kept).
    left, right = answer_pairs(item, n_items)
    shift = np.bincount(
        left, (fitted[item[right], label[right]] - first[left, label[right]]) * x[right], len(item)
    )
    grad = np.bincount(item, residual * x, n_items) - (fit_log_easiness - easiness_mean) / easiness_sd**2
    info = np.bincount(item, weight * x**2, n_items) + 1.0 / easiness_sd**2
    log_easiness = fit_log_easiness[item] + (grad[item] - residual * x - shift) / (info[item] - weight * x**2)
    pair_x = fit_skill[worker[right]] * np.exp(log_easiness[left])
    pair_wrong = log_expit(-pair_x) - wrong_share
    log_post = rest
    paired = np.bincount(item, minlength=n_items)[item] <= PAIRED_ANSWERS
    log_post[paired] = log_priors + np.bincount(left, pair_wrong, len(item))[paired, None]
    log_post[paired] += np.bincount(
        left * k + label[right], log_expit(pair_x) - pair_wrong, len(item) * k
    ).reshape(-1, k)[paired]
    post = _normalized(log_post)
    post[on_gold] = np.eye(k)[coded.gold[item[on_gold]]]
    chance = expit(skill * np.exp(log_easiness))
    answered = post[answer, label]
    probas = answered * chance + (1.0 - answered) * (1.0 - chance) / max(k - 1, 1)
    return np.asarray(probas, dtype=np.float64), _glad_unclamped(model, coded)


def _glad_unclamped(model: GLAD, coded: Coded) -> FloatArray:
    """Each gold item's GLAD posterior as a fit without its label would see it: EM on the item alone (its
    posterior and one scoring step on its easiness per iteration, the workers' skills held at the fit's)."""
    k = coded.n_labels
    rows = np.flatnonzero(coded.gold >= 0)
    if not len(rows):
        return np.zeros((0, k))
    local = np.full(coded.n_items, -1, dtype=np.intp)
    local[rows] = np.arange(len(rows))
    mine = local[coded.item] >= 0
    item, label = local[coded.item[mine]], coded.label[mine]
    skill = model.alphas_.reindex(coded.workers).to_numpy()[coded.worker[mine]]
    log_priors = np.log(model.priors_.to_numpy())
    log_easiness = np.log(model.betas_.reindex(coded.items).to_numpy()[rows])
    easiness_mean, easiness_sd = _EASINESS_PRIOR
    post = np.full((len(rows), k), 1.0 / k)
    for _ in range(max(model.max_iter, 1)):
        x = skill * np.exp(log_easiness[item])
        log_right, log_wrong = log_expit(x), log_expit(-x) - np.log(max(k - 1, 1))
        log_post = log_priors + np.bincount(item, log_wrong, len(rows))[:, None]
        log_post += np.bincount(item * k + label, log_right - log_wrong, len(rows) * k).reshape(-1, k)
        new = np.exp(log_post - log_post.max(axis=1, keepdims=True))
        new /= new.sum(axis=1, keepdims=True)
        change = float(np.abs(new - post).max()) if len(rows) else 0.0
        post = new
        p = expit(x)
        grad = np.bincount(item, (post[item, label] - p) * x, len(rows))
        grad -= (log_easiness - easiness_mean) / easiness_sd**2
        info = np.bincount(item, p * (1.0 - p) * x**2, len(rows)) + 1.0 / easiness_sd**2
        log_easiness = log_easiness + grad / info
        if change < model.tol:
            break
    return post


def _worker_subset(answers: pd.DataFrame, max_answers: int, rng: np.random.Generator) -> pd.DataFrame:
    """The answers of workers drawn at random until they hold ``max_answers`` answers, on the items at least
    two of them answered (the only answers a choice can score). Workers are drawn whole so that each keeps
    what the full crowd shows of them: a subset of items would leave 12,000 workers a few answers each."""
    worker_codes, _ = _factorize_as_str(answers[WORKER_ID])  # sorted ids: the draw ignores row order
    per_worker = np.bincount(worker_codes)
    order = rng.permutation(len(per_worker))
    drawn = np.zeros(len(per_worker), dtype=bool)
    drawn[order[: int(np.searchsorted(np.cumsum(per_worker[order]), max_answers)) + 1]] = True
    kept = answers[drawn[worker_codes]]
    item_codes, _ = _factorize_as_str(kept[ITEM_ID])
    return kept[np.bincount(item_codes)[item_codes] >= 2]


def _held_out(
    name: str, coded: Coded, answers: pd.DataFrame, truth: pd.Series | None, gold_fold: IntArray, seed: int
) -> tuple[FloatArray, FloatArray]:
    """One candidate fitted once on every answer (all gold clamped): each answer's probability with it left
    out, and each gold item's posterior without its label (gold items in ``coded.gold`` order)."""
    if name == "majority_vote":
        return _vote_held_out(coded)
    model = make_aggregator(name, list(coded.labels), random_state=seed)
    model.fit(answers, truth)
    if isinstance(model, GLAD):
        return _glad_held_out(model, coded)
    assert isinstance(model, DawidSkene)  # every other candidate is one
    gold_ids = coded.items.take(np.flatnonzero(coded.gold >= 0))
    gold_post = np.empty((len(gold_ids), coded.n_labels))
    for fold in np.unique(gold_fold):
        # Gold held out fold by fold, as the calibration cross-fits it (held_out_gold_probas).
        at = gold_fold == fold
        gold_post[at] = model.held_out_gold_probas(gold_ids[at]).to_numpy()
    return model.held_out_answer_probas(answers), gold_post


@dataclass(frozen=True)
class HeldOutScores:
    """Every candidate's log-likelihood of what was held out from it (:func:`held_out_scores`).

    Attributes
    ----------
    candidates
        The method names, one row of each array per name.
    answer_loglik
        Candidates x scored answers: ``log P(answer | every other answer)``.
    answer_item
        The item (code) of each scored answer.
    gold_loglik
        Candidates x gold items: ``log P(gold label | the item's answers)``, the label held out.
    gold_right
        Candidates x gold items: whether the held-out posterior's top label is the gold label.
    gold_item
        The item (code) of each gold item.
    n_items
        Items in the choice (all of them, or the subset's).
    """

    candidates: tuple[str, ...]
    answer_loglik: FloatArray
    answer_item: IntArray
    gold_loglik: FloatArray
    gold_right: npt.NDArray[np.bool_]
    gold_item: IntArray
    n_items: int

    def per_item(self) -> FloatArray:
        """Candidates x items: each item's held-out answers' and gold's log-likelihoods summed, so that a paired
        standard error counts items (answers of one item share its posterior), not answers."""
        per_item = np.zeros((len(self.candidates), self.n_items))
        for c in range(len(self.candidates)):
            per_item[c] = np.bincount(self.answer_item, weights=self.answer_loglik[c], minlength=self.n_items)
            per_item[c, self.gold_item] += self.gold_loglik[c]
        return per_item


def held_out_scores(
    answers: pd.DataFrame,
    gold: pd.Series | None = None,
    *,
    label_names: Sequence[str] | None = None,
    candidates: Sequence[str] = CANDIDATES,
    n_folds: int = DEFAULT_FOLDS,
    max_answers: int = MAX_ANSWERS,
    random_state: int = 0,
) -> HeldOutScores:
    """Steps 1 and 2 of the module docstring: every candidate's held-out answer and gold log-likelihoods
    (parameters as :func:`choose_aggregator`'s)."""
    unknown = [name for name in candidates if name not in CANDIDATES]
    if unknown or not candidates:
        raise ValueError(f"candidates must be among {list(CANDIDATES)}, got {list(candidates)}")
    if n_folds < 2:
        raise ValueError(f"n_folds must be at least 2, got {n_folds}")
    answers = answer_columns(answers)
    rng = np.random.default_rng(random_state)
    if len(answers) > max_answers:
        if label_names is None:  # the labels of all the answers, not only of the subset's
            seen = {str(x) for x in answers[LABEL].unique()}
            label_names = sorted(seen | ({str(x) for x in gold.dropna()} if gold is not None else set()))
        answers = _worker_subset(answers, max_answers, rng)
    coded = encode(answers, label_names, gold, None)
    gold_rows = np.flatnonzero(coded.gold >= 0)
    gold_fold = rng.permutation(np.arange(len(gold_rows)) % n_folds)
    truth = pd.Series(coded.labels.take(coded.gold[gold_rows]), index=coded.items.take(gold_rows))
    coded_answers = pd.DataFrame(
        {
            ITEM_ID: coded.items.take(coded.item),
            WORKER_ID: coded.workers.take(coded.worker),
            LABEL: coded.labels.take(coded.label),
        }
    )
    # Items with one answer are never scored: there is nothing to predict it from but the class priors.
    held_out = np.bincount(coded.item, minlength=coded.n_items)[coded.item] >= 2
    answer_loglik = np.zeros((len(candidates), int(held_out.sum())))
    gold_loglik = np.zeros((len(candidates), len(gold_rows)))
    gold_right = np.zeros((len(candidates), len(gold_rows)), dtype=bool)
    for c, name in enumerate(candidates):
        p, gold_post = _held_out(
            name, coded, coded_answers, truth if len(gold_rows) else None, gold_fold, random_state
        )
        answer_loglik[c] = np.log(np.maximum(p[held_out], _PROBABILITY_FLOOR))
        if len(gold_rows):
            p_gold = gold_post[np.arange(len(gold_rows)), coded.gold[gold_rows]]
            gold_loglik[c] = np.log(np.maximum(p_gold, _PROBABILITY_FLOOR))
            gold_right[c] = gold_post.argmax(axis=1) == coded.gold[gold_rows]
    return HeldOutScores(
        tuple(candidates),
        answer_loglik,
        coded.item[held_out],
        gold_loglik,
        gold_right,
        gold_rows,
        coded.n_items,
    )


def choose_aggregator(
    answers: pd.DataFrame,
    gold: pd.Series | None = None,
    *,
    label_names: Sequence[str] | None = None,
    candidates: Sequence[str] = CANDIDATES,
    n_folds: int = DEFAULT_FOLDS,
    max_answers: int = MAX_ANSWERS,
    random_state: int = 0,
) -> ModelChoice:
    """Pick the aggregator that best predicts held-out answers and gold labels (module docstring).

    Parameters
    ----------
    answers : pandas.DataFrame
        The answer contract (``item_id, worker_id, label``, or crowd-kit's ``task, worker, label``).
    gold : pandas.Series, optional
        Known labels ``item_id -> label`` of items drawn at random; clamped in the fits and each scored without its
        own label.
    label_names : sequence of str, optional
        Every label a worker may answer; by default every label answered or given as gold.
    candidates : sequence of str
        Method names among :data:`CANDIDATES`, simplest first.
    n_folds : int, default 3
        Folds in which the Dawid-Skene models' gold is held out (majority vote and GLAD hold out each gold item
        alone).
    max_answers : int, default 200,000
        With more answers, the choice is made on the answers of random workers holding about this many
        (:data:`MAX_ANSWERS`).
    random_state : int, default 0
        Seeds the subset, the gold folds and the models' tie-breaks.

    Returns
    -------
    ModelChoice

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(0)
    >>> truth = rng.integers(0, 2, 200)
    >>> rows = [(i, w, t if rng.random() < 0.8 else 1 - t) for i, t in enumerate(truth) for w in range(5)]
    >>> answers = pd.DataFrame(rows, columns=["item_id", "worker_id", "label"])
    >>> choice = choose_aggregator(answers, candidates=("majority_vote", "dawid_skene"))
    >>> choice.method in ("majority_vote", "dawid_skene"), list(choice.scores.index)
    (True, ['majority_vote', 'dawid_skene'])
    """
    scored = held_out_scores(
        answers,
        gold,
        label_names=label_names,
        candidates=candidates,
        n_folds=n_folds,
        max_answers=max_answers,
        random_state=random_state,
    )
    per_item = scored.per_item()
    n_gold = len(scored.gold_item)
    total = per_item.sum(axis=1)
    best = int(total.argmax())
    gap = total - total[best]
    gap_se = np.sqrt(scored.n_items * (per_item - per_item[best]).var(axis=1))
    default = list(candidates).index(DEFAULT_CHOICE) if DEFAULT_CHOICE in candidates else best
    chosen = best if -gap[default] > MARGIN_SE * gap_se[default] else default
    scores = pd.DataFrame(
        {
            "answer_loglik": scored.answer_loglik.mean(axis=1) if scored.answer_loglik.size else np.nan,
            "gold_loglik": scored.gold_loglik.mean(axis=1) if n_gold else np.nan,
            "gold_accuracy": scored.gold_right.mean(axis=1) if n_gold else np.nan,
            "total": total,
            "gap": gap,
            "gap_se": gap_se,
        },
        index=pd.Index(list(candidates), name="method"),
    )
    name = candidates[chosen]
    what = f"held-out answers{' and gold' if n_gold else ''}"
    if chosen == default == best:
        reason = f"{name}, the default, predicts {what} best"
    elif chosen == best:
        reason = (
            f"{name} predicts {what} better than the default {candidates[default]} by {-gap[default]:.1f} nats, "
            f"more than {MARGIN_SE:g} standard errors ({gap_se[default]:.1f})"
        )
    else:
        reason = (
            f"{candidates[best]} predicts {what} best, but only {-gap[chosen]:.1f} nats better than the default "
            f"{name}, within {MARGIN_SE:g} standard errors ({gap_se[chosen]:.1f})"
        )
    n_scored = len(scored.answer_item)
    reason += f" ({n_scored} held-out answers, {n_gold} gold items)"
    return ModelChoice(name, scores, n_scored, n_gold, reason)
