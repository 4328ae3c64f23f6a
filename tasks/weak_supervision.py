"""Weak supervision: labeling functions vote on pool items; their votes are aggregated like crowd answers.

Data programming (Ratner et al. 2017, "Snorkel: Rapid Training Data Creation with Weak Supervision", VLDB): a
labeling function looks at one item and returns a label name or ``None`` to abstain. Each function is treated as
one *worker* of the crowd, so its votes go through the same aggregation engine as crowd answers
(:func:`labelflow.tasks.aggregation.aggregate_answers_frame`, one-coin Dawid-Skene by default, with gold items clamped):
a function that is often wrong gets a low accuracy and counts for little, exactly as a careless worker does.

The applier is fault-tolerant the way Snorkel's is: a function that raises on an item abstains on that item, and
the failure is *counted* per function (and the first error kept), never hidden and never allowed to stop the
round. Labels that come out of this module carry ``source = functions``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator

from labelflow.contracts import ITEM_ID, LABEL_COLUMNS, LabelSource, require_columns
from labelflow.tasks.aggregation import aggregate_answers_frame

ABSTAIN = None
WORKER_PREFIX = "lf:"
DIGITS_FUNCTIONS = "labelflow.tasks.weak_supervision:digits_labeling_functions"


class WeakSupervisionConfig(BaseModel):
    """Labeling functions in the round: their votes label pool items (``source = functions``), steer selection
    away from what they already label confidently, and train the model at a reduced weight."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    functions: str | None = Field(
        None,
        description="Labeling functions as 'module:name' — a list of them or a function returning one, e.g. "
        f"'{DIGITS_FUNCTIONS}' for the digits demo (none: no weak supervision).",
    )
    training_weight: float = Field(
        0.5,
        ge=0,
        le=1,
        description="A function label's training weight is this times its aggregated confidence (a crowd "
        "label's is its confidence): functions are cheap, but they are not people looking at the item.",
    )
    skip_confident: bool = Field(
        True,
        description="Leave pool items the functions label with at least quality.confidence_target out of the "
        "crowd's batches (the functions' votes as a prior for selection).",
    )

    @field_validator("functions")
    @classmethod
    def _loadable(cls, spec: str | None) -> str | None:
        if spec is not None:
            load_labeling_functions(spec)
        return spec


def load_labeling_functions(spec: str) -> list[LabelingFunction]:
    """The labeling functions named by ``spec`` ('module:name'), with an error that says what is wrong."""
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise ValueError(f"weak_supervision.functions must look like 'module:name', got {spec!r}")
    try:
        found = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as error:
        raise ValueError(f"weak_supervision.functions = {spec!r}: cannot load it ({error})") from None
    functions = found() if callable(found) and not isinstance(found, LabelingFunction) else found
    if isinstance(functions, LabelingFunction):
        functions = [functions]
    if not isinstance(functions, Sequence) or not all(isinstance(f, LabelingFunction) for f in functions):
        raise ValueError(
            f"weak_supervision.functions = {spec!r} must give labeling functions (made with "
            f"@labeling_function), got {type(functions).__name__}"
        )
    return list(functions)


@dataclass(frozen=True)
class LabelingFunction:
    """A named function from one item (a pandas row: the pool's columns) to a label name or None (abstain); or,
    ``vectorized``, from a frame of items to one label-or-None per row."""

    name: str
    function: Callable[[Any], Any]
    vectorized: bool = False

    def __call__(self, items: Any) -> Any:
        return self.function(items)


def labeling_function(
    name: str | None = None, *, vectorized: bool = False
) -> Callable[[Callable[[Any], Any]], LabelingFunction]:
    """Decorator: ``@labeling_function()`` turns ``f(item: pd.Series) -> label | None`` into a
    :class:`LabelingFunction` named after the function (or ``name``); with ``vectorized=True`` the function
    takes a DataFrame and returns a sequence of label-or-None, one per row (much faster on a large pool)."""

    def wrap(function: Callable[[Any], Any]) -> LabelingFunction:
        return LabelingFunction(name or function.__name__, function, vectorized)

    return wrap


@dataclass
class LabelingResult:
    """What :func:`apply_labeling_functions` returns: ``votes`` (item_id x function name, label or None),
    ``failures`` (items each function raised on) and ``errors`` (the first error of each failing function)."""

    votes: pd.DataFrame
    failures: dict[str, int] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    def answers(self) -> pd.DataFrame:
        """The votes in the answers contract (``item_id, worker_id, label``), one row per non-abstaining vote:
        each function a worker named ``lf:<name>``."""
        long = self.votes.melt(ignore_index=False, var_name="function", value_name="label").dropna()
        return pd.DataFrame(
            {
                ITEM_ID: long.index.astype(str).to_numpy(),
                "worker_id": (WORKER_PREFIX + long["function"].astype(str)).to_numpy(),
                "label": long["label"].astype(str).to_numpy(),
            }
        ).reset_index(drop=True)


