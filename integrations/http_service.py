"""One small HTTP service served from a thread: the local MTurk endpoint and the webhook receiver both are one."""

from __future__ import annotations

import threading
from http.server import ThreadingHTTPServer
from typing import Self


class BackgroundHTTPService:
    """Serve ``server`` from a background thread (``start()``, or ``with``) or the caller's (``serve_forever()``).

    The server answers each request in its own daemon thread, so a hung client never keeps the process alive."""

    def __init__(self, server: ThreadingHTTPServer, *, thread_name: str) -> None:
        server.daemon_threads = True
        self._server = server
        self._thread_name = thread_name
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def start(self) -> Self:
        # A short poll interval: stop() waits for the serving loop's next poll.
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=self._thread_name,
            daemon=True,
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._server.serve_forever()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
