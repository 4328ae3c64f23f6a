from __future__ import annotations

import base64
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from labelflow.contracts import ItemSet
from labelflow.integrations.datasets import (
    ColdStart,
    DatasetConfig,
    DatasetError,
    cold_start_of,
    load_dataset,
    png_data_uri,
    read_features,
    with_owner_labels,
)

DIGITS = [str(d) for d in range(10)]


def test_digits_split_into_three_disjoint_sets_with_payloads() -> None:
    data = load_dataset(DatasetConfig(), DIGITS)
    counts = data.items["item_set"].value_counts()
    assert counts[ItemSet.GOLD.value] == 30
    assert counts[ItemSet.HELD_OUT.value] == round(0.2 * 1797)
    assert data.items["item_id"].is_unique
    assert set(data.known_labels.index) == set(data.items.loc[data.items["item_set"] != "pool", "item_id"])
    assert len(data.hidden_truth) == 1797 and set(data.hidden_truth) == set(DIGITS)
    held_out = data.known_labels[data.frame(ItemSet.HELD_OUT)["item_id"]]
    assert held_out.value_counts().min() >= 30  # stratified: every digit is measured
    assert data.items["payload"].str.startswith("data:image/png;base64,").all()
    assert len(data.feature_columns) == 64


def test_the_split_is_reproducible() -> None:
    a = load_dataset(DatasetConfig(seed=4), DIGITS).items["item_set"]
    b = load_dataset(DatasetConfig(seed=4), DIGITS).items["item_set"]
    pd.testing.assert_series_equal(a, b)


def test_png_payload_is_a_real_png() -> None:
    raw = base64.b64decode(png_data_uri(np.arange(64).reshape(8, 8)).split(",", 1)[1])
    assert raw.startswith(b"\x89PNG\r\n\x1a\n") and b"IHDR" in raw and raw.endswith(b"IEND\xaeB`\x82")


def write_csv(tmp_path: Path, rows: int = 60, labeled: int = 40) -> Path:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {"id": [f"r{k}" for k in range(rows)], "a": rng.normal(size=rows), "b": rng.normal(size=rows)}
    )
    frame["label"] = [("cat", "dog")[k % 2] if k < labeled else None for k in range(rows)]
    path = tmp_path / "items.csv"
    frame.to_csv(path, index=False)
    return path


def test_a_users_csv_with_some_labels(tmp_path: Path) -> None:
    path = write_csv(tmp_path)
    config = DatasetConfig(source=path.name, id_column="id", n_gold=6, held_out_fraction=0.2)
    data = load_dataset(config, ["cat", "dog"], tmp_path)
    assert data.feature_columns == ["a", "b"]
    counts = data.items["item_set"].value_counts()
    assert (
        counts["gold"] == 6 and counts["held_out"] == 8 and counts["pool"] == 46
    )  # held-out: 0.2 of 40 labeled
    assert (
        data.items.loc[data.items["item_set"] != "pool", "item_id"].isin([f"r{k}" for k in range(40)]).all()
    )


def test_held_out_fraction_counts_the_labeled_rows_not_all_items(tmp_path: Path) -> None:
    path = write_csv(tmp_path, rows=2000, labeled=300)
    config = DatasetConfig(source=path.name, id_column="id", n_gold=30, held_out_fraction=0.2)
    counts = load_dataset(config, ["cat", "dog"], tmp_path).items["item_set"].value_counts()
    assert counts["held_out"] == 60 and counts["gold"] == 30 and counts["pool"] == 2000 - 90


def test_a_float32_parquet_pool_is_read_column_by_column_into_one_float32_array(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    rows = 50
    frame = pd.DataFrame({"id": [f"r{k}" for k in range(rows)], "n": np.arange(rows)})
    for c in range(5):
        frame[f"f{c}"] = rng.normal(size=rows).astype(np.float32)
    frame["label"] = [("cat", "dog")[k % 2] for k in range(rows)]
    path = tmp_path / "items.parquet"
    frame.to_parquet(path, row_group_size=20)  # three row groups, read two columns at a time below
    columns = [f"f{c}" for c in range(5)]

    features = read_features(path, columns, values_per_read=40)
    assert features.dtype == np.float32 and features.flags.f_contiguous
    np.testing.assert_array_equal(features, frame[columns].to_numpy())
    data = load_dataset(DatasetConfig(source=path.name, id_column="id", n_gold=4), ["cat", "dog"], tmp_path)
    assert data.feature_columns == ["n", *columns]
    assert (data.items[columns].dtypes == np.float32).all() and data.items["n"].dtype == np.float64
    by_id = data.items.set_index("item_id").loc[frame["id"], columns].to_numpy()
    np.testing.assert_array_equal(by_id, frame[columns].to_numpy())


def test_a_label_outside_the_names_is_reported_with_its_row(tmp_path: Path) -> None:
    path = write_csv(tmp_path)
    with pytest.raises(DatasetError, match=r"row 1 .*'dog'"):
        load_dataset(DatasetConfig(source=path.name, id_column="id", n_gold=2), ["cat", "bird"], tmp_path)


def test_a_non_numeric_feature_is_reported_with_file_row_and_column(tmp_path: Path) -> None:
    path = write_csv(tmp_path)
    frame = pd.read_csv(path)
    frame["a"] = frame["a"].astype(object)
    frame.loc[5, "a"] = "oops"
    frame.to_csv(path, index=False)
    config = DatasetConfig(source=path.name, id_column="id", feature_columns=("a", "b"), n_gold=2)
    with pytest.raises(DatasetError, match=r"items.csv: row 5, column 'a': 'oops' is not a number"):
        load_dataset(config, ["cat", "dog"], tmp_path)


def test_missing_file_and_missing_id_column_say_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="no such file"):
        load_dataset(DatasetConfig(source="nope.csv"), ["cat"], tmp_path)
    path = write_csv(tmp_path)
    with pytest.raises(DatasetError, match="no id column 'item_id'"):
        load_dataset(DatasetConfig(source=path.name, n_gold=2), ["cat", "dog"], tmp_path)


