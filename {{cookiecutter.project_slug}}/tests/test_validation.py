"""Every kind of bad data stops the run with a message that names it."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ml import schema
from ml.errors import DataValidationError
from ml.validation import validate
from tests.data_factory import good_frame


def test_good_data_passes_and_is_counted() -> None:
    report = validate(good_frame(), "good.csv")
    assert report.rows == 120
    assert report.class_counts == {0: 60, 1: 60}


def test_extra_columns_are_reported_as_ignored() -> None:
    frame = good_frame()
    frame["patient_id"] = np.arange(120)
    assert validate(frame, "x.csv").ignored_columns == ("patient_id",)


def test_missing_column() -> None:
    with pytest.raises(DataValidationError, match=r"missing column.*mean_radius"):
        validate(good_frame().drop(columns=["mean_radius"]), "x.csv")


def test_missing_label_column() -> None:
    with pytest.raises(DataValidationError, match=f"missing column.*{schema.LABEL}"):
        validate(good_frame().drop(columns=[schema.LABEL]), "x.csv")


def test_wrong_dtype_names_column_value_and_line() -> None:
    frame = good_frame().astype({"mean_area": object})
    frame.loc[3, "mean_area"] = "large"
    with pytest.raises(DataValidationError, match=r"'mean_area' must be numeric but has 'large' on line\(s\) 5"):
        validate(frame, "x.csv")


def test_nan_names_column_and_lines() -> None:
    frame = good_frame()
    frame.loc[[0, 7], "worst_symmetry"] = np.nan
    with pytest.raises(DataValidationError, match=r"'worst_symmetry' has empty/NaN values on line\(s\) 2, 9"):
        validate(frame, "x.csv")


def test_infinite_values() -> None:
    frame = good_frame()
    frame.loc[1, "mean_texture"] = np.inf
    with pytest.raises(DataValidationError, match="'mean_texture' has infinite values"):
        validate(frame, "x.csv")


def test_unknown_label() -> None:
    frame = good_frame()
    frame.loc[2, schema.LABEL] = 7
    with pytest.raises(DataValidationError, match=r"unknown value\(s\) 7 on line\(s\) 4; allowed labels are \(0, 1\)"):
        validate(frame, "x.csv")


def test_single_class_data_is_refused() -> None:
    frame = good_frame()
    with pytest.raises(DataValidationError, match="never takes the value"):
        validate(frame[frame[schema.LABEL] == 1], "x.csv")


def test_no_rows() -> None:
    with pytest.raises(DataValidationError, match="has no data rows"):
        validate(good_frame().head(0), "x.csv")


def test_all_problems_are_reported_at_once() -> None:
    frame = good_frame().drop(columns=["mean_radius"])
    frame.loc[0, "mean_texture"] = np.nan
    with pytest.raises(DataValidationError) as error:
        validate(frame, "x.csv")
    assert "mean_radius" in str(error.value)
    assert "mean_texture" in str(error.value)
    assert "Nothing was trained or registered" in str(error.value)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    column=st.sampled_from(schema.FEATURES),
    row=st.integers(min_value=0, max_value=119),
    bad=st.sampled_from([np.nan, np.inf, -np.inf, "n/a", "1,5", ""]),
)
def test_any_single_corrupted_cell_is_caught(column: str, row: int, bad: Any) -> None:
    frame = good_frame().astype({column: object})
    frame.loc[row, column] = bad
    with pytest.raises(DataValidationError, match=column):
        validate(frame, "x.csv")


def _parses_as_label(text: str) -> bool:
    return bool(pd.to_numeric(pd.Series([text]), errors="coerce").isin(schema.LABEL_VALUES).iloc[0])


@settings(max_examples=25, deadline=None)
@given(
    label=st.one_of(
        st.integers(min_value=2, max_value=10**6),
        st.integers(max_value=-1),
        st.floats(allow_nan=False).filter(lambda x: x not in (0.0, 1.0)),
        st.text(min_size=1).filter(lambda text: not _parses_as_label(text)),
    )
)
def test_any_label_outside_the_schema_is_caught(label: Any) -> None:
    frame = good_frame().astype({schema.LABEL: object})
    frame.loc[0, schema.LABEL] = label
    with pytest.raises(DataValidationError, match="label"):
        validate(frame, "x.csv")
