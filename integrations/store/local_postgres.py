"""A throwaway PostgreSQL cluster: ``initdb`` in a temporary folder, ``postgres`` on a free loopback port.

The tests and the benchmarks need a real server, not a mock, and none may be running on the machine: this starts
Debian's (or any installed) PostgreSQL binaries the way ``pytest-postgresql`` does, without its dependencies.
The cluster has one password-protected superuser (``scram-sha-256`` over TCP; no Unix socket), so a client must
get the password the way a production one does — from ``PGPASSWORD`` — and never from a URL in a config file.
Durability is traded for speed (``fsync=off``): the data dies with the cluster anyway.

Run as root (as CI does), ``initdb`` refuses to start: the cluster then runs as the unprivileged ``postgres``
user Debian's package creates (or ``nobody``). It is stopped by its process id, never by name.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final

SUPERUSER: Final = "labelflow"
# Where Debian's postgresql package puts the server binaries (not on PATH): /usr/lib/postgresql/<major>/bin.
DEBIAN_BIN_GLOB: Final = "/usr/lib/postgresql/*/bin"
_UNPRIVILEGED_USERS: Final = ("postgres", "nobody")


class PostgresNotInstalled(RuntimeError):
    """No ``initdb``/``postgres`` binaries on PATH or in Debian's folder."""


def postgres_bin_dir() -> Path:
    """The folder holding ``initdb`` and ``postgres``: PATH first, then Debian's newest major version."""
    on_path = shutil.which("initdb")
    if on_path and (Path(on_path).resolve().parent / "postgres").exists():
        return Path(on_path).resolve().parent
    candidates = sorted(
        (path for path in Path("/").glob(DEBIAN_BIN_GLOB.lstrip("/")) if (path / "initdb").exists()),
        key=lambda path: int(path.parent.name) if path.parent.name.isdigit() else 0,
    )
    if not candidates:
        raise PostgresNotInstalled(
            "PostgreSQL's server binaries (initdb, postgres) are not installed; on Debian or Ubuntu: "
            "apt-get install postgresql (.ci/run does)"
        )
    return candidates[-1]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _run_as() -> pwd.struct_passwd | None:
    """The unprivileged user to run the cluster as when this process is root; None when it is not root."""
    if os.geteuid() != 0:
        return None
    for name in _UNPRIVILEGED_USERS:
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise PostgresNotInstalled(
        f"running as root, and none of the users {_UNPRIVILEGED_USERS} exists to run it"
    )


@dataclass(frozen=True)
class LocalPostgres:
    """A running throwaway cluster: where it listens and how to reach a database in it."""

    host: str
    port: int
    user: str
    password: str
    pid: int
    data_dir: Path

    def url(self, database: str = "postgres", driver: str = "psycopg") -> str:
        """A SQLAlchemy URL for ``database``, without the password (clients read ``PGPASSWORD``)."""
        return f"postgresql+{driver}://{self.user}@{self.host}:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """Create an empty database and return its psycopg URL."""
        self._admin(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """Drop a database, closing any connection still open to it."""
        self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def _admin(self, statement: str) -> None:
        import psycopg

        with psycopg.connect(
            host=self.host, port=self.port, user=self.user, password=self.password, dbname="postgres"
        ) as conn:
            conn.autocommit = True  # CREATE/DROP DATABASE cannot run inside a transaction
            conn.execute(statement.encode())


def _wait_until_ready(
    cluster: LocalPostgres, server: subprocess.Popen[bytes], log: Path, timeout: float
) -> None:
    import psycopg

    deadline = time.monotonic() + timeout
    while True:
        try:
            psycopg.connect(
                host=cluster.host,
                port=cluster.port,
                user=cluster.user,
                password=cluster.password,
                dbname="postgres",
                connect_timeout=2,
            ).close()
            return
        except psycopg.OperationalError:
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"PostgreSQL did not accept connections within {timeout:.0f} s; its log:\n"
                    + log.read_text(errors="replace")[-2000:]
                ) from None
            time.sleep(0.1)


def _stop(server: subprocess.Popen[bytes], grace: float = 20.0) -> None:
    """Fast shutdown (SIGINT: roll back open transactions, close connections) by pid; SIGKILL the group if it
    lingers."""
    if server.poll() is not None:
        return
    server.send_signal(signal.SIGINT)
    try:
        server.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()


@contextmanager
def local_postgres(parent: Path | None = None, *, timeout: float = 60.0) -> Iterator[LocalPostgres]:
    """Start a throwaway cluster in a new folder under ``parent`` (the system's temporary folder by default),
    yield it, and stop it and delete its folder on exit.

    Raises
    ------
    PostgresNotInstalled
        If the server binaries cannot be found.
    """
    bin_dir = postgres_bin_dir()
    account = _run_as()
    # Its own folder: when the cluster runs as another user, pytest's private temporary folders are not
    # reachable by it, so the folder is created here and handed over.
    root = Path(tempfile.mkdtemp(prefix="labelflow-pg-", dir=parent))
    try:
        password = secrets.token_urlsafe(16)
        data_dir = _initdb(bin_dir, root, password, account)
        user = account.pw_name if account is not None else None
        port = _free_port()
        log = root / "postgres.log"
        with log.open("wb") as output:
            server = subprocess.Popen(
                [
                    str(bin_dir / "postgres"), "-D", str(data_dir),
                    "-c", "listen_addresses=127.0.0.1", "-c", f"port={port}", "-c", "unix_socket_directories=",
                    "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
                    "-c", "max_connections=300",
                ],
                user=user, stdout=output, stderr=subprocess.STDOUT, start_new_session=True, cwd=root,
            )  # fmt: skip
        cluster = LocalPostgres("127.0.0.1", port, SUPERUSER, password, server.pid, data_dir)
        try:
            _wait_until_ready(cluster, server, log, timeout)
            yield cluster
        finally:
            _stop(server)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _initdb(bin_dir: Path, root: Path, password: str, account: pwd.struct_passwd | None) -> Path:
    """A new cluster in ``root``/data whose superuser has ``password``, owned by ``account`` if given."""
    password_file = root / "password"
    password_file.write_text(password + "\n")
    if account is not None:
        for path in (root, password_file):
            os.chown(path, account.pw_uid, account.pw_gid)
    data_dir = root / "data"
    try:
        subprocess.run(
            [
                str(bin_dir / "initdb"), "-D", str(data_dir), "-U", SUPERUSER, f"--pwfile={password_file}",
                "--auth-host=scram-sha-256", "--auth-local=scram-sha-256", "-E", "UTF8", "--no-locale",
                "--no-sync",
            ],
            user=None if account is None else account.pw_name, check=True, capture_output=True, cwd=root,
        )  # fmt: skip
    except subprocess.CalledProcessError as error:
        raise RuntimeError(f"initdb failed: {error.stderr.decode(errors='replace')}") from None
    finally:
        password_file.unlink()
    return data_dir
