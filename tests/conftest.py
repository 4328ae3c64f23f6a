"""Shared fixtures. Unit tests need no Prefect; flow tests share one session-wide ``prefect_test_harness``."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest

from labelflow.integrations.crowd.simulated import SimulatedCrowdConfig
from labelflow.integrations.mturk_local import LocalMTurk, LocalMTurkServer
from labelflow.integrations.store.local_postgres import (
    LocalPostgres,
    PostgresNotInstalled,
    local_postgres,
    postgres_bin_dir,
)

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

SHARED_CROWD = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "crowd"


@pytest.fixture(scope="session")
def shared_crowd() -> Path:
    """The real crowdsourcing datasets of ../shared/data/crowd (read in place, never copied)."""
    if not (SHARED_CROWD / "dog" / "answers.csv").exists():
        pytest.skip(
            f"the shared crowd datasets are not at {SHARED_CROWD} (they live beside the repo in ../shared)"
        )
    return SHARED_CROWD


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """One temporary Prefect server for the whole session (~8 s), not one per test."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="session")
def postgres() -> Iterator[LocalPostgres]:
    """One throwaway PostgreSQL cluster for the session (~2 s to start), on a free loopback port, run as an
    unprivileged user when the tests run as root; stopped by its pid at the end.

    Clients get its password as production ones do, from PGPASSWORD (set here for this process and the servers
    and ``labelflow serve`` processes it starts). Without the binaries the PostgreSQL tests skip, saying why,
    unless LABELFLOW_REQUIRE_POSTGRES is set (.ci/run sets it): then they fail.
    """
    try:
        postgres_bin_dir()
    except PostgresNotInstalled as error:
        if os.environ.get("LABELFLOW_REQUIRE_POSTGRES"):
            pytest.fail(f"{error} (LABELFLOW_REQUIRE_POSTGRES is set)")
        pytest.skip(str(error))
    previous = os.environ.get("PGPASSWORD")
    with local_postgres() as cluster:
        os.environ["PGPASSWORD"] = cluster.password
        try:
            yield cluster
        finally:
            if previous is None:
                os.environ.pop("PGPASSWORD", None)
            else:
                os.environ["PGPASSWORD"] = previous


@pytest.fixture
def postgres_database(postgres: LocalPostgres) -> Iterator[str]:
    """A new empty database in the session's cluster (its psycopg URL, no password in it), dropped afterwards."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    url = postgres.create_database(name)
    yield url
    postgres.drop_database(name)


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A label store URL for an empty database, once on SQLite (a file in tmp_path) and once on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    return str(request.getfixturevalue("postgres_database"))


@pytest.fixture
def mturk_endpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., LocalMTurkServer]]:
    """Start local MTurk endpoints (``start(truth=..., workers=...)``), each on a free port with its own SQLite
    file; all are stopped at the end of the test."""
    from botocore.retries.standard import ExponentialBackoff

    # botocore backs off up to 2^attempt seconds after a throttling reply; the endpoint's injected throttling
    # ends at once, so a test need not wait for it.
    monkeypatch.setattr(
        ExponentialBackoff,
        "_DEFAULT_BACKOFF_CONFIG",
        {"throttling_base_scale": 0.01, "non_throttling_base_scale": 0.001},
    )
    started: list[LocalMTurkServer] = []

    def start(
        truth: Mapping[str, str] | None = None,
        workers: SimulatedCrowdConfig | None = None,
        name: str = "mturk",
    ) -> LocalMTurkServer:
        server = LocalMTurkServer(LocalMTurk(tmp_path / f"{name}.db", truth=truth, workers=workers)).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
        server.mturk.close()
