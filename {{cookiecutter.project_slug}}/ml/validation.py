"""Check a data frame against the schema (ml/schema.py) with pandera, naming every problem found.

pandera checks each column lazily and reports every failure case with its row; this module
turns those into one line per column and problem, with 1-based line numbers as a person sees
them in the CSV (the header is line 1).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pandera.pandas as pa
from pandera.errors import SchemaErrors

from ml.errors import DataValidationError
from ml.schema import Feature, Kind, Schema, Task

# How many offending rows to quote in an error; enough to find the pattern, short enough to read.
_EXAMPLES = 5


@dataclass(frozen=True)
class ValidationReport:
    rows: int
    ignored_columns: tuple[str, ...]
    class_counts: dict[str, int]


def category_text(value: Any) -> str:
    """A category as text, as ml/train.py and ml/inference.py read it (3.0 reads as 3)."""
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    return str(value)


def _lines(index: list[Any]) -> str:
    positions = sorted({int(i) for i in index if i is not None and not pd.isna(i)})
    shown = [str(p + 2) for p in positions[:_EXAMPLES]]
    more = len(positions) - len(shown)
    return ", ".join(shown) + (f" and {more} more" if more > 0 else "")


def _finite(series: pd.Series[Any]) -> pd.Series[bool]:
    finite: pd.Series[bool] = pd.Series(
        np.isfinite(series.to_numpy(dtype=float)) | series.isna().to_numpy(), index=series.index
    )
    return finite


def _feature_column(feature: Feature) -> pa.Column:
    if feature.kind is Kind.CATEGORICAL:
        return pa.Column(object, pa.Check.isin(list(feature.categories)), nullable=feature.nullable, required=True)
    checks = [pa.Check(_finite, name="finite")]
    if feature.minimum is not None:
        checks.append(pa.Check.ge(feature.minimum))
    if feature.maximum is not None:
        checks.append(pa.Check.le(feature.maximum))
    return pa.Column(float, checks, nullable=feature.nullable, coerce=True, required=True)


def pandera_schema(schema: Schema) -> pa.DataFrameSchema:
    """The schema as pandera's declarative DataFrameSchema: one Column per feature and the label."""
    columns = {feature.name: _feature_column(feature) for feature in schema.features}
    if schema.task is Task.REGRESSION:
        columns[schema.label] = pa.Column(float, pa.Check(_finite, name="finite"), coerce=True, required=True)
    else:
        columns[schema.label] = pa.Column(object, pa.Check.isin([str(c) for c in schema.classes]), required=True)
    return pa.DataFrameSchema(columns, strict=False)


def _prepared(frame: pd.DataFrame, schema: Schema) -> pd.DataFrame:
    """Categories and class labels as text, as the model reads them, so `3` and `3.0` are one category."""
    prepared = frame.copy()
    texts = [f.name for f in schema.features if f.kind is Kind.CATEGORICAL]
    if schema.task.is_classification:
        texts.append(schema.label)
    for name in texts:
        if name in prepared.columns:
            prepared[name] = prepared[name].map(category_text, na_action="ignore").astype(object)
    return prepared


def _describe(schema: Schema, column: str, check: str, cases: list[Any], index: list[Any]) -> str:
    where = _lines(index)
    distinct = list(dict.fromkeys(c for c in cases if c is not None and not pd.isna(c)))
    shown = ", ".join(repr(c) for c in distinct[:_EXAMPLES])
    is_label = column == schema.label
    name = f"label column {column!r}" if is_label else f"column {column!r}"
    if check == "column_in_dataframe":
        return f"missing column(s): {', '.join(str(c) for c in cases)}"
    if check.startswith("coerce_dtype"):
        if is_label:
            return (
                f"{name} must be numeric for a {schema.task} task but has {shown} on line(s) {where}; "
                "set [label].task in the schema to binary or multiclass if it names classes"
            )
        return f"{name} must be numeric but has {shown} on line(s) {where}"
    if check == "not_nullable":
        if is_label:
            return f"{name} is empty on line(s) {where}"
        return f"{name} has empty/NaN values on line(s) {where}; mark it nullable = true in the schema if gaps are expected"
    if check == "finite":
        return f"{name} has infinite values on line(s) {where}"
    if check.startswith(("greater_than_or_equal_to", "less_than_or_equal_to")):
        feature = schema.feature(column)
        return (
            f"{name} has {shown} on line(s) {where}, outside the schema's range [{feature.minimum}, {feature.maximum}]; "
            "widen min/max in the schema if the data is right"
        )
    if is_label and check.startswith(("label_class", "isin")):
        return (
            f"{name} has unknown value(s) {shown} on line(s) {where}; allowed labels are "
            f"{', '.join(str(c) for c in schema.classes)} ([label].classes in the schema)"
        )
    if check.startswith("isin"):
        return (
            f"{name} has {shown} on line(s) {where}, not among the schema's categories; add them to its "
            "categories if the data is right"
        )
    return f"{name} fails {check} with {shown} on line(s) {where}"


def _problems(frame: pd.DataFrame, schema: Schema) -> list[str]:
    problems: list[str] = []
    for feature in schema.features:
        if feature.kind is Kind.NUMERIC and feature.name in frame and pd.api.types.is_bool_dtype(frame[feature.name]):
            problems.append(f"column {feature.name!r} must be numeric but holds true/false values")
    try:
        pandera_schema(schema).validate(_prepared(frame, schema), lazy=True)
    except SchemaErrors as errors:
        cases = errors.failure_cases
        grouped: dict[tuple[str, str], tuple[list[Any], list[Any]]] = defaultdict(lambda: ([], []))
        for row in cases.itertuples(index=False):
            key = (str(row.column) if row.column is not None else "", str(row.check))
            if key[1] == "column_in_dataframe":
                key = ("", key[1])
            grouped[key][0].append(row.failure_case)
            grouped[key][1].append(row.index)
        for (column, check), (values, index) in grouped.items():
            if column in {f.name for f in schema.features if f.kind is Kind.NUMERIC} and any(
                p.startswith(f"column {column!r} must be numeric but holds") for p in problems
            ):
                continue
            problems.append(_describe(schema, column, check, values, index))
    return problems


def validate(frame: pd.DataFrame, source: str, schema: Schema) -> ValidationReport:
    """Check frame against the schema; raise DataValidationError naming every problem."""
    if frame.empty:
        raise DataValidationError(
            f"{source} has no data rows. Point [data].source in mlops.toml at a file with a header row and data rows."
        )
    problems = _problems(frame, schema)
    counts: dict[str, int] = {}
    if not problems and schema.task.is_classification:
        observed = _prepared(frame, schema)[schema.label].value_counts().to_dict()
        counts = {str(c): int(observed.get(str(c), 0)) for c in schema.classes}
        absent = [str(c) for c, n in counts.items() if n == 0]
        if absent:
            problems.append(
                f"label column {schema.label!r} never takes the value(s) {', '.join(absent)}; a classifier needs "
                "rows of every class in [label].classes"
            )
    if problems:
        raise DataValidationError(
            f"{source} does not match the schema in {schema.path.name}:\n  - "
            + "\n  - ".join(problems)
            + "\nFix the data (or the schema, if the data is right: `make infer-schema` writes it again) and run "
            "again. Nothing was trained or registered."
        )
    return ValidationReport(
        rows=len(frame),
        ignored_columns=tuple(c for c in frame.columns if c not in (*schema.names, schema.label)),
        class_counts=counts,
    )
