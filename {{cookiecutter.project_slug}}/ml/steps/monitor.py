"""Monitor step: judge a window of the served traffic, as a processing job (ml/monitor_job.py).

Locally the job is a subprocess over the local endpoint's capture; in AWS it is a SageMaker
processing job over the endpoint's S3 capture, the same job the monitoring schedule runs.
Either way its outputs (constraint_violations.json, metrics.json, report.md, plots) come back
into .mlops/monitoring/<time>/.
"""

from __future__ import annotations

import json
import tarfile
import tempfile
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ml import monitor_job, names
from ml.backends.base import ArtifactStore, ModelVersion, ProcessingSpec
from ml.config import PROJECT_ROOT
from ml.context import Context
from ml.errors import PipelineError

JOB_FILES = tuple(PROJECT_ROOT / "ml" / name for name in monitor_job.FILES)
OUTPUT = "monitoring"


@dataclass(frozen=True)
class MonitorReport:
    version: int
    report_dir: Path
    violations: list[dict[str, str]]
    metrics: dict[str, Any]
    job_name: str
    skipped: list[str] = field(default_factory=list)

    @property
    def violations_file(self) -> Path:
        return self.report_dir / "constraint_violations.json"

    @property
    def report_file(self) -> Path:
        return self.report_dir / "report.md"

    @property
    def drifted(self) -> list[str]:
        return [v["feature_name"] for v in self.violations if v["constraint_check_type"] == "baseline_drift_check"]


BASELINE_FILES = ("statistics", "constraints")


def extract_baseline(artifacts: ArtifactStore, model_uri: str, directory: Path) -> dict[str, Path]:
    """The baseline files train.py packed into model.tar.gz, unpacked into directory.

    Empty for a model from before baselines. The register step stores them as artifacts of their
    own; the monitor reads those.
    """
    tarball = artifacts.get(model_uri, directory / "model.tar.gz")
    with tarfile.open(tarball) as archive:
        members = {name: f"baseline/{name}.json" for name in BASELINE_FILES}
        if not set(members.values()) <= set(archive.getnames()):
            return {}
        for member in members.values():
            archive.extract(member, directory, filter="data")
    return {name: directory / member for name, member in members.items()}


def baseline_uris(ctx: Context, model: ModelVersion) -> dict[str, str]:
    """The model's stored baseline files (the register step stored them; older models: stored now)."""
    lineage = model.package.lineage
    if all(f"baseline_{name}" in lineage for name in BASELINE_FILES):
        return {name: lineage[f"baseline_{name}"] for name in BASELINE_FILES}
    with tempfile.TemporaryDirectory() as scratch:
        files = extract_baseline(ctx.backends.artifacts, model.package.model_uri, Path(scratch))
        if not files:
            raise PipelineError(
                f"model v{model.version} carries no monitoring baseline (it predates baselines); retrain it"
            )
        return {name: ctx.backends.artifacts.put(path) for name, path in files.items()}


def baseline_of(ctx: Context, version: int) -> tuple[dict[str, Any], dict[str, Any]]:
    uris = baseline_uris(ctx, ctx.backends.registry.get(version))
    with tempfile.TemporaryDirectory() as scratch:
        loaded = [
            json.loads(ctx.backends.artifacts.get(uris[name], Path(scratch) / f"{name}.json").read_text())
            for name in BASELINE_FILES
        ]
    return loaded[0], loaded[1]


def serving_version(ctx: Context) -> ModelVersion:
    state = ctx.backends.desired_state
    version = state.read()
    if version is None:
        status = ctx.backends.endpoint.status()
        serving = f"; the endpoint serves v{status.version}: `make promote VERSION={status.version}`" if status else ""
        raise PipelineError(f"{state.path} names no model version, so there is no model to judge traffic by{serving}")
    return ctx.backends.registry.get(version)


def run(ctx: Context, window_hours: float | None = None, only_ids: str | None = None) -> MonitorReport:
    model = serving_version(ctx)
    config, endpoint = ctx.config, ctx.backends.endpoint
    uris = baseline_uris(ctx, model)
    arguments = [
        "--capture", endpoint.capture_location(),
        "--ground-truth", endpoint.ground_truth_location(),
        "--version", str(model.version),
        "--model-created-at", model.created_at,
        *config.monitor.job_arguments(window_hours),
        *(["--only-ids", only_ids] if only_ids else []),
    ]  # fmt: skip
    if config.env != "local":
        arguments += [
            "--namespace", names.metrics_namespace(config.project.resource_prefix),
            "--endpoint", endpoint.name,
            "--region", config.project.aws_region,
        ]  # fmt: skip
    spec = ProcessingSpec(
        job_name=names.job_name(config.project.resource_prefix, config.env, "monitor"),
        entry_point=JOB_FILES[0],
        source_files=JOB_FILES,
        inputs={**uris, "evaluation": model.package.evaluation_uri},
        outputs=(OUTPUT,),
        arguments=tuple(arguments),
        max_runtime_seconds=config.train.max_runtime_seconds,
    )
    with ctx.progress(f"monitoring job {spec.job_name}"):
        result = ctx.backends.jobs.process(spec)
    report_dir = config.state_dir / "monitoring" / datetime.now(UTC).strftime("%Y%m%d-%H%M%S-%f")
    for key, uri in result.outputs.items():
        relative = key.removeprefix(f"{OUTPUT}/")
        ctx.backends.artifacts.get(uri, report_dir / relative)
    violations = json.loads((report_dir / "constraint_violations.json").read_text())["violations"]
    metrics = json.loads((report_dir / "metrics.json").read_text())
    return MonitorReport(model.version, report_dir, violations, metrics, spec.job_name)


def ground_truth_records(labels: list[tuple[str, str]]) -> list[str]:
    """Labels as SageMaker's ground-truth records: one JSON line each, keyed by the request's InferenceId."""
    return [
        json.dumps(
            {
                "groundTruthData": {"data": str(label), "encoding": "CSV"},
                "eventMetadata": {"eventId": inference_id},
                "eventVersion": "0",
            }
        )
        for inference_id, label in labels
    ]


def record_labels(ctx: Context, labels: list[tuple[str, str]]) -> str:
    """Write labels where the monitor reads them (an hour folder under the ground-truth root)."""
    now = datetime.now(UTC)
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / f"{now:%M-%S}-{uuid.uuid4()}.jsonl"
        path.write_text("\n".join(ground_truth_records(labels)) + "\n")
        return ctx.backends.endpoint.record_ground_truth(path, now.strftime("%Y/%m/%d/%H"))
