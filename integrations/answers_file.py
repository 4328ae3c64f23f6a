"""Answers people already have: one reader for answer and gold files, whatever tool wrote them.

An answers file has one row per answer, in any of these column conventions (ids and labels are read as text,
always: ``007`` stays ``007``):

- ``item_id,worker_id,label`` (ours), ``question,worker,answer`` (the shared crowd datasets) or crowd-kit's
  ``task,worker,label``;
- Mechanical Turk's batch-results CSV: ``WorkerId``, ``AssignmentId``, the item's id in an ``Input.*`` column
  (``Input.item_id``, or the only ``Input.*`` column) and the answer in an ``Answer.*`` column (``Answer.label``,
  or the only ``Answer.*`` column).

Files may be CSV, Parquet or JSON Lines. The reader returns the answer contract
(:data:`labelflow.contracts.ANSWER_COLUMNS`) or raises one :class:`AnswersFileError` naming every bad row by line
and field, so a caller imports all of a file or nothing. Answer ids are derived from what an answer says (item,
worker, label, and how many earlier answers the worker gave the item in the file), never from the file's name or
row position, so importing the same answers again — from a renamed or re-sorted file — gives the same ids; an
MTurk answer keeps its ``AssignmentId`` and its worker becomes ``mturk:<WorkerId>``, as the MTurk backend stores
them.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from labelflow.contracts import ANSWER_COLUMNS, ITEM_ID
from labelflow.integrations.crowd.mturk.calls import worker_id as mturk_worker_id

# (item, worker, label) column names of each plain convention, keyed by the convention's name.
ANSWER_CONVENTIONS: Final[dict[str, tuple[str, str, str]]] = {
    "labelflow": ("item_id", "worker_id", "label"),
    "shared": ("question", "worker", "answer"),
    "crowd-kit": ("task", "worker", "label"),
}
# (item, label) column names of the gold / truth conventions.
GOLD_CONVENTIONS: Final[dict[str, tuple[str, str]]] = {
    "labelflow": ("item_id", "label"),
    "shared": ("question", "truth"),
    "crowd-kit": ("task", "true_label"),
}
MTURK: Final = "mturk"
MTURK_WORKER: Final = "WorkerId"
MTURK_ASSIGNMENT: Final = "AssignmentId"
MTURK_INPUT: Final = "Input."
MTURK_ANSWER: Final = "Answer."
SUFFIXES: Final = (".csv", ".parquet", ".pq", ".jsonl")
# How many bad rows an error message lists; the exception keeps them all.
_SHOW: Final = 10


@dataclass(frozen=True)
class BadRow:
    """One problem in one row: ``line`` is the file's line (the header is line 1; a Parquet file's rows are
    numbered the same way), ``field`` the column as the file spells it."""

    line: int
    field: str
    problem: str


class AnswersFileError(ValueError):
    """An answers or gold file cannot be used as it is; the message names the file, and each bad row's line and
    field. Nothing of the file has been imported."""

    def __init__(self, path: Path, reason: str = "", bad_rows: Sequence[BadRow] = ()) -> None:
        self.path = path
        self.bad_rows = list(bad_rows)
        listed = [f"  line {row.line}, field {row.field!r}: {row.problem}" for row in self.bad_rows[:_SHOW]]
        if len(self.bad_rows) > _SHOW:
            listed.append(f"  ... and {len(self.bad_rows) - _SHOW} more bad row(s)")
        headline = reason or f"{len(self.bad_rows)} bad row(s)"
        super().__init__("\n".join([f"{path}: {headline}", *listed]))


@dataclass(frozen=True)
class AnswersFile:
    """A file's answers in the answer contract, and the file line each answer came from (same order)."""

    path: Path
    convention: str
    answers: pd.DataFrame
    lines: np.ndarray

    def __len__(self) -> int:
        return len(self.answers)


@dataclass(frozen=True)
class _Table:
    columns: list[str]
    values: dict[str, list[str | None]]  # None: the cell is missing (a null, or a short CSV row)
    lines: list[int]


def answer_id(namespace: str, item_id: str, worker_id: str, label: str, occurrence: int) -> str:
    """The id of the ``occurrence``-th answer (from 0) ``worker_id`` gave ``item_id``, the same in every process
    and file; ``namespace`` (a project name, say) keeps two users of one store apart."""
    parts = "\x1f".join([namespace, item_id, worker_id, label, str(occurrence)])
    return "ans-" + hashlib.blake2b(parts.encode(), digest_size=12).hexdigest()


