"""The labeling round through Mechanical Turk: the real flow, the real boto3 client, the local endpoint."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from test_flows import small_config, write_subset

from labelflow.flows.config import ProjectConfig, parse_config
from labelflow.flows.labeling_round import labeling_round
from labelflow.flows.project import Project
from labelflow.integrations.crowd.base import BudgetExceededError, TransientCrowdError
from labelflow.integrations.mturk_local import Faults, LocalMTurkServer

pytestmark = [pytest.mark.flow, pytest.mark.usefixtures("prefect_harness")]

BATCH, GOLD = 20, 5  # small_config's batch and gold per round: 25 HITs in wave 1


def mturk_project(
    folder: Path, mturk_endpoint: Callable[..., LocalMTurkServer], **crowd: Any
) -> tuple[ProjectConfig, LocalMTurkServer]:
    """A small digits project whose crowd is MTurk on a fresh local endpoint that knows the hidden truth."""
    write_subset(folder)
    base = small_config(folder)
    project = Project(base, folder)
    try:
        truth = {str(k): str(v) for k, v in project.dataset.hidden_truth.items()}
    finally:
        project.close()
    endpoint = mturk_endpoint(truth=truth)
    data = base.model_dump(mode="json")
    data["crowd"].update(
        backend="mturk",
        redundancy=3,  # pinned: the figures below count HITs of 3 assignments, whatever the default k0 is
        max_answers=4,
        mturk={"endpoint_url": endpoint.url, "local": True},
        poll_interval_minutes=60,  # fewer polls: each is one ListAssignmentsForHIT per HIT still answering
        **crowd,
    )
    data["quality"]["confidence_target"] = 0.99  # so that some items need a second wave
    return parse_config(data), endpoint


def test_a_full_round_goes_through_mturk_despite_throttling_and_malformed_answers(
    tmp_path: Path, mturk_endpoint: Callable[..., LocalMTurkServer]
) -> None:
    config, endpoint = mturk_project(tmp_path, mturk_endpoint)
    endpoint.mturk.set_faults(
        Faults(throttle=3, malformed_answers=2)
    )  # three throttles in a row, at the start
    report = labeling_round(config, str(tmp_path))
    assert endpoint.mturk.counter("fault:throttle") == 3  # retried by botocore; the round went on

    store = Project(config, tmp_path).store
    requests = store.requests(report.round_id)
    assert endpoint.mturk.counter("hits_created") == BATCH + GOLD
    # The second wave bought more answers on the wave-1 HITs, not new HITs.
    later = requests[requests["wave"] > 1]
    assert report.waves >= 2 and len(later) > 0
    assert endpoint.mturk.counter("assignments_added") == int(later["n_answers"].sum())
    first_hit = requests[requests["wave"] == 1].set_index("item_id")["external_id"]
    assert (later["external_id"].to_numpy() == first_hit[later["item_id"]].to_numpy()).all()
    # Every answer bought arrived, was stored once, aggregated, and reviewed at the endpoint.
    assert store.count_answers(report.round_id) == report.answers_bought == int(requests["n_answers"].sum())
    assert len(store.labels(report.round_id).query("source == 'crowd'")) >= BATCH
    decided = endpoint.mturk.state()["assignments"]
    assert "Submitted" not in decided
    reviewed = endpoint.mturk.counter("assignments_approved") + endpoint.mturk.counter("assignments_rejected")
    assert reviewed == report.answers_bought
    assert endpoint.mturk.counter("hits_deleted") == BATCH + GOLD  # closed once every answer was reviewed
    assert report.cost == pytest.approx(report.answers_bought * 0.06)  # $0.05 plus MTurk's 20 % fee
    assert store.rounds()["status"].tolist() == ["completed"]
    # The two malformed answers are stored raw with their error (and paid: approved with the rest).
    unparsed = store.answers(report.round_id, parsed=False)
    assert len(unparsed) == 2 and unparsed["parse_error"].str.contains("does not parse").all()
    assert unparsed["raw"].str.startswith("<?xml").all()


def test_a_dispatch_killed_half_way_posts_no_duplicate_hit_on_rerun(
    tmp_path: Path, mturk_endpoint: Callable[..., LocalMTurkServer]
) -> None:
    config, endpoint = mturk_project(tmp_path, mturk_endpoint)
    # MTurk goes down for good after ten HITs: the dispatch dies half-way with a clear error.
    endpoint.mturk.set_faults(Faults(server_errors=-1, operations=("CreateHITWithHITType",), after=10))
    with pytest.raises(TransientCrowdError, match=r"CreateHITWithHITType \(item '.+'\) failed: ServiceFault"):
        labeling_round(config, str(tmp_path))
    store = Project(config, tmp_path).store
    assert endpoint.mturk.counter("hits_created") == 10
    assert store.rounds()["status"].tolist() == ["running"]  # resumable, not failed

    endpoint.mturk.set_faults(Faults())
    labeling_round(config, str(tmp_path))
    assert endpoint.mturk.counter("hits_created") == BATCH + GOLD  # the endpoint's own count: no duplicate
    assert endpoint.mturk.counter("reply:AWS.MechanicalTurk.HitAlreadyExists") == 10
    assert store.rounds()["status"].tolist() == ["completed"]


def test_a_persistent_500_while_collecting_fails_clearly_and_loses_nothing(
    tmp_path: Path, mturk_endpoint: Callable[..., LocalMTurkServer]
) -> None:
    config, endpoint = mturk_project(tmp_path, mturk_endpoint)
    # Two polls of the 25 HITs go through (0 and 60 minutes in), then every listing fails.
    endpoint.mturk.set_faults(Faults(server_errors=-1, operations=("ListAssignmentsForHIT",), after=2 * 25))
    with pytest.raises(
        TransientCrowdError, match=r"ListAssignmentsForHIT \(HIT \w{30}\) failed.*gave up after 8"
    ):
        labeling_round(config, str(tmp_path))
    store = Project(config, tmp_path).store
    stored = store.answers()
    assert len(stored) > 0  # what the first polls brought is in the store

    endpoint.mturk.set_faults(Faults())
    report = labeling_round(config, str(tmp_path))
    after = store.answers()
    assert set(stored["answer_id"]) <= set(after["answer_id"]) and after["answer_id"].is_unique
    assert store.count_answers(report.round_id) == report.answers_bought


def test_the_balance_guard_refuses_the_dispatch_and_posts_nothing(
    tmp_path: Path, mturk_endpoint: Callable[..., LocalMTurkServer]
) -> None:
    config, endpoint = mturk_project(tmp_path, mturk_endpoint)
    endpoint.mturk.set_balance(1.00)  # wave 1 needs 75 answers x $0.06
    with pytest.raises(BudgetExceededError, match=r"costs \$4\.50 .* balance is \$1\.00; nothing was posted"):
        labeling_round(config, str(tmp_path))
    assert endpoint.mturk.counter("call:CreateHITWithHITType") == 0 and endpoint.mturk.state()["hits"] == 0
    store = Project(config, tmp_path).store
    assert store.rounds()["status"].tolist() == ["failed"] and store.requested_answers() == 0
