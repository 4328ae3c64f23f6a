"""`Project` in a ``with`` block: the store it opened is closed when the block ends, whatever ends it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from labelflow.flows.config import ProjectConfig
from labelflow.flows.project import Project


def pooled_connection(project: Project) -> sqlite3.Connection:
    """The SQLite connection the store keeps in its pool for its next query."""
    with project.store.engine.connect() as connection:
        dbapi = connection.connection.dbapi_connection
    assert isinstance(dbapi, sqlite3.Connection)
    return dbapi


def is_open(connection: sqlite3.Connection) -> bool:
    try:
        connection.execute("select 1")
    except sqlite3.ProgrammingError:  # "Cannot operate on a closed database."
        return False
    return True


@pytest.fixture
def config(tmp_path: Path) -> ProjectConfig:
    return ProjectConfig(store_url=f"sqlite:///{tmp_path}/store.db")


def test_the_store_is_closed_when_the_block_ends(config: ProjectConfig, tmp_path: Path) -> None:
    with Project(config, tmp_path) as project:
        assert project.store.rounds().empty
        connection = pooled_connection(project)
        assert is_open(connection)
    assert not is_open(connection)


def test_the_store_is_closed_when_the_block_raises(config: ProjectConfig, tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="the round went wrong"), Project(config, tmp_path) as project:
        project.store.open_round()
        connection = pooled_connection(project)
        assert is_open(connection)
        raise RuntimeError("the round went wrong")
    assert not is_open(connection)
    with Project(config, tmp_path) as again:  # what the block wrote before it raised is in the store
        assert again.store.rounds()["status"].tolist() == ["running"]


def test_a_block_that_never_used_the_store_does_not_open_one(config: ProjectConfig, tmp_path: Path) -> None:
    with Project(config, tmp_path) as project:
        assert project.workdir == (tmp_path / ".labelflow").resolve()
    assert "store" not in vars(project)
    assert not (tmp_path / "store.db").exists()
