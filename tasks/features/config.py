"""Which featurizer a project uses: its kind's default, or the user's own function."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from pydantic import BaseModel, ConfigDict, Field, field_validator

from labelflow.tasks.features.base import Featurizer
from labelflow.tasks.features.image import ImageFeaturizer
from labelflow.tasks.features.plugin import FunctionFeaturizer
from labelflow.tasks.features.text import TextFeaturizer


class FeaturesConfig(BaseModel):
    """The ``[features]`` section: how a text or image project turns its items into features."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    function: str | None = Field(
        None,
        description="Your own features as 'module:callable': a function from a list of contents (texts, or "
        "images' absolute paths / URLs) to a 2-D array, one row per item (e.g. sentence-transformers or CLIP "
        "embeddings of a model you have locally). None: the kind's default (text: word + char TF-IDF; image: "
        "colour histogram + HOG).",
    )
    image_size: int = Field(
        64, ge=16, le=1024, description="Images are downscaled to this many pixels a side."
    )
    n_jobs: int = Field(
        2, ge=1, description="Processes that describe images, or count a large batch of texts' n-grams."
    )
    dense_dimensions: int = Field(
        64, ge=2, description="Dimensions of the dense view used for distances (diversity, cold start)."
    )

    @field_validator("function")
    @classmethod
    def _module_callable(cls, function: str | None) -> str | None:
        if function is not None and ":" not in function:
            raise ValueError(f"should look like 'module:callable' (got {function!r})")
        return function


def featurizer_factory(kind: str, config: FeaturesConfig) -> Callable[[int], Featurizer]:
    """A function from a version number to a new, unfitted featurizer for a ``kind`` ('text' or 'image')
    project, as :func:`labelflow.tasks.features.pool_features` takes it."""
    n = config.dense_dimensions
    if config.function is not None:
        return partial(_function_featurizer, config.function, n)
    if kind == "image":
        return partial(_image_featurizer, config.image_size, config.n_jobs, n)
    return partial(_text_featurizer, config.n_jobs, n)


def _function_featurizer(function: str, n_components: int, version: int) -> Featurizer:
    return FunctionFeaturizer(function, version=version, n_components=n_components)


def _image_featurizer(size: int, n_jobs: int, n_components: int, version: int) -> Featurizer:
    return ImageFeaturizer(version=version, size=size, n_jobs=n_jobs, n_components=n_components)


def _text_featurizer(n_jobs: int, n_components: int, version: int) -> Featurizer:
    return TextFeaturizer(version=version, n_components=n_components, n_jobs=n_jobs)