def test_too_few_labeled_rows_start_cold_with_an_absolute_held_out_size(tmp_path: Path) -> None:
    path = write_csv(tmp_path, labeled=5)
    by_share = DatasetConfig(source=path.name, id_column="id", n_gold=10)
    data = load_dataset(by_share, ["cat", "dog"], tmp_path)
    assert (
        (data.items["item_set"] == "pool").all() and data.known_labels.empty and len(data.hidden_truth) == 5
    )
    with pytest.raises(
        DatasetError, match=r"5 labeled row\(s\).*Set dataset.n_held_out.*labelflow bootstrap"
    ):
        cold_start_of(by_share, data)  # a share of 5 labeled rows cannot size a held-out set
    counted = by_share.model_copy(update={"n_held_out": 20})
    assert cold_start_of(counted, load_dataset(counted, ["cat", "dog"], tmp_path)) == ColdStart(10, 20, 5)
    enough = DatasetConfig(source=path.name, id_column="id", n_gold=2, n_held_out=3)
    data = load_dataset(enough, ["cat", "dog"], tmp_path)
    assert data.items["item_set"].value_counts().to_dict() == {"pool": 55, "held_out": 3, "gold": 2}
    assert cold_start_of(enough, data) is None


def test_a_file_without_labels_starts_cold_and_takes_the_owners_labels(tmp_path: Path) -> None:
    path = write_csv(tmp_path)
    pd.read_csv(path).drop(columns="label").to_csv(path, index=False)
    with pytest.raises(DatasetError, match=r"no column 'label'.*n_held_out"):
        load_dataset(DatasetConfig(source=path.name, id_column="id"), ["cat", "dog"], tmp_path)
    config = DatasetConfig(source=path.name, id_column="id", n_gold=3, n_held_out=4)
    data = load_dataset(config, ["cat", "dog"], tmp_path)
    assert cold_start_of(config, data) == ColdStart(3, 4, 0)
    drawn = pd.DataFrame(
        {
            "item_id": ["r1", "r2", "r3"],
            "item_set": ["gold", "held_out", "gold"],
            "known_label": ["cat", None, "dog"],
        }
    )
    started = with_owner_labels(data, drawn)
    assert started.items.set_index("item_id").loc[["r1", "r2", "r3", "r4"], "item_set"].tolist() == [
        "gold",
        "held_out",
        "gold",
        "pool",
    ]
    assert started.known_labels.to_dict() == {"r1": "cat", "r3": "dog"} == started.hidden_truth.to_dict()


def test_known_labels_from_a_separate_answers_file(tmp_path: Path) -> None:
    path = write_csv(tmp_path, labeled=0)
    pd.DataFrame({"item_id": [f"r{k}" for k in range(30)], "label": ["cat", "dog"] * 15}).to_csv(
        tmp_path / "answers.csv", index=False
    )
    config = DatasetConfig(source=path.name, id_column="id", answers_file="answers.csv", n_gold=4)
    data = load_dataset(config, ["cat", "dog"], tmp_path)
    assert len(data.known_labels) == 4 + 6  # gold, and held-out: 0.2 of the 30 labeled


SENTENCES = [
    ("007", "a warm , funny and moving film", "pos"),
    ("008", "dull , overlong and badly acted", "neg"),
    ("010", "the best thriller of the year", "pos"),
    ("011", "a tedious mess with no story", "neg"),
    ("012", "charming performances all around", "pos"),
    ("013", "i wanted my money back", "neg"),
]


