"""Label Studio: a team's own annotators as a crowd backend, and a local server to run it on.

- :mod:`.config` — the ``[crowd.label_studio]`` section, the token, the generated labeling config;
- :mod:`.client` — the REST API over httpx, its failures as the crowd protocol's errors;
- :mod:`.crowd` — :class:`LabelStudioCrowd`, the crowd protocol over those;
- :mod:`.webhooks` — the receiver Label Studio calls for each new or edited annotation;
- :mod:`.server` — install Label Studio into its own venv and start or stop it on loopback.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence

from labelflow.contracts import ITEM_ID, PAYLOAD
from labelflow.integrations.crowd.base import Handle
from labelflow.integrations.datasets import Dataset
from labelflow.integrations.label_studio.client import LabelStudioAuthError, LabelStudioClient
from labelflow.integrations.label_studio.config import (
    TOKEN_VARIABLE,
    ItemKind,
    LabelStudioConfig,
    LabelStudioConfigError,
    access_token,
    check_labeling_config,
    labeling_config,
    webhook_secret,
)
from labelflow.integrations.label_studio.crowd import LabelStudioCrowd, parse_result, worker_id

TABLE_COLUMNS_SHOWN = 32  # a wider row is cut: an annotator cannot read more in a small table


def item_kind(dataset: Dataset) -> ItemKind:
    """How an item is shown: its text, its image (a payload that is an image's URL or data URI), or its row."""
    if dataset.kind == "text":
        return "text"
    payloads = dataset.items[PAYLOAD].dropna().astype(str) if PAYLOAD in dataset.items.columns else None
    if payloads is not None and len(payloads) and payloads.str.match(r"(data:image/|https?://|/)").all():
        return "image"
    return "table"


def table_rows(dataset: Dataset) -> Callable[[str], Mapping[str, object]]:
    """An item's feature values (the first few columns), for a table project."""
    columns = dataset.feature_columns[:TABLE_COLUMNS_SHOWN]
    rows = dataset.items.set_index(ITEM_ID)[columns].astype(float).to_numpy()
    position = {str(item): k for k, item in enumerate(dataset.items[ITEM_ID])}

    def row(item_id: str) -> Mapping[str, object]:
        return dict(zip(columns, rows[position[item_id]].tolist(), strict=True))

    return row


def label_studio_crowd(
    config: LabelStudioConfig,
    dataset: Dataset,
    *,
    name: str,
    reward_per_answer: float,
    redundancy: int,
    round_handles: Callable[[int], Sequence[Handle]],
    blocked_workers: Iterable[str] = (),
) -> LabelStudioCrowd:
    """The Label Studio crowd of a project whose items are ``dataset``, titled ``name`` unless configured."""
    kind = item_kind(dataset)
    return LabelStudioCrowd(
        LabelStudioClient(config.url, access_token(config), timeout=config.timeout_seconds),
        config,
        dataset.label_names,
        kind=kind,
        project_title=name,
        reward_per_answer=reward_per_answer,
        redundancy=redundancy,
        round_handles=round_handles,
        blocked_workers=blocked_workers,
        table_rows=table_rows(dataset) if kind == "table" else None,
        webhook_secret=webhook_secret(config) if config.webhook_url else None,
    )


__all__ = [
    "TOKEN_VARIABLE",
    "ItemKind",
    "LabelStudioAuthError",
    "LabelStudioClient",
    "LabelStudioConfig",
    "LabelStudioConfigError",
    "LabelStudioCrowd",
    "access_token",
    "check_labeling_config",
    "item_kind",
    "label_studio_crowd",
    "labeling_config",
    "parse_result",
    "table_rows",
    "webhook_secret",
    "worker_id",
]
