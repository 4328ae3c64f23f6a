"""The calibration map: a temperature (per answer-count bucket) mixed with the uniform distribution, fitted at its
most likely parameters or averaged over their posterior under a prior on the uniform share."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal, Self

import numpy as np
import numpy.typing as npt
from scipy.optimize import minimize
from scipy.special import log_softmax, logsumexp

from labelflow.tasks.calibration.reliability import FloatArray, IntArray

Family = Literal[
    "temperature", "temperature_uniform", "bucket_temperature_uniform", "averaged_temperature_uniform"
]


Objective = Literal["label", "top_label"]
EpsPrior = Literal["flat", "jeffreys", "log_flat", "sure_error_flat", "sure_error_beta"]

DEFAULT_FAMILY: Final[Family] = "averaged_temperature_uniform"
DEFAULT_OBJECTIVE: Final[Objective] = "top_label"
DEFAULT_EPS_PRIOR: Final[EpsPrior] = "sure_error_beta"
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
# The "sure_error_*" priors are on r = eps (K - 1) / K, the share of the items the aggregator is sure of that are
# wrong, up to SURE_ERROR_MAX whatever K (a flat prior on eps over UNIFORM_WEIGHT_BOUNDS lets r reach 0.25 with 2
# labels but 0.45 with 10). "sure_error_beta" is Beta(1, SURE_ERROR_BETA) on r (density falling 1.8-fold over
# [0, 1/4], mean 0.11): the strongest of Beta(1, b), b = 2..6, that kept items at >= 0.95 at least 0.94 right
# on every development crowd with 50 and 100 gold items (benchmarks/README.md, calibration).
SURE_ERROR_MAX: Final = 0.25
SURE_ERROR_BETA: Final = 3.0
# The grid over which "averaged_temperature_uniform" integrates: log T uniform over TEMPERATURE_BOUNDS; eps over
# UNIFORM_WEIGHT_BOUNDS ("flat", "jeffreys", "log_flat") or r over [0, SURE_ERROR_MAX] (the "sure_error_*" priors),
# 0 and a geometric grid, each point weighted by its spacing so that the prior has the density it names.
_AVERAGE_LOG_TEMPERATURES: Final = np.linspace(
    np.log(TEMPERATURE_BOUNDS[0]), np.log(TEMPERATURE_BOUNDS[1]), 40
)
_AVERAGE_UNIFORM_WEIGHTS: Final = np.concatenate([[0.0], np.geomspace(0.002, UNIFORM_WEIGHT_BOUNDS[1], 30)])
_AVERAGE_SURE_ERRORS: Final = np.concatenate([[0.0], np.geomspace(0.001, SURE_ERROR_MAX, 30)])
# The averaged map keeps its heaviest grid points up to this share of the posterior mass, at most
# _MAX_COMPONENTS of them (applying it costs one temperature map per component).
_KEPT_MASS: Final = 0.999
_MAX_COMPONENTS: Final = 64
# Posteriors of 0 (an underflow, or a vote share nobody chose) become this log-probability before scaling.
_LOG_FLOOR: Final = float(np.log(np.finfo(np.float64).tiny))


def _eps_grid(prior: EpsPrior, k: int) -> tuple[FloatArray, FloatArray]:
    """The grid of eps a ``k``-label map is averaged over under ``prior``, and each point's log prior weight (a
    one-label map has no wrong label to be sure of: its "sure_error_*" prior falls back to flat in eps)."""
    if prior.startswith("sure_error") and k > 1:
        sure_errors = _AVERAGE_SURE_ERRORS
        epss = sure_errors * k / (k - 1)
        log_weight = np.log(np.gradient(epss))
        if prior == "sure_error_beta":
            log_weight = log_weight + (SURE_ERROR_BETA - 1.0) * np.log1p(-sure_errors)
        return epss, np.asarray(log_weight, dtype=np.float64)
    return _AVERAGE_UNIFORM_WEIGHTS, _eps_log_prior(_AVERAGE_UNIFORM_WEIGHTS, prior)


def _eps_log_prior(epss: FloatArray, prior: EpsPrior = "flat") -> FloatArray:
    """Log prior weight of each grid value of eps on the uneven grid: flat in eps, Jeffreys' Beta(1/2, 1/2)
    (the reference prior of a mixture weight: between flat in eps and flat in log eps), or flat in log eps."""
    spacing = np.log(np.gradient(epss))
    with np.errstate(divide="ignore"):
        log_eps = np.log(epss)
    if prior not in ("jeffreys", "log_flat"):
        return np.asarray(spacing, dtype=np.float64)
    # eps = 0 gets the weight of the grid's first cell, as if it were that cell's lower edge
    log_eps = np.where(np.isfinite(log_eps), log_eps, np.log(epss[1]))
    if prior == "jeffreys":
        return np.asarray(spacing - 0.5 * log_eps - 0.5 * np.log1p(-epss), dtype=np.float64)
    return np.asarray(spacing - log_eps, dtype=np.float64)


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
    answer-count bucket (:data:`ANSWER_BUCKETS`; then :meth:`apply` needs each item's answer count). When
    ``components`` is set (``(weight, T, eps)`` triples, weights summing to 1), the map is their weighted average
    and ``temperature`` and ``uniform_weight`` only summarize it (posterior geometric mean of ``T``, mean of
    ``eps``). None of this changes which label is most probable.
    """

    temperature: float = 1.0
    uniform_weight: float = 0.0
    bucket_temperatures: tuple[float, ...] = ()
    components: tuple[tuple[float, float, float], ...] = ()

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
        log_probas = _log_probas(values)
        if self.components:
            # The average is linear in each component's mixture, so components sharing a temperature share one
            # softmax: sum_j w_j ((1 - eps_j) softmax(log p / T_j) + eps_j / K).
            kept: dict[float, float] = {}
            for weight, temperature, uniform_weight in self.components:
                kept[temperature] = kept.get(temperature, 0.0) + weight * (1.0 - uniform_weight)
            averaged = np.full_like(log_probas, sum(w * e for w, _, e in self.components) / values.shape[1])
            for temperature, weight in kept.items():
                averaged += weight * np.exp(_mapped_log_probas(log_probas, temperature, 0.0))
            return averaged
        temperatures = self.item_temperatures(len(values), n_answers)
        return np.exp(_mapped_log_probas(log_probas, temperatures, self.uniform_weight))

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
        eps_prior: EpsPrior = DEFAULT_EPS_PRIOR,
    ) -> Self:
        """The map of ``family`` that minimizes a negative log-likelihood under the mapped ``probas`` (items x K)
        of the true label codes ``truth``: of the true label itself (``objective="label"``), or of whether the
        most probable label is the true one (``"top_label"``: the confidence in the chosen label is what
        decisions read, and a multiclass likelihood also spends the map on how the remaining probability is
        spread over the other labels).

        ``"averaged_temperature_uniform"`` (the default) does not pick one ``(T, eps)``: it averages the map over
        their posterior (on a grid: flat in ``log T``; ``eps_prior`` on ``eps``), so that a map fitted on few
        gold items carries its uncertainty. Fifty gold items without a confidently wrong one fit ``eps = 0`` at
        their most likely point, and such a map sends items at 0.88 accuracy to confidence >= 0.95; the average
        keeps the plausible ``eps > 0`` in the map. ``eps_prior``: ``"sure_error_beta"`` (the default) is
        Beta(1, :data:`SURE_ERROR_BETA`) on the share ``eps (K - 1) / K`` of sure items that are wrong, up to
        :data:`SURE_ERROR_MAX`; ``"sure_error_flat"`` flat on that share; ``"flat"`` (the default before),
        ``"jeffreys"`` and ``"log_flat"`` on ``eps`` over :data:`UNIFORM_WEIGHT_BOUNDS`.

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
        if family == "averaged_temperature_uniform":
            return cls._averaged(log_probas, codes, objective, eps_prior)
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

    @classmethod
    def _averaged(
        cls, log_probas: FloatArray, codes: IntArray, objective: Objective, eps_prior: EpsPrior
    ) -> Self:
        """The map averaged over the posterior of ``(log T, eps)`` on the grid, given the gold items'
        log-posteriors and true label codes."""
        n, k = log_probas.shape
        log_ts = _AVERAGE_LOG_TEMPERATURES
        epss, log_prior = _eps_grid(eps_prior, k)
        at = np.arange(n)
        top = log_probas.argmax(axis=1)
        with np.errstate(divide="ignore"):
            log_kept, log_eps = np.log1p(-epss)[:, None], np.log(epss)[:, None]
        log_post = np.empty((len(log_ts), len(epss)))
        for i, log_t in enumerate(log_ts):
            scaled = log_softmax(log_probas / np.exp(log_t), axis=1)
            if objective == "label":
                right = np.ones(n, dtype=bool)
                log_hit, log_miss = scaled[at, codes], np.zeros(n)
                miss_share = 0.0
            else:
                right = codes == top
                log_hit = scaled[at, top]
                others = scaled.copy()
                others[at, top] = -np.inf
                log_miss = logsumexp(others, axis=1) if k > 1 else np.full(n, -np.inf)
                miss_share = (k - 1) / k
            # log of the mapped probability of what happened, for every eps at once (rows: eps)
            hit = np.logaddexp(log_kept + log_hit[None], log_eps - np.log(k))
            with np.errstate(divide="ignore"):
                miss = np.logaddexp(log_kept + log_miss[None], log_eps + np.log(miss_share))
            log_post[i] = np.where(right[None], hit, miss).sum(axis=1)
        log_post += log_prior[None, :]
        weights = np.exp(log_post - log_post.max()).ravel()
        weights /= weights.sum()
        order = np.argsort(weights)[::-1]
        kept = order[: min(int(np.searchsorted(np.cumsum(weights[order]), _KEPT_MASS)) + 1, _MAX_COMPONENTS)]
        kept_weights = weights[kept] / weights[kept].sum()
        t_index, eps_index = np.unravel_index(kept, log_post.shape)
        return cls(
            temperature=float(np.exp(kept_weights @ log_ts[t_index])),
            uniform_weight=float(kept_weights @ epss[eps_index]),
            components=tuple(
                (float(w), float(np.exp(log_ts[i])), float(epss[j]))
                for w, i, j in zip(kept_weights, t_index, eps_index, strict=True)
            ),
        )

    def parameters(self) -> dict[str, float]:
        """The map's parameters by name (``temperature_<k>+`` per answer-count bucket, when fitted)."""
        named = {"temperature": self.temperature, "uniform_weight": self.uniform_weight}
        for low, value in zip(ANSWER_BUCKETS, self.bucket_temperatures, strict=False):
            named[f"temperature_{low}+"] = value
        return named