def read_answers(
    path: Path,
    *,
    known_items: Collection[str] | None = None,
    known_labels: Collection[str] | None = None,
    allow_repeats: bool = False,
    namespace: str = "",
    backend: str = "import",
) -> AnswersFile:
    """Read an answers file (see the module's docstring for the conventions) into the answer contract.

    Parameters
    ----------
    path
        A ``.csv``, ``.parquet`` or ``.jsonl`` file.
    known_items, known_labels
        When given, an answer naming another item or label is a bad row.
    allow_repeats
        Whether one worker may answer one item more than once; when not, every repeat is a bad row.
    namespace
        Mixed into the answer ids (see :func:`answer_id`).
    backend
        The answers' ``backend`` column; an MTurk batch-results file always says ``mturk``.

    Returns
    -------
    AnswersFile
        ``answers`` has ``ANSWER_COLUMNS``: ``is_gold`` False, ``wave`` 0, ``round_id`` and ``submitted_at``
        missing (the caller knows them), in the file's order.

    Raises
    ------
    AnswersFileError
        The file is missing, unreadable or in no known convention, or has bad rows (all of them are listed).
    """
    table = _read_table(path)
    convention, item_column, worker_column, label_column = _answer_columns(path, table.columns)
    items, workers, labels = (table.values[c] for c in (item_column, worker_column, label_column))
    assignments = table.values[MTURK_ASSIGNMENT] if convention == MTURK else None
    required = [item_column, worker_column, label_column] + (
        [MTURK_ASSIGNMENT] if assignments is not None else []
    )
    bad = _empty_cells(table, required)
    blank = {(row.line, row.field) for row in bad}
    labels_known = set(known_labels) if known_labels is not None else None
    items_known = set(known_items) if known_items is not None else None
    first_line: dict[tuple[str, str], int] = {}
    repeats: dict[tuple[str, str], int] = {}
    first_assignment: dict[str, int] = {}
    ids: list[str] = []
    for position, line in enumerate(table.lines):
        item, worker, label = items[position] or "", workers[position] or "", labels[position] or ""
        if items_known is not None and (line, item_column) not in blank and item not in items_known:
            bad.append(BadRow(line, item_column, f"item {item!r} is not one of the project's items"))
        if labels_known is not None and (line, label_column) not in blank and label not in labels_known:
            bad.append(BadRow(line, label_column, f"label {label!r} is not one of {sorted(labels_known)}"))
        pair = (item, worker)
        occurrence = repeats[pair] = repeats.get(pair, -1) + 1
        if occurrence and not allow_repeats and item and worker:
            bad.append(
                BadRow(
                    line,
                    worker_column,
                    f"worker {worker!r} already answered item {item!r} on line {first_line[pair]}",
                )
            )
        first_line.setdefault(pair, line)
        if assignments is None:
            ids.append(answer_id(namespace, item, worker, label, occurrence))
            continue
        assignment = assignments[position] or ""
        if assignment in first_assignment:
            bad.append(
                BadRow(
                    line,
                    MTURK_ASSIGNMENT,
                    f"assignment {assignment!r} is already on line {first_assignment[assignment]}",
                )
            )
        elif assignment:
            first_assignment[assignment] = line
        ids.append(assignment)
    if bad:
        raise AnswersFileError(path, bad_rows=sorted(bad, key=lambda row: row.line))
    return AnswersFile(
        path=path,
        convention=convention,
        answers=pd.DataFrame(
            {
                "answer_id": ids,
                ITEM_ID: items,
                "worker_id": [mturk_worker_id(w or "") for w in workers] if convention == MTURK else workers,
                "label": labels,
                "is_gold": False,
                "wave": 0,
                "round_id": None,
                "submitted_at": pd.NaT,
                "backend": MTURK if convention == MTURK else backend,
            },
            columns=list(ANSWER_COLUMNS),
        ),
        lines=np.asarray(table.lines, dtype=np.int64),
    )


def read_gold(path: Path) -> pd.Series:
    """Read a gold / truth file (``item_id,label``, ``question,truth`` or crowd-kit's ``task,true_label``; CSV,
    Parquet or JSON Lines) as a Series ``item_id -> label`` of strings.

    Raises
    ------
    AnswersFileError
        The file is missing, unreadable or in no known convention, or a row has an empty field or gives an item
        a second, different label (every such row is listed).
    """
    table = _read_table(path)
    found = [columns for columns in GOLD_CONVENTIONS.values() if all(c in table.columns for c in columns)]
    if not found:
        expected = " | ".join(",".join(columns) for columns in GOLD_CONVENTIONS.values())
        raise AnswersFileError(path, f"no known gold columns: expected {expected}; it has {table.columns}")
    item_column, label_column = found[0]
    bad = _empty_cells(table, [item_column, label_column])
    gold: dict[str, tuple[str, int]] = {}
    for item, label, line in zip(
        table.values[item_column], table.values[label_column], table.lines, strict=True
    ):
        if not item or not label:
            continue
        previous = gold.setdefault(item, (label, line))
        if previous[0] != label:
            bad.append(
                BadRow(
                    line,
                    label_column,
                    f"item {item!r} is {previous[0]!r} on line {previous[1]}, here {label!r}",
                )
            )
    if bad:
        raise AnswersFileError(path, bad_rows=sorted(bad, key=lambda row: row.line))
    return pd.Series(
        [label for label, _ in gold.values()],
        index=pd.Index(list(gold), name=ITEM_ID),
        name="label",
        dtype=object,
    )


