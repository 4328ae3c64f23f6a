"""A served round whose crowd is a team in a real Label Studio resumes because Label Studio's webhooks came in, and
its last answer is given through Label Studio's own UI in headless Chromium.

``labelflow serve`` (a child process, against a real ``prefect server start``) runs the webhook receiver; the round
publishes, hands its wait over and ends. Two annotators answer all but one of the wave's annotations through the
API; a third logs in to Label Studio, opens the labeling queue, chooses the label and submits. Each annotation
becomes a ``labelflow.answers.arrived`` event, the event's automation starts the collector, and the collector
resumes the round. The collector's interval is an hour, so nothing else could have resumed it within the test.

With LABELFLOW_SCREENSHOT_DIR=docs, the labeling page is saved as docs/label-studio-labeling.png (the label
chosen) and docs/label-studio-submitted.png."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from conftest import LabelStudioForTests
from test_label_studio_round import Team, project_tasks, truth_of
from test_text_items import write_sentences

from labelflow.flows.collect import RESUMED_TAG
from labelflow.flows.config import load_config
from labelflow.flows.project import Project
from labelflow.integrations.label_studio.server import free_port
from labelflow.integrations.prefect_server import (
    api_post,
    local_prefect_server,
    start_labelflow_serve,
    stop_process_group,
    wait_for,
)

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver

pytestmark = [pytest.mark.slow]

BATCH, GOLD, NAME = 4, 2, "ls-hooks"
ANN, BOB, CAT = "ann@labelflow.test", "bob@labelflow.test", "cat@labelflow.test"
STARTED = {"type": {"not_any_": ["SCHEDULED"]}}  # runs that started, not the schedule's future ones
CONFIG = """name = "{name}"
labels = ["neg", "pos"]
store_url = "sqlite:///{folder}/store.db"
workdir = "{folder}/work"
[dataset]
source = "sentences.csv"
n_gold = 4
held_out_fraction = 0.2
[selection]
batch_size = {batch}
seed_size = {batch}
[crowd]
backend = "label_studio"
redundancy = 2
max_answers = 2
gold_per_round = {gold}
poll_interval_minutes = 60  # the fallback: too late for this test
hand_off_after_seconds = 1
[crowd.label_studio]
url = "{url}"
webhook_url = "http://127.0.0.1:{port}/label-studio"
[training]
self_training_max_iter = 1
[inbox]
watch_interval_seconds = 3600  # no inbox here: its watcher's runs would only load the machine
[schedule]
round_cron = "never"  # a scheduled round falling due during the test would be a second round
"""


@pytest.fixture(scope="module")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    with local_prefect_server(tmp_path_factory.mktemp("prefect-home")) as env:
        yield env


def user_id(ls: LabelStudioForTests, email: str) -> int:
    with ls.as_user(ls.annotators[email]) as client:
        return int(client.request("GET", "/api/current-user/whoami", "whoami")["id"])


def runs(env: dict[str, str], deployment: str, **flow_runs: Any) -> list[dict[str, Any]]:
    body = {"deployments": {"name": {"any_": [deployment]}}, "flow_runs": flow_runs}
    return list(api_post(env, "/flow_runs/filter", body))


def answer_in_label_studio(
    browser: WebDriver, url: str, email: str, password: str, project_id: int, label: str
) -> None:
    """Log in to Label Studio as ``email``, open the project's labeling queue, choose ``label``, submit."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, 60)
    shots = os.environ.get("LABELFLOW_SCREENSHOT_DIR")
    browser.delete_all_cookies()
    browser.get(f"{url}/user/login/")
    wait.until(ec.presence_of_element_located((By.NAME, "email"))).send_keys(email)
    browser.find_element(By.NAME, "password").send_keys(password)
    browser.find_element(By.CSS_SELECTOR, "form button, form input[type=submit]").click()
    wait.until(lambda page: "/user/login" not in page.current_url)
    browser.get(f"{url}/projects/{project_id}/data?labeling=1")
    choice = f"//label[contains(@class, 'lsf-choice__checkbox')][.//input[@name='{label}']]"
    wait.until(ec.element_to_be_clickable((By.XPATH, choice))).click()
    wait.until(lambda page: page.find_element(By.XPATH, f"{choice}//input").is_selected())
    if shots:
        browser.save_screenshot(str(Path(shots) / "label-studio-labeling.png"))
    browser.find_element(By.CSS_SELECTOR, "button[data-testid=bottombar-submit-button]").click()
    wait.until(lambda page: "saved successfully" in page.page_source)
    if shots:
        browser.save_screenshot(str(Path(shots) / "label-studio-submitted.png"))


