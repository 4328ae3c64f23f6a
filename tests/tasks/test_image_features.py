"""The image featurizer, plug-in featurizers and classifiers, and training on a featurizer's rows."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from labelflow.tasks.features import pool_features
from labelflow.tasks.features.config import FeaturesConfig, featurizer_factory
from labelflow.tasks.features.image import ImageError, ImageFeaturizer, descriptor_length
from labelflow.tasks.features.plugin import FunctionFeaturizer, PluginError, load_callable
from labelflow.tasks.training import TrainingConfig, build_pipeline, train_on_labels

Photos = Callable[..., list[tuple[str, str]]]


def test_image_descriptors_tell_the_classes_apart_the_same_in_every_process(
    tmp_path: Path, photos: Photos
) -> None:
    written = photos(40)
    paths = [str(tmp_path / "photos" / w[0]) for w in written]
    labels = [w[1] for w in written]
    one = ImageFeaturizer(n_jobs=1, chunk_size=16).fit(paths).transform(paths)
    two = ImageFeaturizer(n_jobs=2, chunk_size=16).transform(paths)
    assert one.shape == (40, descriptor_length(64)) and one.dtype == np.float32
    np.testing.assert_allclose(one, two, rtol=1e-6)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    assert cross_val_score(model, one, labels, cv=4).mean() >= 0.9


def test_an_unreadable_image_is_named(tmp_path: Path) -> None:
    (tmp_path / "notes.png").write_text("no pixels here")
    featurizer = ImageFeaturizer(n_jobs=1)
    with pytest.raises(ImageError, match=r"notes\.png: not an image"):
        featurizer.describe([str(tmp_path / "notes.png")])
    with pytest.raises(ImageError, match=r"gone\.png: no such image file"):
        featurizer.describe([str(tmp_path / "gone.png")])


def test_the_store_describes_each_photo_once_and_only_new_ones_later(
    tmp_path: Path, photos: Photos, monkeypatch: pytest.MonkeyPatch
) -> None:
    written = photos(30)
    items = pd.DataFrame(
        {"item_id": [w[0] for w in written], "payload": [str(tmp_path / "photos" / w[0]) for w in written]}
    )
    described: list[int] = []
    original = ImageFeaturizer.describe

    def counting(self: ImageFeaturizer, contents: list[str]) -> np.ndarray:
        described.append(len(contents))
        return original(self, contents)

    monkeypatch.setattr(ImageFeaturizer, "describe", counting)
    new = featurizer_factory("image", FeaturesConfig(n_jobs=1))
    first = pool_features(items.iloc[:20], tmp_path / "work", new_featurizer=new)
    assert sum(described) == 20 and first.computed == 20 and first.dense.shape == (20, 20)
    later = pool_features(items, tmp_path / "work", new_featurizer=new)
    assert sum(described) == 30 and later.computed == 10
    np.testing.assert_allclose(later.rows(items["item_id"][:20]).toarray(), first.matrix.toarray())


def embed(texts: list[str]) -> np.ndarray:
    """A plug-in for the tests: two numbers per text."""
    return np.asarray([[len(t), t.count("good")] for t in texts], dtype=np.float64)


def wrong_shape(texts: list[str]) -> np.ndarray:
    return np.zeros(len(texts) + 1)


def make_forest() -> object:
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(n_estimators=10, random_state=0)


HERE = f"{__name__}"


def test_a_features_function_gives_the_features_and_errors_say_what_is_wrong() -> None:
    featurizer = FunctionFeaturizer(f"{HERE}:embed").fit(["good good", "bad", "good"])
    np.testing.assert_array_equal(featurizer.transform(["a good one"]), [[10.0, 1.0]])
    with pytest.raises(PluginError, match=r"returned an array of shape \(3,\) for 2 item\(s\)"):
        FunctionFeaturizer(f"{HERE}:wrong_shape").transform(["a", "b"])
    with pytest.raises(PluginError, match=r"features\.function = 'no_such_module:f': cannot import"):
        load_callable("no_such_module:f", "features.function")
    with pytest.raises(PluginError, match="must look like 'module:callable'"):
        load_callable("embed", "features.function")


def test_a_plugin_classifier_trains_on_the_rows_and_a_bad_one_is_named() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 3))
    labeled = pd.DataFrame(X[:40], columns=["a", "b", "c"]).assign(
        item_id=[f"i{k}" for k in range(40)], label=np.where(X[:40, 0] > 0, "p", "n"), confidence=1.0
    )
    unlabeled = pd.DataFrame(X[40:], columns=["a", "b", "c"]).assign(item_id=[f"u{k}" for k in range(20)])
    config = TrainingConfig(model=f"{HERE}:make_forest", self_training=False)
    model = train_on_labels(labeled, unlabeled, ["a", "b", "c"], ["n", "p"], config)
    assert type(model.pipeline.steps[-1][1]).__name__ == "RandomForestClassifier"
    with pytest.raises(ValueError, match="'module:factory'"):
        TrainingConfig(model="gradient_magic")
    with pytest.raises(PluginError, match="has no attribute 'nothing'"):
        build_pipeline(TrainingConfig(model=f"{HERE}:nothing"))
    with pytest.raises(ValueError, match="returned ndarray, which has no fit or predict_proba"):
        build_pipeline(TrainingConfig(model=f"{HERE}:wrong_shape_factory"))


def wrong_shape_factory() -> np.ndarray:
    return np.zeros(2)


def test_a_config_naming_a_plugin_that_does_not_import_is_refused_at_load(tmp_path: Path) -> None:
    from labelflow.flows.config import ConfigError, load_config

    path = tmp_path / "labelflow.toml"
    path.write_text('[training]\nmodel = "nowhere.models:make"\n', encoding="utf-8")
    with pytest.raises(
        ConfigError, match=r"training.model = 'nowhere.models:make': cannot import 'nowhere.models'"
    ):
        load_config(path)
    assert sys.modules.get("nowhere") is None
