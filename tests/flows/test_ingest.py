"""Ingestion from a local folder and from S3 (moto's server on 127.0.0.1), under the session's Prefect harness."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from prefect import flow
from typer.testing import CliRunner

from labelflow.contracts import ItemSet
from labelflow.flows.cli import app
from labelflow.flows.config import ProjectConfig, parse_config
from labelflow.flows.ingest import check_arrival, ingest_file, watch_inbox
from labelflow.flows.project import Project
from labelflow.integrations.datasets import digits_table
from labelflow.integrations.inbox import LocalInbox, checksum
from labelflow.integrations.pool_store import store_arrival

pytestmark = [pytest.mark.flow, pytest.mark.usefixtures("prefect_harness")]


def project_config(folder: Path, **inbox: Any) -> ProjectConfig:
    digits_table(0, 200).to_csv(folder / "base.csv", index=False)
    return parse_config(
        {
            "name": "ingest-test",
            "store_url": f"sqlite:///{folder / 'store.db'}",
            "workdir": str(folder / "work"),
            "dataset": {"source": "base.csv", "id_column": "id", "n_gold": 10},
            "inbox": {"url": "inbox", "round_after_items": 50, **inbox},
        }
    )


def test_a_valid_file_joins_the_pool_once_and_a_bad_one_is_quarantined(tmp_path: Path) -> None:
    config = project_config(tmp_path)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    digits_table(200, 260).to_csv(inbox / "batch-1.csv", index=False)
    bad = digits_table(260, 280)
    bad.loc[4, "px9"] = np.inf
    bad.to_csv(inbox / "batch-2.csv", index=False)

    results = {r.name: r for r in watch_inbox(config, str(tmp_path))}
    assert results["batch-1.csv"].status == "processed" and results["batch-1.csv"].n_added == 60
    assert results["batch-2.csv"].status == "quarantined" and results["batch-2.csv"].n_added == 0
    assert (inbox / "processed" / "batch-1.csv").exists()
    report = (inbox / "quarantine" / "batch-2.csv.report.txt").read_text()
    assert "px9" in report and "inf" in report
    assert list(inbox.glob("*.csv")) == []

    project = Project(config, tmp_path)
    pool = project.dataset.frame(ItemSet.POOL)
    assert {"d0200", "d0259"} <= set(pool["item_id"]) and "d0264" not in set(pool["item_id"])
    assert project.store.pool_items_added_since_last_round() == len(project.store.items("pool"))
    project.close()

    # the same content again, under another name: filed as a duplicate, nothing added
    (inbox / "again.csv").write_bytes((inbox / "processed" / "batch-1.csv").read_bytes())
    again = ingest_file(config, "again.csv", str(tmp_path))
    assert again.status == "duplicate" and again.n_added == 0
    store = Project(config, tmp_path).store
    assert len(store.ingested_files()) == 2
    store.close()


def test_a_file_with_ids_the_project_has_is_quarantined_naming_them(tmp_path: Path) -> None:
    config = project_config(tmp_path)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    digits_table(200, 260).to_csv(inbox / "batch-1.csv", index=False)
    assert ingest_file(config, "batch-1.csv", str(tmp_path)).status == "processed"
    digits_table(195, 201).to_csv(inbox / "source-again.csv", index=False)  # the source's, before any round
    digits_table(255, 270).to_csv(inbox / "batch-1-again.csv", index=False)  # an ingested file's

    results = {r.name: r for r in watch_inbox(config, str(tmp_path))}
    for name, clashes in [("source-again.csv", 6), ("batch-1-again.csv", 5)]:
        assert results[name].status == "quarantined" and results[name].n_added == 0
        report = (inbox / "quarantine" / f"{name}.report.txt").read_text()
        assert f"{clashes} item id(s) already in the project" in report, report
    assert "'d0195'" in (inbox / "quarantine" / "source-again.csv.report.txt").read_text()
    with Project(config, tmp_path) as project:
        assert project.dataset.items["item_id"].is_unique


def test_a_file_with_a_label_outside_the_projects_labels_is_quarantined_naming_row_item_and_label(
    tmp_path: Path,
) -> None:
    config = project_config(tmp_path)
    config_file = tmp_path / "labelflow.toml"
    config_file.write_text(
        f'name = "ingest-test"\nstore_url = "{config.store_url}"\nworkdir = "{config.workdir}"\n'
        '[dataset]\nsource = "base.csv"\nid_column = "id"\nn_gold = 10\n[inbox]\nurl = "inbox"\n'
    )
    (tmp_path / "inbox").mkdir()
    arrival = digits_table(200, 230)
    arrival["label"] = arrival["label"].astype(object)
    arrival.loc[3, "label"] = "cat"
    arrival.to_csv(tmp_path / "cats.csv", index=False)

    result = CliRunner().invoke(app, ["ingest", str(tmp_path / "cats.csv"), "-c", str(config_file)])
    assert "quarantined" in result.output, result.output
    report = (tmp_path / "inbox" / "quarantine" / "cats.csv.report.txt").read_text()
    assert "row 3" in report and "'d0203'" in report and "'cat'" in report
    project = Project(config, tmp_path)
    assert not {"d0200", "d0203"} & set(project.store.items()["item_id"])
    project.close()


def test_a_file_still_being_copied_in_under_a_hidden_name_is_not_picked_up(tmp_path: Path) -> None:
    (tmp_path / ".upload.csv").write_text("id,px0\nd1,0\n")  # half-written: renamed to upload.csv when whole
    (tmp_path / "notes.txt").write_text("not data")
    (tmp_path / "ready.parquet").write_bytes(b"")
    assert LocalInbox(tmp_path).waiting() == ["ready.parquet"]
    (tmp_path / ".upload.csv").rename(tmp_path / "upload.csv")
    assert LocalInbox(tmp_path).waiting() == ["ready.parquet", "upload.csv"]


def test_an_interrupted_ingestion_is_finished_by_the_next_run(tmp_path: Path) -> None:
    config = project_config(tmp_path)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    digits_table(200, 230).to_csv(inbox / "late.csv", index=False)
    project = Project(config, tmp_path)
    content = (inbox / "late.csv").read_bytes()
    # the crash came after the store recorded the ingestion and before the file moved
    project.store.record_ingestion(
        checksum=checksum(content),
        filename="late.csv",
        stored_at=str(inbox / "processed" / "late.csv"),
        status="processed",
        n_rows=30,
        n_added=30,
    )
    (inbox / "processed").mkdir()
    project.close()
    result = ingest_file(config, "late.csv", str(tmp_path))
    assert result.status == "processed" and result.n_added == 30
    assert (inbox / "processed" / "late.csv").exists() and not (inbox / "late.csv").exists()


def test_a_round_registers_only_the_pool_partitions_the_store_has_not_registered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The source once; a file's items at its ingestion; a file whose ingestion stopped after storing its rows
    and before registering its items, at the next round; nothing at the rounds after."""
    from labelflow.flows.labeling_round import register_items

    config = project_config(tmp_path)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    digits_table(200, 230).to_csv(inbox / "batch-1.csv", index=False)

    @flow
    def registered_by_a_round() -> list[int]:
        """How many items each add_items call of a round's registration was given."""
        given: list[int] = []
        with Project(config, tmp_path) as project:
            add_items = project.store.add_items
            monkeypatch.setattr(
                project.store, "add_items", lambda items: given.append(len(items)) or add_items(items)
            )
            register_items(project, round_number=1)
            assert len(project.store.items()) == len(project.dataset.items)  # every item, once
        return given

    assert registered_by_a_round() == [200]
    assert registered_by_a_round() == []
    watch_inbox(config, str(tmp_path))
    assert registered_by_a_round() == []  # its ingestion registered batch-1's items
    processed = inbox / "processed" / "batch-2.csv"
    digits_table(230, 250).to_csv(processed, index=False)
    with Project(config, tmp_path) as project:  # an ingestion that stopped after storing the file's rows
        digest = checksum(processed.read_bytes())
        project.store.record_ingestion(
            checksum=digest,
            filename="batch-2.csv",
            stored_at=str(processed),
            status="processed",
            n_rows=20,
            n_added=20,
        )
        store_arrival(
            project.workdir, digest, check_arrival(processed.read_bytes(), "batch-2.csv", project)[0]
        )
    assert registered_by_a_round() == [20]
    assert registered_by_a_round() == []


