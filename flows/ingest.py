"""Ingestion: new files in the inbox become pool items, once, and a round starts when enough have arrived.

A file is identified by its content's checksum. The ingestion is recorded in the store *before* the file moves,
at the location it is about to move to, so a crash at any point is finished by the next run: a file whose
checksum is known but which is still in the inbox is moved to where the record says, and adding its items is
idempotent. The same content arriving again adds nothing and is filed as a duplicate.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import pandas as pd
from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from labelflow.contracts import ITEM_ID, ItemSet
from labelflow.flows.config import ProjectConfig
from labelflow.flows.events import DATA_ARRIVED, POOL_GREW, THRESHOLD_LABEL, emit
from labelflow.flows.project import Project
from labelflow.integrations.datasets import DatasetError, check_labels, items_from_table, read_table
from labelflow.integrations.inbox import RefusedFileError, checksum
from labelflow.integrations.pool_store import arrival_partition, store_arrival
from labelflow.tasks.validation import validate_pool


@dataclass(frozen=True)
class IngestResult:
    name: str
    checksum: str
    status: str  # "processed", "quarantined", "duplicate", or "taken" (by a concurrent ingestion)
    n_rows: int
    n_added: int
    location: str
    report: str | None = None


def check_arrival(content: bytes | BinaryIO, name: str, project: Project) -> tuple[pd.DataFrame, str | None]:
    """The file's rows as items, and a report of what is wrong with them (None if nothing is)."""
    dataset = project.dataset
    try:
        table = read_table(content, name, text_columns=(project.config.dataset.id_column,))
        frame = items_from_table(
            table, project.config.dataset, name, dataset.feature_columns, image_dir=project.base_dir
        )
        # an item labeled outside the project's labels could never be answered: the simulated crowd and the
        # aggregation know only these names, so the round that selects it would fail on every rerun
        check_labels(frame["_label"], frame, dataset.label_names, name)
    except DatasetError as error:
        return pd.DataFrame(), str(error)
    # a text or image arrival has no features yet: the project's featurizer derives them when the pool is loaded
    report = validate_pool(frame, [] if dataset.kind != "table" else dataset.feature_columns)
    problems = [outcome.describe() for outcome in report.failures()]
    # the project's items are its dataset's (its source too, registered in the store only by its first round)
    # and the store's (an item its source no longer has keeps its set there)
    known = frame[ITEM_ID].isin(dataset.items[ITEM_ID]) | frame[ITEM_ID].isin(project.store.items()[ITEM_ID])
    if known.any():
        clashes = sorted(frame.loc[known, ITEM_ID].unique())
        problems.append(f"{len(clashes)} item id(s) already in the project, e.g. {clashes[:5]}")
    if problems:
        return frame, f"{name} was not ingested:\n" + "\n".join(f"  - {p}" for p in problems)
    return frame, None


@flow(name="ingest-file", flow_run_name="ingest-{name}")
def ingest_file(config: ProjectConfig, name: str, base_dir: str = ".") -> IngestResult:
    """Ingest one file from the inbox: validate it, add its items to the pool, file it away, emit events."""
    project = Project(config, Path(base_dir).resolve())
    try:
        return _ingest(project, name)
    finally:
        project.close()


def _ingest(project: Project, name: str) -> IngestResult:
    logger = get_run_logger()
    inbox = project.inbox
    try:
        file = inbox.open(name)
    except FileNotFoundError:
        logger.info("%s is gone from the inbox: another ingestion took it", name)
        return IngestResult(name, "", "taken", 0, 0, "")
    except RefusedFileError as refusal:
        report = f"{name} was not ingested:\n  - {refusal}"
        location = inbox.plan(name, "quarantine")
        inbox.move(name, location, report)
        logger.error(report)
        return _announce(project, IngestResult(name, "", "quarantined", 0, 0, location, report))
    # read through the open file (checksum, then the rows), never held whole: 2M x 64 floats are 800 MB
    with file:
        return _announce(project, _ingest_file(project, name, file))


