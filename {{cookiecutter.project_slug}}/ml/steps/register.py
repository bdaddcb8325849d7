"""Register step: record the model with its metrics and lineage; approval follows the gate."""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ml import atomic, lineage, model_card
from ml.backends.base import ApprovalStatus, ModelPackage
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
        "git_branch": lineage.git_branch(),
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
    approval: ApprovalStatus = "Approved" if evaluation.passed else "Rejected"
    lineage_facts = {**build_lineage(ctx, data, trained), **store_baseline(ctx, trained.model_uri)}
    report_dir = Path(evaluation.report_dir)
    report = json.loads((report_dir / "evaluation.json").read_text())
    card = model_card.content(ctx.config, report, evaluation.checks, lineage_facts, trained.model_uri, approval)
    version = registry.register(
        ModelPackage(
            model_uri=trained.model_uri,
            evaluation_uri=evaluation.evaluation_uri,
            fingerprint=trained.fingerprint,
            approval_status=approval,
            metrics=evaluation.metrics,
            lineage=lineage_facts,
        ),
        card=model_card.serialised(card),
    )
    write_card(card, report_dir, version.version, registry.group, approval)
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


def write_card(card: dict[str, Any], report_dir: Path, version: int, group: str, approval: str) -> Path:
    """model_card.md and model_card.html beside the evaluation, for a reviewer (and CI's artifacts)."""
    text = model_card.markdown(card, version, group, approval)
    atomic.write_text(report_dir / "model_card.md", text)
    atomic.write_text(report_dir / "model_card.html", model_card.html(text, f"Model card: {group} v{version}"))
    return report_dir / "model_card.md"
