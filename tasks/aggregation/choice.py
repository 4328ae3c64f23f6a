"""Choosing the crowd model by evidence: which aggregator best predicts answers (and gold) it did not see.

Every candidate is a generative model of the answers: given an item's true label and the worker, a distribution
over what the worker answers. So each one can be asked to *predict* an answer held out of its fit, and the one
that predicts real answers best is the one whose picture of the crowd (identical workers, one-coin workers,
class confusion, item difficulty) is closest to this crowd's. :func:`choose_aggregator`

1. assigns every answer of an item with at least two answers to one of ``n_folds`` folds, spread so that each
   fold holds out about ``1 / n_folds`` of each item's answers and leaves it at least one (items with one answer
   are never held out: there is nothing to predict them from but the class priors);
2. per fold and candidate, fits on the other answers, with the gold of the other folds clamped, and scores
   ``log P(held-out answer | the item's other answers)`` = ``log Σ_t P(t | rest) P(answer | t, worker)``, and,
   for the fold's gold items, ``log P(gold label | rest)``;
3. keeps the default, the shrunk Dawid-Skene, unless the candidate with the largest total (answer and gold
   log-likelihoods are both nats of held-out data) beats it by more than :data:`MARGIN_SE` paired standard errors
   (over items).

Majority vote as a generative model is the crowd of identical one-coin workers (one accuracy for everyone,
fitted as the share of answers agreeing with the vote); its label is the plurality, as majority vote's. A worker
seen only in held-out answers is predicted as the crowd's average worker.

How the rule was fixed: leave-one-crowd-out on the six real crowds of ``../shared/data`` (50 gold items, draws
with seeds 0-4, never the reported seeds), scoring each rule by the accuracy of the model it picks on the
non-gold items. Rules tried: the largest total; the largest answer likelihood; the largest gold likelihood; the
best gold accuracy; simplest within one standard error; the default unless beaten by m = 0, 1, 2, 2.5, 3 or 4
standard errors. Held-out likelihood does not track accuracy everywhere: on labelme (2.5 answers per item) the
identical-workers model (majority vote) predicts held-out answers best by ~66 nats (2.4 standard errors) and
is 1.4 points less accurate than the default; on duck and product full Dawid-Skene predicts best, and is
more accurate on product, less on duck. For five of the six held-out crowds the other five chose m = 4 (without
labelme, m = 2), which is :data:`MARGIN_SE`. The default itself was not chosen on these crowds (see
:class:`~labelflow.tasks.aggregation.DawidSkene`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import pandas as pd
from scipy.special import expit

from labelflow.contracts import ITEM_ID
from labelflow.tasks.aggregation._encoding import (
    LABEL,
    WORKER_ID,
    FloatArray,
    IntArray,
    answer_columns,
    encode,
    gold_labels,
)
from labelflow.tasks.aggregation.dawid_skene import DawidSkene
from labelflow.tasks.aggregation.frame import Aggregator, make_aggregator
from labelflow.tasks.aggregation.glad import GLAD
from labelflow.tasks.aggregation.majority_vote import MajorityVote

# Simplest first: a tie (within one standard error) goes to the earlier one.
CANDIDATES: Final = ("majority_vote", "one_coin_dawid_skene", "dawid_skene", "full_dawid_skene", "glad")
DEFAULT_FOLDS: Final = 3
# Beyond this many answers the choice is made on a random subset of items (with all their answers and gold), to
# bound its cost (15 fits of 200k answers: 12 s of CPU on the 6M-answer synthetic crowd, whatever the crowd's
# size beyond that; benchmarks/README.md). The subset leaves each
# worker fewer answers, which favours the simpler models: a 50k subset of the 6M-answer synthetic one-coin crowd
# (500 answers per worker, ~4 in the subset) chose majority vote; at 200k (~17 per worker) the choice is still
# the right one on both synthetic crowds (one-coin Dawid-Skene on the one-coin crowd, the default on the
# class-confusion one; benchmarks/README.md).
MAX_ANSWERS: Final = 200_000
# The default, and how many paired standard errors of held-out log-likelihood another model must beat it by.
DEFAULT_CHOICE: Final = "dawid_skene"
MARGIN_SE: Final = 4.0
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


def _answer_folds(item: IntArray, n_items: int, n_folds: int, rng: np.random.Generator) -> IntArray:
    """A fold per answer (-1: never held out), spreading each item's answers over the folds."""
    n_answers = np.bincount(item, minlength=n_items)
    order = np.lexsort((rng.random(len(item)), item))  # answers grouped by item, shuffled within it
    starts = np.concatenate([[0], np.cumsum(n_answers)[:-1]])
    rank = np.empty(len(item), dtype=np.intp)
    rank[order] = np.arange(len(item)) - starts[item[order]]
    offset = rng.integers(0, n_folds, n_items)
    folds = np.asarray((rank + offset[item]) % n_folds, dtype=np.intp)
    folds[n_answers[item] < 2] = -1
    return folds


