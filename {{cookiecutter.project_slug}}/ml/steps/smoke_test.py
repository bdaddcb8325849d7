"""Smoke test: real requests against the endpoint, checked against the serving contract."""

from __future__ import annotations

import csv
import io
import json
import math
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ml import schema
from ml.context import Context
from ml.errors import EndpointError
from ml.monitor import SMOKE_TEST_ID
from ml.steps.data import DataResult


@dataclass(frozen=True)
class SmokeResult:
    endpoint: str
    version: int
    requests: int
    rows: int
    accuracy: float
    p50_ms: float
    p95_ms: float
    skew_checked: bool = False


def _predictions(payload: bytes, expected: int, contract: schema.Schema) -> list[dict[str, Any]]:
    predictions: list[dict[str, Any]] = json.loads(payload)["predictions"]
    if len(predictions) != expected:
        raise EndpointError(f"smoke test: sent {expected} rows, got {len(predictions)} predictions")
    classes = {str(c) for c in contract.classes}
    for item in predictions:
        if contract.task.is_classification:
            good = str(item.get("label")) in classes and 0.0 <= float(item.get("probability", -1)) <= 1.0
        else:
            good = isinstance(item.get("value"), int | float) and math.isfinite(item["value"])
        if not good:
            raise EndpointError(f"smoke test: malformed prediction {item}")
    return predictions


