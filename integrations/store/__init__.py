"""The label store: items, rounds, label requests, answers, labels, workers and model versions.

:class:`LabelStore` is the front; ``engine.py`` holds the database plumbing and one module per table holds its
rows (see ``store.py``).
"""

from labelflow.integrations.store.answers import UNPARSED_ANSWER_COLUMNS
from labelflow.integrations.store.errors import RoundInProgressError, StoreError
from labelflow.integrations.store.items import ITEM_COLUMNS
from labelflow.integrations.store.leases import Lease, LeaseHolder
from labelflow.integrations.store.models import MODEL_VERSION_COLUMNS, ModelVersionRecord
from labelflow.integrations.store.requests import REQUEST_COLUMNS
from labelflow.integrations.store.rounds import ROUND_COLUMNS, RoundRecord
from labelflow.integrations.store.store import LabelStore
from labelflow.integrations.store.workers import WORKER_COLUMNS

__all__ = [
    "ITEM_COLUMNS",
    "MODEL_VERSION_COLUMNS",
    "REQUEST_COLUMNS",
    "ROUND_COLUMNS",
    "UNPARSED_ANSWER_COLUMNS",
    "WORKER_COLUMNS",
    "LabelStore",
    "Lease",
    "LeaseHolder",
    "ModelVersionRecord",
    "RoundInProgressError",
    "RoundRecord",
    "StoreError",
]
