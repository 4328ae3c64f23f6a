"""Label issues: crowd labels that the model, trained without them, contradicts with confidence.

Confident learning (Northcutt, Jiang & Chuang 2021, "Confident Learning: Estimating Uncertainty in Dataset
Labels", JAIR 70), the method behind cleanlab's ``find_label_issues``: with out-of-sample probabilities, each
class j gets a threshold t_j, the mean predicted probability of j over the items labeled j (the model's
self-confidence on that class). An item labeled i is counted for the class j with the largest p_j among those
with p_j >= t_j; it is an issue when that class is not i. Per-class thresholds make this robust to a model that
is over- or under-confident on some classes, which one fixed cut-off is not.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.model_selection import StratifiedKFold, cross_val_predict

from labelflow.contracts import ITEM_ID
from labelflow.tasks.training import FeatureRows, Features, TrainingConfig, build_pipeline, frame_features

ISSUE_COLUMNS = ("item_id", "label", "suggested", "p_label", "p_suggested", "confidence", "n_answers")


def confident_issues(given: np.ndarray, probas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For integer labels ``given`` and out-of-sample ``probas`` (n x K): a mask of issues and, per item, the
    class confident learning assigns it to (-1 where no class passes its threshold)."""
    k = probas.shape[1]
    thresholds = np.full(k, np.inf)
    for j in range(k):
        mine = given == j
        if mine.any():
            thresholds[j] = probas[mine, j].mean()
    above = probas >= thresholds[None, :]
    masked = np.where(above, probas, -np.inf)
    assigned = np.where(above.any(axis=1), masked.argmax(axis=1), -1)
    return (assigned >= 0) & (assigned != given), assigned


def out_of_sample_probas(
    X: Features, y: np.ndarray, label_names: Sequence[str], config: TrainingConfig, *, folds: int = 5
) -> np.ndarray | None:
    """Cross-validated probabilities over ``label_names`` (None if some class has too few items to split)."""
    counts = pd.Series(y).value_counts()
    folds = min(folds, int(counts.min()))
    if folds < 2 or len(counts) < 2:
        return None
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=config.seed)
    seen = cross_val_predict(
        build_pipeline(config, sparse=sp.issparse(X)), X, y, cv=cv, method="predict_proba"
    )
    classes = sorted(counts.index)  # cross_val_predict orders columns by the sorted classes
    probas = np.zeros((len(y), len(label_names)))
    probas[:, [list(label_names).index(c) for c in classes]] = seen
    return probas


def find_label_issues(
    labeled: pd.DataFrame,
    feature_columns: list[str],
    label_names: Sequence[str],
    config: TrainingConfig,
    *,
    rows: FeatureRows | None = None,
) -> pd.DataFrame:
    """Label issues among ``labeled`` (item_id, label, confidence, n_answers and the features, or ``rows`` of
    the item ids as the model trains on them), most contradicted first (ISSUE_COLUMNS)."""
    y = labeled["label"].astype(str).to_numpy()
    probas = out_of_sample_probas(frame_features(labeled, feature_columns, rows), y, label_names, config)
    if probas is None:
        return pd.DataFrame(columns=list(ISSUE_COLUMNS))
    codes = np.array([list(label_names).index(label) for label in y])
    issues, assigned = confident_issues(codes, probas)
    flagged = np.flatnonzero(issues)
    frame = pd.DataFrame(
        {
            ITEM_ID: labeled[ITEM_ID].to_numpy()[flagged],
            "label": y[flagged],
            "suggested": np.asarray(label_names, dtype=object)[assigned[flagged]],
            "p_label": probas[flagged, codes[flagged]],
            "p_suggested": probas[flagged, assigned[flagged]],
            "confidence": labeled["confidence"].to_numpy(dtype=np.float64)[flagged],
            "n_answers": labeled["n_answers"].to_numpy()[flagged] if "n_answers" in labeled else 0,
        }
    )
    return frame.sort_values("p_label").reset_index(drop=True)
