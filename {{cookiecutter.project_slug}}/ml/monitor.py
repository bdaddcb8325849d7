"""Data-quality monitoring of captured traffic against the training baseline.

It reads SageMaker data-capture JSON Lines, checks the inputs against the baseline's
constraints.json and statistics.json (SageMaker Model Monitor's own formats), and reports in
Model Monitor's constraint_violations.json format, so results read the same locally and in AWS:

- missing_column_check: a baseline feature that no captured request carries
- data_type_check: values that are not numbers
- completeness_check: the share of present values below the constraint
- baseline_drift_check: population stability index (PSI) over the baseline's buckets above
  [monitor].drift_threshold
"""

from __future__ import annotations

import base64
import csv
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

EPSILON = 1e-4  # stands in for an empty bucket, so PSI stays finite
# The InferenceId prefix of the smoke test's requests: data capture records them like any other,
# and the monitor leaves them out, so a deploy's own checks are never judged as traffic.
SMOKE_TEST_ID = "mlops-smoke-test-"


@dataclass
class Capture:
    rows: list[dict[str, Any]] = field(default_factory=list)
    records: int = 0
    malformed: list[str] = field(default_factory=list)
    excluded: int = 0  # the smoke test's own requests


@dataclass(frozen=True)
class Violation:
    feature_name: str
    constraint_check_type: str
    description: str


@dataclass
class MonitorResult:
    rows: int
    records: int
    malformed: list[str]
    violations: list[Violation]
    psi: dict[str, float]
    judged_drift: bool

    @property
    def drifted(self) -> list[str]:
        return [v.feature_name for v in self.violations if v.constraint_check_type == "baseline_drift_check"]


def _instances(text: str, content_type: str, features: list[str]) -> list[dict[str, Any]]:
    kind = content_type.split(";")[0].strip().lower()
    if kind == "text/csv":
        rows = [row for row in csv.reader(io.StringIO(text)) if row]
        for row in rows:
            if len(row) != len(features):
                raise ValueError(f"a CSV row has {len(row)} values, the model takes {len(features)}")
        return [dict(zip(features, row, strict=True)) for row in rows]
    if kind == "application/json":
        payload = json.loads(text)
        items = payload.get("instances") if isinstance(payload, dict) else payload
        if not isinstance(items, list):
            raise ValueError('JSON input is neither {"instances": [...]} nor a list')
        out = []
        for item in items:
            if isinstance(item, dict):
                out.append(dict(item))
            elif isinstance(item, list) and len(item) == len(features):
                out.append(dict(zip(features, item, strict=True)))
            else:
                raise ValueError("a JSON instance is neither an object nor a full list of feature values")
        return out
    raise ValueError(f"unsupported content type {content_type!r}")


def read_capture(root: Path, features: list[str]) -> Capture:
    """Every request captured under root; lines that cannot be read are listed, not dropped silently."""
    capture = Capture()
    for path in sorted(root.rglob("*.jsonl")):
        for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                if str(record.get("eventMetadata", {}).get("inferenceId", "")).startswith(SMOKE_TEST_ID):
                    capture.excluded += 1
                    continue
                data = record["captureData"]["endpointInput"]
                text = data["data"]
                if data.get("encoding") == "BASE64":
                    text = base64.b64decode(text).decode("utf-8")
                rows = _instances(text, data.get("observedContentType", "text/csv"), features)
            except (ValueError, KeyError, TypeError, UnicodeDecodeError) as error:
                capture.malformed.append(f"{path.relative_to(root)}:{number}: {type(error).__name__}: {error}")
                continue
            capture.records += 1
            capture.rows.extend(rows)
    return capture


@dataclass(frozen=True)
class Column:
    """One feature across the captured rows, as the checks and the plots read it."""

    present: int  # rows that carry the feature at all
    not_numbers: int  # values present that are not numbers
    values: list[float]  # the numeric values


def column(rows: list[dict[str, Any]], name: str) -> Column:
    present, not_numbers, values = 0, 0, []
    for row in rows:
        if name not in row:
            continue
        present += 1
        value = row[name]
        if value is None or value == "":
            continue
        try:
            number = float(value)
        except (TypeError, ValueError):
            not_numbers += 1
            continue
        if math.isnan(number):
            not_numbers += 1
        else:
            values.append(number)
    return Column(present, not_numbers, values)


def psi(expected: list[float], actual: list[float]) -> float:
    total_e, total_a = sum(expected), sum(actual)
    value = 0.0
    for e, a in zip(expected, actual, strict=True):
        pe, pa = max(e / total_e, EPSILON), max(a / total_a, EPSILON)
        value += (pa - pe) * math.log(pa / pe)
    return value


def bucket_counts(values: list[float], buckets: list[dict[str, float]]) -> list[float]:
    """Bin values on the baseline's buckets; values outside its range fall into the end buckets."""
    counts = [0.0] * len(buckets)
    uppers = [b["upper_bound"] for b in buckets]
    for value in values:
        index = next((i for i, upper in enumerate(uppers) if value <= upper), len(buckets) - 1)
        counts[index] += 1
    return counts


def check(
    capture: Capture, statistics: dict[str, Any], constraints: dict[str, Any], drift_threshold: float, min_rows: int
) -> MonitorResult:
    stats = {f["name"]: f for f in statistics["features"]}
    violations: list[Violation] = []
    scores: dict[str, float] = {}
    rows = capture.rows
    judged = len(rows) >= min_rows
    for constraint in constraints["features"]:
        name = constraint["name"]
        parsed = column(rows, name)
        if rows and not parsed.present:
            violations.append(Violation(name, "missing_column_check", f"no captured request has column {name}"))
            continue
        if parsed.not_numbers:
            violations.append(
                Violation(
                    name,
                    "data_type_check",
                    f"Data type match requirement is not met: expected Fractional, "
                    f"{parsed.not_numbers} of {parsed.present} values are not numbers",
                )
            )
        valid = parsed.values
        completeness = len(valid) / len(rows) if rows else 1.0
        if completeness < constraint.get("completeness", 1.0):
            violations.append(
                Violation(
                    name,
                    "completeness_check",
                    f"Completeness {completeness:.4f} is below the baseline's {constraint['completeness']:.4f}",
                )
            )
        if judged and valid:
            buckets = stats[name]["numerical_statistics"]["distribution"]["kll"]["buckets"]
            score = psi([b["count"] for b in buckets], bucket_counts(valid, buckets))
            scores[name] = score
            if score > drift_threshold:
                violations.append(
                    Violation(
                        name,
                        "baseline_drift_check",
                        f"Baseline drift distance {score:.4f} exceeds threshold {drift_threshold:.4f} (PSI)",
                    )
                )
    return MonitorResult(len(rows), capture.records, capture.malformed, violations, scores, judged)


def violations_document(result: MonitorResult) -> dict[str, Any]:
    """constraint_violations.json, as SageMaker Model Monitor writes it."""
    return {
        "violations": [
            {
                "feature_name": v.feature_name,
                "constraint_check_type": v.constraint_check_type,
                "description": v.description,
            }
            for v in result.violations
        ]
    }
