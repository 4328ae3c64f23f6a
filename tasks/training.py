"""Retraining: fit the model on the crowd's labels (weighted by their confidence), self-train on the pool, evaluate.

Self-training (Yarowsky 1995; scikit-learn's ``SelfTrainingClassifier`` runs the same loop): fit, pseudo-label
the unlabeled items the model is at least ``threshold`` sure of, refit, until no new item passes. We run the
loop ourselves because ``SelfTrainingClassifier`` cannot weight samples — it slices ``X`` per iteration but not a
routed ``sample_weight`` — and here a crowd label's weight is its aggregated confidence and a pseudo-label's its
predicted probability, so an uncertain label pulls less.

Active learning + self-training (Settles 2009 §7; humans label the uncertain items, the model the confident
ones, as in McCallum & Nigam 1998 and Tomanek & Hahn 2009): the pseudo-labeling threshold is not a fixed
probability but is chosen on the gold items to reach a target precision of pseudo-labels
(``pseudo_label_precision``). The gold items' probabilities come from models that did not see them (k folds over
the gold items), because a model fitted on an item is overconfident about it.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal, TypeAlias, get_args

import joblib
import numpy as np
import pandas as pd
import scipy.sparse as sp
from pydantic import BaseModel, ConfigDict, Field, field_validator
from scipy.stats import beta
from sklearn.base import BaseEstimator, TransformerMixin, clone
from sklearn.dummy import DummyClassifier
from sklearn.ensemble import RandomForestClassifier
from sklearn.kernel_approximation import Nystroem
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.validation import has_fit_parameter

from labelflow.contracts import ITEM_ID, LABEL_COLUMNS, LabelSource
from labelflow.tasks.features.plugin import load_callable
from labelflow.tasks.rows import RowView
from labelflow.tasks.selection import BootstrapCommittee

ModelKind = Literal["logistic_regression", "kernel_logistic_regression", "random_forest"]
BUILT_IN_MODELS: tuple[str, ...] = get_args(ModelKind)
# Dense rows (tables) or sparse CSR rows (text's TF-IDF, never densified).
Features: TypeAlias = np.ndarray | sp.csr_matrix
# Item ids -> their feature rows in that order (a text project's stored sparse rows).
FeatureRows: TypeAlias = Callable[[Sequence[str]], Features]


class ScaledRBFFeatures(TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """Random features of an RBF kernel (Nystroem) whose width follows SVC's ``gamma="scale"`` rule,
    ``1 / (n_features * Var(X))``, set when fitted — so the kernel suits the data's scale without tuning.

    Logistic regression on these features is a kernel machine with probabilities of its own (no calibration
    folds that a class with a handful of labels cannot fill) that takes sample weights; on digits it closes most
    of the gap between a linear model and an RBF SVM. The features should share a scale (pixels, embeddings):
    one rule sets the width for all of them."""

    def __init__(self, n_components: int = 300, random_state: int = 0) -> None:
        self.n_components = n_components
        self.random_state = random_state

    def fit(self, X: np.ndarray, y: object = None) -> ScaledRBFFeatures:
        X = np.asarray(X)
        variance = float(X.var()) or 1.0
        self.nystroem_ = Nystroem(
            gamma=1.0 / (X.shape[1] * variance),
            n_components=min(self.n_components, len(X)),
            random_state=self.random_state,
        ).fit(X)
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(self.nystroem_.transform(X))


class TrainingConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str = Field(
        "logistic_regression",
        description="The classifier family: logistic_regression (linear, fast on any pool), "
        "kernel_logistic_regression (RBF features, for features on one scale such as pixels; the digits "
        "demo's), random_forest; or 'module:factory', a callable of no arguments returning any "
        "scikit-learn-compatible classifier (fit, predict_proba, classes_).",
    )
    self_training: bool = Field(True, description="Pseudo-label confident pool items (source = model).")
    self_training_threshold: float = Field(
        0.95, gt=0.5, le=1.0, description="Predicted probability a pseudo-label needs."
    )
    self_training_max_iter: int = Field(5, ge=1, description="Self-training refits at most this often.")
    pseudo_label_precision: float | None = Field(
        0.98,
        gt=0.5,
        lt=1.0,
        description="Choose the self-training threshold on the gold items so that this share of pseudo-labels "
        "is right (None: use self_training_threshold, as while too few gold items pass any threshold).",
    )
    min_gold_support: int = Field(
        10, ge=1, description="Gold items a chosen threshold must keep above it to be trusted."
    )
    seed: int = Field(0, description="Seed of the model.")

    @field_validator("model")
    @classmethod
    def _known_model(cls, model: str) -> str:
        if model not in BUILT_IN_MODELS and ":" not in model:
            raise ValueError(
                f"Input should be {', '.join(map(repr, BUILT_IN_MODELS))} or 'module:factory' (got {model!r})"
            )
        return model


@dataclass(frozen=True)
class GoldEvidence:
    """What the gold items say of a self-training threshold: ``right`` of the ``above`` gold items at or above
    it were predicted right (out of fold)."""

    threshold: float
    above: int
    right: int

    def precision_bound(self, confidence: float = 0.95) -> float:
        """The one-sided Clopper-Pearson lower bound on the precision of pseudo-labels at this threshold."""
        if self.right == 0:
            return 0.0
        return float(beta.ppf(1 - confidence, self.right, self.above - self.right + 1))


def gold_items_to_certify(target: float, confidence: float = 0.95) -> int:
    """How many gold items, all right above the threshold, bound the precision at ``target`` or more."""
    return int(np.ceil(np.log(1 - confidence) / np.log(target)))


@dataclass(frozen=True)
class TrainedModel:
    pipeline: Pipeline
    label_names: list[str]
    pseudo_labels: pd.DataFrame  # item_id, label, confidence
    n_train: int
    self_training_threshold: float | None = None  # the threshold used (chosen on gold, or the fixed one)
    gold_evidence: GoldEvidence | None = None  # when the threshold was chosen on gold
    features_version: int | None = None  # the featurizer version of the rows it was fitted on (None: columns)

    @property
    def n_features(self) -> int | None:
        """How many features a row must have (None when the classifier does not say)."""
        n: int | None = getattr(self.pipeline, "n_features_in_", None)
        return n

    def predict_proba(self, X: Features) -> np.ndarray:
        """Probabilities over ``label_names`` in that order, zero for classes the model never saw."""
        probas = np.zeros((X.shape[0], len(self.label_names)))
        seen = [self.label_names.index(c) for c in self.pipeline.classes_]
        probas[:, seen] = self.pipeline.predict_proba(X)
        return probas

    def predict(self, X: Features) -> np.ndarray:
        names: np.ndarray = np.asarray(self.label_names, dtype=object)
        return np.asarray(names[self.predict_proba(X).argmax(axis=1)])


def build_pipeline(config: TrainingConfig, *, sparse: bool = False) -> Pipeline:
    """The configured model; for ``sparse`` rows (TF-IDF, already on one scale) logistic regression alone, since
    centring them would densify them, and weakly regularized: on the movie-review sentences' ~110k n-grams,
    C = 10 scores 0.720 held-out against 0.706 at C = 1 (benchmarks/real_crowds.py's ceiling). A plug-in
    ``module:factory`` model is used as it is, on any rows."""
    if config.model not in BUILT_IN_MODELS:
        return make_pipeline(plugin_classifier(config.model))
    if sparse:
        return make_pipeline(LogisticRegression(C=10.0, max_iter=2000, random_state=config.seed))
    if config.model == "random_forest":
        return make_pipeline(RandomForestClassifier(n_estimators=200, random_state=config.seed, n_jobs=1))
    if config.model == "kernel_logistic_regression":
        # weak regularization: the 300 random features need room to fit (C = 1 underfits digits badly)
        return make_pipeline(
            ScaledRBFFeatures(random_state=config.seed),
            LogisticRegression(C=10.0, max_iter=3000, random_state=config.seed),
        )
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, random_state=config.seed))


def plugin_classifier(spec: str) -> Any:
    """A fresh classifier from the ``training.model`` plug-in ``module:factory``, checked to be one."""
    classifier = load_callable(spec, "training.model")()
    missing = [name for name in ("fit", "predict_proba") if not callable(getattr(classifier, name, None))]
    if missing:
        raise ValueError(
            f"training.model = {spec!r} returned {type(classifier).__name__}, which has no "
            f"{' or '.join(missing)}: the factory must return a scikit-learn-compatible classifier"
        )
    return classifier


def fit_weighted(
    pipeline: Pipeline, X: Features, y: np.ndarray, sample_weight: np.ndarray | None
) -> Pipeline:
    """Fit ``pipeline`` with ``sample_weight`` routed to its last step, or without it when that step cannot take
    one (a plug-in classifier may not)."""
    name, last = pipeline.steps[-1]
    if sample_weight is None or not has_fit_parameter(last, "sample_weight"):
        return pipeline.fit(X, y)
    return pipeline.fit(X, y, **{f"{name}__sample_weight": sample_weight})


def fit_classifier(
    config: TrainingConfig, X: np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None = None
) -> Pipeline | DummyClassifier:
    """The configured classifier (:func:`build_pipeline`) fitted on ``X``, ``y``; on labels of a single class,
    the prior model, which gives that class probability 1.

    A crowd can label a whole seed set alike (all four seed items of a binary dataset, say): the labels then
    say nothing about how the classes differ, every classifier refuses to fit, and the prior is all they
    support. The next labels bought bring the other class back, and the real classifier with it."""
    if len(np.unique(y)) < 2:
        return DummyClassifier(strategy="prior").fit(X, y, sample_weight=sample_weight)
    return fit_weighted(clone(build_pipeline(config, sparse=sp.issparse(X))), X, y, sample_weight)


def precision_threshold(
    confidence: np.ndarray, correct: np.ndarray, target: float, *, min_support: int = 10
) -> float | None:
    """The lowest confidence threshold at which the items at or above it are right at least ``target`` of the
    time, with at least ``min_support`` items above it; None if no threshold qualifies.

    ``confidence`` is each item's top predicted probability (out of sample), ``correct`` whether the top class
    was the true one."""
    if not 0.0 < target <= 1.0:
        raise ValueError(f"target precision must be in (0, 1], got {target}")
    conf = np.asarray(confidence, dtype=np.float64)
    order = np.argsort(-conf, kind="stable")
    sorted_conf = conf[order]
    hits = np.cumsum(np.asarray(correct, dtype=bool)[order])
    support = np.arange(1, len(order) + 1)
    # only the last item of a run of equal confidences is a threshold: ">= t" keeps the whole run
    last_of_run = np.append(sorted_conf[1:] < sorted_conf[:-1], True)[: len(order)]
    ok = (hits / support >= target) & (support >= min_support) & last_of_run
    return float(sorted_conf[np.flatnonzero(ok)[-1]]) if ok.any() else None


def gold_threshold(
    X_labeled: Features,
    y_labeled: np.ndarray,
    weights: np.ndarray,
    is_gold: np.ndarray,
    config: TrainingConfig,
    *,
    n_folds: int = 5,
) -> GoldEvidence | None:
    """The self-training threshold that reaches ``config.pseudo_label_precision`` on the gold items, each
    predicted by a model fitted without it (``n_folds`` folds over the gold items), with the gold items' record
    above it; None if it cannot be chosen.

    The threshold is a point estimate: with 30 gold items all right above it, the precision is only known to be
    at least 0.905 (95% one-sided); certifying 0.98 takes 149 (:meth:`GoldEvidence.precision_bound`). We keep
    the point estimate, because a threshold held to the bound would turn self-training off on any realistic
    gold set, and report the bound beside it in each round."""
    gold_rows = np.flatnonzero(is_gold)
    if config.pseudo_label_precision is None or len(gold_rows) < config.min_gold_support:
        return None
    folds = np.full(len(y_labeled), -1)
    folds[np.random.default_rng(config.seed).permutation(gold_rows)] = np.arange(len(gold_rows)) % n_folds
    confidence = np.zeros(len(y_labeled))
    correct = np.zeros(len(y_labeled), dtype=bool)
    pipeline = build_pipeline(config, sparse=sp.issparse(X_labeled))
    for fold in range(n_folds):
        held = np.flatnonzero(folds == fold)
        train = np.flatnonzero(folds != fold)
        if len(held) == 0 or len(np.unique(y_labeled[train])) < 2:
            continue
        member = fit_weighted(clone(pipeline), X_labeled[train], y_labeled[train], weights[train])
        probas = member.predict_proba(X_labeled[held])
        confidence[held] = probas.max(axis=1)
        correct[held] = member.classes_[probas.argmax(axis=1)] == y_labeled[held]
    threshold = precision_threshold(
        confidence[gold_rows],
        correct[gold_rows],
        config.pseudo_label_precision,
        min_support=config.min_gold_support,
    )
    if threshold is None:
        return None
    # never at or below a coin toss: a pseudo-label must at least be the model's clear majority view
    threshold = max(threshold, 0.5 + 1e-9)
    above = gold_rows[confidence[gold_rows] >= threshold]
    return GoldEvidence(threshold, above=len(above), right=int(correct[above].sum()))


def fit_model(
    X_labeled: Features,
    y_labeled: np.ndarray,
    weights: np.ndarray,
    X_unlabeled: Features | RowView,
    unlabeled_ids: np.ndarray,
    label_names: list[str],
    config: TrainingConfig,
    *,
    is_gold: np.ndarray | None = None,
) -> TrainedModel:
    """Fit on the labeled rows, then self-train on the unlabeled ones (see the module docstring).

    ``is_gold`` marks the labeled rows whose labels are known (gold): with ``config.pseudo_label_precision``
    the self-training threshold is chosen on them (:func:`gold_threshold`), else ``self_training_threshold``.
    The rows may be sparse (both or neither): they stay sparse. ``X_unlabeled`` may be a :class:`RowView` of
    a larger matrix (a pool's rows by position), read a chunk at a time."""
    if len(np.unique(y_labeled)) < 2:
        raise ValueError(
            f"cannot train on {len(y_labeled)} labels of a single class {np.unique(y_labeled).tolist()}; "
            "label more items first"
        )
    threshold = config.self_training_threshold
    evidence = None
    n_unlabeled = X_unlabeled.shape[0]
    if config.self_training and is_gold is not None and n_unlabeled:
        evidence = gold_threshold(X_labeled, y_labeled, weights, np.asarray(is_gold, dtype=bool), config)
        threshold = evidence.threshold if evidence is not None else threshold
    sparse = sp.issparse(X_labeled)
    pipeline = clone(build_pipeline(config, sparse=sparse))
    # fixed-width text, not objects: the classifier sorts the labels of every fit (np.unique), and sorting 1.8M
    # Python strings took ~0.9 s a time
    labels = np.asarray(y_labeled).astype(str)
    pseudo = np.empty(n_unlabeled, dtype=labels.dtype)
    pseudo_conf = np.zeros(n_unlabeled)
    taken = np.zeros(n_unlabeled, dtype=bool)
    # the leading scaler's statistics of the rows stacked so far: each iteration adds the rows it takes, and the
    # statistics only those (refitted on all 1.86M rows at each of five iterations, it took ~4 of 23 s)
    scaler = (
        _partial_fit_in_chunks(clone(pipeline.steps[0][1]), X_labeled)
        if _scales_in_chunks(pipeline, X_labeled)
        else None
    )
    chosen = np.empty(0, dtype=np.intp)  # the rows the last iteration took
    for _ in range(config.self_training_max_iter if config.self_training else 1):
        y = np.concatenate([labels, pseudo[taken]])
        w = np.concatenate([weights, pseudo_conf[taken]])
        if scaler is not None:
            _partial_fit_in_chunks(scaler, X_unlabeled, chosen)
        # the stacked rows are held by the fit only: the last iteration's are gone before the next are built
        fit_on_own_rows(
            pipeline,
            _stacked(X_labeled, X_unlabeled, taken),
            y,
            w,
            fitted_scaler=copy.deepcopy(scaler),
        )
        # a row pseudo-labeled already keeps its label: only the others are predicted again
        open_rows = np.flatnonzero(~taken)
        if not config.self_training or open_rows.size == 0:
            break
        probas = probas_in_chunks(pipeline, X_unlabeled, rows=open_rows)
        confident = probas.max(axis=1) >= threshold
        if not confident.any():
            break
        chosen = open_rows[confident]
        pseudo[chosen] = pipeline.classes_[probas[confident].argmax(axis=1)]
        pseudo_conf[chosen] = probas[confident].max(axis=1)
        taken[chosen] = True
    pseudo_labels = pd.DataFrame(
        {ITEM_ID: unlabeled_ids[taken], "label": pseudo[taken].astype(str), "confidence": pseudo_conf[taken]}
    )
    return TrainedModel(
        pipeline,
        list(label_names),
        pseudo_labels,
        n_train=len(y_labeled),
        self_training_threshold=threshold if config.self_training else None,
        gold_evidence=evidence,
    )


def fit_on_own_rows(
    pipeline: Pipeline,
    X: Features,
    y: np.ndarray,
    sample_weight: np.ndarray,
    chunk_rows: int = 100_000,
    *,
    fitted_scaler: StandardScaler | None = None,
) -> Pipeline:
    """:func:`fit_weighted` on rows nobody else holds (a copy made for this fit). A leading ``StandardScaler``
    is fitted a chunk of rows at a time and standardizes them in place, then the rest of the pipeline is fitted
    on them: fitted on the whole, the scaler upcasts a float32 copy of them to float64 (1.8M x 64 rows: 0.9 GB
    and ~2.5 CPU seconds, against ~0.5 s in chunks) and standardizes into another copy. On rows that fit in one
    chunk this is exactly ``pipeline.fit``. ``fitted_scaler``, when given, has seen exactly these rows already
    and is used as it is."""
    name, scaler = pipeline.steps[0]
    if not _scales_in_chunks(pipeline, X):
        return fit_weighted(pipeline, X, y, sample_weight)
    if fitted_scaler is not None:
        scaler = fitted_scaler
    else:
        scaler = clone(scaler)  # refitted from scratch: partial_fit adds to what a fitted scaler has seen
        _partial_fit_in_chunks(scaler, X, chunk_rows=chunk_rows)
    for start in range(0, X.shape[0], chunk_rows):
        X[start : start + chunk_rows] = scaler.transform(X[start : start + chunk_rows])
    pipeline.steps[0] = (name, scaler)  # as Pipeline.fit stores each fitted step
    fit_weighted(Pipeline(pipeline.steps[1:]), X, y, sample_weight)
    return pipeline


def _scales_in_chunks(pipeline: Pipeline, X: Features) -> bool:
    """Whether :func:`fit_on_own_rows` fits ``pipeline``'s leading scaler on ``X`` a chunk at a time: a
    ``StandardScaler`` followed by another step, on dense rows."""
    first = pipeline.steps[0][1]
    return isinstance(first, StandardScaler) and isinstance(X, np.ndarray) and len(pipeline.steps) > 1


def _partial_fit_in_chunks(
    scaler: StandardScaler, X: Features | RowView, rows: np.ndarray | None = None, chunk_rows: int = 100_000
) -> StandardScaler:
    """``scaler`` updated with the rows of ``X`` (those at the positions ``rows``, when given), a chunk at a time."""
    n = X.shape[0] if rows is None else len(rows)
    for start in range(0, n, chunk_rows):
        scaler.partial_fit(
            X[start : start + chunk_rows] if rows is None else X[rows[start : start + chunk_rows]]
        )
    return scaler


def _stacked(
    X_labeled: Features, X_unlabeled: Features | RowView, taken: np.ndarray, chunk_rows: int = 100_000
) -> Features:
    """The labeled rows, then the ``taken`` unlabeled ones; dense rows copied once, a chunk at a time, straight
    into the result (``np.vstack`` of a fancy-indexed selection copies 2M rows twice)."""
    if sp.issparse(X_labeled):
        return sp.vstack([X_labeled, X_unlabeled[taken]])
    n_labeled = X_labeled.shape[0]
    X = np.empty((n_labeled + int(taken.sum()), X_labeled.shape[1]), np.result_type(X_labeled, X_unlabeled))
    X[:n_labeled] = X_labeled
    filled = n_labeled
    for start in range(0, X_unlabeled.shape[0], chunk_rows):
        rows = X_unlabeled[start + np.flatnonzero(taken[start : start + chunk_rows])]
        X[filled : filled + len(rows)] = rows
        filled += len(rows)
    return X


def probas_in_chunks(
    pipeline: Pipeline, X: Features | RowView, chunk_rows: int = 100_000, *, rows: np.ndarray | None = None
) -> np.ndarray:
    """``pipeline.predict_proba(X)`` (of the ``rows`` of ``X`` when given, by position) a chunk of rows at a
    time: its scaled copy of 2M x 64 rows would be another 0.5-1 GB."""
    if rows is None and X.shape[0] <= chunk_rows and not isinstance(X, RowView):
        return np.asarray(pipeline.predict_proba(X))
    n = X.shape[0] if rows is None else len(rows)
    return np.concatenate(
        [
            pipeline.predict_proba(
                X[start : start + chunk_rows] if rows is None else X[rows[start : start + chunk_rows]]
            )
            for start in range(0, n, chunk_rows)
        ]
    )


def evaluate(model: TrainedModel, X: Features, y: np.ndarray) -> dict[str, float]:
    """Held-out accuracy and macro-F1."""
    predicted = model.predict(X)
    return {
        "accuracy": float(accuracy_score(y, predicted)),
        "macro_f1": float(f1_score(y, predicted, average="macro", labels=model.label_names, zero_division=0)),
        "n_train": float(model.n_train),
        "n_pseudo": float(len(model.pseudo_labels)),
    }


def pseudo_label_frame(model: TrainedModel, round_id: int) -> pd.DataFrame:
    """The model's pseudo-labels in the label contract, ``source = model`` — never passed off as crowd labels."""
    frame = model.pseudo_labels.assign(
        method="self_training", n_answers=0, round_id=round_id, source=LabelSource.MODEL.value
    )
    return frame[list(LABEL_COLUMNS)]


def fit_committee(
    labeled: pd.DataFrame,
    feature_columns: list[str],
    config: TrainingConfig,
    n_members: int,
    *,
    seed: int,
    rows: FeatureRows | None = None,
) -> BootstrapCommittee:
    """A query-by-committee committee: the configured model (no self-training) on ``n_members`` stratified
    bootstraps of the labeled items, weighted by their confidence (see :class:`BootstrapCommittee`); on
    ``rows`` of their ids when given (as :func:`train_on_labels`)."""
    X = frame_features(labeled, feature_columns, rows)
    return BootstrapCommittee(
        build_pipeline(config, sparse=sp.issparse(X)), n_members, random_state=seed
    ).fit(
        X,
        labeled["label"].to_numpy(dtype=object),
        labeled["confidence"].to_numpy(dtype=np.float64),
    )


def save_model(model: TrainedModel, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    joblib.dump(model, path)
    return path


def load_model(path: Path) -> TrainedModel:
    model = joblib.load(path)
    if not isinstance(model, TrainedModel):
        raise TypeError(f"{path} does not hold a labelflow model")
    return model


def train_on_labels(
    labeled: pd.DataFrame,
    unlabeled: pd.DataFrame,
    feature_columns: list[str],
    label_names: list[str],
    config: TrainingConfig,
    gold_ids: Collection[str] = (),
    *,
    rows: FeatureRows | None = None,
    features_version: int | None = None,
    unlabeled_features: Features | RowView | None = None,
) -> TrainedModel:
    """:func:`fit_model` on frames: ``labeled`` has the features plus ``label`` and ``confidence``;
    ``unlabeled`` the features and item_id; ``gold_ids`` the labeled items whose labels are known (the
    self-training threshold is chosen on them). ``rows`` (item ids -> feature rows, e.g. a text project's sparse
    TF-IDF) replaces the frames' feature columns; the model records ``features_version``, the featurizer
    version that made them. ``unlabeled_features``: the unlabeled rows' features held apart from the frame (a
    :class:`RowView` of the pool's, so that a large pool is not copied), ``unlabeled`` then needs item_id only;
    ``rows``, when given, come first."""
    X_unlabeled = (
        unlabeled_features
        if unlabeled_features is not None and rows is None
        else frame_features(unlabeled, feature_columns, rows)
    )
    model = fit_model(
        frame_features(labeled, feature_columns, rows),
        labeled["label"].to_numpy(dtype=object),
        labeled["confidence"].to_numpy(dtype=np.float64),
        X_unlabeled,
        unlabeled[ITEM_ID].to_numpy(dtype=object),
        label_names,
        config,
        is_gold=labeled[ITEM_ID].isin(list(gold_ids)).to_numpy(),
    )
    return replace(model, features_version=features_version)


def evaluate_frame(
    model: TrainedModel,
    held_out: pd.DataFrame,
    feature_columns: list[str],
    *,
    rows: FeatureRows | None = None,
) -> dict[str, float]:
    """:func:`evaluate` on a frame of the features (or ``rows`` of its item ids) and ``label``."""
    return evaluate(
        model, frame_features(held_out, feature_columns, rows), held_out["label"].to_numpy(dtype=object)
    )


def frame_features(frame: pd.DataFrame, feature_columns: list[str], rows: FeatureRows | None) -> Features:
    if rows is not None:
        return rows(frame[ITEM_ID].astype(str).tolist())
    # float32 columns stay float32 (scikit-learn fits and predicts in it): a float64 copy of a 2M x 64 pool
    # would be 1 GB, where the float32 block is often handed over without any copy
    features = frame[feature_columns]
    single = bool(feature_columns) and all(dtype == np.float32 for dtype in features.dtypes)
    return features.to_numpy(dtype=np.float32 if single else np.float64)
