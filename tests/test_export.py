"""The label export (``labelflow export``): what a spreadsheet opening it can and cannot be made to do."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from labelflow.contracts import LABEL_COLUMNS
from labelflow.flows.reporting import export_labels
from labelflow.integrations.store import LabelStore


@pytest.fixture()
def store(tmp_path: Path) -> Iterator[LabelStore]:
    with LabelStore(f"sqlite:///{tmp_path}/store.db", "export") as store:
        yield store


def crowd_labels(store: LabelStore, labels: dict[str, str]) -> None:
    store.add_items(pd.DataFrame({"item_id": list(labels), "item_set": "pool"}))
    round_id = store.open_round().id
    store.save_labels(
        pd.DataFrame(
            [
                {
                    "item_id": item,
                    "label": label,
                    "confidence": 0.9,
                    "method": "wawa",
                    "n_answers": 3,
                    "round_id": round_id,
                    "source": "crowd",
                }
                for item, label in labels.items()
            ],
            columns=list(LABEL_COLUMNS),
        )
    )


def test_csv_cells_a_spreadsheet_would_run_as_formulas_are_quoted(store: LabelStore, tmp_path: Path) -> None:
    crowd_labels(
        store,
        {
            '=HYPERLINK("http://evil.example","x")': "cat",
            "+1+2": "-3",
            "@SUM(A1)": "=1+1",
            "-5": "dog",
            "plain": "cat",
        },
    )
    path, _ = export_labels(store, tmp_path / "labels.csv", "csv")
    with path.open(newline="") as file:
        rows = {row["item_id"]: row for row in csv.DictReader(file)}
    assert set(rows) == {'\'=HYPERLINK("http://evil.example","x")', "'+1+2", "'@SUM(A1)", "'-5", "plain"}
    assert rows["'+1+2"]["label"] == "'-3" and rows["'@SUM(A1)"]["label"] == "'=1+1"
    assert rows["plain"]["label"] == "cat" and rows["plain"]["confidence"] == "0.9"


def test_parquet_and_jsonl_keep_values_as_they_are(store: LabelStore, tmp_path: Path) -> None:
    crowd_labels(store, {"=1+1": "@cat"})
    path, _ = export_labels(store, tmp_path / "labels.parquet", "parquet")
    assert pd.read_parquet(path)[["item_id", "label"]].values.tolist() == [["=1+1", "@cat"]]
