"""What a worker's death leaves on a Prefect work pool, and the automation that clears it.

A worker killed with its flow runs (a lost host, an out-of-memory kill) tells the Prefect server nothing: its runs
stay Running, and a poller's run keeps its deployment's concurrency slot until the slot's lease expires (the flow
engine renews it for 300 s at a time), so that every tick of that poller is cancelled until then. labelflow's
rounds do not wait for Prefect to notice: a round's lease heartbeat tells the collector that its holder is dead
(see ``collect.py``). That a *poller's* run died only Prefect can tell: flow runs emit heartbeat events every
``PREFECT_FLOWS_HEARTBEAT_FREQUENCY`` seconds (at least 30), and the automation made here marks a run Crashed when
they stop, which frees its slot — Prefect's own recipe for "zombie" runs.
"""

from __future__ import annotations

from datetime import timedelta

DEAD_RUNS_AUTOMATION = "labelflow: crash flow runs whose heartbeats stopped"
_STILL_ALIVE_OR_ENDED = {
    "prefect.flow-run.heartbeat",
    "prefect.flow-run.Completed",
    "prefect.flow-run.Failed",
    "prefect.flow-run.Cancelled",
    "prefect.flow-run.Crashed",
}


def detect_dead_flow_runs(within_seconds: float) -> None:
    """Create, or replace, the automation that marks a flow run Crashed when no heartbeat (and no final state)
    follows its last heartbeat within ``within_seconds``. ``within_seconds`` must exceed the
    workers' PREFECT_FLOWS_HEARTBEAT_FREQUENCY, with room for a late beat on a busy host."""
    from prefect import get_client
    from prefect.automations import Automation
    from prefect.client.schemas.objects import StateType
    from prefect.events.actions import ChangeFlowRunState
    from prefect.events.schemas.automations import EventTrigger, Posture
    from prefect.events.schemas.events import ResourceSpecification

    with get_client(sync_client=True) as client:
        for existing in client.read_automations_by_name(DEAD_RUNS_AUTOMATION):
            client.delete_automation(existing.id)
    Automation(
        name=DEAD_RUNS_AUTOMATION,
        description="A flow run whose process died (its worker killed) stops sending heartbeats: mark it Crashed.",
        trigger=EventTrigger(
            after={"prefect.flow-run.heartbeat"},
            expect=_STILL_ALIVE_OR_ENDED,
            match=ResourceSpecification({"prefect.resource.id": ["prefect.flow-run.*"]}),
            for_each={"prefect.resource.id"},
            posture=Posture.Proactive,
            threshold=1,
            within=timedelta(seconds=within_seconds),
        ),
        actions=[
            ChangeFlowRunState(
                state=StateType.CRASHED,
                message=f"its heartbeats stopped for {within_seconds:.0f} s: its worker or process died",
            )
        ],
    ).create()
