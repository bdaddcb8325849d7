"""Batch step: score a whole file with the version the environment's desired state names.

Locally the model runs in a process of its own (ml/batch.py), as Batch Transform runs its
container; in AWS the same command starts a SageMaker Batch Transform job for the model Pulumi
manages (ml/backends/sagemaker_batch.py). Only a version that may reach traffic scores (the
deploy step's check), and the summary records which one did.

Nothing half-written is left as if it were whole: the predictions are written under a temporary
name beside their final one and renamed when the job has finished and its rejects are within
[batch].max_reject_share. The rejects file is always whole (it says why each row was refused).
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ml import names, schema
from ml.batch import (
    Assembler,
    BatchInputError,
    DriftCheck,
    csv_text,
    csv_values,
    feature_positions,
    mini_batches,
    prediction_columns,
    read_header,
    refused_before_scoring,
)
from ml.batch_request import REJECT_ROWS
from ml.config import PROJECT_ROOT
from ml.context import Context
from ml.errors import PipelineError
from ml.serving import extract
from ml.steps.deploy import deployable
from ml.steps.monitor import baseline_of, baseline_uris

LOG_TAIL = 15


@dataclass(frozen=True)
class BatchResult:
    version: int
    job_name: str
    input: str
    predictions: str
    rejects: str
    summary_file: str
    rows: int
    scored: int
    rejected: int
    seconds: float
    drifted: list[str] = field(default_factory=list)
    drift_judged: bool = False
    violations: list[dict[str, str]] = field(default_factory=list)
    reasons: dict[str, int] = field(default_factory=dict)
    peak_memory_mb: float = 0.0  # the local transform process's; 0 in AWS (the job's is in CloudWatch)

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0


def output_paths(input_path: Path, output: str | None) -> tuple[Path, Path, Path]:
    """The predictions (OUTPUT, else beside the input), and the rejects and summary beside them."""
    predictions = Path(output) if output else input_path.with_name(f"{input_path.stem}.predictions.csv")
    stem = predictions.name.removesuffix(".csv").removesuffix(".predictions")
    return predictions, predictions.with_name(f"{stem}.rejects.csv"), predictions.with_name(f"{stem}.batch.json")


def scoring_version(ctx: Context) -> int:
    state = ctx.backends.desired_state
    version = state.read()
    if version is None:
        raise PipelineError(
            f"{state.path} names no model version, so no model may score; run `make pipeline` (or `make promote`)"
        )
    deployable(ctx, version)  # Approved, with its model stored: the deploy step's check
    return version


def check_input(input_path: Path) -> None:
    if not input_path.exists():
        raise PipelineError(f"INPUT={input_path} does not exist; name a CSV file with a header row naming the features")
    if not input_path.is_file():
        raise PipelineError(f"INPUT={input_path} is not a file; name a CSV file with a header row naming the features")
    if input_path.stat().st_size == 0:
        raise PipelineError(f"INPUT={input_path} is empty; it needs a header row naming the features, then rows")


@dataclass(frozen=True)
class Job:
    """One batch run's names and files: where it works, and what it writes under temporary names."""

    name: str
    version: int
    input: Path
    directory: Path
    predictions: Path
    rejects: Path
    summary: Path

    def partial(self, path: Path) -> Path:
        return path.with_name(f".{path.name}.{os.getpid()}.partial")

    def partials(self) -> list[Path]:
        return [self.partial(path) for path in (self.predictions, self.rejects, self.summary)]


def new_job(ctx: Context, input_path: Path, output: str | None) -> Job:
    check_input(input_path)
    version = scoring_version(ctx)
    predictions, rejects, summary = output_paths(input_path, output)
    if predictions.resolve() == input_path.resolve():
        raise PipelineError(f"OUTPUT={predictions} is the input itself; name another file")
    predictions.parent.mkdir(parents=True, exist_ok=True)
    config = ctx.config
    name = names.job_name(config.project.resource_prefix, config.env, "batch")
    return Job(name, version, input_path, config.state_dir / "batch" / name, predictions, rejects, summary)


def run(ctx: Context, input_path: Path, output: str | None = None) -> BatchResult:
    job = new_job(ctx, input_path, output)
    try:
        counts = run_locally(ctx, job) if ctx.config.env == "local" else run_in_aws(ctx, job)
        return finish(ctx, job, counts)
    finally:
        for path in job.partials():
            path.unlink(missing_ok=True)


