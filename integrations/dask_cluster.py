"""The Dask cluster selection runs on: the user's own scheduler, by address, or a LocalCluster on this machine.

Every worker imports labelflow (the tasks it runs are labelflow functions): install the same labelflow version
on the workers' hosts, and give them read access to the pool's partitions (a shared folder, or S3 credentials).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from distributed import Client, LocalCluster

CONNECT_TIMEOUT_SECONDS = 10


class DaskClusterError(ConnectionError):
    """No Dask scheduler answered at the configured address."""


@contextmanager
def dask_client(address: str | None, *, timeout_seconds: float = CONNECT_TIMEOUT_SECONDS) -> Iterator[Client]:
    """A client of the scheduler at ``address`` (``tcp://host:8786``), or of a LocalCluster started for the
    caller and stopped after (one single-threaded worker process per core: scoring holds the GIL between BLAS
    calls). The cluster at ``address`` is left running."""
    if address is None:
        cluster = LocalCluster(
            n_workers=os.cpu_count() or 1, threads_per_worker=1, processes=True, dashboard_address=None
        )
        try:
            with Client(cluster) as client:
                yield client
        finally:
            cluster.close()
        return
    try:
        client = Client(address, timeout=f"{timeout_seconds}s")
    except (OSError, TimeoutError) as error:
        raise DaskClusterError(
            f"no Dask scheduler answered at {address} within {timeout_seconds:g} s ({error}); start one there "
            "(`dask scheduler` and `dask worker <address>`), or fix selection.dask_address "
            "(leave it out for a LocalCluster on this machine)"
        ) from None
    with client:
        yield client
