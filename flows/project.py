"""The outside world a project's flows talk to, built from its config in one place: store, dataset, crowd."""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cached_property, partial
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Self

import pandas as pd
import scipy.sparse as sp
from sqlalchemy.engine import make_url

from labelflow.contracts import ITEM_ID, PAYLOAD, ItemSet
from labelflow.flows.config import ProjectConfig
from labelflow.integrations.crowd.base import (
    CrowdBackend,
    FixedPrice,
    Handle,
    Priced,
    RealClock,
    VirtualClock,
)
from labelflow.integrations.crowd.simulated import CrowdProfile, SimulatedCrowd
from labelflow.integrations.datasets import (
    ColdStart,
    Dataset,
    DatasetError,
    cold_start_of,
    with_owner_labels,
)
from labelflow.integrations.inbox import Inbox, open_inbox
from labelflow.integrations.pool_store import load_pool
from labelflow.integrations.store import LabelStore, StoreError
from labelflow.integrations.store.engine import with_password
from labelflow.tasks.features import TextFeatures, latest_version, pool_features
from labelflow.tasks.features.config import featurizer_factory
from labelflow.tasks.features.store import fit_featurizer
from labelflow.tasks.training import FeatureRows

FEATURIZED_KINDS = ("text", "image")  # kinds whose features the project's featurizer derives from the content

