"""Thin Prefect @task wrappers around each stage's pure functions in labelflow.tasks."""
