"""Scoring the pool, higher = more worth a label: one model's uncertainty (least confidence, margin, entropy) or
a committee's disagreement (vote entropy, consensus KL); random as the baseline. References in the package's
docstring.

Pool scoring runs in chunks of ``chunk_rows`` rows in the pool's own dtype: a model fitted on float64 upcasts a
float32 pool it is handed whole (+578 MB at 1M x 64), and a scaler pipeline copies it again (+332 MB); a chunk of
25k rows bounds both at ~35 MB (100k: ~100 MB, which took the 1M x 64 scale benchmark's process to its 700 MB
limit), at no cost in time.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, Protocol

import numpy as np

Strategy = Literal["random", "least_confidence", "margin", "entropy", "vote_entropy", "consensus_kl"]
COMMITTEE_STRATEGIES: tuple[str, ...] = ("vote_entropy", "consensus_kl")


class ProbabilisticModel(Protocol):
    def predict_proba(self, X: np.ndarray) -> np.ndarray: ...


class Committee(Protocol):
    def member_probas(self, X: np.ndarray) -> np.ndarray:
        """Probabilities of every member, shape (members, rows, classes), classes in one order for all."""
        ...


def least_confidence_scores(probas: np.ndarray) -> np.ndarray:
    """1 - p_top1: how far the model is from certain about its best guess.

    Parameters
    ----------
    probas : numpy.ndarray
        Predicted probabilities, rows x classes.

    Returns
    -------
    numpy.ndarray
        One score per row, higher = more informative.

    Examples
    --------
    >>> import numpy as np
    >>> from labelflow import least_confidence_scores
    >>> least_confidence_scores(np.array([[0.9, 0.1], [0.5, 0.5]]))
    array([0.1, 0.5])
    """
    return np.asarray(1.0 - probas.max(axis=1))


def margin_scores(probas: np.ndarray) -> np.ndarray:
    """Uncertainty as 1 - (p_top1 - p_top2): 1 is a coin toss, 0 is certain.

    Parameters and return as :func:`least_confidence_scores`.

    Examples
    --------
    >>> import numpy as np
    >>> from labelflow import margin_scores
    >>> margin_scores(np.array([[0.9, 0.1, 0.0], [0.4, 0.4, 0.2]]))
    array([0.2, 1. ])
    """
    if probas.shape[1] < 2:
        return np.zeros(len(probas))
    top2 = np.partition(probas, -2, axis=1)[:, -2:]
    return np.asarray(1.0 - (top2[:, 1] - top2[:, 0]))


def entropy_scores(probas: np.ndarray) -> np.ndarray:
    """Shannon entropy of the predicted distribution, in nats.

    Parameters and return as :func:`least_confidence_scores`.

    Examples
    --------
    >>> import numpy as np
    >>> from labelflow import entropy_scores
    >>> entropy_scores(np.array([[1.0, 0.0], [0.5, 0.5]])).round(4)
    array([0.    , 0.6931])
    """
    p = np.clip(probas, 1e-12, 1.0)
    return np.asarray(-(p * np.log(p)).sum(axis=1))


def vote_entropy_scores(member_probas: np.ndarray) -> np.ndarray:
    """Entropy (nats) of the committee's hard votes per item (Dagan & Engelson 1995): 0 when all members agree.

    Parameters
    ----------
    member_probas : numpy.ndarray
        Each member's probabilities, shape (members, rows, classes).

    Returns
    -------
    numpy.ndarray
        One score per row, higher = more disagreement.

    Examples
    --------
    >>> import numpy as np
    >>> from labelflow import vote_entropy_scores
    >>> members = np.array([[[0.9, 0.1], [0.6, 0.4]],    # member 1 votes class 0 twice
    ...                     [[0.8, 0.2], [0.3, 0.7]]])   # member 2: class 0, then class 1
    >>> vote_entropy_scores(members).round(4)
    array([0.    , 0.6931])
    """
    members, rows, classes = member_probas.shape
    votes = member_probas.argmax(axis=2)  # members x rows
    shares = np.zeros((rows, classes))
    for member_votes in votes:
        shares[np.arange(rows), member_votes] += 1.0 / members
    return np.asarray(entropy_scores(shares) * (shares.max(axis=1) < 1.0))


def consensus_kl_scores(member_probas: np.ndarray) -> np.ndarray:
    """Mean KL divergence (nats) of each member's distribution from the committee's mean (McCallum & Nigam 1998):
    0 when every member predicts the same distribution.

    Parameters and return as :func:`vote_entropy_scores`.

    Examples
    --------
    >>> import numpy as np
    >>> from labelflow import consensus_kl_scores
    >>> members = np.array([[[0.5, 0.5], [0.9, 0.1]],
    ...                     [[0.5, 0.5], [0.1, 0.9]]])
    >>> consensus_kl_scores(members).round(4)
    array([0.    , 0.3681])
    """
    p = np.clip(member_probas, 1e-12, 1.0)
    consensus = p.mean(axis=0, keepdims=True)
    return np.asarray((p * (np.log(p) - np.log(consensus))).sum(axis=2).mean(axis=0).clip(min=0.0))


UNCERTAINTY: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "least_confidence": least_confidence_scores,
    "margin": margin_scores,
    "entropy": entropy_scores,
}
DISAGREEMENT: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "vote_entropy": vote_entropy_scores,
    "consensus_kl": consensus_kl_scores,
}


def _chunks(features: Any, chunk_rows: int) -> list[slice]:
    return [slice(start, start + chunk_rows) for start in range(0, features.shape[0], chunk_rows)]


def score_pool(
    model: ProbabilisticModel | None,
    features: Any,
    strategy: Strategy,
    *,
    chunk_rows: int,
    rng: np.random.Generator,
    committee: Committee | None = None,
) -> np.ndarray:
    """One score per pool row, higher = more informative; scored in chunks so memory stays bounded.

    Chunks are handed over in the pool's own dtype (a view, no copy): whatever the model upcasts, it upcasts one
    chunk at a time. ``features`` may be sparse rows (a text model's TF-IDF). Committee strategies need
    ``committee``."""
    if strategy == "random" or (model is None and committee is None):
        return np.asarray(rng.random(features.shape[0]))
    if strategy in DISAGREEMENT:
        if committee is None:
            raise ValueError(
                f"strategy {strategy!r} needs a committee (BootstrapCommittee fitted on the labeled items); "
                "pass committee=, or choose an uncertainty strategy such as 'margin'"
            )
        disagreement = DISAGREEMENT[strategy]
        parts = [
            disagreement(committee.member_probas(features[rows])) for rows in _chunks(features, chunk_rows)
        ]
    else:
        if model is None:
            raise ValueError(f"strategy {strategy!r} needs a model; pass model=")
        score = UNCERTAINTY[strategy]
        parts = [score(model.predict_proba(features[rows])) for rows in _chunks(features, chunk_rows)]
    return np.concatenate(parts or [np.empty(0)]).astype(np.float64, copy=False)
