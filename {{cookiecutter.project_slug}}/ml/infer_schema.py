"""Infer a schema (ml/schema.py) from a data file, for a person to review: `make infer-schema`.

Numbers become numeric features with the range seen; text, true/false and anything else become
categorical with the values seen. A column with gaps is nullable. The task follows the label:
text or true/false is classification, and so are whole numbers with few distinct values
(MAX_CLASSES at most); other numbers are regression. TASK= overrides the guess, and a task the
label cannot have (regression on text) is refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from ml.errors import ConfigError
from ml.schema import Feature, Kind, Label, Schema, Task
from ml.validation import category_text

MAX_CLASSES = 20  # whole-number labels with more distinct values than this are taken as a quantity
MANY_CATEGORIES = 100  # a categorical column with more values than this is probably an identifier or free text


def _numeric(values: pd.Series[Any]) -> bool:
    return pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)


def _plain(value: Any) -> Label:
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value if isinstance(value, int | float | str) else str(value)


def guess_task(labels: pd.Series[Any]) -> Task:
    present = labels.dropna()
    distinct = present.nunique()
    if not _numeric(present):
        return Task.BINARY if distinct == 2 else Task.MULTICLASS
    whole = bool((present.astype(float) % 1 == 0).all())
    if whole and distinct <= MAX_CLASSES:
        return Task.BINARY if distinct == 2 else Task.MULTICLASS
    return Task.REGRESSION


def infer(frame: pd.DataFrame, label: str, task: str | None, path: Path) -> tuple[Schema, list[str]]:
    """The schema of frame, and notes for the reviewer (columns that look like identifiers, say)."""
    if label not in frame.columns:
        raise ConfigError(
            f"LABEL={label!r} is not a column of the data (it has {', '.join(map(str, frame.columns))}); "
            "name the column the model should predict"
        )
    labels = frame[label]
    if labels.isna().any():
        raise ConfigError(f"the label column {label!r} has empty values; drop those rows, or choose another label")
    try:
        chosen = Task(task) if task else guess_task(labels)
    except ValueError:
        raise ConfigError(f"TASK={task!r} is not a task: use binary, multiclass or regression") from None
    if chosen is Task.REGRESSION and not _numeric(labels):
        raise ConfigError(
            f"TASK=regression needs a numeric label, but {label!r} holds text such as {labels.iloc[0]!r}; "
            "use TASK=binary or TASK=multiclass"
        )
    classes: tuple[Label, ...] = ()
    if chosen.is_classification:
        found = sorted({_plain(v) for v in labels}, key=lambda v: (isinstance(v, str), v))
        if chosen is Task.BINARY and len(found) != 2:
            raise ConfigError(
                f"TASK=binary needs exactly two label values, but {label!r} has {len(found)}; use TASK=multiclass"
            )
        if len(found) < 2:
            raise ConfigError(f"the label column {label!r} has one value only; a model needs at least two")
        classes = tuple(found)
    notes = []
    features = []
    for name in frame.columns:
        if name == label:
            continue
        values = frame[name]
        nullable = bool(values.isna().any())
        if values.isna().all():
            notes.append(f"{name!r} is empty in every row: left out")
            continue
        if _numeric(values):
            present = values.dropna().astype(float)
            features.append(Feature(str(name), Kind.NUMERIC, nullable, float(present.min()), float(present.max())))
            continue
        categories = sorted({category_text(v) for v in values.dropna()})
        if len(categories) > MANY_CATEGORIES:
            notes.append(
                f"{name!r} has {len(categories)} distinct values: an identifier or free text? Remove it from the "
                "schema if the model should not read it"
            )
        features.append(Feature(str(name), Kind.CATEGORICAL, nullable, categories=tuple(categories)))
    if not features:
        raise ConfigError(f"the data has no column besides the label {label!r}: a model needs features")
    return Schema(label, chosen, tuple(features), classes, path), notes
