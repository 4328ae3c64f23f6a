"""Shared fixtures. Unit tests need no Prefect; flow tests share one session-wide ``prefect_test_harness``."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from labelflow.integrations.crowd.simulated import SimulatedCrowdConfig
from labelflow.integrations.label_studio.client import LabelStudioClient
from labelflow.integrations.label_studio.server import LabelStudioServer
from labelflow.integrations.mturk_local import LocalMTurk, LocalMTurkServer

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


@dataclass(frozen=True)
class LabelStudioForTests:
    """A real Label Studio (its own cached venv) for the session: the owner's and two annotators' access tokens
    (``annotators`` maps an email to its token) and calls made as an annotator would make them."""

    server: LabelStudioServer
    owner_token: str
    annotators: dict[str, str]

    @property
    def url(self) -> str:
        return self.server.url

    def as_user(self, token: str) -> LabelStudioClient:
        return LabelStudioClient(self.server.url, token)

    def with_new_annotator(self, name: str) -> tuple[LabelStudioForTests, str]:
        """A view with one more annotator, signed up now: for a test that gets someone blocked (removed from the
        organization), so that the session's other annotators stay usable."""
        from datetime import UTC, datetime

        from labelflow.integrations.label_studio.server import personal_access_token, sign_up

        email = f"{name}-{datetime.now(UTC):%H%M%S%f}@labelflow.test"
        sign_up(self.url, email, f"{name}-password-1")
        token = personal_access_token(self.url, email, f"{name}-password-1")
        return LabelStudioForTests(self.server, self.owner_token, self.annotators | {email: token}), email

    def annotate(self, token: str, task_id: int, choices: list[str], **fields: Any) -> dict[str, Any]:
        """POST an annotation of ``task_id`` choosing ``choices`` (none, one or several), as ``token``'s user."""
        result = [{"from_name": "label", "to_name": "text", "type": "choices", "value": {"choices": choices}}]
        with self.as_user(token) as client:
            return dict(
                client.request(
                    "POST",
                    f"/api/tasks/{task_id}/annotations/",
                    "annotating",
                    json={"result": result, **fields},
                )
            )


ANNOTATORS = ("ann", "bob", "cat")


@pytest.fixture(scope="session")
def label_studio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabelStudioForTests]:
    """Label Studio for the session: installed into ~/.cache/labelflow/label-studio-<version> once (~1.5 min,
    ~1 GB); its database migrated, with an owner and three annotators and their tokens, once into a template
    beside it (a first start takes 40-140 s, a start on a copy of the template 5-10 s); started on a free
    loopback port on a copy of the template, stopped by pid at the end."""
    import json
    import shutil

    from labelflow.integrations.label_studio.server import (
        LABEL_STUDIO_VERSION,
        default_cache_dir,
        ensure_installed,
        personal_access_token,
        running_label_studio,
        sign_up,
    )

    cache = default_cache_dir()
    executable = ensure_installed(cache / f"label-studio-{LABEL_STUDIO_VERSION}")
    owner, password = "owner@labelflow.test", "owner-password-1"
    template = cache / f"label-studio-{LABEL_STUDIO_VERSION}-test-data"
    if not (template / "tokens.json").exists():
        building = tmp_path_factory.mktemp("label-studio-template")
        with running_label_studio(executable, building, username=owner, password=password) as server:
            tokens = {owner: personal_access_token(server.url, owner, password)}
            for name in ANNOTATORS:
                email = f"{name}@labelflow.test"
                sign_up(server.url, email, f"{name}-password-1")
                tokens[email] = personal_access_token(server.url, email, f"{name}-password-1")
        (building / "label-studio.log").unlink()
        (building / "tokens.json").write_text(json.dumps(tokens))
        shutil.rmtree(template, ignore_errors=True)
        shutil.copytree(building, template)
    data = tmp_path_factory.mktemp("label-studio") / "data"
    shutil.copytree(template, data)
    tokens = json.loads((data / "tokens.json").read_text())
    with running_label_studio(
        executable, data, username=owner, password=password, allow_loopback_webhooks=True
    ) as server:
        yield LabelStudioForTests(server, tokens.pop(owner), tokens)
