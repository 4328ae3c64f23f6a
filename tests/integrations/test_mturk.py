"""MTurkCrowd with the real boto3 client against the local MTurk endpoint, and the endpoint itself."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError
from pydantic import ValidationError

from labelflow.flows.config import ProjectConfig
from labelflow.integrations.crowd.base import (
    BudgetExceededError,
    CrowdBackendError,
    Handle,
    LabelRequest,
    Review,
    ReviewAction,
    TransientCrowdError,
)
from labelflow.integrations.crowd.mturk import (
    LIVE_ENDPOINT,
    SANDBOX_ENDPOINT,
    HitPages,
    ImageHost,
    LiveOptInError,
    MTurkConfig,
    MTurkCrowd,
    crosses_large_hit,
    make_mturk_client,
    mturk_endpoint,
    parse_answer,
    request_token,
)
from labelflow.integrations.crowd.simulated import SimulatedCrowdConfig
from labelflow.integrations.crowd.task import TaskConfig
from labelflow.integrations.mturk_local import (
    EndpointClock,
    Faults,
    LocalMTurk,
    LocalMTurkServer,
    form_answer,
)
from labelflow.integrations.mturk_local.workers import question_labels

LABELS = [str(d) for d in range(10)]
TRUTH = {f"item-{k}": str(k % 10) for k in range(40)}
PERFECT = SimulatedCrowdConfig(
    good_share=1.0, spammer_share=0.0, one_class_share=0.0, good_accuracy=(1.0, 1.0)
)
DAY = 24 * 3600.0


def local_config(endpoint: LocalMTurkServer, **overrides: Any) -> MTurkConfig:
    return MTurkConfig(endpoint_url=endpoint.url, local=True, **overrides)


class Crowd:
    """An MTurkCrowd on an endpoint, with the published handles kept as the label store would keep them."""

    def __init__(
        self, endpoint: LocalMTurkServer, *, redundancy: int = 3, max_answers: int = 4, **config: Any
    ):
        self.endpoint = endpoint
        self.handles: list[Handle] = []
        self.crowd = MTurkCrowd(
            make_mturk_client(local_config(endpoint, **config)),
            local_config(endpoint, **config),
            LABELS,
            reward_per_answer=0.05,
            redundancy=redundancy,
            max_answers=max_answers,
            round_handles=lambda round_id: [h for h in self.handles if h.round_id == round_id],
            clock=EndpointClock(endpoint.url),
        )

    def publish(self, requests: Sequence[LabelRequest]) -> list[Handle]:
        handles = self.crowd.publish(requests)
        known = {h.key for h in self.handles}
        self.handles.extend(h for h in handles if h.key not in known)
        return handles

    def wait(self, seconds: float = DAY) -> None:
        self.crowd.clock.sleep(seconds)


def wave(items: Sequence[str], wave: int = 1, n: int = 3, before: int = 0) -> list[LabelRequest]:
    return [
        LabelRequest(
            key=f"proj/r1/{item}/w{wave}",
            item_id=item,
            round_id=1,
            wave=wave,
            n_answers=n,
            answers_before=before,
            payload=f"payload of {item}",
        )
        for item in items
    ]


# ---------------------------------------------------------------------- pure parts


def text_question(item_id: str, payload: str | None, labels: Sequence[str] = LABELS) -> str:
    return HitPages(TaskConfig(), labels, "text", ImageHost(MTurkConfig())).question(item_id, payload)


def test_the_question_escapes_the_payload_and_lists_the_labels() -> None:
    nasty = '<script>alert("x")</script> ]]> & more'
    question = text_question("i1", nasty, ["cat", 'd"og'])
    root = ET.fromstring(question)  # well-formed: the payload cannot break out of the CDATA section
    content = next(iter(root)).text or ""
    assert "<script>alert" not in content and "&lt;script&gt;" in content
    assert '<input type="radio" name="label" value="cat"' in content
    assert question_labels(question) == ["cat", 'd"og']
    image = text_question("i2", "https://example.org/a.png")
    assert '<img src="https://example.org/a.png"' in image


def test_answers_parse_from_the_form_or_an_older_crowd_form_or_say_why_not() -> None:
    assert parse_answer(form_answer("7"), LABELS) == ("7", None)
    mturk_sample = (
        '<?xml version="1.0" encoding="ASCII"?><QuestionFormAnswers xmlns="http://mechanicalturk.amazonaws.com/'
        'AWSMechanicalTurkDataSchemas/2005-10-01/QuestionFormAnswers.xsd"><Answer><QuestionIdentifier>'
        'taskAnswers</QuestionIdentifier><FreeText>[{"label":{"label":"3"}}]</FreeText></Answer>'
        "</QuestionFormAnswers>"
    )
    assert parse_answer(mturk_sample, LABELS) == ("3", None)
    for raw, why in [
        (form_answer("7")[:60], "does not parse"),
        (form_answer("cat"), "not one of the labels"),
        (mturk_sample.replace("taskAnswers", "other"), 'no "label" answer'),
        (mturk_sample.replace('[{"label":{"label":"3"}}]', "{not json"), "has no label"),
        (mturk_sample.replace('[{"label":{"label":"3"}}]', '[{"x": 1}]'), "has no label"),
    ]:
        label, error = parse_answer(raw, LABELS)
        assert label is None and error is not None and why in error


def test_tokens_are_stable_short_and_differ_by_purpose() -> None:
    key = "a-very-long-project-name/r12/" + "x" * 500 + "/w1"
    assert request_token("hit", key) == request_token("hit", key)
    assert len(request_token("hit", key)) <= 64 and len(request_token("bonus", key)) <= 64
    assert request_token("hit", key) != request_token("add", key)


def test_production_needs_both_the_config_and_the_command_line() -> None:
    assert mturk_endpoint(MTurkConfig(), live=False) == SANDBOX_ENDPOINT
    assert mturk_endpoint(MTurkConfig(live=True), live=True) == LIVE_ENDPOINT
    with pytest.raises(LiveOptInError, match="--live"):
        mturk_endpoint(MTurkConfig(live=True), live=False)
    with pytest.raises(LiveOptInError, match=r"mturk\.live"):
        mturk_endpoint(MTurkConfig(), live=True)
    client = make_mturk_client(MTurkConfig(endpoint_url="http://127.0.0.1:9", local=True))
    assert client.meta.endpoint_url == "http://127.0.0.1:9"
    assert client.meta.config.retries == {"mode": "standard", "total_max_attempts": 8}


# ---------------------------------------------------------------------- against the endpoint


def test_a_wave_is_published_once_answered_extended_reviewed_and_closed(
    mturk_endpoint: Callable[..., LocalMTurkServer],
) -> None:
    endpoint = mturk_endpoint(truth=TRUTH, workers=PERFECT)
    crowd = Crowd(endpoint)
    items = ["item-1", "item-2", "item-3"]
    first = crowd.publish(wave(items))
    again = crowd.publish(wave(items))  # a rerun: the tokens recover the same HITs, nothing new is posted
    assert [h.external_id for h in again] == [h.external_id for h in first]
    assert endpoint.mturk.counter("hits_created") == 3
    assert endpoint.mturk.counter("reply:AWS.MechanicalTurk.HitAlreadyExists") == 3
    assert crowd.crowd.cost_per_answer() == pytest.approx(0.06)  # the 20 % fee included
    assert endpoint.mturk.state()["balance"] == pytest.approx(10_000 - 9 * 0.06)

    crowd.wait()
    answers = crowd.crowd.poll(first)
    assert len(answers) == 9 and len({a.answer_id for a in answers}) == 9
    assert all(a.label == TRUTH[a.item_id] for a in answers)  # perfect workers
    assert all(a.backend == "mturk" and a.raw.startswith("<?xml") for a in answers)

    # A second wave buys one more answer on item-1's HIT; its poll returns only that answer.
    second = crowd.publish(wave(["item-1"], wave=2, n=1, before=3))
    assert second[0].external_id == first[0].external_id
    assert crowd.crowd.poll(second) == []
    crowd.wait()
    extra = crowd.crowd.poll(second)
    assert len(extra) == 1 and extra[0].wave == 2 and extra[0].answer_id not in {a.answer_id for a in answers}
    assert endpoint.mturk.counter("hits_created") == 3 and endpoint.mturk.counter("assignments_added") == 1

    good, bad = answers[0], answers[1]
    reviews = [Review(ReviewAction.APPROVE, a.worker_id, a.answer_id) for a in [*answers[2:], *extra]]
    reviews += [
        Review(ReviewAction.APPROVE, good.worker_id, good.answer_id),
        Review(ReviewAction.BONUS, good.worker_id, good.answer_id, reason="careful", amount=0.10),
        Review(ReviewAction.REJECT, bad.worker_id, bad.answer_id, reason="spam"),
        Review(ReviewAction.BLOCK, bad.worker_id, reason="spam"),
    ]
    crowd.crowd.review(reviews)
    crowd.crowd.review(reviews)  # reviewing again is harmless: decided answers stay, the bonus token holds
    state = endpoint.mturk.state()
    assert state["assignments"] == {"Approved": 9, "Rejected": 1}
    assert state["counters"]["bonuses_sent"] == 1 and state["blocked"] == [
        bad.worker_id.removeprefix("mturk:")
    ]

    # A blocked worker is not offered new HITs.
    later = crowd.publish([*wave(["item-4"], n=3)])
    crowd.wait()
    assert bad.worker_id not in {a.worker_id for a in crowd.crowd.poll(later)}

    crowd.crowd.close(first + second)
    assert endpoint.mturk.counter("hits_deleted") == 3


def test_a_hit_with_more_assignments_than_one_page_is_read_to_the_end(
    mturk_endpoint: Callable[..., LocalMTurkServer],
) -> None:
    endpoint = mturk_endpoint(truth=TRUTH)
    crowd = Crowd(endpoint, redundancy=7, max_answers=7, page_size=2)
    handles = crowd.publish(wave(["item-5"], n=7))
    crowd.wait()
    assert len(crowd.crowd.poll(handles)) == 7
    assert endpoint.mturk.counter("call:ListAssignmentsForHIT") == 4  # pages of 2, 2, 2, 1


def test_malformed_answer_xml_comes_back_raw_with_its_error(
    mturk_endpoint: Callable[..., LocalMTurkServer],
) -> None:
    endpoint = mturk_endpoint(truth=TRUTH)
    endpoint.mturk.set_faults(Faults(malformed_answers=1))
    crowd = Crowd(endpoint)
    handles = crowd.publish(wave(["item-6"]))
    crowd.wait()
    answers = crowd.crowd.poll(handles)
    broken = [a for a in answers if a.label is None]
    assert len(answers) == 3 and len(broken) == 1
    assert broken[0].parse_error and "does not parse" in broken[0].parse_error
    assert broken[0].raw.startswith("<?xml")


def test_throttling_is_retried_by_botocore(mturk_endpoint: Callable[..., LocalMTurkServer]) -> None:
    endpoint = mturk_endpoint(truth=TRUTH)
    endpoint.mturk.set_faults(Faults(throttle=3, operations=["CreateHITWithHITType"]))
    crowd = Crowd(endpoint)
    assert len(crowd.publish(wave(["item-7"]))) == 1
    assert endpoint.mturk.counter("fault:throttle") == 3 and endpoint.mturk.counter("hits_created") == 1


def test_a_persistent_500_becomes_a_transient_error_naming_the_call(
    mturk_endpoint: Callable[..., LocalMTurkServer],
) -> None:
    endpoint = mturk_endpoint(truth=TRUTH)
    crowd = Crowd(endpoint)
    handles = crowd.publish(wave(["item-8"]))
    endpoint.mturk.set_faults(Faults(server_errors=-1, operations=["ListAssignmentsForHIT"]))
    with pytest.raises(
        TransientCrowdError, match=rf"ListAssignmentsForHIT \(HIT {handles[0].external_id}\)"
    ) as err:
        crowd.crowd.poll(handles)
    assert "gave up after 8 attempts" in str(err.value)
    assert endpoint.mturk.counter("fault:server_error") == 8


def test_the_balance_guard_refuses_and_posts_nothing(mturk_endpoint: Callable[..., LocalMTurkServer]) -> None:
    endpoint = mturk_endpoint(truth=TRUTH)
    endpoint.mturk.set_balance(0.50)
    crowd = Crowd(endpoint)
    with pytest.raises(BudgetExceededError, match=r"costs \$0\.54 .* balance is \$0\.50"):
        crowd.publish(wave(["item-1", "item-2", "item-3"]))
    assert endpoint.mturk.state()["hits"] == 0 and endpoint.mturk.counter("call:CreateHITWithHITType") == 0


def test_the_fee_cliff_is_never_crossed(mturk_endpoint: Callable[..., LocalMTurkServer]) -> None:
    endpoint = mturk_endpoint(truth=TRUTH)
    with pytest.raises(CrowdBackendError, match="MTurk refuses"):
        Crowd(endpoint, redundancy=3, max_answers=10)
    crowd = Crowd(endpoint, redundancy=9, max_answers=9)
    crowd.publish(wave(["item-9"], n=9))
    with pytest.raises(CrowdBackendError, match="from 9 to 10 or more"):
        crowd.publish(wave(["item-9"], wave=2, n=1, before=9))
    # The endpoint refuses it too, as MTurk documents.
    client = crowd.crowd.client
    with pytest.raises(client.exceptions.RequestError, match="cannot be extended"):
        client.create_additional_assignments_for_hit(
            HITId=crowd.handles[0].external_id, NumberOfAdditionalAssignments=1
        )
    assert endpoint.mturk.counter("assignments_added") == 0


def test_the_project_config_asks_the_same_ten_assignment_rule() -> None:
    assert crosses_large_hit(9, 10) and crosses_large_hit(3, 12)
    assert not crosses_large_hit(9, 9) and not crosses_large_hit(10, 15)
    with pytest.raises(ValidationError, match="MTurk refuses"):
        ProjectConfig.model_validate({"crowd": {"backend": "mturk", "redundancy": 3, "max_answers": 10}})
    ProjectConfig.model_validate({"crowd": {"backend": "simulated", "redundancy": 3, "max_answers": 10}})
    ProjectConfig.model_validate({"crowd": {"backend": "mturk", "redundancy": 10, "max_answers": 12}})


def _signed(url: str, target: str, body: Any, *, sign: bool = True) -> tuple[int, dict[str, Any]]:
    request = AWSRequest(
        method="POST",
        url=url + "/",
        data=json.dumps(body).encode(),
        headers={"X-Amz-Target": target, "Content-Type": "application/x-amz-json-1.1"},
    )
    if sign:
        SigV4Auth(Credentials("any-key", "any-secret"), "mturk-requester", "us-east-1").add_auth(request)
    prepared = request.prepare()
    http = urllib.request.Request(
        prepared.url, data=prepared.body, headers=dict(prepared.headers), method="POST"
    )
    try:
        with urllib.request.urlopen(http, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_a_hand_built_request_that_breaks_the_service_model_is_rejected(
    mturk_endpoint: Callable[..., LocalMTurkServer],
) -> None:
    endpoint = mturk_endpoint()
    target = "MTurkRequesterServiceV20170117."
    status, body = _signed(endpoint.url, target + "GetAccountBalance", {})
    assert status == 200 and body["AvailableBalance"] == "10000.00"
    status, body = _signed(endpoint.url, target + "GetHIT", {"HITId": 12345})
    assert status == 400 and body["__type"] == "ParameterValidationError" and "HITId" in body["Message"]
    status, body = _signed(endpoint.url, target + "CreateHITType", {"Title": "no reward", "Colour": "red"})
    assert status == 400 and "Missing required parameter" in body["Message"] and "Colour" in body["Message"]
    status, body = _signed(endpoint.url, target + "LaunchRockets", {})
    assert status == 400 and body["__type"] == "UnknownOperationException"
    status, body = _signed(endpoint.url, target + "GetAccountBalance", {}, sign=False)
    assert status == 403 and body["__type"] == "MissingAuthenticationTokenException"
    assert endpoint.mturk.counter("call:GetHIT") == 0  # refused before it reached the operation


def test_a_restarted_endpoint_loses_nothing(mturk_endpoint: Callable[..., LocalMTurkServer]) -> None:
    endpoint = mturk_endpoint(truth=TRUTH)
    crowd = Crowd(endpoint)
    handles = crowd.publish(wave(["item-1", "item-2"]))
    crowd.wait(12 * 3600)  # within the 24 hours MTurk honours a token
    before = crowd.crowd.poll(handles)
    endpoint.stop()
    endpoint.mturk.close()

    reopened = LocalMTurkServer(LocalMTurk(endpoint.mturk.db_path, truth=TRUTH)).start()
    try:
        again = Crowd(reopened)
        again.handles = crowd.handles
        assert again.crowd.poll(handles) == before
        assert again.endpoint.mturk.counter("hits_created") == 2
        with pytest.raises(ClientError, match="same UniqueRequestToken"):  # its tokens hold: no duplicate
            again.crowd.client.create_hit_with_hit_type(
                HITTypeId=again.crowd.hit_type_id(),
                LifetimeInSeconds=3600,
                Question=text_question("item-1", None),
                UniqueRequestToken=request_token("hit", "proj/r1/item-1/w1"),
            )
    finally:
        reopened.stop()
        reopened.mturk.close()


def test_the_endpoints_workers_find_hard_items_hard_and_err_alike(
    mturk_endpoint: Callable[..., LocalMTurkServer],
) -> None:
    # Every item hard (6 logits below a 0.9 worker's ordinary odds: ~2% right) and every error at the item's
    # lure: the simulated crowd's answer model, item difficulty included, behind the endpoint too.
    hard = SimulatedCrowdConfig(
        good_share=1.0,
        spammer_share=0.0,
        one_class_share=0.0,
        good_accuracy=(0.9, 0.9),
        hard_item_share=1.0,
        hard_item_penalty=6.0,
        lure_share=1.0,
    )
    endpoint = mturk_endpoint(truth=TRUTH, workers=hard)
    crowd = Crowd(endpoint)
    items = list(TRUTH)[:10]
    handles = crowd.publish(wave(items))
    crowd.wait()
    answers = crowd.crowd.poll(handles)
    assert len(answers) == 30
    wrong = [a for a in answers if a.label != TRUTH[a.item_id]]
    assert len(wrong) >= 25
    assert all(len({a.label for a in wrong if a.item_id == item}) == 1 for item in {a.item_id for a in wrong})
