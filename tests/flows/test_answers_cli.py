"""`labelflow aggregate` (no project) and `labelflow import-answers` (idempotent, all or nothing)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_digits
from typer.testing import CliRunner, Result

from labelflow.contracts import ItemSet
from labelflow.flows.cli import app
from labelflow.flows.config import load_config
from labelflow.flows.project import Project

runner = CliRunner()


def said(result: Result) -> str:
    """What a command printed, with the console's line wrapping undone."""
    return " ".join(result.output.split())


def test_aggregate_writes_one_label_per_item(tmp_path: Path) -> None:
    # Three careful workers and one who always says "dog"; item 007 is gold.
    rows = [("007", "w1", "cat"), ("007", "w2", "cat"), ("007", "w4", "dog")]
    truth = {"i1": "cat", "i2": "dog", "i3": "cat", "i4": "dog"}
    for item, label in truth.items():
        rows += [(item, "w1", label), (item, "w2", label), (item, "w3", label), (item, "w4", "dog")]
    pd.DataFrame(rows, columns=["question", "worker", "answer"]).to_csv(tmp_path / "answers.csv", index=False)
    (tmp_path / "gold.csv").write_text("item_id,label\n007,cat\n")
    output = tmp_path / "out" / "labels.csv"
    result = runner.invoke(
        app,
        ["aggregate", str(tmp_path / "answers.csv"), "--gold", str(tmp_path / "gold.csv"), "-o", str(output)],
    )
    assert result.exit_code == 0, result.output
    labels = pd.read_csv(output, dtype={"item_id": str, "label": str})
    assert list(labels.columns) == ["item_id", "label", "confidence", "n_answers"]
    assert dict(zip(labels["item_id"], labels["label"], strict=True)) == truth
    assert labels["n_answers"].tolist() == [4, 4, 4, 4]
    assert labels["confidence"].between(0.5, 1).all()
    assert "dawid_skene" in said(result)  # the project default's method


def test_aggregate_reports_a_bad_row_by_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "answers.csv").write_text("item_id,worker_id,label\ni1,w1,cat\ni1,,cat\n")
    result = runner.invoke(
        app, ["aggregate", str(tmp_path / "answers.csv"), "-o", str(tmp_path / "labels.csv")]
    )
    assert result.exit_code == 1
    assert "answers.csv" in said(result) and "line 3, field 'worker_id': empty" in said(result)
    assert not (tmp_path / "labels.csv").exists()
    bad_method = runner.invoke(
        app, ["aggregate", str(tmp_path / "answers.csv"), "-o", str(tmp_path / "x.csv"), "--method", "vote"]
    )
    assert bad_method.exit_code == 2 and "majority_vote" in said(bad_method)


def test_aggregate_help_gives_an_example() -> None:
    result = runner.invoke(app, ["aggregate", "--help"])
    assert result.exit_code == 0 and "Example" in said(result) and "--gold" in said(result)


def test_aggregate_labels_the_recorded_duck_crowd_well(shared_crowd: Path, tmp_path: Path) -> None:
    folder = shared_crowd / "duck"
    output = tmp_path / "labels.csv"
    result = runner.invoke(app, ["aggregate", str(folder / "answers.csv"), "--output", str(output)])
    assert result.exit_code == 0, result.output
    labels = pd.read_csv(output, dtype=str).set_index("item_id")["label"]
    truth = pd.read_csv(folder / "truth.csv", dtype=str).set_index("question")["truth"]
    assert len(labels) == 108
    assert float((labels.reindex(truth.index) == truth).mean()) > 0.85


