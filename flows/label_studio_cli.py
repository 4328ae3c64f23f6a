"""``labelflow label-studio start``: a local Label Studio for one user, in its own virtualenv under the project's
workdir (created on first use), on loopback, with analytics and version checks off.

The owner's account and password are made on the first start and kept in ``<workdir>/label-studio/owner.json``
(readable by the user only); each start prints the URL, a fresh access token for ``LABEL_STUDIO_API_KEY`` and how
to add annotators.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from labelflow.flows.cli_common import console, load_or_exit
from labelflow.flows.config import CONFIG_FILE
from labelflow.integrations.label_studio.config import TOKEN_VARIABLE
from labelflow.integrations.label_studio.server import (
    LABEL_STUDIO_VERSION,
    LabelStudioServerError,
    ensure_installed,
    personal_access_token,
    start_label_studio,
)

label_studio_app = typer.Typer(
    help='A local Label Studio for your own annotators (crowd.backend = "label_studio"; docs/label-studio.md).',
    no_args_is_help=True,
    add_completion=False,
)

ConfigOption = Annotated[Path, typer.Option("--config", "-c", help="The project's labelflow.toml.")]


def _owner(folder: Path, email: str | None) -> tuple[str, str]:
    """The owner's email and password: made on first use, then read back."""
    path = folder / "owner.json"
    if path.exists():
        saved = json.loads(path.read_text())
        return str(saved["email"]), str(saved["password"])
    owner = {"email": email or "owner@labelflow.local", "password": secrets.token_urlsafe(12)}
    folder.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(owner))
    path.chmod(0o600)
    return owner["email"], owner["password"]


def _owner_token(folder: Path, url: str, username: str, password: str) -> str:
    """The owner's access token: made on the first start (Label Studio shows one only when it makes it) and
    kept in owner.json."""
    path = folder / "owner.json"
    saved = json.loads(path.read_text())
    if "token" not in saved:
        saved["token"] = personal_access_token(url, username, password)
        path.write_text(json.dumps(saved))
    return str(saved["token"])


@label_studio_app.command("start")
def start(
    config_path: ConfigOption = Path(CONFIG_FILE),
    port: Annotated[int, typer.Option(help="The loopback port to serve on.")] = 8080,
    email: Annotated[
        str | None,
        typer.Option(help="The owner's login, on the first start (default owner@labelflow.local)."),
    ] = None,
) -> None:
    """Install (first time, ~1.5 min and ~1 GB) and run Label Studio on 127.0.0.1 until Ctrl-C."""
    config = load_or_exit(config_path)
    folder = (config_path.resolve().parent / config.workdir / "label-studio").resolve()
    try:
        executable = ensure_installed(folder / f"venv-{LABEL_STUDIO_VERSION}", progress=console.print)
        username, password = _owner(folder, email)
        console.print(f"starting Label Studio {LABEL_STUDIO_VERSION} (data in {folder / 'data'}) ...")
        server = start_label_studio(
            executable, folder / "data", username=username, password=password, port=port
        )
    except LabelStudioServerError as error:
        console.print(f"[red]{error}[/red]")
        raise typer.Exit(1) from None
    try:
        token = _owner_token(folder, server.url, username, password)
        # soft_wrap: the token and the config lines must stay whole for copy and paste; escape: [crowd] is
        # not rich markup.
        console.print(
            escape(
                f"\nLabel Studio is at {server.url} (pid {server.pid}; log {server.log})\n"
                f"  log in as {username} with password {password} (kept in {folder / 'owner.json'})\n"
                f"  for labelflow:  export {TOKEN_VARIABLE}={token}\n"
                f'  in {config_path}:  [crowd] backend = "label_studio"  and  [crowd.label_studio] '
                f'url = "{server.url}"\n'
                f"  annotators: each signs up at {server.url}/user/signup/ (on this machine, or through an SSH "
                "tunnel: the server listens on loopback only)\n"
                "Ctrl-C stops it."
            ),
            soft_wrap=True,
        )
        while os.waitpid(server.pid, os.WNOHANG) == (0, 0):
            time.sleep(1)
        console.print(f"[red]Label Studio exited; see {server.log}[/red]")
        raise typer.Exit(1)
    except KeyboardInterrupt:
        console.print("stopping Label Studio ...")
    finally:
        server.stop()


@label_studio_app.command("export")
def export(
    config_path: ConfigOption = Path(CONFIG_FILE),
    output: Annotated[Path | None, typer.Option("--output", "-o", help="The JSON file to write.")] = None,
) -> None:
    """Write every item's latest label as a Label Studio task with a prediction scored by its confidence (import
    it into a project with the same labeling config to inspect or correct the labels)."""
    from labelflow.contracts import ITEM_ID, PAYLOAD
    from labelflow.flows.project import Project
    from labelflow.integrations.label_studio import item_kind, table_rows
    from labelflow.integrations.label_studio.export import label_studio_tasks

    config = load_or_exit(config_path)
    with Project(config, config_path.resolve().parent) as project:
        labels = project.store.labels()
        numbers = project.store.rounds().set_index("id")["number"]
        precedence = {"crowd": 0, "functions": 1, "model": 2}  # as `labelflow export` ranks an item's labels
        labels = (
            labels.assign(round=labels["round_id"].map(numbers), _rank=labels["source"].map(precedence))
            .sort_values([ITEM_ID, "_rank"])
            .drop_duplicates(ITEM_ID)
        )
        dataset = project.dataset
        kind = item_kind(dataset)
        if kind == "table":
            row = table_rows(dataset)
            shown: dict[str, object] = {str(i): row(str(i)) for i in labels[ITEM_ID]}
        else:
            shown = dict(zip(dataset.items[ITEM_ID].astype(str), dataset.items[PAYLOAD], strict=True))
        path = output or project.workdir / "labels-label-studio.json"
        path.write_text(json.dumps(label_studio_tasks(labels, shown, kind)))
    console.print(f"Wrote {len(labels)} labels as Label Studio tasks ({kind}) to {path}")
