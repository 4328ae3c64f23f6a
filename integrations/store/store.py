"""The label store: the one place a project's state lives, and where idempotency is enforced.

A server, a collector and a CLI may open the same store at once, so every write is a short transaction, inserts
use ON CONFLICT DO NOTHING on natural keys, and a rerun of a round reads what is already stored instead of
buying it again. One store (one database) can hold several projects; every query is filtered on ``project``.

:class:`LabelStore` is a thin front: each method delegates to one small repository per table (``items.py``,
``rounds.py``, ``requests.py``, ``answers.py``, ``labels.py``, ``workers.py``, ``models.py``, ``ingestion.py``,
``leases.py``), all sharing one :class:`~labelflow.integrations.store.engine.Database` (engine, SQLite tuning,
migrations, transactions) and the helpers of ``repository.py``. Composition rather than mixins: every
repository is a plain object with two fields (the database and the project) that can be built and tested on
its own, the front's public API is spelled out (and type-checked) in one place, and the repositories need no
shared ``self`` that each mixin would have to assume. The short method names inside a repository (``add``,
``read``) would also collide as mixins.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from types import TracebackType
from typing import Any

import pandas as pd
from sqlalchemy import Engine

from labelflow.integrations.crowd.base import CrowdAnswer, Handle, LabelRequest
from labelflow.integrations.store.answers import AnswerTable
from labelflow.integrations.store.engine import Database
from labelflow.integrations.store.errors import StoreError
from labelflow.integrations.store.ingestion import IngestionTable
from labelflow.integrations.store.items import ItemTable
from labelflow.integrations.store.labels import LabelTable
from labelflow.integrations.store.leases import LeaseTable
from labelflow.integrations.store.models import ModelVersionRecord, ModelVersionTable
from labelflow.integrations.store.requests import RequestTable
from labelflow.integrations.store.rounds import RoundRecord, RoundTable
from labelflow.integrations.store.schema import RoundLease, ServeLease
from labelflow.integrations.store.workers import WorkerTable


class LabelStore:
    """A project's items, rounds, label requests, answers, labels, workers and model versions.

    Parameters
    ----------
    url : str
        Any SQLAlchemy URL for SQLite or PostgreSQL (``sqlite:///path/to/labels.db``; the parent directory is
        created). Opening the store applies any pending schema migrations.
    project : str
        The project whose rows this store reads and writes; several projects may share one database.

    Raises
    ------
    StoreError
        If ``project`` is empty or the URL names another kind of database.

    Examples
    --------
    >>> import pandas as pd
    >>> with LabelStore("sqlite://", "cats") as store:
    ...     store.add_items(pd.DataFrame({"item_id": ["a", "b"], "item_set": "pool"}))
    ...     store.open_round().number
    2
    1
    """

    def __init__(self, url: str, project: str) -> None:
        if not project:
            raise StoreError("a label store needs a non-empty project name")
        self.url = url
        self.project = project
        self._db = Database(url)
        self.engine: Engine = self._db.engine
        self._items = ItemTable(self._db, project)
        self._rounds = RoundTable(self._db, project)
        self._requests = RequestTable(self._db, project)
        self._workers = WorkerTable(self._db, project)
        self._answers = AnswerTable(self._db, project, self._workers)
        self._labels = LabelTable(self._db, project)
        self._models = ModelVersionTable(self._db, project)
        self._ingestion = IngestionTable(self._db, project)
        # One round, and one serve process, at a time: acquire, beat while running, release (see leases.py).
        self.round_lease = LeaseTable(self._db, project, RoundLease)
        self.serve_lease = LeaseTable(self._db, project, ServeLease)

    def close(self) -> None:
        """Release the store's connections."""
        self._db.close()

    def __enter__(self) -> LabelStore:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"LabelStore({self._db.display_url()!r}, project={self.project!r})"

    # ------------------------------------------------------------------ items

    def add_items(self, items: pd.DataFrame) -> int:
        """Insert the items not stored yet and return how many were added (idempotent).

        ``items`` has ``item_id`` and ``item_set`` and optionally ``known_label``. An item keeps the set it
        was first stored with: giving a stored item a different set raises :class:`StoreError`, since pool,
        gold and held-out must stay disjoint. A stored item's known label is not changed.
        """
        return self._items.add(items)

    def set_known_labels(self, labels: Mapping[str, str]) -> int:
        """Set the known labels of stored gold and held-out items (a cold start's, labeled by the project's owner
        after they were drawn); other items are left alone. Returns how many labels changed."""
        return self._items.set_known_labels(labels)

    def items(self, item_set: str | None = None) -> pd.DataFrame:
        """The project's items (``item_id``, ``item_set``, ``known_label``), in insertion order."""
        return self._items.read(item_set)

    def registered_partitions(self) -> set[str]:
        """The pool-store partitions (``labelflow.integrations.pool_store``) whose items are all stored."""
        return self._items.registered_partitions()

    def mark_registered(self, partition: str, n_items: int) -> None:
        """Record that every item of ``partition`` is stored (after :meth:`add_items` of them; idempotent)."""
        self._items.mark_registered(partition, n_items)

    def pool_items_added_since_last_round(self) -> int:
        """Pool items stored after the latest round started (all pool items if there is no round yet)."""
        return self._items.pool_added_since_last_round()

    # ------------------------------------------------------------------ rounds

    def open_round(self) -> RoundRecord:
        """The project's running round (``resumed=True``) if there is one, else a new running round numbered
        one past the highest (``resumed=False``). An interrupted round is resumed, never duplicated."""
        return self._rounds.open()

    def finish_round(
        self, round_id: int, status: str, summary: dict[str, Any] | None = None, error: str | None = None
    ) -> None:
        """Mark the round ``completed`` or ``failed`` with its finish time, summary (stored as JSON) and
        error. Calling it again overwrites the previous outcome."""
        self._rounds.finish(round_id, status, summary, error)

    def rounds(self) -> pd.DataFrame:
        """All the project's rounds by number: id, number, status, started_at, finished_at, summary (a dict
        or None), error."""
        return self._rounds.read()

    def round_number(self, round_id: int) -> int:
        """The per-project number (1, 2, 3…) of a round id; :class:`StoreError` if the project has no such
        round."""
        return self._rounds.number(round_id)

    # ------------------------------------------------------------------ label requests

    def add_requests(self, requests: Sequence[LabelRequest]) -> pd.DataFrame:
        """Store the requests whose key is new and return the stored rows for all given keys, in the given
        order (REQUEST_COLUMNS).

        A key already stored keeps its stored values, so rerunning a round returns what was requested the
        first time, including ``external_id``/``published_at`` if it was published. :class:`StoreError` if
        (round, item, wave) is already stored under a different key; then none of the batch is stored.
        """
        return self._requests.add(requests)

    def mark_published(self, handles: Sequence[Handle]) -> None:
        """Record each handle's ``external_id`` and ``published_at`` on its request (by key).

        Marking a request again with the same external id changes nothing; :class:`StoreError` for an unknown
        key or for a request already published under a different external id (that would mean paying twice).
        """
        self._requests.mark_published(handles)

    def requests(self, round_id: int, wave: int | None = None) -> pd.DataFrame:
        """The round's requests (REQUEST_COLUMNS), optionally one wave's, in insertion order."""
        return self._requests.read(round_id, wave)

    def handles(self, round_id: int, wave: int | None = None, *, expert: bool | None = None) -> list[Handle]:
        """The round's published requests (optionally one wave's; only the experts' or only the crowd's with
        ``expert`` True or False) as handles, enough to poll from another process."""
        return self._requests.handles(round_id, wave, expert=expert)

    def cancel_unpublished_requests(self, round_id: int) -> int:
        """Drop the round's requests that were never published (nothing was asked or paid for them), as a
        failed round does; returns how many. Published requests are kept: their answers may still arrive."""
        return self._requests.cancel_unpublished(round_id)

    def requested_answers(self, *, expert: bool | None = None) -> int:
        """Answers asked for by every published request of the project, gold included: what has been spent
        (only the experts' or only the crowd's with ``expert`` True or False)."""
        return self._requests.requested_answers(expert=expert)

    def requested_items(self, *, before_round: int | None = None, expert: bool | None = None) -> set[str]:
        """Items any request of the project asked about (only in rounds older than ``before_round`` if given;
        only experts' or only the crowd's requests with ``expert`` True or False)."""
        return self._requests.requested_items(before_round, expert=expert)

    # ------------------------------------------------------------------ answers

    def add_answers(self, answers: Sequence[CrowdAnswer]) -> int:
        """Append the answers whose ``answer_id`` is new, stamped with ``collected_at`` = now, and return
        how many were inserted. Each inserted answer adds one to its worker's ``n_answers`` (a new worker is
        created ``active``). Stored answers are never changed.

        :class:`StoreError` if an ``answer_id`` is already stored for another project: silently dropping it
        would lose an answer.
        """
        return self._answers.add(answers)

    def answers(self, round_id: int | None = None, *, parsed: bool = True) -> pd.DataFrame:
        """Stored answers in arrival order, for one round or (``None``) all the project's rounds.

        ``parsed=True``: answers with a label, columns exactly ``ANSWER_COLUMNS``, only a worker's latest one
        on an item in a round (the earlier versions of an edited answer stay stored). ``parsed=False``: the
        answers whose raw text did not parse, with ``answer_id, item_id, worker_id, raw, parse_error,
        round_id``.
        """
        return self._answers.read(round_id, parsed=parsed)

    def expert_answers(self, *, parsed: bool = True) -> pd.DataFrame:
        """Every answer of an expert (``answer_id, item_id, worker_id, label, round_id``; only those with a
        label when ``parsed``), in arrival order: an item's latest is its label from then on."""
        return self._answers.experts(parsed=parsed)

    def count_answers(self, round_id: int | None = None) -> int:
        """How many answers are stored (parsed or not), for one round or all the project's rounds."""
        return self._answers.count(round_id)

    # ------------------------------------------------------------------ labels

    def save_labels(self, labels: pd.DataFrame) -> None:
        """Store labels (``LABEL_COLUMNS``), replacing any stored label with the same (round_id, item_id,
        source): rerunning a round's aggregation replaces its labels, never duplicates them."""
        self._labels.save(labels)

    def labels(self, round_id: int | None = None, *, sources: Collection[str] | None = None) -> pd.DataFrame:
        """Labels (``LABEL_COLUMNS``): one round's, or (``None``) the latest per (item_id, source) across the
        project's rounds, the highest round number winning; only those of ``sources`` when given (a round's
        pseudo-labels may be millions of rows a reader of crowd labels need not read)."""
        return self._labels.read(round_id, sources)

    def best_labels(self, precedence: Sequence[str]) -> pd.DataFrame:
        """Each labeled item's best label (item_id, label, confidence, method, n_answers, source and its round's
        ``round`` number), ordered by item id: of the first source in ``precedence`` the item has a label of, the
        latest round's."""
        return self._labels.best(precedence)

    def latest_label_round(self, source: str) -> int | None:
        """The highest round number with a label of ``source``; None if no round has one."""
        return self._labels.latest_round(source)

    # ------------------------------------------------------------------ workers

    def update_workers(self, workers: pd.DataFrame) -> None:
        """Set ``status``, ``n_answers``, ``accuracy``, ``n_gold``, ``spammer_score`` and/or ``confusion`` (a JSON
        string; whichever columns the frame has) for workers keyed by (worker_id, backend), creating unknown
        workers (``active``, no answers yet)."""
        self._workers.update(workers)

    def workers(self) -> pd.DataFrame:
        """The project's workers (WORKER_COLUMNS), in the order they were first seen."""
        return self._workers.read()

    def blocked_workers(self, backend: str) -> set[str]:
        """Worker ids blocked on ``backend`` in this project."""
        return self._workers.blocked(backend)

    # ------------------------------------------------------------------ model versions

    def add_model_version(
        self, round_id: int, path: str, accuracy: float, metrics: dict[str, float], promoted: bool
    ) -> ModelVersionRecord:
        """Record a trained model (its file ``path``, held-out ``accuracy`` and ``metrics``) for a round.

        Idempotent per round: a round that already has a model version (a rerun after a kill) gets that
        version back unchanged, so a round never has two."""
        return self._models.add(round_id, path, accuracy, metrics, promoted)

    def model_version_of_round(self, round_id: int) -> ModelVersionRecord | None:
        """The model version recorded for the round, or None if it has none yet."""
        return self._models.of_round(round_id)

    def champion(self, excluding_round: int | None = None) -> ModelVersionRecord | None:
        """The most recently recorded promoted model version, or None if none was ever promoted.

        ``excluding_round`` leaves that round's own model out: the champion a round's model is compared with."""
        return self._models.champion(excluding_round)

    def model_versions(self) -> pd.DataFrame:
        """All the project's model versions in the order recorded (MODEL_VERSION_COLUMNS; metrics as
        dicts)."""
        return self._models.read()

    # ------------------------------------------------------------------ ingestion

    def ingestion(self, checksum: str) -> dict[str, Any] | None:
        """What became of the file with this content checksum, or None if it never arrived."""
        return self._ingestion.get(checksum)

    def record_ingestion(
        self,
        *,
        checksum: str,
        filename: str,
        stored_at: str,
        status: str,
        n_rows: int,
        n_added: int,
        report: str | None = None,
    ) -> bool:
        """Remember a file by its checksum; False (and nothing written) if that content arrived before."""
        return self._ingestion.record(
            checksum=checksum,
            filename=filename,
            stored_at=stored_at,
            status=status,
            n_rows=n_rows,
            n_added=n_added,
            report=report,
        )

    def ingested_files(self, status: str | None = None) -> pd.DataFrame:
        """The files ingested so far, oldest first: checksum, filename, stored_at, status, n_rows, n_added,
        report, ingested_at."""
        return self._ingestion.read(status)
