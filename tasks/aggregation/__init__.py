"""Aggregation of crowd answers into one label per item: majority vote, Wawa, Dawid-Skene (shrunk, full,
one-coin, gold-anchored, warm-started) and GLAD, and the choice among them by held-out likelihood. Pure: no
Prefect, no I/O beyond the two shared-CSV readers.

One module per idea, as crowd-kit lays out its aggregators: ``_encoding`` (answers as integer codes, the label
set, gold), ``base`` (the estimator shape every aggregator shares), ``majority_vote`` (MajorityVote, Wawa),
``dawid_skene`` (DawidSkene, OneCoinDawidSkene and the shrinkage maths), ``glad`` (GLAD: worker skill times item
easiness), ``choice`` (choose_aggregator: the model that predicts held-out answers and gold best), ``frame``
(aggregation by method name, worker accuracy on gold) and ``io`` (crowd-kit frames and shared-data CSVs). The
names below are the public ones.
"""

from labelflow.tasks.aggregation._encoding import AnswersError, gold_labels
from labelflow.tasks.aggregation.base import BaseAggregator
from labelflow.tasks.aggregation.choice import CANDIDATES, ModelChoice, choose_aggregator
from labelflow.tasks.aggregation.dawid_skene import DawidSkene, OneCoinDawidSkene, spammer_scores
from labelflow.tasks.aggregation.frame import (
    METHODS,
    Aggregator,
    aggregate_answers_frame,
    make_aggregator,
    worker_quality,
)
from labelflow.tasks.aggregation.glad import GLAD
from labelflow.tasks.aggregation.io import from_crowd_kit, from_shared_csv, read_shared_truth
from labelflow.tasks.aggregation.majority_vote import MajorityVote, Wawa

__all__ = [
    "CANDIDATES",
    "GLAD",
    "METHODS",
    "Aggregator",
    "AnswersError",
    "BaseAggregator",
    "DawidSkene",
    "MajorityVote",
    "ModelChoice",
    "OneCoinDawidSkene",
    "Wawa",
    "aggregate_answers_frame",
    "choose_aggregator",
    "from_crowd_kit",
    "from_shared_csv",
    "gold_labels",
    "make_aggregator",
    "read_shared_truth",
    "spammer_scores",
    "worker_quality",
]