def _answer_probabilities(
    model: Aggregator,
    posteriors: FloatArray,
    crowd_accuracy: float,
    items: pd.Index,
    workers: pd.Index,
    labels: IntArray,
) -> FloatArray:
    """``P(answer | the fitted model)`` of answers ``(item, worker id, label code)``, given the posteriors of
    their items (one row per answer); ``crowd_accuracy`` is majority vote's one accuracy."""
    k = posteriors.shape[1]
    if isinstance(model, DawidSkene):
        position = model.workers_.get_indexer(workers)
        seen = position >= 0
        answered = np.bincount(position[seen], minlength=len(model.workers_))
        average = np.tensordot(answered / max(int(answered.sum()), 1), model.errors_, axes=1)
        errors = np.where(seen[:, None, None], model.errors_[np.maximum(position, 0)], average[None])
        return np.asarray(np.einsum("nt,nt->n", posteriors, errors[np.arange(len(labels)), :, labels]))
    if isinstance(model, GLAD):
        skill = model.alphas_.reindex(workers).fillna(float(model.alphas_.mean())).to_numpy()
        right = expit(skill * model.betas_.reindex(items).to_numpy())
    else:
        right = np.full(len(labels), crowd_accuracy)
    p_label = posteriors[np.arange(len(labels)), labels]
    return np.asarray(p_label * right + (1.0 - p_label) * (1.0 - right) / max(k - 1, 1))