def apply_labeling_functions(
    pool: pd.DataFrame, functions: Sequence[LabelingFunction], label_names: Sequence[str]
) -> LabelingResult:
    """Every function on every pool row (the pandas applier). A function that raises on an item, or returns a
    label outside ``label_names``, abstains on that item and the failure is counted against it; nothing is
    re-raised. A vectorized function that raises on the whole frame is retried row by row, so its failures are
    counted per item too."""
    require_columns(pool, [ITEM_ID], "the pool")
    names = [f.name for f in functions]
    if len(set(names)) != len(names):
        raise ValueError(f"labeling function names must be unique (they are worker ids), got {names}")
    allowed = set(label_names)
    item_ids = pool[ITEM_ID].astype(str).to_numpy()
    votes: dict[str, list[str | None]] = {}
    failures: dict[str, int] = {}
    errors: dict[str, str] = {}

    def fail(function: LabelingFunction, item_id: str, error: Exception) -> None:
        failures[function.name] = failures.get(function.name, 0) + 1
        errors.setdefault(function.name, f"item {item_id}: {type(error).__name__}: {error}")

    def checked(vote: Any) -> str | None:
        if vote is None or (isinstance(vote, float) and np.isnan(vote)):
            return None
        if str(vote) not in allowed:
            raise ValueError(f"returned {vote!r}, which is not one of the labels {sorted(allowed)}")
        return str(vote)

    for function in functions:
        column: list[str | None] = []
        whole: list[Any] | None = None
        if function.vectorized:
            try:
                whole = list(function(pool))
                if len(whole) != len(pool):
                    raise ValueError(f"returned {len(whole)} votes for {len(pool)} items")
            except Exception:  # retried row by row below, where each failing item is counted
                whole = None
        for position in range(len(pool)):
            try:
                if whole is not None:
                    vote = whole[position]
                elif function.vectorized:
                    vote = next(iter(function(pool.iloc[position : position + 1])))
                else:
                    vote = function(pool.iloc[position])
                column.append(checked(vote))
            except Exception as error:  # fault tolerance: count it, abstain, carry on (module docstring)
                fail(function, item_ids[position], error)
                column.append(None)
        votes[function.name] = column
    frame = pd.DataFrame(votes, index=pd.Index(item_ids, name=ITEM_ID), dtype=object)
    return LabelingResult(frame, failures, errors)


def labeling_function_analysis(result: LabelingResult, gold: pd.Series | None = None) -> pd.DataFrame:
    """Snorkel's LF summary, one row per function: ``coverage`` (share of items it votes on), ``overlap`` (share
    it votes on where another function votes too), ``conflict`` (share where another function votes differently),
    ``accuracy`` on the gold items it votes on (NaN without gold votes), ``n_gold`` and ``failures``."""
    votes = result.votes
    voted = votes.notna().to_numpy()
    n_items = max(len(votes), 1)
    n_voting = voted.sum(axis=1)
    rows = []
    truth = None if gold is None else pd.Series(gold.astype(str).to_numpy(), index=gold.index.astype(str))
    for position, name in enumerate(votes.columns):
        mine = voted[:, position]
        column = votes[name]
        others_differ = np.zeros(len(votes), dtype=bool)
        for other_position, other in enumerate(votes.columns):
            if other_position != position:
                both = mine & voted[:, other_position]
                others_differ |= both & (column.to_numpy() != votes[other].to_numpy())
        accuracy, n_gold = float("nan"), 0
        if truth is not None:
            on_gold = column[mine & votes.index.isin(truth.index)]
            n_gold = len(on_gold)
            if n_gold:
                accuracy = float((on_gold.to_numpy() == truth.reindex(on_gold.index).to_numpy()).mean())
        rows.append(
            {
                "function": name,
                "coverage": float(mine.sum() / n_items),
                "overlap": float((mine & (n_voting > 1)).sum() / n_items),
                "conflict": float(others_differ.sum() / n_items),
                "accuracy": accuracy,
                "n_gold": n_gold,
                "failures": result.failures.get(name, 0),
            }
        )
    return pd.DataFrame(rows)


