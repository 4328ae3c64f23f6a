"""deployments/prefect.yaml and `labelflow serve` describe the same deployments."""

from __future__ import annotations

import importlib
from pathlib import Path

import yaml
from prefect import Flow

from flows.config import ProjectConfig
from flows.serve import build_deployments

PREFECT_YAML = Path(__file__).resolve().parents[1] / "deployments" / "prefect.yaml"


def test_prefect_yaml_matches_what_serve_builds(tmp_path: Path) -> None:
    spec = yaml.safe_load(PREFECT_YAML.read_text())
    served = {d.name: d for d in build_deployments(ProjectConfig(), tmp_path)}
    assert {d["name"] for d in spec["deployments"]} == set(served)
    for deployment in spec["deployments"]:
        path, function = deployment["entrypoint"].split(":")
        module = path.removesuffix(".py").replace("/", ".")
        flow = getattr(importlib.import_module(module), function)
        assert isinstance(flow, Flow)
        assert flow.name == served[deployment["name"]].flow_name
        ProjectConfig.model_validate(deployment["parameters"]["config"])  # the inline config is valid


def test_serve_schedules_rounds_by_cron_and_triggers_them_on_pool_growth(tmp_path: Path) -> None:
    served = {d.name: d for d in build_deployments(ProjectConfig(), tmp_path)}
    round_deployment = served["digits-demo-round"]
    assert [s.schedule.cron for s in round_deployment.schedules] == ["0 2 * * *"]  # type: ignore[union-attr]
    [trigger] = round_deployment.triggers
    assert trigger.expect == {"labelflow.pool.grew"}
    assert round_deployment.parameters["wait_for_answers"] is False
