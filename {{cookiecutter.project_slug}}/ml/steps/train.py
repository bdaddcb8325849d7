"""Train step: run ml/train.py as a training job, unless this exact model already exists."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

from ml import lineage, names, schema
from ml.backends.base import ModelVersion, TrainingSpec
from ml.config import PROJECT_ROOT
from ml.context import Context
from ml.errors import ConfigError
from ml.steps.data import DataResult

ENTRY_POINT = PROJECT_ROOT / "ml" / "train.py"


@dataclass(frozen=True)
class TrainResult:
    fingerprint: str
    model_uri: str
    job_name: str
    seconds: float
    reused_version: int | None = None


# Arguments of train.py that are the container's, not the model's: never hyperparameters.
CONTAINER_ARGUMENTS = {"model-dir", "model_dir", "train", "output-dir", "output_dir"}


def entry_point_arguments(entry_point: Path) -> set[str]:
    """The --names train.py's argument parser accepts, read from its source without running it."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(entry_point.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "add_argument":
            for argument in node.args:
                if isinstance(argument, ast.Constant) and str(argument.value).startswith("--"):
                    names.add(str(argument.value)[2:])
    return names - CONTAINER_ARGUMENTS


def hyperparameters(ctx: Context) -> dict[str, str]:
    """[train.hyperparameters] as SageMaker passes them (strings), checked against train.py first.

    An unknown name would otherwise surface only inside the training job: in AWS, a billed one.
    """
    accepted = entry_point_arguments(ENTRY_POINT)
    unknown = sorted(set(ctx.config.train.hyperparameters) - accepted)
    if unknown:
        raise ConfigError(
            f"[train.hyperparameters] in {ctx.config.path} names {', '.join(unknown)}, which ml/train.py does "
            f"not accept (it takes {', '.join(sorted(accepted - {'label'}))}). Fix the name, or add the argument "
            "to train.py's parse_args."
        )
    values = {**ctx.config.train.hyperparameters, "label": schema.LABEL}
    return {name: str(value).lower() if isinstance(value, bool) else str(value) for name, value in values.items()}


def reusable(ctx: Context, data: DataResult) -> ModelVersion | None:
    """The registered version trained from exactly this data, code and parameters, if its model is stored."""
    existing = ctx.backends.registry.find_by_fingerprint(lineage.fingerprint(data.split_hash, ctx.config))
    return existing if existing is not None and ctx.backends.artifacts.exists(existing.package.model_uri) else None


def run(ctx: Context, data: DataResult) -> TrainResult:
    config = ctx.config
    fingerprint = lineage.fingerprint(data.split_hash, config)
    existing = reusable(ctx, data)
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
        channels={"train": data.train_uri},
        hyperparameters=hyperparameters(ctx),
        max_runtime_seconds=config.train.max_runtime_seconds,
        tags={"git-sha": git_sha, "fingerprint": fingerprint[:16]},
    )
    with ctx.progress(f"training job {spec.job_name}"):
        result = ctx.backends.jobs.train(spec)
    ctx.console.print(f"trained {spec.job_name} in {result.seconds:.1f}s -> {result.model_uri}")
    return TrainResult(fingerprint, result.model_uri, result.job_name, result.seconds)
