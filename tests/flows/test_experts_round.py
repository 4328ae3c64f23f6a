"""Mixed workforces: a round whose crowd is simulated and whose experts work in a real Label Studio. The items the
crowd disagrees on most are escalated after its last wave and the round waits for the expert (served: it hands
the wait over, and its resume escalates the same items); unsure labels go to the experts' review queue with the
crowd's label pre-filled, and the next round collects the decisions. The expert always gives the label the crowd
does not (the wrong one, by the data): it wins every time, its answers are stored as expert work at the expert's
price, and no escalated item ever calibrates the confidence."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from conftest import LabelStudioForTests
from test_label_studio_round import Team, project_id, truth_of
from test_text_items import write_sentences

from labelflow.flows.config import ProjectConfig, parse_config
from labelflow.flows.labeling_round import labeling_round
from labelflow.flows.project import Project
from labelflow.integrations.crowd.base import EXPERT_WAVE
from labelflow.integrations.label_studio import LabelStudioClient
from labelflow.tasks.confidence import EXPERT_METHOD

pytestmark = [pytest.mark.flow, pytest.mark.slow, pytest.mark.usefixtures("prefect_harness")]

NAME, EXPERT = "mixed-workforce", "ann@labelflow.test"
EXPERTS_PROJECT = f"{NAME} (experts)"
HOURLY, SECONDS, REWARD = 36.0, 10.0, 0.05  # an expert answer costs $0.10, two crowd answers


def mixed_project(folder: Path, ls: LabelStudioForTests, monkeypatch: pytest.MonkeyPatch) -> ProjectConfig:
    write_sentences(folder, n=100)
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", ls.owner_token)
    return parse_config(
        {
            "name": NAME,
            "labels": ["neg", "pos"],
            "store_url": f"sqlite:///{folder / 'store.db'}",
            "workdir": str(folder / "work"),
            "dataset": {"source": "sentences.csv", "n_gold": 30, "held_out_fraction": 0.2},
            "selection": {"batch_size": 12, "seed_size": 12},
            "crowd": {
                "backend": "simulated",
                "redundancy": 2,
                "max_answers": 3,
                "gold_per_round": 24,  # enough random gold to calibrate in the first round
                "reward_per_answer": REWARD,
                "poll_interval_minutes": 0.03,
                "hand_off_after_seconds": 3,  # a served round's hold: the crowd (virtual clock) fits in it
                "expert_backend": "label_studio",
                "escalate_share": 0.1,
                "review_per_round": 4,
                "label_studio": {"url": ls.url, "hourly_cost": HOURLY, "seconds_per_answer": SECONDS},
                # A bad crowd, so that labels stay unsure after the last wave.
                "simulated": {
                    "mean_latency_minutes": 0.01,  # on its virtual clock: in by the first poll or two
                    "good_share": 0.6,
                    "spammer_share": 0.3,
                    "good_accuracy": [0.6, 0.75],
                    "seed": 2,
                },
            },
            "quality": {"confidence_target": 0.95, "block_spammers": False},
            "training": {"self_training_max_iter": 1},
        }
    )


def escalated_so_far(config: ProjectConfig, folder: Path) -> set[str]:
    """The items the running round has sent to the experts after its last wave."""
    with Project(config, folder) as project:
        store = project.store
        rounds = store.rounds()
        if rounds.empty:
            return set()
        requests = store.requests(int(rounds["id"].iloc[-1]))
    escalated = requests["request_key"].str.endswith("/escalated") & requests["external_id"].notna()
    return set(requests.loc[escalated, "item_id"])


def review_tasks(ls: LabelStudioForTests) -> dict[str, dict[str, Any]]:
    """The experts' project's tasks with a pre-filled label, by item, with their predictions."""
    project = project_id(ls, EXPERTS_PROJECT)
    with LabelStudioClient(ls.url, ls.owner_token) as client:
        tasks = client.pages("/api/tasks/", "tasks", {"project": project, "fields": "all"}, 100)
        return {t["data"]["labelflow_item"]: t for t in tasks if t.get("predictions")}


def test_experts_in_label_studio_decide_escalated_and_reviewed_items(
    tmp_path: Path, label_studio: LabelStudioForTests, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = mixed_project(tmp_path, label_studio, monkeypatch)
    truth = truth_of(config, tmp_path)
    # The expert always gives the label the data does not.
    expert = Team(label_studio, EXPERTS_PROJECT, truth, [EXPERT], wrong=EXPERT)
    # Served, the round hands the wait for the experts over (no expert is at work yet); resumed, it waits for the
    # same items, whatever the expert answers since (a collector's resume, run here by hand).
    waiting = labeling_round(config, str(tmp_path), wait_for_answers=False)
    for _ in range(10):
        if waiting is not None or escalated_so_far(config, tmp_path):
            break
        waiting = labeling_round(config, str(tmp_path), wait_for_answers=False, resume_only=True)
    assert waiting is None
    handed_over = escalated_so_far(config, tmp_path)
    assert handed_over
    expert.start()
    try:
        first = labeling_round(config, str(tmp_path), resume_only=True)
        assert first is not None
        # The review queue got the round's unsure labels, each with the crowd's label and confidence pre-filled.
        with Project(config, tmp_path) as project:
            store = project.store
            requests = store.requests(first.round_id)
            labels = store.labels(first.round_id).query("source == 'crowd'").set_index("item_id")
            escalated = set(requests.loc[requests["request_key"].str.endswith("/escalated"), "item_id"])
            sent = set(requests.loc[requests["request_key"].str.endswith("/review"), "item_id"])
            crowd_answers = int(requests.loc[~requests["is_expert"].astype(bool), "n_answers"].sum())
        assert first.escalated == len(escalated) >= 1 and first.sent_for_review == len(sent) >= 1
        assert escalated == handed_over  # the resumed round escalated nothing twice, nothing else
        assert requests.loc[requests["is_expert"].astype(bool), "wave"].eq(EXPERT_WAVE).all()
        queued = review_tasks(label_studio)
        assert set(queued) == sent
        for item, task in queued.items():
            [prediction] = task["predictions"]
            assert prediction["result"][0]["value"]["choices"] == [labels.at[item, "label"]]
            assert prediction["score"] == pytest.approx(labels.at[item, "confidence"])
        # Escalated items: the round waited for the expert, whose label won; stored as expert work, paid at the
        # expert's price, and never in the calibration set (only the 24 random gold items are).
        assert (labels.loc[sorted(escalated), "method"] == EXPERT_METHOD).all()
        assert all(labels.at[item, "label"] != truth[item] for item in escalated)
        assert first.confidence_calibrated and first.calibration_gold == 24
        expert_cost = HOURLY * SECONDS / 3600
        assert first.cost == pytest.approx(
            crowd_answers * REWARD + (len(escalated) + len(sent)) * expert_cost
        )
        # The expert reviews the queue; the next round collects the decisions, and they win too.
        deadline = time.monotonic() + 60
        while len(expert.tasks) < len(escalated) + len(sent) and time.monotonic() < deadline:
            time.sleep(0.3)
        second = labeling_round(config, str(tmp_path))
        assert second is not None
    finally:
        expert.stop.set()
        expert.join(10)
    assert expert.errors == {}
    with Project(config, tmp_path) as project:
        store = project.store
        decided = store.expert_answers()
        latest = store.labels(second.round_id).query("source == 'crowd'").set_index("item_id")
        gold_asked = set().union(
            *(store.requests(r).query("is_gold")["item_id"] for r in (first.round_id, second.round_id))
        )
    assert set(decided["item_id"]) >= escalated | sent
    assert decided["worker_id"].str.fullmatch(r"ls:\d+").all() and decided["worker_id"].nunique() == 1
    for item in escalated | sent:
        assert latest.at[item, "method"] == EXPERT_METHOD and latest.at[item, "label"] != truth[item]
        assert latest.at[item, "confidence"] == 1.0
    assert second.calibration_gold == len(
        gold_asked
    )  # the random gold asked so far, never the experts' items
