"""The demo's project is found by the commands that look at a project, and projects sharing a Prefect server keep
their own artifacts."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from typer.testing import CliRunner

from labelflow.flows.cli import DEMO_CONFIG, DEMO_WORKDIR, _write_demo_config, app
from labelflow.flows.config import ProjectConfig, load_config
from labelflow.flows.project import Project

runner = CliRunner()


def test_after_the_demo_status_workers_and_export_show_its_project_without_a_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    workdir = (tmp_path / DEMO_WORKDIR).resolve()
    demo = ProjectConfig(workdir=str(workdir), store_url=f"sqlite:///{workdir / 'labelflow.db'}")
    assert _write_demo_config(demo) == workdir / "labelflow.toml"
    assert load_config(DEMO_CONFIG) == demo  # the very project the demo ran
    with Project(demo, tmp_path) as project:
        project.store.update_workers(
            pd.DataFrame(
                {
                    "worker_id": ["sim-w00"],
                    "backend": "simulated",
                    "status": ["active"],
                    "n_answers": [12],
                    "accuracy": [0.9],
                    "n_gold": [3],
                    "spammer_score": [0.8],
                }
            )
        )

    for command in (["status"], ["workers"], ["export"]):
        result = runner.invoke(app, command)
        assert result.exit_code == 0, result.output
        assert ".labelflow/demo/labelflow.toml" in result.output
    assert "sim-w00" in runner.invoke(app, ["workers"]).output
    assert (workdir / "labels.csv").exists()


def test_without_any_config_status_still_says_there_is_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["status"])
    assert result.exit_code == 2 and "labelflow.toml: no such file" in result.output


@pytest.mark.flow
def test_two_projects_on_one_server_keep_their_own_validation_artifacts(
    latest_artifacts: Callable[..., dict[str, Any]],
) -> None:
    from prefect import flow

    from labelflow.flows.steps.validation import validate_frame

    @flow
    def validate_both() -> None:
        for project, value in (("Digits Demo", 0.0), ("penguins_2", 1.0)):
            validate_frame(
                pd.DataFrame({"item_id": ["a"], "px0": [value]}), "pool", project, feature_columns=["px0"]
            )

    validate_both()
    assert {"digits-demo-gx-pool", "penguins-2-gx-pool"} <= set(
        latest_artifacts("digits-demo-gx-pool", "penguins-2-gx-pool")
    )
