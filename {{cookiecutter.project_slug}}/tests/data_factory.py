"""Data for the tests, built from a schema, so the suite passes on whatever data the project holds.

- project_schema() and example_frame(): the project's own schema.toml and data file;
- good_frame(): rows of the project's data, every class represented (a stable selection);
- synthetic_schema(task) and schema_frame(schema): a small schema of every feature kind (numbers
  with a range, categories, gaps) and valid rows drawn from any schema, for tests that need a
  kind of column or a task the project's data may not have;
- tests/strategies.py: rows of any schema as a hypothesis strategy (kept apart: the container
  parity test imports this module in an environment without hypothesis).
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ml import schema
from ml.config import load_config
from ml.schema import Feature, Kind, Schema, Task
from ml.steps.data import load_frame


def project_schema() -> Schema:
    return schema.for_config(load_config())


def example_frame() -> pd.DataFrame:
    """The data set mlops.toml names, as the data step reads it."""
    config = load_config()
    return load_frame((config.root / config.data.source).resolve())


def good_frame(rows: int = 120) -> pd.DataFrame:
    """Rows of the project's data that its schema accepts, with every class (classification).

    Classes take turns, so each is represented however few rows there are, and the selection is the
    same on every run.
    """
    contract = project_schema()
    frame = example_frame()[[*contract.names, contract.label]]
    if not contract.task.is_classification:
        return frame.head(rows).reset_index(drop=True)
    labels = frame[contract.label].map(schema_label_text)
    groups = [frame[labels == schema_label_text(c)] for c in contract.classes]
    picked: list[pd.DataFrame] = []
    position = 0
    while sum(len(p) for p in picked) < rows and any(position < len(g) for g in groups):
        picked += [g.iloc[[position]] for g in groups if position < len(g)]
        position += 1
    return pd.concat(picked, ignore_index=True).head(rows)


def schema_label_text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def numeric_features(contract: Schema) -> list[str]:
    return contract.of_kind(Kind.NUMERIC)


def synthetic_schema(task: Task = Task.MULTICLASS) -> Schema:
    """Every kind of feature: numbers with a range, a nullable number, categories (one holding a comma), gaps."""
    features = (
        Feature("length", Kind.NUMERIC, minimum=0.0, maximum=10.0),
        Feature("weight", Kind.NUMERIC, nullable=True, minimum=-5.0, maximum=5.0),
        Feature("colour", Kind.CATEGORICAL, categories=("blue, dark", "green", "red")),
        Feature("grade", Kind.CATEGORICAL, nullable=True, categories=("1", "2", "3")),
    )
    classes: tuple[Any, ...] = {
        Task.BINARY: ("no", "yes"),
        Task.MULTICLASS: ("a", "b", "c"),
        Task.REGRESSION: (),
    }[task]
    return Schema("target", task, features, classes, Path("synthetic-schema.toml"))


def schema_frame(contract: Schema, rows: int = 120, seed: int = 0, missing: float = 0.1) -> pd.DataFrame:
    """Valid rows for a schema: values in range or among the categories, gaps only where nullable.

    The label depends on the first feature (and the categories), so a model has something to learn.
    """
    rng = np.random.default_rng(seed)
    data: dict[str, Any] = {}
    signal = np.zeros(rows)
    for feature in contract.features:
        if feature.kind is Kind.NUMERIC:
            low = feature.minimum if feature.minimum is not None else 0.0
            high = feature.maximum if feature.maximum is not None else low + 1.0
            values = rng.uniform(low, high, rows)
            signal += (values - low) / ((high - low) or 1.0)
            column: Any = values.astype(object)
        else:
            picks = rng.integers(0, len(feature.categories), rows)
            signal += picks / max(1, len(feature.categories) - 1)
            column = np.array([feature.categories[i] for i in picks], dtype=object)
        if feature.nullable:
            column[rng.random(rows) < missing] = np.nan
        data[feature.name] = column
    if contract.task.is_classification:
        order = np.argsort(np.argsort(signal + rng.normal(0, 0.1, rows)))
        data[contract.label] = [contract.classes[int(i * len(contract.classes) / rows)] for i in order]
    else:
        data[contract.label] = signal * 10 + rng.normal(0, 0.5, rows)
    frame = pd.DataFrame(data)
    for feature in contract.features:
        if feature.kind is Kind.NUMERIC:
            frame[feature.name] = frame[feature.name].astype(float)
    return frame


def drifted_frame(frame: pd.DataFrame, contract: Schema, shift: float) -> pd.DataFrame:
    """Every feature moved: a number by `shift` standard deviations, a category onto its rarest value."""
    moved = frame.copy()
    for feature in contract.features:
        if feature.kind.value == "numeric":
            moved[feature.name] = frame[feature.name] + shift * float(frame[feature.name].std())
        else:  # every row onto the rarest category: its share jumps
            rarest = frame[feature.name].value_counts().reindex(list(feature.categories), fill_value=0).idxmin()
            moved[feature.name] = frame[feature.name].where(frame[feature.name].isna(), rarest)
    return moved


def csv_line(row: dict[str, Any] | pd.Series[Any], features: list[str]) -> str:
    """One CSV request line in the schema's order: missing values empty, categories quoted when needed."""
    out = io.StringIO()
    values = []
    for name in features:
        value = row[name]
        missing = value is None or (isinstance(value, float) and math.isnan(value))
        values.append("" if missing else repr(float(value)) if isinstance(value, int | float) else str(value))
    csv.writer(out, lineterminator="").writerow(values)
    return out.getvalue()


def write_csv(frame: pd.DataFrame, directory: Path, name: str = "data.csv") -> Path:
    path = directory / name
    directory.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)
    return path


def write_schema(contract: Schema, directory: Path, name: str = "schema.json") -> Path:
    """The schema as the data step hands it to the training job (the schema channel)."""
    path = directory / name
    directory.mkdir(parents=True, exist_ok=True)
    path.write_text(contract.as_json())
    return path
