"""The store's PostgreSQL password from a Prefect Secret block named in the config, instead of PGPASSWORD."""

from __future__ import annotations

from pathlib import Path

import pytest

from labelflow.flows.config import parse_config
from labelflow.flows.project import Project
from labelflow.integrations.store import StoreError
from labelflow.integrations.store.local_postgres import LocalPostgres

pytestmark = [pytest.mark.flow, pytest.mark.usefixtures("prefect_harness")]


def test_the_password_comes_from_the_secret_block_the_config_names(
    tmp_path: Path, postgres: LocalPostgres, postgres_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prefect.blocks.system import Secret

    Secret(value=postgres.password).save("labelflow-test-db", overwrite=True)
    monkeypatch.delenv("PGPASSWORD")  # so only the block can give it
    config = parse_config({"store_url": postgres_database, "store_password_secret": "labelflow-test-db"})
    with Project(config, tmp_path) as project:
        assert project.store.rounds().empty
        assert postgres.password not in repr(project.store)

    missing = parse_config({"store_url": postgres_database, "store_password_secret": "no-such-block"})
    with Project(missing, tmp_path) as project, pytest.raises(StoreError, match="no-such-block"):
        _ = project.store
