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
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd

JSON = "application/json"
CSV = "text/csv"
THRESHOLD = 0.5  # binary: the positive class from this probability up
DECIMALS = 6  # probabilities are served rounded to this many places


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


def predict_fn(input_data: pd.DataFrame | np.ndarray[Any, Any], model: dict[str, Any]) -> dict[str, Any]:
    features: list[str] = model["features"]
    if isinstance(input_data, pd.DataFrame):
        missing = [name for name in features if name not in input_data.columns]
        if missing:
            raise ValueError(f"instances lack feature(s): {', '.join(missing)}")
        raw = input_data[features].astype(object).reset_index(drop=True)
    else:
        if input_data.ndim != 2 or input_data.shape[1] != len(features):
            width = input_data.shape[1] if input_data.ndim == 2 else 0
            raise ValueError(f"each instance needs {len(features)} feature values, got {width}")
        raw = pd.DataFrame(input_data, columns=features, dtype=object)
    frame = features_frame(raw, model["schema"])
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
        return [{"value": value} for value in prediction["values"]]
    classes = prediction["classes"]
    rows = []
    for label, probabilities in zip(prediction["labels"], prediction["probabilities"], strict=True):
        if prediction["task"] == "binary":
            rows.append({"label": label, "probability": round(probabilities[1], DECIMALS)})
        else:
            rows.append(
                {
                    "label": label,
                    "probability": round(probabilities[classes.index(label)], DECIMALS),
                    "probabilities": {str(c): round(p, DECIMALS) for c, p in zip(classes, probabilities, strict=True)},
                }
            )
    return rows


def output_fn(prediction: dict[str, Any], accept: str) -> tuple[str, str]:
    accept = (accept or JSON).split(";")[0].strip().lower()
    rows = answers(prediction)
    if accept in (JSON, "*/*"):
        return json.dumps({"predictions": rows}), JSON
    if accept == CSV:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        for row in rows:
            if "value" in row:
                writer.writerow([repr(row["value"])])
            elif "probabilities" in row:
                writer.writerow(
                    [row["label"], f"{row['probability']:.6f}", *(f"{p:.6f}" for p in row["probabilities"].values())]
                )
            else:
                writer.writerow([row["label"], f"{row['probability']:.6f}"])
        return out.getvalue(), CSV
    raise UnsupportedFormatError(f"accept type {accept!r} is not supported; use {JSON} or {CSV}")