def finish(ctx: Context, job: Job, counts: dict[str, Any]) -> BatchResult:
    """The rejects (always whole), then the predictions only if the refused share is within bounds."""
    if counts["rows"] == 0:
        raise PipelineError(f"INPUT={job.input} holds a header and no rows to score")
    job.partial(job.rejects).replace(job.rejects)
    result = BatchResult(
        version=job.version,
        job_name=job.name,
        input=str(job.input),
        predictions=str(job.predictions),
        rejects=str(job.rejects),
        summary_file=str(job.summary),
        peak_memory_mb=counts.get("peak_memory_mb", 0.0),
        **{
            key: counts[key]
            for key in ("rows", "scored", "rejected", "seconds", "drifted", "drift_judged", "violations", "reasons")
        },
    )
    limit = ctx.config.batch.max_reject_share
    share = result.rejected / result.rows
    if share > limit:
        raise PipelineError(
            f"{result.rejected} of {result.rows} rows ({share:.1%}) were refused, more than "
            f"[batch].max_reject_share = {limit:.1%}, so no predictions were written. "
            f"Each refused row and why is in {job.rejects}; fix the data, or raise max_reject_share in mlops.toml"
        )
    job.partial(job.predictions).replace(job.predictions)
    summary = {**result.__dict__, "rows_per_second": result.rows_per_second, **counts.get("aws", {})}
    job.partial(job.summary).write_text(json.dumps(summary, indent=2))
    job.partial(job.summary).replace(job.summary)
    return result


def run_locally(ctx: Context, job: Job) -> dict[str, Any]:
    """ml/batch.py in a process of its own, on the model as SageMaker unpacks it."""
    config, artifacts = ctx.config, ctx.backends.artifacts
    model = ctx.backends.registry.get(job.version)
    tarball = artifacts.get(model.package.model_uri, job.directory / "model.tar.gz")
    extract(tarball, job.directory / "model")
    baseline = {
        name: artifacts.get(uri, job.directory / "baseline" / f"{name}.json")
        for name, uri in baseline_uris(ctx, model).items()
    }
    batch = config.batch
    arguments = [
        "--model-dir", str(job.directory / "model"),
        "--input", str(job.input),
        "--output", str(job.partial(job.predictions)),
        "--rejects", str(job.partial(job.rejects)),
        "--summary", str(job.partial(job.summary)),
        "--statistics", str(baseline["statistics"]),
        "--constraints", str(baseline["constraints"]),
        "--max-payload-mb", str(batch.max_payload_mb),
        "--join-source", batch.join_source,
        "--output-filter", batch.output_filter,
        "--drift-alpha", str(config.monitor.drift_alpha),
        "--min-rows", str(config.monitor.min_rows),
    ]  # fmt: skip
    log = job.directory / "job.log"
    with ctx.progress(f"batch job {job.name}: v{job.version} scores {job.input}"), log.open("w") as handle:
        code = subprocess.run(
            [sys.executable, "-m", "ml.batch", *arguments], cwd=PROJECT_ROOT, stdout=handle, stderr=handle, check=False
        ).returncode
    if code != 0:
        lines = log.read_text(errors="replace").splitlines()
        errors = [line.removeprefix("error: ") for line in lines if line.startswith("error: ")]
        if code == 2 and errors:
            raise PipelineError(errors[-1])
        raise PipelineError(
            f"batch job {job.name} failed (exit {code}):\n" + "\n".join(lines[-LOG_TAIL:]) + f"\nFull log: {log}"
        )
    counts: dict[str, Any] = json.loads(job.partial(job.summary).read_text())
    return counts


