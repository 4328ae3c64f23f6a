"""Mechanical Turk commands: ``labelflow mturk balance|hits|expire`` for requesters, ``labelflow mturk-local`` to
serve a local MTurk-compatible endpoint, the local endpoint behind ``labelflow demo --crowd mturk-local``, and
``labelflow preview ITEM_ID``, the HIT page workers get for an item.

Every command talks to the endpoint the project's ``[crowd.mturk]`` section names: the sandbox by default,
production only with ``mturk.live = true`` *and* ``--live`` (see docs/mturk.md).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from labelflow.contracts import ITEM_ID
from labelflow.flows.cli_common import console, load_or_exit
from labelflow.flows.config import CONFIG_FILE, ProjectConfig
from labelflow.integrations.crowd.base import CrowdBackendError
from labelflow.integrations.crowd.mturk import QUESTION_MAX, MTurkCrowd, make_mturk_client, mturk_endpoint
from labelflow.integrations.crowd.mturk.forms import question_size, question_xml
from labelflow.integrations.crowd.simulated import SimulatedCrowdConfig
from labelflow.integrations.crowd.task import shown_payloads
from labelflow.integrations.mturk_local import Faults, LocalMTurk, LocalMTurkServer
from labelflow.integrations.screenshots import find_chromium, screenshot

mturk_app = typer.Typer(
    help="Mechanical Turk for requesters: the account balance, the HITs, expiring them.",
    no_args_is_help=True,
    add_completion=False,
)

ConfigOption = Annotated[Path, typer.Option("--config", "-c", help="The project's labelflow.toml.")]
LiveOption = Annotated[
    bool,
    typer.Option("--live", help="Production MTurk (real money); the config must also set mturk.live = true."),
]


@contextmanager
def _requester(path: Path, live: bool) -> Iterator[MTurkCrowd]:
    """The project's MTurk account; our errors become a red line and exit code 1."""
    config = load_or_exit(path)
    crowd, mturk = config.crowd, config.crowd.mturk
    try:
        console.print(f"MTurk at {mturk_endpoint(mturk, live=live)}")
        yield MTurkCrowd(
            make_mturk_client(mturk, live=live),
            mturk,
            list(config.labels),
            reward_per_answer=crowd.reward_per_answer,
            redundancy=crowd.redundancy,
            max_answers=crowd.max_answers,
            round_handles=lambda round_id: [],  # these commands publish and poll nothing
        )
    except CrowdBackendError as error:
        console.print(f"[red]{error}[/red]")
        raise typer.Exit(1) from None


@mturk_app.command()
def balance(config: ConfigOption = Path(CONFIG_FILE), live: LiveOption = False) -> None:
    """Show the requester account's available balance."""
    with _requester(config, live) as crowd:
        console.print(f"Available balance: [bold]${crowd.balance():.2f}[/bold]")


def _when(value: object) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M") if isinstance(value, datetime) else ""


@mturk_app.command()
def hits(config: ConfigOption = Path(CONFIG_FILE), live: LiveOption = False) -> None:
    """List the account's HITs: item, status, assignments, expiry."""
    with _requester(config, live) as crowd:
        table = Table(title="HITs")
        for column in ("HIT", "item", "status", "max", "available", "pending", "reviewed", "expires (UTC)"):
            table.add_column(column)
        n = 0
        for hit in crowd.hits():
            n += 1
            table.add_row(
                hit.get("HITId", ""),
                hit.get("RequesterAnnotation", ""),
                hit.get("HITStatus", ""),
                str(hit.get("MaxAssignments", "")),
                str(hit.get("NumberOfAssignmentsAvailable", "")),
                str(hit.get("NumberOfAssignmentsPending", "")),
                str(hit.get("NumberOfAssignmentsCompleted", "")),
                _when(hit.get("Expiration")),
            )
        console.print(table if n else "No HITs.")


@mturk_app.command()
def expire(
    hit_ids: Annotated[list[str] | None, typer.Argument(help="HIT ids to expire.")] = None,
    every: Annotated[bool, typer.Option("--all", help="Expire every HIT still on offer.")] = False,
    config: ConfigOption = Path(CONFIG_FILE),
    live: LiveOption = False,
) -> None:
    """Stop offering HITs (answers already accepted may still come in)."""
    if not hit_ids and not every:
        console.print("[red]name the HITs to expire, or pass --all[/red]")
        raise typer.Exit(2)
    with _requester(config, live) as crowd:
        targets = list(hit_ids or []) or [h["HITId"] for h in crowd.hits()]
        expired = [hit_id for hit_id in targets if crowd.expire(hit_id)]
        console.print(f"Expired {len(expired)} of {len(targets)} HIT(s); the others were no longer on offer.")


