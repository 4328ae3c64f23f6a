"""The project's flow runs as the Prefect server sees them, found by flow and deployment name; and marking the
runs of a dead process Crashed."""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.filters import (
    DeploymentFilter,
    DeploymentFilterName,
    FlowFilter,
    FlowFilterName,
    FlowRunFilter,
    FlowRunFilterState,
    FlowRunFilterStateType,
    FlowRunFilterTags,
)
from prefect.client.schemas.objects import FlowRun, StateType


def read_runs(
    client: SyncPrefectClient,
    deployments: Sequence[tuple[str, str]],
    states: Sequence[StateType],
    *,
    tag: str | None = None,
    limit: int | None = None,
) -> list[FlowRun]:
    """Flow runs of the ``(flow name, deployment name)`` pairs in one of ``states`` (and with ``tag``)."""
    runs: list[FlowRun] = client.read_flow_runs(
        flow_filter=FlowFilter(name=FlowFilterName(any_=[flow for flow, _ in deployments])),
        deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=[name for _, name in deployments])),
        flow_run_filter=FlowRunFilter(
            state=FlowRunFilterState(type=FlowRunFilterStateType(any_=list(states))),
            tags=FlowRunFilterTags(all_=[tag]) if tag else None,
        ),
        limit=limit,
    )
    return runs


def crash_flow_run(flow_run_id: str, reason: str) -> bool:
    """Mark the flow run Crashed, unless it already ended; only for a run whose process is known to be dead.
    Frees its concurrency slot and keeps the UI honest. True if it was marked."""
    from prefect import get_client
    from prefect.states import Crashed

    with get_client(sync_client=True) as client:
        run = client.read_flow_run(UUID(flow_run_id))
        if run.state is not None and run.state.is_final():
            return False
        # forced: the server's rules guard transitions that a live run proposes; this one has no process
        client.set_flow_run_state(run.id, Crashed(message=f"Crashed: {reason}"), force=True)
    return True
