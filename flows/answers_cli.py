"""Answers you already have: ``labelflow import-answers`` stores them in a project, ``labelflow aggregate`` turns a
file of them into one label per item without any project.

Both read files through the one answers reader (``integrations/answers_file.py``), so they accept the same column
conventions and report a bad file the same way: every bad row by line and field, and nothing imported.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Final

import pandas as pd
import typer
from rich.markup import escape

from labelflow.contracts import ITEM_ID, ItemSet
from labelflow.flows.cli_common import console, load_or_exit
from labelflow.flows.config import CONFIG_FILE, LeaseConfig, QualityConfig
from labelflow.integrations.answers_file import AnswersFile, AnswersFileError, read_answers, read_gold
from labelflow.integrations.crowd.base import CrowdAnswer
from labelflow.integrations.store import LabelStore, RoundInProgressError
from labelflow.tasks.confidence import AUTO_METHOD

DEFAULT_METHOD: Final[str] = QualityConfig.model_fields["method"].default
AGGREGATE_COLUMNS: Final = (ITEM_ID, "label", "confidence", "n_answers")
IMPORT_REQUEST_PREFIX: Final = "import"


@dataclass(frozen=True)
class ImportResult:
    new: int  # answers stored by this import
    known: int  # answers of the file the store already had
    round_number: int | None  # the round the new answers were stored under (None when nothing was new)


def store_imported_answers(
    store: LabelStore, read: AnswersFile, *, gold_ids: set[str], lease: LeaseConfig, source: str
) -> ImportResult:
    """Store the file's answers the store does not have yet, all in one transaction, under a round of their
    own, finished at once.

    A round of their own keeps them out of any round's review and settlement: those decide on a round's answers
    through its crowd backend, which never saw these. Every later round aggregates them with the rest, since
    aggregation reads all the project's answers. :class:`RoundInProgressError` while a round is running.
    """
    stored = pd.concat([store.answers()["answer_id"], store.answers(parsed=False)["answer_id"]])
    new = read.answers[~read.answers["answer_id"].isin(set(stored))]
    known = len(read.answers) - len(new)
    if new.empty:
        return ImportResult(0, known, None)
    from labelflow.flows.leases import holding

    with holding(store.round_lease, lease) as busy:
        if busy is not None:
            raise RoundInProgressError(
                f"a round of {store.project!r} is running ({busy}); import after it ends"
            )
        if (store.rounds()["status"] == "running").any():
            raise RoundInProgressError(
                f"a round of {store.project!r} is waiting for answers; import after it ends, so that its review "
                "never decides on answers its crowd did not give"
            )
        round_ = store.open_round()
        now = datetime.now(UTC)
        answers = [
            CrowdAnswer(
                answer_id=str(row["answer_id"]),
                request_key=f"{IMPORT_REQUEST_PREFIX}/r{round_.number}/{row[ITEM_ID]}",
                item_id=str(row[ITEM_ID]),
                worker_id=str(row["worker_id"]),
                round_id=round_.id,
                wave=0,
                is_gold=str(row[ITEM_ID]) in gold_ids,
                raw=str(row["label"]),
                label=str(row["label"]),
                parse_error=None,
                submitted_at=now,
                backend=str(row["backend"]),
            )
            for row in new.to_dict("records")
        ]
        try:
            inserted = store.add_answers(answers)
        except Exception as error:
            store.finish_round(
                round_.id, "failed", error=f"import of {source}: {type(error).__name__}: {error}"
            )
            raise
        store.finish_round(
            round_.id,
            "completed",
            summary={"imported_answers": inserted, "source": source, "answers_bought": 0},
        )
    return ImportResult(inserted, known, round_.number)


def import_answers(
    file: Annotated[
        Path,
        typer.Argument(
            help="Answers as .csv, .parquet or .jsonl: columns item_id,worker_id,label or question,worker,answer "
            "or task,worker,label, or MTurk's batch-results CSV (WorkerId, AssignmentId, Input.*, Answer.*).",
        ),
    ],
    config: Annotated[Path, typer.Option("--config", "-c", help="The project's labelflow.toml.")] = Path(
        CONFIG_FILE
    ),
) -> None:
    """Store answers you already have in the project; every later round aggregates them with the crowd's.

    Idempotent: answers already stored are skipped, so a second import adds nothing.

    All or nothing: unknown items or labels, empty fields or repeated (item, worker) pairs refuse the file.

    Example: labelflow import-answers old_answers.csv --config labelflow.toml
    """
    from labelflow.flows.project import Project

    project_config = load_or_exit(config)
    project = Project(project_config, config.resolve().parent)
    try:
        dataset = project.dataset
        read = read_answers(
            file,
            known_items=set(dataset.items[ITEM_ID].astype(str)),
            known_labels=project.label_names,
            namespace=project_config.name,
        )
        result = store_imported_answers(
            project.store,
            read,
            gold_ids=set(dataset.frame(ItemSet.GOLD)[ITEM_ID].astype(str)),
            lease=project_config.lease,
            source=str(file),
        )
    except (AnswersFileError, RoundInProgressError) as error:
        console.print(f"[red]{escape(str(error))}[/red]\nNothing was imported.", soft_wrap=True)
        raise typer.Exit(1) from None
    finally:
        project.close()
    where = f" (stored as round {result.round_number})" if result.round_number is not None else ""
    console.print(
        f"{file}: [bold]{result.new}[/bold] new answers{where}, {result.known} already imported; "
        "the next round aggregates them."
    )


@dataclass(frozen=True)
class AggregatedFile:
    labels: pd.DataFrame  # item_id, label, confidence, n_answers
    confidence_note: str  # one line: how the confidence was calibrated, or why it was not
    method: str  # the aggregator used (the chosen one with --method auto)
    choice_note: str = ""  # with --method auto: which model was chosen, why, and every candidate's scores


def aggregate_file(
    answers: Path, gold: Path | None, method: str, *, calibrate: bool = True
) -> AggregatedFile:
    """One label per answered item of ``answers`` (gold items, if ``gold`` is given, anchor the estimate and are
    left out): ``item_id, label, confidence, n_answers``. The labels are every label in either file. With gold
    (drawn at random) and ``calibrate``, the confidence is calibrated on it, cross-fitted
    (:func:`labelflow.tasks.calibration.calibrate_from_gold`): an aggregator's raw posteriors are overconfident
    on real crowds. ``method="auto"`` picks the aggregator that best predicts held-out answers and gold
    (:func:`labelflow.tasks.aggregation.choose_aggregator`) and says why."""
    from labelflow.tasks.aggregation import aggregate_answers_frame, choose_aggregator, make_aggregator
    from labelflow.tasks.calibration import calibrate_from_gold

    frame = read_answers(answers).answers
    truth = read_gold(gold) if gold is not None else None
    names = sorted(set(frame["label"]) | (set(truth) if truth is not None else set()))
    choice_note = ""
    if method == AUTO_METHOD:
        choice = choose_aggregator(frame, truth, label_names=names)
        method = choice.method
        choice_note = f"--method auto chose {method}: {choice.reason}\n{choice.scores.round(4).to_string()}"
    labels = aggregate_answers_frame(frame, names, method=method, gold=truth)[list(AGGREGATE_COLUMNS)]
    if truth is None or not calibrate:
        why = (
            "--no-calibrate"
            if truth is not None
            else "calibrating needs --gold, known labels of random items"
        )
        return AggregatedFile(labels, f"confidence uncalibrated ({why})", method, choice_note)
    calibration = calibrate_from_gold(frame, truth, lambda: make_aggregator(method, names))
    if not calibration.calibrated:
        return AggregatedFile(labels, f"confidence uncalibrated: {calibration.reason}", method, choice_note)
    confidence = calibration.probas.max(axis=1)
    labels = labels.assign(confidence=labels[ITEM_ID].map(confidence).to_numpy())
    return AggregatedFile(
        labels,
        f"confidence calibrated on {calibration.n_gold} gold items "
        f"(their out-of-fold ECE {calibration.ece_before:.3f} before, {calibration.ece_after:.3f} after)",
        method,
        choice_note,
    )


def aggregate(
    answers: Annotated[
        Path,
        typer.Argument(
            help="Answers as .csv, .parquet or .jsonl: item_id,worker_id,label or question,worker,answer or "
            "task,worker,label, or MTurk's batch-results CSV.",
        ),
    ],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Where to write the labels (.csv, .parquet or .jsonl).")
    ],
    gold: Annotated[
        Path | None,
        typer.Option(
            help="Known labels of some items (item_id,label or question,truth): they anchor the estimate of "
            "each worker's reliability and are left out of the output."
        ),
    ] = None,
    method: Annotated[
        str,
        typer.Option(
            help="auto (choose the model that best predicts held-out answers and gold, and say why), "
            "majority_vote, wawa, dawid_skene (a project's default), one_coin_dawid_skene, full_dawid_skene or glad."
        ),
    ] = DEFAULT_METHOD,
    calibrate: Annotated[
        bool,
        typer.Option(
            help="With --gold (at least 20 answered items drawn at random), calibrate the confidence on it, so that "
            "labels at 0.9 are right about 9 times in 10."
        ),
    ] = True,
) -> None:
    """Aggregate a file of crowd answers into one label per item, with its confidence: no project needed.

    Writes item_id,label,confidence,n_answers. A bad row is reported by file, line and field.

    Example: labelflow aggregate answers.csv --gold truth.csv --method auto --output labels.csv
    """
    from labelflow.tasks.aggregation import METHODS

    if method not in (AUTO_METHOD, *METHODS):
        console.print(
            f"[red]--method must be one of {', '.join((AUTO_METHOD, *METHODS))}, not {method!r}[/red]"
        )
        raise typer.Exit(2)
    writers = {".csv": "csv", ".parquet": "parquet", ".jsonl": "jsonl"}
    kind = writers.get(output.suffix.lower())
    if kind is None:
        console.print(f"[red]--output must end in {', '.join(writers)}, not {output.name!r}[/red]")
        raise typer.Exit(2)
    try:
        aggregated = aggregate_file(answers, gold, method, calibrate=calibrate)
    except ValueError as error:  # the reader's and the aggregator's errors both name what to fix
        console.print(f"[red]{escape(str(error))}[/red]", soft_wrap=True)
        raise typer.Exit(1) from None
    labels = aggregated.labels
    output.parent.mkdir(parents=True, exist_ok=True)
    if kind == "csv":
        labels.to_csv(output, index=False)
    elif kind == "parquet":
        labels.to_parquet(output, index=False)
    else:
        labels.to_json(output, orient="records", lines=True)
    if aggregated.choice_note:
        console.print(escape(aggregated.choice_note), soft_wrap=True)
    console.print(
        f"Wrote {len(labels)} labels ({aggregated.method}) to {output}; {aggregated.confidence_note}",
        soft_wrap=True,
    )
