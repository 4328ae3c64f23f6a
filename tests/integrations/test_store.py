"""The label store: migrations, idempotency, round bookkeeping, versioned labels and project isolation."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, select, text, update
from sqlalchemy.exc import IntegrityError

from labelflow.contracts import ANSWER_COLUMNS, LABEL_COLUMNS
from labelflow.integrations.crowd.base import EXPERT_WAVE, CrowdAnswer, Handle, LabelRequest
from labelflow.integrations.store import (
    ITEM_COLUMNS,
    MODEL_VERSION_COLUMNS,
    REQUEST_COLUMNS,
    ROUND_COLUMNS,
    UNPARSED_ANSWER_COLUMNS,
    WORKER_COLUMNS,
    LabelStore,
    LeaseHolder,
    RoundRecord,
    StoreError,
)
from labelflow.integrations.store.engine import MIGRATIONS_DIR, Database
from labelflow.integrations.store.leases import LeaseTable
from labelflow.integrations.store.repository import unique_by
from labelflow.integrations.store.schema import Base, Item, RoundLease

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def _url(path: Path) -> str:
    return f"sqlite:///{path}"


@pytest.fixture
def db_url(store_url: str) -> str:
    """Every test taking the store or its URL runs on SQLite and on PostgreSQL (see conftest.py)."""
    return store_url


@pytest.fixture
def store(db_url: str) -> Iterator[LabelStore]:
    s = LabelStore(db_url, "cats")
    yield s
    s.close()


def _items(ids: list[str], item_set: str, labels: list[str | None] | None = None) -> pd.DataFrame:
    frame = pd.DataFrame({"item_id": ids, "item_set": [item_set] * len(ids)})
    if labels is not None:
        frame["known_label"] = labels
    return frame


def _request(round_id: int, item_id: str, wave: int = 1, n: int = 3) -> LabelRequest:
    return LabelRequest(
        key=f"r{round_id}-{item_id}-w{wave}", item_id=item_id, round_id=round_id, wave=wave, n_answers=n
    )


def _answer(
    answer_id: str, round_id: int, item_id: str, worker: str, label: str | None, backend: str = "sim"
) -> CrowdAnswer:
    return CrowdAnswer(
        answer_id=answer_id,
        request_key=f"r{round_id}-{item_id}-w1",
        item_id=item_id,
        worker_id=worker,
        round_id=round_id,
        wave=1,
        is_gold=False,
        raw=label if label is not None else "¯\\_(ツ)_/¯",
        label=label,
        parse_error=None if label is not None else "not one of the choices",
        submitted_at=NOW,
        backend=backend,
    )


def _labels(
    round_id: int, pairs: dict[str, str], source: str = "crowd", confidence: float = 0.9
) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "item_id": list(pairs),
            "label": list(pairs.values()),
            "confidence": [confidence] * len(pairs),
            "method": ["majority"] * len(pairs),
            "n_answers": [3] * len(pairs),
            "round_id": [round_id] * len(pairs),
            "source": [source] * len(pairs),
        }
    )


# ---------------------------------------------------------------------- schema and connection


def test_migration_creates_schema_matching_orm(store: LabelStore) -> None:
    with store.engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
        assert diffs == []
        scripts = ScriptDirectory(str(MIGRATIONS_DIR))
        assert len(scripts.get_heads()) == 1, f"migrations must form one line, heads: {scripts.get_heads()}"
        assert conn.scalar(text("SELECT version_num FROM alembic_version")) == scripts.get_current_head()
        inspector = inspect(conn)
        for table in Base.metadata.sorted_tables:
            # Check constraints are not compared by autogenerate; their names must still match the ORM's.
            orm_checks = {c.name for c in table.constraints if c.__class__.__name__ == "CheckConstraint"}
            db_checks = {c["name"] for c in inspector.get_check_constraints(table.name)}
            assert db_checks == orm_checks, table.name
        running = [i for i in inspector.get_indexes("rounds") if i["name"] == "uq_rounds_one_running"]
        assert running and running[0]["unique"]


def test_reopening_does_not_migrate_again(db_url: str) -> None:
    LabelStore(db_url, "cats").close()
    again = LabelStore(db_url, "cats")
    with again.engine.connect() as conn:
        assert conn.scalar(text("SELECT count(*) FROM alembic_version")) == 1
    again.close()


def test_a_store_with_two_model_rows_for_a_round_keeps_the_latest_when_migrated(db_url: str) -> None:
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import create_engine

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("path_separator", "os")
    engine = create_engine(db_url)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0004")
        conn.execute(
            text(
                "INSERT INTO rounds (project, number, status, started_at) VALUES ('cats', 1, 'running', :t)"
            ),
            {"t": NOW},
        )
        for path in ("killed.joblib", "rerun.joblib"):
            conn.execute(
                text(
                    "INSERT INTO model_versions (project, round_id, path, accuracy, metrics, promoted, created_at)"
                    " VALUES ('cats', 1, :path, 0.8, '{}', true, :t)"
                ),
                {"path": path, "t": NOW},
            )
    engine.dispose()

    migrated = LabelStore(db_url, "cats")
    try:
        assert migrated.model_versions()["path"].tolist() == ["rerun.joblib"]
    finally:
        migrated.close()


def test_sqlite_file_in_wal_mode_with_busy_timeout_and_foreign_keys(tmp_path: Path) -> None:
    path = tmp_path / "not" / "yet" / "there.db"
    s = LabelStore(_url(path), "cats")
    assert path.exists()
    with s.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    s.close()


def test_opening_a_store_leaves_application_logging_alone(db_url: str) -> None:
    app_logger = logging.getLogger("labelflow.test.app")
    root_handlers = list(logging.getLogger().handlers)
    LabelStore(db_url, "cats").close()
    assert not app_logger.disabled  # logging.config.fileConfig would have disabled it
    assert logging.getLogger().handlers == root_handlers


def test_unsupported_database_is_refused() -> None:
    with pytest.raises(StoreError, match="unsupported database"):
        LabelStore("mysql://u:secret@localhost/labels", "cats")


# ---------------------------------------------------------------------- items


# how add_items finds what is stored: each given id looked up (up to 50,000 of them), or every stored item read
BOTH_LOOKUPS = pytest.mark.parametrize("looked_up", [50_000, 0], ids=["by-id", "read-all"])


@BOTH_LOOKUPS
def test_add_items_is_idempotent(store: LabelStore, looked_up: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("labelflow.integrations.store.items._LOOKED_UP", looked_up)
    pool = _items([f"p{i}" for i in range(10_000)], "pool")
    assert store.add_items(pool) == 10_000
    assert store.add_items(pool) == 0
    assert store.add_items(_items(["g1", "g2"], "gold", ["cat", None])) == 2
    assert store.add_items(_items(["g1", "g3"], "gold", ["dog", "dog"])) == 1  # g1 keeps its stored label

    assert len(store.items()) == 10_003
    gold = store.items("gold")
    assert list(gold.columns) == list(ITEM_COLUMNS)
    assert gold["item_id"].tolist() == ["g1", "g2", "g3"]
    assert gold["known_label"].iloc[0] == "cat"
    assert pd.isna(gold["known_label"].iloc[1])
    assert list(store.items("held_out").columns) == list(ITEM_COLUMNS)


def test_added_items_keep_a_project_name_with_quotes_and_percent_signs_and_their_time(db_url: str) -> None:
    """The values all added items share go into the insert as SQL literals: quoted and escaped, not bound."""
    name = "o'brien's 100% (50%s) project"
    quoted, other = LabelStore(db_url, name), LabelStore(db_url, "o")
    db = Database(db_url)
    try:
        before = datetime.now(UTC)
        many = _items([f"q{i}" for i in range(700)], "pool")  # more than one statement's rows
        assert quoted.add_items(many) == 700
        after = datetime.now(UTC)
        assert other.add_items(_items(["q1"], "pool")) == 1
        assert len(quoted.items()) == 700 and other.items()["item_id"].tolist() == ["q1"]
        with db.read() as conn:
            stored = conn.execute(select(Item.added_at).where(Item.project == name)).scalars().all()
        assert len(stored) == 700 and all(before <= at <= after for at in stored)
    finally:
        quoted.close()
        other.close()
        db.close()


def test_a_cold_starts_drawn_items_get_the_owners_labels_later(store: LabelStore) -> None:
    store.add_items(
        pd.concat([_items(["p1"], "pool"), _items(["g1", "h1"], "gold"), _items(["h2"], "held_out")])
    )
    assert store.set_known_labels({"g1": "cat", "h2": "dog", "p1": "dog", "elsewhere": "cat"}) == 2
    assert store.set_known_labels({"g1": "cat", "h2": "cat"}) == 1  # an edit; an unchanged label is no change
    labels = store.items().set_index("item_id")["known_label"]
    assert labels[["g1", "h2"]].tolist() == ["cat", "cat"] and labels[["p1", "h1"]].isna().all()


@BOTH_LOOKUPS
def test_add_items_refuses_to_move_an_item_between_sets(
    store: LabelStore, looked_up: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("labelflow.integrations.store.items._LOOKED_UP", looked_up)
    store.add_items(_items(["a", "b"], "pool"))
    with pytest.raises(StoreError, match=r"'b'.*'pool'.*'held_out'"):
        store.add_items(_items(["c", "b"], "held_out", ["x", "y"]))
    assert store.items()["item_id"].tolist() == ["a", "b"]  # nothing of the refused batch was stored
    with pytest.raises(StoreError, match=r"'d'.*'gold'.*'pool'"):
        store.add_items(pd.concat([_items(["d"], "gold"), _items(["d"], "pool")]))
    with pytest.raises(StoreError, match="item_set"):
        store.add_items(_items(["e"], "training"))


# ---------------------------------------------------------------------- rounds


def test_open_round_resumes_a_running_round_and_numbers_new_ones(store: LabelStore) -> None:
    first = store.open_round()
    assert (first.number, first.status, first.resumed) == (1, "running", False)
    assert first.started_at.tzinfo is not None

    again = store.open_round()
    assert (again.id, again.number, again.resumed) == (first.id, 1, True)

    store.finish_round(first.id, "completed", summary={"n_labeled": 12, "accuracy": 0.91})
    second = store.open_round()
    assert (second.number, second.resumed) == (2, False)
    store.finish_round(second.id, "failed", error="crowd backend unreachable")
    third = store.open_round()
    assert third.number == 3
    assert store.round_number(second.id) == 2

    rounds = store.rounds()
    assert list(rounds.columns) == list(ROUND_COLUMNS)
    assert rounds["status"].tolist() == ["completed", "failed", "running"]
    assert rounds["summary"].iloc[0] == {"n_labeled": 12, "accuracy": 0.91}
    assert rounds["summary"].iloc[1] is None
    assert rounds["error"].iloc[1] == "crowd backend unreachable"

    with pytest.raises(StoreError, match="finishes as one of"):
        store.finish_round(third.id, "running")
    with pytest.raises(StoreError, match="does not exist"):
        store.finish_round(9999, "completed")
    with pytest.raises(StoreError, match="does not exist"):
        store.round_number(9999)


def test_database_allows_one_running_round_per_project(store: LabelStore) -> None:
    running = store.open_round()
    insert = text(
        "INSERT INTO rounds (project, number, status, started_at) VALUES (:p, :n, 'running', '2026-05-01')"
    )
    with pytest.raises(IntegrityError), store.engine.begin() as conn:
        conn.execute(insert, {"p": "cats", "n": running.number + 1})
    with store.engine.begin() as conn:
        conn.execute(insert, {"p": "dogs", "n": 1})  # another project may run its own round


# ---------------------------------------------------------------------- requests


def test_add_requests_twice_returns_the_same_rows_without_duplicates(store: LabelStore) -> None:
    round_id = store.open_round().id
    # More keys than SQLite's historical limit of 999 bound variables, to exercise chunked IN-lists.
    requests = [_request(round_id, f"p{i}") for i in range(2500)]
    first = store.add_requests(requests)
    second = store.add_requests(requests)
    assert list(first.columns) == list(REQUEST_COLUMNS)
    pd.testing.assert_frame_equal(first, second)
    assert first["request_key"].tolist() == [r.key for r in requests]
    assert len(store.requests(round_id)) == 2500

    # A rerun asking for a different number of answers still gets the stored request back.
    rerun = store.add_requests([LabelRequest(requests[0].key, "p0", round_id, 1, n_answers=9)])
    assert rerun["n_answers"].tolist() == [3]
    assert list(store.add_requests([]).columns) == list(REQUEST_COLUMNS)


def test_add_requests_refuses_a_second_key_for_the_same_item_and_wave(store: LabelStore) -> None:
    round_id = store.open_round().id
    store.add_requests([_request(round_id, "a")])
    clash = LabelRequest("other-key", "a", round_id, 1, 3)
    with pytest.raises(StoreError, match="other-key"):
        store.add_requests([_request(round_id, "b"), clash])
    assert store.requests(round_id)["item_id"].tolist() == ["a"]  # the whole batch was refused
    with pytest.raises(StoreError, match="do not exist"):
        store.add_requests([_request(round_id + 100, "a")])


def test_mark_published_and_handles(store: LabelStore) -> None:
    round_id = store.open_round().id
    requests = [_request(round_id, "a"), _request(round_id, "b"), _request(round_id, "c", wave=2)]
    store.add_requests(requests)
    handles = [
        Handle(r.key, f"hit-{r.item_id}", r.item_id, r.round_id, r.wave, r.n_answers, r.is_gold, NOW)
        for r in requests[:2]
    ]
    store.mark_published(handles)
    store.mark_published(handles)  # same external ids again: no change, no error

    assert store.handles(round_id) == handles
    assert store.handles(round_id, wave=2) == []
    frame = store.requests(round_id)
    assert frame["external_id"].tolist()[:2] == ["hit-a", "hit-b"]
    assert pd.isna(frame["external_id"].iloc[2])
    assert store.requests(round_id, wave=2)["item_id"].tolist() == ["c"]

    with pytest.raises(StoreError, match="already published"):
        store.mark_published([Handle(requests[0].key, "hit-other", "a", round_id, 1, 3, False, NOW)])
    with pytest.raises(StoreError, match="not stored"):
        store.mark_published([Handle("nope", "hit-x", "x", round_id, 1, 3, False, NOW)])


def test_expert_work_is_marked_kept_apart_and_counted_apart(store: LabelStore) -> None:
    round_id = store.open_round().id
    crowd = _request(round_id, "a")
    expert = LabelRequest(
        key=f"r{round_id}-a-expert",
        item_id="a",
        round_id=round_id,
        wave=EXPERT_WAVE,
        n_answers=1,
        is_expert=True,
    )
    store.add_requests([crowd, expert])  # the same item and round: the expert's wave keeps them apart
    store.mark_published([crowd.published("hit-a", NOW), expert.published("ls-task-9", NOW)])
    assert [h.key for h in store.handles(round_id, expert=False)] == [crowd.key]
    [expert_handle] = store.handles(round_id, expert=True)
    assert expert_handle.is_expert and expert_handle.wave == EXPERT_WAVE
    assert store.requests(round_id)["is_expert"].tolist() == [False, True]
    assert (store.requested_answers(expert=False), store.requested_answers(expert=True)) == (3, 1)
    assert store.requested_items(expert=True) == {"a"}
    store.add_answers(
        [
            _answer("c1", round_id, "a", "w1", "cat"),
            replace(_answer("e1", round_id, "a", "ls:7", "dog", backend="label_studio"), is_expert=True),
            replace(_answer("e2", round_id, "a", "ls:7", None, backend="label_studio"), is_expert=True),
        ]
    )
    assert store.expert_answers()[["answer_id", "item_id", "label"]].values.tolist() == [["e1", "a", "dog"]]
    assert store.expert_answers(parsed=False)["answer_id"].tolist() == ["e1", "e2"]
    assert set(store.answers()["answer_id"]) == {"c1", "e1"}  # an expert's answer is an answer like any other


# ---------------------------------------------------------------------- answers and workers


def test_add_answers_twice_inserts_nothing_the_second_time(store: LabelStore) -> None:
    round_id = store.open_round().id
    answers = [
        _answer("a1", round_id, "x", "w1", "cat"),
        _answer("a2", round_id, "x", "w2", "dog"),
        _answer("a3", round_id, "y", "w1", None),
        _answer("a1", round_id, "x", "w1", "cat"),  # a backend may return an answer twice in one poll
    ]
    assert store.add_answers(answers) == 3
    assert store.add_answers(answers) == 0
    assert store.count_answers(round_id) == 3
    assert store.count_answers() == 3

    parsed = store.answers(round_id)
    assert tuple(parsed.columns) == ANSWER_COLUMNS
    assert parsed["answer_id"].tolist() == ["a1", "a2"]
    assert str(parsed["submitted_at"].dt.tz) == "UTC"

    workers = store.workers().set_index("worker_id")
    assert list(store.workers().columns) == list(WORKER_COLUMNS)
    assert workers.loc["w1", "n_answers"] == 2  # counted once, not once per poll
    assert workers.loc["w2", "n_answers"] == 1
    assert set(workers["status"]) == {"active"}


def test_unparsed_answers_are_kept_apart_with_their_error(store: LabelStore) -> None:
    round_id = store.open_round().id
    store.add_answers([_answer("a1", round_id, "x", "w1", "cat"), _answer("a2", round_id, "x", "w2", None)])
    unparsed = store.answers(round_id, parsed=False)
    assert list(unparsed.columns) == list(UNPARSED_ANSWER_COLUMNS)
    assert unparsed["answer_id"].tolist() == ["a2"]
    assert unparsed["parse_error"].tolist() == ["not one of the choices"]
    assert unparsed["raw"].tolist() == ["¯\\_(ツ)_/¯"]
    assert store.answers(round_id)["answer_id"].tolist() == ["a1"]


def test_update_workers_and_blocked_set(store: LabelStore) -> None:
    round_id = store.open_round().id
    store.add_answers([_answer("a1", round_id, "x", "w1", "cat"), _answer("a2", round_id, "x", "w2", "cat")])
    store.update_workers(
        pd.DataFrame(
            {
                "worker_id": ["w1", "w2", "w3"],
                "backend": ["sim"] * 3,
                "status": ["blocked", "active", "blocked"],
                "accuracy": [0.3, 0.95, float("nan")],
                "n_gold": [10, 12, 0],
            }
        )
    )
    store.update_workers(pd.DataFrame({"worker_id": ["w2"], "backend": ["sim"], "accuracy": [0.9]}))
    workers = store.workers().set_index("worker_id")
    assert workers.loc["w1", "n_answers"] == 1  # quality updates leave the answer count alone
    assert workers.loc["w2", "accuracy"] == pytest.approx(0.9)
    assert workers.loc["w2", "n_gold"] == 12
    assert workers["accuracy"].isna().loc["w3"]
    assert store.blocked_workers("sim") == {"w1", "w3"}
    assert store.blocked_workers("mturk") == set()


# ---------------------------------------------------------------------- labels


def test_save_labels_upserts_per_round_item_and_source(store: LabelStore) -> None:
    round_id = store.open_round().id
    store.save_labels(_labels(round_id, {"a": "cat", "b": "dog"}))
    store.save_labels(_labels(round_id, {"a": "dog"}, confidence=0.6))
    store.save_labels(_labels(round_id, {"a": "cat"}, source="model"))
    labels = store.labels(round_id)
    assert tuple(labels.columns) == LABEL_COLUMNS
    assert len(labels) == 3
    crowd = labels[labels["source"] == "crowd"].set_index("item_id")
    assert crowd.loc["a", "label"] == "dog"
    assert crowd.loc["a", "confidence"] == pytest.approx(0.6)
    with pytest.raises(StoreError, match="twice"):
        store.save_labels(pd.concat([_labels(round_id, {"a": "x"}), _labels(round_id, {"a": "y"})]))
    # one item, two sources, in one save: two labels
    store.save_labels(
        pd.concat([_labels(round_id, {"b": "cat"}), _labels(round_id, {"b": "dog"}, source="model")])
    )
    assert sorted(store.labels(round_id).query("item_id == 'b'")["label"]) == ["cat", "dog"]


def test_a_save_of_many_labels_stores_each_once_and_the_next_save_replaces_them(store: LabelStore) -> None:
    # more rows than a chunk, neither a whole number of multi-row statements: every way rows are sent
    round_id = store.open_round().id
    pairs = {f"i{k:05d}": ("cat", "dog")[k % 2] for k in range(25_001)}
    store.save_labels(_labels(round_id, pairs))
    store.save_labels(_labels(round_id, pairs, confidence=0.6))
    labels = store.labels(round_id)
    assert labels["item_id"].tolist() == list(pairs)
    assert labels["label"].tolist() == list(pairs.values())
    assert (labels["confidence"] == 0.6).all()


def test_labels_without_round_are_the_latest_per_item_and_source(store: LabelStore) -> None:
    r1 = store.open_round().id
    store.save_labels(_labels(r1, {"a": "cat", "b": "dog"}))
    store.save_labels(_labels(r1, {"a": "cat"}, source="model"))
    store.finish_round(r1, "completed")
    r2 = store.open_round().id
    store.save_labels(_labels(r2, {"a": "dog", "c": "cat"}))

    latest = store.labels()
    assert tuple(latest.columns) == LABEL_COLUMNS
    got = {(row.item_id, row.source): (row.label, row.round_id) for row in latest.itertuples()}
    assert got == {
        ("a", "crowd"): ("dog", r2),
        ("b", "crowd"): ("dog", r1),
        ("a", "model"): ("cat", r1),
        ("c", "crowd"): ("cat", r2),
    }
    crowd = store.labels(sources=("crowd",))
    assert crowd.equals(latest[latest["source"] == "crowd"].reset_index(drop=True))
    assert store.labels(r1, sources=("model",))[["item_id", "source"]].values.tolist() == [["a", "model"]]


def test_best_labels_take_the_first_source_in_precedence_then_the_latest_round_in_code_point_order(
    store: LabelStore,
) -> None:
    assert store.best_labels(("crowd", "model")).empty and store.latest_label_round("model") is None
    r1 = store.open_round().id
    store.save_labels(_labels(r1, {"é": "cat", "b": "cat", "B": "cat", "a": "cat"}, source="model"))
    store.save_labels(_labels(r1, {"a": "cat", "z": "dog"}))
    store.save_labels(_labels(r1, {"b": "dog"}, source="functions"))
    store.finish_round(r1, "completed")
    r2 = store.open_round().id
    store.save_labels(_labels(r2, {"é": "dog", "b": "cat", "z": "cat"}, source="model"))
    store.save_labels(_labels(r2, {"a": "dog"}))

    best = store.best_labels(("crowd", "functions", "model"))
    assert tuple(best.columns) == ("item_id", "label", "confidence", "method", "n_answers", "source", "round")
    # code point order, as Python sorts (a database's locale would put "B" after "a")
    assert best[["item_id", "source", "label", "round"]].values.tolist() == [
        ["B", "model", "cat", 1],
        ["a", "crowd", "dog", 2],
        ["b", "functions", "dog", 1],
        ["z", "crowd", "dog", 1],
        ["é", "model", "dog", 2],
    ]
    assert store.best_labels(("model",)).set_index("item_id")["source"].to_dict()["a"] == "model"
    assert store.latest_label_round("model") == 2 and store.latest_label_round("functions") == 1


# ---------------------------------------------------------------------- model versions


def test_champion_is_the_latest_promoted_version(store: LabelStore) -> None:
    assert store.champion() is None
    r1 = store.open_round().id
    v1 = store.add_model_version(r1, "models/v1.joblib", 0.80, {"f1": 0.78}, promoted=True)
    store.finish_round(r1, "completed")
    r2 = store.open_round().id
    v2 = store.add_model_version(r2, "models/v2.joblib", 0.85, {"f1": 0.83}, promoted=True)
    store.finish_round(r2, "completed")
    r3 = store.open_round().id
    store.add_model_version(r3, "models/v3.joblib", 0.70, {}, promoted=False)

    champion = store.champion()
    assert champion == v2
    assert champion is not None and champion.metrics == {"f1": 0.83}
    versions = store.model_versions()
    assert list(versions.columns) == list(MODEL_VERSION_COLUMNS)
    assert versions["id"].tolist()[0] == v1.id
    assert versions["round_number"].tolist() == [1, 2, 3]
    assert versions["metrics"].iloc[0] == {"f1": 0.78}


def test_a_rerun_round_gets_its_registered_model_back_not_a_second_one(store: LabelStore) -> None:
    r1 = store.open_round().id
    store.add_model_version(r1, "models/round-001.joblib", 0.80, {}, promoted=True)
    store.finish_round(r1, "completed")
    r2 = store.open_round().id
    first = store.add_model_version(r2, "models/round-002.joblib", 0.85, {"f1": 0.8}, promoted=True)

    # the run was killed after registering; its rerun retrains and registers again
    again = store.add_model_version(r2, "models/round-002.joblib", 0.83, {"f1": 0.7}, promoted=True)

    assert again == first
    assert store.model_versions()["round_number"].tolist() == [1, 2]
    assert store.model_version_of_round(r2) == first
    previous = store.champion(excluding_round=r2)
    assert previous is not None and previous.round_id == r1


def test_the_database_refuses_a_second_model_row_for_a_round(store: LabelStore, db_url: str) -> None:
    round_id = store.open_round().id
    store.add_model_version(round_id, "m.joblib", 0.8, {}, promoted=True)
    db = Database(db_url)
    try:
        with pytest.raises(IntegrityError), db.write() as conn:
            conn.execute(
                text(
                    "INSERT INTO model_versions (project, round_id, path, accuracy, metrics, promoted, created_at)"
                    " VALUES ('cats', :round_id, 'm2.joblib', 0.9, '{}', true, '2026-05-01 12:00:00+00')"
                ),
                {"round_id": round_id},
            )
    finally:
        db.close()


# ---------------------------------------------------------------------- sharing a store


def test_empty_store_returns_frames_with_their_columns(store: LabelStore) -> None:
    assert list(store.items().columns) == list(ITEM_COLUMNS)
    assert list(store.rounds().columns) == list(ROUND_COLUMNS)
    assert list(store.requests(1).columns) == list(REQUEST_COLUMNS)
    assert store.handles(1) == []
    assert tuple(store.answers().columns) == ANSWER_COLUMNS
    assert list(store.answers(parsed=False).columns) == list(UNPARSED_ANSWER_COLUMNS)
    assert store.count_answers() == 0
    assert tuple(store.labels().columns) == LABEL_COLUMNS
    assert list(store.workers().columns) == list(WORKER_COLUMNS)
    assert list(store.model_versions().columns) == list(MODEL_VERSION_COLUMNS)


def test_two_store_objects_on_one_file_see_each_others_writes(db_url: str) -> None:
    server, collector = LabelStore(db_url, "cats"), LabelStore(db_url, "cats")
    try:
        server.add_items(_items(["a", "b"], "pool"))
        assert collector.add_items(_items(["a", "b", "c"], "pool")) == 1
        round_ = server.open_round()
        assert collector.open_round() == RoundRecord(round_.id, 1, "running", round_.started_at, resumed=True)
        server.add_requests([_request(round_.id, "a")])
        assert collector.add_answers([_answer("a1", round_.id, "a", "w1", "cat")]) == 1
        assert server.count_answers(round_.id) == 1
        assert server.add_answers([_answer("a1", round_.id, "a", "w1", "cat")]) == 0
        assert len(collector.requests(round_.id)) == 1
        assert len(server.items()) == 3
    finally:
        server.close()
        collector.close()


def test_concurrent_open_round_starts_one_round(db_url: str) -> None:
    stores = [LabelStore(db_url, "cats") for _ in range(4)]
    barrier = threading.Barrier(len(stores))
    opened: list[RoundRecord] = []

    def open_one(s: LabelStore) -> None:
        barrier.wait()
        opened.append(s.open_round())

    threads = [threading.Thread(target=open_one, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for s in stores:
        s.close()
    assert len({r.id for r in opened}) == 1
    assert sorted(r.resumed for r in opened) == [False, True, True, True]


def test_projects_sharing_a_file_do_not_see_each_others_data(db_url: str) -> None:
    cats, dogs = LabelStore(db_url, "cats"), LabelStore(db_url, "dogs")
    try:
        cats.add_items(_items(["x"], "pool"))
        assert dogs.add_items(_items(["x"], "gold", ["dog"])) == 1  # same item id, other project
        cat_round, dog_round = cats.open_round(), dogs.open_round()
        assert (cat_round.number, dog_round.number) == (1, 1)
        cats.add_answers([_answer("c1", cat_round.id, "x", "w1", "cat")])
        cats.save_labels(_labels(cat_round.id, {"x": "cat"}))
        cats.add_model_version(cat_round.id, "m.joblib", 0.9, {}, promoted=True)

        assert dogs.items()["item_set"].tolist() == ["gold"]
        assert dogs.count_answers() == 0 and dogs.answers().empty
        assert dogs.labels().empty and dogs.workers().empty
        assert dogs.champion() is None
        assert len(dogs.rounds()) == 1
        with pytest.raises(StoreError, match="do not exist"):
            dogs.add_answers([_answer("d1", cat_round.id, "x", "w1", "dog")])
        with pytest.raises(StoreError, match="does not exist"):
            dogs.round_number(cat_round.id)
        with pytest.raises(StoreError, match="another project"):
            dogs.add_answers([_answer("c1", dog_round.id, "x", "w1", "dog")])
        assert dogs.count_answers() == 0
    finally:
        cats.close()
        dogs.close()


def test_spend_counts_published_requests_and_requested_items_respect_round_order(tmp_path: Path) -> None:
    from labelflow.integrations.crowd.base import LabelRequest

    store = LabelStore(f"sqlite:///{tmp_path / 'spend.db'}", "p")
    first = store.open_round()
    reqs = [
        LabelRequest(key=f"p/r1/i{k}/w1", item_id=f"i{k}", round_id=first.id, wave=1, n_answers=3)
        for k in range(4)
    ]
    store.add_requests(reqs)
    assert store.requested_answers() == 0  # stored but not published: nothing bought yet
    published = store.handles(first.id)
    assert published == []
    from labelflow.integrations.crowd.simulated import SimulatedCrowd, SimulatedCrowdConfig

    crowd = SimulatedCrowd(
        SimulatedCrowdConfig(), ["a", "b"], {f"i{k}": "a" for k in range(4)}, reward_per_answer=0.1
    )
    store.mark_published(crowd.publish(reqs[:2]))
    assert store.requested_answers() == 6
    store.finish_round(first.id, "completed")
    second = store.open_round()
    assert store.requested_items(before_round=second.id) == {f"i{k}" for k in range(4)}
    assert store.requested_items(before_round=first.id) == set()
    store.close()


def test_ingestion_is_remembered_by_checksum(store: LabelStore) -> None:
    first = store.record_ingestion(
        checksum="abc", filename="a.csv", stored_at="processed/a.csv", status="processed", n_rows=3, n_added=3
    )
    again = store.record_ingestion(
        checksum="abc", filename="b.csv", stored_at="processed/b.csv", status="processed", n_rows=3, n_added=0
    )
    assert first and not again
    assert store.ingestion("abc") is not None and store.ingestion("abc")["filename"] == "a.csv"  # type: ignore[index]
    assert store.ingestion("zzz") is None
    assert list(store.ingested_files()["filename"]) == ["a.csv"]


def test_pool_growth_is_counted_since_the_latest_round(store: LabelStore) -> None:
    store.add_items(pd.DataFrame({"item_id": ["a", "b"], "item_set": "pool"}))
    assert store.pool_items_added_since_last_round() == 2
    round_ = store.open_round()
    assert store.pool_items_added_since_last_round() == 0
    store.add_items(pd.DataFrame({"item_id": ["c"], "item_set": "pool"}))
    store.add_items(pd.DataFrame({"item_id": ["g"], "item_set": "gold", "known_label": "x"}))
    assert store.pool_items_added_since_last_round() == 1
    store.finish_round(round_.id, "completed")


@pytest.mark.parametrize("lease", ["round", "serve"])
def test_one_lease_per_project_taken_over_only_when_stale(store: LabelStore, lease: str) -> None:
    table: LeaseTable = getattr(store, f"{lease}_lease")
    a, b, c = (
        LeaseHolder("host-a", 1, "a", "run-a"),
        LeaseHolder("host-b", 2, "b"),
        LeaseHolder("host-c", 3, "c"),
    )
    assert table.current() is None
    assert table.acquire(a, is_stale=lambda _: False) is None
    held = table.acquire(b, is_stale=lambda _: False)
    assert held is not None and (held.holder, held.host, held.pid, held.flow_run_id) == (
        "host-a:1:a",
        "host-a",
        1,
        "run-a",
    )
    assert table.acquire(a, is_stale=lambda _: False) is None  # re-entrant
    assert table.acquire(b, is_stale=lambda lease: lease.holder == "host-a:1:a") is None
    table.release(a)  # no longer the holder: changes nothing
    assert table.current() is not None and table.current().holder == "host-b:2:b"  # type: ignore[union-attr]
    assert table.acquire(c, is_stale=lambda _: False).holder == "host-b:2:b"  # type: ignore[union-attr]
    table.release(b)
    assert table.acquire(c, is_stale=lambda _: False) is None
    other = "serve" if lease == "round" else "round"
    assert getattr(store, f"{other}_lease").current() is None  # the two leases are independent


@pytest.mark.parametrize("lease", ["round", "serve"])
def test_a_heartbeat_refreshes_only_the_holders_lease_aged_by_the_database_clock(
    store: LabelStore, lease: str
) -> None:
    table: LeaseTable = getattr(store, f"{lease}_lease")
    holder, other = LeaseHolder("host-a", 1, "a"), LeaseHolder("host-b", 2, "b")
    assert table.acquire(holder, is_stale=lambda _: False) is None
    fresh = table.current()
    assert fresh is not None and abs(fresh.heartbeat_age.total_seconds()) < 5
    with store.engine.begin() as conn:  # its holder went silent an hour ago
        conn.execute(update(table.table).values(heartbeat_at=datetime.now(UTC) - timedelta(hours=1)))
    silent = table.current()
    assert silent is not None and 3590 < silent.heartbeat_age.total_seconds() < 3610
    assert "last heartbeat 3600 s ago" in str(silent) or "last heartbeat 3599 s ago" in str(silent)
    assert table.beat(holder)
    assert table.current().heartbeat_age.total_seconds() < 5  # type: ignore[union-attr]
    assert not table.beat(other)  # not its lease: nothing refreshed
    assert table.acquire(other, is_stale=lambda lease: lease.heartbeat_age > timedelta(minutes=1)) is not None
    table.release(holder)
    assert not table.beat(holder)  # given back: a late beat does not bring it back
    assert table.current() is None


# ---------------------------------------------------------------------- validation at each table's edge


def test_store_needs_a_project_and_hides_the_password_in_its_repr(db_url: str) -> None:
    with pytest.raises(StoreError, match="non-empty project"):
        LabelStore(db_url, "")
    with LabelStore(db_url, "cats") as store:
        assert repr(store) == f"LabelStore({db_url!r}, project='cats')"
    with pytest.raises(StoreError, match=r"\*\*\*") as refused:
        LabelStore("mysql://u:secret@localhost/labels", "cats")
    assert "secret" not in str(refused.value)


def test_add_items_counts_every_conflict_and_stores_integral_float_labels_as_integers(
    store: LabelStore,
) -> None:
    store.add_items(_items(["a", "b", "c"], "pool"))
    with pytest.raises(StoreError, match=r"'a'.*\(and 2 more item\(s\)\)"):
        store.add_items(_items(["a", "b", "c"], "gold", ["x", "y", "z"]))
    # A label column with a gap is read as floats; "7.0" would be a label the crowd never gave.
    assert store.add_items(
        pd.DataFrame({"item_id": ["g1", "g2"], "item_set": "gold", "known_label": [7, None]})
    )
    assert store.items("gold")["known_label"].tolist()[0] == "7"
    # ids are text as given (numbers included), and an item without one is refused, not stored as "None"
    assert store.add_items(pd.DataFrame({"item_id": [12, "007"], "item_set": "pool"})) == 2
    assert {"12", "007"} <= set(store.items("pool")["item_id"])
    with pytest.raises(StoreError, match="row 1 has no item_id"):
        store.add_items(pd.DataFrame({"item_id": ["n1", None], "item_set": "pool"}))


def test_a_batch_giving_one_key_two_meanings_is_refused(store: LabelStore) -> None:
    round_id = store.open_round().id
    first = _request(round_id, "a")
    with pytest.raises(StoreError, match="two different requests"):
        store.add_requests([first, LabelRequest(first.key, "b", round_id, 1, 3)])
    assert store.requests(round_id).empty
    store.add_requests([first])
    with pytest.raises(StoreError, match="two external ids"):
        store.mark_published(
            [
                Handle(first.key, "hit-1", "a", round_id, 1, 3, False, NOW),
                Handle(first.key, "hit-2", "a", round_id, 1, 3, False, NOW),
            ]
        )
    assert store.handles(round_id) == []


def test_save_labels_refuses_bad_rows_and_unknown_rounds(store: LabelStore) -> None:
    round_id = store.open_round().id
    with pytest.raises(StoreError, match="source 'oracle'"):
        store.save_labels(_labels(round_id, {"a": "cat"}, source="oracle"))
    with pytest.raises(StoreError, match="NaN confidence"):
        store.save_labels(_labels(round_id, {"a": "cat"}, confidence=float("nan")))
    missing = _labels(round_id, {"a": "cat"})
    missing["label"] = None
    with pytest.raises(StoreError, match="is missing"):
        store.save_labels(missing)
    with pytest.raises(StoreError, match="do not exist"):
        store.save_labels(_labels(round_id + 100, {"a": "cat"}))
    # Errors come in batch order: the duplicate of row 1 is reported before row 3's bad source.
    batch = pd.concat([_labels(round_id, {"a": "x"}), _labels(round_id, {"a": "y"})])
    batch = pd.concat([batch, _labels(round_id, {"b": "z"}, source="oracle")])
    with pytest.raises(StoreError, match="twice"):
        store.save_labels(batch)
    assert store.labels(round_id).empty


def test_update_workers_sets_spammer_scores_and_confusions_and_refuses_bad_rows(store: LabelStore) -> None:
    store.update_workers(
        pd.DataFrame(
            {
                "worker_id": ["w1", "w2"],
                "backend": ["sim", "sim"],
                "n_answers": [4, None],
                "spammer_score": [0.25, None],
                "confusion": ['{"cat": {"cat": 1.0}}', None],
            }
        )
    )
    workers = store.workers().set_index("worker_id")
    assert workers.loc["w1", "n_answers"] == 4 and workers.loc["w2", "n_answers"] == 0
    assert workers.loc["w1", "spammer_score"] == pytest.approx(0.25)
    assert pd.isna(workers.loc["w2", "spammer_score"])
    assert workers.loc["w1", "confusion"] == '{"cat": {"cat": 1.0}}'
    assert workers.loc["w1", "status"] == "active"
    with pytest.raises(StoreError, match="appears twice"):
        store.update_workers(pd.DataFrame({"worker_id": ["w1", "w1"], "backend": ["sim", "sim"]}))
    with pytest.raises(StoreError, match="given status 'banned'"):
        store.update_workers(pd.DataFrame({"worker_id": ["w1"], "backend": ["sim"], "status": ["banned"]}))
    # The same worker id on another backend is another worker.
    store.update_workers(pd.DataFrame({"worker_id": ["w1"], "backend": ["mturk"], "status": ["blocked"]}))
    assert store.blocked_workers("mturk") == {"w1"} and store.blocked_workers("sim") == set()


def test_model_versions_and_ingested_files_belong_to_the_project_and_its_rounds(store: LabelStore) -> None:
    with pytest.raises(StoreError, match="do not exist"):
        store.add_model_version(12345, "m.joblib", 0.9, {}, promoted=True)
    assert store.model_versions().empty
    for checksum, status in [("a", "processed"), ("b", "quarantined"), ("c", "processed")]:
        store.record_ingestion(
            checksum=checksum, filename=f"{checksum}.csv", stored_at="x", status=status, n_rows=1, n_added=0
        )
    assert store.ingested_files("processed")["checksum"].tolist() == ["a", "c"]
    assert store.ingested_files("quarantined")["checksum"].tolist() == ["b"]


# ---------------------------------------------------------------------- the pieces under the front


def test_a_failed_write_transaction_leaves_nothing_behind(db_url: str) -> None:
    db = Database(db_url)
    try:
        with pytest.raises(RuntimeError, match="crash"), db.write() as conn:
            conn.execute(
                db.insert(RoundLease).values(
                    project="p", holder="h:1:x", host="h", pid=1, acquired_at=NOW, heartbeat_at=NOW
                )
            )
            raise RuntimeError("crash")
        assert LeaseTable(db, "p", RoundLease).current() is None
    finally:
        db.close()


def test_unique_by_checks_each_entry_before_drawing_the_next() -> None:
    drawn: list[str] = []

    def entries() -> Iterator[str]:
        for entry in ["a1", "b1", "a2", "c1"]:
            drawn.append(entry)
            yield entry

    def clash(first: str, later: str) -> str | None:
        return f"{later} repeats {first}" if later.endswith("2") else None

    with pytest.raises(StoreError, match="a2 repeats a1"):
        list(unique_by(entries(), key=lambda entry: entry[0], clash=clash))
    assert drawn == ["a1", "b1", "a2"]
    assert list(unique_by(["a1", "a1", "b1"], key=lambda entry: entry[0], clash=lambda *_: None)) == [
        "a1",
        "b1",
    ]
