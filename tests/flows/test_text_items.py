"""A text project end to end: sentences in a CSV, featurized by the project's featurizer, one round on the
simulated crowd; and the benchmark's real sentences when the shared data is there."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from labelflow.contracts import ItemSet
from labelflow.flows.config import parse_config
from labelflow.flows.project import Project
from labelflow.tasks.features import DENSE_PREFIX, latest_version
from labelflow.tasks.training import load_model

REPO = Path(__file__).resolve().parents[2]
SHARED_SENTENCES = REPO.parent / "shared" / "data" / "crowd-items" / "sentiment_polarity"

GOOD = ["warm", "funny", "moving", "charming", "brilliant", "tender", "witty", "gripping"]
BAD = ["dull", "tedious", "overlong", "clumsy", "lifeless", "muddled", "bland", "shrill"]


def write_sentences(folder: Path, n: int = 120) -> Path:
    rng = np.random.default_rng(0)
    rows = []
    for k in range(n):
        label = ("pos", "neg")[k % 2]
        words = rng.choice(GOOD if label == "pos" else BAD, size=2, replace=False)
        rows.append((f"{k:04d}", f"a {words[0]} and {words[1]} film , scene {k}", label))
    path = folder / "sentences.csv"
    pd.DataFrame(rows, columns=["item_id", "text", "label"]).to_csv(path, index=False)
    return path


@pytest.mark.flow
@pytest.mark.usefixtures("prefect_harness")
def test_a_text_project_runs_a_round_on_the_simulated_crowd(tmp_path: Path) -> None:
    from labelflow.flows.labeling_round import labeling_round

    write_sentences(tmp_path)
    config = parse_config(
        {
            "name": "text-test",
            "labels": ["neg", "pos"],
            "store_url": f"sqlite:///{tmp_path / 'store.db'}",
            "workdir": str(tmp_path / "work"),
            "dataset": {"source": "sentences.csv", "n_gold": 10, "held_out_fraction": 0.2},
            "selection": {"batch_size": 20, "seed_size": 20},
            "crowd": {"gold_per_round": 5},
            "training": {"self_training_max_iter": 2},
        }
    )
    labeling_round(config, str(tmp_path))
    with Project(config, tmp_path) as project:
        dataset = project.dataset
        assert dataset.kind == "text" and dataset.feature_columns[0].startswith(DENSE_PREFIX)
        assert dataset.items["item_id"].iloc[0] == "0000"  # ids stay text
        assert project.text_features.computed == 0  # the round stored every item's features
        assert latest_version(project.workdir) == 1
        rounds = project.store.rounds()
        assert list(rounds["status"]) == ["completed"]
        crowd = project.store.labels().query("source == 'crowd'")
        assert len(crowd) == 20
        champion = project.store.champion()
        assert champion is not None
        # the model was fitted on the sparse TF-IDF rows, not on their 64-d dense view
        model = load_model(Path(champion.path))
        assert (
            model.n_features == project.text_features.matrix.shape[1] > len(project.dataset.feature_columns)
        )
        assert model.features_version == 1 and project.feature_rows is not None
        held_out = project.dataset.frame(ItemSet.HELD_OUT)["item_id"].tolist()
        assert model.predict_proba(project.feature_rows(held_out)).shape == (len(held_out), 2)


@pytest.mark.skipif(
    not SHARED_SENTENCES.exists(), reason=f"the shared crowd data is absent: {SHARED_SENTENCES}"
)
def test_the_shared_sentences_load_as_text_with_their_test_set_held_out_and_gold_from_a_file(
    tmp_path: Path,
) -> None:
    from labelflow.integrations.datasets import DatasetConfig, load_dataset

    truth = pd.read_csv(SHARED_SENTENCES / "truth.csv", dtype=str).sample(30, random_state=0)
    truth.to_csv(tmp_path / "gold.csv", index=False)  # question,truth: the shared convention
    config = DatasetConfig(
        source=str(SHARED_SENTENCES / "items.csv"),
        held_out_source=str(SHARED_SENTENCES / "test_items.csv"),
        gold_source="gold.csv",
    )
    data = load_dataset(config, ["neg", "pos"], tmp_path)
    counts = data.items["item_set"].value_counts().to_dict()
    assert data.kind == "text" and counts == {"pool": 4999 - 30, "held_out": 3999, "gold": 30}
    assert data.known_labels[truth["question"]].tolist() == truth["truth"].tolist()


@pytest.mark.flow
@pytest.mark.usefixtures("prefect_harness")
def test_a_replayed_crowd_out_of_answers_is_neither_paid_nor_waited_for(tmp_path: Path) -> None:
    from labelflow.flows.labeling_round import labeling_round

    sentences = pd.read_csv(write_sentences(tmp_path, 80), dtype=str)
    recorded = [
        (item, f"w{worker}", label)
        for k, (item, label) in enumerate(zip(sentences["item_id"], sentences["label"], strict=True))
        for worker in range(0 if k % 4 == 0 else 1 if k % 4 == 1 else 3)  # none, one, or three answers
    ]
    pd.DataFrame(recorded, columns=["question", "worker", "answer"]).to_csv(
        tmp_path / "answers.csv", index=False
    )
    config = parse_config(
        {
            "name": "replay-text",
            "labels": ["neg", "pos"],
            "store_url": f"sqlite:///{tmp_path / 'store.db'}",
            "workdir": str(tmp_path / "work"),
            "dataset": {"source": "sentences.csv", "n_gold": 6, "held_out_fraction": 0.2},
            "selection": {"batch_size": 20, "seed_size": 20},
            # every label below 0.999 asks one more answer per wave, up to 5: most items run out first
            "crowd": {
                "backend": "replay",
                "replay": {"answers": "answers.csv"},
                "gold_per_round": 4,
                "max_answers": 5,
            },
            "quality": {"confidence_target": 0.999},
            "training": {"self_training": False},
        }
    )
    report = labeling_round(config, str(tmp_path))
    assert report is not None and report.exhausted_requests > 0
    with Project(config, tmp_path) as project:
        # what was paid is what was answered: the answers the recording lacked were not bought
        assert project.store.requested_answers() == project.store.count_answers() == report.answers_bought
        assert list(project.store.rounds()["status"]) == ["completed"]


def test_a_second_round_parses_no_processed_file_and_featurizes_only_new_items(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from labelflow.flows.ingest import ingest_file
    from labelflow.flows.labeling_round import labeling_round
    from labelflow.tasks.features import TextFeaturizer

    sentences = pd.read_csv(write_sentences(tmp_path, 150), dtype=str)
    sentences.iloc[:120].to_csv(tmp_path / "sentences.csv", index=False)
    (tmp_path / "inbox").mkdir()
    sentences.iloc[120:].to_csv(tmp_path / "inbox" / "more.csv", index=False)
    config = parse_config(
        {
            "name": "pool-store-test",
            "labels": ["neg", "pos"],
            "store_url": f"sqlite:///{tmp_path / 'store.db'}",
            "workdir": str(tmp_path / "work"),
            "dataset": {"source": "sentences.csv", "n_gold": 10, "held_out_fraction": 0.2},
            "selection": {"batch_size": 10, "seed_size": 10},
            # good workers only: on 20 items a one-label worker can pull Dawid-Skene to one label for all, which
            # the labels suite rightly refuses; this test is about what the second round reads, not about that
            "crowd": {
                "gold_per_round": 2,
                "simulated": {"good_share": 1.0, "spammer_share": 0.0, "one_class_share": 0.0},
            },
            "training": {"self_training": False},
        }
    )
    assert ingest_file(config, "more.csv", str(tmp_path)).status == "processed"
    labeling_round(config, str(tmp_path))
    # the processed file is corrupted: a run that parsed it again would fail
    (tmp_path / "inbox" / "processed" / "more.csv").write_text('"broken\n')
    featurized: list[int] = []
    transform = TextFeaturizer.transform

    def counted(self: TextFeaturizer, texts: list[str]) -> object:
        featurized.append(len(texts))
        return transform(self, texts)

    monkeypatch.setattr(TextFeaturizer, "transform", counted)
    labeling_round(config, str(tmp_path))
    assert featurized == []  # every item's features came from the pool store
    with Project(config, tmp_path) as project:
        assert list(project.store.rounds()["status"]) == ["completed", "completed"]
        assert "0149" in set(project.dataset.frame(ItemSet.POOL)["item_id"])
