"""Shared fixtures. Unit tests need no Prefect; flow tests share one session-wide ``prefect_test_harness``."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

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
