"""The local MTurk endpoint over HTTP: MTurk's JSON 1.1 protocol on 127.0.0.1, for the real boto3 client.

Each request must carry ``X-Amz-Target: MTurkRequesterServiceV20170117.<Operation>``, a SigV4 ``Authorization``
header (any credentials: the signature is not checked, its presence is) and a JSON body, which is validated
against botocore's own MTurk service model before the operation runs — so a request MTurk would refuse is
refused here too, in MTurk's error shape.

A non-MTurk admin path controls the simulation (no signature needed):

- ``GET  /_admin/state``    time, call counters, HITs, assignments by status, balance, faults
- ``GET  /_admin/clock``    ``{"now": epoch seconds}``
- ``POST /_admin/advance``  ``{"seconds": N}`` fast-forwards the endpoint's clock
- ``POST /_admin/faults``   ``{"throttle": N, "server_errors": N (-1: for ever), "operations": [...],
  "after": N, "malformed_answers": N, "slow_factor": F}``
- ``POST /_admin/balance``  ``{"dollars": X}``
- ``POST /_admin/accept``   ``{"hit": id, "worker": id}`` accepts an assignment as that worker: ``{"assignment": id}``

and the worker's side (:mod:`.worker_site`), for people in a browser, on an endpoint started with ``people``:

- ``GET  /worker/<hit>?workerId=W``   preview the HIT, with an Accept button
- ``POST /worker/<hit>/accept``       accept an assignment (form field ``workerId``), then go to its page
- ``GET  /worker/<hit>/<assignment>`` the assignment's page: the HIT in a frame, with MTurk's URL parameters
- ``GET  /worker/<hit>/question``     the HIT's own HTML (what that frame shows)
- ``POST /mturk/externalSubmit``      the HIT's form: stores the answer, Submitted, as MTurk would
"""

from __future__ import annotations

import html
import json
import urllib.request
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final
from urllib.parse import parse_qsl, urlsplit

from botocore.model import ServiceModel

from labelflow.integrations.http_service import BackgroundHTTPService
from labelflow.integrations.mturk_local.faults import Faults, MTurkFault
from labelflow.integrations.mturk_local.service import LocalMTurk
from labelflow.integrations.mturk_local.worker_site import WorkerError, WorkerSite

TARGET_PREFIX: Final = "MTurkRequesterServiceV20170117"


@cache
def service_model() -> ServiceModel:
    """botocore's MTurk service model: the shapes real MTurk accepts."""
    import botocore.session

    return botocore.session.get_session().get_service_model("mturk")