def _answer_columns(path: Path, columns: list[str]) -> tuple[str, str, str, str]:
    """The file's convention and its (item, worker, label) columns."""
    for name, (item, worker, label) in ANSWER_CONVENTIONS.items():
        if {item, worker, label} <= set(columns):
            return name, item, worker, label
    if MTURK_WORKER in columns:
        if MTURK_ASSIGNMENT not in columns:
            raise AnswersFileError(path, f"an MTurk batch-results file needs an {MTURK_ASSIGNMENT} column")
        item = _mturk_column(path, columns, MTURK_INPUT, "item_id", "the item's id")
        label = _mturk_column(path, columns, MTURK_ANSWER, "label", "the answer")
        return MTURK, item, MTURK_WORKER, label
    expected = " | ".join(",".join(columns) for columns in ANSWER_CONVENTIONS.values())
    raise AnswersFileError(
        path,
        f"no known answer columns: expected {expected}, or MTurk's batch results ({MTURK_WORKER}, "
        f"{MTURK_ASSIGNMENT}, {MTURK_INPUT}*, {MTURK_ANSWER}*); it has {columns}",
    )


def _mturk_column(path: Path, columns: list[str], prefix: str, preferred: str, what: str) -> str:
    candidates = [c for c in columns if c.startswith(prefix)]
    if prefix + preferred in candidates:
        return prefix + preferred
    if len(candidates) == 1:
        return candidates[0]
    raise AnswersFileError(
        path,
        f"cannot tell which column holds {what}: name it {prefix}{preferred}, or keep a single {prefix}* "
        f"column; it has {candidates or 'none'}",
    )


def _empty_cells(table: _Table, columns: Sequence[str]) -> list[BadRow]:
    return [
        BadRow(line, column, "empty")
        for column in columns
        for value, line in zip(table.values[column], table.lines, strict=True)
        if not value
    ]


def _read_table(path: Path) -> _Table:
    """Every cell as stripped text (None where there is none), with each row's line in the file."""
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise AnswersFileError(path, f"unsupported file type {suffix!r}; use one of {', '.join(SUFFIXES)}")
    if not path.is_file():
        raise AnswersFileError(path, "no such file")
    try:
        if suffix == ".csv":
            return _read_csv(path)
        if suffix == ".jsonl":
            return _read_jsonl(path)
        return _read_parquet(path)
    except (OSError, UnicodeDecodeError, csv.Error, pa.ArrowException) as error:
        raise AnswersFileError(path, f"cannot be read as {suffix[1:]}: {error}") from None


def _read_csv(path: Path) -> _Table:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        header = [name.strip() for name in next(reader, [])]
        if not header:
            raise AnswersFileError(path, "the file is empty; its first line must name the columns")
        values: dict[str, list[str | None]] = {name: [] for name in header}
        lines: list[int] = []
        too_long: list[BadRow] = []
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue
            if len(row) > len(header):
                too_long.append(
                    BadRow(reader.line_num, header[-1], f"{len(row)} fields, the header has {len(header)}")
                )
            lines.append(reader.line_num)
            for position, name in enumerate(header):
                values[name].append(row[position].strip() if position < len(row) else None)
    if too_long:
        raise AnswersFileError(path, bad_rows=too_long)
    return _Table(header, values, lines)


def _read_jsonl(path: Path) -> _Table:
    records: list[tuple[int, dict[str, object]]] = []
    bad: list[BadRow] = []
    with path.open(encoding="utf-8-sig") as handle:
        for number, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            try:
                record = json.loads(text)
            except json.JSONDecodeError as error:
                bad.append(BadRow(number, "*", f"not JSON: {error.msg}"))
                continue
            if not isinstance(record, dict):
                bad.append(BadRow(number, "*", "not a JSON object"))
                continue
            records.append((number, record))
    if bad:
        raise AnswersFileError(path, bad_rows=bad)
    columns = list(dict.fromkeys(name for _, record in records for name in record))
    return _Table(
        columns,
        {name: [_json_text(record.get(name)) for _, record in records] for name in columns},
        [number for number, _ in records],
    )


def _json_text(value: object) -> str | None:
    if value is None:
        return None
    return value.strip() if isinstance(value, str) else json.dumps(value)


def _read_parquet(path: Path) -> _Table:
    table = pq.read_table(path)
    values: dict[str, list[str | None]] = {}
    for name in table.column_names:
        cells = pc.utf8_trim_whitespace(pc.cast(table.column(name), pa.string())).to_pylist()
        values[name] = [None if cell is None else str(cell) for cell in cells]
    # Numbered as a CSV of the same rows would be (header on line 1), so one message reads the same for both.
    return _Table(list(table.column_names), values, list(range(2, table.num_rows + 2)))
