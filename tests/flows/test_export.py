"""The label export (``labelflow export``): what a spreadsheet opening it can and cannot be made to do."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from labelflow.contracts import LABEL_COLUMNS
from labelflow.flows.reporting import export_answers, export_labels, spreadsheet_safe
from labelflow.integrations.crowd.base import CrowdAnswer
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


def label_row(item: str, label: str, source: str, round_id: int) -> dict[str, object]:
    return {
        "item_id": item,
        "label": label,
        "confidence": 0.8,
        "method": source,
        "n_answers": 0,
        "round_id": round_id,
        "source": source,
    }


def test_a_model_label_the_latest_model_did_not_repeat_is_marked_stale(
    store: LabelStore, tmp_path: Path
) -> None:
    store.add_items(pd.DataFrame({"item_id": ["a", "b", "c"], "item_set": "pool"}))
    first = store.open_round().id
    store.finish_round(first, "completed")
    second = store.open_round().id
    rows = [label_row("a", "cat", "model", first), label_row("b", "dog", "model", second)]
    rows.append(label_row("c", "cat", "crowd", first))
    store.save_labels(pd.DataFrame(rows, columns=list(LABEL_COLUMNS)))
    path, _ = export_labels(store, tmp_path / "labels.parquet", "parquet")
    stale = pd.read_parquet(path).set_index("item_id")["stale"]
    assert stale.to_dict() == {"a": True, "b": False, "c": False}


def test_all_sets_adds_gold_and_held_out_items_and_content_is_joined(
    store: LabelStore, tmp_path: Path
) -> None:
    store.add_items(pd.DataFrame({"item_id": ["g", "h"], "item_set": ["gold", "held_out"]}))
    crowd_labels(store, {"p": "cat"})
    known = pd.Series({"g": "dog", "h": "cat"})
    content = pd.DataFrame({"item_id": ["g", "h", "p"], "payload": ["G", "H", "P"], "px0": [1.0, 2.0, 3.0]})
    path, n = export_labels(
        store, tmp_path / "labels.parquet", "parquet", known_labels=known, content=content
    )
    exported = pd.read_parquet(path).set_index("item_id")
    assert n == 3
    assert exported["set"].to_dict() == {"g": "gold", "h": "held_out", "p": "pool"}
    assert exported.loc["g", "label"] == "dog" and exported.loc["g", "source"] == "known"
    assert exported["payload"].to_dict() == {"g": "G", "h": "H", "p": "P"} and exported.loc["p", "px0"] == 3.0


def test_answers_export_has_every_answer_with_worker_time_and_round(
    store: LabelStore, tmp_path: Path
) -> None:
    crowd_labels(store, {"p": "cat"})
    round_id = int(store.rounds()["id"].iloc[-1])
    when = datetime(2026, 1, 2, 3, 4, tzinfo=UTC)
    store.add_answers(
        [
            CrowdAnswer(
                f"a{k}", "req", "p", f"w{k}", round_id, 1, False, "cat", "cat", None, when, "simulated"
            )
            for k in range(3)
        ]
    )
    path, n = export_answers(store, tmp_path / "answers.csv", "csv")
    exported = pd.read_csv(path)
    assert n == 3 and sorted(exported["worker_id"]) == ["w0", "w1", "w2"]
    assert set(exported["round"]) == {1} and exported["submitted_at"].str.startswith("2026-01-02").all()


@pytest.mark.parametrize("needs_quotes", [False, True])
def test_csv_is_byte_for_byte_what_pandas_writes(
    store: LabelStore, tmp_path: Path, needs_quotes: bool
) -> None:
    floats = [0.9723992943763733, 1.0, 1e-05, 0.1 + 0.2, float("nan"), 2.5e17, -0.0, float("inf"), 123456.75]
    ids = [f"i{k}" for k in range(len(floats) - 1)] + ['a,"b"\nc' if needs_quotes else "-1"]
    crowd_labels(store, dict.fromkeys(ids, "cat"))
    content = pd.DataFrame(
        {"item_id": ids, "score": floats, "px0": np.array(floats, dtype=np.float32), "set, of": "pool"}
    )
    csv_path, _ = export_labels(store, tmp_path / "labels.csv", "csv", content=content)
    parquet_path, _ = export_labels(store, tmp_path / "labels.parquet", "parquet", content=content)
    pandas_csv = spreadsheet_safe(pd.read_parquet(parquet_path)).to_csv(index=False, lineterminator="\n")
    assert csv_path.read_text() == pandas_csv