def aggregate_function_votes(
    result: LabelingResult,
    label_names: Sequence[str],
    *,
    method: str = "one_coin_dawid_skene",
    gold: pd.Series | None = None,
    round_id: int = 0,
    random_state: int = 0,
) -> pd.DataFrame:
    """One label per item some function voted on, in the label contract with ``source = functions``: the
    functions are workers and the crowd's aggregation engine weighs them (``method`` as in
    :func:`labelflow.tasks.aggregation.aggregate_answers_frame`; ``gold`` clamps known items and is not returned).

    One-coin Dawid-Skene by default: a handful of functions that rarely vote on the same item cannot identify a
    full confusion matrix each (on the digits functions, which never overlap, full Dawid-Skene labeled 9% of
    items right without gold and 44% with 30 gold items; one-coin 83%, the functions' own precision)."""
    answers = result.answers()
    if answers.empty:
        return pd.DataFrame({c: pd.Series(dtype="object") for c in LABEL_COLUMNS})
    if gold is not None:
        # gold anchors the functions' accuracies only where a function voted on a gold item
        gold = gold[gold.index.astype(str).isin(answers[ITEM_ID])]
    labels = aggregate_answers_frame(
        answers, label_names, method=method, gold=gold, random_state=random_state
    ).assign(method=f"functions:{method}", round_id=round_id, source=LabelSource.FUNCTIONS.value)
    return labels[list(LABEL_COLUMNS)]


def digits_labeling_functions() -> list[LabelingFunction]:
    """A small, deliberately imperfect set for the digits demo (the 64 columns ``pixel_<row>_<col>`` of an 8x8
    image, ink 0-16). Each abstains unless its pattern is clear. Measured on all 1,797 digits: a hollow centre is
    a 0 (134 votes, 96% right), ink low on the left with an empty upper right is a 6 (54 votes, 94%), a thin
    vertical stroke is a 1 (106 votes, 60%: 8s and 3s look alike at 8x8) — the last one is there to show a weak
    function getting little weight from the aggregation and a low accuracy in the analysis table."""

    def images(items: pd.DataFrame) -> np.ndarray:
        columns = [f"pixel_{r}_{c}" for r in range(8) for c in range(8)]
        require_columns(items, columns, "the digits items")
        return items[columns].to_numpy(dtype=np.float64).reshape(-1, 8, 8)

    @labeling_function(vectorized=True)
    def hollow_centre_is_zero(items: pd.DataFrame) -> list[str | None]:
        image = images(items)
        centre = image[:, 3:5, 3:5].sum(axis=(1, 2))
        ring = image[:, 1:7, 1:7].sum(axis=(1, 2)) - centre
        return ["0" if hit else None for hit in (centre < 4) & (ring > 120)]

    @labeling_function(vectorized=True)
    def low_left_loop_is_six(items: pd.DataFrame) -> list[str | None]:
        image = images(items)
        hit = (image[:, 0:3, 4:8].sum(axis=(1, 2)) < 10) & (image[:, 4:7, 1:3].sum(axis=(1, 2)) > 30)
        return ["6" if h else None for h in hit]

    @labeling_function(vectorized=True)
    def thin_vertical_stroke_is_one(items: pd.DataFrame) -> list[str | None]:
        columns = images(items).sum(axis=1)
        hit = (
            (columns[:, :2].sum(axis=1) < 4)
            & (columns[:, 6:].sum(axis=1) < 4)
            & (columns[:, 3:5].sum(axis=1) > 60)
        )
        return ["1" if h else None for h in hit]

    return [hollow_centre_is_zero, low_left_loop_is_six, thin_vertical_stroke_is_one]


@dataclass(frozen=True)
class FunctionLabels:
    """What :func:`label_items` found: the ``labels`` (label contract, ``source = functions``), the functions'
    ``analysis`` (:func:`labeling_function_analysis`) and the applier's ``result`` (failures and errors)."""

    labels: pd.DataFrame
    analysis: pd.DataFrame
    result: LabelingResult


def label_items(
    items: pd.DataFrame,
    functions: Sequence[LabelingFunction],
    label_names: Sequence[str],
    gold: pd.Series,
    *,
    round_id: int,
) -> FunctionLabels:
    """Apply the functions to ``items`` (pool and gold: gold votes anchor each function's accuracy), analyse
    them and aggregate their votes; failing functions are counted, never raised."""
    result = apply_labeling_functions(items, functions, label_names)
    return FunctionLabels(
        labels=aggregate_function_votes(result, label_names, gold=gold, round_id=round_id),
        analysis=labeling_function_analysis(result, gold),
        result=result,
    )
