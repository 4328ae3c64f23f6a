"""The label store's exceptions."""


class StoreError(RuntimeError):
    """The store refused an operation; the message names the item, round or key involved."""


class RoundInProgressError(StoreError):
    """A round is already running for the project (for callers that may only start, never resume, a round)."""
