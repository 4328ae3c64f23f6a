"""Prefect wrappers of the pure stage logic in ``labelflow.tasks``: one thin module per stage (retries, caching,
logging and artifacts only)."""
