"""The label store: items, rounds, label requests, answers, labels, workers and model versions (docs/architecture.md,
"The label store")."""

from labelflow.integrations.store.store import (
    ITEM_COLUMNS,
    MODEL_VERSION_COLUMNS,
    REQUEST_COLUMNS,
    ROUND_COLUMNS,
    UNPARSED_ANSWER_COLUMNS,
    WORKER_COLUMNS,
    LabelStore,
    ModelVersionRecord,
    RoundInProgressError,
    RoundRecord,
    StoreError,
)

__all__ = [
    "ITEM_COLUMNS",
    "MODEL_VERSION_COLUMNS",
    "REQUEST_COLUMNS",
    "ROUND_COLUMNS",
    "UNPARSED_ANSWER_COLUMNS",
    "WORKER_COLUMNS",
    "LabelStore",
    "ModelVersionRecord",
    "RoundInProgressError",
    "RoundRecord",
    "StoreError",
]
