"""The ``labelflow`` command: start campaigns and look at what they produced."""

from __future__ import annotations

import gc
import json
import os
import shutil
from datetime import datetime
from pathlib import Path
from typing import Annotated

import pandas as pd
import typer
from rich.table import Table

from labelflow.contracts import ITEM_ID, PAYLOAD
from labelflow.flows.answers_cli import aggregate, import_answers
from labelflow.flows.cli_common import (
    DEBUG_OPTION,
    CliGroup,
    console,
    console_logs_without_tracebacks,
    global_options,
    load_or_exit,
)
from labelflow.flows.config import CONFIG_FILE, DATASET_KINDS, ProjectConfig, example_config
from labelflow.flows.label_studio_cli import label_studio_app
from labelflow.flows.mturk_cli import local_mturk_campaign, mturk_app, mturk_local, preview
from labelflow.flows.store_cli import store_app
from labelflow.flows.webhooks import webhooks
from labelflow.integrations.inbox import LocalInbox

app = typer.Typer(
    help="labelflow — labeling pipelines as Prefect flows: active learning picks items, a crowd answers, "
    "quality control aggregates, a model retrains, round after round.",
    no_args_is_help=True,
    add_completion=False,
    cls=CliGroup,
)
app.add_typer(mturk_app, name="mturk")
app.add_typer(store_app, name="store")
app.add_typer(label_studio_app, name="label-studio")
app.command("mturk-local")(mturk_local)
app.command("preview")(preview)
app.command("import-answers")(import_answers)
app.command("aggregate")(aggregate)
app.command("webhooks")(webhooks)
features_app = typer.Typer(
    help="The featurizer of a text or image project: fitted once on the pool, then kept.",
    no_args_is_help=True,
)
app.add_typer(features_app, name="features")

ConfigOption = Annotated[
    Path, typer.Option("--config", "-c", help="The project's labelflow.toml (`labelflow init` writes one).")
]


@app.callback()
def _options(
    debug: Annotated[
        bool, typer.Option(DEBUG_OPTION, help="Show an error's full traceback instead of one or two lines.")
    ] = False,
) -> None:
    global_options.debug = debug


def _quiet_libraries() -> None:
    """Before a command runs flows: no analytics, and (without --debug) no tracebacks in the console's log lines."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    if not global_options.debug:
        console_logs_without_tracebacks()


def _run_campaign(config: ProjectConfig, base_dir: Path, live: bool = False) -> None:
    _quiet_libraries()
    from labelflow.flows.campaign import labeling_campaign
    from labelflow.flows.project import Project
    from labelflow.flows.reporting import export_labels, learning_curve, plot_learning_curve
    from labelflow.integrations.prefect_server import prefect_api

    where = (
        os.environ.get("PREFECT_API_URL")
        or "a temporary local Prefect server (set PREFECT_API_URL to keep runs)"
    )
    console.print(f"[bold]labelflow[/bold]: campaign [cyan]{config.name}[/cyan] on {where}")
    with prefect_api():
        result = labeling_campaign(config, str(base_dir), live)
    project = Project(config, base_dir)
    try:
        curve = learning_curve(project.store)
        _print_curve(curve, f"Learning curve — {config.name}")
        png = plot_learning_curve(curve, project.workdir / "learning_curve.png", f"labelflow: {config.name}")
        export, n_labels = export_labels(project.store, project.workdir / "labels.csv", "csv")
    finally:
        project.close()
    final = result.final
    if final is None:
        console.print(
            f"\nNo round started: {result.stopped_because}. {_how_to_go_on(result.stopped_because)}"
        )
    else:
        paid = int(curve["answers_total_bought"].iloc[-1])
        console.print(
            f"\n[bold]Done[/bold] ({result.stopped_because}): "
            f"held-out accuracy [bold]{final.model_accuracy:.3f}[/bold] after {paid} paid answers "
            f"(gold included, ${final.spent_total:.2f}); crowd label accuracy {_fmt(final.label_accuracy) or 'n/a'}."
        )
    console.print(f"Learning curve plot: {png}\nLabels ({n_labels} items): {export}")


# What to do about each reason labeling_campaign gives for stopping, by how the reason begins
HOW_TO_GO_ON = {
    "budget spent": "Raise budget.max_spend in the config to go on.",
    "max rounds": "Raise budget.max_rounds in the config to go on.",
    "target accuracy": "Raise budget.target_accuracy in the config to go on.",
    "predictions stabilized": "More labels would not change the model; set selection.stopping.enabled = false "
    "to go on anyway.",
    "another round": "Wait for that run to end (`labelflow status` shows its round), then run again.",
    "waiting for the project owner's labels": "Label the items in Label Studio, then run again (`labelflow "
    "bootstrap` reads the labels given so far).",
}


def _how_to_go_on(stopped_because: str) -> str:
    return next((hint for start, hint in HOW_TO_GO_ON.items() if stopped_because.startswith(start)), "")


def _fmt(value: object, spec: str = ".3f") -> str:
    """A table cell: blank for missing values, formatted numbers otherwise."""
    if value is None or (isinstance(value, float) and value != value):
        return ""
    return format(value, spec) if isinstance(value, (int, float, datetime)) else str(value)


def _print_curve(curve: pd.DataFrame, title: str) -> None:
    table = Table(title=title)
    for column in ("round", "answers paid", "spent", "crowd labels", "label accuracy", "model accuracy"):
        table.add_column(column, justify="right")
    for row in curve.to_dict("records"):
        table.add_row(
            str(row["round"]),
            str(row["answers_total_bought"]),
            f"${_fmt(row['spent'], '.2f')}",
            str(row["crowd_labels"]),
            _fmt(row["label_accuracy"]) or "n/a",
            _fmt(row["model_accuracy"]),
        )
    console.print(table)


DEMO_WORKDIR = Path(".labelflow/demo")
DEMO_CONFIG = DEMO_WORKDIR / CONFIG_FILE


def _write_demo_config(config: ProjectConfig) -> Path:
    """The demo's project as a config file in its workdir, so that `status`, `workers` and `export` find it."""
    path = Path(config.workdir) / CONFIG_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "# Written by `labelflow demo`: its project (digits, simulated crowd) and where it keeps its store.\n"
        f"name = {json.dumps(config.name)}\nworkdir = {json.dumps(config.workdir)}\n"
        f"store_url = {json.dumps(config.store_url)}\n",
        encoding="utf-8",
    )
    return path


