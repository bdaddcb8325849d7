"""Register step: record the model with its metrics and lineage; approval follows the gate."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from ml import lineage
from ml.backends.base import ModelPackage
from ml.context import Context
from ml.errors import GateRejectedError
from ml.gate import Check, GateDecision
from ml.steps.data import DataResult
from ml.steps.evaluate import EvaluationResult
from ml.steps.monitor import extract_baseline
from ml.steps.train import TrainResult


@dataclass(frozen=True)
class RegisterResult:
    version: int
    approval_status: str
    group: str
    fingerprint: str = ""  # the training it registered: `make promote` refuses an older step's result


def build_lineage(ctx: Context, data: DataResult, trained: TrainResult) -> dict[str, str]:
    git_sha, dirty = lineage.git_revision()
    return {
        "git_sha": git_sha,
        "git_dirty": str(dirty).lower(),
        "data_source": data.source,
        "data_hash": data.data_hash,
        "split_hash": data.split_hash,
        "code_hash": lineage.code_hash(),
        "params_hash": lineage.params_hash(ctx.config),
        "fingerprint": trained.fingerprint,
        "training_job": trained.job_name,
        "framework": f"sklearn {ctx.config.framework.sagemaker_image_version}",
        "task": data.task,
        "estimator": ctx.config.train.estimator,
        # Versions with the same signature are one lineage: the gate compares them (ml/schema.py).
        "schema_signature": data.schema_signature,
    }


def store_baseline(ctx: Context, model_uri: str) -> dict[str, str]:
    """Store the model's monitoring baseline as artifacts of its own, before the package exists.

    A Model Monitor schedule reads these two files from S3; putting them first means no
    registered version ever names a baseline that is not there.
    """
    with tempfile.TemporaryDirectory() as scratch:
        files = extract_baseline(ctx.backends.artifacts, model_uri, Path(scratch))
        return {f"baseline_{name}": ctx.backends.artifacts.put(path) for name, path in files.items()}


def run(ctx: Context, data: DataResult, trained: TrainResult, evaluation: EvaluationResult) -> RegisterResult:
    registry = ctx.backends.registry
    version = registry.register(
        ModelPackage(
            model_uri=trained.model_uri,
            evaluation_uri=evaluation.evaluation_uri,
            fingerprint=trained.fingerprint,
            approval_status="Approved" if evaluation.passed else "Rejected",
            metrics=evaluation.metrics,
            lineage={**build_lineage(ctx, data, trained), **store_baseline(ctx, trained.model_uri)},
        )
    )
    result = RegisterResult(version.version, version.package.approval_status, registry.group, trained.fingerprint)
    ctx.save("register", result)  # rejected too: a later `make promote` must not take an older result
    if not evaluation.passed:
        failures = GateDecision(False, [Check(**check) for check in evaluation.checks]).failures
        champion = registry.champion()
        raise GateRejectedError(
            f"the candidate failed the gate and is registered as v{version.version} (Rejected):\n  - "
            + "\n  - ".join(failures)
            + (f"\nChampion v{champion.version} stays in place." if champion else "\nNo model was promoted.")
        )
    return result
