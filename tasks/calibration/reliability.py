"""Reliability measures: expected calibration error, its floor, reliability diagrams and their plot."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]


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


def ece_floor(
    confidence: npt.ArrayLike,
    bins: int = 10,
    n_sims: int = 200,
    random_state: int = 0,
    *,
    item_ids: npt.ArrayLike | None = None,
) -> float:
    """The ECE a perfectly calibrated predictor shows on these confidences: mean over ``n_sims`` simulations in
    which each item is right with probability equal to its confidence.

    ECE is biased upwards on finitely many items (every bin's gap is an absolute value of noise), so an ECE is
    only as good as its distance to this floor. ``item_ids`` (one per confidence) says which rows are the same
    item scored again (pooled draws of a benchmark): a simulation then draws one uniform per item and each row
    is right when it falls below that row's confidence, so an item right in one draw tends to be right in the
    others, as a real item is. Without it every row is independent, which understates the floor when a small
    crowd's items recur in every draw.
    """
    conf = np.asarray(confidence, dtype=np.float64).ravel()
    if conf.size == 0:
        return float("nan")
    rng = np.random.default_rng(random_state)
    which = _bin_of(conf, bins)
    if item_ids is None:
        uniforms = rng.random((n_sims, conf.size))
    else:
        ids = np.asarray(item_ids).ravel()
        if ids.shape != conf.shape:
            raise ValueError(f"item_ids must give one id per confidence: {ids.size} for {conf.size}")
        _, item_of = np.unique(ids, return_inverse=True)
        uniforms = rng.random((n_sims, int(item_of.max()) + 1))[:, item_of]
    # All simulations at once: one row of Bernoulli draws per simulation, binned through a shared index.
    right = uniforms < conf
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
