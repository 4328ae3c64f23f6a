"""A labeling round whose crowd is a team in a real Label Studio: two annotators take tasks from Label Studio's
queue and answer through the API while the round's flow run polls; a round killed mid-collection and run again
imports no task twice and stores no annotation twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import LabelStudioForTests
from test_text_items import write_sentences

from labelflow.flows.config import ProjectConfig, parse_config
from labelflow.flows.labeling_round import labeling_round
from labelflow.flows.project import Project
from labelflow.integrations.label_studio import LabelStudioClient
from labelflow.integrations.label_studio.client import LabelStudioNotFound

pytestmark = [pytest.mark.flow, pytest.mark.slow, pytest.mark.usefixtures("prefect_harness")]

BATCH, GOLD = 8, 3


def team_project(
    folder: Path, ls: LabelStudioForTests, name: str, monkeypatch: pytest.MonkeyPatch
) -> ProjectConfig:
    """A small text project (sentences with known labels) whose crowd is the Label Studio team."""
    write_sentences(folder, n=80)
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", ls.owner_token)
    return parse_config(
        {
            "name": name,
            "labels": ["neg", "pos"],
            "store_url": f"sqlite:///{folder / 'store.db'}",
            "workdir": str(folder / "work"),
            "dataset": {"source": "sentences.csv", "n_gold": 6, "held_out_fraction": 0.2},
            "selection": {"batch_size": BATCH, "seed_size": BATCH},
            "crowd": {
                "backend": "label_studio",
                "redundancy": 2,
                "max_answers": 2,
                "gold_per_round": GOLD,
                "poll_interval_minutes": 0.03,
                "label_studio": {"url": ls.url, "hourly_cost": 36.0, "seconds_per_answer": 10},
            },
            "training": {"self_training_max_iter": 1},
        }
    )


class Team(threading.Thread):
    """Annotators who take the next task Label Studio's queue offers each of them and answer it (``wrong`` of
    them with the other label), until stopped; ``tasks`` keeps every task answered, predictions included."""

    def __init__(
        self,
        ls: LabelStudioForTests,
        title: str,
        truth: dict[str, str],
        emails: list[str],
        wrong: str | None = None,
        limit: int | None = None,
    ) -> None:
        super().__init__(daemon=True)
        self.ls, self.title, self.truth, self.emails, self.wrong, self.limit = (
            ls,
            title,
            truth,
            emails,
            wrong,
            limit,
        )
        self.stop = threading.Event()
        self.tasks: list[dict[str, Any]] = []
        self.errors: dict[str, list[str]] = {}
        self.clients: dict[str, LabelStudioClient] = {}  # one per annotator: its access token lasts minutes

    def run(self) -> None:
        project = None
        while not self.stop.is_set() and (self.limit is None or self.answered < self.limit):
            if project is None:
                project = project_id(self.ls, self.title)
                time.sleep(0.2)
                continue
            answered = 0
            for email in self.emails:
                try:
                    answered += self._answer_next(email, project)
                except Exception as error:  # a dead thread would look like a slow team: record it
                    self.errors.setdefault(email, []).append(repr(error))
            if not answered:
                time.sleep(0.2)

    def _answer_next(self, email: str, project: int) -> bool:
        client = self.clients.setdefault(email, self.ls.as_user(self.ls.annotators[email]))
        try:
            task = client.request("GET", f"/api/projects/{project}/next", "next")
        except LabelStudioNotFound:  # nothing left for this annotator now
            return False
        label = self.truth[task["data"]["labelflow_item"]]
        if email == self.wrong:
            label = "neg" if label == "pos" else "pos"
        result = [{"from_name": "label", "to_name": "text", "type": "choices", "value": {"choices": [label]}}]
        client.request("POST", f"/api/tasks/{task['id']}/annotations/", "annotating", json={"result": result})
        self.tasks.append(task)
        return True

    @property
    def answered(self) -> int:
        return len(self.tasks)


def project_id(ls: LabelStudioForTests, title: str) -> int | None:
    """The id of the Label Studio project ``title``, once labelflow has made it."""
    with LabelStudioClient(ls.url, ls.owner_token) as client:
        projects = client.request("GET", "/api/projects/", "projects", params={"title": title})
    found = [p for p in projects["results"] if p["title"] == title]
    return int(found[0]["id"]) if found else None


def truth_of(config: ProjectConfig, folder: Path) -> dict[str, str]:
    with Project(config, folder) as project:
        return {str(k): str(v) for k, v in project.dataset.hidden_truth.items()}


def project_tasks(ls: LabelStudioForTests, title: str) -> list[dict[str, Any]]:
    from labelflow.integrations.label_studio.crowd import TASK_KEY

    with LabelStudioClient(ls.url, ls.owner_token) as client:
        [project] = [
            p
            for p in client.request("GET", "/api/projects/", "p", params={"title": title})["results"]
            if p["title"] == title
        ]
        tasks = list(client.pages("/api/tasks/", "tasks", {"project": project["id"]}, 100))
        for task in tasks:
            task["annotations"] = client.request(
                "GET", f"/api/tasks/{task['id']}/annotations/", "annotations"
            )
    return [t for t in tasks if TASK_KEY in t["data"]]


def test_a_round_with_two_annotators_in_label_studio(
    tmp_path: Path, label_studio: LabelStudioForTests, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = team_project(tmp_path, label_studio, "ls-round", monkeypatch)
    # Mallory always gives the other label: quality control blocks her, which removes her from the organization,
    # so she is someone new, not one of the session's annotators.
    ls, mallory = label_studio.with_new_annotator("mallory")
    with ls.as_user(ls.annotators[mallory]) as client:
        mallory_id = f"ls:{client.request('GET', '/api/current-user/whoami', 'whoami')['id']}"
    team = Team(ls, "ls-round", truth_of(config, tmp_path), ["ann@labelflow.test", mallory], wrong=mallory)
    team.start()
    try:
        report = labeling_round(config, str(tmp_path))
    finally:
        team.stop.set()
        team.join(10)
    assert report is not None and "ann@labelflow.test" not in team.errors
    with Project(config, tmp_path) as project:
        store = project.store
        answers = store.answers(report.round_id)
        blocked = store.blocked_workers("label_studio")
        assert len(answers) == report.answers_bought == 2 * (BATCH + GOLD)
        assert answers["worker_id"].str.fullmatch(r"ls:\d+").all() and answers["worker_id"].nunique() == 2
        assert store.rounds()["status"].tolist() == ["completed"]
        labels = store.labels(report.round_id).query("source == 'crowd'")
        assert len(labels) == BATCH
    # Ann is always right and Mallory always wrong: the gold questions tell them apart, the labels are Ann's,
    # and Mallory is blocked: out of the organization, Label Studio refuses her.
    assert report.label_accuracy == 1.0
    assert blocked == {mallory_id}
    assert report.cost == pytest.approx(report.answers_bought * 36.0 * 10 / 3600)
    tasks = project_tasks(label_studio, "ls-round")
    assert len(tasks) == BATCH + GOLD and all(len(t["annotations"]) == 2 for t in tasks)


def test_a_round_killed_while_collecting_reruns_without_importing_or_storing_twice(
    tmp_path: Path, label_studio: LabelStudioForTests, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = team_project(tmp_path, label_studio, "ls-kill", monkeypatch)
    (tmp_path / "labelflow.toml").write_text("")  # unused: the child gets the config as JSON
    truth = truth_of(config, tmp_path)
    # The round runs in a child process (pointed at the session's Prefect server) while one annotator answers
    # five tasks; then the child is killed, mid-wait.
    from prefect.settings import PREFECT_API_URL

    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from labelflow.flows.config import ProjectConfig; "
            "from labelflow.flows.labeling_round import labeling_round; "
            "labeling_round(ProjectConfig.model_validate_json(sys.argv[1]), sys.argv[2])",
            config.model_dump_json(),
            str(tmp_path),
        ],
        env={**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value())},
        start_new_session=True,
    )
    first = Team(label_studio, "ls-kill", truth, ["ann@labelflow.test"], limit=5)
    first.start()
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with Project(config, tmp_path) as project:
                if project.store.count_answers() >= 5:
                    break
            assert child.poll() is None, "the round ended before it was killed"
            time.sleep(0.5)
        else:
            pytest.fail("the child round stored no answers within 120 s")
    finally:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait()
        first.stop.set()
        first.join(10)
    with Project(config, tmp_path) as project:
        stored_before = set(project.store.answers()["answer_id"])
    assert len(stored_before) == 5

    team = Team(label_studio, "ls-kill", truth, ["ann@labelflow.test", "bob@labelflow.test"])
    team.start()
    try:
        report = labeling_round(config, str(tmp_path))
    finally:
        team.stop.set()
        team.join(10)
    assert report is not None and team.errors == {}
    tasks = project_tasks(label_studio, "ls-kill")
    assert len(tasks) == BATCH + GOLD  # no task imported twice
    assert len({t["data"]["labelflow_task"] for t in tasks}) == len(tasks)
    annotations = {f"ls-{a['id']}" for t in tasks for a in t["annotations"]}
    with Project(config, tmp_path) as project:
        stored = project.store.answers()
        assert stored["answer_id"].is_unique and set(stored["answer_id"]) == annotations
        assert stored_before <= annotations
        assert project.store.rounds()["status"].tolist() == ["completed"]