def _config_or_the_demos(config: Path) -> Path:
    """``config``; but when it is the default and absent while the demo's exists, the demo's, saying so: after
    `labelflow demo`, `labelflow status` is expected to show the demo."""
    if config == Path(CONFIG_FILE) and not config.exists() and DEMO_CONFIG.exists():
        console.print(
            f"No {CONFIG_FILE} here: showing the demo's project ({DEMO_CONFIG}); pass --config for another."
        )
        return DEMO_CONFIG
    return config


@app.command()
def demo(
    workdir: Annotated[
        Path, typer.Option(help="Where the demo keeps its store, models, plot and export.")
    ] = DEMO_WORKDIR,
    keep: Annotated[
        bool, typer.Option(help="Continue the previous demo instead of starting afresh.")
    ] = False,
    crowd: Annotated[
        str, typer.Option(help="simulated, or mturk-local: through boto3 against a local MTurk endpoint.")
    ] = "simulated",
) -> None:
    """Run a full campaign on the embedded defaults: digits, a simulated crowd with 30% bad workers, SQLite."""
    if crowd not in ("simulated", "mturk-local"):
        console.print(f"[red]--crowd must be simulated or mturk-local, not {crowd!r}[/red]")
        raise typer.Exit(2)
    workdir = workdir.resolve()
    if workdir.exists() and not keep:
        shutil.rmtree(workdir)
    config = ProjectConfig(workdir=str(workdir), store_url=f"sqlite:///{workdir / 'labelflow.db'}")
    _write_demo_config(config)
    if crowd == "mturk-local":
        with local_mturk_campaign(config, Path.cwd(), workdir) as mturk_config:
            _run_campaign(mturk_config, Path.cwd())
    else:
        _run_campaign(config, Path.cwd())


@app.command()
def run(
    config: ConfigOption = Path(CONFIG_FILE),
    live: Annotated[
        bool, typer.Option("--live", help="Production MTurk (real money); needs mturk.live = true too.")
    ] = False,
) -> None:
    """Run (or continue) the campaign a config describes, until its budget, target or max rounds stop it."""
    _run_campaign(load_or_exit(config), config.resolve().parent, live)


