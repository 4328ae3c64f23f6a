"""labelflow: labeling pipelines as Prefect DAGs.

The package is one import root over the repository's top-level folders: ``labelflow.flows`` (the Prefect
lifecycle), ``labelflow.tasks`` (each stage's logic), ``labelflow.integrations`` (adapters to the outside world)
and ``labelflow.contracts`` (the columns every stage agrees on). See docs/architecture.md.

The names below are the Python API: the crowd aggregators (crowd-kit's estimator shape) and the active-learning
selection functions. Importing them does not import Prefect.

Examples
--------
>>> import pandas as pd
>>> from labelflow import DawidSkene
>>> answers = pd.DataFrame({"task": ["t1", "t1", "t1"], "worker": ["a", "b", "c"], "label": ["x", "x", "y"]})
>>> DawidSkene().fit_predict(answers).to_dict()
{'t1': 'x'}
"""

from labelflow.tasks.aggregation import DawidSkene, MajorityVote, OneCoinDawidSkene, Wawa
from labelflow.tasks.selection import (
    BootstrapCommittee,
    SelectionConfig,
    StoppingRule,
    choose_batch,
    consensus_kl_scores,
    entropy_scores,
    least_confidence_scores,
    margin_scores,
    stop_reason,
    stratified_sample,
    top_k,
    vote_entropy_scores,
)

__all__ = [
    "BootstrapCommittee",
    "DawidSkene",
    "MajorityVote",
    "OneCoinDawidSkene",
    "SelectionConfig",
    "StoppingRule",
    "Wawa",
    "choose_batch",
    "consensus_kl_scores",
    "entropy_scores",
    "least_confidence_scores",
    "margin_scores",
    "stop_reason",
    "stratified_sample",
    "top_k",
    "vote_entropy_scores",
]
