"""Inference handlers for the SageMaker scikit-learn serving container.

The container (and the local endpoint in ml/serving.py, which imitates it) imports this
file from model.tar.gz's code/ directory and calls the four handlers in order:
model_fn once at start-up, then input_fn -> predict_fn -> output_fn per request.
Only the container's libraries may be imported here.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd

JSON = "application/json"
CSV = "text/csv"
THRESHOLD = 0.5


class UnsupportedFormatError(ValueError):
    """The request's content type or accept header is not one this model speaks."""


def model_fn(model_dir: str) -> dict[str, Any]:
    path = Path(model_dir)
    metadata = json.loads((path / "metadata.json").read_text())
    return {"model": joblib.load(path / "model.joblib"), "features": metadata["features"]}


def input_fn(request_body: bytes | str, request_content_type: str) -> pd.DataFrame | np.ndarray[Any, Any]:
    """Parse CSV rows (no header, features in training order) or JSON.

    JSON may be {"instances": [...]} or a bare list; each instance is a list of feature
    values in training order, or an object keyed by feature name.
    """
    text = request_body.decode("utf-8") if isinstance(request_body, bytes) else request_body
    content_type = (request_content_type or CSV).split(";")[0].strip().lower()
    if content_type == CSV:
        if not text.strip():
            raise ValueError("the request body is empty; send one CSV row per instance")
        return np.loadtxt(io.StringIO(text), delimiter=",", ndmin=2, dtype=float)
    if content_type == JSON:
        payload = json.loads(text)
        instances = payload.get("instances") if isinstance(payload, dict) else payload
        if not isinstance(instances, list) or not instances:
            raise ValueError('JSON must be {"instances": [...]} with at least one instance')
        if all(isinstance(item, dict) for item in instances):
            for number, item in enumerate(instances):
                _numbers(list(item.values()), number)
            return pd.DataFrame(instances)
        for number, item in enumerate(instances):
            if not isinstance(item, list):
                raise ValueError(
                    f"instance {number} is {type(item).__name__}; send a list of feature values or an object"
                )
            _numbers(item, number)
        widths = {len(item) for item in instances}
        if len(widths) != 1:
            raise ValueError(f"instances have different numbers of values ({sorted(widths)})")
        return np.asarray(instances, dtype=float)
    raise UnsupportedFormatError(f"content type {content_type!r} is not supported; use {CSV} or {JSON}")


def _numbers(values: list[Any], number: int) -> None:
    """Each value a plain number: not null, not nested, not true/false."""
    for value in values:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            shown = "null" if value is None else type(value).__name__
            raise ValueError(f"instance {number} holds {shown} where a number belongs; every feature needs a number")


def predict_fn(input_data: pd.DataFrame | np.ndarray[Any, Any], model: dict[str, Any]) -> dict[str, list[Any]]:
    features: list[str] = model["features"]
    if isinstance(input_data, pd.DataFrame):
        missing = [name for name in features if name not in input_data.columns]
        if missing:
            raise ValueError(f"instances lack feature(s): {', '.join(missing)}")
        frame = input_data[features].astype(float)
    else:
        if input_data.shape[1] != len(features):
            raise ValueError(f"each instance needs {len(features)} feature values, got {input_data.shape[1]}")
        frame = pd.DataFrame(input_data, columns=features)
    finite = np.isfinite(frame.to_numpy(dtype=float)).all(axis=1)
    if not finite.all():
        bad = [int(i) for i in np.flatnonzero(~finite)[:5]]
        raise ValueError(f"instance(s) {bad} hold NaN or infinite values; every feature needs a finite number")
    probabilities = model["model"].predict_proba(frame)[:, 1]
    return {
        "probabilities": [float(p) for p in probabilities],
        "labels": [int(p >= THRESHOLD) for p in probabilities],
    }


def output_fn(prediction: dict[str, list[Any]], accept: str) -> tuple[str, str]:
    accept = (accept or JSON).split(";")[0].strip().lower()
    pairs = zip(prediction["labels"], prediction["probabilities"], strict=True)
    if accept in (JSON, "*/*"):
        rows = [{"label": label, "probability": round(p, 6)} for label, p in pairs]
        return json.dumps({"predictions": rows}), JSON
    if accept == CSV:
        return "".join(f"{label},{p:.6f}\n" for label, p in pairs), CSV
    raise UnsupportedFormatError(f"accept type {accept!r} is not supported; use {JSON} or {CSV}")