@app.command("bootstrap")
def bootstrap_command(
    config: ConfigOption = Path(CONFIG_FILE),
    wait: Annotated[
        bool,
        typer.Option(
            "--wait",
            help="Keep reading the owner's labels (every crowd.poll_interval_minutes) until all are in.",
        ),
    ] = False,
) -> None:
    """Start a project whose data has too few labels: draw its gold and held-out items (dataset.n_gold and
    n_held_out, a random sample stratified by the pool's clusters), put them in the project owner's queue in
    Label Studio (the server of crowd.label_studio), and store the labels given so far. Run it again to read
    more (nothing is imported twice); rounds start once every item is labeled."""
    import logging

    from rich.logging import RichHandler

    from labelflow.flows.bootstrap import bootstrap
    from labelflow.flows.project import Project

    project_config = load_or_exit(config)
    log = logging.getLogger("labelflow.bootstrap")
    log.setLevel(logging.INFO)
    log.propagate = False  # to the console once, whatever handlers a flow run left on the root logger
    if not log.handlers:
        log.addHandler(RichHandler(console=console, show_time=False, show_level=False, show_path=False))
    with Project(project_config, config.resolve().parent) as project:
        if project.cold_start is None:
            console.print(
                "The data's own labels give the gold and held-out items: nothing to bootstrap. `labelflow run` "
                "starts the first round."
            )
            return
        progress = bootstrap(project, wait=wait, log=log)
    if progress.done:
        console.print(f"Ready: {progress.describe()}. `labelflow run` starts the first round.")
    else:
        console.print(
            f"Label them in Label Studio{f' ({progress.where})' if progress.where else ''}, then run "
            "`labelflow bootstrap` again (or `labelflow run`, which waits for them)."
        )


@app.command()
def status(config: ConfigOption = Path(CONFIG_FILE)) -> None:
    """Show the project's rounds and its learning curve."""
    from labelflow.flows.bootstrap import progress_in_store
    from labelflow.flows.project import Project
    from labelflow.flows.reporting import learning_curve

    config = _config_or_the_demos(config)
    project_config = load_or_exit(config)
    project = Project(project_config, config.resolve().parent)
    try:
        if (waiting := progress_in_store(project.store)) is not None:
            console.print(
                f"Cold start: {waiting.describe()} in Label Studio, as last read; no round starts before all are "
                "in. `labelflow bootstrap` reads the labels given since.",
                soft_wrap=True,
            )
        rounds = project.store.rounds()
        if rounds.empty:
            console.print("No rounds yet: `labelflow run` starts one.")
            return
        table = Table(title=f"Rounds — {project_config.name}")
        for column in ("round", "status", "started", "finished", "answers", "model accuracy", "error"):
            table.add_column(column)
        for row in rounds.to_dict("records"):
            summary: dict[str, object] = row["summary"] or {}
            table.add_row(
                str(row["number"]),
                str(row["status"]),
                _fmt(row["started_at"], "%Y-%m-%d %H:%M"),
                "" if pd.isna(row["finished_at"]) else _fmt(row["finished_at"], "%Y-%m-%d %H:%M"),
                _fmt(summary.get("answers_bought"), "d"),
                _fmt(summary.get("model_accuracy")),
                str(row["error"] or "")[:80],
            )
        console.print(table)
        _print_curve(learning_curve(project.store), "Learning curve")
    finally:
        project.close()


@app.command()
def workers(config: ConfigOption = Path(CONFIG_FILE)) -> None:
    """Show every worker's quality: answers, agreement, gold answers, spammer score and status."""
    from labelflow.flows.project import Project

    config = _config_or_the_demos(config)
    project_config = load_or_exit(config)
    project = Project(project_config, config.resolve().parent)
    try:
        table_rows = project.store.workers()
    finally:
        project.close()
    if table_rows.empty:
        console.print("No workers yet: they appear after the first round's review.")
        return
    table = Table(title=f"Workers — {project_config.name}")
    for column in ("worker", "backend", "status", "answers", "agreement", "gold", "spammer score"):
        table.add_column(column, justify="left" if column in ("worker", "backend", "status") else "right")
    ordered = table_rows.sort_values(["status", "accuracy"], ascending=[True, False], na_position="last")
    for row in ordered.to_dict("records"):
        table.add_row(
            str(row["worker_id"]),
            str(row["backend"]),
            str(row["status"]),
            str(row["n_answers"]),
            _fmt(row["accuracy"]),
            str(row["n_gold"]),
            _fmt(row["spammer_score"]),
        )
    console.print(table)
    console.print(
        "agreement: expected share of right answers under the consensus, each answer's own vote left out; "
        "spammer score: Raykar & Yu (0 = answers ignore the truth, 1 = perfect)."
    )


