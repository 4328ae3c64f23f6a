"""Plug-ins named in the config as ``module:callable``: the user's own embeddings (``features.function``) and
classifiers (``training.model``), imported when used, with errors that name the setting and what went wrong."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from labelflow.tasks.features.base import DenseFeaturizer


class PluginError(ValueError):
    """A ``module:callable`` setting that cannot be imported or does not behave as its setting requires."""


def load_callable(spec: str, setting: str) -> Callable[..., Any]:
    """The callable named by ``spec`` (``module:callable``, dots allowed in both parts), or a
    :class:`PluginError` naming ``setting``.

    Examples
    --------
    >>> load_callable("math:sqrt", "features.function")(4.0)
    2.0
    >>> load_callable("math:nope", "features.function")
    Traceback (most recent call last):
    ...
    labelflow.tasks.features.plugin.PluginError: features.function = 'math:nope': module 'math' has no attribute 'nope'
    """
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise PluginError(f"{setting} must look like 'module:callable', got {spec!r}")
    try:
        found: Any = importlib.import_module(module_name)
    except Exception as error:  # an ImportError, or whatever the user's module raises while importing
        raise PluginError(
            f"{setting} = {spec!r}: cannot import {module_name!r} ({type(error).__name__}: {error}); install it "
            "or put it on PYTHONPATH"
        ) from None
    for part in attribute.split("."):
        if not hasattr(found, part):
            raise PluginError(f"{setting} = {spec!r}: module {module_name!r} has no attribute {attribute!r}")
        found = getattr(found, part)
    if not callable(found):
        raise PluginError(f"{setting} = {spec!r} is a {type(found).__name__}, not a callable")
    return found  # type: ignore[no-any-return]


class FunctionFeaturizer(DenseFeaturizer):
    """Features from the user's own ``module:callable`` (``features.function``): a function from a list of
    contents (texts, or images' absolute paths or URLs) to a 2-D array, one row per item — sentence-transformers
    or CLIP embeddings from a model the team has locally, say.

    The featurizer stores the name, not the function: it is imported again wherever features are computed.

    Examples
    --------
    >>> featurizer = FunctionFeaturizer("labelflow.tasks.features.plugin:text_lengths").fit(["a", "bb", "ccc"])
    >>> featurizer.transform(["dddd"]).tolist()
    [[4.0, 1.0]]
    """

    def __init__(self, function: str, *, version: int = 1, n_components: int = 64, seed: int = 0) -> None:
        super().__init__(version=version, n_components=n_components, seed=seed)
        self.function = function

    def describe(self, contents: Sequence[str]) -> np.ndarray:
        values = load_callable(self.function, "features.function")(list(contents))
        try:
            matrix = np.asarray(values, dtype=np.float64)
        except (TypeError, ValueError) as error:
            raise PluginError(
                f"features.function = {self.function!r} must return numbers, one row per item: {error}"
            ) from None
        if matrix.ndim != 2 or matrix.shape[0] != len(contents):
            raise PluginError(
                f"features.function = {self.function!r} returned an array of shape {matrix.shape} for "
                f"{len(contents)} item(s); it must return a 2-D array with one row per item"
            )
        if not np.isfinite(matrix).all():
            raise PluginError(f"features.function = {self.function!r} returned NaN or infinite values")
        return matrix


def text_lengths(texts: Sequence[str]) -> np.ndarray:
    """A tiny example of a ``features.function``: each text's length and word count."""
    return np.asarray([[len(text), len(text.split())] for text in texts], dtype=np.float64)
