"""The project's flow runs as the Prefect server sees them, found by flow and deployment name."""

from __future__ import annotations

from collections.abc import Sequence

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