def write_text(
    folder: Path, suffix: str, rows: list[tuple[str, str, str]] = SENTENCES, name: str = "texts"
) -> Path:
    frame = pd.DataFrame(rows, columns=["item_id", "text", "label"])
    path = folder / f"{name}{suffix}"
    if suffix == ".csv":
        frame.to_csv(path, index=False)
    elif suffix == ".jsonl":
        frame.to_json(path, orient="records", lines=True)
    else:
        frame.to_parquet(path)
    return path


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_every_reader_reads_ids_as_text_and_infers_a_text_dataset(tmp_path: Path, suffix: str) -> None:
    path = write_text(tmp_path, suffix)
    data = load_dataset(
        DatasetConfig(source=path.name, n_gold=2, held_out_fraction=0.3), ["neg", "pos"], tmp_path
    )
    assert data.kind == "text" and data.feature_columns == []
    assert data.items["item_id"].tolist() == ["007", "008", "010", "011", "012", "013"]
    assert data.items.set_index("item_id").loc["007", "payload"] == "a warm , funny and moving film"
    assert data.hidden_truth["007"] == "pos"


def test_numeric_ids_of_a_table_stay_text(tmp_path: Path) -> None:
    frame = pd.DataFrame({"id": ["007", "08", "9"] * 10, "x": np.arange(30.0), "label": ["a", "b", "c"] * 10})
    frame["id"] = [f"{k:03d}" for k in range(30)]
    frame.to_csv(tmp_path / "t.csv", index=False)
    data = load_dataset(DatasetConfig(source="t.csv", id_column="id", n_gold=3), ["a", "b", "c"], tmp_path)
    assert data.kind == "table" and data.feature_columns == ["x"]
    assert sorted(data.items["item_id"])[:2] == ["000", "001"]


def test_payload_column_is_an_alias_of_text_column_or_refused(tmp_path: Path) -> None:
    path = write_text(tmp_path, ".csv")
    data = load_dataset(
        DatasetConfig(source=path.name, kind="text", payload_column="text", n_gold=2, held_out_fraction=0.3),
        ["neg", "pos"],
        tmp_path,
    )
    assert data.items["payload"].str.len().gt(0).all()
    with pytest.raises(
        ValueError, match="payload_column is an old name of text_column; set text_column only"
    ):
        DatasetConfig(source=path.name, text_column="text", payload_column="other")


def test_a_missing_or_empty_text_is_named_with_file_row_and_column(tmp_path: Path) -> None:
    path = write_text(tmp_path, ".csv")
    with pytest.raises(DatasetError, match=r"texts.csv: no text column 'review'.*set dataset.text_column"):
        load_dataset(
            DatasetConfig(source=path.name, text_column="review", n_gold=2), ["neg", "pos"], tmp_path
        )
    rows = [*SENTENCES[:3], ("011", "   ", "neg"), *SENTENCES[4:]]
    path = write_text(tmp_path, ".csv", rows)
    with pytest.raises(
        DatasetError, match=r"texts.csv: row 3 \(item '011'\), column 'text': the text is empty"
    ):
        load_dataset(DatasetConfig(source=path.name, text_column="text", n_gold=2), ["neg", "pos"], tmp_path)


def test_held_out_source_and_gold_source(tmp_path: Path) -> None:
    pool = [(item, text, "") for item, text, _ in SENTENCES]
    write_text(tmp_path, ".csv", pool, name="pool")
    write_text(tmp_path, ".jsonl", [("h1", "great fun", "pos"), ("h2", "awful", "neg")], name="test")
    pd.DataFrame({"item_id": ["007", "008"], "label": ["pos", "neg"]}).to_csv(
        tmp_path / "gold.csv", index=False
    )
    config = DatasetConfig(
        source="pool.csv", kind="text", held_out_source="test.jsonl", gold_source="gold.csv", n_gold=30
    )
    data = load_dataset(config, ["neg", "pos"], tmp_path)
    sets = data.items.set_index("item_id")["item_set"]
    assert sets[["h1", "h2"]].eq("held_out").all() and sets[["007", "008"]].eq("gold").all()
    assert (sets == "pool").sum() == 4
    assert data.known_labels.to_dict() == {"007": "pos", "008": "neg", "h1": "pos", "h2": "neg"}
    pd.DataFrame({"item_id": ["nope"], "label": ["pos"]}).to_csv(tmp_path / "gold.csv", index=False)
    with pytest.raises(DatasetError, match=r"gold.csv: 1 gold item\(s\) not in pool.csv, e.g. \['nope'\]"):
        load_dataset(config, ["neg", "pos"], tmp_path)


def test_a_held_out_source_row_without_its_label_is_named(tmp_path: Path) -> None:
    write_text(tmp_path, ".csv")
    write_text(tmp_path, ".csv", [("h1", "great fun", "pos"), ("h2", "awful", "")], name="test")
    config = DatasetConfig(source="texts.csv", held_out_source="test.csv", n_gold=2)
    with pytest.raises(
        DatasetError, match=r"test.csv: row 1 \(item 'h2'\) has no 'label'; every held-out item"
    ):
        load_dataset(config, ["neg", "pos"], tmp_path)
    with pytest.raises(ValueError, match="feature_columns is for tables"):
        DatasetConfig(source="texts.csv", kind="text", feature_columns=("x",))
