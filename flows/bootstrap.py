"""A cold start: data with too few labels gets its gold and held-out items from the project's owner.

``labelflow bootstrap`` (and the first round of such a project) draws ``dataset.n_gold`` + ``n_held_out`` pool
items, a random sample stratified by the pool's clusters, stores them as the gold and held-out items (without a
known label yet), and puts them in the owner's queue in Label Studio: the experts' project ``<project>
(experts)``, where escalated items go too, its instructions marking them as expert work. Each run reads the
labels given so far into the store (an edited annotation replaces the label), so a rerun imports nothing twice
and says how many of them are labeled. Once all are, rounds start: the gold items train the first model beside
the crowd's labels and calibrate the crowd, and the held-out items judge every model. The crowd that answers
the rounds is whatever ``crowd.backend`` says.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from labelflow.contracts import ITEM_ID, ItemSet
from labelflow.flows.project import Project
from labelflow.integrations.crowd.base import CrowdBackendError, LabelRequest
from labelflow.integrations.crowd.task import shown_payloads
from labelflow.integrations.datasets import ColdStart, DatasetError
from labelflow.integrations.label_studio import LabelStudioConfigError, LabelStudioCrowd, label_studio_crowd
from labelflow.integrations.label_studio.crowd import task_key
from labelflow.integrations.store import LabelStore
from labelflow.tasks.selection import stratified_sample

BOOTSTRAP_ROUND = 0  # the owner's tasks are keyed 0/<item>: labeling rounds are numbered from 1
DRAWN_SETS = (ItemSet.HELD_OUT, ItemSet.GOLD)  # held-out first, as the split of labeled data draws them


class ColdStartError(RuntimeError):
    """The owner's items cannot be put in Label Studio or read back; the message says why and what to do."""


@dataclass(frozen=True)
class BootstrapProgress:
    """How many of the drawn gold and held-out items the owner has labeled, and where they label them."""

    labeled: int
    needed: int
    where: str = ""

    @property
    def done(self) -> bool:
        return self.labeled >= self.needed

    def describe(self) -> str:
        where = f" in Label Studio ({self.where})" if self.where else ""
        if self.done:
            return f"all {self.needed} gold and held-out items are labeled by the project's owner{where}"
        return (
            f"waiting for the project owner's labels: {self.labeled} of {self.needed} gold and held-out items "
            f"labeled{where}"
        )


def drawn_items(store: LabelStore) -> pd.DataFrame:
    """The gold and held-out items stored so far (item_id, item_set, known_label)."""
    return pd.concat([store.items(s.value) for s in DRAWN_SETS], ignore_index=True)


def progress_in_store(store: LabelStore) -> BootstrapProgress | None:
    """The owner's progress as the store last saw it (`labelflow status`), without loading the data or asking
    Label Studio; None unless drawn items still wait for their labels."""
    drawn = drawn_items(store)
    labeled = int(drawn["known_label"].notna().sum())
    return BootstrapProgress(labeled, len(drawn)) if labeled < len(drawn) else None


def draw_items(project: Project, plan: ColdStart) -> int:
    """Draw the gold and held-out items not drawn yet, each set a random sample stratified by the clusters of
    the pool items never stored (before the first round: all of them), and store them; how many were drawn."""
    dataset, store, seed = project.dataset, project.store, project.config.dataset.seed
    drawn = drawn_items(store)
    wanted = {ItemSet.HELD_OUT: plan.held_out, ItemSet.GOLD: plan.gold}
    missing = {s: wanted[s] - int((drawn["item_set"] == s.value).sum()) for s in DRAWN_SETS}
    if sum(max(n, 0) for n in missing.values()) == 0:
        return 0
    pool = dataset.frame(ItemSet.POOL)
    candidates = pool[~pool[ITEM_ID].isin(store.items()[ITEM_ID])].reset_index(drop=True)
    if len(candidates) < sum(missing.values()):
        raise DatasetError(
            f"{project.config.dataset.source}: {len(candidates)} pool item(s) were never asked about, too few "
            f"for the {missing[ItemSet.GOLD]} gold and {missing[ItemSet.HELD_OUT]} held-out item(s) still to "
            "draw; lower dataset.n_gold / n_held_out"
        )
    chosen = []
    for offset, item_set in enumerate(DRAWN_SETS):
        if missing[item_set] <= 0:
            continue
        features = candidates[dataset.feature_columns].to_numpy(dtype=np.float64)
        picked = stratified_sample(features, missing[item_set], seed=seed + offset)
        chosen.append(candidates.loc[picked, [ITEM_ID]].assign(item_set=item_set.value, known_label=None))
        candidates = candidates.drop(candidates.index[picked]).reset_index(drop=True)
    added = store.add_items(pd.concat(chosen, ignore_index=True))
    project.__dict__.pop("dataset", None)  # the drawn items leave the pool
    return added


