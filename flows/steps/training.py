"""The training steps: the model retrained on the round's labels and evaluated on the held-out items."""

from __future__ import annotations

from collections.abc import Collection

import pandas as pd
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from labelflow.tasks.rows import RowView
from labelflow.tasks.training import (
    FeatureRows,
    TrainedModel,
    TrainingConfig,
    evaluate_frame,
    gold_items_to_certify,
    train_on_labels,
)


# NO_CACHE: the inputs include the pool's feature rows, which hashing would serialize for nothing
@task(name="retrain-model", task_run_name="retrain-model-round-{round_number}", cache_policy=NO_CACHE)
def retrain_model(
    labeled: pd.DataFrame,
    unlabeled: pd.DataFrame,
    feature_columns: list[str],
    label_names: list[str],
    config: TrainingConfig,
    round_number: int,
    gold_ids: Collection[str] = (),
    rows: FeatureRows | None = None,
    features_version: int | None = None,
    unlabeled_features: RowView | None = None,
) -> TrainedModel:
    """Train (see :func:`labelflow.tasks.training.train_on_labels`; ``rows``: item ids -> the featurizer's rows,
    which then replace the feature columns; ``unlabeled_features``: the unlabeled rows' features by position in
    the pool's matrix, when ``unlabeled`` holds only item ids) and log the threshold used, and whether the gold
    items can certify the pseudo-labels' target precision."""
    model = train_on_labels(
        labeled,
        unlabeled,
        feature_columns,
        label_names,
        config,
        gold_ids,
        rows=rows,
        features_version=features_version,
        unlabeled_features=unlabeled_features,
    )
    logger = get_run_logger()
    logger.info(
        "trained %s on %d crowd labels + %d pseudo-labels, %s features (threshold %s)",
        config.model,
        model.n_train,
        len(model.pseudo_labels),
        f"{model.n_features} featurizer v{features_version}" if features_version else "the table's",
        f"{model.self_training_threshold:.3f}" if model.self_training_threshold is not None else "-",
    )
    evidence = model.gold_evidence
    if evidence is not None and config.pseudo_label_precision is not None:
        bound = evidence.precision_bound()
        if bound < config.pseudo_label_precision:
            logger.info(
                "the gold items cannot certify the %.2f pseudo-label precision: %d of %d right above the threshold "
                "bound it at >= %.3f (95%%); %d gold items all right would (dataset.n_gold), or lower "
                "training.pseudo_label_precision",
                config.pseudo_label_precision,
                evidence.right,
                evidence.above,
                bound,
                gold_items_to_certify(config.pseudo_label_precision),
            )
    return model


@task(name="evaluate-model", task_run_name="evaluate-model-round-{round_number}", cache_policy=NO_CACHE)
def evaluate_model(
    model: TrainedModel,
    held_out: pd.DataFrame,
    feature_columns: list[str],
    round_number: int,
    rows: FeatureRows | None = None,
) -> dict[str, float]:
    """Held-out metrics (:func:`labelflow.tasks.training.evaluate_frame`), logged."""
    metrics = evaluate_frame(model, held_out, feature_columns, rows=rows)
    get_run_logger().info("held-out accuracy %.3f (macro-F1 %.3f)", metrics["accuracy"], metrics["macro_f1"])
    return metrics
