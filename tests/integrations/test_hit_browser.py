"""The worker's side in a real browser: HITs published through our MTurk crowd (boto3) to the local endpoint,
opened in headless Chromium (Selenium, Debian's chromium-driver), answered with a click, and read back through
``ListAssignmentsForHIT``. The image HIT's picture is too large to inline, so it comes from S3 (moto's server)
through a presigned URL.

Cost, measured with ``pytest --durations`` on 2 cores: ~9 s (setup ~4 s: Chromium, moto's server and the
endpoint; the two HITs ~4.5 s), ~15 s when other tests share the cores.
``LABELFLOW_SCREENSHOT_DIR=DIR`` keeps the pages' screenshots there.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

from labelflow.integrations.crowd.base import Handle, LabelRequest
from labelflow.integrations.crowd.mturk import HitPages, ImageHost, MTurkConfig, MTurkCrowd, make_mturk_client
from labelflow.integrations.crowd.mturk.forms import ItemKind
from labelflow.integrations.crowd.task import LabelDisplay, TaskConfig
from labelflow.integrations.mturk_local import LocalMTurk, LocalMTurkServer

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver

pytestmark = pytest.mark.slow

WORKER = "AHUMANWORKER01"
REVIEW = 'A gripping, <b>funny</b> film & a "must" -- ]]> see.'
SENTIMENT = TaskConfig(
    title="Is this movie review positive or negative?",
    instruction="Read the sentence and choose the feeling it expresses.",
    instructions="**Positive**: the reviewer liked the film.\n\n- Sarcasm counts as what it *means*.",
    labels={
        "pos": LabelDisplay(display="Positive", description="The reviewer liked it.", example="A joy."),
        "neg": LabelDisplay(display="Negative", description="The reviewer did not like it."),
    },
)
SCENES = TaskConfig(title="Which scene is this?", instruction="Look at the photo and choose its scene.")
SCENE_LABELS = [
    "coast",
    "forest",
    "highway",
    "inside_city",
    "mountain",
    "open_country",
    "street",
    "tall_building",
]


@pytest.fixture
def people_endpoint(tmp_path: Path) -> Iterator[LocalMTurkServer]:
    """A local MTurk endpoint whose HITs wait for people (no simulated workers)."""
    server = LocalMTurkServer(LocalMTurk(tmp_path / "mturk.db", people=True)).start()
    try:
        yield server
    finally:
        server.stop()
        server.mturk.close()


def noise_png(path: Path, size: tuple[int, int] = (320, 240)) -> Path:
    """A PNG too large to inline in a HIT (random pixels do not compress)."""
    from PIL import Image

    pixels = np.random.default_rng(0).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def publish(
    endpoint: LocalMTurkServer,
    config: MTurkConfig,
    task: TaskConfig,
    labels: list[str],
    kind: ItemKind,
    payload: str,
) -> tuple[MTurkCrowd, Handle]:
    crowd = MTurkCrowd(
        make_mturk_client(config),
        config,
        labels,
        reward_per_answer=0.05,
        redundancy=1,
        max_answers=1,
        round_handles=lambda round_id: [],
        pages=HitPages(task, labels, kind, ImageHost(config)),
    )
    request = LabelRequest(
        key=f"p/r1/{kind}/w1", item_id=f"{kind}-item", round_id=1, wave=1, n_answers=1, payload=payload
    )
    (handle,) = crowd.publish([request])
    return crowd, handle


def answer_in_browser(
    browser: WebDriver, endpoint: LocalMTurkServer, hit_id: str, choice: str, shot: str
) -> dict[str, Any]:
    """Preview the HIT, accept it, choose ``choice`` (the label's display name), submit; what the page showed."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, 20)
    browser.get(f"{endpoint.url}/worker/{hit_id}?workerId={WORKER}")
    browser.switch_to.frame(wait.until(ec.presence_of_element_located((By.ID, "hit-frame"))))
    wait.until(ec.presence_of_element_located((By.NAME, "label")))
    preview = {
        "submit_enabled": browser.find_element(By.ID, "submit").is_enabled(),
        "note_shown": browser.find_element(By.ID, "preview-note").is_displayed(),
    }
    browser.find_element(By.XPATH, f"//label[.//span[@class='name'][text()='{choice}']]").click()
    preview["submit_enabled_after_choosing"] = browser.find_element(By.ID, "submit").is_enabled()
    browser.switch_to.default_content()
    preview_frame = browser.find_element(By.ID, "hit-frame")
    browser.find_element(By.ID, "accept").click()
    wait.until(ec.staleness_of(preview_frame))  # the assignment's page has replaced the preview

    browser.switch_to.frame(wait.until(ec.presence_of_element_located((By.ID, "hit-frame"))))
    wait.until(ec.presence_of_element_located((By.NAME, "label")))
    submit = browser.find_element(By.ID, "submit")
    seen = {
        "preview": preview,
        "title": browser.find_element(By.TAG_NAME, "h1").text,
        "item_text": browser.find_element(By.CLASS_NAME, "item").text,
        "choices": [e.text for e in browser.find_elements(By.CSS_SELECTOR, ".choice .name")],
        "submit_enabled_before_choosing": submit.is_enabled(),
        "image_width": browser.execute_script(
            "var img = document.querySelector('.item img');"
            "return img && img.complete ? img.naturalWidth : null;"
        ),
    }
    browser.find_element(By.XPATH, f"//label[.//span[@class='name'][text()='{choice}']]").click()
    if shots := os.environ.get("LABELFLOW_SCREENSHOT_DIR"):
        browser.switch_to.default_content()
        browser.save_screenshot(str(Path(shots) / shot))
        browser.switch_to.frame(browser.find_element(By.ID, "hit-frame"))
    submit.click()
    wait.until(ec.staleness_of(submit))
    seen["after_submit"] = wait.until(ec.presence_of_element_located((By.ID, "message"))).text
    browser.switch_to.default_content()
    return seen


def test_a_worker_answers_a_text_and_an_image_hit_in_chromium_and_the_crowd_reads_it_back(
    browser: WebDriver, people_endpoint: LocalMTurkServer, s3_bucket: tuple[str, str], tmp_path: Path
) -> None:
    s3_url, bucket = s3_bucket
    config = MTurkConfig(
        endpoint_url=people_endpoint.url, local=True, image_bucket=bucket, s3_endpoint_url=s3_url
    )
    text_crowd, text_handle = publish(people_endpoint, config, SENTIMENT, ["pos", "neg"], "text", REVIEW)
    photo = noise_png(tmp_path / "photo.png")
    image_crowd, image_handle = publish(people_endpoint, config, SCENES, SCENE_LABELS, "image", str(photo))
    assert "X-Amz-Signature=" in image_crowd.pages.page("image-item", str(photo))  # hosted, not inlined

    text = answer_in_browser(browser, people_endpoint, text_handle.external_id, "Negative", "hit-text.png")
    assert text["preview"] == {
        "submit_enabled": False,
        "note_shown": True,
        "submit_enabled_after_choosing": False,
    }
    assert text["title"] == SENTIMENT.title
    assert REVIEW in text["item_text"]  # the markup is shown as text, not run
    assert text["choices"] == ["Positive", "Negative"]
    assert text["submit_enabled_before_choosing"] is False
    assert "submitted" in text["after_submit"]

    image = answer_in_browser(
        browser, people_endpoint, image_handle.external_id, "Open country", "hit-image.png"
    )
    assert image["image_width"] == 320  # the browser loaded the picture from S3 through its presigned URL
    assert image["choices"][3] == "Inside city"

    (text_answer,) = text_crowd.poll([text_handle])
    (image_answer,) = image_crowd.poll([image_handle])
    assert (text_answer.label, text_answer.worker_id, text_answer.parse_error) == (
        "neg",
        f"mturk:{WORKER}",
        None,
    )
    assert (image_answer.label, image_answer.worker_id) == ("open_country", f"mturk:{WORKER}")
    assert "<QuestionIdentifier>label</QuestionIdentifier>" in text_answer.raw
    assert people_endpoint.mturk.counter("call:ListAssignmentsForHIT") == 2
