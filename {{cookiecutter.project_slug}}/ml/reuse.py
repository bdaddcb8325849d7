"""An unchanged model is reused: never evaluated again for nothing, never registered twice.

When data, code and parameters are those of a registered version, the train step returns that
version instead of training (ml/steps/train.py). These are the rules that follow, the same for
`make pipeline` and for the split steps CI runs (`make train`, `make evaluate`, `make register`):
a reused version the gate rejected stays rejected; one that is no longer the champion must beat
the champion again on this test set; otherwise nothing is evaluated or registered, so a weekly
retrain or a lockfile bump that changes no input opens no pull request.
"""

from __future__ import annotations

from ml.backends.base import ModelVersion
from ml.context import Context
from ml.errors import GateRejectedError
from ml.gate import Check, GateDecision
from ml.steps.evaluate import EvaluationResult
from ml.steps.register import RegisterResult
from ml.steps.train import TrainResult


def reused(ctx: Context, trained: TrainResult) -> ModelVersion | None:
    return None if trained.reused_version is None else ctx.backends.registry.get(trained.reused_version)


def refuse_rejected(existing: ModelVersion) -> None:
    if not existing.approved:
        raise GateRejectedError(
            f"data, code and parameters are unchanged since v{existing.version}, which the gate "
            "rejected. Change the data, code or [train] parameters to try again."
        )


def champion_to_beat(ctx: Context, existing: ModelVersion) -> ModelVersion | None:
    """The champion a reused version must beat again: any other version that is champion now."""
    champion = ctx.backends.registry.champion()
    return champion if champion is not None and champion.version != existing.version else None


def refuse_trailing(evaluation: EvaluationResult, existing: ModelVersion, champion: ModelVersion) -> None:
    if not evaluation.passed:
        failures = GateDecision(False, [Check(**check) for check in evaluation.checks]).failures
        raise GateRejectedError(
            f"data, code and parameters are those of v{existing.version}, but it now trails champion "
            f"v{champion.version} on this test set:\n  - "
            + "\n  - ".join(failures)
            + f"\nChampion v{champion.version} stays in place."
        )


def standing_evaluation(existing: ModelVersion) -> EvaluationResult:
    """The reused version's registered evaluation, for the steps after evaluate: nothing ran."""
    return EvaluationResult(
        job_name="",
        evaluation_uri=existing.package.evaluation_uri,
        metrics=existing.package.metrics,
        champion_version=None,
        champion_metrics=None,
        passed=True,
        checks=[],
        report_dir="",
        reused_version=existing.version,
    )


def registration(existing: ModelVersion, trained: TrainResult) -> RegisterResult:
    return RegisterResult(existing.version, existing.package.approval_status, existing.group, trained.fingerprint)
