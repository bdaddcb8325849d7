"""Every kind of bad data stops the run with a message that names it.

The kinds of column are tested on a synthetic schema that has them all (tests/data_factory.py),
and the project's own data against its own schema, so the suite holds for any data set.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from ml.errors import DataValidationError
from ml.schema import Kind, Task
from ml.validation import validate
from tests.data_factory import good_frame, project_schema, schema_frame, synthetic_schema
from tests.strategies import rows_strategy

SCHEMA = synthetic_schema(Task.MULTICLASS)
PROJECT = project_schema()


def frame() -> pd.DataFrame:
    return schema_frame(SCHEMA, rows=120, seed=1)


def test_the_projects_data_passes_its_own_schema_and_is_counted() -> None:
    data = good_frame()
    report = validate(data, "good.csv", PROJECT)
    assert report.rows == len(data)
    if PROJECT.task.is_classification:
        assert set(report.class_counts) == {str(c) for c in PROJECT.classes}
        assert sum(report.class_counts.values()) == len(data)


def test_good_synthetic_data_passes_with_gaps_where_allowed() -> None:
    data = frame()
    assert data["weight"].isna().any() and data["grade"].isna().any()
    report = validate(data, "good.csv", SCHEMA)
    assert report.class_counts == {c: int((data["target"] == c).sum()) for c in ("a", "b", "c")}


def test_extra_columns_are_reported_as_ignored() -> None:
    data = frame()
    data["customer_id"] = np.arange(len(data))
    assert validate(data, "x.csv", SCHEMA).ignored_columns == ("customer_id",)


@pytest.mark.parametrize("column", ["length", "colour", "target"])
def test_missing_column(column: str) -> None:
    with pytest.raises(DataValidationError, match=rf"missing column\(s\): {column}"):
        validate(frame().drop(columns=[column]), "x.csv", SCHEMA)


def test_wrong_dtype_names_column_value_and_line() -> None:
    data = frame().astype({"length": object})
    data.loc[3, "length"] = "large"
    with pytest.raises(DataValidationError, match=r"'length' must be numeric but has 'large' on line\(s\) 5"):
        validate(data, "x.csv", SCHEMA)


def test_true_false_in_a_numeric_column() -> None:
    data = frame()
    data["length"] = data["length"] > 5
    with pytest.raises(DataValidationError, match="'length' must be numeric but holds true/false values"):
        validate(data, "x.csv", SCHEMA)


def test_nan_where_the_schema_allows_none_names_column_and_lines() -> None:
    data = frame()
    data.loc[[0, 7], "length"] = np.nan
    with pytest.raises(DataValidationError, match=r"'length' has empty/NaN values on line\(s\) 2, 9; mark it nullable"):
        validate(data, "x.csv", SCHEMA)


def test_infinite_values() -> None:
    data = frame()
    data.loc[1, "weight"] = np.inf
    with pytest.raises(DataValidationError, match="'weight' has infinite values on line"):
        validate(data, "x.csv", SCHEMA)


def test_a_value_outside_the_range() -> None:
    data = frame()
    data.loc[4, "length"] = 11.5
    with pytest.raises(DataValidationError, match=r"'length' has 11.5 on line\(s\) 6, outside the schema's range"):
        validate(data, "x.csv", SCHEMA)


def test_an_unknown_category() -> None:
    data = frame()
    data.loc[2, "colour"] = "purple"
    with pytest.raises(DataValidationError, match=r"'colour' has 'purple' on line\(s\) 4, not among the schema's"):
        validate(data, "x.csv", SCHEMA)


def test_integer_categories_read_as_numbers_still_match() -> None:
    data = frame()
    data["grade"] = data["grade"].map(lambda v: float(v) if isinstance(v, str) else v)  # as pandas reads 1,2,,3
    validate(data, "x.csv", SCHEMA)


def test_unknown_label() -> None:
    data = frame()
    data.loc[2, "target"] = "z"
    with pytest.raises(DataValidationError, match=r"unknown value\(s\) 'z' on line\(s\) 4; allowed labels are a, b, c"):
        validate(data, "x.csv", SCHEMA)


def test_a_regression_label_that_is_text() -> None:
    regression = synthetic_schema(Task.REGRESSION)
    data = schema_frame(regression).astype({"target": object})
    data.loc[0, "target"] = "high"
    with pytest.raises(DataValidationError, match=r"'target' must be numeric for a regression task but has 'high'"):
        validate(data, "x.csv", regression)


def test_a_class_without_rows_is_refused() -> None:
    data = frame()
    with pytest.raises(DataValidationError, match="never takes the value"):
        validate(data[data["target"] != "c"], "x.csv", SCHEMA)


def test_no_rows() -> None:
    with pytest.raises(DataValidationError, match="has no data rows"):
        validate(frame().head(0), "x.csv", SCHEMA)


def test_all_problems_are_reported_at_once() -> None:
    data = frame().drop(columns=["colour"])
    data.loc[0, "length"] = np.nan
    with pytest.raises(DataValidationError) as error:
        validate(data, "x.csv", SCHEMA)
    assert "colour" in str(error.value)
    assert "length" in str(error.value)
    assert "Nothing was trained or registered" in str(error.value)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    column=st.sampled_from(PROJECT.names),
    row=st.integers(min_value=0, max_value=59),
    bad=st.sampled_from([np.inf, -np.inf, "n/a", "1,5", "\x00", 1e300]),
)
def test_any_single_corrupted_cell_of_the_projects_data_is_caught(column: str, row: int, bad: Any) -> None:
    feature = PROJECT.feature(column)
    data = good_frame(60).astype({column: object})
    data.loc[row, column] = bad
    # A value that is valid for this column (a category, an in-range number) is not corruption.
    assume(not (feature.kind is Kind.CATEGORICAL and str(bad) in feature.categories))
    assume(not (feature.kind is Kind.NUMERIC and feature.maximum is None and bad == 1e300))
    with pytest.raises(DataValidationError, match=column):
        validate(data, "x.csv", PROJECT)


@settings(max_examples=25, deadline=None)
@given(
    label=st.one_of(
        st.integers(min_value=10**6),
        st.floats(allow_nan=False, min_value=0.5, max_value=0.75),
        st.text(min_size=1).filter(lambda text: text.strip() not in {str(c) for c in SCHEMA.classes}),
    )
)
def test_any_label_outside_the_schema_is_caught(label: Any) -> None:
    data = frame()
    data.loc[0, "target"] = label
    with pytest.raises(DataValidationError, match="label"):
        validate(data, "x.csv", SCHEMA)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(row=rows_strategy(PROJECT))
def test_any_row_the_projects_schema_allows_passes_validation(row: dict[str, Any]) -> None:
    # The other side of the corrupted-cell property: the schema refuses nothing it declares valid.
    data = good_frame(60)
    extra = pd.DataFrame([{**row, PROJECT.label: data.iloc[0][PROJECT.label]}])
    validate(pd.concat([data, extra], ignore_index=True), "x.csv", PROJECT)
