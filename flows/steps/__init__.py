"""Thin Prefect @task wrappers around each stage's pure functions in labelflow.tasks: one module per stage
(retries, caching, logging and artifacts only)."""
