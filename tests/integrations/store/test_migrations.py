"""The Alembic migrations on both databases: one revision at a time up to the head, all the way down, and up
again, the migrated schema matching the ORM's (tests/integrations/test_store.py checks that on a fresh store)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.exc import IntegrityError

from labelflow.integrations.store.engine import MIGRATIONS_DIR
from labelflow.integrations.store.schema import Base


def alembic_config() -> Config:
    """The store's migrations, run on a connection the test sets in ``config.attributes``."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("path_separator", "os")
    return config


def test_every_migration_goes_up_and_down_on_both_databases(store_url: str) -> None:
    config = alembic_config()
    revisions = [script.revision for script in ScriptDirectory.from_config(config).walk_revisions()][::-1]
    engine = create_engine(store_url)
    try:
        with engine.begin() as conn:
            config.attributes["connection"] = conn
            for revision in revisions:
                command.upgrade(config, revision)
                assert MigrationContext.configure(conn).get_current_revision() == revision
            command.downgrade(config, "base")
            assert set(inspect(conn).get_table_names()) <= {"alembic_version"}
            command.upgrade(config, "head")
            diffs = compare_metadata(
                MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata
            )
            assert diffs == []
    finally:
        engine.dispose()


def test_a_lease_taken_before_heartbeats_gets_its_host_and_pid_from_its_holder(store_url: str) -> None:
    config = alembic_config()
    engine = create_engine(store_url)
    try:
        with engine.begin() as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, "0005")
            conn.execute(
                text(
                    "INSERT INTO round_leases (project, holder, acquired_at) "
                    "VALUES ('cats', 'worker-7:4242:ab12cd34', :at)"
                ),
                {"at": datetime(2026, 12, 1, 12, 0, tzinfo=UTC)},
            )
            command.upgrade(config, "head")
            row = conn.execute(text("SELECT host, pid, flow_run_id, heartbeat_at FROM round_leases")).one()
    finally:
        engine.dispose()
    assert row[:3] == ("worker-7", 4242, None)
    assert (
        row[3] is not None
    )  # its acquisition, as its last heartbeat: a live holder refreshes it at its next beat


def test_migrated_checks_refuse_what_they_refused_before(store_url: str) -> None:
    """Migration 0008 rewrites the allowed-values CHECKs as equalities: a value outside them is still refused by
    the database itself, one inside still accepted, for a store migrated from a revision that held rows."""
    config = alembic_config()
    engine = create_engine(store_url)
    insert_label = (
        "INSERT INTO labels (round_id, item_id, label, confidence, method, n_answers, source) "
        "VALUES (1, :item, 'cat', 0.9, 'dawid_skene', 3, :source)"
    )
    try:
        with engine.begin() as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, "0007")
            conn.execute(
                text(
                    "INSERT INTO rounds (project, number, status, started_at) VALUES ('cats', 1, 'running', :at)"
                ),
                {"at": datetime(2026, 12, 1, 12, 0, tzinfo=UTC)},
            )
            conn.execute(text(insert_label), {"item": "a", "source": "crowd"})
            command.upgrade(config, "head")
            conn.execute(text(insert_label), {"item": "b", "source": "model"})
            assert conn.execute(text("SELECT item_id, source FROM labels ORDER BY item_id")).all() == [
                ("a", "crowd"),
                ("b", "model"),
            ]
        with pytest.raises(IntegrityError), engine.begin() as conn:
            conn.execute(text(insert_label), {"item": "c", "source": "oracle"})
    finally:
        engine.dispose()