if TYPE_CHECKING:
    from labelflow.integrations.crowd.mturk import HitPages


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
        return LabelStore(self.store_url, self.config.name)

    @property
    def store_url(self) -> str:
        """The store's URL as the engine needs it: a relative SQLite path resolved, and the password from the
        Prefect Secret block ``store_password_secret`` names, if it names one (else libpq reads PGPASSWORD)."""
        url = resolve_store_url(self.config.store_url, self.base_dir)
        if self.config.store_password_secret is None:
            return url
        from prefect.blocks.system import Secret

        try:
            password = Secret.load(self.config.store_password_secret).get()
        except ValueError as error:
            raise StoreError(
                f"store_password_secret: cannot load the Prefect Secret block "
                f"{self.config.store_password_secret!r}: {error}"
            ) from None
        return with_password(url, str(password))

    @cached_property
    def inbox(self) -> Inbox:
        return open_inbox(self.config.inbox, self.base_dir)

    @cached_property
    def dataset(self) -> Dataset:
        """The configured source plus every file ingested from the inbox so far; a text dataset's items carry
        the featurizer's dense view as their feature columns (see :attr:`text_features`). A project that starts
        cold has the gold and held-out items its bootstrap drew, at the owner's labels given so far."""
        dataset = self._items
        if dataset.kind in FEATURIZED_KINDS:
            features = self.text_features
            items = dataset.items.merge(features.dense_frame(), on=ITEM_ID, how="left")
            dataset = replace(dataset, items=items, feature_columns=features.dense_columns)
        if self.cold_start is None:
            return dataset
        drawn = [self.store.items(item_set.value) for item_set in (ItemSet.GOLD, ItemSet.HELD_OUT)]
        return with_owner_labels(dataset, pd.concat(drawn, ignore_index=True))

    @cached_property
    def cold_start(self) -> ColdStart | None:
        """The gold and held-out items the project's owner labels before the first round (`labelflow
        bootstrap`), because the data's own labels are too few; None when they are enough."""
        return cold_start_of(self.config.dataset, self._items)

    @cached_property
    def text_features(self) -> TextFeatures:
        """A text or image dataset's features by the project's featurizer (fitted on the first pool, stored
        under the workdir, and applied unchanged to later arrivals; each item featurized once)."""
        items = self._items.items
        pool = (items["item_set"] == ItemSet.POOL.value).to_numpy()
        new_featurizer = featurizer_factory(self._items.kind, self.config.features)
        return pool_features(
            items[[ITEM_ID, PAYLOAD]], self.workdir, fit_on=pool, new_featurizer=new_featurizer
        )

    def refit_features(self) -> tuple[int | None, TextFeatures]:
        """Fit a new featurizer version on today's pool, on purpose, and featurize every item with it: the
        version before (None if there was none) and the new features. Later rounds train on the new version."""
        dataset = self._items
        if dataset.kind not in FEATURIZED_KINDS:
            raise DatasetError(
                f"{self.config.dataset.source}: a {dataset.kind} dataset's features are its columns; only text "
                "and image projects have a featurizer to refit"
            )
        before = latest_version(self.workdir)
        pool = dataset.items[dataset.items["item_set"] == ItemSet.POOL.value]
        fit_featurizer(
            pool[PAYLOAD].astype(str).tolist(),
            self.workdir,
            featurizer_factory(dataset.kind, self.config.features),
        )
        for derived in ("text_features", "dataset"):
            self.__dict__.pop(derived, None)
        return before, self.text_features

    @property
    def feature_rows(self) -> FeatureRows | None:
        """Item ids -> the featurizer's full rows, which models train, score and predict on (a text project's
        sparse TF-IDF, an image project's descriptors); None for a table, whose feature columns are the rows.
        The dataset's feature columns are then only the dense view, for distances."""
        if self._items.kind not in FEATURIZED_KINDS:
            return None
        features = self.text_features
        if (
            sp.issparse(features.matrix)
            and self._items.kind == "text"
            and self.config.features.function is None
        ):
            return features.rows
        return lambda item_ids: features.rows(item_ids).toarray()

    @property
    def features_version(self) -> int | None:
        """The featurizer version the :attr:`feature_rows` come from (None for a table)."""
        return self.text_features.version if self._items.kind in FEATURIZED_KINDS else None

    @cached_property
    def _items(self) -> Dataset:
        """The items as the sources give them, before any derived features, from the project's pool store: a
        file is parsed the first time only (the processed inbox files of a store made before the pool store
        included), then read back from its partition."""
        processed = self.store.ingested_files(status="processed")
        arrivals = [
            (
                str(row["filename"]),
                str(row["checksum"]),
                partial(self.inbox.read_location, str(row["stored_at"])),
            )
            for row in processed.to_dict("records")
        ]
        return load_pool(self.config.dataset, list(self.config.labels), self.base_dir, self.workdir, arrivals)

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
                round_handles=self._crowd_handles,
                blocked_workers=self.store.blocked_workers("label_studio"),
            )
        return SimulatedCrowd(
            crowd.simulated,
            self.label_names,
            self.dataset.hidden_truth,  # looked up by its index of ids: a dict of 2M items would be ~240 MB more
            reward_per_answer=crowd.reward_per_answer,
            clock=RealClock() if crowd.simulated.realtime else VirtualClock(),
            blocked_workers=self.store.blocked_workers(SimulatedCrowd.name),
            profile=self.fitted_crowd,
        )

    def crowd_price(self) -> Priced:
        """The crowd's price: the simulated crowd's is its reward, known without building it (which reads the
        whole pool for the hidden truth: ~3 s for 2M items, for a campaign's budget check before each round)."""
        crowd = self.config.crowd
        return FixedPrice(crowd.reward_per_answer) if crowd.backend == "simulated" else self.crowd()

    def _crowd_handles(self, round_id: int) -> list[Handle]:
        """The round's published requests to the crowd (not to the experts, who answer elsewhere)."""
        return self.store.handles(round_id, expert=False)

    @property
    def experts_title(self) -> str:
        """The Label Studio project where experts answer (escalated items; a cold start's gold and held-out
        items, labeled by the project's owner): the crowd's project's title with " (experts)"."""
        return f"{self.config.crowd.label_studio.project_title or self.config.name} (experts)"

    def expert(self) -> CrowdBackend | None:
        """The experts' backend (``crowd.expert_backend``), None when the crowd works alone: a Label Studio
        project of its own, titled after the crowd's with " (experts)", where one expert answers each item."""
        crowd = self.config.crowd
        if crowd.expert_backend is None:
            return None
        from labelflow.integrations.label_studio import label_studio_crowd

        return label_studio_crowd(
            crowd.label_studio.model_copy(update={"project_title": None}),
            self.dataset,
            name=self.experts_title,
            reward_per_answer=crowd.reward_per_answer,
            redundancy=1,
            round_handles=lambda round_id: self.store.handles(round_id, expert=True),
            blocked_workers=self.store.blocked_workers("label_studio"),
        )

    def expert_cost_per_answer(self) -> float:
        """What one expert answer costs (the expert backend's cost settings); 0 without experts."""
        crowd = self.config.crowd
        if crowd.expert_backend is None:
            return 0.0
        return crowd.label_studio.cost_per_answer(crowd.reward_per_answer)

    @cached_property
    def fitted_crowd(self) -> CrowdProfile | None:
        """The simulated crowd fitted to the real answers in ``crowd.simulated.fit_from`` (and its truth file);
        None for the crowd the config's parameters describe."""
        from labelflow.integrations.answers_file import AnswersFileError, read_answers, read_gold
        from labelflow.tasks.crowd_model import fit_crowd_profile

        simulated = self.config.crowd.simulated
        if simulated.fit_from is None:
            return None
        path = self.base_dir / simulated.fit_from
        answers = read_answers(path, known_labels=self.label_names).answers
        truth = read_gold(self.base_dir / simulated.fit_truth) if simulated.fit_truth else None
        try:
            return fit_crowd_profile(answers, self.label_names, truth)
        except ValueError as error:
            raise AnswersFileError(path, f"cannot fit crowd.simulated to it: {error}") from error

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
            round_handles=self._crowd_handles,
            clock=EndpointClock(mturk.endpoint_url) if mturk.local and mturk.endpoint_url else RealClock(),
            pages=self.hit_pages(),
        )

    def hit_pages(self) -> HitPages:
        """The MTurk HIT page of any item of the project: the [task] template for the dataset's kind."""
        from labelflow.integrations.crowd.mturk import HitPages, ImageHost

        return HitPages(
            self.config.task, self.label_names, self.dataset.kind, ImageHost(self.config.crowd.mturk)
        )

    def spent(self, crowd: Priced) -> float:
        """Dollars committed so far: every answer asked of the crowd, gold included, at the crowd's price, and
        every answer asked of an expert at the expert's."""
        return (
            self.store.requested_answers(expert=False) * crowd.cost_per_answer()
            + self.store.requested_answers(expert=True) * self.expert_cost_per_answer()
        )

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
