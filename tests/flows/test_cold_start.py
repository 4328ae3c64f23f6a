"""The README's cold start, followed word for word: from a CSV of texts without any label to a first trained
model, through a real Label Studio. The test runs the config and the commands of README.md's "Starting from zero
labels" section as they are written there; the people's steps are done through Label Studio's API: the owner
labels the drawn items (their labels: the sentences' known polarity), and two annotators take the round's tasks
from Label Studio's queue."""

from __future__ import annotations

import os
import shlex
from pathlib import Path

import pandas as pd
import pytest
from conftest import LabelStudioForTests
from test_label_studio_round import Team, project_tasks
from typer.testing import CliRunner

from labelflow.contracts import ItemSet
from labelflow.flows.cli import app
from labelflow.flows.config import load_config
from labelflow.flows.project import Project

pytestmark = [pytest.mark.flow, pytest.mark.slow, pytest.mark.usefixtures("prefect_harness")]

REPO = Path(__file__).resolve().parents[2]
SENTENCES = REPO.parent / "shared" / "data" / "crowd-items" / "sentiment_polarity"
SECTION = "### Starting from zero labels"
runner = CliRunner()


def readme_steps() -> tuple[str, list[str]]:
    """The cold-start section's config (its TOML block) and shell lines (its bash block)."""
    section = (REPO / "README.md").read_text(encoding="utf-8").split(SECTION, 1)[1]
    config = section.split("```toml\n", 1)[1].split("```", 1)[0]
    shell = section.split("```bash\n", 1)[1].split("```", 1)[0]
    return config, [line.strip() for line in shell.splitlines() if line.strip()]


def run(command: str) -> str:
    """A `labelflow ...` line of the README, run as the command (in this process, on the session's Prefect)."""
    result = runner.invoke(app, shlex.split(command.split("#", 1)[0])[1:])
    assert result.exit_code == 0, f"{command}\n{result.output}"
    return " ".join(result.output.split())  # as one line: the console wraps at its width


def owner_labels(ls: LabelStudioForTests, title: str, truth: dict[str, str]) -> int:
    """The owner labels every task of their expert project, the first one at first without a choice (a slip)
    which they then correct by editing the annotation, as the UI does."""
    with ls.as_user(ls.owner_token) as client:
        [project] = [
            p
            for p in client.pages("/api/projects/", "projects", {"title": title}, 100)
            if p["title"] == title
        ]
        tasks = list(client.pages("/api/tasks/", "tasks", {"project": project["id"]}, 100))
    first, *others = tasks
    slip = ls.annotate(ls.owner_token, int(first["id"]), [])
    choice = {"choices": [truth[first["data"]["labelflow_item"]]]}
    with ls.as_user(ls.owner_token) as client:
        client.request(
            "PATCH",
            f"/api/annotations/{slip['id']}/",
            "correcting the slip",
            json={"result": [{"from_name": "label", "to_name": "text", "type": "choices", "value": choice}]},
        )
    for task in others:
        ls.annotate(ls.owner_token, int(task["id"]), [truth[task["data"]["labelflow_item"]]])
    return len(tasks)


