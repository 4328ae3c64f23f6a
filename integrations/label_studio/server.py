"""A local Label Studio: installed into its own virtualenv (created on first use, then reused), started on a free
loopback port with analytics and version checks off, stopped by pid.

Label Studio cannot share a virtualenv with Prefect 3 (it pins older redis, python-json-logger and pytz), so the
server lives in a venv of its own and labelflow talks to it over HTTP only. Two callers share this module: the
test fixture (a venv cached under ``~/.cache/labelflow``, keyed by version) and ``labelflow label-studio start``
(a venv under the project's workdir).

Installing takes ~1.5 min and ~1 GB; a first start ~40 s (database migrations), a restart ~5 s.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import httpx

LABEL_STUDIO_VERSION: Final = "1.23.2"
INSTALLED_MARKER: Final = ".labelflow-installed"
# The settings module also reads these unprefixed variables; a user's USERNAME or PORT must not leak in.
_LEAKY_VARIABLES: Final = ("USERNAME", "PASSWORD", "HOST", "PORT")


class LabelStudioServerError(RuntimeError):
    """Installing or starting Label Studio failed; the message says where its log is."""


def default_cache_dir() -> Path:
    """Where the test fixture keeps its Label Studio venvs: ``$XDG_CACHE_HOME/labelflow`` (``~/.cache/labelflow``)."""
    root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(root) / "labelflow"


def label_studio_executable(venv: Path) -> Path:
    return venv / "bin" / "label-studio"


def is_installed(venv: Path, version: str = LABEL_STUDIO_VERSION) -> bool:
    """True when ``venv`` holds a complete install of ``version`` (an install killed half-way has no marker)."""
    marker = venv / INSTALLED_MARKER
    return marker.exists() and marker.read_text().strip() == version


def ensure_installed(
    venv: Path,
    version: str = LABEL_STUDIO_VERSION,
    *,
    python: str | None = None,
    progress: Callable[[str], None] = lambda _: None,
) -> Path:
    """The ``label-studio`` command of ``venv``, installing ``label-studio==version`` there first if needed.

    A lock file beside the venv makes concurrent callers wait for one install; an install that died half-way
    (no marker file) is removed and done again. ``python`` is the interpreter the venv is made from (by default
    the one running this code; Label Studio supports Python 3.10-3.12)."""
    venv = venv.resolve()
    venv.parent.mkdir(parents=True, exist_ok=True)
    with (venv.parent / f"{venv.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if is_installed(venv, version):
            return label_studio_executable(venv)
        if venv.exists():
            shutil.rmtree(venv)
        progress(f"installing Label Studio {version} into {venv} (about 1.5 min and 1 GB, once)")
        log = venv.parent / f"{venv.name}.install.log"
        with log.open("w") as output:
            for command in (
                [python or _base_python(), "-m", "venv", str(venv)],
                [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", f"label-studio=={version}"],
            ):
                if subprocess.run(command, stdout=output, stderr=subprocess.STDOUT).returncode != 0:
                    raise LabelStudioServerError(
                        f"installing Label Studio {version} failed ({' '.join(command[:3])} ...); see {log}"
                    )
        (venv / INSTALLED_MARKER).write_text(version)
        return label_studio_executable(venv)


def _base_python() -> str:
    """The interpreter this venv was made from: a venv made from a venv's python would depend on that venv."""
    candidate = Path(sys.base_prefix) / "bin" / f"python{sys.version_info.major}.{sys.version_info.minor}"
    return str(candidate) if candidate.exists() else sys.executable


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True)
class LabelStudioServer:
    """A running local Label Studio: its URL, the owner's credentials and the server's pid."""

    url: str
    username: str
    password: str
    data_dir: Path
    pid: int
    log: Path

    def stop(self, grace: float = 20.0) -> None:
        """SIGTERM the server's process group (Label Studio ignores SIGINT at times), SIGKILL what lingers."""
        _stop_group(self.pid, grace)


