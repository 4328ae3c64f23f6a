"""Selection on a Dask cluster from the pool store's partitions: the single-process choice, from local disk and
from S3, and a clear error when no scheduler answers."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import boto3
import numpy as np
import pandas as pd
import pytest
from distributed import Client, LocalCluster
from pydantic import ValidationError
from sklearn.linear_model import LogisticRegression

from labelflow.contracts import ITEM_ID, PAYLOAD, ItemSet
from labelflow.flows.config import ProjectConfig
from labelflow.integrations.dask_cluster import DaskClusterError, dask_client
from labelflow.integrations.pool_partitions import (
    PoolLocationError,
    PoolPiece,
    items_folder,
    piece_feature_columns,
    pool_pieces,
)
from labelflow.integrations.pool_store import LABEL, PoolStore
from labelflow.tasks.selection import SelectionConfig, choose_batch
from labelflow.tasks.selection.partitioned import MERGE_FAN_IN, choose_batch_partitioned

FEATURES = [f"x{c}" for c in range(6)]
PARTITION_SIZES = [
    310,
    280,
    95,
    400,
    260,
    330,
    150,
    290,
    305,
    180,
]  # more than MERGE_FAN_IN: two merge levels


def pool_partitions(workdir: Path) -> pd.DataFrame:
    """Ten item partitions in ``workdir``'s pool store (gold and held-out rows among the pool's); all rows."""
    store = PoolStore(workdir)
    rng = np.random.default_rng(7)
    frames = []
    for index, size in enumerate(PARTITION_SIZES):
        frame = pd.DataFrame(rng.normal(size=(size, len(FEATURES))).astype(np.float32), columns=FEATURES)
        frame.insert(0, ITEM_ID, [f"p{index}-{row}" for row in range(size)])
        sets = rng.choice(
            [ItemSet.POOL.value, ItemSet.GOLD.value, ItemSet.HELD_OUT.value], size, p=[0.8, 0.1, 0.1]
        )
        frame.insert(1, "item_set", sets)
        frame[PAYLOAD] = ""
        frame[LABEL] = None
        store.write_items(
            f"arrival-{index:02d}", frame, kind="table", feature_columns=FEATURES, label_names=["a"]
        )
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


@pytest.fixture(scope="module")
def client() -> Iterator[Client]:
    """One in-process worker with two threads: the cluster's protocol, without worker processes to start."""
    with (
        LocalCluster(processes=False, n_workers=1, threads_per_worker=2, dashboard_address=None) as cluster,
        Client(cluster) as connected,
    ):
        yield connected


def fitted_model(seed: int) -> LogisticRegression:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(300, len(FEATURES)))
    y = np.where(X[:, 0] + X[:, 1] > 0.3, "yes", np.where(X[:, 2] > 0.5, "maybe", "no"))
    return LogisticRegression().fit(X, y)


def test_the_dask_engine_chooses_what_one_process_chooses(tmp_path: Path, client: Client) -> None:
    items = pool_partitions(tmp_path)
    pool = items[items["item_set"] == ItemSet.POOL.value]
    labeled = frozenset(pool[ITEM_ID].iloc[::7])  # already labeled: never chosen
    unlabeled = pool[~pool[ITEM_ID].isin(labeled)].reset_index(drop=True)
    pieces = pool_pieces(items_folder(tmp_path))
    assert len(pieces) == len(PARTITION_SIZES) > MERGE_FAN_IN
    assert piece_feature_columns(pieces[0]) == FEATURES
    model = fitted_model(0)
    for strategy, diversity in [("margin", "kmeans"), ("entropy", "kcenter"), ("least_confidence", "none")]:
        config = SelectionConfig(strategy=strategy, diversity=diversity, batch_size=25, seed=3)
        one_process = choose_batch(unlabeled, FEATURES, model, config, round_id=4)
        on_dask = choose_batch_partitioned(
            pieces, FEATURES, model, config, client=client, round_id=4, excluded=labeled
        )
        pd.testing.assert_frame_equal(on_dask, one_process, check_exact=False, rtol=1e-6)
        assert len(on_dask) == 25 and on_dask[ITEM_ID].is_unique

    # no model: a cold start of seed_size items among the pool items (a sample of them), the labeled left out
    cold = choose_batch_partitioned(
        pieces, FEATURES, None, SelectionConfig(seed_size=12), client=client, round_id=1, excluded=labeled
    )
    assert len(cold) == 12 and cold[ITEM_ID].is_unique and set(cold["strategy"]) == {"cold_start"}
    assert set(cold[ITEM_ID]) <= set(unlabeled[ITEM_ID])


def test_partitions_on_s3_give_the_choice_of_local_ones(
    tmp_path: Path, client: Client, s3_bucket: tuple[str, str]
) -> None:
    url, bucket = s3_bucket
    pool_partitions(tmp_path)
    s3 = boto3.client("s3", endpoint_url=url)
    local = Path(items_folder(tmp_path))
    for path in sorted(local.glob("*.parquet")):
        s3.upload_file(str(path), bucket, f"projects/demo/pool/items/{path.name}")
    location = f"s3://{bucket}/projects/demo/pool/items"
    pieces = pool_pieces(location, s3_endpoint_url=url)
    assert [Path(p.location).name for p in pieces] == sorted(p.name for p in local.glob("*.parquet"))
    config = SelectionConfig(batch_size=10, pool_url=location, s3_endpoint_url=url, engine="dask")
    model = fitted_model(1)
    from_s3 = choose_batch_partitioned(pieces, FEATURES, model, config, client=client, round_id=2)
    from_disk = choose_batch_partitioned(
        pool_pieces(str(local)), FEATURES, model, config, client=client, round_id=2
    )
    pd.testing.assert_frame_equal(from_s3, from_disk)

    with pytest.raises(PoolLocationError, match="s3://hit-images/nowhere"):
        pool_pieces(f"s3://{bucket}/nowhere", s3_endpoint_url=url)
    with pytest.raises(PoolLocationError, match="no item partition"):
        pool_pieces(str(tmp_path))
    assert isinstance(pieces[0], PoolPiece) and pieces[0].s3_endpoint_url == url


def test_an_unreachable_scheduler_is_named_in_one_clear_error() -> None:
    with socket.socket() as free:  # a port nothing listens on once closed
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    address = f"tcp://127.0.0.1:{port}"
    with (
        pytest.raises(DaskClusterError, match=rf"no Dask scheduler answered at {address}.*dask_address"),
        dask_client(address, timeout_seconds=1),
    ):
        pytest.fail("a client connected to a closed port")


def test_dask_settings_are_checked_when_the_config_loads() -> None:
    with pytest.raises(ValidationError, match='only apply to engine = "dask"'):
        SelectionConfig(dask_address="tcp://scheduler:8786")
    with pytest.raises(ValidationError, match="dask_address"):
        SelectionConfig(engine="dask", dask_address="http://scheduler:8786")
    with pytest.raises(ValidationError, match="names no bucket"):
        SelectionConfig(engine="dask", pool_url="s3://")
    with pytest.raises(ValidationError, match="feature columns of a table"):
        ProjectConfig.model_validate(
            {"selection": {"engine": "dask"}, "dataset": {"kind": "text", "source": "a.csv"}, "labels": ["a"]}
        )
    assert (
        SelectionConfig(engine="dask", dask_address="tcp://10.0.0.5:8786").dask_address
        == "tcp://10.0.0.5:8786"
    )
