"""The traffic an endpoint served, judged against its model: drift, data quality, model quality, age.

One implementation, locally and in AWS. `make monitor` runs it as a processing job
(ml/monitor_job.py) over the local endpoint's data capture; in AWS the same job runs in the
SageMaker scikit-learn image over the endpoint's S3 data capture, on a schedule, and publishes
CloudWatch metrics. (SageMaker Model Monitor closed to new customers on 2026-07-30.) Only the
container's libraries are imported: the standard library, numpy and scipy.

It reads one window of traffic (the last `window_hours`), a line at a time: memory grows with
the number of buckets and of labelled requests in the window, never with the capture history.
The checks, reported in Model Monitor's constraint_violations.json format:

- unreadable_traffic_check: captured requests that cannot be read, above `max_unreadable_share`
  of the window (traffic nobody can judge is not "no drift");
- missing_column_check, data_type_check, completeness_check;
- baseline_drift_check: a chi-square test of homogeneity between the training rows and the
  window's rows over the baseline's decile buckets, per feature. Drift is p < alpha / features
  (Bonferroni), so on traffic like the training data a window raises a false alarm with
  probability at most `drift_alpha`, whatever the window's size; below `min_rows` the window is
  reported as too small to judge. The drift score published is -log10(p);
- model_quality_check: the serving model's metrics on labelled traffic (ground truth joined by
  inference id, as SageMaker merges ground truth) below the metrics registered for it by more
  than `quality_tolerance`;
- model_age_check: the serving version is older than `max_model_age_days`.
"""

from __future__ import annotations

import base64
import bisect
import contextlib
import csv
import io
import json
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

# The InferenceId prefixes of the project's own requests: the smoke test's, and the demos'. The
# monitor leaves them out of production traffic (the demos judge their own, and only theirs).
SMOKE_TEST_ID = "mlops-smoke-test-"
DEMO_ID = "mlops-demo-"
EXCLUDED_IDS = (SMOKE_TEST_ID, DEMO_ID)
MAX_EXAMPLES = 20  # unreadable lines quoted in the report
SCORE_CAP = 300.0  # -log10 of the smallest p-value a double holds


@dataclass(frozen=True)
class Settings:
    drift_alpha: float = 0.001
    min_rows: int = 50
    max_unreadable_share: float = 0.01
    quality_metrics: tuple[str, ...] = ("accuracy",)
    quality_tolerance: float = 0.05
    min_labels: int = 50
    max_model_age_days: int = 90
    # From the model's registered evaluation: how labels and answers are compared.
    task: str = "binary"
    positive_class: str = "1"


# Metrics where a smaller number is better: a quality drop is a rise.
LOWER_IS_BETTER = {"rmse", "mae"}


@dataclass
class FeatureWindow:
    """One feature across the window: counts only."""

    present: int = 0  # rows that carry the feature
    not_numbers: int = 0
    missing: int = 0  # present but empty or null
    buckets: list[float] = field(default_factory=list)  # categorical: one per category, then "other"

    @property
    def valid(self) -> int:
        return int(sum(self.buckets))


@dataclass
class Window:
    start: datetime
    end: datetime
    features: dict[str, FeatureWindow]
    lower_bounds: dict[str, list[float]]  # each numeric feature's baseline buckets
    records: int = 0  # readable requests
    rows: int = 0
    unreadable: int = 0
    unreadable_examples: list[str] = field(default_factory=list)
    excluded: int = 0  # the project's own requests
    categories: dict[str, list[str]] = field(default_factory=dict)  # each categorical feature's categories
    # inference id -> (predicted label as text, probability of the positive class), or for a
    # regression model (predicted value, nan): for ground truth.
    predictions: dict[str, tuple[str | float, float]] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    bad_labels: int = 0
    bad_label_examples: list[str] = field(default_factory=list)

    @property
    def requests(self) -> int:
        return self.records + self.unreadable

    @property
    def unknown_labels(self) -> int:
        """Labels for inference ids this window did not capture (other windows, or no request)."""
        return sum(1 for event in self.labels if event not in self.predictions)


@dataclass(frozen=True)
class Violation:
    feature_name: str
    constraint_check_type: str
    description: str


