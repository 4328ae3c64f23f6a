"""Features as a stage: what turns an item's content (a text, an image's path) into the vectors that selection,
training and label-issue detection use.

A featurizer is fitted once per project on its pool, stored with a version, and applied unchanged to every later
arrival (:mod:`.store`); :mod:`.text` is the text kind's default.
"""

from __future__ import annotations

from labelflow.integrations.pool_store import text_hash as content_hash
from labelflow.tasks.features.base import Featurizer
from labelflow.tasks.features.store import (
    TextFeatures,
    latest_version,
    load_featurizer,
    pool_features,
)
from labelflow.tasks.features.text import DENSE_PREFIX, TextFeaturizer, dense_column_names

__all__ = [
    "DENSE_PREFIX",
    "Featurizer",
    "TextFeatures",
    "TextFeaturizer",
    "content_hash",
    "dense_column_names",
    "latest_version",
    "load_featurizer",
    "pool_features",
]