@app.command()
def export(
    config: ConfigOption = Path(CONFIG_FILE),
    output: Annotated[Path | None, typer.Option("--output", "-o", help="File to write.")] = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="csv, parquet or jsonl.")] = "csv",
    with_content: Annotated[
        bool, typer.Option("--with-content", help="Add each item's payload and feature columns.")
    ] = False,
    all_sets: Annotated[
        bool,
        typer.Option(
            "--all-sets", help="Add the gold and held-out items with their known labels, and a set column."
        ),
    ] = False,
    answers: Annotated[
        bool,
        typer.Option("--answers", help="Export the raw answers instead (worker, label, time, round, wave)."),
    ] = False,
) -> None:
    """Export the latest label of every item, with confidence, source (crowd/model), provenance and whether a
    model label is stale; or, with --answers, every answer."""
    from labelflow.flows.project import Project
    from labelflow.flows.reporting import EXPORT_FORMATS, export_answers, export_labels

    if fmt not in EXPORT_FORMATS:
        console.print(f"[red]--format must be one of {', '.join(EXPORT_FORMATS)}, not {fmt!r}[/red]")
        raise typer.Exit(2)
    config = _config_or_the_demos(config)
    project_config = load_or_exit(config)
    project = Project(project_config, config.resolve().parent)
    try:
        if answers:
            path, n = export_answers(project.store, output or project.workdir / f"answers.{fmt}", fmt)
        else:
            dataset = project.dataset if with_content or all_sets else None
            path, n = export_labels(
                project.store,
                output or project.workdir / f"labels.{fmt}",
                fmt,
                known_labels=dataset.known_labels if dataset is not None and all_sets else None,
                content=(
                    dataset.items[[ITEM_ID, PAYLOAD, *dataset.feature_columns]]
                    if dataset is not None and with_content
                    else None
                ),
            )
    finally:
        project.close()
    console.print(f"Wrote {n} {'answers' if answers else 'labels'} to {path}")


@app.command()
def serve(
    config: ConfigOption = Path(CONFIG_FILE),
    limit: Annotated[int, typer.Option(help="Most flow runs at once.")] = 4,
) -> None:
    """Serve the project's deployments (scheduled rounds, the inbox watcher, the answer collector) on the
    Prefect server at PREFECT_API_URL, until Ctrl-C. With a Label Studio crowd and crowd.label_studio.webhook_url,
    it also receives Label Studio's webhooks (as `labelflow webhooks` does), so rounds resume as answers arrive."""
    _quiet_libraries()
    from labelflow.flows.serve import AlreadyServedError, serve_project

    if not os.environ.get("PREFECT_API_URL"):
        console.print(
            "[yellow]PREFECT_API_URL is not set: serving needs a Prefect server that outlives this command. "
            "Start one (see README, 'Watching a run in the Prefect UI') and export PREFECT_API_URL.[/yellow]"
        )
        raise typer.Exit(2)
    try:
        serve_project(load_or_exit(config), config.resolve().parent, limit=limit)
    except AlreadyServedError as error:
        console.print(f"[red]{error}[/red]: stop it first, or serve another project")
        raise typer.Exit(1) from error


@app.command("detect-dead-runs")
def detect_dead_runs(
    within: Annotated[
        float,
        typer.Option(
            min=31,
            help="Seconds without a heartbeat after which a flow run is marked Crashed; more than the workers' "
            "PREFECT_FLOWS_HEARTBEAT_FREQUENCY (at least 30).",
        ),
    ] = 90,
) -> None:
    """On a work pool: mark flow runs Crashed when their heartbeats stop (a killed worker), so that a dead
    poller's run gives its concurrency slot back after --within seconds instead of 5 minutes. Run once per Prefect
    server; running it again replaces the automation."""
    _quiet_libraries()
    from labelflow.flows.work_pool import DEAD_RUNS_AUTOMATION, detect_dead_flow_runs

    if not os.environ.get("PREFECT_API_URL"):
        console.print(
            "[yellow]PREFECT_API_URL is not set: point it at the work pool's Prefect server.[/yellow]"
        )
        raise typer.Exit(2)
    detect_dead_flow_runs(within)
    console.print(
        f"Automation '{DEAD_RUNS_AUTOMATION}' set: a flow run silent for {within:g} s is marked Crashed."
    )


