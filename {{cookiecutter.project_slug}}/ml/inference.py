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
            return pd.DataFrame(instances)
        return np.asarray(instances, dtype=float).reshape(len(instances), -1)
    raise UnsupportedFormatError(f"content type {content_type!r} is not supported; use {CSV} or {JSON}")


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
