"""Monitoring entry point, run as a SageMaker processing job (or its local twin) by `make monitor`
and, in AWS, by the monitoring schedule (infra/components/monitoring_job.py).

It reads one window of an endpoint's data capture (and the ground-truth labels that arrived
for it) straight from where the endpoint writes them, a local directory or an S3 prefix, a line
at a time, or, with --batch-input, a batch's input files (the scheduled batch's drift step,
infra/components/batch_schedule.py); checks it against the serving model's baseline and
registered metrics (ml/monitor.py); and writes, under the processing-job layout of --root:

  input/statistics/statistics.json, input/constraints/constraints.json   the model's baseline
  input/evaluation/evaluation.json                                       its registered evaluation
  output/monitoring/constraint_violations.json, metrics.json, report.md, plots/*.svg

With --namespace it also publishes metrics.json to CloudWatch, under the Endpoint (or Batch)
dimension: one drift score per feature, the drift flag, the unreadable share, the live metrics
and the model's age, which the alarms watch. Only the container's libraries are imported (boto3
only for S3 and CloudWatch).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

# The files the job runs from, itself first: uploaded together, they import each other flat.
FILES = ("monitor_job.py", "monitor.py", "monitor_report.py")

if __package__:
    from ml.monitor import (
        Settings,
        add_batch,
        add_capture,
        add_ground_truth,
        category_text,
        check,
        hours,
        metrics_document,
        new_window,
        violations_document,
    )
    from ml.monitor_report import write_report
else:  # in the container: the modules sit beside this script
    from monitor import (  # type: ignore[import-not-found, no-redef]
        Settings,
        add_batch,
        add_capture,
        add_ground_truth,
        category_text,
        check,
        hours,
        metrics_document,
        new_window,
        violations_document,
    )
    from monitor_report import write_report  # type: ignore[import-not-found, no-redef]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default="/opt/ml/processing")
    parser.add_argument("--capture", default="", help="the variant's capture root: a directory or s3://bucket/prefix/")
    parser.add_argument(
        "--batch-input",
        default="",
        help="instead of --capture: a batch's input files, CSV lines of the baseline's features in its order "
        "without a header, every file under a directory or s3://bucket/prefix/ (the scheduled batch's)",
    )
    parser.add_argument("--ground-truth", default="", help="the endpoint's ground-truth root, the same way")
    parser.add_argument("--window-hours", type=float, default=24.0)
    parser.add_argument("--end", default="", help="the window's end, ISO 8601 (default: now)")
    parser.add_argument("--only-ids", default=None, help="judge only requests whose InferenceId starts so (demos)")
    parser.add_argument("--version", default="?")
    parser.add_argument("--model-created-at", default="")
    parser.add_argument("--drift-alpha", type=float, default=Settings.drift_alpha)
    parser.add_argument("--min-rows", type=int, default=Settings.min_rows)
    parser.add_argument("--max-unreadable-share", type=float, default=Settings.max_unreadable_share)
    parser.add_argument("--quality-metrics", default=",".join(Settings.quality_metrics))
    parser.add_argument("--quality-tolerance", type=float, default=Settings.quality_tolerance)
    parser.add_argument("--min-labels", type=int, default=Settings.min_labels)
    parser.add_argument("--max-model-age-days", type=int, default=Settings.max_model_age_days)
    parser.add_argument("--namespace", default="", help="publish the metrics to CloudWatch under this namespace")
    parser.add_argument("--endpoint", default="", help="the metrics' Endpoint dimension")
    parser.add_argument("--batch", default="", help="with --batch-input: the metrics' Batch dimension")
    parser.add_argument("--region", default="")
    args = parser.parse_args(argv)
    if bool(args.capture) == bool(args.batch_input):
        parser.error("give one of --capture (an endpoint's traffic) and --batch-input (a batch's input files)")
    if args.namespace and not (args.batch if args.batch_input else args.endpoint):
        parser.error("--namespace publishes under a dimension: give --endpoint (with --capture) or --batch")
    return args


def sources(root: str, hour: str, region: str) -> Iterator[tuple[str, Iterator[str]]]:
    """(name, lines) of every JSON Lines file of one hour under a capture or ground-truth root."""
    if root.startswith("s3://"):
        yield from _s3_objects(f"{root.rstrip('/')}/{hour}/", region)
        return
    directory = Path(root) / hour
    for path in sorted(directory.glob("*.jsonl")) if directory.is_dir() else []:
        yield str(path.relative_to(root)), _lines(path)


def batch_sources(root: str, region: str) -> Iterator[tuple[str, Iterator[str]]]:
    """(name, lines) of every file under a batch's input: a directory, or an S3 prefix."""
    if root.startswith("s3://"):
        yield from _s3_objects(root if root.endswith("/") else f"{root}/", region)
        return
    directory = Path(root)
    if not directory.is_dir():
        raise SystemExit(f"--batch-input {root} is not a directory: give the folder (or S3 prefix) of the files")
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        yield str(path.relative_to(directory)), _lines(path)


def _s3_objects(uri: str, region: str) -> Iterator[tuple[str, Iterator[str]]]:
    import boto3

    bucket, _, prefix = uri[5:].partition("/")
    s3 = boto3.client("s3", **({"region_name": region} if region else {}))
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            body = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"]
            yield item["Key"], (line.decode("utf-8", errors="replace") for line in body.iter_lines())


