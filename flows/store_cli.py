"""``labelflow store migrate --to URL``: move the project's label store (every project in its database) to another
database, typically from the SQLite file a project started with to PostgreSQL.

The target becomes a copy of the store and the command can be run again: a second run brings over only what
changed (see ``labelflow.integrations.store.transfer``). Stop ``labelflow serve`` and any collector before the
last run, so that nothing writes to the old store after it; then point ``store_url`` at the new database.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table
from sqlalchemy.engine import make_url

from labelflow.flows.cli_common import console, load_or_exit
from labelflow.flows.config import CONFIG_FILE
from labelflow.flows.project import Project
from labelflow.integrations.store.engine import password_refusal
from labelflow.integrations.store.transfer import TableCopy, copy_store

store_app = typer.Typer(
    help="The label store's database: move it to PostgreSQL.", no_args_is_help=True, add_completion=False
)


@store_app.command()
def migrate(
    to: Annotated[
        str,
        typer.Option(
            "--to",
            help='The target database, e.g. "postgresql+psycopg://labelflow@db.internal:5432/labelflow" (its '
            "password from PGPASSWORD or ~/.pgpass, never on the command line). Its schema is created if "
            "needed.",
        ),
    ],
    config: Annotated[Path, typer.Option("--config", "-c", help="The project's labelflow.toml.")] = Path(
        CONFIG_FILE
    ),
) -> None:
    """Make another database a copy of the project's store (every project in it), in one transaction.

    Run it again while the old store is in use and it brings over only what changed; with nothing new it
    changes nothing. A target holding another store's data is refused and left unchanged. The source is never
    modified. Stop `labelflow serve` and the collector, run it a last time, then set store_url to the target.
    """
    if (refusal := password_refusal(to)) is not None:
        console.print(f"[red]--to {escape(refusal)}[/red]", soft_wrap=True)
        raise typer.Exit(2)
    project_config = load_or_exit(config)
    with Project(project_config, config.resolve().parent) as project:
        source = project.store_url
    shown_target = make_url(to).render_as_string(hide_password=True)
    console.print(f"Moving {make_url(source).render_as_string(hide_password=True)} to {shown_target}")
    table = Table("table", "rows", "added", "updated", "deleted", title="The target now")

    def show(done: TableCopy) -> None:
        table.add_row(done.table, *(str(n) for n in (done.rows, done.added, done.updated, done.deleted)))

    copies = copy_store(source, to, progress=show)
    console.print(table)
    if any(done.changes for done in copies):
        console.print(
            f"The target is now a copy of the store. Once nothing writes to the old one, set in {config}:"
        )
        console.print(f'  store_url = "{shown_target}"', highlight=False)
    else:
        console.print("Nothing to do: the target already is a copy of the store.")
