from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from labelflow.tasks.features import (
    Featurizer,
    TextFeaturizer,
    latest_version,
    load_featurizer,
    pool_features,
)
from labelflow.tasks.training import TrainingConfig, evaluate_frame, fit_model, train_on_labels

TEXTS = [
    "a warm , funny and moving film",
    "dull , overlong and badly acted",
    "the best thriller of the year",
    "a tedious mess with no story",
    "charming performances all around",
    "i wanted my money back",
    "funny and warm from start to end",
    "badly written , badly acted",
]
LABELS = ["pos", "neg"] * 4


def small(n_components: int) -> Callable[[int], Featurizer]:
    """A text featurizer with an ``n_components``-dimensional dense view, as the store makes one."""
    return lambda version: TextFeaturizer(version=version, n_components=n_components)


def items(texts: list[str], start: int = 0) -> pd.DataFrame:
    return pd.DataFrame({"item_id": [f"{k:03d}" for k in range(start, start + len(texts))], "payload": texts})


def test_text_features_are_sparse_with_a_small_dense_view() -> None:
    featurizer = TextFeaturizer(n_components=4).fit(TEXTS)
    matrix = featurizer.transform(TEXTS)
    assert sp.issparse(matrix) and matrix.format == "csr" and matrix.shape[0] == len(TEXTS)
    assert matrix.shape[1] > 100  # words, bigrams and character n-grams
    assert featurizer.dense_view(matrix).shape == (len(TEXTS), 4)


def test_a_later_arrival_gets_the_same_version_and_the_same_vector(tmp_path: Path) -> None:
    first = pool_features(items(TEXTS[:6]), tmp_path, new_featurizer=small(3))
    assert first.version == 1 and first.computed == 6 and latest_version(tmp_path) == 1
    later = pool_features(items([*TEXTS[:6], TEXTS[0]]).assign(item_id=[*first.ids, "999"]), tmp_path)
    assert later.version == 1 and later.computed == 1
    assert (later.rows(["999"]) != first.rows(["000"])).nnz == 0
    np.testing.assert_allclose(later.dense[-1], first.dense[0])


def test_known_items_are_never_featurized_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    transform = TextFeaturizer.transform

    def counted(self: TextFeaturizer, texts: Sequence[str]) -> sp.csr_matrix:
        calls.append(len(texts))
        return transform(self, texts)

    monkeypatch.setattr(TextFeaturizer, "transform", counted)
    pool_features(items(TEXTS[:6]), tmp_path, new_featurizer=small(3))
    assert calls == [6]
    pool_features(items(TEXTS[:6]), tmp_path, new_featurizer=small(3))
    assert calls == [6]  # nothing new: no featurizer call at all
    pool_features(items(TEXTS), tmp_path, new_featurizer=small(3))
    assert calls == [6, 2]  # only the two new items


def test_an_edited_text_is_featurized_again(tmp_path: Path) -> None:
    pool_features(items(TEXTS[:3]), tmp_path, new_featurizer=small(2))
    edited = items(TEXTS[:3]).assign(payload=[TEXTS[0], TEXTS[1], "a new text"])
    assert pool_features(edited, tmp_path, new_featurizer=small(2)).computed == 1


def test_training_and_self_training_stay_sparse() -> None:
    featurizer = TextFeaturizer(n_components=2).fit(TEXTS)
    X = featurizer.transform(TEXTS)
    y = np.asarray(LABELS, dtype=object)
    model = fit_model(
        X[:6],
        y[:6],
        np.ones(6),
        X[6:],
        np.asarray(["u1", "u2"], dtype=object),
        ["neg", "pos"],
        TrainingConfig(self_training_threshold=0.51, pseudo_label_precision=None),
    )
    assert model.predict_proba(X).shape == (8, 2)
    assert (model.predict(X[:6]) == y[:6]).mean() == 1.0


def test_a_text_project_trains_and_is_judged_on_its_stored_sparse_rows(tmp_path: Path) -> None:
    stored = pool_features(items(TEXTS), tmp_path, new_featurizer=small(2))
    frame = items(TEXTS).assign(label=LABELS, confidence=1.0)
    model = train_on_labels(
        frame.iloc[:6],
        frame.iloc[6:],
        [],
        ["neg", "pos"],
        TrainingConfig(self_training=False),
        rows=stored.rows,
    )
    assert sp.issparse(stored.rows(["000"])) and model.n_train == 6
    assert evaluate_frame(model, frame.iloc[:6], [], rows=stored.rows)["accuracy"] == 1.0


def test_the_featurizer_is_fitted_on_the_pool_only(tmp_path: Path) -> None:
    frame = items([*TEXTS[:6], "zyxwv unseenword"])
    stored = pool_features(frame, tmp_path, fit_on=np.arange(7) < 6, new_featurizer=small(2))
    featurizer = load_featurizer(tmp_path, stored.version)
    assert isinstance(featurizer, TextFeaturizer) and featurizer.columns is not None
    n_words = len(featurizer.columns[0])  # the word n-grams kept come first

    def word_features(text: str) -> int:
        return int(featurizer.transform([text])[:, :n_words].nnz)

    assert word_features("warm") == 1 and word_features("unseenword") == 0


def test_a_text_featurizer_stored_by_an_earlier_version_says_how_to_go_on() -> None:
    stale = TextFeaturizer.__new__(TextFeaturizer)
    with pytest.raises(ValueError, match="run `labelflow features refit`"):
        stale.__setstate__({"version": 1, "words": None, "chars": None, "svd": None})