def preview(
    item_id: Annotated[
        str, typer.Argument(help="The item's id (`labelflow export --with-content` lists them).")
    ],
    config: ConfigOption = Path(CONFIG_FILE),
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Folder to write to (default: <workdir>/preview).")
    ] = None,
    png: Annotated[bool, typer.Option(help="Also write a PNG of the page (needs Chromium).")] = True,
) -> None:
    """Write the exact HIT page MTurk workers get for an item (HTML, as in preview before they accept) and, when
    Chromium is installed, a PNG of it. An image that must be hosted is uploaded as a real HIT's would be."""
    from labelflow.flows.project import Project

    project_config = load_or_exit(config)
    with Project(project_config, config.resolve().parent) as project:
        items = project.dataset.items
        if not (items[ITEM_ID] == item_id).any():
            console.print(f"[red]no item {escape(item_id)!r} in the dataset ({len(items)} items)[/red]")
            raise typer.Exit(1)
        payload = shown_payloads(items, project.dataset.kind, project.dataset.feature_columns).get(item_id)
        try:
            page = project.hit_pages().page(item_id, None if payload is None else str(payload))
        except CrowdBackendError as error:
            console.print(f"[red]{escape(str(error))}[/red]", soft_wrap=True)
            raise typer.Exit(1) from None
        folder = output or project.workdir / "preview"
    folder.mkdir(parents=True, exist_ok=True)
    stem = "".join(c if c.isalnum() or c in "-_." else "_" for c in item_id)
    html_path = folder / f"hit-{stem}.html"
    html_path.write_text(page, encoding="utf-8")
    size = question_size(question_xml(page))
    over = " [red](over MTurk's limit: it would be refused)[/red]" if size > QUESTION_MAX else ""
    console.print(
        f"HIT page: {escape(str(html_path))} ({size:,} of {QUESTION_MAX:,} bytes as a question){over}"
    )
    if not png:
        return
    if find_chromium() is None:
        console.print("No PNG: Chromium is not installed (apt-get install --no-install-recommends chromium).")
        return
    # A static page: a short virtual-time budget is plenty (the default waits for a single-page app's data).
    png_path = screenshot(
        html_path.resolve().as_uri(), html_path.with_suffix(".png"), width=1000, height=1000, budget_ms=1000
    )
    console.print(f"PNG: {escape(str(png_path))}")


def local_endpoint(
    db: Path,
    config: ProjectConfig | None,
    base_dir: Path,
    *,
    port: int = 0,
    time_scale: float = 1.0,
    people: bool = False,
) -> LocalMTurkServer:
    """A local endpoint whose simulated workers answer from the project's hidden truth (if a config is given)
    and behave as its ``crowd.simulated`` section says; with ``people``, HITs wait for people on its worker
    pages instead."""
    truth: dict[str, str] = {}
    workers = SimulatedCrowdConfig()
    if config is not None:
        from labelflow.flows.project import Project

        project = Project(config, base_dir)
        try:
            truth = {str(k): str(v) for k, v in project.dataset.hidden_truth.items()}
        finally:
            project.close()
        workers = config.crowd.simulated
    return LocalMTurkServer(
        LocalMTurk(db, truth=truth, workers=workers, time_scale=time_scale, people=people), port=port
    )


@contextmanager
def local_mturk_campaign(config: ProjectConfig, base_dir: Path, workdir: Path) -> Iterator[ProjectConfig]:
    """``config`` turned onto a local MTurk endpoint served for the duration (``demo --crowd mturk-local``)."""
    server = local_endpoint(workdir / "mturk-local.db", config, base_dir).start()
    try:
        crowd = config.crowd.model_copy(
            update={
                "backend": "mturk",
                "mturk": config.crowd.mturk.model_copy(update={"endpoint_url": server.url, "local": True}),
            }
        )
        console.print(f"Local MTurk endpoint at {server.url} (state in {workdir / 'mturk-local.db'})")
        yield config.model_copy(update={"crowd": crowd})
    finally:
        server.stop()
        server.mturk.close()


def mturk_local(
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="Answer from this project's hidden truth.")
    ] = None,
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1 (0: any free port).")] = 4480,
    db: Annotated[Path, typer.Option(help="SQLite file with the endpoint's state.")] = Path(
        ".labelflow/mturk-local.db"
    ),
    time_scale: Annotated[
        float, typer.Option(help="How much faster than wall-clock time workers act.")
    ] = 1.0,
    balance: Annotated[float | None, typer.Option(help="Set the account balance (dollars).")] = None,
    throttle: Annotated[int, typer.Option(help="Answer the next N calls with ThrottlingException.")] = 0,
    server_errors: Annotated[int, typer.Option(help="Answer the next N calls with HTTP 500 (-1: all).")] = 0,
    malformed: Annotated[int, typer.Option(help="Make the next N answers malformed XML.")] = 0,
    slow: Annotated[float, typer.Option(help="Multiply workers' answer times by this.")] = 1.0,
    people: Annotated[
        bool,
        typer.Option(
            "--people",
            help="No simulated workers: HITs wait for people at <endpoint>/worker/<HIT id>?workerId=…",
        ),
    ] = False,
) -> None:
    """Serve a local MTurk-compatible endpoint (MTurk's JSON protocol, simulated workers) until Ctrl-C."""
    project = load_or_exit(config) if config is not None else None
    base_dir = config.resolve().parent if config is not None else Path.cwd()
    server = local_endpoint(db.resolve(), project, base_dir, port=port, time_scale=time_scale, people=people)
    if balance is not None:
        server.mturk.set_balance(balance)
    server.mturk.set_faults(
        Faults(throttle=throttle, server_errors=server_errors, malformed_answers=malformed, slow_factor=slow)
    )
    snippet = (
        f'  [crowd]\n  backend = "mturk"\n  [crowd.mturk]\n  endpoint_url = "{server.url}"\n  local = true'
    )
    console.print(
        f"Local MTurk endpoint on [bold]{server.url}[/bold] (state in {escape(str(db))}). Point a project at it "
        f"with\n{escape(snippet)}\n"
        f'Fast-forward: POST {server.url}/_admin/advance {{"seconds": 3600}}; state: GET {server.url}/_admin/state'
        + (f"\nPeople work at {server.url}/worker/<HIT id>?workerId=<your id>" if people else ""),
        highlight=False,
        soft_wrap=True,  # a wrapped line of the snippet would not paste as TOML
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.mturk.close()