def test_aggregate_auto_says_which_model_it_chose_and_why(shared_crowd: Path, tmp_path: Path) -> None:
    folder = shared_crowd / "duck"
    output = tmp_path / "labels.csv"
    result = runner.invoke(
        app, ["aggregate", str(folder / "answers.csv"), "--method", "auto", "--output", str(output)]
    )
    assert result.exit_code == 0, result.output
    said_text = " ".join(result.output.split())
    chosen = said_text.split("--method auto chose ")[1].split(":")[0]
    assert chosen in ("majority_vote", "one_coin_dawid_skene", "dawid_skene", "full_dawid_skene", "glad")
    assert "held-out answers" in said_text and "answer_loglik" in said_text and f"({chosen})" in said_text
    labels = pd.read_csv(output, dtype=str).set_index("item_id")["label"]
    truth = pd.read_csv(folder / "truth.csv", dtype=str).set_index("question")["truth"]
    assert float((labels.reindex(truth.index) == truth).mean()) > 0.85


def test_aggregate_calibrates_the_confidence_on_random_gold(shared_crowd: Path, tmp_path: Path) -> None:
    """On the recorded dog crowd the raw Dawid-Skene posteriors are overconfident (ECE ~.15); 50 gold items
    drawn at random make the confidence of the other items mean what it says."""
    folder = shared_crowd / "dog"
    truth = pd.read_csv(folder / "truth.csv", dtype=str).set_index("question")["truth"]
    gold = truth.sample(50, random_state=np.random.default_rng(7))
    gold.rename_axis("item_id").rename("label").to_csv(tmp_path / "gold.csv")

    def ece_of(*options: str) -> tuple[float, str]:
        output = tmp_path / "labels.csv"
        command = [
            "aggregate",
            str(folder / "answers.csv"),
            "--gold",
            str(tmp_path / "gold.csv"),
            "-o",
            str(output),
        ]
        result = runner.invoke(app, [*command, *options])
        assert result.exit_code == 0, result.output
        labels = pd.read_csv(output, dtype={"item_id": str, "label": str}).set_index("item_id")
        correct = (labels["label"] == truth.reindex(labels.index)).to_numpy()
        confidence = labels["confidence"].to_numpy()
        bins = np.minimum((confidence * 10).astype(int), 9)
        ece = sum(
            abs(correct[bins == b].mean() - confidence[bins == b].mean()) * (bins == b).mean()
            for b in np.unique(bins)
        )
        return float(ece), result.output

    raw, raw_output = ece_of("--no-calibrate")
    calibrated, output = ece_of()
    assert "confidence calibrated on 50 gold items" in " ".join(output.split())
    assert "uncalibrated" in raw_output
    assert raw > 0.10
    assert calibrated < raw / 2


