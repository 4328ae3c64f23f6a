"""What every `labelflow` command module shares: the console, loading the config or exiting with its error, and
the command group that turns any other error into one or two lines."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup
from typer.exceptions import TyperException

from labelflow.flows.config import ConfigError, ProjectConfig, load_config

console = Console()


@dataclass
class GlobalOptions:
    """The options given before the command (``labelflow --debug run``), set for each invocation."""

    debug: bool = False


global_options = GlobalOptions()

DEBUG_OPTION = "--debug"
MAX_ERROR_LINES = 2


def load_or_exit(path: Path) -> ProjectConfig:
    """The project config, or its error in red and exit code 2."""
    try:
        return load_config(path)
    except ConfigError as error:
        console.print(f"[red]{escape(str(error))}[/red]", soft_wrap=True)
        raise typer.Exit(2) from None


class _WithoutTraceback(logging.Filter):
    """Drops a record's traceback from the console: the record itself still tells the error, and Prefect's API
    handler, which runs first (on the flow and task run loggers), has already sent the whole record to the run's
    log."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.exc_info, record.exc_text, record.stack_info = None, None, None
        return True


def console_logs_without_tracebacks() -> None:
    """Make Prefect's console handlers print a failed run's log lines without their tracebacks (``--debug``
    keeps them)."""
    from prefect.logging.configuration import ensure_logging_setup
    from prefect.logging.handlers import PrefectConsoleHandler

    ensure_logging_setup()  # as the first flow run would, so that there are handlers to filter

    for handler in logging.getLogger().handlers:
        if isinstance(handler, PrefectConsoleHandler) and not any(
            isinstance(f, _WithoutTraceback) for f in handler.filters
        ):
            handler.addFilter(_WithoutTraceback())


def describe_failure(error: BaseException) -> str:
    """An error as at most two lines: labelflow's own errors by their message alone (it names the file or field
    and what to do), any other prefixed by its type."""
    message = str(error).strip() or "(no message)"
    if not type(error).__module__.startswith("labelflow."):
        message = f"{type(error).__name__}: {message}"
    lines = message.splitlines()
    return "\n".join(lines[:MAX_ERROR_LINES]) + (" …" if len(lines) > MAX_ERROR_LINES else "")


class CliGroup(TyperGroup):
    """The `labelflow` command group: an error escaping a command is printed as one or two lines and exits 1, where
    Typer would print pages of traceback; ``labelflow --debug COMMAND`` lets the traceback through (and a flow run's
    traceback is always in its Prefect log)."""

    def invoke(self, ctx: Any) -> Any:  # a click Context, which Typer vendors privately
        try:
            return super().invoke(ctx)
        except (
            typer.Exit,
            typer.Abort,
            TyperException,
        ):  # exits, Ctrl-C and usage errors: Typer's own output
            raise
        except Exception as error:
            if global_options.debug:
                raise
            console.print(f"[red]{escape(describe_failure(error))}[/red]", highlight=False, soft_wrap=True)
            console.print(f"[dim](`labelflow {DEBUG_OPTION} …` shows the traceback)[/dim]", highlight=False)
            raise typer.Exit(1) from None
