from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from labelflow.flows.config import ConfigError, ProjectConfig, example_config, load_config


def test_the_example_config_is_the_default_config(tmp_path: Path) -> None:
    path = tmp_path / "labelflow.toml"
    path.write_text(example_config())
    assert load_config(path) == ProjectConfig()
    assert "# Answers per item in the first wave." in path.read_text()


def test_a_wrong_value_names_the_field_and_what_is_allowed(tmp_path: Path) -> None:
    path = tmp_path / "labelflow.toml"
    path.write_text('[selection]\nstrategy = "clever"\n[crowd]\nredundancy = 0\n')
    with pytest.raises(ConfigError) as error:
        load_config(path)
    message = str(error.value)
    assert "selection.strategy" in message and "'margin'" in message and "'clever'" in message
    assert "crowd.redundancy" in message and "greater than or equal to 1" in message


def test_unknown_keys_are_rejected(tmp_path: Path) -> None:
    path = tmp_path / "labelflow.toml"
    path.write_text("[budget]\nmax_spendd = 3\n")
    with pytest.raises(ConfigError, match=r"budget\.max_spendd: Extra inputs are not permitted"):
        load_config(path)


def test_missing_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="labelflow init"):
        load_config(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("name = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)


def test_config_is_frozen_and_cross_checked() -> None:
    config = ProjectConfig()
    with pytest.raises(Exception, match="frozen"):
        config.name = "x"  # type: ignore[misc]
    with pytest.raises(Exception, match="max_answers"):
        ProjectConfig.model_validate({"crowd": {"redundancy": 3, "max_answers": 2}})


def test_example_config_parses_as_toml_with_every_section() -> None:
    data = tomllib.loads(example_config())
    assert {"dataset", "selection", "crowd", "quality", "training", "budget"} <= set(data)
    assert "simulated" in data["crowd"]


@pytest.mark.parametrize(
    ("toml", "field", "says"),
    [
        ("[budget]\nmax_spend = inf\n", "budget.max_spend", "finite"),
        ("[crowd]\nwave_deadline_hours = nan\n", "crowd.wave_deadline_hours", "finite"),
        ('[schedule]\nround_cron = "not a cron"\n', "schedule.round_cron", "Invalid cron string"),
        ('store_url = "notaurl"\n', "store_url", "SQLAlchemy database URL"),
        ('store_url = "nosuchdialect://host/db"\n', "store_url", "SQLAlchemy database URL"),
        ('store_url = "mysql://host/db"\n', "store_url", "runs on sqlite or postgresql, not mysql"),
        ('store_url = "postgresql+psycopg://u:pw@host/db"\n', "store_url", "holds a password"),
    ],
)
def test_a_value_that_would_only_fail_later_is_refused_at_load(
    tmp_path: Path, toml: str, field: str, says: str
) -> None:
    path = tmp_path / "labelflow.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError) as error:
        load_config(path)
    lines = [line for line in str(error.value).splitlines() if line.startswith(f"  - {field}:")]
    assert any(says in line for line in lines), error.value


def test_never_turns_the_scheduled_rounds_off(tmp_path: Path) -> None:
    path = tmp_path / "labelflow.toml"
    path.write_text('[schedule]\nround_cron = "never"\n')
    assert load_config(path).schedule.round_cron is None
    path.write_text('[schedule]\nround_cron = "30 4 * * 1"\n')
    assert load_config(path).schedule.round_cron == "30 4 * * 1"


def test_a_config_file_that_is_not_utf8_is_named_with_the_byte_position(tmp_path: Path) -> None:
    path = tmp_path / "labelflow.toml"
    path.write_bytes(b'name = "caf' + "é".encode("latin-1") + b'"\n')
    with pytest.raises(ConfigError) as error:
        load_config(path)
    [line] = str(error.value).splitlines()
    assert str(path) in line and "UTF-8" in line and "position 11" in line
