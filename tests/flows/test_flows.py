"""The lifecycle as Prefect flows, under the session-wide test harness, on a small subset of digits."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_digits

from labelflow.contracts import ITEM_ID, ItemSet
from labelflow.flows.config import ProjectConfig, parse_config
from labelflow.flows.project import Project
from labelflow.tasks.selection import StoppingRule
from labelflow.tasks.validation import DataValidationError
from labelflow.tasks.weak_supervision import LabelingFunction, labeling_function

pytestmark = [pytest.mark.flow, pytest.mark.usefixtures("prefect_harness")]

REPO = Path(__file__).resolve().parents[2]


def write_subset(folder: Path, n: int = 300, *, corrupt: str | None = None) -> Path:
    digits = load_digits()
    frame = pd.DataFrame(digits.data[:n], columns=[f"px{k}" for k in range(64)])
    frame.insert(0, "id", [f"d{k:04d}" for k in range(n)])
    frame["label"] = digits.target[:n].astype(str)
    if corrupt == "duplicate_id":
        frame.loc[7, "id"] = frame.loc[3, "id"]
    if corrupt == "nan_feature":
        frame.loc[11, "px20"] = np.nan
    path = folder / "digits_subset.csv"
    frame.to_csv(path, index=False)
    return path


def small_config(
    folder: Path,
    weak_supervision: dict[str, Any] | None = None,
    *,
    store_url: str | None = None,
    **crowd: Any,
) -> ProjectConfig:
    """``store_url``: a SQLite file in ``folder`` unless given (the tests that write the most, take the leases and
    rerun rounds get conftest's ``store_url``, so that they run on PostgreSQL too)."""
    return parse_config(
        {
            "weak_supervision": weak_supervision or {},
            "name": "flow-test",
            "store_url": store_url or f"sqlite:///{folder / 'store.db'}",
            "workdir": str(folder / "work"),
            "dataset": {
                "source": "digits_subset.csv",
                "id_column": "id",
                "n_gold": 10,
                "held_out_fraction": 0.2,
            },
            "selection": {"batch_size": 20, "seed_size": 20},
            "crowd": {"gold_per_round": 5, **crowd},
            "training": {"self_training_max_iter": 2},
            "budget": {"max_rounds": 2, "max_spend": 100.0, "target_accuracy": 1.0},
        }
    )


def test_a_two_round_campaign_fills_the_store_and_publishes_artifacts(
    tmp_path: Path, store_url: str, latest_artifacts: Callable[..., dict[str, Any]]
) -> None:

    from labelflow.flows.campaign import labeling_campaign

    write_subset(tmp_path)
    config = small_config(tmp_path, store_url=store_url)
    report = labeling_campaign(config, str(tmp_path))
    assert [r.number for r in report.rounds] == [1, 2]
    assert report.stopped_because.startswith("max rounds")
    again = labeling_campaign(config, str(tmp_path))  # the stopping rules read the store: nothing more to do
    assert again.rounds == [] and again.stopped_because.startswith("max rounds")

    with Project(config, tmp_path) as project:
        store = project.store
        rounds = store.rounds()
        assert list(rounds["status"]) == ["completed", "completed"]
        for round_id in rounds["id"]:
            requests = store.requests(round_id)
            answers = store.answers(round_id)
            per_item = answers.groupby("item_id").size()
            asked = requests.groupby("item_id")["n_answers"].sum()
            pd.testing.assert_series_equal(per_item.sort_index(), asked.sort_index(), check_names=False)
            gold_requests = requests[requests["is_gold"].astype(bool)]
            assert (gold_requests["wave"] == 1).sum() == 5 and gold_requests[ITEM_ID].nunique() == 5
            # later waves ask gold as items are (one more while unsure), but only gold first asked this round
            asked_before = store.answers().query("round_id < @round_id")[ITEM_ID]
            assert not set(gold_requests.loc[gold_requests["wave"] > 1, ITEM_ID]) & set(asked_before)
            assert per_item.max() <= config.crowd.max_answers
            assert not set(requests.loc[~requests["is_gold"], "item_id"]) & set(
                store.items("gold")["item_id"]
            )
        labels = store.labels()
        assert set(labels["source"]) == {"crowd", "model"}
        crowd = labels[labels["source"] == "crowd"]
        assert len(crowd) == 40 and crowd["confidence"].between(0, 1).all()
        known = set(store.items("gold")["item_id"]) | set(store.items("held_out")["item_id"])
        assert not set(crowd["item_id"]) & known
        versions = store.model_versions()
        assert len(versions) == 2 and versions["promoted"].iloc[0] and Path(versions["path"].iloc[0]).exists()
        assert store.champion() is not None

        kinds = ("round-summary", "gx-pool", "gx-batch", "gx-answers", "gx-labels", "workers")
        by_key = latest_artifacts(
            *(f"flow-test-{kind}" for kind in (*kinds, "class-distribution", "learning-curve"))
        )
        summary = by_key["flow-test-round-summary"]
        assert "round 2" in str(summary.data) and f"{report.rounds[-1].model_accuracy:.3f}" in str(
            summary.data
        )
        assert {
            "flow-test-gx-pool",
            "flow-test-gx-batch",
            "flow-test-gx-answers",
            "flow-test-gx-labels",
        } <= set(by_key)
        workers = by_key["flow-test-workers"].data
        assert "sim-w" in str(workers) and "agreement" in str(workers)
        classes = by_key["flow-test-class-distribution"].data
        assert sum(row["items"] for row in json.loads(str(classes))) == 40
        assert str(by_key["flow-test-learning-curve"].data).startswith("data:image/png;base64,")


def test_a_round_rerun_after_registering_its_model_reuses_that_model(tmp_path: Path, store_url: str) -> None:
    """As after a kill between register-model and the round's end: the rerun registers the round's model again."""
    from prefect import flow

    from labelflow.flows.labeling_round import labeling_round, register_model
    from labelflow.integrations.store import RoundRecord
    from labelflow.tasks.training import load_model

    write_subset(tmp_path)
    config = small_config(tmp_path, store_url=store_url)
    labeling_round(config, str(tmp_path))
    with Project(config, tmp_path) as project:
        store = project.store
        first = store.model_versions()
        path = Path(first["path"].iloc[0])
        written = path.stat().st_mtime_ns
        round_ = store.rounds().iloc[0]
        record = RoundRecord(int(round_["id"]), int(round_["number"]), "running", round_["started_at"], True)

        @flow
        def rerun_registration() -> object:
            worse = {"accuracy": 0.0, "macro_f1": 0.0}
            return register_model(store, load_model(path), worse, record, workdir=project.workdir)

        version = rerun_registration()
        again = store.model_versions()
        assert len(again) == 1 and again["id"].tolist() == first["id"].tolist()
        assert version == store.champion() and version.accuracy == first["accuracy"].iloc[0]
        assert path.stat().st_mtime_ns == written


def test_the_stopping_rule_ends_a_campaign_early_from_what_the_store_holds(tmp_path: Path) -> None:
    from labelflow.flows.campaign import labeling_campaign

    write_subset(tmp_path)
    config = small_config(tmp_path)
    # one pair of successive models agreeing at kappa >= 0.3 is enough here, so the rule fires after round 2
    rule = StoppingRule(window=1, min_kappa=0.3)
    config = config.model_copy(
        update={
            "selection": config.selection.model_copy(update={"stopping": rule}),
            "budget": config.budget.model_copy(update={"max_rounds": 5}),
        }
    )
    report = labeling_campaign(config, str(tmp_path))
    assert [r.number for r in report.rounds] == [1, 2]
    assert report.stopped_because.startswith("predictions stabilized")
    assert report.stopped_because.endswith("after round 2")
    again = labeling_campaign(config, str(tmp_path))  # a new process would read the same rounds and models
    assert again.rounds == [] and again.stopped_because == report.stopped_because
    switched_off = config.selection.model_copy(
        update={"stopping": rule.model_copy(update={"enabled": False})}
    )
    more = labeling_campaign(
        config.model_copy(
            update={"selection": switched_off, "budget": config.budget.model_copy(update={"max_rounds": 3})}
        ),
        str(tmp_path),
    )
    assert [r.number for r in more.rounds] == [3] and more.stopped_because.startswith("max rounds")


def test_a_campaign_out_of_budget_stops_without_reading_the_pool(tmp_path: Path) -> None:
    """The check before each round prices the simulated crowd without building it (which reads the whole pool
    for its hidden truth, ~3 s for 2M items): with no dataset file at all it still says why no round starts."""
    from labelflow.flows.campaign import next_round_blocker

    config = small_config(tmp_path)
    config = config.model_copy(update={"budget": config.budget.model_copy(update={"max_spend": 0.01})})
    assert not (tmp_path / "digits_subset.csv").exists()
    assert next_round_blocker(config, tmp_path) == "budget spent ($0.00 of $0.01)"


@pytest.mark.slow
def test_a_round_chooses_its_batch_on_a_dask_cluster(tmp_path: Path) -> None:
    """selection.engine = "dask" with the address of a running cluster: the round's batch is read from the pool
    store's partitions and chosen there (one round: the model's path through the cluster is
    tests/tasks/test_partitioned_selection.py's), of unlabeled pool items only."""
    from distributed import LocalCluster

    from labelflow.flows.labeling_round import labeling_round

    write_subset(tmp_path)
    config = small_config(tmp_path)
    with LocalCluster(processes=False, n_workers=1, threads_per_worker=1, dashboard_address=None) as cluster:
        dask = {"engine": "dask", "dask_address": cluster.scheduler_address}
        config = config.model_copy(update={"selection": config.selection.model_copy(update=dask)})
        labeling_round(config, str(tmp_path))
        ran = set(cluster.scheduler.task_prefixes)  # what the scheduler ran, by function name
    assert "piece_candidates" in ran
    with Project(config, tmp_path) as project:
        pool = set(project.dataset.frame(ItemSet.POOL)[ITEM_ID])
        (round_id,) = project.store.rounds()["id"]
        first_wave = project.store.requests(int(round_id), wave=1)
        asked = set(first_wave.loc[~first_wave["is_gold"].astype(bool), ITEM_ID])
    assert len(asked) == 20 and asked <= pool


@pytest.mark.parametrize("corrupt", ["duplicate_id", "nan_feature"])
def test_a_bad_pool_stops_the_round_with_a_clear_error_and_writes_no_labels(
    tmp_path: Path, corrupt: str
) -> None:
    from labelflow.flows.labeling_round import labeling_round

    write_subset(tmp_path, corrupt=corrupt)
    config = small_config(tmp_path)
    with pytest.raises(DataValidationError) as error:
        labeling_round(config, str(tmp_path))
    message = str(error.value)
    expected = {
        "duplicate_id": ("expect_column_values_to_be_unique", "item_id", "d0003"),
        "nan_feature": ("suite 'pool'", "px20", "nan"),
    }[corrupt]
    for fragment in expected:
        assert fragment in message
    with Project(config, tmp_path) as project:
        store = project.store
        assert store.labels().empty and store.count_answers() == 0
        assert list(store.rounds()["status"]) == ["failed"]


def test_killing_a_round_after_dispatch_and_rerunning_it_buys_nothing_twice(
    tmp_path: Path, store_url: str
) -> None:
    """Round 1 runs in a child process on a real-time crowd; we SIGKILL it mid-collection and rerun it here."""
    from prefect.settings import PREFECT_API_URL

    from labelflow.flows.labeling_round import labeling_round

    write_subset(tmp_path)
    realtime = {"poll_interval_minutes": 0.01, "simulated": {"realtime": True, "mean_latency_minutes": 0.15}}
    config_path = tmp_path / "labelflow.toml"
    config_path.write_text(
        f"""name = "flow-test"
store_url = "{store_url}"
workdir = "{tmp_path / "work"}"
[dataset]
source = "digits_subset.csv"
id_column = "id"
n_gold = 10
[selection]
seed_size = 20
[crowd]
gold_per_round = 5
poll_interval_minutes = {realtime["poll_interval_minutes"]}
[crowd.simulated]
realtime = true
mean_latency_minutes = {realtime["simulated"]["mean_latency_minutes"]}
[budget]
max_rounds = 1
"""
    )
    env = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value())}
    child = subprocess.Popen(
        [sys.executable, "-m", "labelflow.flows.cli", "run", "--config", str(config_path)],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    config = small_config(tmp_path, store_url=store_url)
    with Project(config, tmp_path) as project:
        store = project.store
        try:
            deadline = time.monotonic() + 120
            while store.count_answers() < 5:
                assert child.poll() is None, "the child finished before it could be killed"
                assert time.monotonic() < deadline, "the child published nothing within 120 s"
                time.sleep(0.1)
        finally:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()

        requests_before = store.requests(store.rounds()["id"].iloc[0])
        answers_before = store.answers()
        assert store.rounds()["status"].tolist() == ["running"]
        assert 0 < len(answers_before) < requests_before["n_answers"].sum()

        report = labeling_round(config, str(tmp_path))  # virtual clock now: the rest arrives fast
        assert report.number == 1  # resumed, not a new round
        round_id = int(store.rounds()["id"].iloc[0])
        after = store.requests(round_id)
        wave_one = after[after["wave"] == 1]
        assert wave_one["request_key"].tolist() == requests_before["request_key"].tolist()
        assert (after["external_id"].notna()).all()
        answers = store.answers()
        assert answers["answer_id"].is_unique
        assert set(answers_before["answer_id"]) <= set(answers["answer_id"])
        assert len(answers) == after["n_answers"].sum()  # every answer bought once, none twice
        assert store.rounds()["status"].tolist() == ["completed"]


def test_a_second_round_of_the_same_project_is_skipped_while_one_runs(tmp_path: Path, store_url: str) -> None:
    from labelflow.flows.labeling_round import labeling_round
    from labelflow.flows.leases import lease_holder

    write_subset(tmp_path)
    config = small_config(tmp_path, store_url=store_url)
    with Project(config, tmp_path) as project:
        store = project.store
        running_elsewhere = lease_holder()  # this very process is alive, so the lease is not stale
        assert store.round_lease.acquire(running_elsewhere, is_stale=lambda _: False) is None
        assert labeling_round(config, str(tmp_path)) is None
        assert store.rounds().empty  # skipped before anything was done
        store.round_lease.release(running_elsewhere)


def test_a_triggered_round_starts_only_if_the_pool_still_grew_enough(tmp_path: Path) -> None:
    """A growth event delivered twice, or a scheduled round that took the new items first: no second round."""
    from labelflow.flows.labeling_round import labeling_round

    write_subset(tmp_path)
    config = small_config(tmp_path)
    with Project(config, tmp_path) as project:
        project.store.add_items(pd.DataFrame({ITEM_ID: ["new-1", "new-2"], "item_set": ItemSet.POOL.value}))
        assert labeling_round(config, str(tmp_path), when_pool_grew_by=3) is None
        assert project.store.rounds().empty


def subset_labeling_functions() -> list[LabelingFunction]:
    """For the digits subset's ``px<k>`` columns: a precise function, and one that raises on every 7th item."""

    @labeling_function(vectorized=True)
    def hollow_centre_is_zero(items: pd.DataFrame) -> list[str | None]:
        image = items[[f"px{k}" for k in range(64)]].to_numpy(dtype=np.float64).reshape(-1, 8, 8)
        centre = image[:, 3:5, 3:5].sum(axis=(1, 2))
        ring = image[:, 1:7, 1:7].sum(axis=(1, 2)) - centre
        return ["0" if hit else None for hit in (centre < 4) & (ring > 120)]

    @labeling_function()
    def breaks_on_every_seventh(item: pd.Series) -> str | None:
        if int(str(item["item_id"])[1:]) % 7 == 0:
            raise RuntimeError("cannot read this item")
        return None

    return [hollow_centre_is_zero, breaks_on_every_seventh]


def test_labeling_functions_label_steer_selection_and_a_failing_one_does_not_stop_the_round(
    tmp_path: Path, latest_artifacts: Callable[..., dict[str, Any]]
) -> None:
    from labelflow.flows.labeling_round import labeling_round

    write_subset(tmp_path)
    config = small_config(tmp_path, {"functions": "test_flows:subset_labeling_functions"})
    report = labeling_round(config, str(tmp_path))
    assert report is not None and report.function_labels > 0
    assert report.function_label_accuracy is not None and report.function_label_accuracy > 0.9

    with Project(config, tmp_path) as project:
        store = project.store
        labels = store.labels()
        weak = labels[labels["source"] == "functions"]
        assert len(weak) == report.function_labels and set(weak["label"]) == {"0"}
        assert not set(weak["item_id"]) & set(store.items("gold")["item_id"])
        confident = set(weak.loc[weak["confidence"] >= config.quality.confidence_target, "item_id"])
        asked = set(store.requests(int(store.rounds()["id"].iloc[0]))["item_id"])
        assert confident and not confident & asked  # the functions' confident labels are not bought again
        asked_items = set(store.items("pool")["item_id"]) | set(store.items("gold")["item_id"])
        failing = sum(int(item[1:]) % 7 == 0 for item in asked_items)

        artifacts = latest_artifacts("flow-test-labeling-functions")
        table = json.loads(str(artifacts["flow-test-labeling-functions"].data))
        failures = {row["function"]: row["failures"] for row in table}
        assert failures == {"hollow_centre_is_zero": 0, "breaks_on_every_seventh": failing}


def test_a_served_round_finishes_a_quick_wave_in_its_hold_and_hands_a_slow_one_over(
    tmp_path: Path,
) -> None:
    from labelflow.flows.labeling_round import labeling_round

    write_subset(tmp_path)
    # on the virtual clock the hold fast-forwards through every wave: the round completes in this one run
    quick = small_config(tmp_path, max_answers=3)
    report = labeling_round(quick, str(tmp_path), wait_for_answers=False)
    assert report is not None and report.number == 1

    # a crowd answering in wall-clock time (mean 10 min) outlasts a 1 s hold: the round hands its wait over
    slow = small_config(
        tmp_path, hand_off_after_seconds=1, simulated={"realtime": True, "mean_latency_minutes": 10}
    )
    assert labeling_round(slow, str(tmp_path), wait_for_answers=False) is None
    with Project(slow, tmp_path) as project:
        store = project.store
        rounds = store.rounds()
        assert list(rounds["status"]) == ["completed", "running"]
        waiting = store.requests(int(rounds["id"].iloc[1]))
        assert waiting["external_id"].notna().all()  # published, the collector's to poll from here
        assert store.count_answers(int(rounds["id"].iloc[1])) < waiting["n_answers"].sum()


def test_a_round_with_method_auto_labels_with_the_chosen_crowd_model_and_reports_why(tmp_path: Path) -> None:
    from labelflow.flows.labeling_round import labeling_round

    write_subset(tmp_path)
    config = small_config(tmp_path, gold_per_round=24)
    config = config.model_copy(
        update={
            "quality": config.quality.model_copy(update={"method": "auto"}),
            "dataset": config.dataset.model_copy(update={"n_gold": 30}),
        }
    )
    report = labeling_round(config, str(tmp_path))
    assert report is not None and report.crowd_model.startswith("auto chose ")
    chosen = report.crowd_model.removeprefix("auto chose ").split(":", 1)[0]
    with Project(config, tmp_path) as project:
        labels = project.store.labels(report.round_id).query("source == 'crowd'")
    assert set(labels["method"]) == {chosen} and report.confidence_calibrated