def owner_queue(project: Project) -> LabelStudioCrowd:
    """The experts' Label Studio project (``<title> (experts)``, where escalated items go too), in which the
    owner labels: one annotation per item, the first one counts."""
    config, settings = project.config, project.config.crowd.label_studio
    title = project.experts_title
    instructions = (
        f"Expert work for the labelflow project {config.name}: your labels become its gold questions and its "
        "held-out set, so take your time. " + settings.instructions
    ).strip()
    return label_studio_crowd(
        settings.model_copy(update={"project_title": title, "instructions": instructions}),
        project.dataset,
        name=title,
        reward_per_answer=config.crowd.reward_per_answer,
        redundancy=1,
        round_handles=lambda _round: [],  # one wave of one answer: no earlier wave to count
    )


def publish_and_read(project: Project, log: logging.Logger | logging.LoggerAdapter[logging.Logger]) -> str:
    """Put every drawn item in the owner's queue (the ones there already are not imported again), store the
    labels given since the last run, and return the Label Studio project's URL.

    A label is read once, when it is first given: only annotated tasks of items without a label are read (one
    call each), so a run costs one call per new label, not one per drawn item."""
    dataset = project.dataset
    drawn = drawn_items(project.store)
    payloads = shown_payloads(dataset.items, dataset.kind, dataset.feature_columns)
    requests = [
        LabelRequest(
            key=f"{project.config.name}/bootstrap/{item}",
            item_id=str(item),
            round_id=BOOTSTRAP_ROUND,
            wave=1,
            n_answers=1,
            is_gold=item_set == ItemSet.GOLD.value,
            payload=str(payloads[item]),
        )
        for item, item_set in zip(drawn[ITEM_ID], drawn["item_set"], strict=True)
    ]
    unlabeled = set(drawn.loc[drawn["known_label"].isna(), ITEM_ID])
    queue = owner_queue(project)
    try:
        handles = queue.publish(requests)
        annotated = {key for key, task in queue.tasks().items() if task.get("total_annotations")}
        answers = queue.poll(
            [h for h in handles if h.item_id in unlabeled and task_key(h.round_id, h.item_id) in annotated]
        )
    except (CrowdBackendError, LabelStudioConfigError) as error:
        raise ColdStartError(
            f"{project.config.dataset.source} has too few labels for the gold and held-out items, so the "
            f"project's owner labels them in Label Studio first, which failed: {error}"
        ) from None
    labels = {answer.item_id: answer.label for answer in answers if answer.label is not None}
    if unusable := sorted({answer.item_id for answer in answers if answer.label is None}):
        log.warning(
            "%d item(s) annotated without one of the labels (%s): still unlabeled; fix their annotations in "
            "Label Studio and they are read on the next run",
            len(unusable),
            ", ".join(unusable[:5]) + (", ..." if len(unusable) > 5 else ""),
        )
    if project.store.set_known_labels(labels):
        log.info("stored %d new label(s) of the project's owner", len(labels))
        project.__dict__.pop("dataset", None)
    return f"{queue.client.url}/projects/{queue.project_id}"


def labeled_count(project: Project) -> int:
    return int(drawn_items(project.store)["known_label"].notna().sum())


def bootstrap(
    project: Project,
    *,
    wait: bool = False,
    log: logging.Logger | logging.LoggerAdapter[logging.Logger] | None = None,
) -> BootstrapProgress:
    """Draw, publish and collect the owner's gold and held-out items (see the module's docstring); with
    ``wait``, poll every ``crowd.poll_interval_minutes`` until all are labeled or ``crowd.wave_deadline_hours``
    have passed. Done at once, with nothing needed, when the data's own labels give the gold and held-out sets."""
    log = log or logging.getLogger(__name__)
    plan = project.cold_start
    if plan is None:
        return BootstrapProgress(0, 0)
    if not project.label_names:
        raise DatasetError(
            f"{project.config.dataset.source} has no labels to find the label names in: list them in the "
            'config\'s `labels` (e.g. labels = ["neg", "pos"]) for the owner to choose from'
        )
    if (drawn := draw_items(project, plan)) > 0:
        log.info("drew %d gold and held-out items for the project's owner to label", drawn)
    crowd = project.config.crowd
    deadline = time.monotonic() + crowd.wave_deadline_hours * 3600
    while True:
        where = publish_and_read(project, log) if labeled_count(project) < plan.size else ""
        progress = BootstrapProgress(labeled_count(project), plan.size, where)
        log.info("%s", progress.describe())
        if progress.done or not wait or time.monotonic() >= deadline:
            return progress
        time.sleep(crowd.poll_interval_minutes * 60)


@task(name="bootstrap-labels", cache_policy=NO_CACHE)
def bootstrap_labels(project: Project, *, wait: bool) -> BootstrapProgress:
    """:func:`bootstrap` as a step of a round's flow run, logging to its run."""
    return bootstrap(project, wait=wait, log=get_run_logger())