def _ingest_file(project: Project, name: str, file: BinaryIO) -> IngestResult:
    logger = get_run_logger()
    store, inbox = project.store, project.inbox
    digest = checksum(file)
    known = store.ingestion(digest)
    if known is not None and not inbox.exists(str(known["stored_at"])):
        logger.info("%s: finishing an ingestion that was interrupted", name)
        inbox.move(name, str(known["stored_at"]), known["report"])
        result = IngestResult(
            name,
            digest,
            str(known["status"]),
            int(known["n_rows"]),
            0,
            str(known["stored_at"]),
            known["report"],
        )
        if result.status == "processed":
            frame, _ = check_arrival(file, name, project)
            added = _add_to_pool(project, digest, frame)
            result = IngestResult(name, digest, "processed", len(frame), added, result.location)
        return result
    if known is not None:
        report = f"{name} has the same content as {known['filename']}, ingested before; nothing added"
        location = inbox.plan(name, "processed")
        inbox.move(name, location, report)
        logger.info(report)
        return IngestResult(name, digest, "duplicate", 0, 0, location, report)

    frame, problems = check_arrival(file, name, project)
    status = "quarantined" if problems else "processed"
    location = inbox.plan(name, "quarantine" if problems else "processed")
    claimed = store.record_ingestion(
        checksum=digest,
        filename=name,
        stored_at=location,
        status=status,
        n_rows=len(frame),
        n_added=0 if problems else len(frame),
        report=problems,
    )
    if not claimed:  # another ingestion of the same content got there first and files it
        logger.info("%s is being ingested by another run", name)
        return IngestResult(name, digest, "taken", len(frame), 0, "")
    inbox.move(name, location, problems)
    added = 0 if problems else _add_to_pool(project, digest, frame)
    if problems:
        logger.error(problems)
    else:
        logger.info("%s: %d rows, %d new pool items", name, len(frame), added)
    return IngestResult(name, digest, status, len(frame), added, location, problems)


def _add_to_pool(project: Project, digest: str, frame: pd.DataFrame) -> int:
    """The file's rows as a pool-store partition (parsed once, here: later runs read the partition, never the
    file), its items in the label store, and the partition listed as registered there, so that rounds skip it."""
    items = frame[[ITEM_ID]].assign(item_set=ItemSet.POOL.value)
    # side by side: the partition's hashing and Parquet writing leave the GIL to the store's inserts, whose SQLite
    # steps leave it in turn (benchmarks/ingest_pairs.py times it against the code before). A crash may leave either
    # done without the other, as one before the other could: the next load stores a missing partition, and a round
    # registers its items.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="pool-partition") as partition_writer:
        written = partition_writer.submit(store_arrival, project.workdir, digest, frame)
        added = project.store.add_items(items)
        written.result()
    project.store.mark_registered(arrival_partition(digest), len(frame))
    return added


def _announce(project: Project, result: IngestResult) -> IngestResult:
    """Events and an artifact for the file; a pool-growth event that may trigger a round."""
    config = project.config
    emit(
        DATA_ARRIVED,
        config.name,
        {
            "file": result.name,
            "checksum": result.checksum,
            "status": result.status,
            "rows": result.n_rows,
            "added": result.n_added,
            "location": result.location,
        },
    )
    create_markdown_artifact(
        markdown=f"# Ingested `{result.name}`: {result.status}\n\n"
        f"{result.n_rows} rows, {result.n_added} new pool items, filed at `{result.location}`.\n\n"
        + (f"```\n{result.report}\n```\n" if result.report else ""),
        description=f"Ingestion of {result.name}",
    )
    if result.status == "processed" and result.n_added:
        since = project.store.pool_items_added_since_last_round()
        reached = since >= config.inbox.round_after_items
        emit(
            POOL_GREW,
            config.name,
            {
                "added": result.n_added,
                "added_since_last_round": since,
                "threshold": config.inbox.round_after_items,
            },
            **{THRESHOLD_LABEL: "true" if reached else "false"},
        )
        get_run_logger().info(
            "pool grew by %d (%d since the last round%s)",
            result.n_added,
            since,
            ": a round is due" if reached else "",
        )
    return result


@flow(name="watch-inbox", flow_run_name="watch-inbox")
def watch_inbox(config: ProjectConfig, base_dir: str = ".") -> list[IngestResult]:
    """Ingest every file waiting in the inbox."""
    project = Project(config, Path(base_dir).resolve())
    try:
        waiting = project.inbox.waiting()
    finally:
        project.close()
    if waiting:
        get_run_logger().info("%d file(s) waiting: %s", len(waiting), ", ".join(waiting))
    return [ingest_file(config, name, base_dir) for name in waiting]
