"""What the `labelflow` command prints when something goes wrong: one or two lines naming the file or field, the
traceback only with `labelflow --debug` (and always in the Prefect log)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy.exc import DatabaseError
from typer.testing import CliRunner

from labelflow.flows.cli import app
from labelflow.flows.config import load_config
from labelflow.flows.leases import lease_holder
from labelflow.flows.project import Project
from labelflow.integrations.datasets import DatasetConfig, DatasetError, digits_table, load_dataset

runner = CliRunner()


def test_a_data_error_during_run_is_two_lines_naming_the_file_not_pages_of_traceback(tmp_path: Path) -> None:
    (tmp_path / "labelflow.toml").write_text('name = "gone"\n[dataset]\nsource = "nope.csv"\n')
    environment = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}  # a temporary server
    result = subprocess.run(
        [sys.executable, "-m", "labelflow.flows.cli", "run"],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )
    printed = result.stdout + result.stderr
    assert result.returncode == 1, printed
    assert "Traceback" not in printed and len(printed.splitlines()) < 20, printed
    assert "Error logging to API" not in printed  # the failed run's logs reached the server before it stopped
    assert "nope.csv: no such file" in result.stdout and "--debug" in result.stdout


def test_an_unexpected_error_is_one_line_with_its_type_and_debug_shows_the_traceback(tmp_path: Path) -> None:
    path = tmp_path / "labelflow.toml"
    (tmp_path / "store.db").write_text("not a database, whatever its name says\n" * 100)
    path.write_text(f'store_url = "sqlite:///{tmp_path}/store.db"\n')
    result = runner.invoke(app, ["status", "--config", str(path)])
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert len(lines) <= 3 and "DatabaseError" in lines[0], result.output
    debug = runner.invoke(app, ["--debug", "status", "--config", str(path)])
    assert isinstance(debug.exception, DatabaseError)


@pytest.mark.flow
@pytest.mark.usefixtures("prefect_harness")
def test_a_second_run_while_a_round_runs_is_told_to_wait_not_to_raise_the_budget(tmp_path: Path) -> None:
    path = tmp_path / "labelflow.toml"
    path.write_text(f'store_url = "sqlite:///{tmp_path}/store.db"\nworkdir = "{tmp_path}/work"\n')
    project = Project(load_config(path), tmp_path)
    holder = lease_holder()  # this process: alive, so its lease stands
    assert project.store.round_lease.acquire(holder, is_stale=lambda _: False) is None
    try:
        result = runner.invoke(app, ["run", "--config", str(path)])
    finally:
        project.store.round_lease.release(holder)
        project.close()
    assert result.exit_code == 0, result.output
    assert "No round started: another round" in result.output
    assert "labelflow status" in result.output and "budget" not in result.output


def test_a_source_whose_label_column_has_another_name_says_so(tmp_path: Path) -> None:
    digits_table(0, 100).rename(columns={"label": "class"}).to_csv(tmp_path / "items.csv", index=False)
    config = DatasetConfig(source="items.csv", id_column="id", n_gold=5)
    with pytest.raises(DatasetError) as error:
        load_dataset(config, [], tmp_path)
    message = str(error.value)
    assert message.startswith(f"no column 'label' in {tmp_path / 'items.csv'} (columns: id, px0,")
    assert "class" in message


@pytest.mark.flow
@pytest.mark.usefixtures("prefect_harness")
def test_ingesting_a_semicolon_delimited_file_names_the_delimiter(tmp_path: Path) -> None:
    digits_table(0, 200).to_csv(tmp_path / "base.csv", index=False)
    path = tmp_path / "labelflow.toml"
    path.write_text(
        f'name = "semi"\nstore_url = "sqlite:///{tmp_path}/store.db"\nworkdir = "{tmp_path}/work"\n'
        '[dataset]\nsource = "base.csv"\nid_column = "id"\nn_gold = 10\n'
    )
    digits_table(200, 220).to_csv(tmp_path / "new.csv", index=False, sep=";")
    result = runner.invoke(app, ["ingest", str(tmp_path / "new.csv"), "--config", str(path)])
    assert result.exit_code == 1, result.output
    assert "delimited by ';'" in result.output, result.output


@pytest.mark.flow
@pytest.mark.usefixtures("prefect_harness")
def test_refusing_live_mturk_is_two_lines(tmp_path: Path) -> None:
    path = tmp_path / "labelflow.toml"
    path.write_text(
        f'store_url = "sqlite:///{tmp_path}/store.db"\nworkdir = "{tmp_path}/work"\n[crowd]\nbackend = "mturk"\n'
    )
    result = runner.invoke(app, ["run", "--live", "--config", str(path)])
    assert result.exit_code == 1
    printed = result.output.splitlines()
    assert "mturk.live = true" in printed[-2] and "--debug" in printed[-1], result.output
    assert "Traceback" not in result.output
