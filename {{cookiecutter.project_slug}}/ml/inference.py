"""Inference handlers for the SageMaker scikit-learn serving container.

The container (and the local endpoint in ml/serving.py, which imitates it) imports this
file from model.tar.gz's code/ directory and calls the four handlers in order:
model_fn once at start-up, then input_fn -> predict_fn -> output_fn per request.
Only the container's libraries may be imported here.

What a request holds and what it gets back follow the model's schema (metadata.json):
numeric features take numbers, categorical ones text (a category the model never saw is
allowed and ignored), and a feature the schema marks nullable may be empty or null. Each
prediction is, by task:

- binary:     {"label": <class>, "probability": <probability of the positive class>}
- multiclass: {"label": <class>, "probability": <its probability>, "probabilities": {<class>: p, ...}}
- regression: {"value": <the prediction>}

Batch Transform (ml/batch.py locally; the transform job's Environment in AWS) sets
MLOPS_REJECT_ROWS=1: a row the schema refuses is then answered {"rejected": <why>} (CSV: the
prediction's columns empty, the reason in one more column) instead of failing its whole
mini-batch, so one bad row costs one row. The endpoint keeps refusing the whole request.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd

JSON = "application/json"
CSV = "text/csv"
THRESHOLD = 0.5  # binary: the positive class from this probability up
DECIMALS = 6  # probabilities are served rounded to this many places
REJECT_ROWS = "MLOPS_REJECT_ROWS"


class UnsupportedFormatError(ValueError):
    """The request's content type or accept header is not one this model speaks."""


def model_fn(model_dir: str) -> dict[str, Any]:
    path = Path(model_dir)
    metadata = json.loads((path / "metadata.json").read_text())
    return {
        "model": joblib.load(path / "model.joblib"),
        "features": metadata["features"],
        "schema": metadata["schema"],
        "task": metadata["task"],
        "classes": metadata["classes"],
    }


def input_fn(request_body: bytes | str, request_content_type: str) -> pd.DataFrame | np.ndarray[Any, Any]:
    """Parse CSV rows (no header, features in the schema's order) or JSON.

    JSON may be {"instances": [...]} or a bare list; each instance is a list of feature
    values in the schema's order, or an object keyed by feature name.
    """
    text = request_body.decode("utf-8") if isinstance(request_body, bytes) else request_body
    content_type = (request_content_type or CSV).split(";")[0].strip().lower()
    if content_type == CSV:
        rows = [row for row in csv.reader(io.StringIO(text)) if row]
        if not rows or not text.strip():
            raise ValueError("the request body is empty; send one CSV row per instance")
        widths = {len(row) for row in rows}
        if len(widths) != 1:
            raise ValueError(f"CSV rows have different numbers of values ({sorted(widths)})")
        return np.array(rows, dtype=object)
    if content_type == JSON:
        payload = json.loads(text)
        instances = payload.get("instances") if isinstance(payload, dict) else payload
        if not isinstance(instances, list) or not instances:
            raise ValueError('JSON must be {"instances": [...]} with at least one instance')
        if all(isinstance(item, dict) for item in instances):
            return pd.DataFrame(instances)
        for number, item in enumerate(instances):
            if not isinstance(item, list):
                raise ValueError(
                    f"instance {number} is {type(item).__name__}; send a list of feature values or an object"
                )
        widths = {len(item) for item in instances}
        if len(widths) != 1:
            raise ValueError(f"instances have different numbers of values ({sorted(widths)})")
        return np.array(instances, dtype=object)
    raise UnsupportedFormatError(f"content type {content_type!r} is not supported; use {CSV} or {JSON}")


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value == "") or (isinstance(value, float) and math.isnan(value))


def category_text(value: Any) -> str:
    """A category as text, as ml/train.py reads it: 3.0 (an integer column pandas widened) reads as 3."""
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    return str(value)


def _number(value: Any, feature: str, row: int) -> float:
    if isinstance(value, bool | list | dict):
        raise ValueError(f"instance {row} holds {type(value).__name__} for {feature!r}, where a number belongs")
    if isinstance(value, str):
        value = value.strip()
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"instance {row} holds {value!r} for {feature!r}, where a number belongs") from None
    if not math.isfinite(number):
        raise ValueError(f"instance {row} holds {value!r} for {feature!r}; every feature needs a finite number")
    return number


def features_frame(raw: pd.DataFrame, schema: dict[str, Any]) -> pd.DataFrame:
    """The request's rows as the model reads them, checked against the schema: one message per first problem."""
    columns: dict[str, list[Any]] = {}
    for feature in schema["features"]:
        name, nullable = feature["name"], bool(feature.get("nullable"))
        values: list[Any] = []
        for row, value in enumerate(raw[name].tolist()):
            if _missing(value):
                if not nullable:
                    raise ValueError(
                        f"instance(s) [{row}] hold NaN, null or nothing for {name!r}, which the schema says is "
                        "never missing; send a value"
                    )
                values.append(np.nan)
            elif feature["kind"] == "numeric":
                values.append(_number(value, name, row))
            else:
                if isinstance(value, list | dict | bool):
                    raise ValueError(
                        f"instance {row} holds {type(value).__name__} for {name!r}, where a category belongs"
                    )
                values.append(category_text(value))
        columns[name] = values
    frame = pd.DataFrame(columns, index=range(len(raw)))
    for feature in schema["features"]:
        kind = float if feature["kind"] == "numeric" else object
        frame[feature["name"]] = frame[feature["name"]].astype(kind)
    return frame


