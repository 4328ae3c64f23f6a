"""An image project end to end: a folder of photos with a sub-folder per label, featurized by the project's image
featurizer, one round on the simulated crowd; the model trains on the descriptors, not on their dense view."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from labelflow.flows.config import parse_config
from labelflow.flows.project import Project
from labelflow.tasks.features.image import descriptor_length
from labelflow.tasks.training import load_model


@pytest.mark.flow
@pytest.mark.usefixtures("prefect_harness")
def test_an_image_project_runs_a_round_on_the_simulated_crowd(
    tmp_path: Path, photos: Callable[..., list[tuple[str, str]]]
) -> None:
    from labelflow.flows.labeling_round import labeling_round

    photos(80, size=32)
    config = parse_config(
        {
            "name": "image-test",
            "labels": ["cool", "warm"],
            "store_url": f"sqlite:///{tmp_path / 'store.db'}",
            "workdir": str(tmp_path / "work"),
            "dataset": {"source": "photos", "n_gold": 10, "held_out_fraction": 0.2},
            "features": {"image_size": 32, "n_jobs": 1},
            "selection": {"batch_size": 16, "seed_size": 16},
            "crowd": {"gold_per_round": 4},
            "training": {"model": "logistic_regression", "self_training_max_iter": 2},
        }
    )
    labeling_round(config, str(tmp_path))
    with Project(config, tmp_path) as project:
        assert project.dataset.kind == "image"
        assert list(project.store.rounds()["status"]) == ["completed"]
        assert len(project.store.labels().query("source == 'crowd'")) == 16
        champion = project.store.champion()
        assert champion is not None and champion.accuracy >= 0.8
        model = load_model(Path(champion.path))
        assert model.n_features == descriptor_length(32) and model.features_version == 1


@pytest.mark.flow
@pytest.mark.usefixtures("prefect_harness")
def test_new_photos_arrive_through_the_inbox_and_a_missing_one_is_quarantined(
    tmp_path: Path, photos: Callable[..., list[tuple[str, str]]]
) -> None:
    import pandas as pd

    from labelflow.flows.ingest import watch_inbox

    photos(30, size=32)
    arrivals = photos(10, folder=tmp_path / "new", size=32, seed=1)
    config = parse_config(
        {
            "name": "image-inbox",
            "labels": ["cool", "warm"],
            "store_url": f"sqlite:///{tmp_path / 'store.db'}",
            "workdir": str(tmp_path / "work"),
            "dataset": {"source": "photos", "n_gold": 4, "held_out_fraction": 0.2},
            "features": {"image_size": 32, "n_jobs": 1},
        }
    )
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    rows = pd.DataFrame(
        {
            "item_id": [f"new-{k}" for k in range(10)],
            "image": [f"new/{path}" for path, _ in arrivals],  # relative to the project folder
        }
    )
    rows.to_csv(inbox / "good.csv", index=False)
    rows.assign(item_id=[f"bad-{k}" for k in range(10)], image=[*rows["image"][:9], "new/gone.jpg"]).to_csv(
        inbox / "bad.csv", index=False
    )
    results = {r.name: r for r in watch_inbox(config, str(tmp_path))}
    assert results["good.csv"].status == "processed" and results["good.csv"].n_added == 10
    assert results["bad.csv"].status == "quarantined"
    report = (inbox / "quarantine" / "bad.csv.report.txt").read_text()
    assert "row 9 (item 'bad-9'), column 'image'" in report and "gone.jpg does not exist" in report
    with Project(config, tmp_path) as project:
        items = project.dataset.items.set_index("item_id")
        assert items.loc["new-0", "payload"] == str((tmp_path / "new" / arrivals[0][0]).resolve())
        assert project.feature_rows is not None
        assert project.feature_rows(["new-0"]).shape == (1, descriptor_length(32))
