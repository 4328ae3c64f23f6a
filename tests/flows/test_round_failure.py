"""A round that cannot go on fails cleanly, and items the crowd can never answer are never asked.

The repro of the issue: a file whose labels are not the project's (``cat`` in a digits project) arrives through
the inbox, and the simulated crowd, which answers from the hidden truth, can never answer its items.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from labelflow.contracts import ItemSet
from labelflow.flows.config import ProjectConfig, parse_config
from labelflow.flows.project import Project
from labelflow.flows.round_frames import UnanswerableItemsError
from labelflow.integrations.crowd.base import Handle, LabelRequest
from labelflow.integrations.datasets import digits_table
from labelflow.integrations.inbox import checksum

pytestmark = [pytest.mark.flow, pytest.mark.usefixtures("prefect_harness")]

CATS = [f"d{k:04d}" for k in range(200, 260)]


def project_with_cats(folder: Path, store_url: str | None = None) -> ProjectConfig:
    """A digits project whose inbox brought 60 items labeled ``cat`` (its store a SQLite file in ``folder`` unless
    ``store_url`` is given)."""
    digits_table(0, 200).to_csv(folder / "base.csv", index=False)
    config = parse_config(
        {
            "name": "failure-test",
            "store_url": store_url or f"sqlite:///{folder / 'store.db'}",
            "workdir": str(folder / "work"),
            "dataset": {"source": "base.csv", "id_column": "id", "n_gold": 10},
            "inbox": {"url": "inbox", "round_after_items": 50},
            "selection": {"batch_size": 20, "seed_size": 20},
            "crowd": {"gold_per_round": 5},
            "training": {"self_training_max_iter": 2},
            "budget": {"max_rounds": 3, "max_spend": 100.0, "target_accuracy": 1.0},
        }
    )
    (folder / "inbox").mkdir()
    content = digits_table(200, 260).assign(label="cat").to_csv(index=False).encode()
    (folder / "inbox" / "cats.csv").write_bytes(content)
    with Project(config, folder) as project:
        # ingest now quarantines such a file (tests/flows/test_ingest.py); a store made before that holds it as
        # processed, as ingest recorded it then
        location = project.inbox.plan("cats.csv", "processed")
        project.inbox.move("cats.csv", location)
        project.store.record_ingestion(
            checksum=checksum(content),
            filename="cats.csv",
            stored_at=location,
            status="processed",
            n_rows=len(CATS),
            n_added=len(CATS),
        )
    with Project(config, folder) as project:
        assert set(CATS) <= set(project.dataset.frame(ItemSet.POOL)["item_id"])
    return config


def test_items_labeled_outside_the_labels_are_left_out_of_selection(tmp_path: Path) -> None:
    from labelflow.flows.labeling_round import labeling_round

    config = project_with_cats(tmp_path)

    report = labeling_round(config, str(tmp_path))

    assert report is not None and report.number == 1
    with Project(config, tmp_path) as project:
        store = project.store
        assert store.rounds()["status"].tolist() == ["completed"]
        asked = set(store.requests(int(store.rounds()["id"].iloc[0]))["item_id"])
        assert len(asked) > 5 and not asked & set(CATS)


def test_a_poisoned_round_fails_cleanly_and_the_next_run_starts_a_new_one(
    tmp_path: Path, store_url: str
) -> None:
    """A round sent out before the fix asked about a ``cat`` item: its rerun closes it instead of crashing (on
    SQLite and on PostgreSQL: it cancels requests and fails a round)."""
    from labelflow.flows.labeling_round import labeling_round

    config = project_with_cats(tmp_path, store_url)
    with Project(config, tmp_path) as project:
        store, crowd = project.store, project.crowd()
        store.add_items(
            project.dataset.items[["item_id", "item_set"]].assign(
                known_label=project.dataset.items["item_id"].map(project.dataset.known_labels)
            )
        )
        round_ = store.open_round()
        pool = project.dataset.frame(ItemSet.POOL)["item_id"]
        fine = [item for item in pool if item not in CATS][:3]
        requests = [
            LabelRequest(key=f"old-{item}", item_id=item, round_id=round_.id, wave=1, n_answers=3)
            for item in [*fine, CATS[0], CATS[1]]
        ]
        store.add_requests(requests)
        an_hour_ago = datetime.now(UTC) - timedelta(hours=1)  # their answers are in by now
        handles = [dataclasses.replace(h, published_at=an_hour_ago) for h in crowd.publish(requests[:4])]
        store.mark_published(handles)

        with pytest.raises(UnanswerableItemsError, match=CATS[0]):
            labeling_round(config, str(tmp_path))

        rounds = store.rounds()
        assert rounds["status"].tolist() == ["failed"]
        assert CATS[0] in rounds["error"].iloc[0] and "'cat'" in rounds["error"].iloc[0]
        left = store.requests(round_.id)
        assert left["request_key"].tolist() == [
            f"old-{item}" for item in [*fine, CATS[0]]
        ]  # unpublished: gone
        answers = store.answers(round_.id)
        assert set(answers["item_id"]) == set(fine)  # what was given is kept (some workers abandon)

        report = labeling_round(config, str(tmp_path))

        assert report is not None and report.number == 2
        assert store.rounds()["status"].tolist() == ["failed", "completed"]
        assert not set(store.requests(int(store.rounds()["id"].iloc[1]))["item_id"]) & set(CATS)


def test_a_failed_rounds_answers_are_collected_and_each_approved_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bad data stops a round whose first wave is out: every answer given by then is stored and approved (the
    workers did the work; nobody reviewed it) exactly once, and the published requests are closed."""
    from labelflow.flows.labeling_round import labeling_round
    from labelflow.integrations.crowd.base import Review, ReviewAction
    from labelflow.integrations.crowd.simulated import SimulatedCrowd
    from labelflow.tasks.validation import DataValidationError

    approved: list[str | None] = []
    closed: list[str] = []
    review, close = SimulatedCrowd.review, SimulatedCrowd.close

    def recording_review(crowd: SimulatedCrowd, decisions: list[Review]) -> None:
        approved.extend(d.answer_id for d in decisions if d.action is ReviewAction.APPROVE)
        review(crowd, decisions)

    def recording_close(crowd: SimulatedCrowd, handles: list[Handle]) -> None:
        closed.extend(h.key for h in handles)
        close(crowd, handles)

    monkeypatch.setattr(SimulatedCrowd, "review", recording_review)
    monkeypatch.setattr(SimulatedCrowd, "close", recording_close)
    config = project_with_cats(tmp_path)
    with Project(config, tmp_path) as project:
        store = project.store
        store.add_items(
            project.dataset.items[["item_id", "item_set"]].assign(
                known_label=project.dataset.items["item_id"].map(project.dataset.known_labels)
            )
        )
        round_ = store.open_round()
        asked = [item for item in project.dataset.frame(ItemSet.POOL)["item_id"] if item not in CATS][:6]
        requests = [
            LabelRequest(key=f"out-{item}", item_id=item, round_id=round_.id, wave=1, n_answers=3)
            for item in asked
        ]
        store.add_requests(requests)
        days_ago = datetime.now(UTC) - timedelta(days=3)  # every answer is in by now
        store.mark_published(
            [dataclasses.replace(h, published_at=days_ago) for h in project.crowd().publish(requests)]
        )
        given = {a.answer_id for a in project.crowd().poll(store.handles(round_.id))}
    table = digits_table(0, 200)
    table.loc[7, "px20"] = float("nan")  # the pool turns bad before the round is resumed
    table.to_csv(tmp_path / "base.csv", index=False)

    with pytest.raises(DataValidationError):
        labeling_round(config, str(tmp_path))

    with Project(config, tmp_path) as project:
        store = project.store
        assert store.rounds()["status"].tolist() == ["failed"]
        assert len(given) == 18 and set(store.answers(round_.id)["answer_id"]) == given
    assert sorted(map(str, approved)) == sorted(given)  # each once
    assert sorted(closed) == sorted(r.key for r in requests)
