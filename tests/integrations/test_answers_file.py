"""The one answers reader: every column convention, ids as text, stable answer ids, bad rows by line."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from labelflow.contracts import ANSWER_COLUMNS
from labelflow.integrations.answers_file import AnswersFileError, read_answers, read_gold

SHARED_ITEMS = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "crowd-items"


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    "header",
    ["question,worker,answer", "item_id,worker_id,label", "task,worker,label"],
)
def test_every_column_convention_reads_into_the_answer_contract(tmp_path: Path, header: str) -> None:
    path = write(tmp_path / "answers.csv", f"{header}\n007,w1,01\n007,w2,1\n8,w1,NA\n")
    read = read_answers(path)
    assert tuple(read.answers.columns) == ANSWER_COLUMNS
    # Ids and labels are text as written: no 7, no 1.0, no NaN.
    assert read.answers["item_id"].tolist() == ["007", "007", "8"]
    assert read.answers["label"].tolist() == ["01", "1", "NA"]
    assert read.lines.tolist() == [2, 3, 4]
    assert read.answers["answer_id"].is_unique


def test_answer_ids_depend_on_the_answers_not_on_the_file(tmp_path: Path) -> None:
    first = read_answers(write(tmp_path / "a.csv", "question,worker,answer\ni1,w1,x\ni2,w1,y\n"))
    reordered = read_answers(write(tmp_path / "b.csv", "item_id,worker_id,label\ni2,w1,y\ni1,w1,x\n"))
    by_item = first.answers.set_index("item_id")["answer_id"]
    assert reordered.answers.set_index("item_id")["answer_id"].to_dict() == by_item.to_dict()
    other_project = read_answers(tmp_path / "a.csv", namespace="other")
    assert set(other_project.answers["answer_id"]).isdisjoint(by_item)


def test_parquet_and_json_lines_read_like_csv(tmp_path: Path) -> None:
    csv = read_answers(write(tmp_path / "a.csv", "item_id,worker_id,label\n007,w1,cat\n8,w2,dog\n"))
    pd.DataFrame({"item_id": ["007", "8"], "worker_id": ["w1", "w2"], "label": ["cat", "dog"]}).to_parquet(
        tmp_path / "a.parquet"
    )
    lines = [
        {"item_id": "007", "worker_id": "w1", "label": "cat"},
        {"item_id": 8, "worker_id": "w2", "label": "dog"},
    ]
    write(tmp_path / "a.jsonl", "\n".join(json.dumps(line) for line in lines) + "\n")
    for other in ("a.parquet", "a.jsonl"):
        read = read_answers(tmp_path / other)
        pd.testing.assert_frame_equal(read.answers, csv.answers)
        assert read.lines.tolist() == [2, 3] if other == "a.parquet" else [1, 2]


def test_mturk_batch_results_keep_the_assignment_id(tmp_path: Path) -> None:
    path = write(
        tmp_path / "Batch_1_batch_results.csv",
        "HITId,AssignmentId,WorkerId,AssignmentStatus,Input.item_id,Input.text,Answer.label\n"
        'H1,A1,WK1,Approved,007,"a, quoted text",pos\n'
        "H1,A2,WK2,Submitted,007,more,neg\n",
    )
    read = read_answers(path)
    assert read.convention == "mturk"
    assert read.answers[["answer_id", "item_id", "worker_id", "label", "backend"]].values.tolist() == [
        ["A1", "007", "mturk:WK1", "pos", "mturk"],
        ["A2", "007", "mturk:WK2", "neg", "mturk"],
    ]


def test_mturk_columns_that_cannot_be_told_apart_are_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "batch.csv", "AssignmentId,WorkerId,Input.a,Input.b,Answer.label\nA1,W1,1,2,x\n")
    with pytest.raises(AnswersFileError, match=r"Input\.item_id.*Input\.a"):
        read_answers(path)


def test_bad_rows_are_all_reported_by_line_and_field(tmp_path: Path) -> None:
    path = write(
        tmp_path / "answers.csv",
        "question,worker,answer\n"
        "i1,w1,cat\n"
        ",w2,cat\n"  # line 3: no item
        "i1,w1,dog\n"  # line 4: w1 answered i1 on line 2
        "i9,w3,cat\n"  # line 5: unknown item
        "i2,w4,cow\n"  # line 6: unknown label
        "i2,w5\n",  # line 7: no answer
    )
    with pytest.raises(AnswersFileError) as caught:
        read_answers(path, known_items={"i1", "i2"}, known_labels={"cat", "dog"})
    error = caught.value
    assert isinstance(error, ValueError) and error.path == path
    assert [(row.line, row.field) for row in error.bad_rows] == [
        (3, "question"),
        (4, "worker"),
        (5, "question"),
        (6, "answer"),
        (7, "answer"),
    ]
    message = str(error)
    assert str(path) in message and "line 4, field 'worker'" in message and "on line 2" in message
    assert "'i9'" in message and "'cow'" in message


def test_repeats_when_allowed_get_their_own_ids(tmp_path: Path) -> None:
    path = write(tmp_path / "answers.csv", "item_id,worker_id,label\ni1,w1,cat\ni1,w1,cat\n")
    read = read_answers(path, allow_repeats=True)
    assert read.answers["answer_id"].is_unique


def test_files_in_no_known_shape_are_refused_saying_what_is_expected(tmp_path: Path) -> None:
    with pytest.raises(AnswersFileError, match=r"question,worker,answer.*it has"):
        read_answers(write(tmp_path / "answers.csv", "id,who,what\n1,2,3\n"))
    with pytest.raises(AnswersFileError, match="no such file"):
        read_answers(tmp_path / "missing.csv")
    with pytest.raises(AnswersFileError, match="unsupported file type"):
        read_answers(write(tmp_path / "answers.txt", "x"))
    with pytest.raises(AnswersFileError, match="line 3, field '\\*'"):
        read_answers(write(tmp_path / "answers.jsonl", '{"item_id": "1"}\n\n{oops\n'))


def test_gold_reads_both_conventions_and_refuses_conflicts(tmp_path: Path) -> None:
    ours = read_gold(write(tmp_path / "gold.csv", "item_id,label\n007,cat\n8,dog\n"))
    shared = read_gold(write(tmp_path / "truth.csv", "question,truth\n007,cat\n8,dog\n"))
    pd.testing.assert_series_equal(ours, shared)
    assert ours.to_dict() == {"007": "cat", "8": "dog"}
    with pytest.raises(AnswersFileError, match=r"line 3, field 'truth'.*'cat' on line 2"):
        read_gold(write(tmp_path / "bad.csv", "question,truth\n007,cat\n007,dog\n"))


def test_the_recorded_movie_review_crowd_reads_whole() -> None:
    path = SHARED_ITEMS / "sentiment_polarity" / "answers.csv"
    if not path.exists():
        pytest.skip(
            f"the shared crowd-items data are not at {SHARED_ITEMS} (they live beside the repo in ../shared)"
        )
    read = read_answers(path, known_labels={"neg", "pos"})
    assert len(read) == 27_746 and read.answers["answer_id"].is_unique
    assert read.answers["item_id"].nunique() == 4_999
