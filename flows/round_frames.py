"""The data frames a round works on, built from the dataset and the store: what may be asked, what the model
trains and is judged on, and which batch an interrupted round had already sent out."""

from __future__ import annotations

import numpy as np
import pandas as pd

from labelflow.contracts import ITEM_ID, ItemSet, LabelSource
from labelflow.flows.config import ProjectConfig
from labelflow.flows.project import Project
from labelflow.integrations.crowd.base import CrowdBackend
from labelflow.integrations.crowd.simulated import SimulatedCrowd
from labelflow.integrations.datasets import Dataset
from labelflow.integrations.store import LabelStore, RoundRecord


def gold_labels(dataset: Dataset) -> pd.Series:
    """The known label of every gold item, by item id."""
    return dataset.known_labels[dataset.frame(ItemSet.GOLD)[ITEM_ID]]


def gold_is_random(config: ProjectConfig) -> bool:
    """Whether the project's gold items are a random draw of its labeled rows (labelflow draws them, stratified,
    unless ``dataset.gold_source`` names them): only such gold may calibrate the confidence decisions read."""
    return config.dataset.gold_source is None


def unlabeled_pool(pool: pd.DataFrame, store: LabelStore, round_: RoundRecord) -> pd.DataFrame:
    """Pool items no earlier round has asked the crowd about, and none with answers from another round (imported
    ones); the round's own answers do not count, or a round resumed after a kill would refuse its own batch."""
    answers = store.answers()
    earlier = answers.loc[answers["round_id"] != round_.id, ITEM_ID]
    asked = store.requested_items(before_round=round_.id) | set(earlier)
    return _without(pool, pool[ITEM_ID].isin(asked).to_numpy())


def _without(frame: pd.DataFrame, dropped: np.ndarray) -> pd.DataFrame:
    """``frame`` less the ``dropped`` rows; itself when none is (no copy of a 2M-row frame for nothing)."""
    return frame[~dropped].reset_index(drop=True) if dropped.any() else frame


def selectable(unlabeled: pd.DataFrame, weak: pd.DataFrame, config: ProjectConfig) -> pd.DataFrame:
    """The unlabeled pool less what the labeling functions already label confidently (when configured so)."""
    if not config.weak_supervision.skip_confident or weak.empty:
        return unlabeled
    confident = weak.loc[weak["confidence"] >= config.quality.confidence_target, ITEM_ID]
    return _without(unlabeled, unlabeled[ITEM_ID].isin(confident).to_numpy())


class UnanswerableItemsError(Exception):
    """A round's batch holds items its crowd can never answer: rerunning cannot cure it."""


def unanswerable_items(crowd: CrowdBackend, item_ids: pd.Series, label_names: list[str]) -> pd.Series:
    """Why the crowd can never answer each of ``item_ids`` it cannot, by item id (empty when it can answer all).

    Only the simulated crowd has such items: it answers from the hidden truth, so an item without one, or whose
    truth is not one of the project's labels (a file ingested with other labels), would stop every round that
    asked about it."""
    if not isinstance(crowd, SimulatedCrowd):
        return pd.Series(dtype=object)
    truth = item_ids.map(crowd.truth)
    never = (truth.isna() | ~truth.isin(label_names)).to_numpy()
    truth = truth[never]  # a reason for these only: not a text for each of 2M answerable items
    return pd.Series(
        np.where(
            truth.isna(),
            "the simulated crowd has no hidden truth for it",
            "its label " + truth.astype(str).map(repr) + " is not one of the project's labels",
        ),
        index=item_ids.to_numpy()[never],
        dtype=object,
    )


def restore_batch(store: LabelStore, round_: RoundRecord) -> pd.DataFrame | None:
    """The batch an interrupted round already dispatched, so a resumed round asks about the same items."""
    first_wave = store.requests(round_.id, wave=1)
    items = first_wave.loc[~first_wave["is_gold"].astype(bool), ITEM_ID]
    if items.empty:
        return None
    return pd.DataFrame(
        {ITEM_ID: items.to_numpy(), "score": np.nan, "strategy": "resumed", "round_id": round_.id}
    )


def training_frame(project: Project) -> pd.DataFrame:
    """Features with the latest crowd label of every answered item, gold items at their known labels, and (with
    labeling functions configured) the functions' labels of items nobody answered, at their reduced weight."""
    dataset, weak_config = project.dataset, project.config.weak_supervision
    labels = project.store.labels(sources=(LabelSource.CROWD.value, LabelSource.FUNCTIONS.value))
    columns = [ITEM_ID, "label", "confidence"]
    crowd = labels.loc[labels["source"] == LabelSource.CROWD.value, columns]
    gold = dataset.frame(ItemSet.GOLD)[[ITEM_ID]].assign(
        label=lambda f: f[ITEM_ID].map(dataset.known_labels), confidence=1.0
    )
    parts = [crowd[~crowd[ITEM_ID].isin(gold[ITEM_ID])], gold]
    if weak_config.functions is not None and weak_config.training_weight > 0:
        weak = labels.loc[labels["source"] == LabelSource.FUNCTIONS.value, columns]
        weak = weak[~weak[ITEM_ID].isin(crowd[ITEM_ID]) & ~weak[ITEM_ID].isin(gold[ITEM_ID])]
        parts.append(weak.assign(confidence=weak["confidence"] * weak_config.training_weight))
    return with_features(pd.concat(parts, ignore_index=True), dataset)


def with_features(labeled: pd.DataFrame, dataset: Dataset) -> pd.DataFrame:
    """``labeled`` (item_id and more) joined with its items' feature columns, items without features left out.

    The items are picked by ``isin`` first, so that the join hashes the few labeled items, not the 2M of a
    large pool (which held ~250 MB)."""
    items = dataset.items
    wanted = items.loc[items[ITEM_ID].isin(labeled[ITEM_ID]).to_numpy(), [ITEM_ID, *dataset.feature_columns]]
    return labeled.merge(wanted, on=ITEM_ID, how="inner")


def held_out_frame(dataset: Dataset) -> pd.DataFrame:
    """The held-out items at their known labels: what every model of the project is judged on."""
    held_out = dataset.frame(ItemSet.HELD_OUT)
    return held_out.assign(label=held_out[ITEM_ID].map(dataset.known_labels))


def crowd_labeled_frame(store: LabelStore, dataset: Dataset) -> pd.DataFrame:
    """The latest crowd label of every answered non-gold item, with its features."""
    crowd = store.labels(sources=(LabelSource.CROWD.value,))
    crowd = crowd[~crowd[ITEM_ID].isin(dataset.known_labels.index)]
    return with_features(crowd[[ITEM_ID, "label", "confidence", "n_answers"]], dataset)
