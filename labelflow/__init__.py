"""labelflow: labeling pipelines as Prefect DAGs.

The package is one import root over the repository's top-level folders: ``labelflow.flows`` (the Prefect
lifecycle), ``labelflow.tasks`` (each stage's logic), ``labelflow.integrations`` (adapters to the outside world)
and ``labelflow.contracts`` (the columns every stage agrees on). See docs/architecture.md.
"""