def _lines(path: Path) -> Iterator[str]:
    with path.open(encoding="utf-8", errors="replace") as handle:
        yield from handle


# The checks the alarms watch: one 0/1 flag each (infra/components/monitoring_job.py).
FLAGS = {
    "Drift": "baseline_drift_check",
    "QualityDrop": "model_quality_check",
    "UnreadableTraffic": "unreadable_traffic_check",
    "ModelTooOld": "model_age_check",
}


def publish(metrics: dict[str, Any], checks: set[str], namespace: str, dimension: tuple[str, str], region: str) -> None:
    """The flags and figures the alarms read, under one dimension: ("Endpoint", name) or ("Batch", pipeline)."""
    import boto3

    dimensions = [{"Name": dimension[0], "Value": dimension[1]}]
    data: list[dict[str, Any]] = [
        {"MetricName": flag, "Dimensions": dimensions, "Value": float(check in checks)} for flag, check in FLAGS.items()
    ]
    data += [
        {"MetricName": "MonitorRuns", "Dimensions": dimensions, "Value": 1.0},  # the silent-monitor alarm counts these
        {"MetricName": "UnreadableShare", "Dimensions": dimensions, "Value": float(metrics["unreadable_share"])},
        {"MetricName": "CapturedRows", "Dimensions": dimensions, "Value": float(metrics["rows"])},
    ]
    if metrics["model_age_days"] is not None:
        data.append({"MetricName": "ModelAgeDays", "Dimensions": dimensions, "Value": float(metrics["model_age_days"])})
    for feature, score in metrics["feature_drift_score"].items():
        data.append(
            {
                "MetricName": "FeatureDriftScore",
                "Dimensions": [*dimensions, {"Name": "Feature", "Value": feature}],
                "Value": float(score),
            }
        )
    for name, value in metrics["live_metrics"].items():
        data.append({"MetricName": f"Live_{name}", "Dimensions": dimensions, "Value": float(value)})
    cloudwatch = boto3.client("cloudwatch", **({"region_name": region} if region else {}))
    for start in range(0, len(data), 20):  # PutMetricData's limit per call is 1,000 values; keep calls small
        cloudwatch.put_metric_data(Namespace=namespace, MetricData=data[start : start + 20])


def monitor(args: argparse.Namespace) -> dict[str, Any]:
    root = Path(args.root)
    statistics = json.loads(next((root / "input" / "statistics").glob("*.json")).read_text())
    constraints = json.loads(next((root / "input" / "constraints").glob("*.json")).read_text())
    evaluation_files = (
        sorted((root / "input" / "evaluation").glob("*.json")) if (root / "input" / "evaluation").is_dir() else []
    )
    evaluation = json.loads(evaluation_files[0].read_text())["candidate"] if evaluation_files else None
    registered = evaluation["metrics"] if evaluation else None
    # The task and positive class the model was evaluated with decide how labels are compared.
    task = str(evaluation.get("task", "binary")) if evaluation else "binary"
    positive = evaluation.get("positive_class", 1) if evaluation else 1
    settings = Settings(
        drift_alpha=args.drift_alpha,
        min_rows=args.min_rows,
        max_unreadable_share=args.max_unreadable_share,
        quality_metrics=tuple(m for m in args.quality_metrics.split(",") if m),
        quality_tolerance=args.quality_tolerance,
        min_labels=args.min_labels,
        max_model_age_days=args.max_model_age_days,
        task=task,
        positive_class=category_text(positive),
    )
    end = datetime.fromisoformat(args.end) if args.end else datetime.now(UTC)
    start = end - timedelta(hours=args.window_hours)
    window = new_window(statistics, start, end)
    if args.batch_input:
        for name, lines in batch_sources(args.batch_input, args.region):
            add_batch(window, name, lines)
    for hour in hours(start, end) if args.capture else []:
        for name, lines in sources(args.capture, hour, args.region):
            add_capture(window, name, lines, args.only_ids)
    if args.ground_truth:
        # Labels arrive later than their requests: read them up to now, not only in the window.
        for hour in hours(start, max(end, datetime.now(UTC)) + timedelta(hours=1)):
            for name, lines in sources(args.ground_truth, hour, args.region):
                add_ground_truth(window, name, lines)
    created = datetime.fromisoformat(args.model_created_at) if args.model_created_at else None
    result = check(window, statistics, constraints, settings, registered, created)
    output = root / "output" / "monitoring"
    output.mkdir(parents=True, exist_ok=True)
    metrics = metrics_document(result, settings)
    (output / "constraint_violations.json").write_text(json.dumps(violations_document(result), indent=2))
    (output / "metrics.json").write_text(json.dumps(metrics, indent=2, default=str))
    write_report(output, result, statistics, settings, args.version)
    if args.namespace:
        checks = {v.constraint_check_type for v in result.violations}
        dimension = ("Batch", args.batch) if args.batch_input else ("Endpoint", args.endpoint)
        publish(metrics, checks, args.namespace, dimension, args.region)
    return metrics


def main(argv: list[str] | None = None) -> int:
    metrics = monitor(parse_args(argv))
    print(json.dumps({k: metrics[k] for k in ("requests", "rows", "drift", "violations")}))
    return 0  # violations are findings, not failures: the caller reads them


if __name__ == "__main__":
    sys.exit(main())