def test_a_served_round_resumes_on_label_studios_webhooks_its_last_answer_given_in_the_ui(
    tmp_path: Path,
    label_studio: LabelStudioForTests,
    prefect_server: dict[str, str],
    browser: WebDriver,
) -> None:
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL, temporary_settings

    write_sentences(tmp_path, n=60)
    config_path = tmp_path / "labelflow.toml"
    config_path.write_text(
        CONFIG.format(
            name=NAME, folder=tmp_path, batch=BATCH, gold=GOLD, url=label_studio.url, port=free_port()
        )
    )
    config = load_config(config_path)
    truth = truth_of(config, tmp_path)
    env = {
        **prefect_server,
        "LABEL_STUDIO_API_KEY": label_studio.owner_token,
        "LABELFLOW_WEBHOOK_SECRET": "served-secret",
    }
    serve = start_labelflow_serve(config_path, env, tmp_path / "serve.log")
    store = Project(config, tmp_path).store
    asked = 2 * (BATCH + GOLD)
    # Ann answers every task, Bob all but one; Cat gives the wave's last answer in the browser.
    teams = [
        Team(label_studio, NAME, truth, [ANN], limit=BATCH + GOLD),
        Team(label_studio, NAME, truth, [BOB], limit=BATCH + GOLD - 1),
    ]
    try:
        wait_for(
            lambda: (
                f"{NAME}-collect-on-answers" in {d["name"] for d in api_post(env, "/deployments/filter", {})}
            ),
            90,
            "serve registered the event-driven collector",
        )
        with temporary_settings({PREFECT_API_URL: env["PREFECT_API_URL"]}):
            first = run_deployment(f"labeling-round/{NAME}-round", timeout=0, as_subflow=False)

        def handed_off() -> bool:
            [run] = api_post(env, "/flow_runs/filter", {"flow_runs": {"id": {"any_": [str(first.id)]}}})
            return bool(run["state_type"] == "COMPLETED")

        wait_for(handed_off, 240, "the round published and handed its wait over", every=0.5)
        assert store.rounds()["status"].tolist() == ["running"] and store.count_answers() == 0
        interval_runs = len(runs(env, f"{NAME}-collect", state=STARTED))
        answering = time.monotonic()
        for team in teams:
            team.start()
        for team in teams:
            team.join(120)
        [left] = [t for t in project_tasks(label_studio, NAME) if len(t["annotations"]) == 1]
        item = left["data"]["labelflow_item"]
        answer_in_label_studio(browser, label_studio.url, CAT, "cat-password-1", left["project"], truth[item])
        submitted = time.monotonic()
        # generous: on a loaded 2-core machine each flow run's process can take a minute to start
        wait_for(
            lambda: (store.rounds()["status"] == "completed").all(), 480, "the round completed", every=0.5
        )
        print(
            f"the API answers took {submitted - answering:.0f} s with the browser's; the round completed "
            f"{time.monotonic() - submitted:.0f} s after the last answer"
        )
        resumed = wait_for(
            lambda: runs(
                env, f"{NAME}-round", tags={"all_": [RESUMED_TAG]}, state={"type": {"any_": ["COMPLETED"]}}
            ),
            60,
            "the resumed round's flow run completed",  # it finishes just after the round it completed
        )
    finally:
        for team in teams:
            team.stop.set()
        stop_process_group(serve)
    assert [t.errors for t in teams] == [{}, {}] and [t.answered for t in teams] == [
        BATCH + GOLD,
        BATCH + GOLD - 1,
    ]
    answers = store.answers()
    assert len(answers) == asked and answers["worker_id"].str.fullmatch(r"ls:\d+").all()
    [by_cat] = answers[answers["worker_id"] == f"ls:{user_id(label_studio, CAT)}"].itertuples()
    assert (by_cat.item_id, by_cat.label) == (item, truth[item])
    # every annotation reached Prefect as an event from the receiver
    events = api_post(env, "/events/filter", {"filter": {"event": {"name": ["labelflow.answers.arrived"]}}})
    arrived = [e for e in events["events"] if e["resource"]["labelflow.project"] == NAME]
    assert {e["payload"]["annotation"] for e in arrived} == {
        int(a.removeprefix("ls-")) for a in answers["answer_id"]
    }
    # the events' automation started the collectors, one of them resumed the round; the interval one did not run
    on_answers = runs(env, f"{NAME}-collect-on-answers")
    assert on_answers and all(r["created_by"]["type"] == "AUTOMATION" for r in on_answers), on_answers
    polled = [r for r in on_answers if r["state_type"] == "COMPLETED"]
    print(f"{len(arrived)} events, {len(on_answers)} collector runs, {len(polled)} of them polled")
    assert len(resumed) == 1 and len(runs(env, f"{NAME}-round", tags={"all_": [RESUMED_TAG]})) == 1
    assert len(runs(env, f"{NAME}-collect", state=STARTED)) == interval_runs
    store.close()