def make_project(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    n = 40
    items = pd.DataFrame(
        {
            "item_id": [f"it{k:03d}" for k in range(n)],
            "x1": rng.normal(size=n),
            "x2": rng.normal(size=n),
            "label": ["cat", "dog"] * 10 + [None] * 20,
        }
    )
    items.to_csv(tmp_path / "items.csv", index=False)
    config = tmp_path / "labelflow.toml"
    config.write_text(
        'name = "pets"\nlabels = ["cat", "dog"]\nstore_url = "sqlite:///store.db"\nworkdir = "work"\n'
        '[dataset]\nsource = "items.csv"\nn_gold = 4\n'
    )
    return config


def test_import_answers_is_idempotent_and_the_store_keeps_them(tmp_path: Path) -> None:
    config = make_project(tmp_path)
    answers = tmp_path / "old.csv"
    answers.write_text("item_id,worker_id,label\nit020,w1,cat\nit020,w2,dog\nit021,w1,dog\n")
    first = runner.invoke(app, ["import-answers", str(answers), "--config", str(config)])
    assert first.exit_code == 0, first.output
    assert "3 new answers" in said(first)
    # The same answers again, re-sorted in another convention, add nothing.
    again = tmp_path / "again.csv"
    again.write_text("question,worker,answer\nit021,w1,dog\nit020,w2,dog\nit020,w1,cat\n")
    second = runner.invoke(app, ["import-answers", str(again), "--config", str(config)])
    assert second.exit_code == 0 and "0 new answers" in said(second) and "3 already" in said(second)
    project = Project(load_config(config), tmp_path)
    try:
        stored = project.store.answers()
        rounds = project.store.rounds()
    finally:
        project.close()
    assert sorted(zip(stored["item_id"], stored["worker_id"], stored["label"], strict=True)) == [
        ("it020", "w1", "cat"),
        ("it020", "w2", "dog"),
        ("it021", "w1", "dog"),
    ]
    # One round holds them, finished at once, so no crowd ever reviews answers it did not give.
    assert rounds["status"].tolist() == ["completed"]
    assert rounds["summary"].iloc[0]["imported_answers"] == 3


def test_import_answers_with_a_bad_row_imports_nothing(tmp_path: Path) -> None:
    config = make_project(tmp_path)
    answers = tmp_path / "old.csv"
    answers.write_text("item_id,worker_id,label\nit020,w1,cat\nit999,w2,dog\nit021,w1,cow\n")
    result = runner.invoke(app, ["import-answers", str(answers), "--config", str(config)])
    assert result.exit_code == 1
    assert "line 3, field 'item_id': item 'it999'" in said(result)
    assert "line 4, field 'label': label 'cow'" in said(result) and "Nothing was imported" in said(result)
    project = Project(load_config(config), tmp_path)
    try:
        assert project.store.count_answers() == 0 and project.store.rounds().empty
    finally:
        project.close()


def test_import_answers_waits_for_a_running_round(tmp_path: Path) -> None:
    config = make_project(tmp_path)
    project = Project(load_config(config), tmp_path)
    try:
        assert project.store.open_round().status == "running"
    finally:
        project.close()
    answers = tmp_path / "old.csv"
    answers.write_text("item_id,worker_id,label\nit020,w1,cat\n")
    result = runner.invoke(app, ["import-answers", str(answers), "--config", str(config)])
    assert result.exit_code == 1 and "import after it ends" in said(result)


@pytest.mark.flow
@pytest.mark.usefixtures("prefect_harness")
def test_the_next_round_aggregates_imported_answers_into_labels(tmp_path: Path) -> None:
    from labelflow.flows.labeling_round import labeling_round

    digits = load_digits()
    n = 200
    frame = pd.DataFrame(digits.data[:n], columns=[f"px{k}" for k in range(64)])
    frame.insert(0, "item_id", [f"d{k:04d}" for k in range(n)])
    frame["label"] = digits.target[:n].astype(str)
    frame.to_csv(tmp_path / "digits.csv", index=False)
    config = tmp_path / "labelflow.toml"
    config.write_text(
        'name = "imported"\nstore_url = "sqlite:///store.db"\nworkdir = "work"\n'
        '[dataset]\nsource = "digits.csv"\nn_gold = 10\n'
        "[selection]\nbatch_size = 10\nseed_size = 10\n"
        "[crowd]\ngold_per_round = 2\n"
        "[training]\nself_training_max_iter = 1\n"
    )
    project = Project(load_config(config), tmp_path)
    try:
        pool = project.dataset.frame(ItemSet.POOL)["item_id"].tolist()[:3]
    finally:
        project.close()
    answers = tmp_path / "old.csv"
    answers.write_text(
        "item_id,worker_id,label\n" + "".join(f"{item},old-{w},7\n" for item in pool for w in range(3))
    )
    assert runner.invoke(app, ["import-answers", str(answers), "--config", str(config)]).exit_code == 0

    report = labeling_round(load_config(config), str(tmp_path))
    assert report is not None and report.number == 2
    project = Project(load_config(config), tmp_path)
    try:
        labels = project.store.labels(report.round_id)
    finally:
        project.close()
    crowd = labels[(labels["source"] == "crowd") & labels["item_id"].isin(pool)]
    assert sorted(crowd["item_id"]) == sorted(pool)
    assert (crowd["label"] == "7").all() and (crowd["n_answers"] == 3).all()
