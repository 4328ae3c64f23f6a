"""`labelflow store migrate --to postgresql+psycopg://...` moves a SQLite store to a real PostgreSQL server:
every table and project, verified, idempotently; never a password in a URL."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from labelflow.flows.cli import app
from labelflow.integrations.crowd.base import CrowdAnswer, Handle, LabelRequest
from labelflow.integrations.store import LabelStore, LeaseHolder, StoreError
from labelflow.integrations.store.transfer import copy_store

runner = CliRunner()
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def _fill(store: LabelStore, items: list[str], worker: str) -> int:
    """A round with items, published requests, answers, labels, workers, a model, a file and a lease."""
    store.add_items(pd.DataFrame({"item_id": items, "item_set": "pool", "known_label": "cat"}))
    round_id = store.open_round().id
    requests = [
        LabelRequest(key=f"{round_id}-{i}", item_id=i, round_id=round_id, wave=1, n_answers=1) for i in items
    ]
    store.add_requests(requests)
    store.mark_published(
        [Handle(r.key, f"HIT-{r.key}", r.item_id, round_id, 1, 1, False, NOW) for r in requests]
    )
    store.add_answers(
        [
            CrowdAnswer(
                f"{store.project}-{r.key}",
                r.key,
                r.item_id,
                worker,
                round_id,
                1,
                False,
                "cat",
                "cat",
                None,
                NOW,
                "sim",
            )
            for r in requests
        ]
    )
    store.save_labels(
        pd.DataFrame(
            {"round_id": round_id, "item_id": items, "label": "cat", "confidence": 0.9, "method": "mv",
             "n_answers": 1, "source": "crowd"}
        )
    )  # fmt: skip
    store.add_model_version(round_id, f"model-{round_id}.joblib", 0.8, {"f1": 0.7}, promoted=True)
    store.record_ingestion(
        checksum=f"sum-{round_id}-{store.project}", filename="new.csv", stored_at="processed/new.csv",
        status="processed", n_rows=len(items), n_added=len(items),
    )  # fmt: skip
    store.serve_lease.acquire(LeaseHolder("host", 1, "a"), lambda _: False)
    store.finish_round(round_id, "completed", {"accuracy": 0.8})
    return round_id


def _everything(store: LabelStore) -> dict[str, pd.DataFrame]:
    return {
        "items": store.items().drop(columns=[], errors="ignore"),
        "rounds": store.rounds(),
        "requests": pd.concat([store.requests(int(r)) for r in store.rounds()["id"]], ignore_index=True),
        "answers": store.answers(),
        "labels": store.labels(),
        "workers": store.workers(),
        "models": store.model_versions(),
        "files": store.ingested_files(),
    }


def _same(source: LabelStore, target: LabelStore) -> None:
    theirs = _everything(target)
    for name, frame in _everything(source).items():
        pd.testing.assert_frame_equal(theirs[name], frame, check_dtype=False, obj=name)
    theirs, ours = target.serve_lease.current(), source.serve_lease.current()
    assert (theirs and (theirs.holder, theirs.host, theirs.pid)) == (
        ours and (ours.holder, ours.host, ours.pid)
    )


def test_migrate_moves_a_sqlite_store_to_postgresql_idempotently(
    tmp_path: Path, postgres_database: str
) -> None:
    (tmp_path / "labelflow.toml").write_text('name = "cats"\nstore_url = "sqlite:///store.db"\n')
    with (
        LabelStore(f"sqlite:///{tmp_path / 'store.db'}", "cats") as cats,
        LabelStore(f"sqlite:///{tmp_path / 'store.db'}", "dogs") as dogs,
    ):
        _fill(cats, ["a", "b", "c"], "w1")
        _fill(dogs, ["a", "x"], "w2")  # another project in the same file moves too

    def migrate() -> str:
        result = runner.invoke(
            app, ["store", "migrate", "--to", postgres_database, "-c", str(tmp_path / "labelflow.toml")]
        )
        assert result.exit_code == 0, result.output
        return result.output

    with LabelStore(f"sqlite:///{tmp_path / 'store.db'}", "cats") as cats:
        round_id = cats.open_round().id
        cats.add_requests(
            [LabelRequest(key="never-sent", item_id="a", round_id=round_id, wave=1, n_answers=1)]
        )
    first = migrate()
    assert "now a copy of the store" in first and f'store_url = "{postgres_database}"' in first
    assert "Nothing to do" in migrate()  # a second run changes nothing

    with LabelStore(f"sqlite:///{tmp_path / 'store.db'}", "cats") as cats:
        # The old store kept working: the round failed and its unpublished request went (deleted rows), the next
        # round ran, the lease was released and taken again.
        assert cats.cancel_unpublished_requests(round_id) == 1
        cats.finish_round(round_id, "failed", error="stopped")
        _fill(cats, ["d"], "w1")
        cats.serve_lease.release(LeaseHolder("host", 1, "a"))
        cats.serve_lease.acquire(LeaseHolder("host", 2, "b"), lambda _: False)
    assert "now a copy of the store" in migrate()
    for project in ("cats", "dogs"):
        with (
            LabelStore(f"sqlite:///{tmp_path / 'store.db'}", project) as source,
            LabelStore(postgres_database, project) as target,
        ):
            _same(source, target)
    with LabelStore(postgres_database, "cats") as target:
        # The id sequences moved past the copied ids: new rows get new ids on PostgreSQL.
        assert target.open_round().number == 4
        assert target.add_items(pd.DataFrame({"item_id": ["e"], "item_set": "pool"})) == 1


def test_migrate_refuses_a_target_holding_another_store_and_writes_nothing(
    tmp_path: Path, postgres_database: str
) -> None:
    source_url = f"sqlite:///{tmp_path / 'store.db'}"
    with LabelStore(source_url, "cats") as cats:
        _fill(cats, ["a", "b"], "w1")
    with LabelStore(postgres_database, "cats") as other:
        other.add_items(pd.DataFrame({"item_id": ["z"], "item_set": "gold"}))  # id 1, a different item
    with pytest.raises(StoreError, match=r"target already holds other data: table 'items'.*has the id of"):
        copy_store(source_url, postgres_database)
    with LabelStore(postgres_database, "cats") as other:
        assert other.items()["item_id"].tolist() == ["z"] and other.rounds().empty


def test_a_password_in_a_url_is_refused_naming_where_it_belongs(tmp_path: Path) -> None:
    config = tmp_path / "labelflow.toml"
    config.write_text('store_url = "postgresql+psycopg://labelflow:hunter2@db.internal/labels"\n')
    result = runner.invoke(app, ["status", "-c", str(config)])
    assert result.exit_code == 2
    assert "store_url: Value error, holds a password" in result.output and "PGPASSWORD" in result.output
    assert "store_password_secret" in result.output and "hunter2" not in result.output

    config.write_text('store_url = "sqlite:///store.db"\n')
    result = runner.invoke(
        app, ["store", "migrate", "--to", "postgresql+psycopg://u:hunter2@db/x", "-c", str(config)]
    )
    assert result.exit_code == 2 and "PGPASSWORD" in result.output and "hunter2" not in result.output


def test_a_wrong_or_missing_password_says_where_the_password_comes_from(
    postgres_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PGPASSWORD", "not-the-password")
    with pytest.raises(StoreError, match=r"password authentication failed.*set PGPASSWORD"):
        LabelStore(postgres_database, "cats")


def test_migrate_refuses_a_target_that_was_written_to_after_it_became_the_store(
    tmp_path: Path, postgres_database: str
) -> None:
    source_url = f"sqlite:///{tmp_path / 'store.db'}"
    with LabelStore(source_url, "cats") as cats:
        _fill(cats, ["a"], "w1")
    copy_store(source_url, postgres_database)
    with LabelStore(postgres_database, "cats") as moved:
        moved.open_round()  # the project runs on PostgreSQL now: migrating the old file again must not undo this
    with pytest.raises(StoreError, match="'rounds': 1 row\\(s\\) the source does not have"):
        copy_store(source_url, postgres_database)
    with LabelStore(postgres_database, "cats") as moved:
        assert moved.rounds()["status"].tolist() == ["completed", "running"]