def _raw(input_data: pd.DataFrame | np.ndarray[Any, Any], features: list[str]) -> pd.DataFrame:
    """The request as one column per feature, in the schema's order: its shape is checked, not its values."""
    if isinstance(input_data, pd.DataFrame):
        missing = [name for name in features if name not in input_data.columns]
        if missing:
            raise ValueError(f"instances lack feature(s): {', '.join(missing)}")
        return input_data[features].astype(object).reset_index(drop=True)
    if input_data.ndim != 2 or input_data.shape[1] != len(features):
        width = input_data.shape[1] if input_data.ndim == 2 else 0
        raise ValueError(f"each instance needs {len(features)} feature values, got {width}")
    return pd.DataFrame(input_data, columns=features, dtype=object)


def _checked_rows(raw: pd.DataFrame, schema: dict[str, Any]) -> tuple[pd.DataFrame, dict[int, str]]:
    """Batch Transform's rows: those the schema accepts, and why each other one was refused.

    A mini-batch is checked whole; one that fails is halved until each bad row stands alone, so a
    few bad rows among thousands cost a few dozen checks, not one per row."""
    frames: list[pd.DataFrame] = []
    rejected: dict[int, str] = {}

    def check(start: int, stop: int) -> None:
        try:
            frames.append(features_frame(raw.iloc[start:stop].reset_index(drop=True), schema))
        except ValueError as error:
            if stop - start == 1:
                rejected[start] = str(error).replace("instance(s) [0] hold", "it holds").replace("instance 0", "it")
                return
            middle = (start + stop) // 2
            check(start, middle)
            check(middle, stop)

    check(0, len(raw))
    kept = pd.concat(frames, ignore_index=True) if frames else features_frame(raw.iloc[:0], schema)
    return kept, rejected


def predict_fn(input_data: pd.DataFrame | np.ndarray[Any, Any], model: dict[str, Any]) -> dict[str, Any]:
    raw = _raw(input_data, model["features"])
    if os.environ.get(REJECT_ROWS) == "1":
        frame, rejected = _checked_rows(raw, model["schema"])
    else:
        frame, rejected = features_frame(raw, model["schema"]), {}
    prediction = _predict(frame, model) if len(frame) else _empty(model)
    return {**prediction, "rejected": rejected, "rows": len(raw)}


def _empty(model: dict[str, Any]) -> dict[str, Any]:
    if model["task"] == "regression":
        return {"task": "regression", "values": []}
    return {"task": model["task"], "classes": list(model["classes"]), "labels": [], "probabilities": []}


def _predict(frame: pd.DataFrame, model: dict[str, Any]) -> dict[str, Any]:
    estimator = model["model"]
    if model["task"] == "regression":
        return {"task": "regression", "values": [float(v) for v in estimator.predict(frame)]}
    classes = list(model["classes"])
    matrix = np.asarray(estimator.predict_proba(frame), dtype=float)
    if model["task"] == "binary":
        positive = matrix[:, 1]
        labels = [classes[1] if p >= THRESHOLD else classes[0] for p in positive]
    else:
        labels = [classes[int(i)] for i in matrix.argmax(axis=1)]
    return {
        "task": model["task"],
        "classes": classes,
        "labels": labels,
        "probabilities": matrix.tolist(),
    }


def answers(prediction: dict[str, Any]) -> list[dict[str, Any]]:
    """One answer per row, as the endpoint returns them (see the module's docstring)."""
    if prediction["task"] == "regression":
        scored = [{"value": value} for value in prediction["values"]]
    else:
        classes = prediction["classes"]
        scored = []
        for label, probabilities in zip(prediction["labels"], prediction["probabilities"], strict=True):
            if prediction["task"] == "binary":
                scored.append({"label": label, "probability": round(probabilities[1], DECIMALS)})
            else:
                scored.append(
                    {
                        "label": label,
                        "probability": round(probabilities[classes.index(label)], DECIMALS),
                        "probabilities": {
                            str(c): round(p, DECIMALS) for c, p in zip(classes, probabilities, strict=True)
                        },
                    }
                )
    rejected: dict[int, str] = prediction.get("rejected") or {}
    if not rejected:
        return scored
    rows, answers_in_order = iter(scored), []
    for index in range(prediction["rows"]):
        answers_in_order.append({"rejected": rejected[index]} if index in rejected else next(rows))
    return answers_in_order


def csv_width(prediction: dict[str, Any]) -> int:
    """How many columns output_fn's CSV gives a scored row."""
    if prediction["task"] == "regression":
        return 1
    return 2 if prediction["task"] == "binary" else 2 + len(prediction["classes"])


def output_fn(prediction: dict[str, Any], accept: str) -> tuple[str, str]:
    accept = (accept or JSON).split(";")[0].strip().lower()
    rows = answers(prediction)
    if accept in (JSON, "*/*"):
        return json.dumps({"predictions": rows}), JSON
    if accept == CSV:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        # In Batch Transform's mode every row gets one more column: empty, or why it was refused.
        marked, empty = os.environ.get(REJECT_ROWS) == "1", [""] * csv_width(prediction)
        for row in rows:
            if "rejected" in row:
                writer.writerow([*empty, row["rejected"]])
                continue
            if "value" in row:
                fields = [repr(row["value"])]
            elif "probabilities" in row:
                fields = [
                    row["label"],
                    f"{row['probability']:.6f}",
                    *(f"{p:.6f}" for p in row["probabilities"].values()),
                ]
            else:
                fields = [row["label"], f"{row['probability']:.6f}"]
            writer.writerow([*fields, ""] if marked else fields)
        return out.getvalue(), CSV
    raise UnsupportedFormatError(f"accept type {accept!r} is not supported; use {JSON} or {CSV}")
