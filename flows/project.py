"""The outside world a project's flows talk to, built from its config in one place: store, dataset, crowd."""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from types import TracebackType
from typing import Self

from sqlalchemy.engine import make_url

from labelflow.contracts import ITEM_ID, PAYLOAD, ItemSet
from labelflow.flows.config import ProjectConfig
from labelflow.integrations.crowd.base import CrowdBackend, RealClock, VirtualClock
from labelflow.integrations.crowd.simulated import SimulatedCrowd
from labelflow.integrations.datasets import Dataset, load_dataset
from labelflow.integrations.inbox import Inbox, open_inbox
from labelflow.integrations.store import LabelStore
from labelflow.tasks.features import TextFeatures, pool_features


def resolve_store_url(url: str, base_dir: Path) -> str:
    """A relative SQLite path is relative to the project folder, not to wherever the command was started."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:":
        path = Path(parsed.database)
        if not path.is_absolute():
            return parsed.set(database=str((base_dir / path).resolve())).render_as_string(hide_password=False)
    return url


@dataclass
class Project:
    """A project's store, inbox, dataset and crowd, each built on first use from its config.

    Use it in a ``with`` block, which closes the store (if it was opened) when the block ends, also on an error::

        with Project(config, base_dir) as project:
            rounds = project.store.rounds()
    """

    config: ProjectConfig
    base_dir: Path
    live: bool = False  # --live on the command line: with mturk.live in the config, post to production MTurk

    @cached_property
    def store(self) -> LabelStore:
        return LabelStore(resolve_store_url(self.config.store_url, self.base_dir), self.config.name)

    @cached_property
    def inbox(self) -> Inbox:
        return open_inbox(self.config.inbox, self.base_dir)

    @cached_property
    def dataset(self) -> Dataset:
        """The configured source plus every file ingested from the inbox so far; a text dataset's items carry
        the featurizer's dense view as their feature columns (see :attr:`text_features`)."""
        dataset = self._items
        if dataset.kind != "text":
            return dataset
        features = self.text_features
        items = dataset.items.merge(features.dense_frame(), on=ITEM_ID, how="left")
        return replace(dataset, items=items, feature_columns=features.dense_columns)

    @cached_property
    def text_features(self) -> TextFeatures:
        """A text dataset's sparse TF-IDF rows by the project's featurizer (fitted on the first pool, stored
        under the workdir, and applied unchanged to later arrivals; each item featurized once)."""
        items = self._items.items
        pool = (items["item_set"] == ItemSet.POOL.value).to_numpy()
        return pool_features(items[[ITEM_ID, PAYLOAD]], self.workdir, fit_on=pool)

    @cached_property
    def _items(self) -> Dataset:
        """The items as the sources give them, before any derived features."""
        processed = self.store.ingested_files(status="processed")
        arrivals = [
            (str(row["filename"]), self.inbox.read_location(str(row["stored_at"])))
            for row in processed.to_dict("records")
        ]
        return load_dataset(self.config.dataset, list(self.config.labels), self.base_dir, arrivals)

    @property
    def label_names(self) -> list[str]:
        return self.dataset.label_names

    @property
    def workdir(self) -> Path:
        return (self.base_dir / self.config.workdir).resolve()

    def crowd(self) -> CrowdBackend:
        crowd = self.config.crowd
        if crowd.backend == "mturk":
            return self._mturk_crowd()
        if crowd.backend == "replay":
            return self._replay_crowd()
        if crowd.backend == "label_studio":
            from labelflow.integrations.label_studio import label_studio_crowd

            return label_studio_crowd(
                crowd.label_studio,
                self.dataset,
                name=self.config.name,
                reward_per_answer=crowd.reward_per_answer,
                redundancy=crowd.redundancy,
                round_handles=self.store.handles,
                blocked_workers=self.store.blocked_workers("label_studio"),
            )
        return SimulatedCrowd(
            crowd.simulated,
            self.label_names,
            {str(k): str(v) for k, v in self.dataset.hidden_truth.items()},
            reward_per_answer=crowd.reward_per_answer,
            clock=RealClock() if crowd.simulated.realtime else VirtualClock(),
            blocked_workers=self.store.blocked_workers(SimulatedCrowd.name),
        )

    def _replay_crowd(self) -> CrowdBackend:
        from labelflow.integrations.crowd.replay import ReplayCrowd

        crowd = self.config.crowd
        assert crowd.replay is not None  # CrowdConfig requires it with backend = "replay"
        return ReplayCrowd(
            crowd.replay,
            self.label_names,
            reward_per_answer=crowd.reward_per_answer,
            base_dir=self.base_dir,
            clock=VirtualClock(),
            blocked_workers=self.store.blocked_workers(ReplayCrowd.name),
            namespace=self.config.name,
        )

    def _mturk_crowd(self) -> CrowdBackend:
        from labelflow.integrations.crowd.mturk import MTurkCrowd, make_mturk_client
        from labelflow.integrations.mturk_local import EndpointClock

        crowd, mturk = self.config.crowd, self.config.crowd.mturk
        return MTurkCrowd(
            make_mturk_client(mturk, live=self.live),
            mturk,
            self.label_names,
            reward_per_answer=crowd.reward_per_answer,
            redundancy=crowd.redundancy,
            max_answers=crowd.max_answers,
            # Later waves find their item's HIT, and poll its share of the HIT's assignments, from the store.
            round_handles=self.store.handles,
            clock=EndpointClock(mturk.endpoint_url) if mturk.local and mturk.endpoint_url else RealClock(),
        )

    def spent(self, crowd: CrowdBackend) -> float:
        """Dollars committed so far: every answer asked for, gold included, at the crowd's price."""
        return self.store.requested_answers() * crowd.cost_per_answer()

    def close(self) -> None:
        """Close the store if it was opened; nothing else holds a connection."""
        if "store" in self.__dict__:
            self.store.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
