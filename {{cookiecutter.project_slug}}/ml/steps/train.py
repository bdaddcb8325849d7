"""Train step: run ml/train.py as a training job, unless this exact model already exists."""

from __future__ import annotations

from dataclasses import dataclass

from ml import lineage, names, schema
from ml.backends.base import ModelVersion, TrainingSpec
from ml.config import PROJECT_ROOT
from ml.context import Context
from ml.errors import ConfigError, PipelineError
from ml.steps.data import DataResult

ENTRY_POINT = PROJECT_ROOT / "ml" / "train.py"


@dataclass(frozen=True)
class TrainResult:
    fingerprint: str
    model_uri: str
    job_name: str
    seconds: float
    reused_version: int | None = None


def _as_text(value: object) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def hyperparameters(ctx: Context, label: str) -> dict[str, str]:
    """The estimator and [train.hyperparameters] as SageMaker passes them (strings), checked first.

    train.py passes every --name value it does not know itself to the estimator, so a new
    parameter needs no code; a name or value the estimator refuses fails here, before a job
    starts (in AWS, a billed one), with the key and the fix.
    """
    from ml import estimator

    config = ctx.config
    values = {name: _as_text(value) for name, value in config.train.hyperparameters.items()}
    reserved = sorted(set(values) & RESERVED)
    if reserved:
        raise ConfigError(
            f"[train.hyperparameters] in {config.path} names {', '.join(reserved)}, which train.py sets itself; "
            "remove it (the estimator is [train].estimator, the label comes from the schema)"
        )
    estimator.check(config.train.estimator, values, schema.for_config(config).task, config.path)
    return {"estimator": config.train.estimator, **values, "label": label}


# train.py's own arguments: never passed to the estimator.
RESERVED = {"estimator", "label", "model-dir", "model_dir", "train", "schema", "output-dir", "output_dir"}


def reusable(ctx: Context, data: DataResult) -> ModelVersion | None:
    """The registered version trained from exactly this data, code and parameters, if its model is stored."""
    existing = ctx.backends.registry.find_by_fingerprint(lineage.fingerprint(data.split_hash, ctx.config))
    return existing if existing is not None and ctx.backends.artifacts.exists(existing.package.model_uri) else None


def run(ctx: Context, data: DataResult) -> TrainResult:
    config = ctx.config
    fingerprint = lineage.fingerprint(data.split_hash, config)
    existing = reusable(ctx, data)
    if existing is None and not data.schema_uri:
        raise PipelineError("the data step's result predates schemas; run `make data` again")
    if existing is not None:
        ctx.console.print(
            f"[green]unchanged[/] data, code and parameters: reusing model version "
            f"{existing.version} ({existing.package.approval_status}); training skipped"
        )
        return TrainResult(
            fingerprint=fingerprint,
            model_uri=existing.package.model_uri,
            job_name=existing.package.lineage.get("training_job", ""),
            seconds=0.0,
            reused_version=existing.version,
        )
    git_sha, _ = lineage.git_revision()
    spec = TrainingSpec(
        job_name=names.job_name(config.project.resource_prefix, config.env, "train"),
        entry_point=ENTRY_POINT,
        source_files=lineage.model_code_files(),
        channels={"train": data.train_uri, "schema": data.schema_uri},
        hyperparameters=hyperparameters(ctx, schema.for_config(config).label),
        max_runtime_seconds=config.train.max_runtime_seconds,
        tags={"git-sha": git_sha, "fingerprint": fingerprint[:16]},
    )
    with ctx.progress(f"training job {spec.job_name}"):
        result = ctx.backends.jobs.train(spec)
    ctx.console.print(f"trained {spec.job_name} in {result.seconds:.1f}s -> {result.model_uri}")
    return TrainResult(fingerprint, result.model_uri, result.job_name, result.seconds)