def test_the_readme_cold_start_from_texts_without_labels_to_a_first_model(
    tmp_path: Path, label_studio: LabelStudioForTests, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not (SENTENCES / "items.csv").exists():
        pytest.skip(
            f"the sentence polarity items are not at {SENTENCES} (they live beside the repo in ../shared)"
        )
    pd.read_csv(SENTENCES / "items.csv", dtype=str).head(300).to_csv(tmp_path / "reviews.csv", index=False)
    known = pd.read_csv(SENTENCES / "truth.csv", dtype=str)
    truth = dict(zip(known["question"], known["truth"], strict=True))
    config_text, lines = readme_steps()
    # The only changes to the README's config: the session's server, and polls every 2 s, not every 10 minutes.
    config_text = config_text.replace('url = "http://127.0.0.1:8080"', f'url = "{label_studio.url}"')
    config_text = config_text.replace("[crowd]\n", "[crowd]\npoll_interval_minutes = 0.03\n")
    (tmp_path / "labelflow.toml").write_text(config_text, encoding="utf-8")
    config = load_config(tmp_path / "labelflow.toml")
    monkeypatch.chdir(tmp_path)
    expert_title = f"{config.name} (experts)"
    needed = config.dataset.n_gold + (config.dataset.n_held_out or 0)
    bootstraps: list[str] = []
    for line in lines:
        if line.startswith("#"):  # the owner's own step
            assert "label them in Label Studio" in line, f"a README step this test does not follow: {line}"
            # before it: nothing labeled yet, and `labelflow status` says what the project waits for
            status = run("labelflow status")
            assert f"0 of {needed} gold and held-out items labeled" in status and "No rounds yet" in status
            assert owner_labels(label_studio, expert_title, truth) == needed
        elif line.startswith("labelflow label-studio start"):
            continue  # the session's Label Studio (the label_studio fixture) stands in for it
        elif line.startswith("export LABEL_STUDIO_API_KEY="):
            monkeypatch.setenv("LABEL_STUDIO_API_KEY", label_studio.owner_token)
        elif line.startswith("labelflow run"):
            team = Team(label_studio, config.name, truth, ["ann@labelflow.test", "bob@labelflow.test"])
            team.start()
            try:
                output = run(line)
            finally:
                team.stop.set()
                team.join(10)
            assert team.errors == {} and "held-out accuracy" in output, output
        elif line.startswith("labelflow bootstrap"):
            bootstraps.append(run(line))
        elif line.startswith("labelflow "):
            run(line)
        else:
            pytest.fail(f"a README step this test does not follow: {line}")

    first, second = bootstraps
    assert f"0 of {needed} gold and held-out items labeled" in first
    assert f"all {needed} gold and held-out items are labeled" in second
    tasks = project_tasks(label_studio, expert_title)
    assert len(tasks) == needed and len({t["data"]["labelflow_item"] for t in tasks}) == needed  # none twice
    with Project(config, tmp_path) as project:
        store = project.store
        drawn = pd.concat([store.items("gold"), store.items("held_out")])
        assert drawn["item_set"].value_counts().to_dict() == {
            "gold": config.dataset.n_gold,
            "held_out": config.dataset.n_held_out,
        }
        assert (drawn["known_label"] == drawn["item_id"].map(truth)).all()  # the owner's labels, slip ignored
        [round_] = store.rounds().to_dict("records")
        assert round_["status"] == "completed" and round_["summary"]["model_accuracy"] is not None
        champion = store.champion()
        assert champion is not None and Path(champion.path).exists()
        crowd = store.labels(round_["id"]).query("source == 'crowd'")
        assert len(crowd) == config.selection.seed_size and not crowd["item_id"].isin(drawn["item_id"]).any()
        answers = store.answers(round_["id"])
        assert set(answers.loc[answers["is_gold"], "item_id"]) <= set(store.items("gold")["item_id"])
    summary = round_summary(f"{config.name}-round-summary")
    assert summary.startswith(f"# {config.name} — round 1") and "first model" in summary
    if folder := os.environ.get("LABELFLOW_SCREENSHOT_DIR"):  # set it to refresh docs/round-summary.png
        picture(summary, f"{config.name}-round-summary", Path(folder) / "round-summary.png", tmp_path)


def round_summary(key: str) -> str:
    """The markdown of the round summary artifact ``key`` on the session's Prefect server."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactCollectionFilter, ArtifactCollectionFilterKey

    with get_client(sync_client=True) as client:
        by_key = ArtifactCollectionFilter(key=ArtifactCollectionFilterKey(any_=[key]))
        [artifact] = client.read_latest_artifacts(artifact_filter=by_key)
    return str(artifact.data)


def picture(markdown: str, key: str, output: Path, home: Path) -> None:
    """The artifact as the Prefect UI shows it: published to a server of its own that serves the UI (the test
    harness's does not), its page rendered by headless Chromium."""
    from prefect.artifacts import create_markdown_artifact
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from labelflow.integrations.prefect_server import local_prefect_server
    from labelflow.integrations.screenshots import screenshot

    with (
        local_prefect_server(home / "prefect-ui") as env,
        temporary_settings({PREFECT_API_URL: env["PREFECT_API_URL"]}),
    ):
        artifact = create_markdown_artifact(markdown=markdown, key=key, description="Round 1 of a cold start")
        ui = env["PREFECT_API_URL"].removesuffix("/api")
        screenshot(f"{ui}/artifacts/artifact/{artifact}", output, width=1200, height=900)


def test_after_a_cold_start_the_simulated_crowd_answers_where_the_data_knows_the_truth(
    tmp_path: Path,
) -> None:
    """The crowd step elsewhere: a table of 200 rows, 25 of them labeled (too few for 10 gold and 20 held-out
    items) starts cold; once the owner's labels are in (given here straight to the store, as `labelflow bootstrap`
    stores them), a round runs on the simulated crowd, which answers from the labels the data has: the 25, and the
    owner's for the gold questions."""
    import numpy as np

    from labelflow.flows.bootstrap import draw_items, progress_in_store
    from labelflow.flows.config import parse_config
    from labelflow.flows.labeling_round import labeling_round

    rng = np.random.default_rng(0)
    features = rng.normal(size=(200, 2))
    truth = np.where(features[:, 0] + 0.5 * features[:, 1] > 0, "yes", "no")
    pd.DataFrame(
        {
            "item_id": [f"t{k:03d}" for k in range(200)],
            "a": features[:, 0],
            "b": features[:, 1],
            "label": [label if k < 25 else None for k, label in enumerate(truth)],
        }
    ).to_csv(tmp_path / "rows.csv", index=False)
    config = parse_config(
        {
            "name": "cold-table",
            "labels": ["no", "yes"],
            "store_url": f"sqlite:///{tmp_path / 'store.db'}",
            "workdir": str(tmp_path / "work"),
            "dataset": {"source": "rows.csv", "n_gold": 10, "n_held_out": 20},
            "selection": {"seed_size": 8},
            "crowd": {"gold_per_round": 4},
            "training": {"model": "logistic_regression"},
        }
    )
    by_id = dict(zip([f"t{k:03d}" for k in range(200)], truth.tolist(), strict=True))
    with Project(config, tmp_path) as project:
        plan = project.cold_start
        assert plan is not None and (plan.gold, plan.held_out, plan.n_labeled) == (10, 20, 25)
        assert draw_items(project, plan) == 30 and draw_items(project, plan) == 0  # drawn once
        waiting = progress_in_store(project.store)
        assert waiting is not None and (waiting.labeled, waiting.needed) == (0, 30)
        drawn = pd.concat([project.store.items("gold"), project.store.items("held_out")])
        assert project.store.set_known_labels({item: by_id[item] for item in drawn["item_id"]}) == 30
        assert progress_in_store(project.store) is None
    report = labeling_round(config, str(tmp_path))
    assert report is not None and 0 <= report.model_accuracy <= 1
    with Project(config, tmp_path) as project:
        dataset, store = project.dataset, project.store
        assert set(dataset.frame(ItemSet.GOLD)["item_id"]) == set(store.items("gold")["item_id"])
        assert len(dataset.frame(ItemSet.HELD_OUT)) == 20 and dataset.known_labels.to_dict() == {
            item: by_id[item] for item in drawn["item_id"]
        }
        answers = store.answers(report.round_id)
        gold_asked = set(answers.loc[answers["is_gold"], "item_id"])
        assert len(gold_asked) == 4 and gold_asked <= set(store.items("gold")["item_id"])
        batch = set(answers.loc[~answers["is_gold"], "item_id"])
        assert batch and batch <= {f"t{k:03d}" for k in range(25)}  # only where the data knows the truth
