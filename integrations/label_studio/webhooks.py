"""The webhook receiver: Label Studio calls it for each new or edited annotation, and it hands a short summary on.

Label Studio posts ``{action, annotation, task, project}`` synchronously, with a 1 s timeout and no signature, so
the receiver checks a shared secret header (``X-Labelflow-Secret``, which labelflow registers with the webhook)
and answers at once: ``on_annotation`` only queues a notice (a Prefect event), it never reads or stores answers.
The answers themselves stay in Label Studio until the collector polls them, so a webhook that is refused, lost or
never sent delays a resume to the collector's next interval and loses nothing.

Replies: 401 without the header, 403 with a wrong secret, 400 for a body that is not a webhook's JSON, 422 for a
webhook of another Label Studio project, 413 for a body over 1 MB, 404 elsewhere than ``POST /label-studio``
(``GET /health`` says it is up); 200 otherwise, also for actions other than annotations (ignored).
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final

from labelflow.integrations.http_service import BackgroundHTTPService
from labelflow.integrations.label_studio.crowd import WEBHOOK_ACTIONS, WEBHOOK_SECRET_HEADER, worker_id

logger = logging.getLogger(__name__)

SECRET_HEADER: Final = WEBHOOK_SECRET_HEADER
WEBHOOK_PATH: Final = "/label-studio"
MAX_BODY_BYTES: Final = 1 << 20  # an annotation's webhook is a few kB; its task's data rides along


class WebhookError(ValueError):
    """A request the receiver refuses; ``status`` is the HTTP reply."""

    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status


class ReceiverStartError(OSError):
    """The receiver cannot listen where it was asked to."""


@dataclass(frozen=True)
class AnnotationNotice:
    """What a webhook says about one annotation: enough to log and to match, not the answer itself."""

    action: str
    project_id: int
    project_title: str
    task_id: int
    annotation_id: int
    worker_id: str
    labelflow_task: str | None  # "<round>/<item>" for labelflow's tasks

    def as_payload(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "label_studio_project": self.project_id,
            "task": self.task_id,
            "annotation": self.annotation_id,
            "worker_id": self.worker_id,
            "labelflow_task": self.labelflow_task,
        }


def _integer(value: object, field: str) -> int:
    if isinstance(value, Mapping):
        value = value.get("id")
    if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).isdigit():
        raise WebhookError(HTTPStatus.BAD_REQUEST, f"the webhook's {field} has no integer id (got {value!r})")
    return int(value)


def _part(message: dict[str, Any], key: str) -> dict[str, Any]:
    value = message.get(key)
    if not isinstance(value, dict):
        raise WebhookError(
            HTTPStatus.BAD_REQUEST,
            f"a {message['action']} webhook needs an '{key}' object (register it with send_payload)",
        )
    return value


def parse_webhook(body: bytes, project_title: str) -> AnnotationNotice | None:
    """The annotation a webhook body is about; None for another action; :class:`WebhookError` for a body that is
    not a Label Studio webhook of the project titled ``project_title``."""
    try:
        message = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise WebhookError(HTTPStatus.BAD_REQUEST, f"the body is not JSON ({error})") from None
    if not isinstance(message, dict) or not isinstance(message.get("action"), str):
        raise WebhookError(HTTPStatus.BAD_REQUEST, "the body is not a Label Studio webhook: no 'action'")
    if message["action"] not in WEBHOOK_ACTIONS:
        return None
    annotation, task, project = (_part(message, key) for key in ("annotation", "task", "project"))
    title = str(project.get("title", ""))
    if title != project_title:
        raise WebhookError(
            HTTPStatus.UNPROCESSABLE_ENTITY,
            f"the webhook is about Label Studio project {title!r}; this receiver serves {project_title!r}",
        )
    data = task.get("data")
    labelflow_task = data.get("labelflow_task") if isinstance(data, dict) else None
    return AnnotationNotice(
        action=message["action"],
        project_id=_integer(project.get("id"), "project"),
        project_title=title,
        task_id=_integer(task.get("id", annotation.get("task")), "task"),
        annotation_id=_integer(annotation.get("id"), "annotation"),
        worker_id=worker_id(_integer(annotation.get("completed_by"), "annotation's completed_by")),
        labelflow_task=str(labelflow_task) if labelflow_task is not None else None,
    )


class WebhookReceiver(BackgroundHTTPService):
    """An HTTP server (a thread per request) that passes each valid annotation webhook to ``on_annotation``.

    ``start()`` serves in a background thread (``labelflow serve``); ``serve_forever()`` in the caller's
    (``labelflow webhooks``). A failure of ``on_annotation`` is logged and answered with 503."""

    def __init__(
        self,
        secret: str,
        project_title: str,
        on_annotation: Callable[[AnnotationNotice], None],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        if not secret:
            raise ValueError("the webhook receiver needs a non-empty shared secret")
        self.secret = secret.encode()
        self.project_title = project_title
        self.on_annotation = on_annotation
        self.received = 0  # annotation webhooks handed on
        try:
            server = ThreadingHTTPServer((host, port), self._handler())
        except OSError as error:
            raise ReceiverStartError(
                f"the webhook receiver cannot listen on {host}:{port} ({error.strerror}): is another one running "
                "there? Choose another port (--port), and the same in crowd.label_studio.webhook_url"
            ) from None
        super().__init__(server, thread_name="webhooks")

    @property
    def url(self) -> str:
        host, port = self.address
        return f"http://{host}:{port}{WEBHOOK_PATH}"

    def handle(self, given: str | None, body: bytes) -> tuple[HTTPStatus, str]:
        """The reply to a POST to the webhook path with ``given`` as its secret header: (status, message)."""
        if given is None:
            return HTTPStatus.UNAUTHORIZED, f"no {SECRET_HEADER} header"
        if not hmac.compare_digest(given.encode(), self.secret):
            return HTTPStatus.FORBIDDEN, f"wrong {SECRET_HEADER}"
        try:
            notice = parse_webhook(body, self.project_title)
        except WebhookError as error:
            return error.status, str(error)
        if notice is None:
            return HTTPStatus.OK, "ignored: not an annotation"
        try:
            self.on_annotation(notice)
        except Exception:
            logger.exception("could not pass on annotation %s's webhook", notice.annotation_id)
            return (
                HTTPStatus.SERVICE_UNAVAILABLE,
                "could not pass the webhook on; the collector's interval will",
            )
        self.received += 1
        return HTTPStatus.OK, f"annotation {notice.annotation_id} of task {notice.task_id}: passed on"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/health":
                    self._reply(HTTPStatus.OK, "up")
                else:
                    self._reply(HTTPStatus.NOT_FOUND, f"Label Studio webhooks go to POST {WEBHOOK_PATH}")

            def do_POST(self) -> None:
                if self.path.split("?")[0] != WEBHOOK_PATH:
                    self._reply(HTTPStatus.NOT_FOUND, f"Label Studio webhooks go to POST {WEBHOOK_PATH}")
                    return
                length = self.headers.get("Content-Length", "")
                if not length.isdigit():
                    self._reply(HTTPStatus.LENGTH_REQUIRED, "a Content-Length header is needed")
                    return
                if int(length) > MAX_BODY_BYTES:
                    self._reply(
                        HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"the body is over {MAX_BODY_BYTES} bytes"
                    )
                    return
                status, message = receiver.handle(
                    self.headers.get(SECRET_HEADER), self.rfile.read(int(length))
                )
                if status >= 400:
                    logger.warning(
                        "refused a webhook from %s: %d %s", self.client_address[0], status, message
                    )
                self._reply(status, message)

            def _reply(self, status: HTTPStatus, message: str) -> None:
                body = json.dumps({"detail": message}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                logger.debug("%s " + format, self.client_address[0], *args)

        return Handler
