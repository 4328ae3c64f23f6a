"""Calibration of an aggregator's confidence from gold items, cross-fitted, and the measures that judge it.

An aggregator's posteriors (``probas_``) are not probabilities of being right on real crowds: fitted on all
answers, the default Dawid-Skene is ~0.99 sure where it is 0.65-0.94 right (issue 14). Gold items — items whose
label is known and that real workers answered, drawn *at random* — show how far off it is.
:func:`calibrate_from_gold`

1. splits the answered gold into ``n_folds`` folds and, for each fold, refits the aggregator with the *other*
   folds' gold clamped, keeping the held-out gold items' posteriors (cross-fitting: no gold item's posterior has
   seen its own label, just as no unlabelled item's has);
2. fits a calibration map (:class:`CalibrationMap`) from those out-of-fold posteriors to the gold labels by
   minimizing the negative log-likelihood;
3. applies the map to every item's posteriors from one fit with all gold clamped (gold items stay one-hot).

The map is ``p' = (1 - eps) * softmax(log p / T) + eps / K``: a temperature ``T`` on the log-posteriors, mixed
with the uniform distribution. The temperature shrinks the log-odds of every item alike; the uniform share
``eps`` is what an item the aggregator is "100% sure" of keeps for being wrong, which no temperature can give it
(on a crowd where 39 workers answered each item the log-odds run to hundreds of nats). By default ``T`` is one
per answer-count bucket (1, 2, 3-4, 5-9, 10+ answers), shrunk towards a common temperature, and the map is
fitted to whether each gold item's chosen label is right (the top-label likelihood), not to its full label
distribution.

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

Known limit (reported draws, n = 50): the pooled ECE is low (.014-.036), but items at calibrated confidence
>= 0.95 are only ~.89 right on dog, face and labelme. They come from the few draws whose 50 gold items held no
confidently wrong item, so ``eps`` was fitted at 0 and the map came out too sharp; a map fitted on few gold items
is uncertain, and a single best fit ignores that. A Beta prior on ``eps`` (mode .05, 10-100 pseudo-items) did
not fix it on the development draws; averaging the calibrated probabilities over the map's uncertainty
(bootstrap of the gold) is the next thing to try.

This module is pure: no Prefect, no I/O except :func:`reliability_plot`, which writes the PNG it is asked for.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Literal, Protocol, Self

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy.optimize import minimize
from scipy.special import log_softmax, logsumexp

__all__ = [
    "ANSWER_BUCKETS",
    "BUCKET_PRIOR_SD",
    "DEFAULT_FAMILY",
    "DEFAULT_OBJECTIVE",
    "MIN_GOLD",
    "Calibration",
    "CalibrationMap",
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

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]
Family = Literal["temperature", "temperature_uniform", "bucket_temperature_uniform"]

Objective = Literal["label", "top_label"]

DEFAULT_FAMILY: Final[Family] = "bucket_temperature_uniform"
DEFAULT_OBJECTIVE: Final[Objective] = "top_label"
# Fewer answered gold items than this and a fitted map is mostly noise: the confidence is reported uncalibrated.
MIN_GOLD: Final = 20
# Bounds of the map. T < 1 sharpens (vote shares of majority vote are underconfident); the upper bound only has
# to exceed what the crowds need (log-odds of hundreds of nats). eps above 0.5 would say the aggregator is
# mostly noise, which no measured crowd came near.
TEMPERATURE_BOUNDS: Final = (0.1, 1000.0)
UNIFORM_WEIGHT_BOUNDS: Final = (0.0, 0.5)
# Lower edges of the answer-count buckets of "bucket_temperature_uniform": 1, 2, 3-4, 5-9 and 10+ answers.
ANSWER_BUCKETS: Final = (1, 2, 3, 5, 10)
# Standard deviation of the prior on a bucket's log-temperature around the global one (chosen on development
# draws among 0.25, 0.5 and 1).
BUCKET_PRIOR_SD: Final = 0.5
# Posteriors of 0 (an underflow, or a vote share nobody chose) become this log-probability before scaling.
_LOG_FLOOR: Final = float(np.log(np.finfo(np.float64).tiny))


class GoldAggregator(Protocol):
    """An aggregator that can clamp gold items and exposes its posteriors (``DawidSkene``, ``MajorityVote``...)."""

    @property
    def probas_(self) -> pd.DataFrame: ...

    @property
    def labels_(self) -> pd.Series: ...

    def fit(self, answers: pd.DataFrame, gold: pd.Series | None = None) -> object: ...


# --------------------------------------------------------------------------------------------- measures


def _bin_of(confidence: FloatArray, bins: int) -> IntArray:
    """Equal-width bin of each confidence: ``[i/bins, (i+1)/bins)``, the last bin closed at 1."""
    return np.asarray(np.clip(np.floor(confidence * bins), 0, bins - 1), dtype=np.intp)


def _as_arrays(confidence: npt.ArrayLike, correct: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    conf = np.asarray(confidence, dtype=np.float64).ravel()
    right = np.asarray(correct, dtype=np.float64).ravel()
    if conf.shape != right.shape:
        raise ValueError(f"confidence and correct differ in length: {conf.size} against {right.size}")
    if conf.size and not ((conf >= 0.0) & (conf <= 1.0)).all():
        raise ValueError("confidence must lie in [0, 1]")
    return conf, right


def expected_calibration_error(confidence: npt.ArrayLike, correct: npt.ArrayLike, bins: int = 10) -> float:
    """Expected calibration error with ``bins`` equal-width bins of confidence.

    Parameters
    ----------
    confidence
        Each item's confidence in its label (top-label probability), in [0, 1].
    correct
        Whether each item's label is right (bool or 0/1).
    bins
        Number of equal-width bins ``[i/bins, (i+1)/bins)``; confidence 1 falls in the last one.

    Returns
    -------
    float
        ``sum_b n_b / n * |accuracy_b - mean confidence_b|``; NaN for no items.
    """
    conf, right = _as_arrays(confidence, correct)
    if conf.size == 0:
        return float("nan")
    which = _bin_of(conf, bins)
    count = np.bincount(which, minlength=bins)
    gap = np.bincount(which, weights=conf - right, minlength=bins)
    return float(np.abs(gap).sum() / conf.size) if count.any() else float("nan")


def ece_floor(confidence: npt.ArrayLike, bins: int = 10, n_sims: int = 200, random_state: int = 0) -> float:
    """The ECE a perfectly calibrated predictor shows on these confidences: mean over ``n_sims`` simulations in
    which each item is right with probability equal to its confidence.

    ECE is biased upwards on finitely many items (every bin's gap is an absolute value of noise), so an ECE is
    only as good as its distance to this floor.
    """
    conf = np.asarray(confidence, dtype=np.float64).ravel()
    if conf.size == 0:
        return float("nan")
    rng = np.random.default_rng(random_state)
    which = _bin_of(conf, bins)
    # All simulations at once: one row of Bernoulli draws per simulation, binned through a shared index.
    right = rng.random((n_sims, conf.size)) < conf
    offsets = (np.arange(n_sims) * bins)[:, None] + which[None, :]
    gap = np.bincount(offsets.ravel(), weights=(conf[None, :] - right).ravel(), minlength=n_sims * bins)
    return float(np.abs(gap.reshape(n_sims, bins)).sum(axis=1).mean() / conf.size)


def reliability_diagram(confidence: npt.ArrayLike, correct: npt.ArrayLike, bins: int = 10) -> pd.DataFrame:
    """Reliability-diagram data: one row per equal-width bin.

    Returns
    -------
    pandas.DataFrame
        Columns ``bin`` (0..bins-1), ``lower``, ``upper`` (the bin's edges), ``mean_confidence``, ``accuracy``
        (NaN in an empty bin) and ``count``.
    """
    conf, right = _as_arrays(confidence, correct)
    which = _bin_of(conf, bins)
    count = np.bincount(which, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_confidence = np.bincount(which, weights=conf, minlength=bins) / count
        accuracy = np.bincount(which, weights=right, minlength=bins) / count
    edges = np.linspace(0.0, 1.0, bins + 1)
    return pd.DataFrame(
        {
            "bin": np.arange(bins),
            "lower": edges[:-1],
            "upper": edges[1:],
            "mean_confidence": mean_confidence,
            "accuracy": accuracy,
            "count": count.astype(np.int64),
        }
    )


def reliability_plot(
    confidence: npt.ArrayLike, correct: npt.ArrayLike, path: Path, *, bins: int = 10, title: str = ""
) -> Path:
    """Draw the reliability diagram (accuracy against mean confidence per bin, counts below) as a PNG at
    ``path`` and return ``path``. Uses matplotlib's Agg canvas directly: no display, no global pyplot state."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    conf, right = _as_arrays(confidence, correct)
    table = reliability_diagram(conf, right, bins)
    filled = table[table["count"] > 0]
    figure = Figure(figsize=(5.0, 5.5))
    FigureCanvasAgg(figure)
    top, bottom = figure.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    top.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="perfectly calibrated")
    top.bar(
        filled["lower"],
        filled["accuracy"],
        width=1.0 / bins,
        align="edge",
        alpha=0.6,
        edgecolor="black",
        label="accuracy",
    )
    top.plot(filled["mean_confidence"], filled["accuracy"], marker="o", color="black", linewidth=1)
    ece = expected_calibration_error(conf, right, bins)
    top.set_title(f"{title} ECE {ece:.3f} on {conf.size} items".strip())
    top.set_ylabel("share right")
    top.set_ylim(0, 1)
    top.legend(loc="upper left")
    bottom.bar(table["lower"], table["count"], width=1.0 / bins, align="edge", edgecolor="black")
    bottom.set_xlabel("confidence")
    bottom.set_ylabel("items")
    bottom.set_xlim(0, 1)
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png", dpi=100)
    return path


# --------------------------------------------------------------------------------------------- the map


def _log_probas(probas: FloatArray) -> FloatArray:
    with np.errstate(divide="ignore"):
        return np.asarray(np.maximum(np.log(probas), _LOG_FLOOR), dtype=np.float64)


def _mapped_log_probas(
    log_probas: FloatArray, temperature: float | FloatArray, uniform_weight: float
) -> FloatArray:
    """``log((1 - eps) * softmax(log p / T) + eps / K)``, computed in log space."""
    scaled = log_softmax(log_probas / temperature, axis=1)
    if uniform_weight <= 0.0:
        return np.asarray(scaled, dtype=np.float64)
    k = log_probas.shape[1]
    return np.asarray(
        np.logaddexp(np.log1p(-uniform_weight) + scaled, np.log(uniform_weight / k)), dtype=np.float64
    )


def _answer_bucket(n_answers: npt.ArrayLike) -> IntArray:
    """Position of each answer count among :data:`ANSWER_BUCKETS` (0 answers counts as the first bucket)."""
    counts = np.asarray(n_answers, dtype=np.float64)
    return np.asarray(np.maximum(np.searchsorted(ANSWER_BUCKETS, counts, side="right") - 1, 0), dtype=np.intp)


@dataclass(frozen=True)
class CalibrationMap:
    """``p' = (1 - uniform_weight) * softmax(log p / T) + uniform_weight / K``; the identity at the defaults.

    ``T`` is ``temperature``, or, when ``bucket_temperatures`` is set, the temperature of the item's
    answer-count bucket (:data:`ANSWER_BUCKETS`; then :meth:`apply` needs each item's answer count). Neither
    part changes which label is most probable.
    """

    temperature: float = 1.0
    uniform_weight: float = 0.0
    bucket_temperatures: tuple[float, ...] = ()

    def item_temperatures(self, n_items: int, n_answers: npt.ArrayLike | None) -> FloatArray:
        """Each item's temperature, as a column to divide its log-posteriors by."""
        if not self.bucket_temperatures:
            return np.full((n_items, 1), self.temperature)
        if n_answers is None:
            raise ValueError("this map has a temperature per answer count: pass each item's n_answers")
        per_bucket = np.asarray(self.bucket_temperatures, dtype=np.float64)
        return per_bucket[_answer_bucket(n_answers)][:, None]

    def apply(self, probas: npt.ArrayLike, n_answers: npt.ArrayLike | None = None) -> FloatArray:
        """Calibrated probabilities of an (items x K) array of posteriors; rows sum to 1. ``n_answers`` (one
        count per item) is needed only by a map with ``bucket_temperatures``."""
        values = np.asarray(probas, dtype=np.float64)
        temperatures = self.item_temperatures(len(values), n_answers)
        return np.exp(_mapped_log_probas(_log_probas(values), temperatures, self.uniform_weight))

    @classmethod
    def fit(
        cls,
        probas: npt.ArrayLike,
        truth: npt.ArrayLike,
        family: Family = DEFAULT_FAMILY,
        n_answers: npt.ArrayLike | None = None,
        *,
        bucket_prior_sd: float = BUCKET_PRIOR_SD,
        objective: Objective = DEFAULT_OBJECTIVE,
    ) -> Self:
        """The map of ``family`` that minimizes a negative log-likelihood under the mapped ``probas`` (items x K)
        of the true label codes ``truth``: of the true label itself (``objective="label"``), or of whether the
        most probable label is the true one (``"top_label"``: the confidence in the chosen label is what
        decisions read, and a multiclass likelihood also spends the map on how the remaining probability is
        spread over the other labels).

        ``"bucket_temperature_uniform"`` fits one ``eps`` and a temperature per answer-count bucket jointly, by
        maximum a posteriori under a normal prior on each ``log T_b`` centred on a free ``log T`` with standard
        deviation ``bucket_prior_sd``: a bucket with few gold items stays near the others' temperature, and a
        bucket without gold gets ``T``. It needs ``n_answers``.
        """
        log_probas = _log_probas(np.asarray(probas, dtype=np.float64))
        codes = np.asarray(truth, dtype=np.intp)

        top = log_probas.argmax(axis=1)

        def nll_sum(rows: IntArray, log_t: float, eps: float) -> float:
            mapped = _mapped_log_probas(log_probas[rows], np.exp(log_t), eps)
            at = np.arange(len(rows))
            if objective == "label":
                return float(-mapped[at, codes[rows]].sum())
            log_top = mapped[at, top[rows]]
            mapped[at, top[rows]] = -np.inf
            log_rest = logsumexp(mapped, axis=1)
            return float(-np.where(codes[rows] == top[rows], log_top, log_rest).sum())

        every = np.arange(len(codes))
        log_t_bounds = (float(np.log(TEMPERATURE_BOUNDS[0])), float(np.log(TEMPERATURE_BOUNDS[1])))
        eps_bounds = UNIFORM_WEIGHT_BOUNDS if family != "temperature" else (0.0, 0.0)
        # A coarse grid first (the NLL is not convex in (T, eps) jointly), then L-BFGS-B from its best point.
        grid = [
            np.array([log_t, eps])
            for log_t in np.linspace(*log_t_bounds, 25)
            for eps in np.unique(np.clip([0.0, 0.01, 0.03, 0.1, 0.3], *eps_bounds))
        ]

        def global_nll(params: FloatArray) -> float:
            return nll_sum(every, float(params[0]), float(params[1]))

        start = min(grid, key=global_nll)
        best = minimize(global_nll, start, method="L-BFGS-B", bounds=[log_t_bounds, eps_bounds])
        log_t, eps = (float(v) for v in (best.x if best.fun <= global_nll(start) else start))
        if family != "bucket_temperature_uniform":
            return cls(temperature=float(np.exp(log_t)), uniform_weight=eps)
        if n_answers is None:
            raise ValueError("family 'bucket_temperature_uniform' needs each gold item's n_answers")
        bucket = _answer_bucket(n_answers)
        filled = np.unique(bucket)
        members = [np.flatnonzero(bucket == b) for b in filled]

        # One uniform share for all buckets and a temperature per filled bucket, jointly; the global temperature
        # is the centre of the buckets' prior (with one bucket filled this is the plain map again).
        def penalized(params: FloatArray) -> float:
            centre, share, per_bucket = float(params[0]), float(params[1]), params[2:]
            fit = sum(nll_sum(rows, float(x), share) for rows, x in zip(members, per_bucket, strict=True))
            return fit + 0.5 * float((((per_bucket - centre) / bucket_prior_sd) ** 2).sum())

        joint = minimize(
            penalized,
            np.array([log_t, eps, *([log_t] * len(filled))]),
            method="L-BFGS-B",
            bounds=[log_t_bounds, eps_bounds, *([log_t_bounds] * len(filled))],
        )
        centre_t, eps = float(joint.x[0]), float(joint.x[1])
        bucket_log_t = np.full(len(ANSWER_BUCKETS), centre_t)
        bucket_log_t[filled] = joint.x[2:]
        return cls(
            temperature=float(np.exp(centre_t)),
            uniform_weight=eps,
            bucket_temperatures=tuple(float(np.exp(x)) for x in bucket_log_t),
        )

    def parameters(self) -> dict[str, float]:
        """The map's parameters by name (``temperature_<k>+`` per answer-count bucket, when fitted)."""
        named = {"temperature": self.temperature, "uniform_weight": self.uniform_weight}
        for low, value in zip(ANSWER_BUCKETS, self.bucket_temperatures, strict=False):
            named[f"temperature_{low}+"] = value
        return named


# --------------------------------------------------------------------------------------------- cross-fitting


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


def answers_per_item(answers: pd.DataFrame, items: pd.Index) -> pd.Series:
    """How many answers each of ``items`` has (0 for none), by ``item_id`` as a string."""
    counts = answers["item_id"].astype(str).value_counts()
    return counts.reindex(items, fill_value=0).astype(np.int64)


def _fold_of(n: int, n_folds: int, rng: np.random.Generator) -> IntArray:
    return np.asarray(rng.permutation(np.arange(n) % n_folds), dtype=np.intp)


def out_of_fold_probas(
    answers: pd.DataFrame,
    gold: pd.Series,
    make_aggregator: Callable[[], GoldAggregator],
    folds: npt.ArrayLike,
) -> pd.DataFrame:
    """Each gold item's posteriors from a fit that clamps only the gold of the *other* folds.

    ``gold`` (Series ``item_id -> label``, every item answered) and ``folds`` (a fold number per gold item,
    ``0..n_folds-1``) are aligned; the aggregator is fitted once per fold. Returns gold items x labels, in
    ``gold``'s order.
    """
    fold_of = np.asarray(folds, dtype=np.intp)
    if fold_of.shape != (len(gold),):
        raise ValueError(f"folds must give one fold per gold item: {fold_of.shape} for {len(gold)} items")
    parts = []
    for fold in np.unique(fold_of):
        held_out = fold_of == fold
        model = make_aggregator()
        model.fit(answers, gold[~held_out])
        parts.append(model.probas_.reindex(gold.index[held_out]))
    return pd.concat(parts).loc[gold.index]


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
        Returns a fresh, unfitted aggregator; it is fitted ``n_folds + 1`` times.
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
    answered = gold_labels[gold_labels.index.isin(raw.index)]
    n_gold = len(answered)
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
        )

    truth = labels_index.get_indexer(pd.Index(answered.to_numpy()))
    folds = _fold_of(n_gold, n_folds, np.random.default_rng(random_state))
    oof = out_of_fold_probas(answers, answered, make_aggregator, folds).to_numpy()
    n_answers = answers_per_item(answers, raw.index)
    gold_n_answers = n_answers.loc[answered.index].to_numpy()

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
    )
