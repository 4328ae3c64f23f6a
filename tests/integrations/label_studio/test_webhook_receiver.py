"""The webhook receiver over real HTTP: what it refuses and why, and that a refused call costs nothing that follows;
then against a real Label Studio, publishing registers the project's webhook once, with the secret, and an
annotation reaches the receiver."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from conftest import LabelStudioForTests
from test_label_studio_crowd import ANN, LABELS, request, user_id

from labelflow.integrations.label_studio import LabelStudioClient, LabelStudioConfig, LabelStudioCrowd
from labelflow.integrations.label_studio.webhooks import (
    MAX_BODY_BYTES,
    SECRET_HEADER,
    AnnotationNotice,
    ReceiverStartError,
    WebhookReceiver,
)

SECRET = "s3cret-for-tests"
TITLE = "receiver-test"


def webhook(action: str = "ANNOTATION_CREATED", *, title: str = TITLE, annotation: int = 7) -> dict[str, Any]:
    """A body shaped as Label Studio 1.23 sends it (send_payload), trimmed to the parts that matter."""
    return {
        "action": action,
        "annotation": {"id": annotation, "completed_by": 3, "task": 11, "result": []},
        "task": {"id": 11, "data": {"text": "hello", "labelflow_task": "1/item-4"}},
        "project": {"id": 2, "title": title},
    }


class Recorder:
    """``on_annotation`` that keeps what it was given, failing once when told to."""

    def __init__(self) -> None:
        self.notices: list[AnnotationNotice] = []
        self.fail_next = False

    def __call__(self, notice: AnnotationNotice) -> None:
        if self.fail_next:
            self.fail_next = False
            raise ConnectionError("the Prefect server is away")
        self.notices.append(notice)


@pytest.fixture
def receiver() -> Iterator[tuple[WebhookReceiver, Recorder]]:
    recorder = Recorder()
    with WebhookReceiver(SECRET, TITLE, recorder) as running:
        yield running, recorder


def post(receiver: WebhookReceiver, body: object, headers: dict[str, str] | None = None) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    sent = {SECRET_HEADER: SECRET} if headers is None else headers
    return httpx.post(receiver.url, content=content, headers=sent, timeout=10)


@pytest.mark.parametrize(
    ("body", "headers", "status", "says"),
    [
        (webhook(), {}, 401, "no X-Labelflow-Secret header"),
        (webhook(), {SECRET_HEADER: "guessed"}, 403, "wrong X-Labelflow-Secret"),
        (b"{not json", None, 400, "the body is not JSON"),
        (["ANNOTATION_CREATED"], None, 400, "no 'action'"),
        (
            {"action": "ANNOTATION_CREATED", "task": {}, "project": {}},
            None,
            400,
            "needs an 'annotation' object",
        ),
        ({**webhook(), "annotation": {"id": "x", "completed_by": 3}}, None, 400, "annotation has no integer"),
        (webhook(title="someone else's"), None, 422, "this receiver serves 'receiver-test'"),
        (b"x" * (MAX_BODY_BYTES + 1), None, 413, "over 1048576 bytes"),
    ],
)
def test_a_bad_call_is_refused_clearly_and_the_next_good_one_gets_through(
    receiver: tuple[WebhookReceiver, Recorder],
    body: object,
    headers: dict[str, str] | None,
    status: int,
    says: str,
) -> None:
    server, recorder = receiver
    refused = post(server, body, headers)
    assert (refused.status_code, recorder.notices) == (status, [])
    assert says in refused.json()["detail"]
    accepted = post(server, webhook())
    assert accepted.status_code == 200, accepted.text
    [notice] = recorder.notices
    assert notice == AnnotationNotice("ANNOTATION_CREATED", 2, TITLE, 11, 7, "ls:3", "1/item-4")


def test_other_actions_paths_and_a_failed_hand_on(receiver: tuple[WebhookReceiver, Recorder]) -> None:
    server, recorder = receiver
    assert post(server, webhook("PROJECT_UPDATED")).json() == {"detail": "ignored: not an annotation"}
    assert httpx.post(server.url.replace("/label-studio", "/elsewhere"), timeout=10).status_code == 404
    assert httpx.get(server.url.replace("/label-studio", "/health"), timeout=10).status_code == 200
    recorder.fail_next = True
    failed = post(server, webhook(annotation=8))
    assert failed.status_code == 503 and "interval" in failed.json()["detail"]
    # an edit and a burst from several threads: each one handed on once
    responses: list[int] = []
    threads = [
        threading.Thread(target=lambda k=k: responses.append(post(server, webhook(annotation=k)).status_code))
        for k in range(20, 30)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert post(server, webhook("ANNOTATION_UPDATED", annotation=20)).status_code == 200
    assert responses == [200] * 10
    assert sorted(n.annotation_id for n in recorder.notices) == [20, 20, *range(21, 30)]
    assert server.received == 11


def test_a_taken_port_and_an_empty_secret_are_refused_at_start(
    receiver: tuple[WebhookReceiver, Recorder],
) -> None:
    server, _ = receiver
    host, port = server.address
    with pytest.raises(ReceiverStartError, match=f"cannot listen on 127.0.0.1:{port}.*--port"):
        WebhookReceiver(SECRET, TITLE, Recorder(), host=host, port=port)
    with pytest.raises(ValueError, match="non-empty shared secret"):
        WebhookReceiver("", TITLE, Recorder())


@pytest.mark.slow
def test_publishing_registers_the_webhook_once_and_label_studio_calls_it(
    label_studio: LabelStudioForTests,
) -> None:
    title = f"webhook-test-{datetime.now(UTC):%H%M%S%f}"
    recorder = Recorder()
    with WebhookReceiver(SECRET, title, recorder) as server:
        config = LabelStudioConfig(url=label_studio.url, webhook_url=server.url)

        def crowd(secret: str) -> LabelStudioCrowd:
            return LabelStudioCrowd(
                LabelStudioClient(label_studio.url, label_studio.owner_token),
                config,
                LABELS,
                kind="text",
                project_title=title,
                reward_per_answer=0.05,
                redundancy=2,
                round_handles=lambda _: [],
                webhook_secret=secret,
            )

        first = crowd(SECRET)
        [handle] = first.publish([request("a")])
        first.publish([request("a")])  # a rerun, in this process and in another
        crowd(SECRET).publish([request("a")])
        with LabelStudioClient(label_studio.url, label_studio.owner_token) as client:
            listed = client.request("GET", "/api/webhooks/", "w", params={"project": first.project_id})
        [registered] = listed
        assert registered["url"] == server.url and registered["headers"] == {SECRET_HEADER: SECRET}
        assert sorted(registered["actions"]) == ["ANNOTATION_CREATED", "ANNOTATION_UPDATED"]

        # a secret changed since: the next publish corrects the webhook instead of adding one
        crowd("rotated").publish([request("a")])
        with LabelStudioClient(label_studio.url, label_studio.owner_token) as client:
            listed = client.request("GET", "/api/webhooks/", "w", params={"project": first.project_id})
        assert [w["headers"] for w in listed] == [{SECRET_HEADER: "rotated"}]
        crowd(SECRET).publish([request("a")])

        label_studio.annotate(label_studio.annotators[ANN], int(handle.external_id), ["pos"])
        deadline = time.monotonic() + 10  # Label Studio calls synchronously: it is there before the reply
        while not recorder.notices and time.monotonic() < deadline:
            time.sleep(0.1)
    [notice] = recorder.notices
    assert notice.action == "ANNOTATION_CREATED" and notice.task_id == int(handle.external_id)
    assert notice.worker_id == f"ls:{user_id(label_studio, ANN)}"
    assert notice.labelflow_task == "1/a" and notice.project_title == title
