"""Shared fixtures. Unit tests need no Prefect; flow tests share one session-wide ``prefect_test_harness``."""

from __future__ import annotations

import os
import shutil
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from labelflow.integrations.crowd.simulated import SimulatedCrowdConfig
from labelflow.integrations.label_studio.client import LabelStudioClient
from labelflow.integrations.label_studio.server import LabelStudioServer
from labelflow.integrations.mturk_local import LocalMTurk, LocalMTurkServer
from labelflow.integrations.screenshots import CHROMIUM_FLAGS, find_chromium

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver
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


@pytest.fixture(scope="session", autouse=True)
def prefect_logging_on_the_sessions_stderr() -> None:
    """Prefect's logging set up once, before any test: set up inside a CLI test's ``runner.invoke`` (as a
    `labelflow` command does, once per process), its console handler would keep that invocation's stream, which
    the runner closes, and every later test's log line would print a logging error into its output instead."""
    from prefect.logging.configuration import ensure_logging_setup

    ensure_logging_setup()


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """One temporary Prefect server for the whole session (~8 s), not one per test."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture
def latest_artifacts(prefect_harness: None) -> Callable[..., dict[str, Any]]:
    """The latest artifact of each key asked for, read by key: the session's server soon holds more than a page of
    other tests' artifacts, so looking among the latest N would miss some."""

    def read(*keys: str) -> dict[str, Any]:
        from prefect.client.orchestration import get_client
        from prefect.client.schemas.filters import ArtifactCollectionFilter, ArtifactCollectionFilterKey

        only = ArtifactCollectionFilter(key=ArtifactCollectionFilterKey(any_=list(keys)))
        with get_client(sync_client=True) as client:
            return {artifact.key: artifact for artifact in client.read_latest_artifacts(artifact_filter=only)}

    return read


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


@pytest.fixture(scope="session")
def browser() -> Iterator[WebDriver]:
    """Debian's Chromium, headless, driven by Selenium through Debian's chromium-driver (``.ci/run`` installs
    both): one browser for the session, ~1 s to start. Skips only where chromium-driver is not installed."""
    chromium, driver = find_chromium(), shutil.which("chromedriver")
    if chromium is None or driver is None:
        pytest.skip(
            "Chromium or chromium-driver is not installed (apt-get install chromium chromium-driver; "
            ".ci/run installs them)"
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = chromium
    for flag in (*CHROMIUM_FLAGS, "--disable-dev-shm-usage", "--window-size=1000,1000"):
        options.add_argument("--headless=new" if flag == "--headless" else flag)
    # The driver's path is given, so Selenium Manager downloads nothing.
    session = webdriver.Chrome(options=options, service=Service(executable_path=driver))
    try:
        yield session
    finally:
        session.quit()


@pytest.fixture
def s3_bucket(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, str]]:
    """moto's S3 server on a free port with an empty bucket, and made-up credentials for boto3: (url, bucket)."""
    import boto3
    from moto.server import ThreadedMotoServer

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    # moto's state is per process, not per server: start from an empty account.
    urllib.request.urlopen(urllib.request.Request(f"{url}/moto-api/reset", method="POST"), timeout=10).close()
    boto3.client("s3", endpoint_url=url).create_bucket(Bucket="hit-images")
    try:
        yield url, "hit-images"
    finally:
        server.stop()


def write_photos(folder: Path, n: int, *, size: int = 48, seed: int = 0) -> list[tuple[str, str]]:
    """``n`` small photos under ``folder/<label>/``: "warm" ones red-orange with horizontal stripes, "cool"
    ones blue-green with vertical stripes, both with noise, so colour and gradients both tell them apart. Returns
    (path relative to ``folder``, label) per photo."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    written = []
    for k in range(n):
        label = ("warm", "cool")[k % 2]
        base = np.array([200, 90, 40] if label == "warm" else [40, 110, 200], dtype=np.float64)
        stripes = (np.arange(size) // 4 % 2 * 50.0)[:, None]
        pattern = stripes if label == "warm" else stripes.T
        pixels = base + pattern[..., None] + rng.normal(0, 25, (size, size, 3))
        relative = f"{label}/{k:04d}.{'jpg' if k % 3 else 'png'}"
        (folder / label).mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(folder / relative)
        written.append((relative, label))
    return written


@pytest.fixture
def photos(tmp_path: Path) -> Callable[..., list[tuple[str, str]]]:
    """``photos(n, folder=tmp_path/"photos")`` writes ``n`` labeled test photos (:func:`write_photos`)."""

    def make(n: int, folder: Path | None = None, **kwargs: int) -> list[tuple[str, str]]:
        return write_photos(folder or tmp_path / "photos", n, **kwargs)

    return make


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