@dataclass
class MonitorResult:
    window: Window
    violations: list[Violation]
    drift_p: dict[str, float]
    judged_drift: bool
    live_metrics: dict[str, float]
    labelled: int
    model_age_days: float | None

    @property
    def drifted(self) -> list[str]:
        return [v.feature_name for v in self.violations if v.constraint_check_type == "baseline_drift_check"]

    @property
    def scores(self) -> dict[str, float]:
        return {name: drift_score(p) for name, p in self.drift_p.items()}


def drift_score(p: float) -> float:
    return SCORE_CAP if p <= 0 else min(SCORE_CAP, -math.log10(p))


def score_threshold(settings: Settings, features: int) -> float:
    """The drift score above which a feature has drifted (Bonferroni over the features judged)."""
    return -math.log10(settings.drift_alpha / max(1, features))


# ---- the baseline ----


def lower_bounds(feature: dict[str, Any]) -> list[float]:
    return [b["lower_bound"] for b in feature["numerical_statistics"]["distribution"]["kll"]["buckets"]]


def is_categorical(feature: dict[str, Any]) -> bool:
    return "string_statistics" in feature


def categories(feature: dict[str, Any]) -> list[str]:
    return [str(b["value"]) for b in feature["string_statistics"]["distribution"]["categorical"]["buckets"]]


def baseline_counts(feature: dict[str, Any]) -> list[float]:
    """The training rows per bucket: decile buckets of a number, or each category then "other" (0 in training)."""
    if is_categorical(feature):
        return [b["count"] for b in feature["string_statistics"]["distribution"]["categorical"]["buckets"]] + [0.0]
    return [b["count"] for b in feature["numerical_statistics"]["distribution"]["kll"]["buckets"]]


def baseline_missing(feature: dict[str, Any]) -> float:
    kind = "string_statistics" if is_categorical(feature) else "numerical_statistics"
    return float(feature[kind]["common"].get("num_missing", 0))


