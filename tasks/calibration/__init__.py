"""Calibration of an aggregator's confidence from gold items, cross-fitted, and the measures that judge it.

An aggregator's posteriors (``probas_``) are not probabilities of being right on real crowds: fitted on all
answers, the default Dawid-Skene is ~0.99 sure where it is 0.65-0.94 right. Gold items — items whose
label is known and that real workers answered, drawn *at random* — show how far off it is.
:func:`calibrate_from_gold`

1. splits the answered gold into ``n_folds`` folds and, for each fold, gets the held-out gold items' posteriors
   from a fit with only the *other* folds' gold clamped (cross-fitting: no gold item's posterior has seen its
   own label, just as no unlabelled item's has). Dawid-Skene gives them from its fit with all gold clamped
   (:meth:`~labelflow.tasks.aggregation.DawidSkene.held_out_gold_probas`, EM rerun on the fold's items alone),
   so calibrating costs one fit; any other aggregator is refitted per fold;
2. fits a calibration map (:class:`CalibrationMap`) from those out-of-fold posteriors to the gold labels by
   minimizing the negative log-likelihood;
3. applies the map to every item's posteriors from one fit with all gold clamped (gold items stay one-hot).

The map is ``p' = (1 - eps) * softmax(log p / T) + eps / K``: a temperature ``T`` on the log-posteriors, mixed
with the uniform distribution. The temperature shrinks the log-odds of every item alike; the uniform share
``eps`` is what an item the aggregator is "100% sure" of keeps for being wrong, which no temperature can give it
(on a crowd where 39 workers answered each item the log-odds run to hundreds of nats). By default
(``"averaged_temperature_uniform"``) the map is not the single most likely ``(T, eps)`` but their average over
the posterior given the gold (a 40 x 31 grid: flat in ``log T``; on ``eps`` the prior below), fitted to whether
each gold item's chosen label is right (the top-label likelihood). Fifty gold items are not enough to pin
``eps``, and the single best fit put it at 0 on most draws of dog, face and labelme, which sent items ~0.88
right to confidence >= 0.95; the average keeps the plausible ``eps > 0``.

With 20-30 gold items the prior on ``eps`` matters as much as the gold: the posterior mean of ``eps`` caps every
sure item's confidence at ``1 - r`` (``r = eps (K - 1) / K``, the share of sure items that are wrong). The prior
is on ``r``, Beta(1, 3) over ``[0, 1/4]`` (mean 0.11; the measured crowds' sure items are .02-.26 wrong): the
same whatever the number of labels, and leaning toward the small lapses most crowds show. It was flat on
``eps`` over ``[0, 1/2]`` before, which let ``r`` reach .45 with 10 labels and left the demo's 27 gold items
mapping every label to <= 0.84 (below the redundancy target 0.875) where the labels were .94 right.

How the family, the objective and the bucket prior were chosen (``python benchmarks/calibration.py --develop``
prints the figures): on *development* draws only — gold drawn with seeds 0-9, n = 20, 50, 100 gold items, the
six real crowds of ``../shared/data`` — never on the reported draws (seeds 100-119 of
``benchmarks/calibration.py``). Pooled ECE of the non-gold items, mean over the six crowds:

=============================================  =====  =====  =====  ==================
candidate (objective: true label unless "top")  n=20   n=50  n=100  labelme, n=50 / 100
=============================================  =====  =====  =====  ==================
uncalibrated                                   .142   .139   .146   .168 / .170
temperature only                               .043   .033   .035   .072 / .057
temperature + uniform share                    .046   .031   .031   .074 / .052
  + temperature per answer count, prior sd .25 .045   .030   .030   .071 / .049
  + temperature per answer count, prior sd .5  .044   .030   .029   .070 / .043
  + temperature per answer count, prior sd 1   .045   .030   .029   .071 / .041
temperature + uniform share, top               .051   .027   .025   .050 / .028
per answer count (sd .5) + uniform, top        .049   .027   .026   .050 / .036   <- default
per answer count (sd 1) + uniform, top         .049   .026   .026   .048 / .035
=============================================  =====  =====  =====  ==================

(the table above was the first selection, on seeds 0-9; "<- default" marks the map then chosen.) The second
selection compared that map with the posterior-averaged one on seeds 0-19 (``/ right@.95 (items)`` pooled):

====================================  =========  =========  =========  ===================================
candidate (top-label objective)        n=20       n=50       n=100     right@.95 at n=50: dog / face / labelme
====================================  =========  =========  =========  ===================================
per answer count (sd .5) + uniform     .042       .023       .023      .901 (1634) / .880 (274) / .886 (2166)
averaged temperature + uniform         .040       .020       .022      none at >= .95 on the three
====================================  =========  =========  =========  ===================================

The averaged map is as good or better on mean ECE at every n and on four of six crowds at n = 50 (worse on face
.011 -> .017 and sentiment_polarity .016 -> .019), and items at >= 0.95 are then .959 right on product and .948
on sentiment_polarity; on dog, face and labelme no item reaches 0.95, which is what their gold shows (items the
aggregator is sure of are ~.86-.90 right there). It became the default.

The third selection, of the prior on ``eps`` (seeds 0-19, every n; ``benchmarks/README.md`` has the per-crowd
table): flat on ``eps`` (the default then), Jeffreys, flat in ``log eps``, flat on ``r`` over ``[0, 1/4]`` and
Beta(1, b) on ``r`` over ``[0, 1/4]`` for b = 2..6. Mean ECE falls as b grows (n = 20: .036 flat on ``eps``,
.030 flat on ``r``, .025 at b = 3, .023 at b = 5), but from b = 4 on, labelme's items at >= 0.95 are .88 right
(195 or more pooled at n = 50); b = 3, the strongest prior that keeps every crowd's items at >= 0.95 at least
.94 right wherever 100 are pooled (n >= 50), became the default.

(duck has 108 items, so no n = 100 there; the n = 100 mean is over five crowds.) What the figures say:

- One temperature does most of the work (.14 -> .03-.04). The uniform share pays where the aggregator is sure
  and wrong (sentiment_polarity .023 -> .013 and product .023 -> .007 at n = 50 / 100) and costs little at
  n = 20 (face .019 -> .029), where 20 gold items rarely show a confident error.
- Buckets by answer count only act on labelme (every other crowd has near-constant answers per item), where
  accuracy does not rise with answers (.81 / .79 / .77 at 1 / 2 / 3 answers) but the posterior does.
- Fitting to the chosen label's correctness instead of the full label distribution pays on labelme's 8 labels
  (.070 -> .050 at n = 50) and on dog at n >= 50, and costs at n = 20 on dog and face (.048 -> .062,
  .029 -> .049): with 20 gold items there are only a few errors to learn from.
- Leave-one-crowd-out (the candidate with the lowest mean over the other five crowds and all n): "per answer
  count (sd .5) + uniform, top" for five held-out crowds; without labelme, "per answer count (sd .5) +
  uniform" (true-label objective) — the top-label objective's advantage comes from labelme, so labelme's
  reported figure is not a leave-one-crowd-out one (its development and reported draws are disjoint).

A bootstrap of the gold (20 resampled fits of the per-answer-count map, probabilities averaged) lowered ECE a
little but left right@.95 at .903 / .884 / .885 on dog / face / labelme: resamples of a gold set without a
confident error still have none. A Beta prior on ``eps`` (mode .05, 10-100 pseudo-items) did not fix it either.

This package is pure: no Prefect, no I/O except :func:`reliability_plot`, which writes the PNG it is asked for.
``reliability.py`` holds the measures (ECE, its floor, the diagram and its plot), ``maps.py`` the map and its
fit; this module the cross-fitting on gold.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt
import pandas as pd

from labelflow.tasks.calibration.maps import (
    ANSWER_BUCKETS,
    BUCKET_PRIOR_SD,
    DEFAULT_EPS_PRIOR,
    DEFAULT_FAMILY,
    DEFAULT_OBJECTIVE,
    MIN_GOLD,
    CalibrationMap,
    EpsPrior,
    Family,
    Objective,
)
from labelflow.tasks.calibration.reliability import (
    IntArray,
    ece_floor,
    expected_calibration_error,
    reliability_diagram,
    reliability_plot,
)

__all__ = [
    "ANSWER_BUCKETS",
    "BUCKET_PRIOR_SD",
    "DEFAULT_EPS_PRIOR",
    "DEFAULT_FAMILY",
    "DEFAULT_OBJECTIVE",
    "MIN_GOLD",
    "Calibration",
    "CalibrationMap",
    "CrossFittable",
    "EpsPrior",
    "Family",
    "GoldAggregator",
    "Objective",
    "answers_per_item",
    "calibrate_from_gold",
    "ece_floor",
    "expected_calibration_error",
    "out_of_fold_probas",
    "reliability_diagram",
    "reliability_plot",
]


class GoldAggregator(Protocol):
    """An aggregator that can clamp gold items and exposes its posteriors (``DawidSkene``, ``MajorityVote``...)."""

    @property
    def probas_(self) -> pd.DataFrame: ...

    @property
    def labels_(self) -> pd.Series: ...

    @property
    def n_answers_(self) -> pd.Series: ...

    def fit(self, answers: pd.DataFrame, gold: pd.Series | None = None) -> object: ...


@dataclass(frozen=True)
class Calibration:
    """What :func:`calibrate_from_gold` found.

    Attributes
    ----------
    probas
        Items x labels: calibrated posteriors of every answered item (uncalibrated when ``calibrated`` is
        False); gold items one-hot on their gold label.
    raw_probas
        The same items' posteriors before calibration (the fit with all gold clamped).
    labels
        Each item's label from that fit (calibration does not change it).
    calibrated
        Whether a map was fitted; ``reason`` says why not.
    map
        The fitted map (the identity when not calibrated).
    n_gold
        Answered gold items.
    ece_before, ece_after
        Out-of-fold ECE on the gold items before and after calibration; "after" is nested-cross-fitted (each
        fold mapped by a map fitted on the other folds), so it is an honest estimate, not a training error.
    threshold, share_right_at_threshold, n_at_threshold
        Of the gold items whose out-of-fold calibrated confidence is at least ``threshold``, the share right
        and their number.
    out_of_fold
        Per answered gold item: ``item_id``, ``gold``, ``label`` (out of fold), ``confidence_before``,
        ``confidence_after``, ``correct`` — the data behind a reliability plot.
    gold_confidence
        Per answered gold item: ``item_id``, ``confidence`` — its out-of-fold posterior mapped by ``map`` (the
        confidence it would have as an item that is not gold, raw when not calibrated) — and ``n_answers``: what
        adaptive redundancy reads to ask gold as it asks the other items.
    """

    probas: pd.DataFrame
    raw_probas: pd.DataFrame
    labels: pd.Series
    calibrated: bool
    reason: str
    map: CalibrationMap
    n_gold: int
    ece_before: float
    ece_after: float
    threshold: float
    share_right_at_threshold: float
    n_at_threshold: int
    out_of_fold: pd.DataFrame = field(repr=False)
    gold_confidence: pd.DataFrame = field(repr=False)


def answers_per_item(answers: pd.DataFrame, items: pd.Index) -> pd.Series:
    """How many answers each of ``items`` has (0 for none), by ``item_id`` as a string."""
    counts = answers["item_id"].astype(str).value_counts()
    return counts.reindex(items, fill_value=0).astype(np.int64)


def _fold_of(n: int, n_folds: int, rng: np.random.Generator) -> IntArray:
    return np.asarray(rng.permutation(np.arange(n) % n_folds), dtype=np.intp)


@runtime_checkable
class CrossFittable(Protocol):
    """A fitted aggregator that gives its clamped gold items' posteriors as a fit without their labels would
    (:meth:`labelflow.tasks.aggregation.DawidSkene.held_out_gold_probas`), instead of being refitted."""

    def held_out_gold_probas(self, item_ids: pd.Index) -> pd.DataFrame: ...


def out_of_fold_probas(
    answers: pd.DataFrame,
    gold: pd.Series,
    make_aggregator: Callable[[], GoldAggregator],
    folds: npt.ArrayLike,
    *,
    fitted: object | None = None,
) -> pd.DataFrame:
    """Each gold item's posteriors from a fit that clamps only the gold of the *other* folds.

    ``gold`` (Series ``item_id -> label``, every item answered) and ``folds`` (a fold number per gold item,
    ``0..n_folds-1``) are aligned. When ``fitted`` — the aggregator fitted with all of ``gold`` clamped — is
    :class:`CrossFittable`, each fold's items come from it (a local refit of those items alone); otherwise the
    aggregator is fitted once per fold. Returns gold items x labels, in ``gold``'s order.
    """
    fold_of = np.asarray(folds, dtype=np.intp)
    if fold_of.shape != (len(gold),):
        raise ValueError(f"folds must give one fold per gold item: {fold_of.shape} for {len(gold)} items")
    item_ids = pd.Index([str(i) for i in gold.index])
    parts = []
    for fold in np.unique(fold_of):
        held_out = fold_of == fold
        if isinstance(fitted, CrossFittable):
            parts.append(fitted.held_out_gold_probas(item_ids[held_out]))
            continue
        model = make_aggregator()
        model.fit(answers, gold[~held_out])
        parts.append(model.probas_.reindex(item_ids[held_out]))
    return pd.concat(parts).loc[item_ids]


def calibrate_from_gold(
    answers: pd.DataFrame,
    gold: pd.Series,
    make_aggregator: Callable[[], GoldAggregator],
    *,
    family: Family = DEFAULT_FAMILY,
    objective: Objective = DEFAULT_OBJECTIVE,
    n_folds: int = 5,
    min_gold: int = MIN_GOLD,
    threshold: float = 0.95,
    bins: int = 10,
    random_state: int = 0,
) -> Calibration:
    """Calibrate an aggregator's posteriors on gold items drawn at random, cross-fitted.

    Parameters
    ----------
    answers
        The answer contract (``item_id, worker_id, label``), gold items' answers included.
    gold
        Series ``item_id -> label`` of gold items *drawn at random* (hand-picked or escalated items are not a
        sample of anything and would bias the map). Gold items nobody answered are ignored.
    make_aggregator
        Returns a fresh, unfitted aggregator. It is fitted once with all the gold clamped; the gold's
        cross-fitted posteriors then come from that fit when it is :class:`CrossFittable` (Dawid-Skene),
        from ``n_folds`` more fits otherwise.
    family, objective
        The map and what it is fitted to (:meth:`CalibrationMap.fit`); the defaults were chosen on development
        draws (module docstring).
    n_folds
        Cross-fitting folds (at most the number of answered gold items).
    min_gold
        Fewer answered gold items and the posteriors are returned uncalibrated, with ``calibrated=False``.
    threshold
        Confidence at which :attr:`Calibration.share_right_at_threshold` is measured (the redundancy target).
    bins
        Equal-width bins of the ECE.
    random_state
        Seeds the fold assignment.

    Returns
    -------
    Calibration
    """
    if n_folds < 2:
        raise ValueError(f"n_folds must be at least 2, got {n_folds}")
    full = make_aggregator()
    full.fit(answers, gold)
    raw = full.probas_
    labels_index = raw.columns
    gold_labels = pd.Series(gold.astype(str).to_numpy(), index=pd.Index([str(i) for i in gold.index]))
    gold_labels = gold_labels[~gold_labels.index.duplicated()]
    answered = gold_labels[raw.index.get_indexer(gold_labels.index) >= 0]  # isin(raw.index) lists every id
    n_gold = len(answered)
    n_answers = full.n_answers_.reindex(raw.index, fill_value=0)
    gold_n_answers = n_answers.loc[answered.index].to_numpy()
    # Cross-fitted even when too few to calibrate: adaptive redundancy reads each gold item's confidence as if
    # it were not gold, calibrated or not.
    folds = _fold_of(n_gold, max(min(n_folds, n_gold), 1), np.random.default_rng(random_state))
    oof = np.empty((0, len(labels_index)))
    if n_gold:
        oof = out_of_fold_probas(answers, answered, make_aggregator, folds, fitted=full).to_numpy()

    def gold_confidence(calibration_map: CalibrationMap) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "item_id": answered.index.to_numpy(),
                "confidence": calibration_map.apply(oof, gold_n_answers).max(axis=1),
                "n_answers": gold_n_answers,
            }
        )

    identity = CalibrationMap()
    if n_gold < max(min_gold, n_folds):
        return Calibration(
            probas=raw,
            raw_probas=raw,
            labels=full.labels_,
            calibrated=False,
            reason=f"{n_gold} answered gold item(s), fewer than the {max(min_gold, n_folds)} a calibration needs",
            map=identity,
            n_gold=n_gold,
            ece_before=float("nan"),
            ece_after=float("nan"),
            threshold=threshold,
            share_right_at_threshold=float("nan"),
            n_at_threshold=0,
            out_of_fold=pd.DataFrame(),
            gold_confidence=gold_confidence(identity),
        )

    truth = labels_index.get_indexer(pd.Index(answered.to_numpy()))
    calibration_map = CalibrationMap.fit(oof, truth, family, gold_n_answers, objective=objective)
    # Nested: each fold's gold mapped by a map that never saw that fold, for an honest "after".
    oof_after = np.empty_like(oof)
    for fold in range(n_folds):
        held_out = folds == fold
        fold_map = CalibrationMap.fit(
            oof[~held_out], truth[~held_out], family, gold_n_answers[~held_out], objective=objective
        )
        oof_after[held_out] = fold_map.apply(oof[held_out], gold_n_answers[held_out])

    predicted = oof.argmax(axis=1)
    correct = predicted == truth
    conf_before = oof.max(axis=1)
    conf_after = oof_after[np.arange(n_gold), predicted]
    sure = conf_after >= threshold

    calibrated = pd.DataFrame(
        calibration_map.apply(raw.to_numpy(), n_answers.to_numpy()), index=raw.index, columns=labels_index
    )
    gold_rows = calibrated.index.isin(answered.index)
    calibrated.loc[gold_rows] = raw.loc[gold_rows].to_numpy()  # clamped: the gold label, one-hot
    return Calibration(
        probas=calibrated,
        raw_probas=raw,
        labels=full.labels_,
        calibrated=True,
        reason="",
        map=calibration_map,
        n_gold=n_gold,
        ece_before=expected_calibration_error(conf_before, correct, bins),
        ece_after=expected_calibration_error(conf_after, correct, bins),
        threshold=threshold,
        share_right_at_threshold=float(correct[sure].mean()) if sure.any() else float("nan"),
        n_at_threshold=int(sure.sum()),
        out_of_fold=pd.DataFrame(
            {
                "item_id": answered.index.to_numpy(),
                "gold": answered.to_numpy(),
                "label": labels_index.take(predicted).to_numpy(),
                "confidence_before": conf_before,
                "confidence_after": conf_after,
                "correct": correct,
            }
        ),
        gold_confidence=gold_confidence(calibration_map),
    )
