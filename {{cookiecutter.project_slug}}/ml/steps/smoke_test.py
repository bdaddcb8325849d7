"""Smoke test: real requests against the endpoint, checked against the serving contract."""

from __future__ import annotations

import csv
import json
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


def _predictions(payload: bytes, expected: int) -> list[dict[str, Any]]:
    predictions: list[dict[str, Any]] = json.loads(payload)["predictions"]
    if len(predictions) != expected:
        raise EndpointError(f"smoke test: sent {expected} rows, got {len(predictions)} predictions")
    for item in predictions:
        if item["label"] not in schema.LABEL_VALUES or not 0.0 <= item["probability"] <= 1.0:
            raise EndpointError(f"smoke test: malformed prediction {item}")
    return predictions


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
    sample = load_sample(ctx, data, ctx.config.serve.smoke_test_rows)
    lines = [",".join(row[name] for name in schema.FEATURES) for row in sample]
    accept = "application/json"

    batch = _predictions(
        endpoint.invoke(("\n".join(lines) + "\n").encode(), "text/csv", accept, inference_id=f"{SMOKE_TEST_ID}csv"),
        len(sample),
    )
    instances = [{name: float(row[name]) for name in schema.FEATURES} for row in sample]
    as_json = json.dumps({"instances": instances}).encode()
    if _predictions(endpoint.invoke(as_json, "application/json", accept, f"{SMOKE_TEST_ID}json"), len(sample)) != batch:
        raise EndpointError("smoke test: CSV and JSON requests for the same rows disagree")
    # A bad row must be refused. The SageMaker container answers every handler error with a bare
    # HTTP 500, locally as in AWS, so what is checked is the refusal and that it says where the
    # reason is (the server log locally, the CloudWatch log stream in AWS), not a status code.
    try:
        endpoint.invoke(b"1,2,3\n", "text/csv", accept, inference_id=f"{SMOKE_TEST_ID}bad-row")
    except EndpointError as exc:
        refusal = str(exc)
    else:
        raise EndpointError("smoke test: a row with 3 features was accepted; input validation is broken")
    if "log" not in refusal:
        raise EndpointError(
            f"smoke test: a bad row was refused, but the answer does not say where the reason is: {refusal}"
        )

    skew_checked = check_skew(ctx, status.version, accept)

    # One request first, untimed: a serverless endpoint's cold start is not the latency it serves at.
    endpoint.invoke(f"{lines[0]}\n".encode(), "text/csv", accept, f"{SMOKE_TEST_ID}warm-up")
    latencies = []
    for number, line in enumerate(lines):
        started = time.perf_counter()
        _predictions(endpoint.invoke(f"{line}\n".encode(), "text/csv", accept, f"{SMOKE_TEST_ID}{number}"), 1)
        latencies.append((time.perf_counter() - started) * 1000)
    p95 = statistics.quantiles(latencies, n=20)[-1] if len(latencies) >= 2 else latencies[0]
    budget = ctx.config.serve.smoke_test_p95_ms
    if p95 > budget:
        raise EndpointError(
            f"smoke test: p95 latency {p95:.1f} ms over {len(latencies)} requests is over the budget "
            f"[serve].smoke_test_p95_ms = {budget:g}; find what slows the model, or raise the budget in mlops.toml"
        )
    requests = 4 + len(lines) + int(skew_checked)
    truth = [int(row[schema.LABEL]) for row in sample]
    accuracy = sum(p["label"] == t for p, t in zip(batch, truth, strict=True)) / len(truth)
    ctx.console.print(
        f"smoke test: {requests} requests to v{status.version} OK, accuracy on {len(truth)} rows {accuracy:.3f}"
    )
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


# The served answer keeps six decimals (inference.py's output_fn): a difference beyond rounding is skew.
SKEW_TOLERANCE = 2e-6


def check_skew(ctx: Context, version: int, accept: str) -> bool:
    """The deployed model answers exactly what the registered model answered offline for the same rows.

    The evaluation job kept test rows with the candidate's probabilities (evaluation.json's
    "reference"); a different preprocessing, library or artifact in serving shows here.
    False if the version predates references.
    """
    model = ctx.backends.registry.get(version)
    with tempfile.TemporaryDirectory() as scratch:
        evaluation = json.loads(
            ctx.backends.artifacts.get(model.package.evaluation_uri, Path(scratch) / "e.json").read_text()
        )
    reference = evaluation.get("reference")
    if not reference:
        return False
    body = "".join(",".join(repr(value) for value in row) + "\n" for row in reference["rows"]).encode()
    served = _predictions(
        ctx.backends.endpoint.invoke(body, "text/csv", accept, f"{SMOKE_TEST_ID}skew"), len(reference["rows"])
    )
    for number, (offline, answer) in enumerate(zip(reference["probabilities"], served, strict=True)):
        if abs(offline - answer["probability"]) > SKEW_TOLERANCE:
            raise EndpointError(
                f"smoke test: training/serving skew on reference row {number}: the registered model gave "
                f"{offline:.6f} offline, the endpoint answers {answer['probability']:.6f}. The model, its code "
                "or its libraries differ between evaluation and serving."
            )
    return True
