"""What every `labelflow` command module shares: the console and loading the config or exiting with its error."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from labelflow.flows.config import ConfigError, ProjectConfig, load_config

console = Console()


def load_or_exit(path: Path) -> ProjectConfig:
    """The project config, or its error in red and exit code 2."""
    try:
        return load_config(path)
    except ConfigError as error:
        console.print(f"[red]{error}[/red]")
        raise typer.Exit(2) from None