def csv_lines(rows: list[dict[str, str]], features: list[str]) -> list[str]:
    """Rows as CSV request lines in the schema's order (quoted where a category holds a comma)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    for row in rows:
        writer.writerow([row[name] for name in features])
    return out.getvalue().splitlines()


def json_instance(row: dict[str, str], contract: schema.Schema) -> dict[str, Any]:
    """A row as a JSON instance: numbers for numeric features, text for categories, null where missing."""
    instance: dict[str, Any] = {}
    for feature in contract.features:
        value = row[feature.name]
        if value == "":
            instance[feature.name] = None
        elif feature.kind is schema.Kind.NUMERIC:
            instance[feature.name] = float(value)
        else:
            instance[feature.name] = value
    return instance


def load_sample(ctx: Context, data: DataResult, limit: int | None) -> list[dict[str, str]]:
    """The first limit rows of the test split (all of them with limit=None)."""
    with tempfile.TemporaryDirectory() as scratch:
        path = ctx.backends.artifacts.get(data.test_uri, Path(scratch) / "test.csv")
        with path.open(newline="") as handle:
            rows = list(csv.DictReader(handle))
    return rows if limit is None else rows[:limit]


def run(ctx: Context, data: DataResult) -> SmokeResult:
    endpoint = ctx.backends.endpoint
    status = endpoint.status()
    desired = ctx.backends.desired_state.read()
    if status is None or not status.healthy:
        raise EndpointError(f"smoke test: endpoint {endpoint.name} is not serving; run `make deploy`")
    if status.version != desired:
        raise EndpointError(f"smoke test: endpoint serves v{status.version} but the desired state says v{desired}")
    contract = schema.for_config(ctx.config)
    sample = load_sample(ctx, data, ctx.config.serve.smoke_test_rows)
    lines = csv_lines(sample, contract.names)
    accept = "application/json"

    batch = _predictions(
        endpoint.invoke(("\n".join(lines) + "\n").encode(), "text/csv", accept, inference_id=f"{SMOKE_TEST_ID}csv"),
        len(sample),
        contract,
    )
    instances = [json_instance(row, contract) for row in sample]
    as_json = json.dumps({"instances": instances}).encode()
    answered = _predictions(
        endpoint.invoke(as_json, "application/json", accept, f"{SMOKE_TEST_ID}json"), len(sample), contract
    )
    if answered != batch:
        raise EndpointError("smoke test: CSV and JSON requests for the same rows disagree")
    # A bad row must be refused. The SageMaker container answers every handler error with a bare
    # HTTP 500, locally as in AWS, so what is checked is the refusal and that it says where the
    # reason is (the server log locally, the CloudWatch log stream in AWS), not a status code.
    width = len(contract.names) + 1  # one value too many, whatever the schema
    try:
        endpoint.invoke(",".join(["1"] * width).encode() + b"\n", "text/csv", accept, f"{SMOKE_TEST_ID}bad-row")
    except EndpointError as exc:
        refusal = str(exc)
    else:
        raise EndpointError(
            f"smoke test: a row of {width} values was accepted by a model of {width - 1} features; input "
            "validation is broken"
        )
    if "log" not in refusal:
        raise EndpointError(
            f"smoke test: a bad row was refused, but the answer does not say where the reason is: {refusal}"
        )

    skew_checked = check_skew(ctx, status.version, accept, contract)

    # One request first, untimed: a serverless endpoint's cold start is not the latency it serves at.
    endpoint.invoke(f"{lines[0]}\n".encode(), "text/csv", accept, f"{SMOKE_TEST_ID}warm-up")
    latencies = []
    for number, line in enumerate(lines):
        started = time.perf_counter()
        _predictions(endpoint.invoke(f"{line}\n".encode(), "text/csv", accept, f"{SMOKE_TEST_ID}{number}"), 1, contract)
        latencies.append((time.perf_counter() - started) * 1000)
    p95 = statistics.quantiles(latencies, n=20)[-1] if len(latencies) >= 2 else latencies[0]
    budget = ctx.config.serve.smoke_test_p95_ms
    if p95 > budget:
        raise EndpointError(
            f"smoke test: p95 latency {p95:.1f} ms over {len(latencies)} requests is over the budget "
            f"[serve].smoke_test_p95_ms = {budget:g}; find what slows the model, or raise the budget in mlops.toml"
        )
    requests = 4 + len(lines) + int(skew_checked)
    truth = [row[contract.label] for row in sample]
    if contract.task.is_classification:
        accuracy = sum(str(p["label"]) == t for p, t in zip(batch, truth, strict=True)) / len(truth)
        quality = f"accuracy on {len(truth)} rows {accuracy:.3f}"
    else:
        accuracy = 0.0  # not a classifier: the mean absolute error is reported instead
        error = sum(abs(p["value"] - float(t)) for p, t in zip(batch, truth, strict=True)) / len(truth)
        quality = f"mean absolute error on {len(truth)} rows {error:.4g}"
    ctx.console.print(f"smoke test: {requests} requests to v{status.version} OK, {quality}")
    return SmokeResult(
        endpoint=endpoint.name,
        version=status.version,
        requests=requests,
        rows=len(sample),
        accuracy=accuracy,
        p50_ms=statistics.median(latencies),
        p95_ms=p95,
        skew_checked=skew_checked,
    )


# The served probabilities keep six decimals (inference.py's answers): a difference beyond rounding is skew.
SKEW_TOLERANCE = 2e-6


def _differs(offline: Any, served: Any) -> bool:
    """Numbers beyond the tolerance (relative for large regression values), anything else unequal."""
    if isinstance(offline, dict) and isinstance(served, dict):
        return offline.keys() != served.keys() or any(_differs(offline[k], served[k]) for k in offline)
    if isinstance(offline, int | float) and isinstance(served, int | float) and not isinstance(offline, bool):
        return abs(offline - served) > SKEW_TOLERANCE * max(1.0, abs(offline))
    return bool(offline != served)


def check_skew(ctx: Context, version: int, accept: str, contract: schema.Schema) -> bool:
    """The deployed model answers exactly what the registered model answered offline for the same rows.

    The evaluation job kept test rows with the candidate's answers (evaluation.json's
    "reference"); a different preprocessing, library or artifact in serving shows here.
    False if the version predates references.
    """
    model = ctx.backends.registry.get(version)
    with tempfile.TemporaryDirectory() as scratch:
        evaluation = json.loads(
            ctx.backends.artifacts.get(model.package.evaluation_uri, Path(scratch) / "e.json").read_text()
        )
    reference = evaluation.get("reference")
    if not reference or "answers" not in reference:
        return False
    rows = [dict(zip(reference["features"], row, strict=True)) for row in reference["rows"]]
    body = ("\n".join(csv_lines(rows, reference["features"])) + "\n").encode()
    served = _predictions(
        ctx.backends.endpoint.invoke(body, "text/csv", accept, f"{SMOKE_TEST_ID}skew"), len(rows), contract
    )
    for number, (offline, answer) in enumerate(zip(reference["answers"], served, strict=True)):
        if _differs(offline, answer):
            raise EndpointError(
                f"smoke test: training/serving skew on reference row {number}: the registered model gave "
                f"{offline} offline, the endpoint answers {answer}. The model, its code or its libraries differ "
                "between evaluation and serving."
            )
    return True
