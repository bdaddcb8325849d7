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

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ml import names
from ml.config import PROJECT_ROOT
from ml.context import Context
from ml.errors import PipelineError
from ml.serving import extract
from ml.steps.deploy import deployable
from ml.steps.monitor import baseline_uris

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

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0


def output_paths(input_path: Path, output: str | None) -> tuple[Path, Path, Path]:
    """The predictions (OUTPUT, else beside the input), and the rejects and summary beside them."""
    predictions = Path(output) if output else input_path.with_name(f"{input_path.stem}.predictions.csv")
    stem = predictions.name.removesuffix(".csv").removesuffix(".predictions")
    return predictions, predictions.with_name(f"{stem}.rejects.csv"), predictions.with_name(f"{stem}.batch.json")


def _temporary(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.partial")


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


def run(ctx: Context, input_path: Path, output: str | None = None) -> BatchResult:
    config = ctx.config
    check_input(input_path)
    version = scoring_version(ctx)
    model = ctx.backends.registry.get(version)
    predictions, rejects, summary_file = output_paths(input_path, output)
    if predictions.resolve() == input_path.resolve():
        raise PipelineError(f"OUTPUT={predictions} is the input itself; name another file")
    predictions.parent.mkdir(parents=True, exist_ok=True)
    job_name = names.job_name(config.project.resource_prefix, config.env, "batch")
    job_dir = config.state_dir / "batch" / job_name
    artifacts = ctx.backends.artifacts
    tarball = artifacts.get(model.package.model_uri, job_dir / "model.tar.gz")
    extract(tarball, job_dir / "model")
    baseline = {
        name: artifacts.get(uri, job_dir / "baseline" / f"{name}.json")
        for name, uri in baseline_uris(ctx, model).items()
    }
    partial = {path: _temporary(path) for path in (predictions, rejects, summary_file)}
    batch = config.batch
    arguments = [
        "--model-dir", str(job_dir / "model"),
        "--input", str(input_path),
        "--output", str(partial[predictions]),
        "--rejects", str(partial[rejects]),
        "--summary", str(partial[summary_file]),
        "--statistics", str(baseline["statistics"]),
        "--constraints", str(baseline["constraints"]),
        "--max-payload-mb", str(batch.max_payload_mb),
        "--join-source", batch.join_source,
        "--output-filter", batch.output_filter,
        "--drift-alpha", str(config.monitor.drift_alpha),
        "--min-rows", str(config.monitor.min_rows),
    ]  # fmt: skip
    log = job_dir / "job.log"
    try:
        with ctx.progress(f"batch job {job_name}: v{version} scores {input_path}"), log.open("w") as handle:
            code = subprocess.run(
                [sys.executable, "-m", "ml.batch", *arguments],
                cwd=PROJECT_ROOT,
                stdout=handle,
                stderr=handle,
                check=False,
            ).returncode
        if code != 0:
            lines = log.read_text(errors="replace").splitlines()
            errors = [line.removeprefix("error: ") for line in lines if line.startswith("error: ")]
            if code == 2 and errors:
                raise PipelineError(errors[-1])
            raise PipelineError(
                f"batch job {job_name} failed (exit {code}):\n" + "\n".join(lines[-LOG_TAIL:]) + f"\nFull log: {log}"
            )
        counts: dict[str, Any] = json.loads(partial[summary_file].read_text())
        if counts["rows"] == 0:
            raise PipelineError(f"INPUT={input_path} holds a header and no rows to score")
        partial[rejects].replace(rejects)  # whole: every refused row, and why
        result = BatchResult(
            version=version,
            job_name=job_name,
            input=str(input_path),
            predictions=str(predictions),
            rejects=str(rejects),
            summary_file=str(summary_file),
            rows=counts["rows"],
            scored=counts["scored"],
            rejected=counts["rejected"],
            seconds=counts["seconds"],
            drifted=counts["drifted"],
            drift_judged=counts["drift_judged"],
            violations=counts["violations"],
            reasons=counts["reasons"],
        )
        share = result.rejected / result.rows
        if share > batch.max_reject_share:
            raise PipelineError(
                f"{result.rejected} of {result.rows} rows ({share:.1%}) were refused, more than "
                f"[batch].max_reject_share = {batch.max_reject_share:.1%}, so no predictions were written. "
                f"Each refused row and why is in {rejects}; fix the data, or raise max_reject_share in mlops.toml"
            )
        partial[predictions].replace(predictions)
        summary = {**result.__dict__, "rows_per_second": result.rows_per_second}
        partial[summary_file].write_text(json.dumps(summary, indent=2))
        partial[summary_file].replace(summary_file)
        return result
    finally:
        for path in partial.values():
            path.unlink(missing_ok=True)