def _posteriors(model: Aggregator, answers: pd.DataFrame, gold: pd.Series | None) -> tuple[FloatArray, float]:
    """The fitted model's posteriors as a generative model's, and majority vote's crowd accuracy (NaN for the
    other models).

    Majority vote's vote shares are not posteriors of anything: its generative model is the crowd of identical
    one-coin workers whose accuracy is the share of answers agreeing with the vote; gold stays one-hot.
    """
    probas = np.asarray(model.probas_.to_numpy(), dtype=np.float64)
    if not isinstance(model, MajorityVote):
        return probas, float("nan")
    k = probas.shape[1]
    codes = model.probas_.columns.get_indexer(pd.Index(answers[LABEL].astype(str)))
    chosen = model.probas_.columns.get_indexer(pd.Index(model.labels_.to_numpy()))
    rows = model.probas_.index.get_indexer(pd.Index(answers[ITEM_ID].astype(str)))
    accuracy = float(np.clip(np.mean(codes == chosen[rows]), 1.0 / k + 1e-3, 1.0 - 1e-3))
    n = model.n_answers_.to_numpy()[:, None].astype(np.float64)
    votes = probas * n
    log_post = votes * np.log(accuracy) + (n - votes) * np.log((1.0 - accuracy) / max(k - 1, 1))
    post = np.exp(log_post - log_post.max(axis=1, keepdims=True))
    post /= post.sum(axis=1, keepdims=True)
    if gold is not None:
        gold_rows = model.probas_.index.isin(pd.Index([str(i) for i in gold.index]))
        post[gold_rows] = probas[gold_rows]
    return post, accuracy


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
        Known labels ``item_id -> label`` of items drawn at random; clamped in the fits and scored out of fold.
    label_names : sequence of str, optional
        Every label a worker may answer; by default every label answered or given as gold.
    candidates : sequence of str
        Method names among :data:`CANDIDATES`, simplest first.
    n_folds : int, default 3
        Folds of held-out answers; every candidate is fitted ``n_folds`` times.
    max_answers : int, default 200,000
        With more answers, the choice is made on the answers of a random subset of items of about this size.
    random_state : int, default 0
        Seeds the folds and the models' tie-breaks.

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
        item_ids = np.asarray(answers[ITEM_ID].unique())
        kept = rng.choice(
            item_ids, size=max(1, int(len(item_ids) * max_answers / len(answers))), replace=False
        )
        answers = answers[answers[ITEM_ID].isin(kept)]
    coded = encode(answers, label_names, gold, None)
    names = list(coded.labels)
    folds = _answer_folds(coded.item, coded.n_items, n_folds, rng)
    gold_rows = np.flatnonzero(coded.gold >= 0)
    gold_fold = rng.permutation(np.arange(len(gold_rows)) % n_folds)
    truth = gold_labels(gold) if gold is not None else pd.Series(dtype=str)
    coded_answers = pd.DataFrame(
        {
            ITEM_ID: coded.items.take(coded.item),
            WORKER_ID: coded.workers.take(coded.worker),
            LABEL: coded.labels.take(coded.label),
        }
    )
    held_out = folds >= 0
    answer_loglik = np.zeros((len(candidates), int(held_out.sum())))
    answer_slot = np.cumsum(held_out) - 1
    gold_loglik = np.zeros((len(candidates), len(gold_rows)))
    gold_right = np.zeros((len(candidates), len(gold_rows)), dtype=bool)
    for fold in range(n_folds):
        test = folds == fold
        train = coded_answers[~test]
        fold_gold = gold_rows[gold_fold == fold]
        clamped = truth.drop(coded.items.take(fold_gold)) if gold is not None else None
        test_items = coded.items.take(coded.item[test])
        for c, name in enumerate(candidates):
            model = make_aggregator(name, names, random_state=random_state)
            model.fit(train, clamped)
            posteriors, crowd_accuracy = _posteriors(model, train, clamped)
            rows = model.probas_.index.get_indexer(test_items)
            p = _answer_probabilities(
                model,
                posteriors[rows],
                crowd_accuracy,
                pd.Index(test_items),
                pd.Index(coded.workers.take(coded.worker[test])),
                coded.label[test],
            )
            answer_loglik[c, answer_slot[test]] = np.log(np.maximum(p, _PROBABILITY_FLOOR))
            if len(fold_gold):
                at = model.probas_.index.get_indexer(coded.items.take(fold_gold))
                slots = np.flatnonzero(gold_fold == fold)
                p_gold = posteriors[at, coded.gold[fold_gold]]
                gold_loglik[c, slots] = np.log(np.maximum(p_gold, _PROBABILITY_FLOOR))
                gold_right[c, slots] = posteriors[at].argmax(axis=1) == coded.gold[fold_gold]
    # Per item: its held-out answers' and gold's log-likelihoods summed, so the paired standard error counts
    # items (the unit the folds drew), not answers.
    per_item = np.zeros((len(candidates), coded.n_items))
    for c in range(len(candidates)):
        per_item[c] = np.bincount(coded.item[held_out], weights=answer_loglik[c], minlength=coded.n_items)
        per_item[c, gold_rows] += gold_loglik[c]
    total = per_item.sum(axis=1)
    best = int(total.argmax())
    gap = total - total[best]
    gap_se = np.sqrt(coded.n_items * (per_item - per_item[best]).var(axis=1))
    default = list(candidates).index(DEFAULT_CHOICE) if DEFAULT_CHOICE in candidates else best
    chosen = best if -gap[default] > MARGIN_SE * gap_se[default] else default
    scores = pd.DataFrame(
        {
            "answer_loglik": answer_loglik.mean(axis=1) if answer_loglik.size else np.nan,
            "gold_loglik": gold_loglik.mean(axis=1) if len(gold_rows) else np.nan,
            "gold_accuracy": gold_right.mean(axis=1) if len(gold_rows) else np.nan,
            "total": total,
            "gap": gap,
            "gap_se": gap_se,
        },
        index=pd.Index(list(candidates), name="method"),
    )
    name = candidates[chosen]
    what = f"held-out answers{' and gold' if len(gold_rows) else ''}"
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
    n_scored = int(held_out.sum())
    reason += f" ({n_scored} held-out answers, {len(gold_rows)} gold items)"
    return ModelChoice(name, scores, n_scored, len(gold_rows), reason)
