"""Check a data frame against the schema in ml/schema.py, naming every problem found."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ml.errors import DataValidationError
from ml.schema import FEATURES, LABEL, LABEL_VALUES

# How many offending rows to quote in an error; enough to find the pattern, short enough to read.
_EXAMPLES = 5


@dataclass(frozen=True)
class ValidationReport:
    rows: int
    ignored_columns: tuple[str, ...]
    class_counts: dict[int, int]


def _rows(mask: pd.Series[bool]) -> str:
    # Report 1-based line numbers as a person sees them in the CSV, header being line 1.
    lines = [str(int(i) + 2) for i in np.flatnonzero(mask.to_numpy())[:_EXAMPLES]]
    more = int(mask.sum()) - len(lines)
    return ", ".join(lines) + (f" and {more} more" if more > 0 else "")


def validate(frame: pd.DataFrame, source: str) -> ValidationReport:
    """Check frame against the schema; raise DataValidationError naming every problem."""
    if frame.empty:
        raise DataValidationError(
            f"{source} has no data rows. Point [data].source in mlops.toml at a CSV with a "
            f"header row and at least one row per label {LABEL_VALUES}."
        )
    problems: list[str] = []
    missing = [column for column in (*FEATURES, LABEL) if column not in frame.columns]
    if missing:
        problems.append(f"missing column(s): {', '.join(missing)}")
    for column in FEATURES:
        if column in frame.columns:
            problems += _feature_problems(column, frame[column])
    if LABEL in frame.columns:
        problems += _label_problems(frame[LABEL])
    if problems:
        raise DataValidationError(
            f"{source} does not match the schema in ml/schema.py:\n  - "
            + "\n  - ".join(problems)
            + "\nFix the data (or the schema, if the data is right) and run again. "
            "Nothing was trained or registered."
        )
    counts = frame[LABEL].astype(int).value_counts().to_dict()
    return ValidationReport(
        rows=len(frame),
        ignored_columns=tuple(c for c in frame.columns if c not in (*FEATURES, LABEL)),
        class_counts={int(k): int(v) for k, v in sorted(counts.items())},
    )


def _feature_problems(column: str, values: pd.Series[Any]) -> list[str]:
    if pd.api.types.is_bool_dtype(values):
        return [f"column {column!r} must be numeric but holds true/false values"]
    if not pd.api.types.is_numeric_dtype(values):
        parsed = pd.to_numeric(values, errors="coerce")
        bad = parsed.isna() & values.notna()
        if bad.any():
            example = values[bad].iloc[0]
            return [f"column {column!r} must be numeric but has {example!r} on line(s) {_rows(bad)}"]
        values = parsed  # numbers with gaps: report the gaps below
    nan = values.isna()
    if nan.any():
        return [f"column {column!r} has empty/NaN values on line(s) {_rows(nan)}"]
    infinite = pd.Series(np.isinf(values.to_numpy(dtype=float)), index=values.index)
    if infinite.any():
        return [f"column {column!r} has infinite values on line(s) {_rows(infinite)}"]
    return []


def _label_problems(labels: pd.Series[Any]) -> list[str]:
    nan = labels.isna()
    if nan.any():
        return [f"label column {LABEL!r} is empty on line(s) {_rows(nan)}"]
    numeric = pd.to_numeric(labels, errors="coerce")
    unknown = ~numeric.isin(LABEL_VALUES)
    if unknown.any():
        seen = sorted({str(v) for v in labels[unknown].unique()})[:_EXAMPLES]
        return [
            f"label column {LABEL!r} has unknown value(s) {', '.join(seen)} on line(s) "
            f"{_rows(unknown)}; allowed labels are {LABEL_VALUES}"
        ]
    present = set(numeric.astype(int).unique())
    absent = [v for v in LABEL_VALUES if v not in present]
    if absent:
        return [f"label column {LABEL!r} never takes the value(s) {absent}; a classifier needs all"]
    return []
