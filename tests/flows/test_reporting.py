"""What a round and a campaign report: the round's markdown, its figures, the learning curve and the export."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import matplotlib.image
import pandas as pd
import pytest

from labelflow.contracts import LABEL_COLUMNS
from labelflow.flows.config import ProjectConfig
from labelflow.flows.reporting import (
    CURVE_COLUMNS,
    artifact_key,
    export_labels,
    learning_curve,
    plot_learning_curve,
)
from labelflow.flows.round_report import (
    RoundReport,
    agreement,
    fixed_k_answers,
    publish_reliability,
    round_markdown,
    share_right,
)
from labelflow.integrations.store import LabelStore
from labelflow.tasks.confidence import decision_labels
from labelflow.tasks.synthetic import synthetic_crowd

CONFIG = ProjectConfig.model_validate(
    {
        "name": "cats",
        "crowd": {"redundancy": 2, "max_answers": 5},
        "quality": {"method": "wawa", "confidence_target": 0.9},
        "budget": {"max_spend": 50.0},
    }
)


def round_report(**changes: object) -> RoundReport:
    figures: dict[str, object] = {
        "round_id": 7,
        "number": 3,
        "batch_size": 40,
        "waves": 2,
        "answers_bought": 130,
        "gold_answers": 20,
        "answers_fixed_k": 250,
        "cost": 6.5,
        "spent_total": 19.5,
        "answers_total": 390,
        "agreement": 0.8,
        "label_accuracy": 0.95,
        "crowd_labels": 40,
        "pseudo_labels": 0,
        "model_accuracy": 0.912,
        "previous_accuracy": 0.9,
        "promoted": True,
        "model_path": "round-003.joblib",
        "label_issues": 4,
        "label_issue_precision": 0.75,
        "confidence_note": "uncalibrated: 12 answered gold item(s), fewer than the 20 a calibration needs",
    }
    return RoundReport(**{**figures, **changes})  # type: ignore[arg-type]


def test_the_round_markdown_tabulates_the_rounds_figures() -> None:
    assert round_markdown(CONFIG, round_report()).splitlines() == [
        "# cats — round 3",
        "",
        "| figure | value |",
        "|---|---|",
        "| items sent to the crowd | 40 in 2 wave(s) |",
        "| answers bought (gold included) | 130 (20 gold) |",
        "| adaptive redundancy (k0 2, up to 5 while confidence < 0.9) | 120 answers saved against fixed k = 5 "
        "(250) |",
        "| cost of the round | $6.50 |",
        "| spent so far | $19.50 of $50.00 |",
        "| agreement with the aggregated label | 0.800 |",
        "| crowd labels (wawa) | 40 |",
        "| label accuracy vs hidden truth | 0.950 |",
        "| items labeled per source | crowd 40, labeling functions 0, model 0 |",
        "| pseudo-labels (self-training) | 0 |",
        "| confidence (decisions read it) | uncalibrated: 12 answered gold item(s), fewer than the 20 a "
        "calibration needs |",
        "| held-out model accuracy | 0.912 (+0.012) |",
        "| model promoted | yes |",
        "| label issues offered for relabeling | 4 (75% of them wrong by the hidden truth) |",
    ]


def test_the_round_markdown_says_what_it_cannot_know() -> None:
    report = round_report(
        label_accuracy=None,
        previous_accuracy=None,
        promoted=False,
        label_issue_precision=None,
        pseudo_labels=1200,
        self_training_threshold=0.97,
        pseudo_label_accuracy=0.95,
        function_labels=12,
    )
    rows = round_markdown(CONFIG, report).splitlines()
    assert "| label accuracy vs hidden truth | n/a (no hidden truth) |" in rows
    assert "| held-out model accuracy | 0.912 (first model) |" in rows
    assert "| model promoted | no |" in rows
    assert "| label issues offered for relabeling | 4 |" in rows
    assert "| items labeled per source | crowd 40, labeling functions 12, model 1200 |" in rows
    assert (
        "| pseudo-labels (self-training) | 1200 at confidence ≥ 0.970, 95.0% right by the hidden truth |"
        in rows
    )


def test_the_round_markdown_gives_the_golds_reliability_when_the_confidence_is_calibrated() -> None:
    report = round_report(
        confidence_calibrated=True,
        calibration_gold=30,
        gold_ece_raw=0.21,
        gold_ece_calibrated=0.04,
        gold_at_target=22,
        gold_right_at_target=21 / 22,
    )
    assert (
        "| confidence (decisions read it) | calibrated on 30 random gold items; out of fold, ECE 0.210 raw → "
        "0.040 calibrated, 95.5% of the 22 gold items at ≥ 0.9 are right |"
    ) in round_markdown(CONFIG, report).splitlines()


def test_the_round_markdown_says_which_crowd_model_auto_chose_and_only_then() -> None:
    chose = "auto chose full_dawid_skene: it predicts held-out answers better than the default by 80 nats"
    assert (
        f"| crowd model | {chose} |" in round_markdown(CONFIG, round_report(crowd_model=chose)).splitlines()
    )
    assert not any(
        row.startswith("| crowd model") for row in round_markdown(CONFIG, round_report()).splitlines()
    )


def test_the_reliability_plot_is_an_image_artifact_only_when_the_confidence_is_calibrated(
    tmp_path: Path, latest_artifacts: Callable[..., dict[str, Any]]
) -> None:
    crowd = synthetic_crowd(3000, answers_per_item=3, answers_per_worker=100, seed=1)
    gold = crowd.truth.iloc[:40]
    found = decision_labels(
        crowd.answers,
        crowd.label_names,
        method="dawid_skene",
        gold=gold,
        random_gold=True,
        confidence_target=0.9,
    )
    png = publish_reliability("rel-test", tmp_path, 4, found)
    assert png == tmp_path / "reliability_round_004.png" and matplotlib.image.imread(png).shape[2] == 4
    artifacts = latest_artifacts("rel-test-reliability")
    assert str(artifacts["rel-test-reliability"].data).startswith("data:image/png;base64,")
    few = decision_labels(
        crowd.answers,
        crowd.label_names,
        method="dawid_skene",
        gold=gold[:5],
        random_gold=True,
        confidence_target=0.9,
    )
    assert publish_reliability("rel-test", tmp_path, 5, few) is None


LABELS = pd.DataFrame({"item_id": ["a", "b", "c", "d"], "label": ["cat", "dog", "dog", "cat"]})


def test_share_right_counts_only_the_items_whose_truth_is_known() -> None:
    # a right, b wrong, d right; c's truth is missing and z is not labeled: 2 of 3
    truth = pd.Series({"d": "cat", "z": "dog", "b": "cat", "c": None, "a": "cat"})
    assert share_right(LABELS, truth) == pytest.approx(2 / 3)
    assert share_right(LABELS.iloc[[1]], truth) == 0.0


def test_share_right_is_none_without_a_truth_for_any_label() -> None:
    assert share_right(LABELS, pd.Series(dtype=object)) is None
    assert share_right(LABELS, pd.Series({"z": "dog"})) is None
    assert share_right(LABELS.iloc[:0], pd.Series({"a": "cat"})) is None


def test_share_right_of_the_flagged_labels_is_one_minus_the_precision_of_label_issues() -> None:
    flagged = pd.DataFrame(
        {"item_id": ["a", "b", "c", "d", "e"], "label": ["cat", "cat", "cat", "dog", "cat"]}
    )
    truth = pd.Series({"a": "cat", "b": "dog", "c": "dog", "d": "cat"})  # e has no truth
    # the truth knows four of the five flagged labels and confirms one (a): three in four issues were real
    assert share_right(flagged, truth) == 0.25


def test_agreement_is_the_share_of_answers_that_match_their_items_label() -> None:
    answers = pd.DataFrame(
        {
            "item_id": ["a", "a", "a", "b", "c"],
            "worker_id": list("uvwuv"),
            "label": ["cat", "cat", "dog", "dog", "cat"],
        }
    )
    labels = pd.DataFrame({"item_id": ["a", "b"], "label": ["cat", "dog"]})
    # a: 2 of 3 answers agree, b: 1 of 1; c has no aggregated label and does not count
    assert agreement(answers, labels) == 0.75
    assert math.isnan(agreement(answers[answers["item_id"] == "c"], labels))


def test_fixed_k_counts_every_item_of_the_first_wave_once() -> None:
    requests = pd.DataFrame(
        {"item_id": ["a", "b", "g", "a", "b", "a"], "wave": [1, 1, 1, 2, 2, 3], "is_gold": [0, 0, 1, 0, 0, 0]}
    )
    assert fixed_k_answers(requests, 5) == 15
    assert fixed_k_answers(requests[requests["wave"] > 1], 5) == 0


def test_artifact_keys_keep_to_lowercase_letters_digits_and_dashes() -> None:
    assert artifact_key("Flow_Test v2", "round-summary") == "flow-test-v2-round-summary"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[LabelStore]:
    with LabelStore(f"sqlite:///{tmp_path}/store.db", "cats") as store:
        yield store


def test_the_learning_curve_adds_up_the_answers_of_completed_rounds_only(store: LabelStore) -> None:
    first = store.open_round()
    store.finish_round(
        first.id,
        "completed",
        summary={
            "answers_bought": 100,
            "spent_total": 5.0,
            "crowd_labels": 40,
            "label_accuracy": 0.9,
            "model_accuracy": 0.8,
        },
    )
    store.finish_round(store.open_round().id, "failed", error="the pool failed its suite")
    third = store.open_round()
    store.finish_round(
        third.id,
        "completed",
        summary={
            "answers_bought": 60,
            "spent_total": 8.0,
            "crowd_labels": 70,
            "label_accuracy": None,
            "model_accuracy": 0.85,
        },
    )
    store.open_round()  # running: not on the curve yet

    curve = learning_curve(store)
    assert list(curve.columns) == CURVE_COLUMNS
    assert curve["round"].tolist() == [1, 3]
    assert curve["answers_total_bought"].tolist() == [100, 160]
    assert curve["spent"].tolist() == [5.0, 8.0]
    assert curve["crowd_labels"].tolist() == [40, 70]
    assert curve["label_accuracy"].iloc[0] == 0.9 and pd.isna(curve["label_accuracy"].iloc[1])  # no truth
    assert curve["model_accuracy"].tolist() == [0.8, 0.85]


def test_a_store_without_completed_rounds_has_an_empty_curve(store: LabelStore) -> None:
    store.open_round()
    curve = learning_curve(store)
    assert curve.empty and list(curve.columns) == CURVE_COLUMNS


@pytest.mark.parametrize("label_accuracy", [[0.9, 0.95], [None, None]])
def test_the_learning_curve_plot_is_a_png_of_the_figures_size(
    tmp_path: Path, label_accuracy: list[float | None]
) -> None:
    curve = pd.DataFrame(
        {
            "round": [1, 2],
            "answers_total_bought": [100, 160],
            "spent": [5.0, 8.0],
            "crowd_labels": [40, 70],
            "label_accuracy": label_accuracy,
            "model_accuracy": [0.8, 0.85],
        }
    )
    path = plot_learning_curve(curve, tmp_path / "plots" / "curve.png", "cats")
    assert path == tmp_path / "plots" / "curve.png"
    assert path.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert matplotlib.image.imread(path).shape[:2] == (504, 840)  # 7 x 4.2 inches at 120 dpi


def test_the_export_keeps_one_label_per_item_crowd_before_functions_before_the_model(
    store: LabelStore, tmp_path: Path
) -> None:
    store.add_items(pd.DataFrame({"item_id": ["a", "b", "c"], "item_set": "pool"}))
    first = store.open_round()
    store.finish_round(first.id, "completed")
    second = store.open_round()

    def label(item: str, label: str, source: str, round_id: int) -> dict[str, object]:
        return {
            "item_id": item,
            "label": label,
            "confidence": 0.9,
            "method": source,
            "n_answers": 3 if source == "crowd" else 0,
            "round_id": round_id,
            "source": source,
        }

    store.save_labels(
        pd.DataFrame(
            [
                label("a", "cat", "crowd", first.id),
                label("a", "dog", "model", second.id),
                label("b", "cat", "model", first.id),
                label("b", "dog", "functions", second.id),
                label("c", "dog", "model", second.id),
            ],
            columns=list(LABEL_COLUMNS),
        )
    )
    path, count = export_labels(store, tmp_path / "out" / "labels.csv", "csv")
    exported = pd.read_csv(path)
    assert count == 3
    assert exported[["item_id", "label", "source", "round"]].values.tolist() == [
        ["a", "cat", "crowd", 1],
        ["b", "dog", "functions", 2],
        ["c", "dog", "model", 2],
    ]
    with pytest.raises(ValueError, match="unknown export format 'xlsx'"):
        export_labels(store, tmp_path / "labels.xlsx", "xlsx")


def test_a_waves_progress_artifact_ends_at_its_last_count_however_fast_the_crowd_answers(
    tmp_path: Path, prefect_harness: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prefect import flow
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterType
    from prefect.runtime import flow_run

    from labelflow.flows.steps import answers as step
    from labelflow.integrations.crowd.simulated import SimulatedCrowd, SimulatedCrowdConfig
    from labelflow.tasks.dispatch import first_wave_items, plan_requests, publish_wave

    monkeypatch.setattr(step, "REFRESH_SECONDS", 3600.0)  # no poll's count is shown on the way: only the last
    labels, items = ["cat", "dog"], [f"item-{k}" for k in range(6)]
    crowd = SimulatedCrowd(
        SimulatedCrowdConfig(abandon_rate=0.3, seed=11),
        labels,
        {item: labels[k % 2] for k, item in enumerate(items)},
        reward_per_answer=0.05,
    )
    store = LabelStore(f"sqlite:///{tmp_path / 'labels.db'}", "cats")
    round_ = store.open_round()
    requests = plan_requests(
        first_wave_items(items, [], redundancy=3), project="cats", round_id=round_.id, round_number=1, wave=1
    )
    handles = publish_wave(store, crowd, requests, wave=1, spent=0.0, budget=10.0).handles

    @flow
    def collect() -> tuple[str, int, int]:
        progress = step.collect_answers(
            store, crowd, handles, round_number=1, wave=1, poll_interval_minutes=30, deadline_hours=6
        )
        return str(flow_run.id), progress.collected, progress.expected

    run_id, collected, expected = collect()
    store.close()
    assert 0 < collected < expected  # the deadline passed with some answers never given
    only = ArtifactFilter(
        flow_run_id=ArtifactFilterFlowRunId(any_=[run_id]), type=ArtifactFilterType(any_=["progress"])
    )
    with get_client(sync_client=True) as client:
        [artifact] = client.read_artifacts(artifact_filter=only)
    assert artifact.data == pytest.approx(100.0 * collected / expected)
