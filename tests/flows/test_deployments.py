"""deployments/prefect.yaml and `labelflow serve` describe the same deployments."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import yaml
from prefect import Flow
from prefect.utilities.importtools import import_object

from labelflow.flows.config import ProjectConfig
from labelflow.flows.serve import build_deployments

PREFECT_YAML = Path(__file__).resolve().parents[2] / "deployments" / "prefect.yaml"


def test_prefect_yaml_matches_what_serve_builds(tmp_path: Path) -> None:
    spec = yaml.safe_load(PREFECT_YAML.read_text())
    served = {d.name: d for d in build_deployments(ProjectConfig(), tmp_path)}
    assert {d["name"] for d in spec["deployments"]} == set(served)
    for deployment in spec["deployments"]:
        module, function = deployment["entrypoint"].split(":")
        flow = getattr(importlib.import_module(module), function)
        assert isinstance(flow, Flow)
        assert flow.name == served[deployment["name"]].flow_name
        # module paths, never file paths: those load a second copy of the module and break on other hosts
        served_entrypoint = served[deployment["name"]].entrypoint
        assert ".py" not in str(served_entrypoint)
        assert import_object(str(served_entrypoint)) is flow
        ProjectConfig.model_validate(deployment["parameters"]["config"])  # the inline config is valid
        served_triggers = served[deployment["name"]].triggers
        assert [t.get("parameters") for t in deployment.get("triggers", [])] == [
            t.parameters for t in served_triggers
        ]


def test_serve_schedules_rounds_by_cron_and_triggers_them_on_pool_growth(tmp_path: Path) -> None:
    served = {d.name: d for d in build_deployments(ProjectConfig(), tmp_path)}
    round_deployment = served["digits-demo-round"]
    assert [s.schedule.cron for s in round_deployment.schedules] == ["0 2 * * *"]  # type: ignore[union-attr]
    [trigger] = round_deployment.triggers
    assert trigger.expect == {"labelflow.pool.grew"}
    assert trigger.parameters == {"when_pool_grew_by": ProjectConfig().inbox.round_after_items}
    assert round_deployment.parameters["wait_for_answers"] is False

    never = ProjectConfig.model_validate({"schedule": {"round_cron": "never"}})
    unscheduled = {d.name: d for d in build_deployments(never, tmp_path)}["digits-demo-round"]
    assert not unscheduled.schedules and unscheduled.triggers


def test_a_second_serve_of_a_project_refuses_to_start_while_the_first_lives(tmp_path: Path) -> None:
    from labelflow.flows.leases import lease_holder
    from labelflow.flows.project import Project
    from labelflow.flows.serve import AlreadyServedError, serve_project

    config = ProjectConfig(store_url=f"sqlite:///{tmp_path}/store.db")
    with Project(config, tmp_path) as project:
        store = project.store
        assert (
            store.serve_lease.acquire(lease_holder(), is_stale=lambda _: False) is None
        )  # held by this live process
        with pytest.raises(AlreadyServedError, match="already running for digits-demo"):
            serve_project(config, tmp_path)


def test_a_label_studio_crowd_adds_a_collector_triggered_by_arriving_answers(tmp_path: Path) -> None:
    from prefect.client.schemas.objects import ConcurrencyLimitStrategy

    config = ProjectConfig.model_validate({"crowd": {"backend": "label_studio"}})
    served = {d.name: d for d in build_deployments(config, tmp_path)}
    assert set(served) - {d.name for d in build_deployments(ProjectConfig(), tmp_path)} == {
        "digits-demo-collect-on-answers"
    }
    on_answers = served["digits-demo-collect-on-answers"]
    [trigger] = on_answers.triggers
    assert trigger.expect == {"labelflow.answers.arrived"}
    assert trigger.match.model_dump() == {"labelflow.project": "digits-demo"}  # type: ignore[union-attr]
    assert on_answers.parameters["on_answers"] is True and not on_answers.schedules
    limit = on_answers.concurrency_options
    assert on_answers.concurrency_limit == 1 and limit is not None
    assert limit.collision_strategy == ConcurrencyLimitStrategy.ENQUEUE
