"""Labeling functions: the decorator, the fault-tolerant applier, the analysis table, functions as workers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_digits

from labelflow.contracts import LABEL_COLUMNS
from labelflow.tasks.weak_supervision import (
    DIGITS_FUNCTIONS,
    WeakSupervisionConfig,
    aggregate_function_votes,
    apply_labeling_functions,
    digits_labeling_functions,
    labeling_function,
    labeling_function_analysis,
    load_labeling_functions,
)

LABELS = ["neg", "pos"]


@labeling_function()
def positive_if_large(item: pd.Series) -> str | None:
    return "pos" if item["x"] > 1 else None


@labeling_function()
def negative_if_small(item: pd.Series) -> str | None:
    return "neg" if item["x"] < -1 else None


@labeling_function()
def fragile(item: pd.Series) -> str | None:
    if item["x"] < 0:
        raise ZeroDivisionError("cannot look at negative items")
    return "pos"


@labeling_function(name="sign", vectorized=True)
def sign_vote(items: pd.DataFrame) -> list[str | None]:
    return ["pos" if x > 0 else "neg" for x in items["x"]]


@labeling_function()
def invents_a_label(item: pd.Series) -> str | None:
    return "maybe"


def pool() -> pd.DataFrame:
    return pd.DataFrame({"item_id": [f"i{k}" for k in range(6)], "x": [-3.0, -2.0, -0.5, 0.5, 2.0, 3.0]})


def test_the_decorator_names_the_function_and_keeps_it_callable() -> None:
    assert positive_if_large.name == "positive_if_large" and sign_vote.name == "sign"
    assert positive_if_large(pd.Series({"x": 5.0})) == "pos"


def test_a_function_that_raises_is_counted_and_abstains_and_the_others_go_on() -> None:
    result = apply_labeling_functions(
        pool(), [positive_if_large, fragile, sign_vote, invents_a_label], LABELS
    )
    assert result.failures == {"fragile": 3, "invents_a_label": 6}
    assert "ZeroDivisionError" in result.errors["fragile"] and "i0" in result.errors["fragile"]
    assert "not one of the labels" in result.errors["invents_a_label"]
    assert result.votes["fragile"].tolist() == [None, None, None, "pos", "pos", "pos"]
    assert result.votes["sign"].tolist() == ["neg", "neg", "neg", "pos", "pos", "pos"]
    assert result.votes["invents_a_label"].isna().all()


def test_a_vectorized_function_that_fails_on_some_rows_is_retried_row_by_row() -> None:
    @labeling_function(vectorized=True)
    def picky(items: pd.DataFrame) -> list[str | None]:
        if (items["x"] < -2.5).any():
            raise ValueError("too negative")
        return ["neg"] * len(items)

    result = apply_labeling_functions(pool(), [picky], LABELS)
    assert result.failures == {"picky": 1}
    assert result.votes["picky"].tolist() == [None, "neg", "neg", "neg", "neg", "neg"]


def test_analysis_table_coverage_overlap_conflict_accuracy_failures() -> None:
    result = apply_labeling_functions(
        pool(), [positive_if_large, negative_if_small, fragile, sign_vote], LABELS
    )
    gold = pd.Series(["neg", "pos", "pos"], index=["i0", "i3", "i5"])
    table = labeling_function_analysis(result, gold).set_index("function")
    assert table.loc["sign", "coverage"] == 1.0
    assert table.loc["positive_if_large", "coverage"] == pytest.approx(2 / 6)
    assert table.loc["positive_if_large", "overlap"] == pytest.approx(2 / 6)
    assert table.loc["positive_if_large", "conflict"] == 0.0
    assert table.loc["fragile", "conflict"] == 0.0 and table.loc["fragile", "failures"] == 3
    # sign says neg on i2 where nobody else votes; says neg on i0/i1 where negative_if_small agrees
    assert table.loc["sign", "conflict"] == 0.0
    assert table.loc["sign", "accuracy"] == 1.0 and table.loc["sign", "n_gold"] == 3
    assert (
        np.isnan(table.loc["negative_if_small", "accuracy"]) or table.loc["negative_if_small", "n_gold"] == 1
    )


def test_votes_are_aggregated_as_workers_into_function_labels() -> None:
    result = apply_labeling_functions(pool(), [positive_if_large, negative_if_small, sign_vote], LABELS)
    assert set(result.answers()["worker_id"]) == {"lf:positive_if_large", "lf:negative_if_small", "lf:sign"}
    labels = aggregate_function_votes(result, LABELS, round_id=4)
    assert list(labels.columns) == list(LABEL_COLUMNS)
    assert (labels["source"] == "functions").all() and (labels["round_id"] == 4).all()
    assert labels.set_index("item_id")["label"].to_dict() == {
        "i0": "neg",
        "i1": "neg",
        "i2": "neg",
        "i3": "pos",
        "i4": "pos",
        "i5": "pos",
    }


def test_the_digits_functions_are_precise_where_they_vote() -> None:
    data = load_digits()
    frame = pd.DataFrame(data.data, columns=[f"pixel_{r}_{c}" for r in range(8) for c in range(8)])
    frame.insert(0, "item_id", [f"d{k}" for k in range(len(frame))])
    truth = pd.Series(data.target.astype(str), index=frame["item_id"])
    result = apply_labeling_functions(frame, digits_labeling_functions(), [str(d) for d in range(10)])
    assert result.failures == {}
    table = labeling_function_analysis(result, truth).set_index("function")
    assert table.loc["hollow_centre_is_zero", "accuracy"] > 0.9
    labels = aggregate_function_votes(result, [str(d) for d in range(10)], gold=truth.iloc[:30])
    right = labels["label"].to_numpy() == truth.reindex(labels["item_id"]).to_numpy()
    assert len(labels) > 250 and right.mean() > 0.8  # 0.83 measured


def test_functions_load_from_a_module_path_and_a_bad_path_says_what_is_wrong() -> None:
    assert [f.name for f in load_labeling_functions(DIGITS_FUNCTIONS)] == [
        f.name for f in digits_labeling_functions()
    ]
    assert [f.name for f in load_labeling_functions("test_weak_supervision:fragile")] == ["fragile"]
    with pytest.raises(ValueError, match="must look like 'module:name'"):
        load_labeling_functions("labelflow.tasks.weak_supervision")
    with pytest.raises(ValueError, match="cannot load it"):
        load_labeling_functions("labelflow.tasks.weak_supervision:no_such_functions")
    with pytest.raises(ValueError, match="must give labeling functions"):
        load_labeling_functions("labelflow.tasks.weak_supervision:ABSTAIN")
    with pytest.raises(ValueError, match="cannot load it"):
        WeakSupervisionConfig(functions="no_such_module:functions")