def category_text(value: Any) -> str:
    """A category as ml/inference.py reads it (3.0 reads as 3)."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def bucket_of(value: float, lowers: list[float]) -> int:
    """The baseline bucket a value falls in: [lower_i, lower_i+1), the ends open to the outside.

    The same rule train.py counts the baseline with (numpy's histogram), so a value on an edge
    lands in the same bucket in training and in traffic.
    """
    return min(max(bisect.bisect_right(lowers, value) - 1, 0), len(lowers) - 1)


# ---- reading a window ----


def _instances(text: str, content_type: str, features: list[str]) -> list[dict[str, Any]]:
    kind = content_type.split(";")[0].strip().lower()
    if kind == "text/csv":
        rows = [row for row in csv.reader(io.StringIO(text)) if row]
        for row in rows:
            if len(row) != len(features):
                raise ValueError(f"a CSV row has {len(row)} values, the model takes {len(features)}")
        if not rows:
            raise ValueError("the request holds no rows")
        return [dict(zip(features, row, strict=True)) for row in rows]
    if kind == "application/json":
        payload = json.loads(text)
        items = payload.get("instances") if isinstance(payload, dict) else payload
        if not isinstance(items, list) or not items:
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


def _decoded(side: dict[str, Any]) -> str:
    text = side["data"]
    if side.get("encoding") == "BASE64":
        text = base64.b64decode(text).decode("utf-8")
    return str(text)


def _predictions(side: dict[str, Any]) -> list[tuple[str | float, float]]:
    """What the endpoint answered per row, from its JSON output: (label as text, probability), or (value, nan)."""
    answer = json.loads(_decoded(side))
    return [
        (float(p["value"]), math.nan) if "value" in p else (category_text(p["label"]), float(p["probability"]))
        for p in answer["predictions"]
    ]


def new_window(statistics: dict[str, Any], start: datetime, end: datetime) -> Window:
    numeric = [f for f in statistics["features"] if not is_categorical(f)]
    bounds = {f["name"]: lower_bounds(f) for f in numeric}
    kinds = {f["name"]: categories(f) for f in statistics["features"] if is_categorical(f)}
    features = {f["name"]: FeatureWindow(buckets=[0.0] * len(baseline_counts(f))) for f in statistics["features"]}
    return Window(start=start, end=end, features=features, lower_bounds=bounds, categories=kinds)


def add_capture(window: Window, source: str, lines: Iterable[str], only_ids: str | None = None) -> None:
    """Add captured requests (JSON Lines) to the window: counts, and predictions for ground truth."""
    names = list(window.features)
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            metadata = record.get("eventMetadata", {})
            inference_id = str(metadata.get("inferenceId", ""))
            if only_ids is not None and not inference_id.startswith(only_ids):
                continue
            if only_ids is None and inference_id.startswith(EXCLUDED_IDS):
                window.excluded += 1
                continue
            when = _timestamp(metadata.get("inferenceTime"))
            if when is not None and not window.start <= when < window.end:
                continue
            data = record["captureData"]["endpointInput"]
            rows = _instances(_decoded(data), data.get("observedContentType", "text/csv"), names)
        except (ValueError, KeyError, TypeError, UnicodeDecodeError, AttributeError) as error:
            window.unreadable += 1
            if len(window.unreadable_examples) < MAX_EXAMPLES:
                window.unreadable_examples.append(f"{source}:{number}: {type(error).__name__}: {error}")
            continue
        window.records += 1
        add_rows(window, rows)
        if inference_id and len(rows) == 1:
            # Ground truth is joined per request: only single-row requests map one id to one row.
            with contextlib.suppress(ValueError, KeyError, TypeError, IndexError, UnicodeDecodeError):
                window.predictions[inference_id] = _predictions(record["captureData"]["endpointOutput"])[0]


def add_batch(window: Window, source: str, lines: Iterable[str]) -> None:
    """Add a batch's input (CSV lines without a header: the baseline's features, in its order, as
    the scheduled batch takes them) to the window. Each line counts as a request would; one with
    another number of fields is unreadable, so a file in the wrong shape is reported, not judged."""
    names = list(window.features)
    for number, fields in enumerate(csv.reader(line for line in lines if line.strip()), start=1):
        if len(fields) != len(names):
            window.unreadable += 1
            if len(window.unreadable_examples) < MAX_EXAMPLES:
                window.unreadable_examples.append(
                    f"{source}:{number}: {len(fields)} fields where the baseline has {len(names)} features"
                )
            continue
        window.records += 1
        add_rows(window, [dict(zip(names, fields, strict=True))])


def add_rows(window: Window, rows: Iterable[dict[str, Any]]) -> None:
    """Count rows of features into the window: a request's instances, or a batch's rows."""
    names = list(window.features)
    for row in rows:
        window.rows += 1
        for name in names:
            if name not in row:
                continue
            feature = window.features[name]
            feature.present += 1
            value = row[name]
            if value is None or value == "":
                feature.missing += 1
                continue
            if name in window.categories:
                known = window.categories[name]
                text = category_text(value)
                feature.buckets[known.index(text) if text in known else len(known)] += 1
                continue
            try:
                number_value = float(value)
            except (TypeError, ValueError):
                feature.not_numbers += 1
                continue
            if math.isnan(number_value):
                feature.missing += 1
                continue
            feature.buckets[bucket_of(number_value, window.lower_bounds[name])] += 1


def add_ground_truth(window: Window, source: str, lines: Iterable[str]) -> None:
    """Labels that arrived for requests (SageMaker's ground-truth record: groundTruthData, eventId)."""
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            event = str(record["eventMetadata"]["eventId"])
            data = record["groundTruthData"]
            text = _decoded(data).strip()
            if not text:
                raise ValueError("the label is empty")
            label = text
        except (ValueError, KeyError, TypeError, UnicodeDecodeError, AttributeError) as error:
            window.bad_labels += 1
            if len(window.bad_label_examples) < MAX_EXAMPLES:
                window.bad_label_examples.append(f"{source}:{number}: {type(error).__name__}: {error}")
            continue
        window.labels[event] = label


def _timestamp(text: Any) -> datetime | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        return datetime.strptime(text.rstrip("Z")[:26], "%Y-%m-%dT%H:%M:%S.%f").replace(tzinfo=UTC)
    except ValueError:
        return None


def hours(start: datetime, end: datetime) -> Iterator[str]:
    """The yyyy/mm/dd/hh directories (S3 prefixes) the window spans, as data capture lays them out."""
    hour = start.replace(minute=0, second=0, microsecond=0)
    while hour < end:
        yield hour.strftime("%Y/%m/%d/%H")
        hour += timedelta(hours=1)


# ---- the checks ----


def _chi_square_p(baseline: list[float], live: list[float]) -> float:
    """p-value of the chi-square test that training rows and window rows share one distribution."""
    from scipy.stats import chi2_contingency

    pairs = [(b, w) for b, w in zip(baseline, live, strict=True) if b + w > 0]
    if len(pairs) < 2:
        return 1.0
    table = [[b for b, _ in pairs], [w for _, w in pairs]]
    return float(chi2_contingency(table, correction=False).pvalue)


def _regression_metrics(joined: list[tuple[float, float]]) -> dict[str, float]:
    errors = [truth - predicted for truth, predicted in joined]
    mean = sum(t for t, _ in joined) / len(joined)
    total = sum((t - mean) ** 2 for t, _ in joined)
    residual = sum(e * e for e in errors)
    return {
        "mae": sum(abs(e) for e in errors) / len(errors),
        "rmse": math.sqrt(residual / len(errors)),
        "r2": 1 - residual / total if total else 0.0,
    }


def _live_metrics(window: Window, settings: Settings) -> tuple[dict[str, float], int]:
    joined = [(window.labels[i], p) for i, p in window.predictions.items() if i in window.labels]
    if not joined:
        return {}, 0
    if settings.task == "regression":
        pairs = []
        for actual, (value, _) in joined:
            with contextlib.suppress(ValueError):
                pairs.append((float(actual), float(value)))
        return (_regression_metrics(pairs), len(pairs)) if pairs else ({}, 0)
    truth = [category_text(float(t)) if _is_number(t) else t for t, _ in joined]  # "1.0" and "1" are one class
    predicted = [str(label) for _, (label, _) in joined]
    metrics = {"accuracy": sum(1 for t, p in zip(truth, predicted, strict=True) if t == p) / len(joined)}
    if settings.task != "binary":
        return metrics, len(joined)
    positive = settings.positive_class
    tp = sum(1 for t, p in zip(truth, predicted, strict=True) if t == positive and p == positive)
    fp = sum(1 for t, p in zip(truth, predicted, strict=True) if t != positive and p == positive)
    fn = sum(1 for t, p in zip(truth, predicted, strict=True) if t == positive and p != positive)
    metrics["precision"] = tp / (tp + fp) if tp + fp else 0.0
    metrics["recall"] = tp / (tp + fn) if tp + fn else 0.0
    total = metrics["precision"] + metrics["recall"]
    metrics["f1"] = 2 * metrics["precision"] * metrics["recall"] / total if total else 0.0
    if len(set(truth)) == 2:
        from scipy.stats import mannwhitneyu

        scores = [probability for _, (_, probability) in joined]
        positives = [s for s, t in zip(scores, truth, strict=True) if t == positive]
        negatives = [s for s, t in zip(scores, truth, strict=True) if t != positive]
        # ROC AUC is the Mann-Whitney U of the positives' scores over the negatives'.
        if positives and negatives:
            metrics["roc_auc"] = float(mannwhitneyu(positives, negatives).statistic) / (len(positives) * len(negatives))
    return metrics, len(joined)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def check(
    window: Window,
    statistics: dict[str, Any],
    constraints: dict[str, Any],
    settings: Settings,
    registered_metrics: dict[str, float] | None = None,
    model_created_at: datetime | None = None,
    now: datetime | None = None,
) -> MonitorResult:
    stats = {f["name"]: f for f in statistics["features"]}
    violations: list[Violation] = []
    requests = window.requests
    if requests and window.unreadable / requests > settings.max_unreadable_share:
        violations.append(
            Violation(
                "(all)",
                "unreadable_traffic_check",
                f"{window.unreadable} of {requests} captured requests could not be read "
                f"(more than {settings.max_unreadable_share:.0%}); e.g. {window.unreadable_examples[:1]}",
            )
        )
    judged = window.rows >= settings.min_rows
    p_values: dict[str, float] = {}
    for constraint in constraints["features"]:
        name = constraint["name"]
        feature = window.features.get(name)
        if feature is None:
            continue
        if window.rows and not feature.present:
            violations.append(Violation(name, "missing_column_check", f"no captured request has column {name}"))
            continue
        if feature.not_numbers and name not in window.categories:
            violations.append(
                Violation(
                    name,
                    "data_type_check",
                    f"Data type match requirement is not met: expected Fractional, "
                    f"{feature.not_numbers} of {feature.present} values are not numbers",
                )
            )
        required = float(constraint.get("completeness", 1.0))
        valid = feature.valid
        if window.rows and valid / window.rows < required:
            missing = window.rows - valid
            violations.append(
                Violation(
                    name,
                    "completeness_check",
                    f"{missing} of {window.rows} values are missing or not numbers: completeness "
                    f"{valid / window.rows:.6g}, the baseline requires {required:.6g}",
                )
            )
        if judged and valid:
            trained, seen = baseline_counts(stats[name]), list(feature.buckets)
            if required < 1.0:
                # A feature that may be missing: its missing share is one more cell of the test, so a
                # jump in gaps is drift, while gaps as common as in training are not.
                trained, seen = [*trained, baseline_missing(stats[name])], [*seen, float(feature.missing)]
            p_values[name] = _chi_square_p(trained, seen)
    if judged:
        limit = settings.drift_alpha / max(1, len(p_values))
        for name, p in p_values.items():
            if p < limit:
                violations.append(
                    Violation(
                        name,
                        "baseline_drift_check",
                        f"the window's values differ from training (chi-square p = {p:.3g}, drift score "
                        f"{drift_score(p):.1f} > {score_threshold(settings, len(p_values)):.1f})",
                    )
                )
    live, labelled = _live_metrics(window, settings)
    if registered_metrics and labelled >= settings.min_labels:
        for metric in settings.quality_metrics:
            if metric in live and metric in registered_metrics:
                drop = registered_metrics[metric] - live[metric]
                if metric in LOWER_IS_BETTER:
                    drop = -drop
                if drop > settings.quality_tolerance:
                    violations.append(
                        Violation(
                            metric,
                            "model_quality_check",
                            f"{metric} on {labelled} labelled requests is {live[metric]:.4f}, "
                            f"{drop:.4f} worse than the {registered_metrics[metric]:.4f} registered for the model "
                            f"(tolerance {settings.quality_tolerance})",
                        )
                    )
    age = None
    if model_created_at is not None:
        age = ((now or datetime.now(UTC)) - model_created_at).total_seconds() / 86400
        if age > settings.max_model_age_days:
            violations.append(
                Violation(
                    "(model)",
                    "model_age_check",
                    f"the serving model is {age:.0f} days old, more than max_model_age_days = {settings.max_model_age_days}",
                )
            )
    return MonitorResult(window, violations, p_values, judged, live, labelled, age)


def violations_document(result: MonitorResult) -> dict[str, Any]:
    """constraint_violations.json, in Model Monitor's format."""
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


def metrics_document(result: MonitorResult, settings: Settings) -> dict[str, Any]:
    """What the job publishes to CloudWatch (and writes as metrics.json): one drift score per
    feature, the overall drift flag, the share of unreadable traffic, model quality and age."""
    window = result.window
    return {
        "window": {"start": window.start.isoformat(), "end": window.end.isoformat()},
        "requests": window.requests,
        "rows": window.rows,
        "judged_drift": result.judged_drift,
        "drift_score_threshold": score_threshold(settings, len(result.drift_p)),
        "feature_drift_score": result.scores,
        "drift": int(bool(result.drifted)),
        "unreadable_share": (window.unreadable / window.requests) if window.requests else 0.0,
        "labelled": result.labelled,
        "live_metrics": result.live_metrics,
        "model_age_days": result.model_age_days,
        "violations": len(result.violations),
    }
