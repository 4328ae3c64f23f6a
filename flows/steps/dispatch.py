"""The dispatch step: one wave's requests stored and published (:func:`labelflow.tasks.dispatch.publish_wave`)."""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from labelflow.integrations.crowd.base import CrowdBackend, Handle, LabelRequest
from labelflow.integrations.store import LabelStore
from labelflow.tasks.dispatch import publish_wave


@task(name="dispatch-wave", task_run_name="dispatch-round-{round_number}-wave-{wave}", cache_policy=NO_CACHE)
def dispatch_wave(
    store: LabelStore,
    backend: CrowdBackend,
    requests: list[LabelRequest],
    *,
    round_number: int,
    wave: int,
    spent: float,
    budget: float,
) -> list[Handle]:
    """Store the requests, publish those not yet published, and return the wave's handles."""
    dispatched = publish_wave(store, backend, requests, wave=wave, spent=spent, budget=budget)
    handles = dispatched.handles
    get_run_logger().info(
        "wave %d: %d requests (%d gold), %d newly published, %d answers asked",
        wave,
        len(handles),
        sum(h.is_gold for h in handles),
        dispatched.newly_published,
        sum(h.n_answers for h in handles),
    )
    return handles
