"""``labelflow webhooks``: Label Studio's webhooks as the Prefect event ``labelflow.answers.arrived``.

Each new or edited annotation of the project's Label Studio project becomes one event (labelled with the
project), on which the served collector ``<project>-collect-on-answers`` runs: a served round resumes as soon as
its wave is in instead of at the collector's next interval. ``labelflow serve`` runs the same receiver in a
thread; run this command alone when serve runs where Label Studio cannot reach it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from labelflow.flows.cli_common import console, load_or_exit
from labelflow.flows.config import CONFIG_FILE, ProjectConfig
from labelflow.flows.events import ANSWERS_ARRIVED, emit
from labelflow.integrations.label_studio.config import WEBHOOK_SECRET_VARIABLE, webhook_secret
from labelflow.integrations.label_studio.webhooks import AnnotationNotice, WebhookReceiver


def webhook_receiver(
    config: ProjectConfig, *, host: str | None = None, port: int | None = None
) -> WebhookReceiver:
    """The project's receiver (not started), on ``host``/``port`` or else the config's webhook_host and
    webhook_url's port; the shared secret from LABELFLOW_WEBHOOK_SECRET or the configured Secret block."""
    settings = config.crowd.label_studio

    def announce(notice: AnnotationNotice) -> None:
        emit(ANSWERS_ARRIVED, config.name, notice.as_payload())

    return WebhookReceiver(
        webhook_secret(settings),
        settings.project_title or config.name,
        announce,
        host=host or settings.webhook_host,
        port=settings.webhook_port if port is None else port,
    )


def webhooks(
    config_path: Annotated[Path, typer.Option("--config", "-c", help="The project's labelflow.toml.")] = Path(
        CONFIG_FILE
    ),
    host: Annotated[
        str | None,
        typer.Option(help="The address to listen on (default: crowd.label_studio.webhook_host, 127.0.0.1)."),
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(
            help="The port to listen on (default: the port of crowd.label_studio.webhook_url, 8765)."
        ),
    ] = None,
) -> None:
    """Receive Label Studio's webhooks and emit the Prefect event labelflow.answers.arrived for each new or edited
    annotation, which resumes a served round waiting for it. `labelflow serve` runs this too; run it alone when
    serve runs elsewhere. Needs PREFECT_API_URL, and the shared secret in LABELFLOW_WEBHOOK_SECRET (or the Prefect
    Secret block named by crowd.label_studio.webhook_secret); publishing registers the webhook at
    crowd.label_studio.webhook_url with it. Until Ctrl-C."""
    config = load_or_exit(config_path)
    if config.crowd.backend != "label_studio":
        console.print(
            f'[yellow]crowd.backend is "{config.crowd.backend}": only Label Studio calls webhooks.[/yellow]'
        )
    if not os.environ.get("PREFECT_API_URL"):
        console.print(
            "[red]PREFECT_API_URL is not set: the events go to the Prefect server that serves the project "
            "(`labelflow serve`). Export its URL.[/red]"
        )
        raise typer.Exit(2)
    receiver = webhook_receiver(config, host=host, port=port)
    console.print(
        f"receiving Label Studio's webhooks at {receiver.url} (secret from "
        f"{config.crowd.label_studio.webhook_secret or WEBHOOK_SECRET_VARIABLE}); Ctrl-C stops",
        soft_wrap=True,
        highlight=False,
    )
    if config.crowd.label_studio.webhook_url is None:
        console.print(
            "[yellow]crowd.label_studio.webhook_url is not set, so publishing registers no webhook: set it to "
            "this receiver's URL as Label Studio reaches it.[/yellow]"
        )
    try:
        receiver.serve_forever()
    except KeyboardInterrupt:
        console.print(f"stopped after {receiver.received} annotation webhook(s)")
    finally:
        receiver.stop()
        _deliver_events()


def _deliver_events() -> None:
    """Send the events still queued in this process before it exits."""
    from prefect.events.worker import EventsWorker

    EventsWorker.drain_all(timeout=10)