def start_label_studio(
    executable: Path,
    data_dir: Path,
    *,
    username: str,
    password: str,
    port: int | None = None,
    allow_loopback_webhooks: bool = False,
    timeout: float | None = None,
) -> LabelStudioServer:
    """Start ``label-studio start`` on 127.0.0.1 with its database and files in ``data_dir``, the owner account
    ``username`` (an email) / ``password`` created on first start, and wait until it answers.

    Local files under ``data_dir/files`` are served to logged-in users (images). ``allow_loopback_webhooks``
    turns Label Studio's SSRF protection off so that webhooks may call a receiver on this machine (tests).
    ``timeout`` defaults to 10 min for a first start, whose migrations took 40-140 s idle and over 3 min on a
    loaded machine, and 3 min for a start on a migrated database."""
    data_dir = data_dir.resolve()
    if timeout is None:
        timeout = 180.0 if (data_dir / "label_studio.sqlite3").exists() else 600.0
    (data_dir / "files").mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if k not in _LEAKY_VARIABLES}
    env.update(
        LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED="true",
        LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT=str(data_dir / "files"),
        LATEST_VERSION_CHECK="false",
        COLLECT_ANALYTICS="false",
        SENTRY_DSN="",
        FRONTEND_SENTRY_DSN="",
        SSRF_PROTECTION_ENABLED="false" if allow_loopback_webhooks else "true",
    )
    log = data_dir / "label-studio.log"
    command = [
        str(executable),
        "start",
        "--no-browser",
        "--internal-host",
        "127.0.0.1",
        "--port",
        str(port),
        "--host",
        url,
        "--data-dir",
        str(data_dir),
        "--username",
        username,
        "--password",
        password,
    ]
    with log.open("a") as output:
        process = subprocess.Popen(
            command, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )
    server = LabelStudioServer(url, username, password, data_dir, process.pid, log)
    deadline = time.monotonic() + timeout
    while not is_up(url):
        if process.poll() is not None or time.monotonic() > deadline:
            server.stop()
            raise LabelStudioServerError(
                f"Label Studio did not answer at {url} within {timeout:.0f} s "
                f"({'it exited' if process.returncode is not None else 'still starting'}); see {log}"
            )
        time.sleep(0.5)
    return server


def is_up(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@contextmanager
def running_label_studio(
    executable: Path, data_dir: Path, *, username: str, password: str, allow_loopback_webhooks: bool = False
) -> Iterator[LabelStudioServer]:
    """:func:`start_label_studio` for the length of a ``with`` block; stopped by pid when it ends."""
    server = start_label_studio(
        executable,
        data_dir,
        username=username,
        password=password,
        allow_loopback_webhooks=allow_loopback_webhooks,
    )
    try:
        yield server
    finally:
        server.stop()


def _stop_group(pid: int, grace: float) -> None:
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        try:
            finished, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:  # not our child (started by another process): poll for it instead
            finished = 0 if _alive(pid) else pid
        if finished:
            return
        time.sleep(0.2)
    try:
        os.killpg(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    except (ProcessLookupError, ChildProcessError):
        pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


# ---------------------------------------------------------------------------------------------- accounts


def _post_account_form(client: httpx.Client, url: str, page: str, email: str, password: str) -> int:
    """Post ``email`` and ``password`` to one of Label Studio's account forms (``page``: ``/user/login/``,
    ``/user/signup/``) as a browser does, CSRF cookie first; the response's status (302 on success)."""
    client.get(page)
    response = client.post(
        page,
        data={
            "email": email,
            "password": password,
            "csrfmiddlewaretoken": client.cookies.get("csrftoken", ""),
        },
        headers={"Referer": f"{url}{page}"},
    )
    return response.status_code


def login(url: str, email: str, password: str) -> httpx.Client:
    """A client logged in through Label Studio's form, as a browser does."""
    client = httpx.Client(base_url=url, timeout=30)
    status = _post_account_form(client, url, "/user/login/", email, password)
    if status != 302:
        client.close()
        raise LabelStudioServerError(f"logging in to {url} as {email} failed (HTTP {status})")
    return client


def personal_access_token(url: str, email: str, password: str) -> str:
    """A personal access token (a refresh JWT, what LABEL_STUDIO_API_KEY holds) for the account, made through
    the logged-in session as the account page's "Create token" button does."""
    client = login(url, email, password)
    try:
        response = client.post(
            "/api/token/",
            headers={"X-CSRFToken": client.cookies.get("csrftoken") or "", "Referer": f"{url}/"},
        )
    finally:
        client.close()
    if response.status_code == 409:
        raise LabelStudioServerError(
            f"{email} already has an access token at {url}, and Label Studio shows a token only when it is made: "
            "use the one you saved, or revoke it (Account & Settings > Personal Access Token) and run this again"
        )
    if response.status_code not in (200, 201):
        raise LabelStudioServerError(
            f"creating an access token for {email} at {url} failed (HTTP {response.status_code}: "
            f"{response.text[:200]})"
        )
    return str(response.json()["token"])


def sign_up(url: str, email: str, password: str) -> None:
    """Create an annotator account through the public signup form (a user made with ``POST /api/users/`` cannot
    log in with its password)."""
    with httpx.Client(base_url=url, timeout=30) as client:
        status = _post_account_form(client, url, "/user/signup/", email, password)
    if status != 302:
        raise LabelStudioServerError(f"signing up {email} at {url} failed (HTTP {status})")