def test_ingesting_a_file_named_like_one_waiting_in_the_inbox_keeps_both(tmp_path: Path) -> None:
    config = project_config(tmp_path)
    config_file = tmp_path / "labelflow.toml"
    config_file.write_text(
        f'name = "ingest-test"\nstore_url = "{config.store_url}"\nworkdir = "{config.workdir}"\n'
        '[dataset]\nsource = "base.csv"\nid_column = "id"\nn_gold = 10\n[inbox]\nurl = "inbox"\n'
    )
    (tmp_path / "inbox").mkdir()
    digits_table(200, 230).to_csv(tmp_path / "inbox" / "new.csv", index=False)
    waiting = (tmp_path / "inbox" / "new.csv").read_bytes()
    (tmp_path / "other").mkdir()
    digits_table(230, 260).to_csv(tmp_path / "other" / "new.csv", index=False)

    result = CliRunner().invoke(app, ["ingest", str(tmp_path / "other" / "new.csv"), "-c", str(config_file)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "inbox" / "new.csv").read_bytes() == waiting  # still waiting, untouched
    assert (tmp_path / "inbox" / "processed" / "new.1.csv").exists()
    [later] = watch_inbox(config, str(tmp_path))
    assert later.name == "new.csv" and later.n_added == 30
    project = Project(config, tmp_path)
    assert {"d0200", "d0229", "d0230", "d0259"} <= set(project.dataset.frame(ItemSet.POOL)["item_id"])
    project.close()


def test_a_symbolic_link_in_the_inbox_is_quarantined_unread(tmp_path: Path) -> None:
    config = project_config(tmp_path)
    inbox, outside = tmp_path / "inbox", tmp_path / "outside"
    inbox.mkdir()
    outside.mkdir()
    digits_table(200, 230).to_csv(outside / "features.csv", index=False)
    (outside / "secret.txt").write_text("password=hunter2\n")
    (inbox / "features.csv").symlink_to(outside / "features.csv")
    (inbox / "secret.csv").symlink_to(outside / "secret.txt")

    results = {r.name: r for r in watch_inbox(config, str(tmp_path))}
    for name in ("features.csv", "secret.csv"):
        assert results[name].status == "quarantined" and results[name].n_added == 0
        report = (inbox / "quarantine" / f"{name}.report.txt").read_text()
        assert "symbolic link" in report and "hunter2" not in report
        assert (inbox / "quarantine" / name).is_symlink()
    assert (outside / "features.csv").exists() and (outside / "secret.txt").exists()
    project = Project(config, tmp_path)
    assert "d0200" not in set(project.dataset.items["item_id"])
    project.close()


@pytest.fixture()
def s3_endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(key, value)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


def test_files_in_an_s3_prefix_are_ingested_and_filed_under_it(tmp_path: Path, s3_endpoint: str) -> None:
    import boto3

    s3 = boto3.client("s3", endpoint_url=s3_endpoint)
    s3.create_bucket(Bucket="labels")
    s3.put_object(
        Bucket="labels", Key="incoming/new.csv", Body=digits_table(200, 240).to_csv(index=False).encode()
    )
    s3.put_object(Bucket="labels", Key="incoming/notes.txt", Body=b"not data")
    config = project_config(tmp_path, url="s3://labels/incoming", s3_endpoint_url=s3_endpoint)

    [result] = watch_inbox(config, str(tmp_path))
    assert result.status == "processed" and result.n_added == 40
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket="labels")["Contents"]}
    assert keys == {"incoming/processed/new.csv", "incoming/notes.txt"}
    project = Project(config, tmp_path)
    assert "d0239" in set(project.dataset.items["item_id"])  # read back from S3 for the round
    project.close()
