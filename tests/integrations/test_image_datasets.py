"""Image datasets: a folder of photos (a sub-folder per label), or a file with a column of image paths or URLs;
bad input refused naming the file, row, item and column."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from labelflow.integrations.datasets import DatasetConfig, DatasetError, load_dataset

Photos = Callable[..., list[tuple[str, str]]]


def config(**fields: object) -> DatasetConfig:
    return DatasetConfig(n_gold=4, held_out_fraction=0.25, **fields)  # type: ignore[arg-type]


def test_a_folder_of_photos_is_an_image_dataset_labeled_by_its_sub_folders(
    tmp_path: Path, photos: Photos
) -> None:
    written = photos(20)
    (tmp_path / "photos" / "unlabeled.png").write_bytes((tmp_path / "photos" / written[0][0]).read_bytes())
    dataset = load_dataset(config(source="photos"), [], tmp_path)
    assert dataset.kind == "image" and dataset.label_names == ["cool", "warm"]
    items = dataset.items.set_index("item_id")
    assert items.loc["warm/0000", "payload"] == str((tmp_path / "photos" / "warm" / "0000.png").resolve())
    assert items.loc["unlabeled", "item_set"] == "pool" and "unlabeled" not in dataset.hidden_truth
    assert dataset.hidden_truth["cool/0001"] == "cool"
    assert dataset.feature_columns == []


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".jsonl"])
def test_a_file_of_relative_image_paths_is_inferred_as_images(
    tmp_path: Path, photos: Photos, suffix: str
) -> None:
    written = photos(12)
    frame = pd.DataFrame(
        {
            "item_id": [f"{k:03d}" for k in range(12)],
            "image_path": [w[0] for w in written],
            "label": [w[1] for w in written],
        }
    )
    path = tmp_path / "photos" / f"items{suffix}"
    {
        ".csv": frame.to_csv,
        ".parquet": frame.to_parquet,
        ".jsonl": lambda p, **_: frame.to_json(p, orient="records", lines=True),
    }[suffix](path, index=False)
    dataset = load_dataset(config(source=f"photos/items{suffix}"), [], tmp_path)
    assert dataset.kind == "image"
    assert dataset.items["item_id"].iloc[0] == "000"
    assert Path(dataset.items["payload"].iloc[0]) == (tmp_path / "photos" / written[0][0]).resolve()


def test_urls_are_kept_and_payload_column_is_an_alias_of_image_column(tmp_path: Path) -> None:
    pd.DataFrame(
        {
            "item_id": ["a", "b", "c", "d"],
            "img": [f"https://example.org/{k}.jpg" for k in "abcd"],
            "label": list("xyxy"),
        }
    ).to_csv(tmp_path / "items.csv", index=False)
    dataset = load_dataset(
        DatasetConfig(
            source="items.csv", kind="image", payload_column="img", n_gold=0, held_out_fraction=0.5
        ),
        [],
        tmp_path,
    )
    assert dataset.items["payload"].tolist() == [f"https://example.org/{k}.jpg" for k in "abcd"]
    with pytest.raises(ValueError, match="payload_column is an old name of image_column"):
        DatasetConfig(image_column="img", payload_column="other")


def write_items(tmp_path: Path, images: list[str]) -> None:
    pd.DataFrame(
        {
            "item_id": [f"i{k}" for k in range(len(images))],
            "image": images,
            "label": ["x", "y"] * (len(images) // 2),
        }
    ).to_csv(tmp_path / "items.csv", index=False)


def test_a_missing_image_is_refused_naming_the_file_row_item_and_column(
    tmp_path: Path, photos: Photos
) -> None:
    written = photos(4, folder=tmp_path)
    write_items(tmp_path, [w[0] for w in written[:3]] + ["warm/gone.jpg"])
    with pytest.raises(
        DatasetError, match=r"items.csv: row 3 \(item 'i3'\), column 'image': .*gone.jpg does not exist"
    ):
        load_dataset(config(source="items.csv", image_column="image"), [], tmp_path)


def test_a_file_that_is_not_an_image_is_refused(tmp_path: Path, photos: Photos) -> None:
    written = photos(4, folder=tmp_path)
    (tmp_path / "notes.jpg").write_text("not a photo")
    write_items(tmp_path, [w[0] for w in written[:3]] + ["notes.jpg"])
    with pytest.raises(
        DatasetError, match=r"row 3 \(item 'i3'\), column 'image': .*notes.jpg is not an image"
    ):
        load_dataset(config(source="items.csv"), [], tmp_path)


def test_an_empty_image_column_is_refused(tmp_path: Path, photos: Photos) -> None:
    written = photos(4, folder=tmp_path)
    write_items(tmp_path, [w[0] for w in written[:3]] + [""])
    with pytest.raises(DatasetError, match=r"row 3 \(item 'i3'\), column 'image': the image is empty"):
        load_dataset(config(source="items.csv", kind="image"), [], tmp_path)


def test_an_empty_folder_says_what_it_expects(tmp_path: Path) -> None:
    (tmp_path / "photos").mkdir()
    with pytest.raises(DatasetError, match="no images"):
        load_dataset(config(source="photos"), [], tmp_path)


def test_a_table_whose_payload_links_images_stays_a_table(tmp_path: Path) -> None:
    pd.DataFrame(
        {
            "item_id": ["a", "b", "c", "d"],
            "x": [0.1, 0.2, 0.3, 0.4],
            "picture": [f"https://example.org/{k}.png" for k in "abcd"],
            "label": list("xyxy"),
        }
    ).to_csv(tmp_path / "items.csv", index=False)
    dataset = load_dataset(
        DatasetConfig(source="items.csv", payload_column="picture", n_gold=0, held_out_fraction=0.5),
        [],
        tmp_path,
    )
    assert dataset.kind == "table" and dataset.feature_columns == ["x"]
