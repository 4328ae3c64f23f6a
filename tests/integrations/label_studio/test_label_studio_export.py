"""Labels to Label Studio's format and back, through a real server: predictions carry the confidence, and a
correction made in Label Studio wins when the export is read back."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from conftest import LabelStudioForTests

from labelflow.integrations.label_studio import LabelStudioClient, labeling_config
from labelflow.integrations.label_studio.export import (
    LabelStudioExportError,
    label_studio_tasks,
    read_label_studio_export,
)

pytestmark = pytest.mark.slow


def test_labels_go_to_label_studio_as_predictions_and_come_back_with_corrections(
    tmp_path: Path, label_studio: LabelStudioForTests
) -> None:
    labels = pd.DataFrame(
        {
            "item_id": ["s1", "s2", "s3"],
            "label": ["pos", "neg", "pos"],
            "confidence": [0.97, 0.61, 0.88],
            "source": ["crowd", "crowd", "model"],
            "round": [1, 2, 2],
        }
    )
    texts = {"s1": "a warm film", "s2": "a dull film", "s3": "a witty film"}
    tasks = label_studio_tasks(labels, texts, "text")
    assert tasks[1]["predictions"][0]["model_version"] == "labelflow crowd round 2"
    with LabelStudioClient(label_studio.url, label_studio.owner_token) as owner:
        project = owner.request(
            "POST",
            "/api/projects/",
            "creating",
            json={"title": "export-test", "label_config": labeling_config(["neg", "pos"], "text")},
        )
        owner.request("POST", f"/api/projects/{project['id']}/import", "importing", json=tasks)
        listed = owner.request("GET", "/api/tasks/", "listing", params={"project": project["id"]})["tasks"]
        s2 = next(t["id"] for t in listed if t["data"]["labelflow_item"] == "s2")
        # A reviewer corrects s2 in Label Studio.
        owner.request(
            "POST",
            f"/api/tasks/{s2}/annotations/",
            "correcting",
            json={
                "result": [
                    {
                        "from_name": "label",
                        "to_name": "text",
                        "type": "choices",
                        "value": {"choices": ["pos"]},
                    }
                ]
            },
        )
        # Label Studio's quick JSON export lists predictions by id: the tasks API gives them whole.
        exported = owner.request(
            "GET", "/api/tasks/", "listing", params={"project": project["id"], "fields": "all"}
        )["tasks"]
    path = tmp_path / "export.json"
    path.write_text(json.dumps(exported))
    back = read_label_studio_export(path, ["neg", "pos"]).set_index("item_id")
    assert back.loc["s1"].tolist() == ["pos", pytest.approx(0.97), "prediction"]
    assert back.loc["s3"].tolist() == ["pos", pytest.approx(0.88), "prediction"]
    assert back.loc["s2"].tolist() == ["pos", 1.0, "annotation"]


def test_an_export_that_is_not_labelflows_is_refused_naming_the_task(tmp_path: Path) -> None:
    path = tmp_path / "other.json"
    path.write_text(json.dumps([{"data": {"text": "x"}, "predictions": []}]))
    with pytest.raises(LabelStudioExportError, match=r"task 0 has no data.labelflow_item"):
        read_label_studio_export(path, ["neg", "pos"])
    path.write_text(
        json.dumps(
            [
                {
                    "data": {"labelflow_item": "a"},
                    "annotations": [
                        {"id": 1, "result": [{"from_name": "label", "value": {"choices": ["maybe"]}}]}
                    ],
                }
            ]
        )
    )
    with pytest.raises(LabelStudioExportError, match=r"task 0 \(item 'a'\): label 'maybe' is not one of"):
        read_label_studio_export(path, ["neg", "pos"])
