"""GX suites at the stage boundaries (tasks/validation/).

Only the pure suite functions are exercised (no Prefect run): for each suite a good frame passes, and for
each expectation a frame that breaks just that one is caught and the report names it. One GX context serves
the whole session (the module caches it).
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest

from labelflow.contracts import ANSWER_COLUMNS, BATCH_COLUMNS, LABEL_COLUMNS
from labelflow.tasks.validation import (
    DataValidationError,
    ExpectationOutcome,
    ValidationReport,
    run_suite,
    validate_answers,
    validate_batch,
    validate_labels,
    validate_pool,
)

LABELS = ["cat", "dog", "bird"]
FEATURES = ["f0", "f1", "f2"]
EXISTS = "expect_column_to_exist"
NOT_NULL = "expect_column_values_to_not_be_null"
UNIQUE = "expect_column_values_to_be_unique"
IN_SET = "expect_column_values_to_be_in_set"
NOT_IN_SET = "expect_column_values_to_not_be_in_set"
BETWEEN = "expect_column_values_to_be_between"
ROW_COUNT = "expect_table_row_count_to_be_between"
FINITE = "expect_multicolumn_values_to_be_finite"
FINITE_1 = "expect_column_values_to_be_finite"
COMPOUND_UNIQUE = "expect_compound_columns_to_be_unique"
DISTINCT = "expect_column_unique_value_count_to_be_between"

Mutation = Callable[[pd.DataFrame], pd.DataFrame]


def ids(n: int, prefix: str = "it") -> pd.Series:
    return pd.Series([f"{prefix}{i}" for i in range(n)], dtype="str")


def pool_frame(n: int = 50) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(n, len(FEATURES))), columns=FEATURES)
    frame.insert(0, "item_id", ids(n))
    frame["payload"] = "x"  # extra columns are allowed in the pool
    return frame


POOL_IDS = frozenset(pool_frame()["item_id"])


def batch_frame(n: int = 10) -> pd.DataFrame:
    return pd.DataFrame(
        {"item_id": ids(n), "score": np.linspace(0, 1, n), "strategy": "uncertainty", "round_id": "r1"}
    )


def answers_frame(n: int = 30) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "answer_id": ids(n, "a"),
            "item_id": ids(n),
            "worker_id": pd.Series([f"w{i % 4}" for i in range(n)], dtype="str"),
            "label": pd.Series([LABELS[i % 3] for i in range(n)], dtype="str"),
            "is_gold": [i % 5 == 0 for i in range(n)],
            "wave": 1,
            "round_id": "r1",
            "submitted_at": pd.Timestamp("2026-01-01", tz="UTC"),
            "backend": "simulated",
        }
    )


def labels_frame(n: int = 30) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "item_id": ids(n),
            "label": pd.Series([LABELS[i % 3] for i in range(n)], dtype="str"),
            "confidence": np.linspace(0.0, 1.0, n),
            "method": "majority",
            "n_answers": 3,
            "round_id": "r1",
            "source": "crowd",
        }
    )


def set_cell(column: str, row: int, value: Any, *, as_object: bool = False) -> Mutation:
    def mutate(frame: pd.DataFrame) -> pd.DataFrame:
        frame = frame.copy()
        if as_object:  # e.g. a real None, or a string, in a float column
            frame[column] = frame[column].astype(object)
        frame.loc[row, column] = value
        return frame

    return mutate


def drop(column: str) -> Mutation:
    return lambda frame: frame.drop(columns=[column])


def failed(report: ValidationReport) -> set[tuple[str, str | None]]:
    return {(o.expectation, o.column) for o in report.failures()}


def evaluated_failures(report: ValidationReport) -> set[tuple[str, str | None]]:
    """Failures other than those not evaluated because their column is missing."""
    return {
        (o.expectation, o.column) for o in report.failures() if not o.observed.startswith("not evaluated")
    }


def assert_only(report: ValidationReport, expectation: str, column: str | None) -> ExpectationOutcome:
    assert not report.success
    assert evaluated_failures(report) == {(expectation, column)}, report.failures()
    (outcome,) = [o for o in report.failures() if (o.expectation, o.column) == (expectation, column)]
    return outcome


def assert_plain_strings(report: ValidationReport) -> None:
    for o in report.outcomes:
        assert type(o.observed) is str and type(o.expectation) is str
        assert o.column is None or type(o.column) is str
        assert all(type(s) is str for s in o.sample_unexpected)
        assert len(o.sample_unexpected) <= 5
    for row in report.as_rows():
        assert all(type(k) is str and type(v) is str for k, v in row.items())


# ------------------------------------------------------------------------------------------------------------
# pool


def test_good_pool_passes() -> None:
    report = validate_pool(pool_frame(), FEATURES)
    assert report.success, report.failures()
    assert report.suite == "pool" and report.n_rows == 50
    # item_id exists/not null/unique + one exists per feature + one finite check
    assert len(report.outcomes) == 3 + len(FEATURES) + 1
    assert report.outcomes[0] == ExpectationOutcome(EXISTS, "item_id", True, "present", ())
    assert_plain_strings(report)
    report.raise_for_failures()  # no-op


def test_good_pool_with_object_ids_and_bool_extra_column_passes() -> None:
    frame = pool_frame().astype({"item_id": object})
    frame["flag"] = True  # not a feature: never checked
    assert validate_pool(frame, FEATURES).success


@pytest.mark.parametrize(
    ("mutate", "expectation", "column", "sample"),
    [
        pytest.param(drop("item_id"), EXISTS, "item_id", None, id="item_id-missing"),
        pytest.param(set_cell("item_id", 3, None), NOT_NULL, "item_id", None, id="item_id-null"),
        pytest.param(set_cell("item_id", 3, "it4"), UNIQUE, "item_id", "it4", id="item_id-duplicate"),
        pytest.param(drop("f1"), EXISTS, "f1", None, id="feature-missing"),
        pytest.param(set_cell("f1", 3, np.nan), FINITE, "f1", "f1=nan", id="feature-nan"),
        pytest.param(set_cell("f2", 3, np.inf), FINITE, "f2", "f2=inf", id="feature-inf"),
        pytest.param(set_cell("f0", 3, -np.inf), FINITE, "f0", "f0=-inf", id="feature-minus-inf"),
        pytest.param(set_cell("f0", 3, None, as_object=True), FINITE, "f0", "f0=None", id="feature-none"),
        pytest.param(
            set_cell("f0", 3, "oops", as_object=True), FINITE, "f0", "f0=oops", id="feature-not-a-number"
        ),
    ],
)
def test_pool_breakage_is_caught(mutate: Mutation, expectation: str, column: str, sample: str | None) -> None:
    report = validate_pool(mutate(pool_frame()), FEATURES)
    outcome = assert_only(report, expectation, column)
    if sample is not None:
        assert sample in outcome.sample_unexpected
    assert_plain_strings(report)


def test_pool_nan_and_inf_both_caught_and_columns_named() -> None:
    frame = pool_frame()
    frame.loc[1, "f0"] = np.nan
    frame.loc[2, "f2"] = np.inf
    (outcome,) = validate_pool(frame, FEATURES).failures()
    assert outcome.expectation == FINITE
    assert outcome.column == "f0, f2"
    assert outcome.observed == "2 of 50 rows unexpected"
    assert set(outcome.sample_unexpected) == {"f0=nan", "f2=inf"}


def test_pool_missing_feature_does_not_hide_bad_values_in_the_others() -> None:
    frame = pool_frame().drop(columns=["f1"])
    frame.loc[0, "f2"] = np.inf
    assert failed(validate_pool(frame, FEATURES)) == {(EXISTS, "f1"), (FINITE, "f2")}


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_pool_single_feature_uses_column_finite_expectation(bad: float) -> None:
    frame = pool_frame()[["item_id", "f0"]].copy()
    assert validate_pool(frame, ["f0"]).success
    frame.loc[7, "f0"] = bad
    outcome = assert_only(validate_pool(frame, ["f0"]), FINITE_1, "f0")
    assert outcome.sample_unexpected == (repr(float(bad)),)


def test_missing_item_id_is_reported_not_a_key_error() -> None:
    report = validate_pool(pool_frame().drop(columns=["item_id"]), FEATURES)
    by_kind = {o.expectation: o for o in report.failures()}
    assert by_kind[EXISTS].column == "item_id" and by_kind[EXISTS].observed == "missing"
    # dependents are reported as not evaluated, naming the missing column
    assert by_kind[NOT_NULL].observed == "not evaluated: column(s) item_id missing"
    assert by_kind[UNIQUE].observed == "not evaluated: column(s) item_id missing"


def test_empty_pool_and_no_features() -> None:
    assert validate_pool(pool_frame().iloc[:0], FEATURES).success
    assert validate_pool(pool_frame(), []).success


# ------------------------------------------------------------------------------------------------------------
# batch


def test_good_batch_passes() -> None:
    report = validate_batch(batch_frame(), unlabeled_pool_ids=POOL_IDS, max_size=10)
    assert report.success, report.failures()
    assert report.suite == "batch" and report.n_rows == 10
    assert_plain_strings(report)


@pytest.mark.parametrize("pool_ids", [set(POOL_IDS), sorted(POOL_IDS), pd.Index(sorted(POOL_IDS))])
def test_batch_accepts_any_collection_of_ids(pool_ids: object) -> None:
    assert validate_batch(batch_frame(), unlabeled_pool_ids=pool_ids, max_size=10).success  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("mutate", "max_size", "expectation", "column", "sample"),
    [
        *(pytest.param(drop(c), 10, EXISTS, c, None, id=f"{c}-missing") for c in BATCH_COLUMNS),
        pytest.param(lambda f: f.iloc[:0], 10, ROW_COUNT, None, None, id="empty"),
        pytest.param(lambda f: f, 9, ROW_COUNT, None, None, id="too-large"),
        pytest.param(set_cell("item_id", 2, None), 10, NOT_NULL, "item_id", None, id="item_id-null"),
        pytest.param(set_cell("item_id", 2, "it3"), 10, UNIQUE, "item_id", "it3", id="item_id-duplicate"),
        pytest.param(
            set_cell("item_id", 2, "ghost"), 10, IN_SET, "item_id", "ghost", id="item_id-not-in-pool"
        ),
    ],
)
def test_batch_breakage_is_caught(
    mutate: Mutation, max_size: int, expectation: str, column: str | None, sample: str | None
) -> None:
    report = validate_batch(mutate(batch_frame()), unlabeled_pool_ids=POOL_IDS, max_size=max_size)
    outcome = assert_only(report, expectation, column)
    if sample is not None:
        assert sample in outcome.sample_unexpected
    assert_plain_strings(report)


def test_batch_row_count_observed_is_plain_text() -> None:
    report = validate_batch(batch_frame(), unlabeled_pool_ids=POOL_IDS, max_size=4)
    assert report.failures()[0].observed == "observed 10"


def test_batch_ids_must_be_unlabeled_not_just_known() -> None:
    unlabeled = POOL_IDS - {"it0", "it1"}
    outcome = assert_only(
        validate_batch(batch_frame(), unlabeled_pool_ids=unlabeled, max_size=10), IN_SET, "item_id"
    )
    assert outcome.sample_unexpected == ("it0", "it1")
    assert outcome.observed == "2 of 10 rows unexpected"


# ------------------------------------------------------------------------------------------------------------
# answers


def test_good_answers_pass() -> None:
    report = validate_answers(answers_frame(), LABELS)
    assert report.success, report.failures()
    assert_plain_strings(report)


@pytest.mark.parametrize(
    ("mutate", "expectation", "column", "sample"),
    [
        *(pytest.param(drop(c), EXISTS, c, None, id=f"{c}-missing") for c in ANSWER_COLUMNS),
        pytest.param(set_cell("label", 4, "horse"), IN_SET, "label", "horse", id="label-unknown"),
        pytest.param(set_cell("label", 4, None), NOT_NULL, "label", None, id="label-null"),
        pytest.param(set_cell("worker_id", 4, None), NOT_NULL, "worker_id", None, id="worker-null"),
        pytest.param(set_cell("answer_id", 4, None), NOT_NULL, "answer_id", None, id="answer_id-null"),
        pytest.param(set_cell("answer_id", 4, "a5"), UNIQUE, "answer_id", "a5", id="answer_id-duplicate"),
    ],
)
def test_answers_breakage_is_caught(
    mutate: Mutation, expectation: str, column: str, sample: str | None
) -> None:
    report = validate_answers(mutate(answers_frame()), LABELS)
    outcome = assert_only(report, expectation, column)
    if sample is not None:
        assert sample in outcome.sample_unexpected
    assert_plain_strings(report)


def test_answers_with_object_dtype_pass() -> None:
    frame = answers_frame().astype({"answer_id": object, "label": object, "worker_id": object})
    assert validate_answers(frame, LABELS).success


# ------------------------------------------------------------------------------------------------------------
# labels


def with_labels(*labels: str) -> Mutation:
    def mutate(frame: pd.DataFrame) -> pd.DataFrame:
        frame = frame.copy()
        frame["label"] = pd.Series(labels, dtype="str")
        return frame

    return mutate


def test_good_labels_pass() -> None:
    report = validate_labels(labels_frame(), LABELS)
    assert report.success, report.failures()
    # contract columns + 5 value checks + distinct count + one share check per label name
    assert len(report.outcomes) == len(LABEL_COLUMNS) + 5 + 1 + len(LABELS)
    assert_plain_strings(report)


@pytest.mark.parametrize(
    ("mutate", "expectation", "column", "sample"),
    [
        *(pytest.param(drop(c), EXISTS, c, None, id=f"{c}-missing") for c in LABEL_COLUMNS),
        pytest.param(set_cell("label", 4, "horse"), IN_SET, "label", "horse", id="label-unknown"),
        pytest.param(set_cell("label", 4, None), NOT_NULL, "label", None, id="label-null"),
        pytest.param(set_cell("confidence", 4, 1.5), BETWEEN, "confidence", "1.5", id="confidence-above-1"),
        pytest.param(set_cell("confidence", 4, -0.1), BETWEEN, "confidence", "-0.1", id="confidence-below-0"),
        pytest.param(set_cell("confidence", 4, np.nan), NOT_NULL, "confidence", None, id="confidence-nan"),
        pytest.param(
            set_cell("item_id", 4, "it5"),
            COMPOUND_UNIQUE,
            "item_id, source",
            "item_id=it5, source=crowd",
            id="item-labelled-twice",
        ),
        pytest.param(
            with_labels(*["cat"] * 28, "dog", "dog"), NOT_IN_SET, "label", "cat", id="one-label-above-90pc"
        ),
    ],
)
def test_labels_breakage_is_caught(
    mutate: Mutation, expectation: str, column: str, sample: str | None
) -> None:
    report = validate_labels(mutate(labels_frame()), LABELS)
    outcome = assert_only(report, expectation, column)
    if sample is not None:
        assert sample in outcome.sample_unexpected
    assert_plain_strings(report)


def test_labels_collapsed_to_one_class_fails_both_distribution_checks() -> None:
    report = validate_labels(with_labels(*["dog"] * 30)(labels_frame()), LABELS)
    assert evaluated_failures(report) == {(DISTINCT, "label"), (NOT_IN_SET, "label")}
    by_kind = {o.expectation: o for o in report.failures()}
    assert by_kind[DISTINCT].observed == "observed 1"
    assert by_kind[NOT_IN_SET].observed == "30 of 30 rows unexpected (100.0%; at most 90% allowed)"
    assert by_kind[NOT_IN_SET].sample_unexpected == ("dog",)


def test_labels_share_of_exactly_90pc_passes() -> None:
    assert validate_labels(with_labels(*["cat"] * 27, *["dog"] * 3)(labels_frame()), LABELS).success


def test_labels_distribution_not_checked_below_20_rows_or_with_one_label_name() -> None:
    small = labels_frame(19)
    small["label"] = "cat"
    assert validate_labels(small, LABELS).success
    collapsed = with_labels(*["cat"] * 30)(labels_frame())
    assert validate_labels(collapsed, ["cat"]).success


def test_labels_same_item_from_two_sources_passes() -> None:
    frame = labels_frame()
    frame.loc[4, "item_id"] = "it5"
    frame.loc[4, "source"] = "model"
    assert validate_labels(frame, LABELS).success


def test_empty_labels_pass() -> None:
    assert validate_labels(labels_frame().iloc[:0], LABELS).success


# ------------------------------------------------------------------------------------------------------------
# report, error, task dispatch, GX reuse


def test_raise_for_failures_message_names_suite_expectation_column_and_sample() -> None:
    frame = batch_frame()
    frame.loc[3, "item_id"] = "ghost-17"
    report = validate_batch(frame, unlabeled_pool_ids=POOL_IDS, max_size=10)
    with pytest.raises(DataValidationError) as caught:
        report.raise_for_failures()
    message = str(caught.value)
    assert "'batch'" in message
    assert IN_SET in message
    assert "'item_id'" in message
    assert "'ghost-17'" in message
    assert "1 of 10 rows unexpected" in message
    assert caught.value.report is report
    assert isinstance(caught.value, ValueError)


def test_error_lists_every_failure_and_pickles() -> None:
    frame = labels_frame().drop(columns=["method"])
    frame.loc[0, "label"] = "horse"
    error = DataValidationError(validate_labels(frame, LABELS))
    assert f"{EXISTS} on column 'method': missing" in str(error)
    assert f"{IN_SET} on column 'label'" in str(error) and "'horse'" in str(error)
    clone = pickle.loads(pickle.dumps(error))
    assert str(clone) == str(error) and clone.report == error.report


def test_report_rows_and_summary() -> None:
    frame = answers_frame()
    frame.loc[0, "worker_id"] = None
    report = validate_answers(frame, LABELS)
    rows = report.as_rows()
    assert len(rows) == len(report.outcomes)
    assert set(rows[0]) == {"expectation", "column", "success", "observed", "sample_unexpected"}
    assert [r for r in rows if r["success"] == "NO"] == [
        {
            "expectation": NOT_NULL,
            "column": "worker_id",
            "success": "NO",
            "observed": "1 of 30 rows unexpected",
            "sample_unexpected": "nan",
        }
    ]
    assert report.summary() == (
        f"GX suite 'answers': {len(rows) - 1}/{len(rows)} expectations passed on 30 rows; "
        f"failed: {NOT_NULL}(worker_id)"
    )


def test_unknown_suite_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown suite"):
        run_suite(pool_frame(), "nope")


def test_one_gx_context_and_nothing_piles_up() -> None:
    from labelflow.tasks.validation import runtime, suites

    state = runtime.gx_runtime()
    for _ in range(3):
        validate_pool(pool_frame(), FEATURES)
        validate_labels(labels_frame(), LABELS)
    assert runtime.gx_runtime() is state
    context = state.batch_definition.data_asset.datasource.data_context
    assert context.suites.all() == []
    assert context.validation_definitions.all() == []
    assert context.validation_results_store.list_keys() == []
    info = suites._pool_suite.cache_info()
    assert info.maxsize is not None and info.currsize <= info.maxsize and info.hits > 0
