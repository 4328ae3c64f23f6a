"""The HIT page without a browser: the template per kind, escaping, images inlined or on S3 (moto's server), the
``[task]`` config, and the local endpoint's worker side over plain HTTP."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import numpy as np
import pandas as pd
import pytest

from labelflow.flows.config import ConfigError, ProjectConfig, parse_config
from labelflow.integrations.crowd.base import CrowdBackendError, LabelRequest
from labelflow.integrations.crowd.mturk import (
    QUESTION_MAX,
    HitPages,
    ImageHost,
    MTurkConfig,
    MTurkCrowd,
    form_answers,
    make_mturk_client,
    page_of_question,
    parse_answer,
)
from labelflow.integrations.crowd.mturk.forms import ItemKind
from labelflow.integrations.crowd.task import LabelDisplay, TaskConfig, shown_payloads
from labelflow.integrations.datasets import DatasetConfig
from labelflow.integrations.mturk_local import LocalMTurk, LocalMTurkServer, admin
from labelflow.integrations.mturk_local.workers import question_labels

TASK = TaskConfig(
    title="Sentiment of a review",
    instruction="Choose the feeling the sentence expresses.",
    instructions="Choose **Positive** when the reviewer liked it.\n\n<script>alert(1)</script>",
    labels={"pos": LabelDisplay(display="Positive", description="Liked it.", example="A joy.")},
)
LABELS = ["pos", "not_pos"]


def pages(kind: ItemKind = "text", config: MTurkConfig | None = None, task: TaskConfig = TASK) -> HitPages:
    return HitPages(task, LABELS, kind, ImageHost(config or MTurkConfig()))


def body(page: str) -> str:
    return page.split("<body>", 1)[1].split("<script>", 1)[0]


def png(path: Path, side: int) -> Path:
    from PIL import Image

    pixels = np.random.default_rng(side).integers(0, 256, (side, side, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def test_a_text_page_says_each_thing_once_escapes_the_item_and_offers_every_label() -> None:
    nasty = '<img src=x onerror="alert(1)"> ]]> & "quoted"'
    question = pages().question("i1", nasty)
    page = page_of_question(question)  # well-formed XML: nothing broke out of the CDATA section
    shown = body(page)
    assert "<img src=x" not in page and "&lt;img src=x onerror=&quot;alert(1)&quot;&gt; ]]&gt;" in shown
    for text in (TASK.title, TASK.instruction, "Liked it.", "A joy."):
        assert shown.count(text) == 1, text
    assert "<strong>Positive</strong>" in shown  # Markdown instructions
    assert "<script>" not in shown and "&lt;script&gt;alert(1)&lt;/script&gt;" in shown  # raw HTML stays text
    assert question_labels(question) == LABELS
    assert '<span class="name">Not pos</span>' in shown  # a label without a display name, made readable
    assert "crowd-html-elements" not in page and "<script src" not in page  # nothing to load from elsewhere
    assert 'action="https://www.mturk.com/mturk/externalSubmit"' in page
    assert "<details>" not in pages(task=TaskConfig()).page("i1", "x")  # no full instructions: none shown


def test_a_table_row_is_a_small_table_and_other_payloads_stay_text() -> None:
    row = json.dumps({"<b>age</b>": 41, "income": 5.5e4, "city": None})
    shown = body(pages("table").page("r1", row))
    assert "<table><tr><th>&lt;b&gt;age&lt;/b&gt;</th><td>41</td></tr>" in shown
    assert "<th>city</th><td></td>" in shown
    assert "<p>plain words</p>" in body(pages("table").page("r2", "plain words"))
    assert "<p>Item r3</p>" in body(pages("table").page("r3", None))


def test_what_workers_see_of_a_table_is_its_payload_or_its_first_features() -> None:
    items = pd.DataFrame(
        {"item_id": ["a", "b"], "payload": ["see me", None], **{f"f{k}": [1.0, np.nan] for k in range(20)}}
    ).assign(f1=[0.0, 41.0], f2=[0.0, 1 / 3])
    shown = shown_payloads(items, "table", [f"f{k}" for k in range(20)])
    assert shown["a"] == "see me"
    row = json.loads(shown["b"])
    assert list(row) == [f"f{k}" for k in range(12)] and row["f0"] is None
    assert (row["f1"], row["f2"]) == (41, 0.333333)  # as a person reads them
    assert shown_payloads(items, "text", []).equals(items.set_index("item_id")["payload"])


def test_a_small_image_goes_inline_and_a_large_one_needs_a_bucket(tmp_path: Path) -> None:
    small, large = png(tmp_path / "small.png", 32), png(tmp_path / "large.png", 200)
    assert 'src="data:image/png;base64,' in pages("image").page("i1", str(small))
    assert 'src="https://example.org/cat.jpg?a=1&amp;b=2"' in pages("image").page(
        "i2", "https://example.org/cat.jpg?a=1&b=2"
    )
    with pytest.raises(CrowdBackendError, match=r"large\.png .* too large .* set crowd\.mturk\.image_bucket"):
        pages("image").page("i3", str(large))
    assert "<p>Item i5</p>" in pages("image").page("i5", None)
    with pytest.raises(CrowdBackendError, match=r"item 'i4': image .*missing\.png' is not a file"):
        pages("image").page("i4", str(tmp_path / "missing.png"))


def test_a_large_image_is_uploaded_once_and_shown_through_a_presigned_url(
    tmp_path: Path, s3_bucket: tuple[str, str]
) -> None:
    import boto3

    url, bucket = s3_bucket
    config = MTurkConfig(image_bucket=bucket, s3_endpoint_url=url)
    large = png(tmp_path / "large.png", 200)
    hit = pages("image", config)
    question = hit.question("i1", str(large))
    assert len(question.encode()) < QUESTION_MAX
    src = page_of_question(question).split('<img src="', 1)[1].split('"', 1)[0].replace("&amp;", "&")
    assert "X-Amz-Signature=" in src and "X-Amz-Expires=" in src
    with urllib.request.urlopen(src, timeout=10) as response:  # what the worker's browser fetches
        assert response.read() == large.read_bytes()
    hit.page("i2", str(large))  # the same picture in another item
    objects = boto3.client("s3", endpoint_url=url).list_objects_v2(Bucket=bucket)["Contents"]
    assert len(objects) == 1 and objects[0]["Key"].startswith(config.image_prefix)


def test_a_question_over_mturks_limit_is_refused_before_posting() -> None:
    with pytest.raises(CrowdBackendError, match=r"item 'long' is [\d,]+ bytes; MTurk takes at most 65,535"):
        pages().question("long", "é" * 40_000)  # 80,000 bytes of UTF-8: MTurk counts bytes


def test_form_answers_read_back_with_any_label() -> None:
    raw = form_answers({"assignmentId": "A1", "label": "café <&>"})
    assert raw.isascii() and "assignmentId" not in raw
    assert parse_answer(raw, ["café <&>"]) == ("café <&>", None)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"crowd": {"mturk": {"title": "T"}}}, r"crowd.mturk.title moved to the \[task\] section"),
        ({"crowd": {"mturk": {"instructions": "I"}}}, r"crowd.mturk.instructions moved to the \[task\]"),
        ({"task": {"labels": {"11": {"description": "d"}}}}, r"task.labels describes \['11'\]"),
        ({"task": {"instruction": "one\ntwo"}}, "must be one line; put longer text in task.instructions"),
        ({"task": {"labels": {"3": {"shown": "x"}}}}, r"task.labels.3.shown"),
    ],
)
def test_the_task_section_says_what_is_wrong(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config(data)


def test_images_on_mturk_without_a_bucket_are_refused_at_config_load() -> None:
    images = DatasetConfig.model_construct(**{**DatasetConfig().model_dump(), "kind": "image"})
    crowd = {"backend": "mturk"}
    with pytest.raises(ValueError, match=r"images on MTurk need crowd.mturk.image_bucket"):
        ProjectConfig.model_validate({"dataset": images, "crowd": crowd})
    ProjectConfig.model_validate({"dataset": images, "crowd": {**crowd, "mturk": {"image_bucket": "b"}}})


def _post(url: str, fields: dict[str, str]) -> tuple[int, str]:
    request = urllib.request.Request(url, data=urlencode(fields).encode(), method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_the_endpoints_worker_side_keeps_mturks_rules(tmp_path: Path) -> None:
    with LocalMTurkServer(LocalMTurk(tmp_path / "people.db", people=True)) as endpoint:
        config = MTurkConfig(endpoint_url=endpoint.url, local=True)
        crowd = MTurkCrowd(
            make_mturk_client(config),
            config,
            LABELS,
            reward_per_answer=0.05,
            redundancy=1,
            max_answers=1,
            round_handles=lambda round_id: [],
            pages=pages(config=config),
        )
        request = LabelRequest(key="p/r1/i1/w1", item_id="i1", round_id=1, wave=1, n_answers=1, payload="x")
        (handle,) = crowd.publish([request])
        hit = handle.external_id
        with urllib.request.urlopen(f"{endpoint.url}/worker/{hit}/question", timeout=10) as response:
            assert "Sentiment of a review" in response.read().decode()
        submit = f"{endpoint.url}/mturk/externalSubmit"
        assert _post(submit, {"assignmentId": "ASSIGNMENT_ID_NOT_AVAILABLE", "label": "pos"})[0] == 400
        assignment = admin(endpoint.url, "accept", {"hit": hit, "worker": "W1"})["assignment"]
        with pytest.raises(urllib.error.HTTPError, match="400"):  # one assignment, taken
            admin(endpoint.url, "accept", {"hit": hit, "worker": "W2"})
        assert crowd.poll([handle]) == []  # accepted is not submitted
        assert _post(submit, {"assignmentId": assignment, "label": "pos"})[0] == 200
        assert _post(submit, {"assignmentId": assignment, "label": "not_pos"})[0] == 409  # once only
        (answer,) = crowd.poll([handle])
        assert (answer.answer_id, answer.worker_id, answer.label) == (assignment, "mturk:W1", "pos")
        root = ET.fromstring(answer.raw)
        assert root.tag.endswith("QuestionFormAnswers")
        status, page = _post(f"{endpoint.url}/worker/NOSUCHHIT/accept", {"workerId": "W1"})
        assert status == 404 and "There is no HIT NOSUCHHIT" in page
