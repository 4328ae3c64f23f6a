"""The selection stage as Prefect tasks: the round's batch of pool items for the crowd, chosen in the round's
process or on a Dask cluster."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from labelflow.contracts import ITEM_ID
from labelflow.integrations.pool_partitions import items_folder, piece_feature_columns, pool_pieces
from labelflow.tasks.rows import RowView
from labelflow.tasks.selection import Committee, ProbabilisticModel, SelectionConfig, choose_batch
from labelflow.tasks.training import FeatureRows


@task(name="select-batch", task_run_name="select-batch-round-{round_number}", cache_policy=NO_CACHE)
def select_batch(
    pool: pd.DataFrame,
    feature_columns: list[str],
    model: ProbabilisticModel | None,
    config: SelectionConfig,
    round_id: int,
    batch_size: int | None = None,
    committee: Committee | None = None,
    scoring_rows: FeatureRows | None = None,
    *,
    round_number: int,
    features: RowView | None = None,
) -> pd.DataFrame:
    """:func:`labelflow.tasks.selection.choose_batch`, logged. With ``scoring_rows`` (item ids -> the rows the
    model was trained on, e.g. sparse TF-IDF) the model scores those, and ``feature_columns`` (their dense view)
    only spread the batch out and start it cold. ``features``: the ``pool`` rows' features by position in the
    pool's matrix, when ``pool`` holds only item ids (see ``choose_batch``)."""
    batch = choose_batch(
        pool,
        feature_columns,
        model,
        config,
        round_id=round_id,
        batch_size=batch_size,
        committee=committee,
        features=features,
        scoring_features=(
            scoring_rows(pool[ITEM_ID].astype(str).tolist())
            if scoring_rows is not None and (model is not None or committee is not None) and len(pool)
            else None
        ),
    )
    get_run_logger().info(
        "selected %d of %d unlabeled items (%s)",
        len(batch),
        len(pool),
        batch["strategy"].iat[0] if len(batch) else "-",
    )
    return batch


@task(
    name="select-batch-on-dask",
    task_run_name="select-batch-on-dask-round-{round_number}",
    cache_policy=NO_CACHE,
)
def select_batch_on_dask(
    unlabeled: pd.DataFrame,
    pool_ids: pd.Series,
    model: ProbabilisticModel | None,
    config: SelectionConfig,
    round_id: int,
    workdir: Path,
    batch_size: int | None = None,
    committee: Committee | None = None,
    *,
    round_number: int,
) -> pd.DataFrame:
    """The batch chosen among the ``unlabeled`` rows as :func:`select_batch` chooses it, but scored piece by
    piece from the pool store's partitions (``config.pool_url``, by default under ``workdir``) on the Dask
    cluster at ``config.dask_address`` (:mod:`labelflow.tasks.selection.partitioned`). The pool items missing
    from ``unlabeled`` (of all ``pool_ids``: labeled, weakly labeled, never answerable) are left out."""
    # imported here: distributed takes seconds to import, which every round and command of the local engine
    # (the default) would pay for nothing
    from labelflow.integrations.dask_cluster import dask_client
    from labelflow.tasks.selection.partitioned import choose_batch_partitioned

    excluded = frozenset(pool_ids[~pool_ids.isin(unlabeled[ITEM_ID])].astype(str))
    location = config.pool_url or items_folder(workdir)
    pieces = pool_pieces(location, s3_endpoint_url=config.s3_endpoint_url)
    columns = piece_feature_columns(pieces[0])
    if not columns:
        raise ValueError(
            f'selection.engine = "dask" scores the feature columns of a table; the pool at {location} has none '
            '(a text or image dataset, featurized by the project): use engine = "local"'
        )
    with dask_client(config.dask_address) as client:
        batch = choose_batch_partitioned(
            pieces,
            columns,
            model,
            config,
            client=client,
            round_id=round_id,
            batch_size=batch_size,
            committee=committee,
            excluded=excluded,
        )
        workers = len(client.scheduler_info()["workers"])
    get_run_logger().info(
        "selected %d of %d unlabeled items (%s) from %d piece(s) of %s on %d Dask worker(s)",
        len(batch),
        len(unlabeled),
        batch["strategy"].iat[0] if len(batch) else "-",
        len(pieces),
        location,
        workers,
    )
    return batch
