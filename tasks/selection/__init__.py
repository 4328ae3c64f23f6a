"""Sample selection: which unlabeled pool items are worth paying the crowd for.

Strategies (Settles 2009, "Active Learning Literature Survey"):

- uncertainty sampling (Lewis & Gale 1994; Settles 2009 §3.1): least confidence, margin and entropy of the model's
  predicted probabilities; random as the baseline;
- query-by-committee (Seung, Opper & Sompolinsky 1992; Settles 2009 §3.2): a committee of models, each fitted on a
  stratified bootstrap of the labeled set (query-by-bagging, Abe & Mamitsuka 1998), disagrees about an item —
  measured by vote entropy (Dagan & Engelson 1995) or by the mean KL divergence of each member from the
  consensus (McCallum & Nigam 1998);
- a diversity-aware batch, so a batch is not ten near-copies of one confusing item: among the ``candidates``
  times ``batch_size`` highest-scoring items, either k-center greedy (Sener & Savarese 2018, the core-set
  approach) or one item per k-means cluster, the most uncertain in each (Zhdanov 2019, "Diverse mini-batch
  active learning");
- a cold start (k-means medoids, so the first batch covers the feature space) while no model exists yet, and a
  random sample stratified by the same clusters (Cochran 1977) for the gold and held-out items of data without
  labels;
- a stopping rule by stabilizing predictions (Bloodgood & Vijay-Shanker 2009): stop once successive models agree
  (Cohen's kappa) on a fixed stop set for a few rounds in a row, or once their agreement has levelled off.

One module per idea: ``scores`` (uncertainty and disagreement scores, chunked pool scoring), ``committee`` (the
bootstrap committee), ``diversity`` (top-k, k-center greedy, k-means picking, the cold start), ``batch``
(``SelectionConfig``, ``choose_indices``, ``choose_batch``) and ``stopping`` (the stopping rule). The names below
are the public ones.
"""

from labelflow.tasks.selection.batch import SelectionConfig, choose_batch, choose_indices, pool_features
from labelflow.tasks.selection.committee import BootstrapCommittee
from labelflow.tasks.selection.diversity import (
    Diversity,
    cold_start,
    diverse_top,
    kcenter_greedy,
    kmeans_diverse,
    stratified_sample,
    top_k,
)
from labelflow.tasks.selection.scores import (
    COMMITTEE_STRATEGIES,
    DISAGREEMENT,
    UNCERTAINTY,
    Committee,
    ProbabilisticModel,
    Strategy,
    consensus_kl_scores,
    entropy_scores,
    least_confidence_scores,
    margin_scores,
    score_pool,
    vote_entropy_scores,
)
from labelflow.tasks.selection.stopping import (
    StoppingRule,
    cohen_kappa,
    stop_reason,
    stop_set,
    stopping_round,
)

__all__ = [
    "COMMITTEE_STRATEGIES",
    "DISAGREEMENT",
    "UNCERTAINTY",
    "BootstrapCommittee",
    "Committee",
    "Diversity",
    "ProbabilisticModel",
    "SelectionConfig",
    "StoppingRule",
    "Strategy",
    "choose_batch",
    "choose_indices",
    "cohen_kappa",
    "cold_start",
    "consensus_kl_scores",
    "diverse_top",
    "entropy_scores",
    "kcenter_greedy",
    "kmeans_diverse",
    "least_confidence_scores",
    "margin_scores",
    "pool_features",
    "score_pool",
    "stop_reason",
    "stop_set",
    "stopping_round",
    "stratified_sample",
    "top_k",
    "vote_entropy_scores",
]
