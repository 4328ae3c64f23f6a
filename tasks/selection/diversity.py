"""Which of the top-scoring items make the batch, so a batch is not ten near-copies of one confusing item:
k-center greedy or one item per k-means cluster among the top candidates; the cold start (k-means medoids) while
no model exists yet; and a random sample stratified by those clusters, for the items a project's owner labels.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from sklearn.cluster import KMeans

Diversity = Literal["none", "kcenter", "kmeans"]


def top_k(scores: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of the k highest scores, best first; ties broken at random, not by pool order.

    Examples
    --------
    >>> import numpy as np
    >>> from labelflow import top_k
    >>> top_k(np.array([0.1, 0.9, 0.5, 0.7]), 2, np.random.default_rng(0))
    array([1, 3])
    """
    return best_of(scores, rng.random(len(scores)), k)


def best_of(scores: np.ndarray, jitter: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k highest scores, best first, ties broken by the lower ``jitter``: :func:`top_k` with the
    tie-breakers given, so that the best of several pool partitions can be merged as one pool would be ranked."""
    k = min(k, len(scores))
    if k == 0:
        return np.empty(0, dtype=np.intp)
    # Only the items scoring at least the k-th highest score can make the batch (ties at it included, so the
    # random tie-break is the same as sorting the whole pool): sorting those is O(k log k), not O(n log n).
    kth = np.partition(scores, len(scores) - k)[len(scores) - k]
    contenders = np.flatnonzero(scores >= kth)
    order = np.lexsort((jitter[contenders], -scores[contenders]))
    return contenders[order[:k]]


def _standardized(points: np.ndarray) -> np.ndarray:
    # float32 stays float32: k-means on 10,000 x 64 float32 candidates runs single-precision BLAS, ~1.5x faster
    points = np.asarray(points, dtype=np.result_type(points.dtype, np.float32))
    spread = points.std(axis=0)
    return np.asarray((points - points.mean(axis=0)) / np.where(spread > 0, spread, 1.0))


def kcenter_greedy(points: np.ndarray, k: int, *, first: int = 0) -> np.ndarray:
    """k-center greedy (Sener & Savarese 2018): start at ``first``, then repeatedly add the point farthest from
    everything chosen so far. Distances on standardized features, so no one feature's unit dominates."""
    k = min(k, len(points))
    if k == 0:
        return np.empty(0, dtype=int)
    z = _standardized(points)
    chosen = [first]
    nearest = ((z - z[first]) ** 2).sum(axis=1)
    for _ in range(k - 1):
        nearest[chosen] = -1.0
        pick = int(nearest.argmax())
        chosen.append(pick)
        nearest = np.minimum(nearest, ((z - z[pick]) ** 2).sum(axis=1))
    return np.asarray(chosen, dtype=int)


def kmeans_diverse(points: np.ndarray, scores: np.ndarray, k: int, *, seed: int) -> np.ndarray:
    """One item per k-means cluster of ``points``, the highest-scoring in each (Zhdanov 2019)."""
    k = min(k, len(points))
    if k == 0:
        return np.empty(0, dtype=int)
    # k-means++ seeding costs O(n k log k) distance evaluations: 4 s for 1,000 clusters of 10,000 candidates, over
    # the scale budget; past 10^6 point-centre pairs, random seeding and 20 Lloyd steps take ~0.5 s instead.
    # (The benchmark's batches, up to 150 of 450, stay below that and use k-means++.)
    large = len(points) * k > 1_000_000
    clusters = KMeans(
        n_clusters=k,
        n_init=1,
        random_state=seed,
        init="random" if large else "k-means++",
        max_iter=20 if large else 300,
    ).fit_predict(_standardized(points))
    # by cluster, best score first (the first index among equal scores): the first row of each cluster
    by_cluster = np.lexsort((-scores, clusters))
    firsts = np.flatnonzero(np.diff(clusters[by_cluster], prepend=-1))
    chosen = list(by_cluster[firsts])
    if len(chosen) < k:  # duplicate points can leave clusters empty; fill by score
        taken = set(chosen)
        rest = [i for i in np.argsort(-scores, kind="stable") if i not in taken]
        chosen.extend(rest[: k - len(chosen)])
    return np.asarray(chosen, dtype=int)


def diverse_top(
    features: np.ndarray,
    scores: np.ndarray,
    k: int,
    rng: np.random.Generator,
    *,
    diversity: Diversity,
    candidates: int,
    seed: int,
) -> np.ndarray:
    """Indices of a batch of ``k``: the top ``k`` scores, or with ``diversity`` a spread-out batch among the top
    ``candidates * k`` (only those candidates' features are read, so a large pool is not copied)."""
    if diversity == "none" or k >= len(scores):
        return top_k(scores, k, rng)
    shortlist = top_k(scores, candidates * k, rng)  # sorted by score, best first
    return np.asarray(shortlist[spread_out(features[shortlist], scores[shortlist], k, diversity, seed=seed)])


def spread_out(
    points: np.ndarray, scores: np.ndarray, k: int, diversity: Diversity, *, seed: int
) -> np.ndarray:
    """Indices of ``k`` of the shortlisted ``points`` (sorted by ``scores``, best first) picked by ``diversity``:
    the first ``k``, k-center greedy from the best, or one per k-means cluster."""
    if diversity == "none":
        return np.arange(min(k, len(points)))
    if diversity == "kcenter":
        return kcenter_greedy(points, k, first=0)
    return kmeans_diverse(points, scores, k, seed=seed)


COLD_START_SAMPLE = 10_000


def _clusters(features: np.ndarray, k: int, seed: int, sample: int) -> tuple[np.ndarray, np.ndarray, KMeans]:
    """k-means on standardized features: the rows it ran on (all, or ``sample`` of them drawn at random,
    reproducibly by ``seed``, standardized after the draw), their standardized points and the fitted k-means."""
    rows = (
        np.sort(np.random.default_rng(seed).choice(len(features), sample, replace=False))
        if len(features) > sample
        else np.arange(len(features))
    )
    points = _standardized(features[rows])
    return rows, points, KMeans(n_clusters=k, n_init=1, random_state=seed).fit(points)


def cold_start(features: np.ndarray, k: int, seed: int, *, sample: int = COLD_START_SAMPLE) -> np.ndarray:
    """The pool items nearest to k k-means centroids: a first batch that covers the feature space.

    On standardized features, as the diversity steps: on raw ones the feature with the largest unit (a body
    mass in grams beside lengths in millimetres) alone decides the clusters. A pool larger than ``sample`` is
    represented by ``sample`` of its items drawn at random (reproducibly, by ``seed``), standardized after the
    draw: the centroids and the items nearest to them are found among those. A uniform sample of 10,000 covers
    the space as the whole pool does (50 items per centroid for k = 200; k-means on it takes ~0.8 CPU seconds),
    where k-means on the whole of a 2M-item pool took minutes and its pool x k distances gigabytes."""
    k = min(k, len(features))
    rows, points, kmeans = _clusters(features, k, seed, sample)
    chosen: list[int] = []
    taken: set[int] = set()
    distances = kmeans.transform(points)
    for cluster in range(k):
        for index in np.argsort(distances[:, cluster]):
            if int(index) not in taken:
                chosen.append(int(index))
                taken.add(int(index))
                break
    return np.asarray(rows[np.asarray(chosen, dtype=int)])


def stratified_sample(
    features: np.ndarray, n: int, seed: int, *, strata: int = 10, sample: int = COLD_START_SAMPLE
) -> np.ndarray:
    """``n`` items drawn at random within ``strata`` k-means clusters, each cluster giving its share of the
    items (proportional allocation, the remainders to the largest fractions): a random sample, so what is
    measured on it holds for the pool, whose spread over the feature space is the pool's, so no region is
    missed by chance (stratified random sampling, Cochran 1977, *Sampling Techniques*, ch. 5).

    Unlike :func:`cold_start`, which takes each cluster's most typical item, every item of a cluster has the
    same chance: gold and held-out items drawn so stay random draws. The clusters are those of the cold start
    (k-means on standardized features, over a uniform ``sample`` of a larger pool, from which the items are
    then drawn: a random draw of a random draw).

    Examples
    --------
    >>> import numpy as np
    >>> from labelflow import stratified_sample
    >>> features = np.r_[np.zeros((90, 2)), np.ones((10, 2))] + np.random.default_rng(0).normal(0, 0.01, (100, 2))
    >>> chosen = stratified_sample(features, 20, seed=0, strata=2)
    >>> len(set(chosen.tolist())), int((chosen >= 90).sum())  # 20 distinct items, 2 of them from the small cluster
    (20, 2)
    """
    n = min(n, len(features))
    if n == 0:
        return np.empty(0, dtype=int)
    rows, _, kmeans = _clusters(features, min(strata, n), seed, sample)
    clusters = kmeans.labels_
    sizes = np.bincount(clusters, minlength=kmeans.n_clusters)
    quotas = n * sizes / sizes.sum()
    shares = np.floor(quotas).astype(int)
    shares[np.argsort(-(quotas - shares), kind="stable")[: n - shares.sum()]] += 1
    rng = np.random.default_rng(seed)
    chosen = [
        rng.choice(np.flatnonzero(clusters == cluster), share, replace=False)
        for cluster, share in enumerate(shares)
        if share
    ]
    return np.asarray(np.sort(rows[np.concatenate(chosen)]))