def run_in_aws(ctx: Context, job: Job) -> dict[str, Any]:
    """A Batch Transform job on the model the stack serves, fed and read back through S3.

    The local file goes up without its header, each line led by its line number, which the job's
    InputFilter leaves out of the request and JoinSource Input brings back into the answer; the
    answers come back as the same predictions and rejects files as a local run writes.
    """
    from ml.backends.s3_artifacts import S3ArtifactStore
    from ml.backends.sagemaker_batch import SageMakerBatchTransform, TransformSpec
    from ml.stack_outputs import load_stack_outputs

    config, backends = ctx.config, ctx.backends
    outputs = load_stack_outputs(config)
    if not outputs.model_name or outputs.model_version != str(job.version):
        applied = f"v{outputs.model_version}" if outputs.model_version else "no model"
        raise PipelineError(
            f"the {config.env} stack's last `pulumi up` applied {applied}, and the desired state names "
            f"v{job.version}: the transform job runs the model the stack manages. Let deploy.yml apply the "
            f"desired state (or `make infra-up MLOPS_ENV={config.env}`), then `make stack-outputs MLOPS_ENV={config.env}`"
        )
    if not isinstance(backends.batch, SageMakerBatchTransform) or not isinstance(backends.artifacts, S3ArtifactStore):
        raise PipelineError(f"MLOPS_ENV={config.env} has no Batch Transform backend")
    contract = schema.for_config(config)
    registered = backends.registry.get(job.version).package.lineage.get("schema_signature")
    if registered and registered != contract.signature():
        raise PipelineError(
            f"v{job.version} was trained on another schema than {contract.path.name} now describes; "
            "promote a version trained on this schema, or restore the schema it was trained on"
        )
    statistics, constraints = baseline_of(ctx, job.version)
    drift = DriftCheck(statistics, constraints, contract.names)
    batch = config.batch
    limit = batch.max_payload_mb * 1024 * 1024
    started = time.perf_counter()
    job.directory.mkdir(parents=True, exist_ok=True)
    upload = job.directory / f"{job.input.stem}.csv"
    with (
        job.input.open(newline="", encoding="utf-8") as source,
        upload.open("w", encoding="utf-8", newline="") as sent,
        job.partial(job.predictions).open("w", encoding="utf-8", newline="") as predictions,
        job.partial(job.rejects).open("w", encoding="utf-8", newline="") as rejects,
    ):
        header = read_header(source)
        try:
            positions = feature_positions(header, contract.names, str(job.input))
        except BatchInputError as error:
            raise PipelineError(str(error)) from None
        assembler = Assembler(predictions, rejects, batch.join_source, batch.output_filter)
        assembler.header(header, prediction_columns(contract.task.value, list(contract.classes)))
        # Uploaded as [line number, the other columns, the features in the schema's order], so an
        # open range sends the features alone: InputFilter is at most 63 characters (a list of 30
        # indices is not), and AWS documents no other way to leave columns out.
        others = [i for i in range(len(header)) if i not in positions]
        order = [*others, *positions]
        lines = 0
        for chunk in mini_batches(source, limit):
            kept = []
            for number, text in chunk:
                values = csv_values(text)
                reason = refused_before_scoring(values, text, len(header), limit)
                if reason:
                    assembler.refuse(number, values, reason)
                    continue
                sent.write(csv_text([str(number), *(values[i] for i in order)]))
                kept.append(values)
            lines += len(kept)
            drift.add(kept, positions)
        sent.close()  # whole on disk before it goes up
        if lines:
            key = f"batch/{job.name}/input/{upload.name}"
            spec = TransformSpec(
                job_name=job.name,
                model_name=outputs.model_name,
                input_uri=backends.artifacts.put_at(upload, key),
                output_uri=f"s3://{outputs.artifacts_bucket}/batch/{job.name}/output/",
                capture_uri=f"s3://{outputs.artifacts_bucket}/batch-capture/{job.name}/",
                kms_key_arn=outputs.kms_key_arn,
                instance_type=batch.instance_type,
                max_payload_mb=batch.max_payload_mb,
                input_filter=f"$[{1 + len(others)}:]",
                environment={REJECT_ROWS: "1"},
                tags={"project": config.project.resource_prefix, "environment": config.env},
                max_runtime_seconds=config.train.max_runtime_seconds,
            )
            with ctx.progress(f"transform job {job.name}: v{job.version} scores {job.input} in {config.env}"):
                backends.batch.run(spec)
            answers = backends.artifacts.get(f"{spec.output_uri}{upload.name}.out", job.directory / "answers.csv")
            width = len(header)
            answered = len(prediction_columns(contract.task.value, list(contract.classes)))
            with answers.open(newline="", encoding="utf-8") as handle:
                for row in csv.reader(handle):
                    # JoinSource Input: the uploaded line, then the answer's columns and its reason.
                    number, moved = int(row[0]), row[1 : 1 + width]
                    values = [""] * width
                    for column, value in zip(order, moved, strict=True):
                        values[column] = value  # back in the header's order
                    prediction, reason = row[1 + width : 1 + width + answered], row[1 + width + answered]
                    if reason:
                        assembler.refuse(number, values, reason)
                    else:
                        assembler.scored(values, prediction)
        counts = assembler.counts()
    return {
        **counts,
        "seconds": time.perf_counter() - started,
        **drift.result(config.monitor.drift_alpha, config.monitor.min_rows),
        "aws": {"transform_job": job.name, "model_name": outputs.model_name} if lines else {},
    }
