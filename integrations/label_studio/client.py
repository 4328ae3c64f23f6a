"""Label Studio's REST API over httpx, its failures turned into the crowd protocol's errors.

Two kinds of token work: a personal access token (a JWT refresh token; each call carries a short-lived access
token obtained from ``/api/token/refresh/`` and renewed on expiry) and a legacy token (``Token ...``), for
servers that still enable it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Final, Self

import httpx

from labelflow.integrations.crowd.base import CrowdBackendError, TransientCrowdError

ACCESS_REFRESH_SECONDS: Final = 240.0  # access tokens live 5 minutes


class LabelStudioAuthError(CrowdBackendError):
    """The server refused the token."""


class LabelStudioNotFound(CrowdBackendError):
    """The object asked for does not exist (deleted in the UI, say)."""


class LabelStudioClient:
    """Calls to one Label Studio server with one token; ``operation`` names in errors say what was being done."""

    def __init__(self, url: str, token: str, *, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self._token = token
        self._is_jwt = token.count(".") == 2
        self._access: str | None = None
        self._http = httpx.Client(base_url=self.url, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _authorization(self, renew: bool = False) -> str:
        if not self._is_jwt:
            return f"Token {self._token}"
        if self._access is None or renew:
            response = self._send(
                "POST",
                "/api/token/refresh/",
                "refreshing the access token",
                None,
                json={"refresh": self._token},
            )
            if response.status_code != 200:
                raise LabelStudioAuthError(
                    f"Label Studio at {self.url} refused the access token (HTTP {response.status_code} on "
                    "/api/token/refresh/): it is wrong, revoked or from another server. Create a new one "
                    "(Account & Settings > Personal Access Token) and set LABEL_STUDIO_API_KEY to it."
                )
            self._access = str(response.json()["access"])
        return f"Bearer {self._access}"

    def _send(
        self, method: str, path: str, operation: str, authorization: str | None, **kwargs: Any
    ) -> httpx.Response:
        headers = {"Authorization": authorization} if authorization else {}
        try:
            return self._http.request(method, path, headers=headers, **kwargs)
        except httpx.TimeoutException as error:
            raise TransientCrowdError(
                f"Label Studio at {self.url} did not answer in time while {operation} ({error!r})"
            ) from None
        except httpx.TransportError as error:
            raise TransientCrowdError(
                f"Label Studio at {self.url} is unreachable while {operation} ({error!r}): is it running? "
                "(`labelflow label-studio start` runs a local one; crowd.label_studio.url says where)"
            ) from None

    def request(self, method: str, path: str, operation: str, **kwargs: Any) -> Any:
        """The JSON of a successful call (None for an empty body); our errors otherwise."""
        response = self._send(method, path, operation, self._authorization(), **kwargs)
        if response.status_code == 401 and self._is_jwt:  # the access token expired: renew it once
            response = self._send(method, path, operation, self._authorization(renew=True), **kwargs)
        if response.status_code == 401:
            raise LabelStudioAuthError(
                f"Label Studio at {self.url} refused the token while {operation} (HTTP 401: "
                f"{response.text[:200]}). Set LABEL_STUDIO_API_KEY to a valid access token (Account & "
                "Settings in Label Studio)."
            )
        if response.status_code == 404:
            raise LabelStudioNotFound(f"Label Studio at {self.url}: {operation}: not found ({method} {path})")
        if response.status_code >= 500 or response.status_code == 429:
            raise TransientCrowdError(
                f"Label Studio at {self.url} failed while {operation} (HTTP {response.status_code}: "
                f"{response.text[:200]})"
            )
        if response.status_code >= 400:
            raise CrowdBackendError(
                f"Label Studio at {self.url} refused {operation} (HTTP {response.status_code}: "
                f"{response.text[:500]})"
            )
        return response.json() if response.content else None

    def pages(self, path: str, operation: str, params: Mapping[str, Any], page_size: int) -> Iterator[Any]:
        """Every item of a paginated listing: ``{"results": [...], "next": ...}`` (projects),
        ``{"tasks": [...], "total": n}`` (tasks) or a plain list."""
        page, seen = 1, 0
        while True:
            body = self.request(
                "GET", path, operation, params={**params, "page": page, "page_size": page_size}
            )
            if isinstance(body, list):
                yield from body
                return
            results = body.get("results", body.get("tasks", []))
            yield from results
            seen += len(results)
            more = body.get("next") if "results" in body else seen < int(body.get("total", 0))
            if not more or not results:
                return
            page += 1