def validate_request(operation: str, params: dict[str, Any]) -> None:
    """Raise :class:`MTurkFault` unless ``params`` fit the operation's input shape in the service model."""
    from botocore.model import OperationNotFoundError
    from botocore.validate import ParamValidator

    try:
        model = service_model().operation_model(operation)
    except OperationNotFoundError:
        raise MTurkFault("UnknownOperationException", f"Unknown operation {operation}.") from None
    if model.input_shape is None:
        return
    report = ParamValidator().validate(params, model.input_shape)
    if report.has_errors():
        raise MTurkFault("ParameterValidationError", report.generate_report())


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    # Headers and body as one segment: otherwise Nagle's algorithm and delayed ACKs add ~40 ms to every call.
    disable_nagle_algorithm = True
    wbufsize = -1

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the endpoint's counters say what happened; per-request lines would drown test output

    def _reply(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b"{}"
        try:
            return json.loads(raw or b"{}")
        except json.JSONDecodeError:
            raise MTurkFault("SerializationException", "The request body is not valid JSON.") from None

    def _reply_html(self, status: int, page: str, location: str | None = None) -> None:
        data = page.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        if location:
            self.send_header("Location", location)
        self.end_headers()
        self.wfile.write(data)

    def _form(self) -> dict[str, str]:
        length = int(self.headers.get("Content-Length") or 0)
        return dict(
            parse_qsl(self.rfile.read(length).decode("utf-8") if length else "", keep_blank_values=True)
        )

    def _worker(self, action: Callable[[WorkerSite], str], *, redirect: bool = False) -> None:
        """A worker page, or a page saying why not."""
        try:
            result = self.server.mturk.worker(action)
        except WorkerError as error:
            self._reply_html(error.status, _message_page("Not possible", str(error)))
            return
        except Exception as error:  # an endpoint bug: say so, do not leave the browser hanging
            self._reply_html(500, _message_page("Endpoint error", f"{type(error).__name__}: {error}"))
            return
        if redirect:
            self._reply_html(303, _message_page("Accepted", "Go to the assignment."), location=result)
        else:
            self._reply_html(200, result)

    def _worker_get(self, parts: list[str], query: dict[str, str]) -> None:
        hit_id = parts[0]
        submit_to = f"http://{self.headers.get('Host', '127.0.0.1')}"
        if len(parts) == 1:
            self._worker(lambda site: site.frame_page(hit_id, None, query.get("workerId", ""), submit_to))
        elif parts[1] == "question":
            self._worker(lambda site: site.question_page(hit_id))
        else:
            self._worker(lambda site: site.frame_page(hit_id, parts[1], "", submit_to))

    def do_GET(self) -> None:
        mturk = self.server.mturk
        url = urlsplit(self.path)
        parts = [p for p in url.path.split("/") if p]
        if self.path == "/_admin/state":
            self._reply(200, mturk.state())
        elif self.path == "/_admin/clock":
            self._reply(200, {"now": mturk.now()})
        elif parts[:1] == ["worker"] and len(parts) in (2, 3):
            self._worker_get(parts[1:], dict(parse_qsl(url.query)))
        else:
            self._reply(404, {"__type": "NotFound", "Message": f"no such path {self.path}"})

    def do_POST(self) -> None:
        parts = [p for p in urlsplit(self.path).path.split("/") if p]
        if parts == ["mturk", "externalSubmit"]:
            fields = self._form()
            self._worker(
                lambda site: _message_page(
                    "Submitted", f"Your answer to assignment {site.submit(fields)} was submitted. Thank you!"
                )
            )
            return
        if parts[:1] == ["worker"] and len(parts) == 3 and parts[2] == "accept":
            worker_id = self._form().get("workerId", "")
            self._worker(lambda site: f"/worker/{parts[1]}/{site.accept(parts[1], worker_id)}", redirect=True)
            return
        try:
            if self.path.startswith("/_admin/"):
                self._admin(self.path.removeprefix("/_admin/"), self._body())
            else:
                self._mturk()
        except MTurkFault as fault:
            self._reply(fault.status, fault.body())
        except Exception as error:  # an endpoint bug: answer like a service fault, do not hang the client
            self._reply(500, {"__type": "ServiceFault", "Message": f"{type(error).__name__}: {error}"})

    def _mturk(self) -> None:
        prefix, _, operation = self.headers.get("X-Amz-Target", "").partition(".")
        if prefix != TARGET_PREFIX or not operation:
            raise MTurkFault("UnknownOperationException", "Missing or unknown X-Amz-Target header.")
        authorization = self.headers.get("Authorization", "")
        if not authorization.startswith("AWS4-HMAC-SHA256 Credential=") or "Signature=" not in authorization:
            raise MTurkFault(
                "MissingAuthenticationTokenException",
                "Request is missing a SigV4 Authentication Token.",
                status=403,
            )
        if not self.headers.get("X-Amz-Date"):
            raise MTurkFault("IncompleteSignatureException", "Request is missing the X-Amz-Date header.")
        params = self._body()
        if not isinstance(params, dict):
            raise MTurkFault("SerializationException", "The request body must be a JSON object.")
        validate_request(operation, params)
        self._reply(200, self.server.mturk.handle(operation, params))

    def _admin(self, command: str, body: dict[str, Any]) -> None:
        mturk = self.server.mturk
        if command == "advance":
            self._reply(200, {"now": mturk.advance(float(body.get("seconds", 0)))})
        elif command == "faults":
            mturk.set_faults(Faults(**{**body, "operations": tuple(body.get("operations", ()))}))
            self._reply(200, mturk.state()["faults"])
        elif command == "accept":
            try:
                assignment = mturk.worker(lambda site: site.accept(str(body["hit"]), str(body["worker"])))
            except WorkerError as error:
                self._reply(error.status, {"__type": "WorkerError", "Message": str(error)})
                return
            self._reply(200, {"assignment": assignment})
        elif command == "balance":
            mturk.set_balance(float(body["dollars"]))
            self._reply(200, {"balance": float(body["dollars"])})
        else:
            self._reply(404, {"__type": "NotFound", "Message": f"no admin command {command!r}"})


def _message_page(title: str, message: str) -> str:
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title></head>'
        f'<body style="font:16px system-ui,sans-serif;margin:24px"><h1>{html.escape(title)}</h1>'
        f'<p id="message">{html.escape(message)}</p></body></html>'
    )


class _Server(ThreadingHTTPServer):
    def __init__(self, address: tuple[str, int], mturk: LocalMTurk) -> None:
        super().__init__(address, _Handler)
        self.mturk = mturk


class LocalMTurkServer(BackgroundHTTPService):
    """Serve a :class:`LocalMTurk` on ``host:port`` (port 0: a free one) from a background thread."""

    def __init__(self, mturk: LocalMTurk, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.mturk = mturk
        super().__init__(_Server((host, port), mturk), thread_name="mturk-local")

    @property
    def url(self) -> str:
        host, port = self.address
        return f"http://{host}:{port}"


def admin(url: str, command: str, body: dict[str, Any] | None = None) -> Any:
    """Call the endpoint's admin path: GET when ``body`` is None, else POST it as JSON."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        f"{url.rstrip('/')}/_admin/{command}", data=data, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


class EndpointClock:
    """The local endpoint's clock as a crowd
    :class:`~labelflow.integrations.crowd.base.Clock`: waiting fast-forwards it,
    so a collector's 24-hour wave against ``labelflow mturk-local`` takes a moment."""

    def __init__(self, url: str) -> None:
        self.url = url

    def now(self) -> datetime:
        return datetime.fromtimestamp(float(admin(self.url, "clock")["now"]), UTC)

    def sleep(self, seconds: float) -> None:
        admin(self.url, "advance", {"seconds": seconds})