@app.command()
def ingest(
    file: Annotated[
        Path, typer.Argument(help="A .csv or .parquet file of new items (same columns as the dataset).")
    ],
    config: ConfigOption = Path(CONFIG_FILE),
) -> None:
    """Put FILE into the project's inbox and ingest it now: validated, added to the pool, filed away."""
    _quiet_libraries()
    from labelflow.flows.ingest import ingest_file
    from labelflow.flows.project import Project

    project_config = load_or_exit(config)
    if not file.exists():
        console.print(f"[red]{file}: no such file[/red]")
        raise typer.Exit(2)
    project = Project(project_config, config.resolve().parent)
    try:
        inbox = project.inbox
        if isinstance(inbox, LocalInbox):
            name = inbox.receive(file)
        else:
            console.print(
                "[red]`labelflow ingest` copies into a local inbox; upload to the S3 prefix instead[/red]"
            )
            raise typer.Exit(2)
    finally:
        project.close()
    result = ingest_file(project_config, name, str(config.resolve().parent))
    colour = "green" if result.status == "processed" else "yellow" if result.status == "duplicate" else "red"
    console.print(
        f"[{colour}]{result.name}: {result.status}[/{colour}], {result.n_added} new pool items, "
        f"filed at {result.location}"
    )
    if result.report:
        console.print(result.report)
        if result.status == "quarantined":
            raise typer.Exit(1)


@features_app.command("refit")
def refit_features(config: ConfigOption = Path(CONFIG_FILE)) -> None:
    """Fit a new featurizer version on today's pool and featurize every item with it.

    The featurizer is fitted once, on the first pool, and every later item is featurized by that same version,
    so that an item's features never change under a model. Refit on purpose when the pool has changed a lot
    (new vocabulary, new kinds of images): the next round trains its model on the new version and, as the
    current model was fitted on the old one, chooses its batch as a cold start."""
    from labelflow.flows.project import Project

    project_config = load_or_exit(config)
    with Project(project_config, config.resolve().parent) as project:
        rounds = project.store.rounds()
        if (rounds["status"] == "running").any():
            console.print(
                "[red]a round of this project is running; let it finish (labelflow run) before refitting, so "
                "that its model and its batch use one featurizer[/red]"
            )
            raise typer.Exit(1)
        before, features = project.refit_features()
    console.print(
        f"Featurizer version {features.version} fitted on the pool "
        f"({'was version ' + str(before) if before else 'the first one'}); {features.computed} item(s) featurized "
        f"into {features.matrix.shape[1]} features, kept under {project.workdir / 'features'}. The next round "
        "trains on them; its batch is a cold start, since the current model knows the old features."
    )


@app.command()
def init(
    path: Annotated[Path, typer.Argument(help="Where to write the config.")] = Path(CONFIG_FILE),
    force: Annotated[bool, typer.Option(help="Overwrite an existing file.")] = False,
    kind: Annotated[
        str | None,
        typer.Option(
            help="Start a project of this kind: table (numeric columns), text (a text column) or image (a folder "
            "or a column of image paths/URLs). Without it, the digits demo's settings."
        ),
    ] = None,
) -> None:
    """Write a commented example labelflow.toml with every setting at its default."""
    if kind is not None and kind not in DATASET_KINDS:
        console.print(f"[red]--kind must be one of {', '.join(DATASET_KINDS)} (got {kind!r})[/red]")
        raise typer.Exit(2)
    if path.exists() and not force:
        console.print(f"[red]{path} exists; pass --force to overwrite it[/red]")
        raise typer.Exit(1)
    path.write_text(example_config(kind), encoding="utf-8")
    console.print(f"Wrote {path}. Edit it, then `labelflow run --config {path}`.")


def main() -> None:
    """The ``labelflow`` command. The objects of the ~4,000 modules imported by now live as long as the process:
    frozen, the garbage collector no longer walks them at each full collection of a big ingest or round, nor at
    the interpreter's exit, which took ~1.5 s of every command (a one-off check: 1.40-1.54 s, 0.07-0.11 s frozen)."""
    gc.freeze()
    app()


if __name__ == "__main__":
    main()
